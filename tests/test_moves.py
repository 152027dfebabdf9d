"""Stories of stock that moves between orders: rebalance, preemption, firm units, returns."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest

from backorder import (
    BackorderBook,
    CannotFirm,
    CannotReturn,
    DuplicateReceipt,
    DuplicateReturn,
    EtaChanged,
    InvalidArgument,
    LineAllocated,
    LineBackordered,
    LineFirmed,
    LineReleased,
    Order,
    OrderLine,
    PartialFill,
    PriorityTiers,
    SQLiteRepository,
    StockReturned,
    StrictFIFO,
    UnknownOrder,
    UnknownSku,
    event_from_dict,
    event_to_dict,
)
from backorder.testing import DictRepository

from .helpers import START, TickingClock, snapshot


def _standard_took_everything(policy: PriorityTiers, path: Path | None = None) -> BackorderBook:
    # 6 units; three standard orders of 2 took them all
    book = (
        BackorderBook.open(path, policy, clock=TickingClock())
        if path is not None
        else BackorderBook(policy, clock=TickingClock())
    )
    book.receive("MUG", 6, reference="GRN-1")
    for n in (1, 2, 3):
        book.place(Order(f"S-{n}", [OrderLine("MUG", 2)]))
    return book


def _refused(book: BackorderBook, error: type[Exception], call: Callable[[], object]) -> str:
    before = snapshot(book)
    with pytest.raises(error) as caught:
        call()
    assert snapshot(book) == before
    return str(caught.value)


def test_preempting_contract_order_takes_stock_back_from_the_last_standard_line_at_once() -> None:
    book = _standard_took_everything(PriorityTiers(preempt=True))
    result = book.place(Order("C-1", [OrderLine("MUG", 3)], tier="contract"))
    assert result.lines[0].allocated == 3  # served at once
    assert [book.line(f"S-{n}", "MUG").allocated for n in (1, 2, 3)] == [2, 1, 0]
    assert [(line.order_id, line.backordered) for line in book.waiting("MUG")] == [
        ("S-2", 1),
        ("S-3", 2),
    ]
    released = [e for e in result.events if isinstance(e, LineReleased)]
    assert [(e.order_id, e.quantity, e.reason) for e in released] == [
        ("S-3", 2, "rebalance"),
        ("S-2", 1, "rebalance"),
    ]
    allocated = [e for e in result.events if isinstance(e, LineAllocated)]
    assert [(e.order_id, e.quantity) for e in allocated] == [("C-1", 3)]
    short = [e for e in result.events if isinstance(e, LineBackordered)]
    # the contract line is never reported short: only the lines it took from
    assert [(e.order_id, e.quantity, e.position) for e in short] == [("S-3", 2, 2), ("S-2", 1, 1)]
    kinds = [(e.kind, e.order_id, e.reference) for e in book.ledger.entries("MUG")][-3:]
    assert kinds == [
        ("release", "S-3", "rebalance"),
        ("release", "S-2", "rebalance"),
        ("allocation", "C-1", "rebalance"),
    ]
    assert sum(e.kind == "receipt" for e in book.ledger.entries("MUG")) == 1
    book.ledger.verify()
    book._check()


def test_without_preemption_the_contract_order_waits_until_rebalance() -> None:
    book = _standard_took_everything(PriorityTiers())
    result = book.place(Order("C-1", [OrderLine("MUG", 3)], tier="contract"))
    assert result.lines[0].allocated == 0
    assert book.position("C-1", "MUG") == 1
    assert book.rebalance("OTHER-SKU").moved == 0  # a SKU never seen: nothing
    moved = book.rebalance()
    assert (moved.moved, moved.allocated) == (3, 3)
    assert book.line("C-1", "MUG").allocated == 3
    assert [book.line(f"S-{n}", "MUG").allocated for n in (1, 2, 3)] == [2, 1, 0]
    again = book.rebalance("MUG")
    assert (again.moved, again.events) == (0, ())
    book._check()


@pytest.mark.parametrize("preempt", [True, False])
def test_firm_units_survive_preemption_and_rebalance(preempt: bool) -> None:
    book = _standard_took_everything(PriorityTiers(preempt=preempt))
    result = book.firm("S-3")
    assert result.firmed == 2
    assert next(e for e in result.events if isinstance(e, LineFirmed)).quantity == 2
    book.firm("S-2", "MUG", 1)
    book.place(Order("C-1", [OrderLine("MUG", 4)], tier="contract"))
    book.rebalance()
    # S-3's 2 and one of S-2's are firm: only S-2's other unit and S-1's 2 can move
    assert [(book.line(f"S-{n}", "MUG").allocated, book.line(f"S-{n}", "MUG").firm)
            for n in (1, 2, 3)] == [(0, 0), (1, 1), (2, 2)]  # fmt: skip
    assert book.line("C-1", "MUG").allocated == 3
    assert book.line("C-1", "MUG").backordered == 1
    book._check()


def test_a_strict_head_takes_its_whole_shortfall_or_nothing() -> None:
    book = _standard_took_everything(PriorityTiers(fill=StrictFIFO()))
    book.firm("S-1")
    book.firm("S-2")
    book.place(Order("C-1", [OrderLine("MUG", 3)], tier="contract"))
    result = book.rebalance("MUG")  # only S-3's 2 units are movable: not enough
    assert (result.moved, result.events) == (0, ())
    assert book.line("S-3", "MUG").allocated == 2
    book.cancel("C-1", "MUG", 1)  # now it needs 2: all of it moves
    assert book.rebalance("MUG").moved == 2
    assert book.line("C-1", "MUG").allocated == 2
    book._check()


def test_held_units_are_nobodys_to_take() -> None:
    book = BackorderBook(PriorityTiers(preempt=True), clock=TickingClock())
    book.receive("MUG", 3)
    book.hold("MUG", 2, timedelta(minutes=10), hold_id="CART-1")
    book.place(Order("S-1", [OrderLine("MUG", 1)]))
    book.place(Order("C-1", [OrderLine("MUG", 3)], tier="contract"))
    assert book.line("C-1", "MUG").allocated == 1  # S-1's unit, not the held ones
    assert book.stock("MUG").allocated == 3
    book._check()


def test_a_line_made_short_again_gets_its_deadline_back() -> None:
    book = BackorderBook(PriorityTiers(), clock=TickingClock())
    book.receive("MUG", 2)
    book.place(Order("S-1", [OrderLine("MUG", 2)], fill_by=date(2026, 1, 6)))
    book.place(Order("C-1", [OrderLine("MUG", 2)], tier="contract"))
    book.expire(START + timedelta(days=1, hours=1))  # S-1 was filled in time
    book.rebalance("MUG")
    assert book.line("S-1", "MUG").backordered == 2
    assert book.expire(START + timedelta(days=2)).expired == ("S-1",)
    book._check()


def test_a_rebalance_moves_etas() -> None:
    book = BackorderBook(PriorityTiers(), clock=TickingClock())
    book.receive("MUG", 2)
    book.expect("MUG", 2, date(2026, 2, 1), "PO-1")
    book.place(Order("S-1", [OrderLine("MUG", 2)]))  # took the stock
    book.place(Order("V-1", [OrderLine("MUG", 2)], tier="vip"))
    book.place(Order("C-1", [OrderLine("MUG", 2)], tier="contract"))
    eta = book.eta("V-1", "MUG")
    assert eta is not None
    assert eta.basis == "unknown"  # C-1 needs PO-1 first
    events = book.rebalance().events
    # C-1 is served from S-1: V-1 no longer waits behind it, PO-1 is for V-1 now
    moved = [e for e in events if isinstance(e, EtaChanged)]
    assert [(e.order_id, e.old.basis, e.new.basis) for e in moved] == [
        ("V-1", "unknown", "scheduled")
    ]
    short = [e for e in events if isinstance(e, LineBackordered)]
    assert [(e.order_id, e.position, e.eta.basis if e.eta else None) for e in short] == [
        ("S-1", 2, "unknown")
    ]


def test_a_return_restocks_and_serves_the_next_in_line() -> None:
    book = BackorderBook(clock=TickingClock())
    book.receive("MUG", 2)
    book.place(Order("A-1", [OrderLine("MUG", 2)]))
    book.ship("A-1")
    book.place(Order("A-2", [OrderLine("MUG", 1)]))
    result = book.receive_return("A-1", "MUG", 1, reference="RMA-1")
    line = book.line("A-1", "MUG")
    assert (line.shipped, line.returned, line.backordered) == (2, 1, 0)
    assert book.line("A-2", "MUG").allocated == 1
    assert result.stock.on_hand == 1
    returned = [e for e in result.events if isinstance(e, StockReturned)]
    assert returned == [StockReturned("A-1", "MUG", 1, "RMA-1", True, returned[0].at)]
    entry = [e for e in book.ledger.entries("MUG") if e.kind == "return"]
    assert [(e.on_hand_delta, e.order_id, e.reference) for e in entry] == [(1, "A-1", "RMA-1")]
    # a redelivered return message changes nothing; another quantity is refused
    assert book.receive_return("A-1", "MUG", 1, reference="RMA-1").replayed
    message = _refused(
        book, DuplicateReturn, lambda: book.receive_return("A-1", "MUG", 2, reference="RMA-1")
    )
    assert "quantity 1, not 2" in message
    assert issubclass(DuplicateReturn, DuplicateReceipt)
    # written off: counted on the line, no stock moves
    book.receive_return("A-1", "MUG", 1, restock=False)
    assert book.line("A-1", "MUG").returned == 2
    assert book.stock("MUG").on_hand == 1
    message = _refused(book, CannotReturn, lambda: book.receive_return("A-1", "MUG", 1))
    assert "only 0" in message
    book.ledger.verify()
    book._check()


def test_a_count_correction_takes_firm_units_last() -> None:
    book = BackorderBook(clock=TickingClock())
    book.receive("MUG", 6)
    for n in (1, 2, 3):
        book.place(Order(f"A-{n}", [OrderLine("MUG", 2)]))
    book.firm("A-3")  # the last in line, but firm
    result = book.adjust("MUG", -3, "broken")
    assert result.reclaimed == 3
    # A-2's 2, then A-1's 1: A-3's firm units are untouched
    assert [book.line(f"A-{n}", "MUG").allocated for n in (1, 2, 3)] == [1, 0, 2]
    book.adjust("MUG", -2, "lost")  # only firm units (and A-1's 1) are left
    assert [(book.line(f"A-{n}", "MUG").allocated, book.line(f"A-{n}", "MUG").firm)
            for n in (1, 2, 3)] == [(0, 0), (0, 0), (1, 1)]  # fmt: skip
    book._check()


def test_ship_cancel_and_expire_work_with_firm_units() -> None:
    book = BackorderBook(clock=TickingClock())
    book.receive("MUG", 4)
    book.place(Order("A-1", [OrderLine("MUG", 4)]))
    book.firm("A-1", "MUG", 2)
    book.ship("A-1", "MUG", 1)  # firm units ship first
    assert (book.line("A-1", "MUG").allocated, book.line("A-1", "MUG").firm) == (3, 1)
    book.cancel("A-1", "MUG", 2)  # units that are not firm are released first
    assert (book.line("A-1", "MUG").allocated, book.line("A-1", "MUG").firm) == (1, 1)
    book.cancel("A-1")
    assert (book.line("A-1", "MUG").allocated, book.line("A-1", "MUG").firm) == (0, 0)
    book._check()


def test_bad_input_is_refused_and_changes_nothing() -> None:
    book = _standard_took_everything(PriorityTiers())
    book.firm("S-1", "MUG", 1)
    message = _refused(book, CannotFirm, lambda: book.firm("S-1", "MUG", 2))
    assert "only 1" in message
    book.firm("S-1")
    assert "0 units" in _refused(book, CannotFirm, lambda: book.firm("S-1"))
    _refused(book, UnknownOrder, lambda: book.firm("NOPE"))
    _refused(book, UnknownSku, lambda: book.firm("S-1", "CUP"))
    _refused(book, InvalidArgument, lambda: book.firm("S-1", None, 1))
    _refused(book, UnknownOrder, lambda: book.receive_return("NOPE", "MUG", 1))
    _refused(book, UnknownSku, lambda: book.receive_return("S-1", "CUP", 1))
    message = _refused(book, CannotReturn, lambda: book.receive_return("S-1", "MUG", 1))
    assert "only 0 shipped units" in message
    _refused(book, InvalidArgument, lambda: book.receive_return("S-1", "MUG", 1, restock="yes"))  # type: ignore[arg-type]
    _refused(book, InvalidArgument, lambda: book.rebalance(""))
    with pytest.raises(InvalidArgument):
        PriorityTiers(preempt=1)  # type: ignore[arg-type]


def test_preempt_is_part_of_the_policy_identity() -> None:
    assert repr(PriorityTiers()) == (
        "PriorityTiers(tiers=('contract', 'vip', 'standard'), fill=PartialFill(), preempt=False)"
    )
    assert PriorityTiers(preempt=True) != PriorityTiers()
    assert PriorityTiers(preempt=True).preempts
    assert not PriorityTiers().preempts
    assert not getattr(PartialFill(), "preempts", False)


def test_new_events_round_trip() -> None:
    for event in (
        LineFirmed("A-1", "MUG", 2, START),
        StockReturned("A-1", "MUG", 1, None, False, START),
        StockReturned("A-1", "MUG", 1, "RMA-1", True, START),
        LineReleased("A-1", "MUG", 1, "rebalance", START),
    ):
        assert event_from_dict(event_to_dict(event)) == event


def _moves(book: BackorderBook) -> None:
    book.firm("S-1", "MUG", 1)
    book.place(Order("C-1", [OrderLine("MUG", 3)], tier="contract"))
    book.ship("S-1")
    book.receive_return("S-1", "MUG", 1, reference="RMA-1")


def test_everything_persists_and_reopens_exactly(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    policy = PriorityTiers(preempt=True)
    with _standard_took_everything(policy, path) as book:
        _moves(book)
        before = snapshot(book)
        assert book.line("S-1", "MUG").returned == 1
    with BackorderBook.open(path, policy) as book:
        assert snapshot(book) == before
        assert book.receive_return("S-1", "MUG", 1, reference="RMA-1").replayed
        with pytest.raises(DuplicateReturn):
            book.receive_return("S-1", "MUG", 2, reference="RMA-1")
        book._check()
    repo = SQLiteRepository(path, lazy=False)
    with BackorderBook(policy, repo) as book:
        assert snapshot(book) == before


def test_two_books_on_one_file_catch_up(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    policy = PriorityTiers(preempt=True)
    first = _standard_took_everything(policy, path)
    second = BackorderBook.open(path, policy, clock=TickingClock())
    assert second.line("S-3", "MUG").allocated == 2
    first.firm("S-3")
    first.place(Order("C-1", [OrderLine("MUG", 3)], tier="contract"))
    assert second.line("S-3", "MUG").firm == 2  # caught up
    second.ship("S-3")
    second.receive_return("S-3", "MUG", 2, reference="RMA-9")
    assert first.line("S-3", "MUG").returned == 2
    assert first.receive_return("S-3", "MUG", 2, reference="RMA-9").replayed
    second.adjust("MUG", -1, "count")
    assert snapshot(first) == snapshot(second)
    first._check()
    second._check()
    first.close()
    second.close()


def test_the_dict_repository_keeps_it_too() -> None:
    repo = DictRepository()
    policy = PriorityTiers(preempt=True)
    book = BackorderBook(policy, repo, clock=TickingClock())
    book.receive("MUG", 6)
    for n in (1, 2, 3):
        book.place(Order(f"S-{n}", [OrderLine("MUG", 2)]))
    _moves(book)
    again = BackorderBook(policy, repo.reopen())
    assert snapshot(again) == snapshot(book)
