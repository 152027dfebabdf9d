"""The stories a shop owner tells, one example test each, for every operation."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backorder import (
    BackorderBook,
    LineAllocated,
    LineBackordered,
    LineCancelled,
    LineReleased,
    LineShipped,
    Order,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    PartialFill,
    PriorityTiers,
    StockAdjusted,
    StockReceived,
    StrictFIFO,
)

from .helpers import START, TickingClock


def order(order_id: str, *lines: tuple[str, int], **fields: object) -> Order:
    return Order(order_id, [OrderLine(sku, qty) for sku, qty in lines], **fields)  # type: ignore[arg-type]  # test shorthand


@pytest.fixture
def book() -> BackorderBook:
    return BackorderBook(PartialFill(), clock=TickingClock())


def test_the_earlier_customer_is_served_first(book: BackorderBook) -> None:
    book.place(order("ANN", ("MUG", 1)))
    book.place(order("BOB", ("MUG", 1)))
    assert [ln.order_id for ln in book.waiting("MUG")] == ["ANN", "BOB"]
    assert book.position("ANN", "MUG") == 1
    assert book.position("BOB", "MUG") == 2
    result = book.receive("MUG", 1, reference="GRN-1")
    assert book.line("ANN", "MUG").allocated == 1
    assert book.line("BOB", "MUG").backordered == 1
    assert book.position("ANN", "MUG") is None
    assert book.position("BOB", "MUG") == 1
    assert [type(e) for e in result.events] == [StockReceived, LineAllocated]


def test_an_order_in_stock_is_allocated_at_once(book: BackorderBook) -> None:
    book.receive("MUG", 5)
    result = book.place(order("ANN", ("MUG", 2)))
    assert result.lines[0].allocated == 2
    assert result.lines[0].backordered == 0
    assert book.stock("MUG").available == 3
    assert [type(e) for e in result.events] == [OrderPlaced, LineAllocated]


def test_place_stamps_placed_at_from_the_clock(book: BackorderBook) -> None:
    placed = book.place(order("ANN", ("MUG", 1))).order
    assert placed.placed_at is not None
    assert placed.placed_at > START
    given = datetime(2026, 3, 1, tzinfo=timezone.utc)
    kept = book.place(order("BOB", ("MUG", 1), placed_at=given)).order
    assert kept.placed_at == given


def test_a_vip_placed_later_is_served_before_standard_orders() -> None:
    book = BackorderBook(PriorityTiers(), clock=TickingClock())
    book.place(order("STD-1", ("MUG", 2)))
    book.place(order("STD-2", ("MUG", 2)))
    book.place(order("VIP-1", ("MUG", 2), tier="vip"))
    book.place(order("VIP-2", ("MUG", 2), tier="vip"))
    assert [ln.order_id for ln in book.waiting("MUG")] == ["VIP-1", "VIP-2", "STD-1", "STD-2"]
    book.receive("MUG", 5)
    assert book.line("VIP-1", "MUG").allocated == 2
    assert book.line("VIP-2", "MUG").allocated == 2
    assert book.line("STD-1", "MUG").allocated == 1
    assert book.line("STD-2", "MUG").allocated == 0


def test_a_contract_order_goes_before_a_vip() -> None:
    book = BackorderBook(PriorityTiers(), clock=TickingClock())
    book.place(order("VIP", ("MUG", 1), tier="vip"))
    book.place(order("CON", ("MUG", 1), tier="contract"))
    assert book.position("CON", "MUG") == 1
    assert book.position("VIP", "MUG") == 2


def test_strict_fifo_a_big_order_at_the_head_blocks_smaller_ones() -> None:
    book = BackorderBook(StrictFIFO(), clock=TickingClock())
    book.place(order("BIG", ("MUG", 10)))
    book.place(order("SMALL", ("MUG", 1)))
    book.receive("MUG", 4)
    assert book.line("BIG", "MUG").allocated == 0
    assert book.line("SMALL", "MUG").allocated == 0
    assert book.stock("MUG").available == 4
    book.receive("MUG", 7)
    assert book.line("BIG", "MUG").allocated == 10
    assert book.line("SMALL", "MUG").allocated == 1
    assert book.stock("MUG").available == 0


def test_partial_fill_the_big_head_takes_what_arrives(book: BackorderBook) -> None:
    book.place(order("BIG", ("MUG", 10)))
    book.place(order("SMALL", ("MUG", 1)))
    book.receive("MUG", 4)
    assert book.line("BIG", "MUG").allocated == 4
    assert book.line("SMALL", "MUG").allocated == 0
    assert book.position("BIG", "MUG") == 1


def test_tiers_with_strict_fill_block_within_the_tier_order() -> None:
    book = BackorderBook(PriorityTiers(fill=StrictFIFO()), clock=TickingClock())
    book.place(order("STD", ("MUG", 1)))
    book.place(order("VIP", ("MUG", 5), tier="vip"))
    book.receive("MUG", 3)
    # the VIP head needs 5 and blocks; the standard order behind it waits
    assert book.line("VIP", "MUG").allocated == 0
    assert book.line("STD", "MUG").allocated == 0


def test_a_cancellation_hands_its_units_to_the_next_in_line(book: BackorderBook) -> None:
    book.place(order("ANN", ("MUG", 2)))
    book.place(order("BOB", ("MUG", 2)))
    book.receive("MUG", 2)
    assert book.line("ANN", "MUG").allocated == 2
    result = book.cancel("ANN")
    assert book.line("ANN", "MUG").cancelled == 2
    assert book.line("BOB", "MUG").allocated == 2
    assert [type(e) for e in result.events] == [
        LineReleased,
        LineCancelled,
        OrderCancelled,
        LineAllocated,
    ]
    kinds = [e.kind for e in book.ledger.entries("MUG")]
    assert kinds == ["receipt", "allocation", "release", "allocation"]
    assert sum(e.on_hand_delta for e in book.ledger.entries("MUG")) == 2


def test_a_partial_cancel_takes_backordered_units_first(book: BackorderBook) -> None:
    book.place(order("ANN", ("MUG", 5)))
    book.receive("MUG", 3)
    book.cancel("ANN", "MUG", 2)
    line = book.line("ANN", "MUG")
    assert (line.allocated, line.cancelled, line.backordered) == (3, 2, 0)
    book.cancel("ANN", "MUG", 1)
    line = book.line("ANN", "MUG")
    assert (line.allocated, line.cancelled, line.backordered) == (2, 3, 0)
    assert book.stock("MUG").available == 1


def test_a_partial_cancel_unblocks_a_strict_head() -> None:
    book = BackorderBook(StrictFIFO(), clock=TickingClock())
    book.place(order("BIG", ("MUG", 5)))
    book.receive("MUG", 3)
    book.cancel("BIG", "MUG", 2)
    assert book.line("BIG", "MUG").allocated == 3


def test_cancelling_a_whole_order_skips_lines_with_nothing_left(book: BackorderBook) -> None:
    book.receive("MUG", 1)
    book.place(order("ANN", ("MUG", 1), ("TEE", 2)))
    book.ship("ANN", "MUG")
    result = book.cancel("ANN")
    assert result.cancelled == 2
    assert book.line("ANN", "MUG").shipped == 1
    assert book.line("ANN", "TEE").cancelled == 2


def test_a_count_correction_takes_back_from_the_most_recent_allocation(
    book: BackorderBook,
) -> None:
    book.place(order("ANN", ("MUG", 2)))
    book.place(order("BOB", ("MUG", 2)))
    book.place(order("CAT", ("MUG", 2)))
    book.receive("MUG", 6)
    result = book.adjust("MUG", -3, "three found broken")
    assert result.reclaimed == 3
    assert book.line("CAT", "MUG").allocated == 0
    assert book.line("BOB", "MUG").allocated == 1
    assert book.line("ANN", "MUG").allocated == 2
    # they are back in line at their original places
    assert [ln.order_id for ln in book.waiting("MUG")] == ["BOB", "CAT"]
    assert StockAdjusted in [type(e) for e in result.events]
    assert [type(e) for e in result.events].count(LineBackordered) == 2
    book.receive("MUG", 1)
    assert book.line("BOB", "MUG").allocated == 2


def test_an_adjustment_within_available_reclaims_nothing(book: BackorderBook) -> None:
    book.place(order("ANN", ("MUG", 2)))
    book.receive("MUG", 5)
    result = book.adjust("MUG", -3, "count")
    assert result.reclaimed == 0
    assert book.stock("MUG") == book.ledger.balance("MUG")
    assert book.stock("MUG").available == 0


def test_a_positive_adjustment_serves_the_line(book: BackorderBook) -> None:
    book.place(order("ANN", ("MUG", 2)))
    book.adjust("MUG", 2, "found in the back room")
    assert book.line("ANN", "MUG").allocated == 2
    kinds = [e.kind for e in book.ledger.entries("MUG")]
    assert kinds == ["adjustment", "allocation"]


def test_a_redelivered_receipt_counts_once(book: BackorderBook) -> None:
    book.receive("MUG", 5, reference="GRN-7")
    again = book.receive("MUG", 5, reference="GRN-7")
    assert again.replayed
    assert again.events == ()
    assert book.stock("MUG").on_hand == 5
    # one goods receipt may carry several SKUs under one reference
    book.receive("TEE", 2, reference="GRN-7")
    assert book.stock("TEE").on_hand == 2
    # no reference: every call counts
    book.receive("MUG", 1)
    book.receive("MUG", 1)
    assert book.stock("MUG").on_hand == 7


def test_placing_the_same_order_twice_is_a_no_op(book: BackorderBook) -> None:
    first = book.place(order("ANN", ("MUG", 2), metadata={"email": "ann@example.com"}))
    again = book.place(order("ANN", ("MUG", 2), metadata={"email": "ann@example.com"}))
    assert again.replayed
    assert again.events == ()
    assert again.status == first.status
    assert len(book) == 1


def test_shipping_moves_on_hand_and_allocated_down(book: BackorderBook) -> None:
    book.receive("MUG", 5)
    book.place(order("ANN", ("MUG", 3)))
    result = book.ship("ANN", "MUG", 1)
    assert result.shipped == 1
    assert book.stock("MUG") == book.ledger.balance("MUG")
    assert (book.stock("MUG").on_hand, book.stock("MUG").allocated) == (4, 2)
    result = book.ship("ANN")
    assert result.shipped == 2
    assert [type(e) for e in result.events] == [LineShipped]
    line = book.line("ANN", "MUG")
    assert (line.shipped, line.allocated, line.backordered) == (3, 0, 0)


def test_a_partly_allocated_order_ships_what_it_has(book: BackorderBook) -> None:
    book.receive("MUG", 1)
    book.place(order("ANN", ("MUG", 3), ("TEE", 1)))
    result = book.ship("ANN")
    assert result.shipped == 1
    assert book.line("ANN", "MUG").backordered == 2


def test_a_ship_complete_order_ships_only_when_nothing_is_backordered(
    book: BackorderBook,
) -> None:
    book.receive("MUG", 1)
    book.place(order("ANN", ("MUG", 1), ("TEE", 1), ship_complete=True))
    book.receive("TEE", 1)
    result = book.ship("ANN")
    assert result.shipped == 2


def test_handlers_hear_every_event_in_order_after_success(book: BackorderBook) -> None:
    heard: list[object] = []
    unsubscribe = book.subscribe(heard.append)
    placed = book.place(order("ANN", ("MUG", 1)))
    received = book.receive("MUG", 1)
    assert heard == [*placed.events, *received.events]
    unsubscribe()
    book.receive("MUG", 1)
    assert len(heard) == len(placed.events) + len(received.events)


def test_the_status_keeps_the_orders_line_order(book: BackorderBook) -> None:
    book.place(order("ANN", ("TEE", 1), ("MUG", 2), ("CAP", 3)))
    assert [ln.sku for ln in book.status("ANN").lines] == ["TEE", "MUG", "CAP"]
    assert book.status("ANN").line("CAP").ordered == 3
    assert book.status("ANN").backordered == 6


def test_an_unseen_sku_has_no_stock_and_no_line(book: BackorderBook) -> None:
    assert book.stock("NEW").on_hand == 0
    assert book.stock("NEW").available == 0
    assert book.waiting("NEW") == ()
    assert book.ledger.entries("NEW") == ()


def test_a_book_over_the_same_repository_continues_it() -> None:
    from backorder import InMemoryRepository

    repository = InMemoryRepository()
    first = BackorderBook(repository=repository, clock=TickingClock())
    first.place(order("ANN", ("MUG", 2)))
    first.place(order("BOB", ("MUG", 2)))
    first.receive("MUG", 1, reference="GRN-1")
    second = BackorderBook(repository=repository, clock=TickingClock())
    assert second.position("BOB", "MUG") == 2
    assert second.receive("MUG", 1, reference="GRN-1").replayed
    second.place(order("CAT", ("MUG", 1)))
    assert second.position("CAT", "MUG") == 3


def test_a_shop_day_end_to_end() -> None:
    book = BackorderBook(PriorityTiers(), clock=TickingClock())
    for n in range(1, 6):
        book.place(order(f"W-{n}", ("MUG", n)))
    book.place(order("V-1", ("MUG", 4), tier="vip"))
    book.receive("MUG", 6, reference="GRN-1")
    assert book.line("V-1", "MUG").allocated == 4
    assert book.line("W-1", "MUG").allocated == 1
    assert book.line("W-2", "MUG").allocated == 1
    book.ship("V-1")
    book.cancel("W-2")
    assert book.line("W-3", "MUG").allocated == 1
    book.adjust("MUG", -1, "broken")
    assert book.line("W-3", "MUG").allocated == 0
    book._check()
    book.ledger.verify()


def test_a_failing_handler_does_not_undo_the_operation_or_starve_the_others(
    book: BackorderBook,
) -> None:
    from backorder import EventHandlerError

    heard: list[object] = []

    def broken(event: object) -> None:
        raise RuntimeError("mail server down")

    book.subscribe(broken)
    book.subscribe(heard.append)
    with pytest.raises(EventHandlerError) as caught:
        book.place(order("ANN", ("MUG", 1)))
    assert "ANN" in book  # the operation stands
    assert len(heard) == 2  # OrderPlaced and LineBackordered still delivered
    assert len(caught.value.errors) == 2
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert caught.value.result.events == tuple(heard)  # type: ignore[attr-defined]  # result is the PlaceResult
