"""Shop controls: backorder caps, fill-by deadlines, checkout holds, tier changes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from backorder import (
    ArgumentTypeError,
    BackorderBook,
    BackorderLimitExceeded,
    DuplicateHold,
    HoldConfirmed,
    HoldExpired,
    HoldReleased,
    InsufficientStock,
    InvalidArgument,
    InvalidOrder,
    InvalidQuantity,
    LineAllocated,
    LineCancelled,
    LineReleased,
    Order,
    OrderExpired,
    OrderLine,
    PartialFill,
    PriorityTiers,
    QuantityTypeError,
    StockHeld,
    StrictFIFO,
    TierChanged,
    UnknownHold,
    UnknownOrder,
    UnknownTier,
)

from .helpers import START, TickingClock, snapshot

MINUTE = timedelta(minutes=1)


def order(order_id: str, *lines: tuple[str, int], **fields: Any) -> Order:
    return Order(order_id, [OrderLine(sku, qty) for sku, qty in lines], **fields)


def refused(book: BackorderBook, error: type[BaseException], call: Callable[[], object]) -> str:
    before = snapshot(book)
    with pytest.raises(error) as caught:
        call()
    assert snapshot(book) == before
    book._check()
    return str(caught.value)


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def book(clock: TickingClock) -> BackorderBook:
    return BackorderBook(PriorityTiers(), clock=clock)


# -- backorder caps ------------------------------------------------------------------


def test_a_cap_refuses_the_whole_order_that_would_pass_it(book: BackorderBook) -> None:
    book.set_backorder_limit("MUG", 5)
    assert book.backorder_limit("MUG") == 5
    book.place(order("ANN", ("MUG", 3)))
    assert book.can_place(order("BOB", ("MUG", 2), ("TEE", 9)))
    assert not book.can_place(order("BOB", ("MUG", 3), ("TEE", 9)))
    message = refused(
        book, BackorderLimitExceeded, lambda: book.place(order("BOB", ("MUG", 3), ("TEE", 9)))
    )
    assert "'MUG'" in message
    assert "3 units" in message
    assert "room for 2" in message
    assert "BOB" not in book
    assert book.stock("TEE").on_hand == 0
    book.place(order("BOB", ("MUG", 2)))
    assert book.backordered("MUG") == 5


def test_a_cap_counts_only_what_stock_on_hand_cannot_fill(book: BackorderBook) -> None:
    book.receive("MUG", 4)
    book.set_backorder_limit("MUG", 0)  # no backorders at all
    assert book.can_place(order("ANN", ("MUG", 4)))
    book.place(order("ANN", ("MUG", 4)))
    assert not book.can_place(order("BOB", ("MUG", 1)))
    book.set_backorder_limit("MUG", None)
    book.place(order("BOB", ("MUG", 1)))
    assert book.backordered("MUG") == 1


def test_can_place_changes_nothing(book: BackorderBook) -> None:
    book.receive("MUG", 2)
    book.place(order("ANN", ("MUG", 5)))
    before = snapshot(book)
    heard: list[object] = []
    book.subscribe(heard.append)
    assert book.can_place(order("BOB", ("MUG", 1), fill_by=date(2027, 1, 1)))
    assert snapshot(book) == before
    assert heard == []


def test_a_cap_below_what_waits_is_refused(book: BackorderBook) -> None:
    book.place(order("ANN", ("MUG", 3)))
    message = refused(book, BackorderLimitExceeded, lambda: book.set_backorder_limit("MUG", 2))
    assert "3 units already backordered" in message
    refused(book, InvalidQuantity, lambda: book.set_backorder_limit("MUG", -1))
    refused(book, QuantityTypeError, lambda: book.set_backorder_limit("MUG", 2.0))  # type: ignore[arg-type]  # the wrong type is the point
    refused(book, QuantityTypeError, lambda: book.set_backorder_limit("MUG", False))
    refused(book, InvalidArgument, lambda: book.set_backorder_limit("", 2))


def test_a_count_correction_may_pass_the_cap_then_new_backorders_wait(
    book: BackorderBook,
) -> None:
    book.set_backorder_limit("MUG", 1)
    book.receive("MUG", 3)
    book.place(order("ANN", ("MUG", 3)))
    book.adjust("MUG", -3, "flood in the warehouse")
    assert book.backordered("MUG") == 3  # the units are gone either way
    assert not book.can_place(order("BOB", ("MUG", 1)))


# -- fill-by deadlines ------------------------------------------------------------------


def test_expire_cancels_the_short_remainder_and_keeps_what_was_filled(
    book: BackorderBook, clock: TickingClock
) -> None:
    book.receive("MUG", 2)
    book.place(order("ANN", ("MUG", 5), fill_by=START + timedelta(hours=1)))
    book.place(order("BOB", ("MUG", 1), fill_by=START + timedelta(hours=3)))
    assert book.expire().expired == ()
    clock.now = START + timedelta(hours=2)
    result = book.expire()
    assert result.expired == ("ANN",)
    line = book.line("ANN", "MUG")
    assert (line.allocated, line.cancelled, line.backordered) == (2, 3, 0)
    assert [type(e) for e in result.events] == [LineCancelled, OrderExpired]
    assert book.expire().expired == ()  # each order expires once
    assert book.position("BOB", "MUG") == 1


def test_expire_cancels_a_ship_complete_order_whole_and_frees_its_stock(
    book: BackorderBook, clock: TickingClock
) -> None:
    book.receive("MUG", 2)
    book.place(order("ANN", ("MUG", 2), ("TEE", 1), ship_complete=True, fill_by=date(2026, 1, 5)))
    book.place(order("BOB", ("MUG", 2)))
    clock.now = datetime(2026, 1, 5, 23, 59, tzinfo=timezone.utc)
    assert book.expire().expired == ()  # a date deadline lasts the whole day (UTC)
    result = book.expire(now=datetime(2026, 1, 6, tzinfo=timezone.utc))
    assert result.expired == ("ANN",)
    assert book.line("ANN", "MUG").cancelled == 2
    assert book.line("ANN", "TEE").cancelled == 1
    assert book.line("BOB", "MUG").allocated == 2  # the freed units went on
    kinds = [e.kind for e in book.ledger.entries("MUG")]
    assert "receipt" not in kinds[1:]
    assert LineReleased in [type(e) for e in result.events]


def test_an_order_filled_in_time_does_not_expire(book: BackorderBook, clock: TickingClock) -> None:
    book.place(order("ANN", ("MUG", 2), fill_by=START + MINUTE))
    book.receive("MUG", 2)
    clock.now = START + timedelta(days=1)
    assert book.expire().expired == ()
    assert book.line("ANN", "MUG").allocated == 2


def test_a_naive_deadline_or_now_is_refused(book: BackorderBook) -> None:
    with pytest.raises(InvalidOrder, match="fill_by"):
        order("ANN", ("MUG", 1), fill_by=datetime(2026, 1, 1))
    with pytest.raises(InvalidOrder, match="fill_by"):
        order("ANN", ("MUG", 1), fill_by="tomorrow")
    refused(book, InvalidArgument, lambda: book.expire(now=datetime(2026, 1, 1)))


def test_expire_looks_only_at_passed_deadlines(book: BackorderBook, clock: TickingClock) -> None:
    for n in range(1000):
        book.place(order(f"O-{n}", ("MUG", 1), fill_by=START + timedelta(days=1 + n)))
    clock.now = START + timedelta(days=3, hours=1)
    assert book.expire().expired == ("O-0", "O-1", "O-2")
    assert len(book._state.deadlines) == 997


def test_an_order_closed_by_shipping_or_cancelling_drops_its_deadline(
    book: BackorderBook, clock: TickingClock
) -> None:
    def deadlines() -> list[str]:
        return [order_id for _, _, order_id in book._state.deadlines]

    book.receive("MUG", 3)
    book.place(order("SHIP", ("MUG", 2), ("CUP", 1), fill_by=START + timedelta(days=1)))
    book.place(order("GONE", ("CUP", 2), fill_by=START + timedelta(days=1)))
    book.ship("SHIP", "MUG")  # its CUP line is still open
    assert deadlines() == ["SHIP", "GONE"]
    book.cancel("GONE", "CUP", 1)  # half of it is still open
    assert deadlines() == ["SHIP", "GONE"]
    book.cancel("SHIP", "CUP")  # nothing of SHIP is open: it is closed
    assert deadlines() == ["GONE"]
    book.cancel("GONE")
    assert deadlines() == []
    book._check()
    # an operation that fails after closing an order keeps its deadline
    book.place(order("LATE", ("MUG", 1), fill_by=START + timedelta(days=2)))
    before = snapshot(book)

    def undone() -> None:
        with book.batch(atomic=True):
            book.ship("LATE")
            assert deadlines() == []
            raise RuntimeError("undo")

    with pytest.raises(RuntimeError):
        undone()
    assert snapshot(book) == before
    assert deadlines() == ["LATE"]
    clock.now = START + timedelta(days=3)
    assert book.expire().expired == ()  # filled in time; its deadline goes
    assert deadlines() == []


# -- checkout holds ----------------------------------------------------------------------


def test_a_hold_reserves_units_and_confirming_it_allocates_the_order(
    book: BackorderBook,
) -> None:
    book.receive("MUG", 5)
    held = book.hold("MUG", 2, ttl=timedelta(minutes=15), hold_id="CHK-1")
    assert held.stock.available == 3
    assert [type(e) for e in held.events] == [StockHeld]
    assert book.ledger.entries("MUG")[-1].kind == "hold"
    result = book.confirm_hold("CHK-1", order("ANN", ("MUG", 2), ("TEE", 1)))
    assert book.line("ANN", "MUG").allocated == 2
    assert book.line("ANN", "TEE").backordered == 1
    assert book.stock("MUG").available == 3
    kinds = [type(e) for e in result.events]
    assert HoldConfirmed in kinds
    assert LineAllocated in kinds
    refused(book, UnknownHold, lambda: book.release_hold("CHK-1"))


def test_confirming_for_more_or_fewer_units_than_held(book: BackorderBook) -> None:
    book.receive("MUG", 4)
    book.hold("MUG", 3, ttl=MINUTE * 10, hold_id="A")
    result = book.confirm_hold("A", order("ANN", ("MUG", 1)))
    assert book.line("ANN", "MUG").allocated == 1
    assert book.stock("MUG").available == 3
    assert HoldReleased in [type(e) for e in result.events]
    book.hold("MUG", 3, ttl=MINUTE * 10, hold_id="B")
    book.confirm_hold("B", order("BOB", ("MUG", 5)))
    line = book.line("BOB", "MUG")
    assert (line.allocated, line.backordered) == (3, 2)


def test_a_hold_never_jumps_the_line() -> None:
    book = BackorderBook(StrictFIFO(), clock=TickingClock())
    book.place(order("BIG", ("MUG", 10)))
    book.receive("MUG", 4)  # the strict head is blocked; 4 available
    message = refused(book, InsufficientStock, lambda: book.hold("MUG", 1, ttl=MINUTE))
    assert "waiting" in message
    book.cancel("BIG")
    book.hold("MUG", 4, ttl=MINUTE)
    refused(book, InsufficientStock, lambda: book.hold("MUG", 1, ttl=MINUTE))


def test_released_and_expired_holds_go_to_the_head_of_the_line(
    book: BackorderBook, clock: TickingClock
) -> None:
    book.receive("MUG", 3)
    book.hold("MUG", 2, ttl=MINUTE, hold_id="A")
    book.hold("MUG", 1, ttl=MINUTE * 30, hold_id="B")
    book.place(order("ANN", ("MUG", 3)))
    assert book.line("ANN", "MUG").allocated == 0
    clock.now = START + MINUTE * 5
    result = book.expire()
    assert result.released_holds == ("A",)
    assert book.line("ANN", "MUG").allocated == 2
    refused(book, HoldExpired, lambda: book.confirm_hold("A", order("X", ("MUG", 2))))
    book.release_hold("B")
    assert book.line("ANN", "MUG").allocated == 3
    kinds = [e.kind for e in book.ledger.entries("MUG")]
    assert kinds.count("receipt") == 1  # released units are never receipts


def test_a_hold_past_its_time_cannot_be_confirmed_even_before_expire(
    book: BackorderBook, clock: TickingClock
) -> None:
    book.receive("MUG", 1)
    book.hold("MUG", 1, ttl=MINUTE, hold_id="A")
    clock.now = START + MINUTE * 2
    refused(book, HoldExpired, lambda: book.confirm_hold("A", order("ANN", ("MUG", 1))))


def test_a_count_correction_takes_held_units_first(book: BackorderBook) -> None:
    book.receive("MUG", 3)
    book.place(order("ANN", ("MUG", 1)))
    book.hold("MUG", 2, ttl=MINUTE, hold_id="A")
    result = book.adjust("MUG", -1, "broken")
    assert result.reclaimed == 1
    assert book.line("ANN", "MUG").allocated == 1
    assert book._state.holds["A"].quantity == 1
    book._check()


def test_bad_holds_are_refused(book: BackorderBook) -> None:
    book.receive("MUG", 3)
    book.hold("MUG", 1, ttl=MINUTE, hold_id="A")
    refused(book, InvalidArgument, lambda: book.hold("MUG", 1, ttl=timedelta(0)))
    refused(book, InvalidArgument, lambda: book.hold("MUG", 1, ttl=-MINUTE))
    refused(book, ArgumentTypeError, lambda: book.hold("MUG", 1, ttl=60))  # type: ignore[arg-type]  # the wrong type is the point
    refused(book, InvalidQuantity, lambda: book.hold("MUG", 0, ttl=MINUTE))
    refused(book, DuplicateHold, lambda: book.hold("MUG", 1, ttl=MINUTE, hold_id="A"))
    refused(book, InsufficientStock, lambda: book.hold("MUG", 3, ttl=MINUTE))
    refused(book, InsufficientStock, lambda: book.hold("NEW", 1, ttl=MINUTE))
    refused(book, UnknownHold, lambda: book.release_hold("NOPE"))
    refused(book, UnknownHold, lambda: book.confirm_hold("NOPE", order("X", ("MUG", 1))))
    refused(book, InvalidOrder, lambda: book.confirm_hold("A", order("X", ("TEE", 1))))
    book.place(order("ANN", ("TEE", 1)))
    refused(book, Exception, lambda: book.confirm_hold("A", order("ANN", ("MUG", 1))))
    assert book.hold("MUG", 1, ttl=MINUTE).hold_id.startswith("H-")


# -- tier changes --------------------------------------------------------------------------


def test_change_tier_keeps_the_arrival_number(book: BackorderBook) -> None:
    book.place(order("S-1", ("MUG", 1)))
    book.place(order("V-1", ("MUG", 1), tier="vip"))
    book.place(order("S-2", ("MUG", 1)))
    book.place(order("V-2", ("MUG", 1), tier="vip"))
    result = book.change_tier("S-2", "vip")
    assert [ln.order_id for ln in book.waiting("MUG")] == ["V-1", "S-2", "V-2", "S-1"]
    assert [type(e) for e in result.events] == [TierChanged]
    assert book.status("S-2").order.tier == "vip"
    book.change_tier("S-2", "standard")
    assert [ln.order_id for ln in book.waiting("MUG")] == ["V-1", "V-2", "S-1", "S-2"]
    assert book.change_tier("S-2", "standard").events == ()


def test_a_line_moved_up_is_served_from_stock_that_waited() -> None:
    book = BackorderBook(PriorityTiers(fill=StrictFIFO()), clock=TickingClock())
    book.place(order("BIG", ("MUG", 5)))
    book.place(order("SMALL", ("MUG", 2)))
    book.receive("MUG", 3)  # BIG blocks SMALL
    book.change_tier("SMALL", "vip")
    assert book.line("SMALL", "MUG").allocated == 2
    book._check()


def test_bad_tier_changes_are_refused(book: BackorderBook) -> None:
    book.place(order("ANN", ("MUG", 1)))
    refused(book, UnknownTier, lambda: book.change_tier("ANN", "gold"))
    refused(book, UnknownOrder, lambda: book.change_tier("NOPE", "vip"))
    refused(book, InvalidArgument, lambda: book.change_tier("ANN", ""))


def test_change_tier_under_a_policy_without_tiers_only_relabels() -> None:
    book = BackorderBook(PartialFill(), clock=TickingClock())
    book.place(order("A", ("MUG", 1)))
    book.place(order("B", ("MUG", 1)))
    book.change_tier("B", "vip")
    assert [ln.order_id for ln in book.waiting("MUG")] == ["A", "B"]
    assert book.line("B", "MUG").tier == "vip"


def test_a_line_short_again_after_its_deadline_expires_at_the_next_expire(
    book: BackorderBook, clock: TickingClock
) -> None:
    book.receive("MUG", 1)
    book.place(order("ANN", ("MUG", 1), fill_by=START + MINUTE))
    clock.now = START + MINUTE * 2
    assert book.expire().expired == ()  # filled in time
    book.adjust("MUG", -1, "dropped")  # ... and then the unit broke
    assert book.line("ANN", "MUG").backordered == 1
    assert book.expire().expired == ("ANN",)
    assert book.line("ANN", "MUG").cancelled == 1
