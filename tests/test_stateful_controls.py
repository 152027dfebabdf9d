"""The invariant machine again, with the shop controls in play.

Adds backorder caps, fill-by deadlines and `expire`, checkout holds (hold,
confirm, release, expiry), tier changes and, in the promises machines,
scheduled supply, lead times and ETAs to the random operation sequences, with
their own invariants: a place never takes a SKU past its cap; no hold is taken
while a line waits on its SKU; after `expire` no order whose deadline has
passed has units backordered, and only orders that had short units expire (a
ship-complete one whole); a tier change never breaks arrival order within a
tier; with a preempting policy every one of these moves stock between orders
(and invariant 9 is checked after each); ETAs never go back in time along the
line. An order expires once for the
units short at its deadline; a count correction that makes it short again
afterwards gets those units expired at the next `expire()`. Every invariant of
the base machine is still checked after every step.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from backorder import (
    BackorderLimitExceeded,
    HoldExpired,
    HoldResult,
    InsufficientStock,
    LineReleased,
    Order,
    OrderLine,
    PartialFill,
    PriorityTiers,
    StrictFIFO,
    UnknownHold,
    UnknownReference,
)

from .helpers import snapshot
from .strategies import TIERS, orders, quantities, skus
from .test_stateful import BookMachine, SQLiteMachine

pytestmark = pytest.mark.property


class ControlsMachine(BookMachine):
    """The base machine, no naive mirror (it has no shop controls), plus controls."""

    def __init__(self) -> None:
        super().__init__()
        self.mirror = False
        self.hold_ids: list[str] = []

    def live_holds(self) -> list[str]:
        # a count correction can use a hold up, and expire() ends them
        self.hold_ids = [h for h in self.hold_ids if h in self.book._state.holds]
        return self.hold_ids

    def capped(self, order: Order) -> list[str]:
        return [ln.sku for ln in order.lines if self.book.backorder_limit(ln.sku) is not None]

    @rule(data=st.data(), deadline=st.none() | st.integers(min_value=0, max_value=120))
    def place(self, data: st.DataObject, deadline: int | None) -> None:
        order_id = f"O-{len(self.placed) + 1}"
        order = data.draw(orders(order_id), label="order")
        if deadline is not None:
            order = attrs.evolve(order, fill_by=self.clock.now + timedelta(seconds=deadline))
        if not self.book.can_place(order):
            self.refused(BackorderLimitExceeded, lambda: self.book.place(order))
            return
        result = self.book.place(order)
        for sku in self.capped(order):
            limit = self.book.backorder_limit(sku)
            assert limit is not None
            assert self.book.backordered(sku) <= limit, (sku, limit)
        self.seq += 1
        self.placed.append(order_id)
        self.orders[order_id] = order
        self.key[order_id] = (self.policy.rank(order), self.seq)
        self.served(result.events)

    @rule(sku=skus, room=st.none() | st.integers(min_value=-2, max_value=6))
    def set_limit(self, sku: str, room: int | None) -> None:
        if room is None:
            self.book.set_backorder_limit(sku, None)
            return
        limit = self.book.backordered(sku) + room
        if limit < 0:
            return
        if room < 0:
            self.refused(BackorderLimitExceeded, lambda: self.book.set_backorder_limit(sku, limit))
            return
        self.book.set_backorder_limit(sku, limit)
        assert self.book.backorder_limit(sku) == limit

    @rule(seconds=st.integers(min_value=1, max_value=90))
    def time_passes(self, seconds: int) -> None:
        self.clock.now += timedelta(seconds=seconds)

    @rule()
    def expire(self) -> None:
        short_before = {
            order_id: any(ln.backordered for ln in self.book.status(order_id).lines)
            for order_id in self.placed
        }
        result = self.book.expire()
        now = self.clock.now
        for order_id in result.expired:
            # an order expires again only for units a count correction made
            # short after its deadline (asserted through short_before below)
            deadline = self.orders[order_id].deadline
            assert deadline is not None
            assert deadline <= now
            assert short_before[order_id]
        for order_id in self.placed:
            deadline = self.orders[order_id].deadline
            if deadline is not None and deadline <= now:
                status = self.book.status(order_id)
                assert status.backordered == 0, order_id
                if self.orders[order_id].ship_complete and order_id in result.expired:
                    assert status.allocated == 0, order_id
        for hold_id in result.released_holds:
            assert hold_id not in self.book._state.holds
        self.served(result.events)

    @rule(sku=skus, quantity=quantities, minutes=st.integers(min_value=1, max_value=3))
    def hold(self, sku: str, quantity: int, minutes: int) -> None:
        waiting = self.book.waiting(sku)
        available = self.book.stock(sku).available

        def call() -> HoldResult:
            return self.book.hold(sku, quantity, ttl=timedelta(minutes=minutes))

        if waiting or quantity > available:
            self.refused(InsufficientStock, call)
            return
        result = call()
        assert not self.book.waiting(sku)  # a hold never takes what a line waits for
        self.hold_ids.append(result.hold_id)
        self.served(result.events)

    @rule(data=st.data())
    def release_hold(self, data: st.DataObject) -> None:
        if not self.live_holds():
            self.refused(UnknownHold, lambda: self.book.release_hold("NO-SUCH-HOLD"))
            return
        hold_id = data.draw(st.sampled_from(self.hold_ids), label="hold_id")
        result = self.book.release_hold(hold_id)
        self.hold_ids.remove(hold_id)
        self.served(result.events)

    @rule(data=st.data(), quantity=quantities)
    def confirm_hold(self, data: st.DataObject, quantity: int) -> None:
        if not self.live_holds():
            return
        hold_id = data.draw(st.sampled_from(self.hold_ids), label="hold_id")
        hold = self.book._state.holds[hold_id]
        order_id = f"O-{len(self.placed) + 1}"
        order = Order(order_id, [OrderLine(hold.sku, quantity)])
        if hold.expires_at <= self.clock.now + timedelta(seconds=1):
            self.refused(HoldExpired, lambda: self.book.confirm_hold(hold_id, order))
            return
        held = hold.quantity
        before = snapshot(self.book)
        try:
            result = self.book.confirm_hold(hold_id, order)
        except BackorderLimitExceeded:
            assert snapshot(self.book) == before  # refused whole
            return
        # the held units went to the new line (a preempting policy may then
        # give them to a line first in line: a release of reason "rebalance")
        preempted = sum(
            e.quantity
            for e in result.events
            if isinstance(e, LineReleased) and e.order_id == order_id and e.reason == "rebalance"
        )
        assert not preempted or getattr(self.policy, "preempts", False)
        line = self.book.line(order_id, hold.sku)
        assert line.allocated + preempted >= min(held, quantity)
        self.hold_ids.remove(hold_id)
        self.seq += 1
        self.placed.append(order_id)
        self.orders[order_id] = self.book.status(order_id).order
        self.key[order_id] = (self.policy.rank(order), self.seq)
        self.served(result.events)

    @rule(data=st.data(), tier=st.sampled_from(TIERS))
    def change_tier(self, data: st.DataObject, tier: str) -> None:
        if not self.placed:
            return
        order_id = self.pick(data)
        result = self.book.change_tier(order_id, tier)
        self.orders[order_id] = attrs.evolve(self.orders[order_id], tier=tier)
        rank = self.policy.rank(self.orders[order_id])
        self.key[order_id] = (rank, self.key[order_id][1])
        assert self.book.status(order_id).order.tier == tier
        self.served(result.events)


class PromisesMachine(ControlsMachine):
    """The controls machine, plus scheduled supply, lead times and ETAs."""

    def __init__(self) -> None:
        super().__init__()
        self.po = 0

    def po_refs(self) -> list[str]:
        return sorted(self.book._state.expected)

    @rule(sku=skus, quantity=quantities, days=st.integers(min_value=0, max_value=20))
    def expect(self, sku: str, quantity: int, days: int) -> None:
        self.po += 1
        result = self.book.expect(
            sku, quantity, self.clock.now + timedelta(days=days), f"PO-{self.po}"
        )
        self.served(result.events)

    @rule(data=st.data(), days=st.integers(min_value=-3, max_value=10), quantity=quantities)
    def update_expected(self, data: st.DataObject, days: int, quantity: int) -> None:
        if not self.po_refs():
            self.refused(UnknownReference, lambda: self.book.update_expected("PO-NONE", 1))
            return
        ref = data.draw(st.sampled_from(self.po_refs()), label="reference")
        when = self.book._state.expected[ref].arriving + timedelta(days=days)
        self.served(self.book.update_expected(ref, quantity=quantity, arriving=when).events)

    @rule(data=st.data())
    def cancel_expected(self, data: st.DataObject) -> None:
        if self.po_refs():
            ref = data.draw(st.sampled_from(self.po_refs()), label="reference")
            self.served(self.book.cancel_expected(ref).events)

    @rule(data=st.data(), quantity=quantities)
    def receive_against(self, data: st.DataObject, quantity: int) -> None:
        if not self.po_refs():
            return
        ref = data.draw(st.sampled_from(self.po_refs()), label="reference")
        expected = self.book._state.expected[ref]
        sku, left = expected.sku, expected.quantity
        self.po += 1
        result = self.book.receive(sku, quantity, f"DLV-{self.po}", against=ref)
        self.received[sku] += quantity
        remaining = self.book._state.expected.get(ref)
        assert (remaining.quantity if remaining else 0) == max(0, left - quantity)
        self.served(result.events)

    @rule(sku=skus, days=st.none() | st.integers(min_value=1, max_value=30))
    def set_lead_time(self, sku: str, days: int | None) -> None:
        lead = None if days is None else timedelta(days=days)
        self.served(self.book.set_lead_time(sku, lead).events)
        assert self.book.lead_time(sku) == lead

    @invariant()
    def etas_follow_the_line(self) -> None:
        for sku in ("MUG", "TEE", "CAP"):
            dates = []
            for line in self.book.waiting(sku):
                eta = self.book.eta(line.order_id, sku)
                assert eta is not None
                if eta.basis == "scheduled":
                    dates.append(eta.at)
                else:
                    dates.append(None)
            scheduled = [d for d in dates if d is not None]
            # the lines sharing a scheduled date form a run, in date order
            assert scheduled == sorted(scheduled), sku
            if None in dates:
                assert all(d is None for d in dates[dates.index(None) :]), sku


class ControlsStrictMachine(ControlsMachine):
    policy = StrictFIFO()


class ControlsPartialMachine(ControlsMachine):
    policy = PartialFill()


class ControlsTiersMachine(ControlsMachine):
    policy = PriorityTiers()


class ControlsTiersStrictMachine(ControlsMachine):
    policy = PriorityTiers(fill=StrictFIFO())


class PromisesPartialMachine(PromisesMachine):
    policy = PartialFill()


class PromisesTiersStrictMachine(PromisesMachine):
    policy = PriorityTiers(fill=StrictFIFO())


class SQLiteControlsTiersMachine(SQLiteMachine, ControlsMachine):
    policy = PriorityTiers()


class SQLitePromisesPartialMachine(SQLiteMachine, PromisesMachine):
    policy = PartialFill()


class ControlsPreemptMachine(ControlsMachine):
    policy = PriorityTiers(preempt=True)


class PromisesPreemptStrictMachine(PromisesMachine):
    policy = PriorityTiers(fill=StrictFIFO(), preempt=True)


class SQLiteControlsPreemptMachine(SQLiteMachine, ControlsMachine):
    policy = PriorityTiers(preempt=True)


TestControlsPreempt = ControlsPreemptMachine.TestCase
TestPromisesPreemptStrict = PromisesPreemptStrictMachine.TestCase
TestSQLiteControlsPreempt = SQLiteControlsPreemptMachine.TestCase
TestSQLiteControlsTiers = SQLiteControlsTiersMachine.TestCase
TestSQLitePromisesPartial = SQLitePromisesPartialMachine.TestCase
TestPromisesPartial = PromisesPartialMachine.TestCase
TestPromisesTiersStrict = PromisesTiersStrictMachine.TestCase
TestControlsStrict = ControlsStrictMachine.TestCase
TestControlsPartial = ControlsPartialMachine.TestCase
TestControlsTiers = ControlsTiersMachine.TestCase
TestControlsTiersStrict = ControlsTiersStrictMachine.TestCase
