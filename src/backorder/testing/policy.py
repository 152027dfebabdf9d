"""Prove a custom allocation policy before it goes live: `check_policy`.

Needs `hypothesis` (the `test` extra). It drives a book with your policy
through random places (in your tiers), receipts, count corrections, cancels,
ships, tier changes, firm allocations, rebalances and returns, and after every
step checks the design's invariants: no oversell, conservation of every line
and SKU, work conservation (stock is not left idle while the head of a line
would take it), the ledger replays, every allocation went to the first short
line of its rank, firm is firm (`0 <= firm <= allocated`, and a rebalance
never takes a firm unit), and the book's own structural check. For a
preempting policy (one whose `preempts` is true) it also checks that every
SKU stays priority-consistent: the first short line waits when offered the
available units plus the movable units of the lines after it. A policy that
raises, or returns a value out of range (`PolicyError`), fails too.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ..book import BackorderBook
from ..domain import Order, OrderLine
from ..errors import (
    BackorderError,
    CannotCancel,
    CannotFirm,
    CannotReturn,
    InsufficientStock,
    InvalidArgument,
    NotReadyToShip,
    PolicyError,
)
from ..events import LineAllocated
from ..policies import AllocationPolicy

__all__ = ["PolicyCheckFailed", "check_policy"]

SKUS = ("MUG", "CUP")
# refusals the book makes of valid but impossible requests: not the policy's fault
_EXPECTED = (CannotCancel, CannotFirm, CannotReturn, InsufficientStock, NotReadyToShip)


class PolicyCheckFailed(AssertionError):
    """`check_policy` found a sequence of operations that breaks an invariant
    with this policy; the message holds the sequence, shortest first found."""


def _machine(policy: AllocationPolicy, tiers: Sequence[str]) -> type[RuleBasedStateMachine]:
    class PolicyMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.now = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
            self.book = BackorderBook(policy, clock=self.clock)
            self.ids = itertools.count()
            self.placed: list[str] = []
            self.rank: dict[str, int] = {}

        def clock(self) -> datetime:
            self.now += timedelta(seconds=1)
            return self.now

        def run(self, call: Any) -> None:
            try:
                result = call()
            except _EXPECTED:
                return
            except PolicyError:
                raise
            except BackorderError as exc:  # a refusal the machine did not expect
                raise AssertionError(f"the book refused a valid call: {exc!r}") from exc
            self.served(result.events)

        def served(self, events: Sequence[object]) -> None:
            # every allocation goes to the first short line of its rank on that SKU
            for event in events:
                if isinstance(event, LineAllocated):
                    inspector = self.book.inspect()
                    rank, seq = inspector.arrival(event.order_id, event.sku)
                    for line in self.book.waiting(event.sku):
                        other_rank, other_seq = inspector.arrival(line.order_id, event.sku)
                        assert not (other_rank == rank and other_seq < seq), (
                            f"{event.order_id} served on {event.sku} while earlier "
                            f"{line.order_id} of the same rank is short"
                        )

        @rule(
            lines=st.lists(
                st.tuples(st.sampled_from(SKUS), st.integers(1, 6)), min_size=1, max_size=2
            ),
            tier=st.sampled_from(list(tiers)),
            ship_complete=st.booleans(),
        )
        def place(self, lines: list[tuple[str, int]], tier: str, ship_complete: bool) -> None:
            order = Order(
                f"O-{next(self.ids)}",
                [OrderLine(sku, q) for sku, q in dict(lines).items()],
                tier=tier,
                ship_complete=ship_complete,
            )
            self.run(lambda: self.book.place(order))
            if order.id in self.book:
                self.placed.append(order.id)

        @rule(sku=st.sampled_from(SKUS), quantity=st.integers(1, 8))
        def receive(self, sku: str, quantity: int) -> None:
            self.run(lambda: self.book.receive(sku, quantity))

        @rule(sku=st.sampled_from(SKUS), delta=st.integers(-5, 3).filter(bool))
        def adjust(self, sku: str, delta: int) -> None:
            if delta < 0 and self.book.stock(sku).on_hand < -delta:
                return
            self.run(lambda: self.book.adjust(sku, delta, "count"))

        @rule(data=st.data(), part=st.booleans())
        def cancel(self, data: st.DataObject, part: bool) -> None:
            if not self.placed:
                return
            order_id = data.draw(st.sampled_from(self.placed))
            if part:
                line = self.book.status(order_id).lines[0]
                left = line.ordered - line.shipped - line.cancelled
                if left:
                    self.run(lambda: self.book.cancel(order_id, line.sku, 1))
            else:
                self.run(lambda: self.book.cancel(order_id))

        @rule(data=st.data())
        def ship(self, data: st.DataObject) -> None:
            if self.placed:
                order_id = data.draw(st.sampled_from(self.placed))
                self.run(lambda: self.book.ship(order_id))

        @rule(data=st.data(), tier=st.sampled_from(list(tiers)))
        def change_tier(self, data: st.DataObject, tier: str) -> None:
            if self.placed:
                order_id = data.draw(st.sampled_from(self.placed))
                self.run(lambda: self.book.change_tier(order_id, tier))

        @rule(data=st.data(), part=st.booleans())
        def firm(self, data: st.DataObject, part: bool) -> None:
            if self.placed:
                order_id = data.draw(st.sampled_from(self.placed))
                sku = self.book.status(order_id).lines[0].sku if part else None
                quantity = 1 if part else None
                self.run(lambda: self.book.firm(order_id, sku, quantity))

        @rule(sku=st.none() | st.sampled_from(SKUS))
        def rebalance(self, sku: str | None) -> None:
            firm = self.firm_units()
            self.run(lambda: self.book.rebalance(sku))
            assert self.firm_units() == firm, "a rebalance took a firm unit"

        @rule(data=st.data(), restock=st.booleans())
        def receive_return(self, data: st.DataObject, restock: bool) -> None:
            if self.placed:
                order_id = data.draw(st.sampled_from(self.placed))
                sku = self.book.status(order_id).lines[0].sku
                self.run(lambda: self.book.receive_return(order_id, sku, 1, restock=restock))

        def firm_units(self) -> dict[tuple[str, str], int]:
            return {
                (order_id, line.sku): line.firm
                for order_id in self.placed
                for line in self.book.status(order_id).lines
            }

        @invariant()
        def priority_consistent(self) -> None:
            if not getattr(policy, "preempts", False):
                return
            inspector = self.book.inspect()
            for sku in SKUS:
                waiting = self.book.waiting(sku)
                if not waiting:
                    continue
                head = inspector.arrival(waiting[0].order_id, sku)
                movable = sum(
                    line.allocated - line.firm
                    for order_id in self.placed
                    for line in self.book.status(order_id).lines
                    if line.sku == sku and inspector.arrival(order_id, sku) > head
                )
                offer = self.book.stock(sku).available + movable
                if offer > 0:
                    allot = policy.allot(waiting[0], offer)
                    assert allot == 0, (
                        f"{waiting[0].order_id} is first short on {sku} and its policy "
                        f"takes {allot} of the {offer} available and movable units, "
                        f"but the book left them where they are"
                    )

        @invariant()
        def invariants_hold(self) -> None:
            book = self.book
            book.inspect().check()  # structure, conservation, work conservation, holds
            book.ledger.verify()
            for sku in book.skus():
                stock = book.stock(sku)
                assert 0 <= stock.allocated <= stock.on_hand, stock
            for order_id in self.placed:
                for line in book.status(order_id).lines:
                    total = line.allocated + line.shipped + line.cancelled + line.backordered
                    assert total == line.ordered, line
                    assert min(line.allocated, line.shipped, line.cancelled) >= 0, line
                    assert 0 <= line.firm <= line.allocated, line
                    assert 0 <= line.returned <= line.shipped, line

    return PolicyMachine


def check_policy(
    policy: AllocationPolicy,
    tiers: Sequence[str] = ("standard",),
    max_examples: int = 100,
    steps: int = 40,
) -> None:
    """Run random operation sequences on a book with `policy`; return None if
    every invariant held after every step.

    Args:
        policy: your policy (it must rank every tier in `tiers`).
        tiers: the tiers orders are placed in and moved between.
        max_examples: how many random sequences to try.
        steps: the length of each sequence.

    Raises:
        PolicyCheckFailed: a sequence broke an invariant, or the policy
            raised or returned a bad value; the message shows the shortest
            failing sequence found and what went wrong.
        InvalidArgument: `tiers` is empty, or a count is not positive.

    Cost: about max_examples x steps operations on a small book (seconds).

    >>> from backorder import PartialFill
    >>> check_policy(PartialFill(), max_examples=5, steps=10)
    """
    if not tiers or max_examples < 1 or steps < 1:
        raise InvalidArgument(
            f"check_policy needs tiers and positive counts, got tiers={tiers!r}, "
            f"max_examples={max_examples!r}, steps={steps!r}"
        )
    machine = _machine(policy, tiers)
    config = settings(
        max_examples=max_examples,
        stateful_step_count=steps,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    try:
        run_state_machine_as_test(machine, settings=config)
    except Exception as exc:
        notes = "\n".join(getattr(exc, "__notes__", ()))
        if "Flaky" in type(exc).__name__:
            notes = (
                "the policy answered differently to the same calls (does its allot or "
                "rank keep state or draw random numbers?)\n" + notes
            )
        raise PolicyCheckFailed(
            f"policy {policy!r} breaks the book: {exc!r}\n{notes}".rstrip()
        ) from exc
