"""Typed change records, and the undo log of one operation.

Every kind of change an operation makes besides the counters of lines and
SKUs is one small slotted class. Each knows how to undo itself (`undo`) and
which stored rows it touched (`touch`); both are abstract, so a new kind that
forgets one cannot be instantiated (`mypy --strict` says so) instead of being
silently not undone or not saved. Undo, persistence (`backorder.storage`)
and ETA upkeep (`engine.etas`) all read the same records.

The counters of lines and SKUs, the hot path, are not records: `UndoLog`
keeps the first value of each touched line and SKU in two dicts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ..domain import Order
from ..events import Event
from .state import (
    CheckoutHold,
    LineState,
    Record,
    ScheduledReceipt,
    SkuState,
    State,
    add_hold,
    drop_hold,
    pack,
    schedule,
    set_order,
    unpack,
    unschedule,
)

__all__ = [
    "Change",
    "DeadlineAdded",
    "DeadlineRemoved",
    "ExpiredHoldIdReused",
    "HoldAdded",
    "HoldCounterSet",
    "HoldIdExpired",
    "HoldRemoved",
    "HoldShrunk",
    "LeadTimeSet",
    "LimitSet",
    "OrderAdded",
    "OrderReranked",
    "PolicyRecorded",
    "ReceiptCounted",
    "ReturnCounted",
    "SkuAdded",
    "SupplyChanged",
    "SupplyCounterSet",
    "SupplyScheduled",
    "SupplyUnscheduled",
    "Touched",
    "UndoLog",
    "rekey",
    "resync",
]

Deadline = tuple[datetime, int, str]  # (deadline, seq, order_id), as in State.deadlines


class Touched:
    """The keys of the stored rows an operation touched (filled by `Change.touch`)."""

    __slots__ = (
        "deadlines",
        "expected",
        "expired_holds",
        "holds",
        "lines",
        "orders",
        "receipts",
        "returns",
        "skus",
    )

    def __init__(self) -> None:
        self.skus: dict[str, None] = {}
        self.orders: dict[str, None] = {}
        self.lines: dict[LineState, None] = {}
        self.receipts: list[tuple[str, str]] = []  # (sku, reference)
        self.returns: list[tuple[str, str, str]] = []  # (sku, order_id, reference)
        self.holds: dict[str, None] = {}
        self.expired_holds: dict[str, None] = {}
        self.expected: dict[str, None] = {}
        self.deadlines: dict[str, None] = {}  # order ids

    def record(self, record: Record) -> None:
        """An order and every line of it."""
        self.orders[record.order.id] = None
        for line in record.lines:
            self.lines[line] = None
            self.skus[line.sku] = None


class Change(ABC):
    """One change an operation made (besides line and SKU counters)."""

    __slots__ = ()

    @abstractmethod
    def undo(self, state: State) -> None:
        """Put the state back as it was before this change."""

    @abstractmethod
    def touch(self, touched: Touched, state: State) -> None:
        """Add the keys of the rows this change touched (read after the operation)."""


class OrderAdded(Change):
    """An order entered the book (its lines joined their SKUs)."""

    __slots__ = ("order_id",)

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id

    def undo(self, state: State) -> None:
        record = state.orders.pop(self.order_id)
        for line in record.lines:
            sku = state.skus.get(line.sku)
            if sku is not None:
                if sku.demand is not None and line.key in sku.queue:
                    sku.demand.add(line, -line.backordered)
                sku.queue.discard(line.key)
                sku.allocated_keys.discard(line.key)  # its heap entry goes stale
                if sku.movable is not None:
                    sku.movable.shift(line, line.allocated - line.firm, 0)
                sku.lines.pop(line.key, None)

    def touch(self, touched: Touched, state: State) -> None:
        record = state.orders.get(self.order_id)
        if record is not None:
            touched.record(record)


class OrderReranked(Change):
    """An order got another rank (its tier changed): its lines moved in line."""

    __slots__ = ("old_order", "old_rank", "record")

    def __init__(self, record: Record, old_order: Order, old_rank: int) -> None:
        self.record = record
        self.old_order = old_order
        self.old_rank = old_rank

    def undo(self, state: State) -> None:
        rekey(state, self.record, self.old_order, self.old_rank)

    def touch(self, touched: Touched, state: State) -> None:
        touched.record(self.record)


class SkuAdded(Change):
    """A SKU the book had never seen."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def undo(self, state: State) -> None:
        del state.skus[self.name]

    def touch(self, touched: Touched, state: State) -> None:
        touched.skus[self.name] = None


class ReceiptCounted(Change):
    """A receipt reference was counted on a SKU (so a redelivery is a no-op)."""

    __slots__ = ("reference", "sku")

    def __init__(self, sku: SkuState, reference: str) -> None:
        self.sku = sku
        self.reference = reference

    def undo(self, state: State) -> None:
        del self.sku.receipts[self.reference]

    def touch(self, touched: Touched, state: State) -> None:
        touched.skus[self.sku.sku] = None
        touched.receipts.append((self.sku.sku, self.reference))


class ReturnCounted(Change):
    """A return reference was counted on an order's line (so a redelivery is a no-op)."""

    __slots__ = ("order_id", "reference", "sku")

    def __init__(self, sku: SkuState, order_id: str, reference: str) -> None:
        self.sku = sku
        self.order_id = order_id
        self.reference = reference

    def undo(self, state: State) -> None:
        del self.sku.returns[self.order_id, self.reference]

    def touch(self, touched: Touched, state: State) -> None:
        touched.skus[self.sku.sku] = None
        touched.returns.append((self.sku.sku, self.order_id, self.reference))


class DeadlineAdded(Change):
    """A fill-by deadline is to be acted on."""

    __slots__ = ("item",)

    def __init__(self, item: Deadline) -> None:
        self.item = item

    def undo(self, state: State) -> None:
        state.deadlines.discard(self.item)

    def touch(self, touched: Touched, state: State) -> None:
        touched.deadlines[self.item[2]] = None


class DeadlineRemoved(Change):
    """A fill-by deadline was acted on."""

    __slots__ = ("item",)

    def __init__(self, item: Deadline) -> None:
        self.item = item

    def undo(self, state: State) -> None:
        state.deadlines.add(self.item)

    def touch(self, touched: Touched, state: State) -> None:
        touched.deadlines[self.item[2]] = None


class LimitSet(Change):
    """A SKU's backorder cap changed."""

    __slots__ = ("old", "sku")

    def __init__(self, sku: SkuState, old: int | None) -> None:
        self.sku = sku
        self.old = old

    def undo(self, state: State) -> None:
        self.sku.limit = self.old

    def touch(self, touched: Touched, state: State) -> None:
        touched.skus[self.sku.sku] = None


class LeadTimeSet(Change):
    """A SKU's supplier lead time changed."""

    __slots__ = ("old", "sku")

    def __init__(self, sku: SkuState, old: timedelta | None) -> None:
        self.sku = sku
        self.old = old

    def undo(self, state: State) -> None:
        self.sku.lead_time = self.old

    def touch(self, touched: Touched, state: State) -> None:
        touched.skus[self.sku.sku] = None


class HoldAdded(Change):
    """A checkout hold was taken."""

    __slots__ = ("hold",)

    def __init__(self, hold: CheckoutHold) -> None:
        self.hold = hold

    def undo(self, state: State) -> None:
        drop_hold(state, self.hold)

    def touch(self, touched: Touched, state: State) -> None:
        touched.holds[self.hold.hold_id] = None
        touched.skus[self.hold.sku] = None


class HoldRemoved(Change):
    """A checkout hold ended (released, confirmed, expired, reclaimed)."""

    __slots__ = ("hold",)

    def __init__(self, hold: CheckoutHold) -> None:
        self.hold = hold

    def undo(self, state: State) -> None:
        hold = self.hold
        add_hold(state, hold)
        holds = state.skus[hold.sku].holds
        if any(other.seq > hold.seq for other in holds.values()):
            # back at its place: a SKU's holds are oldest first (O(holds of the SKU))
            ordered = sorted(holds.values(), key=lambda other: other.seq)
            holds.clear()
            holds.update((other.hold_id, other) for other in ordered)

    def touch(self, touched: Touched, state: State) -> None:
        touched.holds[self.hold.hold_id] = None
        touched.skus[self.hold.sku] = None


class HoldShrunk(Change):
    """A checkout hold gave some of its units back."""

    __slots__ = ("hold", "old_quantity")

    def __init__(self, hold: CheckoutHold, old_quantity: int) -> None:
        self.hold = hold
        self.old_quantity = old_quantity

    def undo(self, state: State) -> None:
        self.hold.quantity = self.old_quantity

    def touch(self, touched: Touched, state: State) -> None:
        touched.holds[self.hold.hold_id] = None
        touched.skus[self.hold.sku] = None


class HoldIdExpired(Change):
    """A hold id is remembered as expired (confirming it says so)."""

    __slots__ = ("hold_id",)

    def __init__(self, hold_id: str) -> None:
        self.hold_id = hold_id

    def undo(self, state: State) -> None:
        state.expired_holds.discard(self.hold_id)

    def touch(self, touched: Touched, state: State) -> None:
        touched.expired_holds[self.hold_id] = None


class ExpiredHoldIdReused(Change):
    """An expired hold id was used again for a new hold."""

    __slots__ = ("hold_id",)

    def __init__(self, hold_id: str) -> None:
        self.hold_id = hold_id

    def undo(self, state: State) -> None:
        state.expired_holds.add(self.hold_id)

    def touch(self, touched: Touched, state: State) -> None:
        touched.expired_holds[self.hold_id] = None


class HoldCounterSet(Change):
    """The hold counter moved (the counters are stored with every operation)."""

    __slots__ = ("old",)

    def __init__(self, old: int) -> None:
        self.old = old

    def undo(self, state: State) -> None:
        state.hold_seq = self.old

    def touch(self, touched: Touched, state: State) -> None:
        pass  # counters are written with every operation


class SupplyCounterSet(Change):
    """The scheduled-receipt counter moved."""

    __slots__ = ("old",)

    def __init__(self, old: int) -> None:
        self.old = old

    def undo(self, state: State) -> None:
        state.expected_seq = self.old

    def touch(self, touched: Touched, state: State) -> None:
        pass  # counters are written with every operation


class SupplyScheduled(Change):
    """A scheduled receipt was recorded."""

    __slots__ = ("expected",)

    def __init__(self, expected: ScheduledReceipt) -> None:
        self.expected = expected

    def undo(self, state: State) -> None:
        unschedule(state, self.expected)

    def touch(self, touched: Touched, state: State) -> None:
        touched.expected[self.expected.reference] = None
        touched.skus[self.expected.sku] = None


class SupplyUnscheduled(Change):
    """A scheduled receipt was dropped (cancelled, or delivered in full)."""

    __slots__ = ("expected",)

    def __init__(self, expected: ScheduledReceipt) -> None:
        self.expected = expected

    def undo(self, state: State) -> None:
        schedule(state, self.expected)

    def touch(self, touched: Touched, state: State) -> None:
        touched.expected[self.expected.reference] = None
        touched.skus[self.expected.sku] = None


class SupplyChanged(Change):
    """A scheduled receipt was resized or moved (or partly delivered)."""

    __slots__ = ("expected", "old_arriving", "old_quantity")

    def __init__(
        self, expected: ScheduledReceipt, old_quantity: int, old_arriving: datetime
    ) -> None:
        self.expected = expected
        self.old_quantity = old_quantity
        self.old_arriving = old_arriving

    def undo(self, state: State) -> None:
        expected = self.expected
        unschedule(state, expected)
        expected.quantity, expected.arriving = self.old_quantity, self.old_arriving
        schedule(state, expected)

    def touch(self, touched: Touched, state: State) -> None:
        touched.expected[self.expected.reference] = None
        touched.skus[self.expected.sku] = None


class PolicyRecorded(Change):
    """The identity of the book's policy was recorded or switched (the new one
    is written with the operation: `State.policy_saved` is False until then)."""

    __slots__ = ("old_id", "old_saved", "restore")

    def __init__(self, state: State, restore: Callable[[], None]) -> None:
        self.old_id = state.policy_id
        self.old_saved = state.policy_saved
        self.restore = restore  # puts the engine's old policy back

    def undo(self, state: State) -> None:
        state.policy_id, state.policy_saved = self.old_id, self.old_saved
        self.restore()

    def touch(self, touched: Touched, state: State) -> None:
        pass  # written from State.policy_id while State.policy_saved is False


def rekey(state: State, record: Record, order: Order, rank: int) -> None:
    """Give every line of the order the key (rank, its own arrival number),
    moving it in its SKU's line, allocated index and line map. O(lines log n)."""
    set_order(record, order, rank)
    for line in record.lines:
        sku = state.skus[line.sku]
        old, new = line.key, pack(rank, unpack(line.key)[1])
        line.order = order
        if old == new:
            continue
        short = line.backordered if old in sku.queue else 0
        if sku.demand is not None:
            sku.demand.add(line, -short)
        movable = line.allocated - line.firm
        if sku.movable is not None:
            sku.movable.shift(line, movable, 0)
        del sku.lines[old]
        sku.lines[new] = line
        line.key = new
        if sku.movable is not None:
            sku.movable.shift(line, 0, movable)
        if old in sku.queue:
            sku.queue.remove(old)
            sku.queue.add(new)
        if old in sku.allocated_keys:
            sku.allocated_keys.discard(old)
            sku.mark_allocated(new)
        if sku.demand is not None:
            sku.demand.add(line, short)


def resync(sku: SkuState, line: LineState, was_short: bool, had_allocated: bool) -> None:
    """Put the line's key in (or out of) the queue and the allocated index to
    match its counters: in the queue iff short, indexed iff anything is
    allocated. The one step that keeps a SKU's indexes and a line's counters
    in step (the fill loop inlines it). O(log n)."""
    short, allocated = line.backordered > 0, line.allocated > 0
    if short != was_short:
        if short:
            sku.queue.add(line.key)
        else:
            sku.queue.remove(line.key)
    if allocated != had_allocated:
        if allocated:
            sku.mark_allocated(line.key)
        else:
            sku.allocated_keys.discard(line.key)  # its heap entry goes stale


class UndoLog:
    """One operation's undo record: what to put back if it fails, and what
    it changed (for persistence and ETA upkeep).

    Used as a context manager around the part of an operation that changes
    the state: leaving the block by an exception rolls everything back.
    """

    __slots__ = (
        "at",
        "changes",
        "eta_before",
        "eta_hook",
        "eta_tail",
        "events",
        "lines",
        "mark",
        "seq",
        "settled",
        "skus",
        "state",
    )

    def __init__(
        self,
        state: State,
        at: datetime,
        eta_hook: Callable[[UndoLog, SkuState], None] | None = None,
    ) -> None:
        self.state = state
        self.at = at
        self.events: list[Event] = []
        self.mark = state.journal.mark()
        self.seq = state.seq
        # first (allocated, shipped, cancelled, firm, returned) of each touched line
        self.lines: dict[LineState, tuple[int, int, int, int, int]] = {}
        # first (on_hand, allocated, backordered, slots) of each touched SKU
        self.skus: dict[SkuState, tuple[int, int, int, int]] = {}
        # Each touched SKU's ETAs before the operation (None: all unknown),
        # taken by `eta_hook` on first touch, to emit EtaChanged afterwards.
        self.eta_before: dict[SkuState, Any] = {}
        self.eta_hook = eta_hook
        # per touched SKU: (available, last waiting key, supply curve, lead time) before
        self.eta_tail: dict[SkuState, tuple[int, float, Any, timedelta | None]] = {}
        # every other change, in order; undone newest first
        self.changes: list[Change] = []
        # True once a preempting policy's rebalance ran after the last change
        self.settled = False

    def __enter__(self) -> UndoLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:
            self.rollback()

    def touch_line(self, line: LineState) -> None:
        """Remember the line's counters before its first change. O(1)."""
        if line not in self.lines:
            self.lines[line] = (
                line.allocated,
                line.shipped,
                line.cancelled,
                line.firm,
                line.returned,
            )

    def touch_sku(self, sku: SkuState) -> None:
        """Remember the SKU's counters (and ETAs) before its first change. O(1)."""
        if sku not in self.skus:
            self.skus[sku] = (sku.on_hand, sku.allocated, sku.backordered, sku.slots)
            if self.eta_hook is not None:
                if sku.expected or sku.lead_time is not None:  # (`has_dates`, inlined)
                    self.eta_hook(self, sku)
                else:  # every line's ETA is unknown (what the hook keeps then)
                    self.eta_before[sku] = None
            sku.version += 1  # about to change: cached ETAs no longer hold

    def new_orders(self) -> set[str]:
        """The ids of the orders this operation added."""
        return {c.order_id for c in self.changes if isinstance(c, OrderAdded)}

    def touched(self, into: Touched | None = None) -> Touched:
        """The keys of every row this operation touched (added to `into`,
        the keys of earlier operations, when given)."""
        touched = Touched() if into is None else into
        state = self.state
        for sku in self.skus:
            touched.skus[sku.sku] = None
        for line in self.lines:
            touched.lines[line] = None
            touched.skus[line.sku] = None
        for change in self.changes:
            change.touch(touched, state)
        return touched

    def rollback(self, ledger: bool = True) -> None:
        """Put the state back exactly as it was before the operation (the
        ledger too, unless the caller drops the entries of many at once)."""
        state = self.state
        for line, (allocated, shipped, cancelled, firm, returned) in self.lines.items():
            sku = state.skus[line.sku]
            before = line.backordered
            was_short, had_allocated = before > 0, line.allocated > 0
            movable = line.allocated - line.firm
            line.allocated, line.shipped, line.cancelled = allocated, shipped, cancelled
            line.firm, line.returned = firm, returned
            if sku.demand is not None:
                sku.demand.add(line, line.backordered - before)
            if sku.movable is not None:
                sku.movable.shift(line, movable, allocated - firm)
            resync(sku, line, was_short, had_allocated)
        for sku, (on_hand, allocated, backordered, slots) in self.skus.items():
            sku.on_hand, sku.allocated, sku.backordered, sku.slots = (
                on_hand,
                allocated,
                backordered,
                slots,
            )
            sku.version += 1  # ETAs cached during the failed operation no longer hold
        for change in reversed(self.changes):
            change.undo(state)
        if ledger:
            state.journal.truncate(self.mark)
        state.seq = self.seq
