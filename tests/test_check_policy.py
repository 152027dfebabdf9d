"""`backorder.testing.check_policy`: good policies pass, bad ones fail with a sequence."""

from __future__ import annotations

import pytest

from backorder import InvalidArgument, LineStatus, Order, PartialFill, PriorityTiers, StrictFIFO
from backorder.testing import PolicyCheckFailed, check_policy


class OverGenerous:
    """Allots everything available, even beyond the head's shortfall."""

    def rank(self, order: Order) -> int:
        return 0

    def allot(self, line: LineStatus, available: int) -> int:
        return available


class WaitsForThree:
    """A head short of fewer than 3 units waits: allowed (the head may wait)."""

    def rank(self, order: Order) -> int:
        return 0

    def allot(self, line: LineStatus, available: int) -> int:
        return min(available, line.backordered) if line.backordered >= 3 else 0


def test_the_built_in_and_a_waiting_policy_pass() -> None:
    check_policy(PartialFill(), max_examples=20)
    check_policy(StrictFIFO(), max_examples=20)
    check_policy(PriorityTiers(), tiers=("contract", "vip", "standard"), max_examples=20)
    check_policy(WaitsForThree(), max_examples=20)


def test_a_policy_that_overfills_fails_with_the_sequence() -> None:
    with pytest.raises(PolicyCheckFailed, match="allot returned") as caught:
        check_policy(OverGenerous(), max_examples=50)
    assert "state.place(" in str(caught.value)  # the failing steps are shown


def test_tiers_the_policy_does_not_know_fail() -> None:
    with pytest.raises(PolicyCheckFailed, match="gold"):
        check_policy(PriorityTiers(), tiers=("gold",), max_examples=10)


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgument, match="tiers"):
        check_policy(PartialFill(), tiers=())
    with pytest.raises(InvalidArgument, match="steps"):
        check_policy(PartialFill(), steps=0)


class PreemptingWaitsForThree(WaitsForThree):
    """A custom preempting policy: the book rebalances whatever it touches."""

    preempts = True


def test_preempting_policies_pass() -> None:
    check_policy(PreemptingWaitsForThree(), max_examples=20)
    check_policy(
        PriorityTiers(preempt=True), tiers=("contract", "vip", "standard"), max_examples=20
    )
    check_policy(
        PriorityTiers(fill=StrictFIFO(), preempt=True),
        tiers=("contract", "standard"),
        max_examples=20,
    )
