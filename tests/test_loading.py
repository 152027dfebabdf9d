"""Lazy SKU loads are bounded by the open lines: history is read when asked for."""

from __future__ import annotations

import contextlib
import gc
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backorder import (
    BackorderBook,
    CannotCancel,
    DuplicateOrder,
    DuplicateReceipt,
    InvalidArgument,
    Order,
    OrderLine,
    PartialFill,
    SQLiteRepository,
    UnknownOrder,
)
from backorder._stored import order_text, stored_order, stored_orders, text_order
from backorder.errors import BackorderError, StorageCorrupted
from backorder.storage.mapping import state_of_parts

from .helpers import START, TickingClock, snapshot
from .strategies import orders

CLOSED = 60  # closed lines of MUG: 30 shipped, 30 cancelled
OPEN = 7


def _history(path: Path) -> dict[str, object]:
    # MUG: a long closed history, then a few waiting lines; one order spans
    # MUG (closed) and CUP (open); one return counted on a shipped line.
    book = BackorderBook(PartialFill(), SQLiteRepository(path), clock=TickingClock())
    with book.batch():
        for n in range(CLOSED):
            book.place(Order(f"H-{n}", [OrderLine("MUG", 2)]))
            if n % 2:
                book.cancel(f"H-{n}")
            else:
                book.receive("MUG", 2, reference=f"PO-{n}")
                book.ship(f"H-{n}")
        book.place(Order("MIX", [OrderLine("MUG", 1), OrderLine("CUP", 3)]))
        book.receive("MUG", 1, reference="PO-MIX")
        book.ship("MIX", "MUG")
        for n in range(OPEN):
            book.place(Order(f"W-{n}", [OrderLine("MUG", 1)]))
    book.receive_return("H-0", "MUG", 1, reference="RMA-1")
    before = snapshot(book)
    book.close()
    return before


def test_a_sku_load_reads_its_open_lines_not_its_history(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _history(path)
    repo = SQLiteRepository(path)
    book = BackorderBook(PartialFill(), repo, clock=TickingClock())
    assert book.position("W-3", "MUG") == 3  # loads MUG (W-0 got the returned unit)
    assert repo.rows_read["lines"] == OPEN  # MIX's MUG line is closed: not read
    assert repo.rows_read["orders"] == OPEN
    assert repo.rows_read["ledger"] == 1  # the last entry: the balance to go on from
    assert sorted(book.inspect().loaded_orders()) == [f"W-{n}" for n in range(OPEN)]
    book.inspect().check()
    book.place(Order("W-new", [OrderLine("MUG", 1)]))
    assert book.position("W-new", "MUG") == OPEN
    book.inspect().check()
    book.close()


def test_a_sku_load_reads_other_lines_only_of_orders_that_may_have_them(tmp_path: Path) -> None:
    # The open lines come with their orders in one pass; the other lines of
    # those orders are looked for only where an order's stored text may list
    # several (one of one line on a SKU with a comma in it may: looked for,
    # none found).
    path = tmp_path / "book.db"
    book = BackorderBook(PartialFill(), SQLiteRepository(path), clock=TickingClock())
    for n in range(5):
        book.place(Order(f"ONE-{n}", [OrderLine("MUG", 1)]))
    book.place(Order("COMMA", [OrderLine("MUG", 2)]))
    book.place(Order("ODD", [OrderLine("MUG,RED", 1)]))
    book.place(Order("TWO", [OrderLine("MUG", 1), OrderLine("CUP", 2)]))
    book.place(Order("THREE", [OrderLine("PAN", 1), OrderLine("MUG", 1), OrderLine("MUG,RED", 3)]))
    before = snapshot(book)
    book.close()
    repo = SQLiteRepository(path)
    book = BackorderBook(PartialFill(), repo, clock=TickingClock())
    assert len(book.waiting("MUG")) == 8  # loads MUG
    assert repo.rows_read["orders"] == 8
    assert repo.rows_read["lines"] == 8 + 1 + 2  # MUG's, TWO's CUP, THREE's PAN and MUG,RED
    assert [line.order_id for line in book.waiting("MUG,RED")] == ["ODD", "THREE"]
    assert repo.rows_read["orders"] == 8 + 2
    # MUG,RED's two, and THREE's other two again: ODD was looked for, none came
    assert repo.rows_read["lines"] == 11 + 2 + 2
    assert book.status("THREE").lines[2].backordered == 3
    book.inspect().check()
    assert snapshot(book) == before
    book.close()


def test_a_closed_order_reads_exactly_as_before(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    before = _history(path)
    statuses = {status.order.id: status for status in before["orders"]}  # type: ignore[attr-defined]
    repo = SQLiteRepository(path)
    book = BackorderBook(PartialFill(), repo, clock=TickingClock())
    book.waiting("MUG")
    read = repo.rows_read["lines"]
    for order_id in ("H-0", "H-1", "H-58", "H-59"):  # shipped, cancelled
        assert book.status(order_id) == statuses[order_id]
        assert book.line(order_id, "MUG") == statuses[order_id].lines[0]
        assert order_id in book
    assert repo.rows_read["lines"] == read + 4  # each read once, by id
    assert book.status("MIX") == statuses["MIX"]  # loads CUP: MIX's open line
    assert book.position("H-0", "MUG") is None
    assert book.eta("H-1", "MUG") is None
    assert "H-999" not in book
    with pytest.raises(UnknownOrder):
        book.status("H-999")
    book.inspect().check()
    assert snapshot(book) == before  # everything else: the whole book, as before
    book.close()


def test_operations_on_closed_orders_behave_as_on_a_whole_book(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _history(path)
    eager = tmp_path / "eager.db"
    eager.write_bytes(path.read_bytes())
    outcomes = []
    for repo in (SQLiteRepository(path), SQLiteRepository(eager, lazy=False)):
        book = BackorderBook(PartialFill(), repo, clock=TickingClock())
        seen: list[object] = []
        for name, args in (
            ("receive_return", ("H-2", "MUG", 2, "RMA-2")),
            ("receive_return", ("H-0", "MUG", 1, "RMA-1")),  # counted
            ("cancel", ("H-4",)),  # shipped: nothing left to cancel
            ("change_tier", ("H-3", "vip")),
            ("receive", ("MUG", 2, "PO-0")),  # counted already
            ("receive", ("MUG", 3, "PO-0")),
        ):
            try:
                seen.append(getattr(book, name)(*args))
            except BackorderError as exc:
                seen.append((type(exc), str(exc)))
        book.inspect().check()
        outcomes.append((seen, snapshot(book)))
        book.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0][-1] == (DuplicateReceipt, outcomes[1][0][-1][1])  # type: ignore[index]


@pytest.mark.parametrize("lazy", [True, False])
def test_a_deadline_goes_with_its_order_when_it_closes_lazy_or_whole(
    tmp_path: Path, lazy: bool
) -> None:
    # A lazy book does not hold closed orders: a deadline kept for one (as
    # before the order's close dropped it) was never acted on there, while a
    # whole book dropped it at the next expire. Now it goes when the order
    # closes, in every book alike, and one left by an older version is ignored.
    path = tmp_path / "book.db"
    now = [START]

    def clock() -> datetime:
        return now[0]

    twin = BackorderBook(clock=clock)
    book = BackorderBook(repository=SQLiteRepository(path, lazy=lazy), clock=clock)
    for each in (twin, book):
        each.place(Order("O-0", [OrderLine("MUG", 1)], fill_by=START + timedelta(hours=1)))
        each.receive("MUG", 1)
        each.place(Order("O-1", [OrderLine("MUG", 1)], fill_by=START + timedelta(hours=1)))
        each.ship("O-0")
    book.close()
    now[0] = START + timedelta(hours=2)
    book = BackorderBook(repository=SQLiteRepository(path, lazy=lazy), clock=clock)
    assert book.expire().expired == twin.expire().expired == ("O-1",)
    book.close()
    with BackorderBook(repository=SQLiteRepository(path, lazy=lazy), clock=clock) as again:
        assert snapshot(again) == snapshot(twin)
    with contextlib.closing(sqlite3.connect(path)) as conn:  # both rows are kept as gone
        assert sorted(conn.execute("SELECT order_id, gone FROM deadlines")) == [
            ("O-0", 1),
            ("O-1", 1),
        ]
        # as an older version left it: the closed order's deadline still live
        with conn:
            conn.execute("UPDATE deadlines SET gone = 0 WHERE order_id = 'O-0'")
    for lazy_again in (True, False):
        repo = SQLiteRepository(path, lazy=lazy_again)
        assert repo.due("2100-01-01T00:00:00+00:00") == []
        with BackorderBook(repository=repo, clock=clock) as again:
            assert again.expire().expired == ()
            assert snapshot(again) == snapshot(twin)
            again.inspect().check()


@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize("lazy", [True, False])
def test_a_copy_catches_up_with_a_hold_id_used_again_on_another_sku(
    tmp_path: Path, batch: bool, lazy: bool
) -> None:
    # H-2 expires on CAP and is used again on MUG, all unseen by the other
    # handle: catching up moves the hold, it does not update it in place
    path = tmp_path / "book.db"
    now = [START]

    def clock() -> datetime:
        return now[0]

    writer = BackorderBook(repository=SQLiteRepository(path), clock=clock)
    reader = BackorderBook(repository=SQLiteRepository(path, lazy=lazy), clock=clock)
    writer.receive("CAP", 5)
    writer.receive("MUG", 5)
    writer.hold("CAP", 4, timedelta(minutes=10), "H-2")
    assert reader.stock("CAP").allocated == reader.stock("MUG").allocated + 4 == 4
    now[0] = START + timedelta(hours=1)
    with writer.batch() if batch else contextlib.nullcontext():
        assert writer.expire().released_holds == ("H-2",)
        writer.hold("MUG", 2, timedelta(minutes=10), "H-2")
    assert (reader.stock("CAP").allocated, reader.stock("MUG").allocated) == (0, 2)
    reader.inspect().check()
    assert snapshot(reader) == snapshot(writer)
    reader.release_hold("H-2")  # the hold it now holds is the one on MUG
    assert reader.stock("MUG").allocated == 0
    writer.close()
    reader.close()


@pytest.mark.parametrize("lazy", [True, False])
def test_a_copy_catches_up_with_a_reference_scheduled_again_on_another_sku(
    tmp_path: Path, lazy: bool
) -> None:
    # PO-1 is cancelled on MUG and scheduled again on CAP, unseen by the
    # other handle (which holds MUG, and CAP only when loaded whole): MUG's
    # waiting order no longer counts on it
    path = tmp_path / "book.db"
    writer = BackorderBook(repository=SQLiteRepository(path), clock=TickingClock())
    reader = BackorderBook(repository=SQLiteRepository(path, lazy=lazy), clock=TickingClock())
    writer.place(Order("W-1", [OrderLine("MUG", 2)]))
    writer.expect("MUG", 5, START + timedelta(days=2), "PO-1")
    assert reader.eta_for_order("W-1") is not None
    writer.cancel_expected("PO-1")
    writer.expect("CAP", 5, START + timedelta(days=3), "PO-1")
    assert reader.eta_for_order("W-1") == writer.eta_for_order("W-1")
    reader.inspect().check()
    reader.cancel_expected("PO-1")  # the one it holds now is CAP's
    assert writer.eta_for_order("W-1") == reader.eta_for_order("W-1")
    writer.close()
    reader.close()


def test_reopening_restores_exactly_the_same_book(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    before = _history(path)
    with BackorderBook.open(path, PartialFill()) as book:
        assert book.status("W-0").lines[0].allocated == 1
        assert book.status("H-0").lines[0].returned == 1
        assert snapshot(book) == before
    with BackorderBook(PartialFill(), SQLiteRepository(path, lazy=False)) as book:
        assert snapshot(book) == before


def test_a_copy_catches_up_with_changes_to_closed_orders_it_does_not_hold(
    tmp_path: Path,
) -> None:
    path = tmp_path / "book.db"
    _history(path)
    first = BackorderBook.open(path, PartialFill(), clock=TickingClock())
    second = BackorderBook.open(path, PartialFill(), clock=TickingClock())
    first.waiting("MUG")
    second.waiting("MUG")
    second.receive_return("H-6", "MUG", 1, reference="RMA-6")
    second.change_tier("H-7", "vip")
    second.place(Order("W-late", [OrderLine("MUG", 1)]))
    assert first.waiting("MUG") == second.waiting("MUG")  # caught up
    assert first.position("W-late", "MUG") == len(second.waiting("MUG"))
    assert "H-6" not in first.inspect().loaded_orders()
    assert first.status("H-6") == second.status("H-6")
    assert first.status("H-6").lines[0].returned == 1
    assert first.status("H-7").order.tier == "vip"
    first.inspect().check()
    assert first.inspect().reloads == 0
    assert snapshot(first) == snapshot(second)
    first.close()
    second.close()


def test_the_ledger_is_read_whole_when_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    before = _history(path)
    book = BackorderBook.open(path, PartialFill(), clock=TickingClock())
    book.receive("MUG", 1, reference="PO-late")  # the next entry goes on from the last read
    book.inspect().check()  # replays the entries held from the balance before the first
    ledger = book.ledger  # the whole book: every entry
    ledger.verify()
    earlier = before["ledger"]
    assert isinstance(earlier, list)
    assert list(ledger)[: len(earlier)] == earlier
    assert [entry.kind for entry in list(ledger)[len(earlier) :]] == [
        "receipt",
        "allocation",
    ]
    assert len(ledger) == before["ledger_len"] + 2  # type: ignore[operator]
    book.close()


@settings(max_examples=200, deadline=None)
@given(orders("A-1"), st.sampled_from(["vip", "a b", 'q"uote', "é"]))
def test_the_trusted_decoder_reads_what_the_full_decoder_reads(order: Order, tier: str) -> None:
    for each in (order, Order(order.id, order.lines, tier, placed_at=order.placed_at)):
        if each.placed_at is None:
            continue
        text = order_text(each)
        names: dict[str, str] = {}
        got = stored_order(each.id, text, names)
        want = text_order(text, each.id)
        assert want == each
        assert got == want
        (batched,) = stored_orders([each.id], [text], {})
        assert batched == want
        assert repr(batched) == repr(want)
        assert type(batched.metadata) is type(want.metadata)
        assert repr(got) == repr(want)
        assert got.placed_at is not None
        assert want.placed_at is not None
        assert got.placed_at.utcoffset() == want.placed_at.utcoffset()
        assert type(got.metadata) is type(want.metadata)


@pytest.mark.parametrize(
    "text",
    [
        '{"id":"","lines":[{"sku":"X","quantity":1}],"tier":"standard","ship_complete":false,'
        '"placed_at":"2026-01-01T00:00:00+00:00","metadata":{},"fill_by":null}',
        '{"id":"a","lines":[{"sku":"X","quantity":0}],"tier":"standard","ship_complete":false,'
        '"placed_at":"2026-01-01T00:00:00+00:00","metadata":{},"fill_by":null}',
        '{"id":"a","lines":[{"sku":"X","quantity":1}],"tier":" ","ship_complete":false,'
        '"placed_at":"2026-01-01T00:00:00+00:00","metadata":{},"fill_by":null}',
        '{"id":"a","lines":[{"sku":"X","quantity":99999999999999999999}],"tier":"s",'
        '"ship_complete":false,"placed_at":"2026-01-01T00:00:00+00:00","metadata":{},'
        '"fill_by":null}',
        '{"id":"a","lines":[{"sku":"X","quantity":1}],"tier":"s","ship_complete":false,'
        '"placed_at":"2026-02-30T00:00:00+00:00","metadata":{},"fill_by":null}',
        '{"id":"a","lines":[{"sku":"X","quantity":1},{"sku":"X","quantity":2}],"tier":"s",'
        '"ship_complete":false,"placed_at":"2026-01-01T00:00:00+00:00","metadata":{},'
        '"fill_by":null}',
        '{"id":"a","lines":[{"sku":"X","quantity":1}],"tier":"s","ship_complete":0,'
        '"placed_at":"2026-01-01T00:00:00","metadata":{},"fill_by":null}',
        '{"id":"a","lines":[{"sku":"X","quantity":1}],"tier":"s","ship_complete":false,'
        '"placed_at":"2026-01-01T00:00:00","metadata":{},"fill_by":null}',
        "not json",
    ],
)
def test_the_trusted_decoder_refuses_what_the_full_decoder_refuses(text: str) -> None:
    # (the public form earlier versions stored: it carries its own id)
    with pytest.raises(BackorderError) as full:
        text_order(text, "a")
    with pytest.raises(type(full.value)):
        stored_order("a", text, {})
    with pytest.raises(type(full.value)):
        stored_orders(["a"], [text], {})


@pytest.mark.parametrize(
    ("order_id", "text"),
    [
        ("", '[1,"X",1]'),
        (" ", '[1,"X",1]'),
        ("a", '[1,"X",0]'),
        ("a", '[1," ",1]'),
        ("a", '[1,"X",99999999999999999999]'),
        ("a", '[1,"X",9223372036854775808]'),
        ("a", '[1,"X",true]'),
        ("a", '[1,"X",1,"X",2]'),
        ("a", '[1,"X"]'),
        ("a", '[1,"X",1,"Y"]'),
        ("a", "[1]"),
        ("a", '[99999999999999999999,"X",1]'),
        ("a", '["2026-01-01T00:00:00","X",1]'),
        ("a", '["2026-02-30T00:00:00+00:00","X",1]'),
        ("a", '[1,"X",1,{"t":" "}]'),
        ("a", '[1,"X",1,{"c":1}]'),
        ("a", '[1,"X",1,{"z":1}]'),
        ("a", '[1,"X",1,{"m":[]}]'),
        ("a", '[1,"X",1,{"m":{"k":1}}]'),
        ("a", '[1,"X",1,{"f":"2027-02-30"}]'),
        ("a", '{"x":1}'),
        ("a", "[1,"),
    ],
)
def test_the_trusted_decoder_refuses_compact_texts_the_full_decoder_refuses(
    order_id: str, text: str
) -> None:
    with pytest.raises(BackorderError) as full:
        text_order(text, order_id)
    with pytest.raises(type(full.value)):
        stored_order(order_id, text, {})
    with pytest.raises(type(full.value)):  # (after a good order: the one-pass loop)
        stored_orders(["ok", order_id], ['[1,"X",1]', text], {})


def test_the_one_pass_decoder_shares_one_lines_tuple_per_sku_and_quantity() -> None:
    names: dict[str, str] = {}
    texts = ['[1,"X",2]', '[2,"X",2]', '[3,"X",3]', '[4,"Y",2]', '[5,"X",2,"Y",1]']
    got = stored_orders(["a", "b", "c", "d", "e"], texts, names)
    assert got == [text_order(text, i) for i, text in zip("abcde", texts, strict=True)]
    assert got[0].lines is got[1].lines  # X x 2: one tuple, one OrderLine
    assert got[2].lines is not got[0].lines
    assert got[0].lines[0].sku is got[2].lines[0].sku is got[4].lines[0].sku  # one name
    assert got[3].lines[0].sku is got[4].lines[1].sku
    assert [order.placed_at for order in got] == [text_order(t, "a").placed_at for t in texts]


def test_receipt_references_are_checked_when_a_receipt_names_one(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _history(path)
    repo = SQLiteRepository(path)
    book = BackorderBook(PartialFill(), repo, clock=TickingClock())
    book.waiting("MUG")
    assert repo.rows_read["receipts"] == 0  # 31 counted on MUG: history, not loaded
    assert book.receive("MUG", 2, reference="PO-10").replayed  # counted: a retry
    with pytest.raises(DuplicateReceipt, match="quantity 2, not 5"):
        book.receive("MUG", 5, reference="PO-10")
    assert not book.receive("MUG", 1, reference="PO-new").replayed
    assert book.receive("MUG", 1, reference="PO-new").replayed
    assert repo.rows_read["receipts"] == 1  # PO-10, read once
    book.inspect().check()
    book.close()
    with BackorderBook(PartialFill(), SQLiteRepository(path, lazy=False)) as whole:
        assert whole.receive("MUG", 1, reference="PO-new").replayed


def test_an_order_placed_and_closed_by_another_book_stays_history_until_named(
    tmp_path: Path,
) -> None:
    # (found by the contract's thorough run) a copy holding MUG through a hold
    # catches up with an order placed and cancelled elsewhere on MUG and CUP:
    # the order is history; naming it reads it whole, its lines in their SKUs
    path = tmp_path / "book.db"
    with (
        BackorderBook.open(path, PartialFill(), clock=TickingClock()) as first,
        BackorderBook.open(path, PartialFill(), clock=TickingClock()) as second,
    ):
        first.receive("MUG", 1)
        first.hold("MUG", 1, timedelta(minutes=10), "H-1")
        second.place(Order("O-0", [OrderLine("MUG", 1), OrderLine("CUP", 1)]))
        second.cancel("O-0")
        with pytest.raises(CannotCancel):
            first.cancel("O-0")
        first.inspect().check()
        assert first.status("O-0") == second.status("O-0")


def test_a_held_orders_closed_line_joins_its_sku_when_that_sku_loads(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    with BackorderBook.open(path, PartialFill(), clock=TickingClock()) as book:
        book.place(Order("O", [OrderLine("MUG", 1), OrderLine("CUP", 1)]))
        book.cancel("O", "CUP")
        before = book.status("O")
    with BackorderBook.open(path, PartialFill(), clock=TickingClock()) as book:
        book.waiting("MUG")  # holds O, its CUP line a stub
        book.inspect().check()
        book.waiting("CUP")  # CUP's load brings open lines only
        book.inspect().check()
        assert book.status("O") == before


def test_a_copy_that_started_on_an_empty_file_asks_the_file_only_after_another_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lazy copy that started where no order was ever placed, and has seen
    # no commit but its own, holds every stored order: an id it does not
    # hold is new, and `locate` is not asked. Once another writer commits,
    # it asks again, so an order placed elsewhere is found.
    path = tmp_path / "book.db"
    asked: list[list[str]] = []
    real = SQLiteRepository.locate

    def locate(self: SQLiteRepository, order_ids: list[str], refs: list[str]) -> list[str]:
        asked.append(list(order_ids))
        return real(self, order_ids, refs)

    monkeypatch.setattr(SQLiteRepository, "locate", locate)
    first = BackorderBook(PartialFill(), SQLiteRepository(path), clock=TickingClock())
    with first.batch():
        for n in range(50):
            first.place(Order(f"A-{n}", [OrderLine("MUG", 1)]))
    first.cancel("A-3")
    first.place(Order("B-1", [OrderLine("CUP", 1)]))
    assert asked == []
    with pytest.raises(DuplicateOrder):
        first.place(Order("A-3", [OrderLine("LAMP", 1)]))  # held by the copy
    other = BackorderBook(PartialFill(), SQLiteRepository(path), clock=TickingClock())
    assert other.line("A-1", "MUG").ordered == 1  # (a copy of a file with orders asks)
    other.place(Order("C-1", [OrderLine("LAMP", 2)]))
    asked.clear()
    with pytest.raises(DuplicateOrder):  # on a SKU the first copy never loaded
        first.place(Order("C-1", [OrderLine("MUG", 2)]))
    assert asked == [["C-1"]]
    assert first.place(Order("C-1", [OrderLine("LAMP", 2)])).replayed
    first.place(Order("D-1", [OrderLine("MUG", 1)]))  # new: asked again, found nowhere
    assert asked[-1] == ["D-1"]
    assert other.position("D-1", "MUG") == 50  # after the 49 A-orders still waiting
    first.close()
    other.close()


def _everything(path: Path) -> dict[str, object]:
    # `_history`'s book with something in every table a whole load reads in
    # its last part: a hold, a scheduled receipt, a fill-by deadline, and
    # orders of several lines (on SKUs named out of order) placed late.
    _history(path)
    book = BackorderBook(PartialFill(), SQLiteRepository(path), clock=TickingClock())
    book.receive("PAN", 2, reference="PO-PAN")
    book.hold("PAN", 1, timedelta(hours=1), hold_id="CHK-1")
    book.expect("CUP", 5, START + timedelta(days=3), reference="PO-CUP")
    book.place(Order("LATE", [OrderLine("PAN", 3)], fill_by=START + timedelta(days=9)))
    for n in range(5):
        book.place(Order(f"M-{n}", [OrderLine("CUP", 1), OrderLine("MUG", 1), OrderLine("BOX", 2)]))
    before = snapshot(book)
    book.close()
    return before


@pytest.mark.parametrize("size", [1, 2, 3, 7, 20_000])
def test_a_whole_load_in_parts_makes_the_same_book(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    path = tmp_path / "book.db"
    before = _everything(path)
    repo = SQLiteRepository(path, lazy=False)
    parts = list(repo.load_parts(size))
    whole = repo.load()
    repo.close()
    # the first part: SKUs, counters and the policy; the last: everything else
    assert parts[0].skus == whole.skus
    assert not parts[0].orders
    assert not parts[0].lines
    assert parts[0].policy == whole.policy
    assert parts[0].counters == whole.counters
    assert [row for part in parts for row in part.orders] == list(whole.orders)  # arrival order
    assert sorted(row for part in parts for row in part.lines) == sorted(whole.lines)
    assert parts[-1].ledger == whole.ledger
    assert parts[-1].holds == whole.holds
    assert parts[-1].expected == whole.expected
    assert parts[-1].deadlines == whole.deadlines
    assert parts[-1].receipts == whole.receipts
    assert parts[-1].returns == whole.returns
    seen: set[str] = set()
    for part in parts[1:-1]:
        assert 1 <= len(part.orders) <= size
        seen.update(row.order_id for row in part.orders)
        # each part holds every line of its orders, and only lines of orders come so far
        assert {row.order_id for row in part.lines} <= seen
        for row in part.orders:
            assert {line.sku for line in part.lines if line.order_id == row.order_id}
    assert len(parts) == 2 + -(-len(whole.orders) // size)
    assert not parts[-1].lines  # (no line without its order)
    # a book loading everything (eagerly, or a lazy one asked for the whole
    # book) reads it in parts of this size: the same book
    monkeypatch.setattr(SQLiteRepository.load_parts, "__defaults__", (size,))
    with BackorderBook(PartialFill(), SQLiteRepository(path, lazy=False)) as book:
        assert snapshot(book) == before
    with BackorderBook.open(path, PartialFill()) as book:
        assert snapshot(book) == before


def test_a_whole_load_in_parts_ends_its_read_when_dropped(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _everything(path)
    repo = SQLiteRepository(path, lazy=False)
    parts = repo.load_parts(2)
    next(parts)
    next(parts)
    conn = repo._conn
    assert conn is not None
    assert conn.in_transaction
    parts.close()
    assert not conn.in_transaction
    with pytest.raises(InvalidArgument, match="size must be a positive int, got 0"):
        next(repo.load_parts(0))
    assert not conn.in_transaction
    repo.close()


def test_a_line_without_its_order_fails_a_load_in_parts(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _everything(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = OFF")  # (damage: the order's row goes, its lines stay)
    conn.execute("DELETE FROM orders WHERE order_id = 'M-2'")
    conn.close()
    for size in (1, 2, 20_000):
        repo = SQLiteRepository(path, lazy=False)
        parts = repo.load_parts(size)
        with pytest.raises(StorageCorrupted, match="M-2"):
            state_of_parts(parts)
        parts.close()  # (the read ends)
        assert repo._conn is not None
        assert not repo._conn.in_transaction
        repo.close()
    repo = SQLiteRepository(path, lazy=False)
    with pytest.raises(StorageCorrupted, match="M-2"):
        BackorderBook(PartialFill(), repo)
    repo.close()


@pytest.mark.parametrize("lazy", [False, True])
def test_an_order_of_one_line_stored_at_another_rank_than_its_line_fails_a_load(
    tmp_path: Path, lazy: bool
) -> None:
    # An order of one line is kept as its line (its rank is the line's key):
    # the order row's rank is checked against the line's as the line is read.
    path = tmp_path / "book.db"
    _everything(path)
    conn = sqlite3.connect(path, isolation_level=None)
    assert conn.execute("SELECT rank FROM orders WHERE order_id = 'LATE'").fetchone() == (0,)
    conn.execute("UPDATE orders SET rank = 3 WHERE order_id = 'LATE'")
    conn.close()
    repo = SQLiteRepository(path, lazy=lazy)

    def load() -> None:  # (a lazy book loads PAN at once too: a hold is live on it)
        BackorderBook(PartialFill(), repo).status("LATE")

    with pytest.raises(StorageCorrupted, match="LATE"):
        load()
    repo.close()


def test_a_long_line_reads_the_same_with_the_collector_paused_and_restored() -> None:
    book = BackorderBook(PartialFill(), clock=TickingClock())
    for n in range(1_200):  # (past the length read with the collector paused)
        book.place(Order(f"L-{n}", [OrderLine("MUG", 1 + n % 3)]))
    expected = tuple(book.status(f"L-{n}").lines[0] for n in range(1_200))  # arrival order
    assert gc.isenabled()
    assert book.waiting("MUG") == expected
    assert gc.isenabled()  # (on again after the read)
    gc.disable()
    try:
        assert book.waiting("MUG") == expected
        assert not gc.isenabled()  # (a collector paused by the caller stays paused)
    finally:
        gc.enable()
