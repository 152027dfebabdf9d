"""Policies: the built-ins' arithmetic, PriorityTiers' checks, and custom policies."""

from __future__ import annotations

from typing import Any

import pytest

from backorder import (
    AllocationPolicy,
    ArgumentTypeError,
    BackorderBook,
    InvalidArgument,
    LineStatus,
    Order,
    OrderLine,
    PartialFill,
    PolicyError,
    PriorityTiers,
    StrictFIFO,
    UnknownTier,
)

from .helpers import TickingClock, snapshot


def status(backordered: int) -> LineStatus:
    return LineStatus("A", "MUG", "standard", backordered, 0, 0, 0, backordered)


def test_builtin_allotments() -> None:
    assert StrictFIFO().allot(status(5), 4) == 0
    assert StrictFIFO().allot(status(5), 5) == 5
    assert StrictFIFO().allot(status(5), 9) == 5
    assert PartialFill().allot(status(5), 4) == 4
    assert PartialFill().allot(status(5), 9) == 5
    assert PriorityTiers(fill=StrictFIFO()).allot(status(5), 4) == 0


def test_builtins_satisfy_the_protocol() -> None:
    for policy in (StrictFIFO(), PartialFill(), PriorityTiers()):
        assert isinstance(policy, AllocationPolicy)


def test_priority_tiers_rank_and_refusals() -> None:
    tiers = PriorityTiers(("gold", "silver"))
    assert tiers.rank(Order("A", [OrderLine("MUG", 1)], tier="silver")) == 1
    with pytest.raises(UnknownTier, match="'bronze'"):
        tiers.rank(Order("A", [OrderLine("MUG", 1)], tier="bronze"))
    with pytest.raises(InvalidArgument, match="at least one"):
        PriorityTiers(())
    with pytest.raises(InvalidArgument, match="repeat"):
        PriorityTiers(("a", "a"))
    with pytest.raises(ArgumentTypeError):
        PriorityTiers("vip")
    with pytest.raises(ArgumentTypeError):
        PriorityTiers((1, 2))  # type: ignore[arg-type]  # the wrong type is the point
    with pytest.raises(ArgumentTypeError, match="fill"):
        PriorityTiers(fill=object())  # type: ignore[arg-type]  # the wrong type is the point


class HalfAtATime:
    """A custom policy: the head takes at most half of what is available (at least 1)."""

    def rank(self, order: Order) -> int:
        return 0

    def allot(self, line: LineStatus, available: int) -> int:
        return min(line.backordered, max(1, available // 2))


def test_a_custom_policy_is_offered_only_the_head() -> None:
    book = BackorderBook(HalfAtATime(), clock=TickingClock())
    book.place(Order("ANN", [OrderLine("MUG", 3)]))
    book.place(Order("BOB", [OrderLine("MUG", 3)]))
    book.receive("MUG", 4)
    # ANN gets 2, then 1 (half of 2), then BOB 1 (half of 1 -> 1)
    assert book.line("ANN", "MUG").allocated == 3
    assert book.line("BOB", "MUG").allocated == 1
    book._check()


class Bad:
    def __init__(self, allot: Any = 0, rank: Any = 0) -> None:
        self._allot, self._rank = allot, rank

    def rank(self, order: Order) -> Any:
        return self._rank

    def allot(self, line: LineStatus, available: int) -> Any:
        return self._allot(line, available) if callable(self._allot) else self._allot


@pytest.mark.parametrize(
    "allot",
    [
        -1,
        99,
        True,
        1.0,
        None,
        lambda line, available: available + 1,
        lambda line, available: line.backordered + 1,
    ],
)
def test_an_allot_out_of_range_raises_policy_error_and_changes_nothing(allot: Any) -> None:
    book = BackorderBook(Bad(allot), clock=TickingClock())
    book.place(Order("ANN", [OrderLine("MUG", 2)]))
    for call in (
        lambda: book.receive("MUG", 1, "GRN-1"),
        lambda: book.adjust("MUG", 1, "found"),
    ):
        before = snapshot(book)
        with pytest.raises(PolicyError, match="allot"):
            call()
        assert snapshot(book) == before
    assert book.stock("MUG").on_hand == 0


def test_an_allot_that_fails_while_placing_rolls_the_place_back() -> None:
    book = BackorderBook(Bad(5), clock=TickingClock())
    book.receive("MUG", 1)  # nobody waits, so allot is not asked
    book.place(Order("ANN", [OrderLine("TEE", 2)]))  # no TEE stock: not asked either
    before = snapshot(book)
    with pytest.raises(PolicyError, match="returned 5"):
        book.place(Order("BOB", [OrderLine("TEE", 1), OrderLine("MUG", 2)]))
    assert snapshot(book) == before
    assert "BOB" not in book
    # the arrival counter was not used up: the next order gets the next number
    book.place(Order("CAT", [OrderLine("TEE", 1)]))
    assert book.position("CAT", "TEE") == 2
    book._check()


@pytest.mark.parametrize("rank", [None, "0", 1.5, True])
def test_a_rank_that_is_not_an_int_raises_policy_error(rank: Any) -> None:
    book = BackorderBook(Bad(rank=rank), clock=TickingClock())
    before = snapshot(book)
    with pytest.raises(PolicyError, match="rank"):
        book.place(Order("ANN", [OrderLine("MUG", 2)]))
    assert snapshot(book) == before


def test_a_custom_rank_orders_the_line() -> None:
    class Biggest:
        def rank(self, order: Order) -> int:
            return -sum(line.quantity for line in order.lines)

        def allot(self, line: LineStatus, available: int) -> int:
            return min(line.backordered, available)

    book = BackorderBook(Biggest(), clock=TickingClock())
    book.place(Order("SMALL", [OrderLine("MUG", 1)]))
    book.place(Order("BIG", [OrderLine("MUG", 5)]))
    assert [ln.order_id for ln in book.waiting("MUG")] == ["BIG", "SMALL"]
    book._check()
