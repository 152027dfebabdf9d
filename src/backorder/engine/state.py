"""The book's working state, kept lean: plain slotted records and sorted keys.

A waiting line is a `LineState` record; each SKU keeps the keys of its short lines
in a `SortedList`, ordered by `(rank, seq)` packed into one int, so the head
is `queue[0]`, a place or a cancel costs O(log n) and a position is
`queue.index(key)`. attrs values are built only at the API boundary.
"""

from __future__ import annotations

from bisect import insort
from datetime import datetime, timedelta
from heapq import heapify, heappop, heappush
from typing import Any, TypeAlias

from sortedcontainers import SortedList

from ..domain import Order
from ..ledger import LedgerWriter, StockLedger
from .fenwick import Fenwick

# seq is below 2**64 forever, so (rank, seq) packs into rank * 2**64 + seq and
# int comparison of packed keys is tuple comparison of (rank, seq).
SEQ_BITS = 64


def pack(rank: int, seq: int) -> int:
    """The queue key of arrival `seq` in class `rank`."""
    return (rank << SEQ_BITS) + seq


def unpack(key: int) -> tuple[int, int]:
    """The `(rank, seq)` a queue key was packed from."""
    return key >> SEQ_BITS, key & ((1 << SEQ_BITS) - 1)


class LineState:
    """One order line's counters. `backordered` is derived, never stored."""

    __slots__ = (
        "allocated",
        "cancelled",
        "firm",
        "key",
        "order",
        "ordered",
        "returned",
        "shipped",
        "sku",
        "slot",
    )

    def __init__(self, order: Order, sku: str, key: int, ordered: int) -> None:
        self.order = order
        self.sku = sku
        self.key = key
        self.slot = 0  # the line's arrival number on its SKU (the SKU sets it)
        self.ordered = ordered
        self.allocated = 0
        self.shipped = 0
        self.cancelled = 0
        self.firm = 0  # of the allocated units, those marked firm
        self.returned = 0  # of the shipped units, those that came back

    @property
    def backordered(self) -> int:
        return self.ordered - self.allocated - self.shipped - self.cancelled

    # An order of one line is its own record (`Record`): the book keeps no
    # `OrderRecord` and no tuple for it (~100 B a line less).

    @property
    def lines(self) -> tuple[LineState, ...]:
        """(As the record of an order of one line) the order's lines: this one."""
        return (self,)

    @property
    def rank(self) -> int:
        """(As the record of an order of one line) the order's rank, from the key."""
        return self.key >> SEQ_BITS


class SkuState:
    """One SKU: its stock counters, its line of short lines, its lines with units allocated."""

    __slots__ = (
        "allocated",
        "allocated_heap",
        "allocated_keys",
        "backordered",
        "demand",
        "eta_cache",
        "expected",
        "holds",
        "lead_time",
        "limit",
        "lines",
        "movable",
        "on_hand",
        "queue",
        "receipts",
        "returns",
        "schedule",
        "sku",
        "slots",
        "supply",
        "version",
    )

    def __init__(self, sku: str) -> None:
        self.sku = sku
        self.on_hand = 0
        self.allocated = 0
        # Keys of lines with backordered > 0, in serving order.
        self.queue: SortedList[int] = SortedList()
        # Keys of lines with allocated > 0, and a max-heap (negated keys) over
        # them with lazy deletion, so a reclaim finds the last one in O(log n)
        # while allocating costs a C-level push, not a sorted insert.
        self.allocated_keys: set[int] = set()
        self.allocated_heap: list[int] = []
        # Every line ever placed on this SKU, by key.
        self.lines: dict[int, LineState] = {}
        # reference -> quantity of every receipt already counted.
        self.receipts: dict[str, int] = {}
        # (order_id, reference) -> quantity of every return already counted.
        self.returns: dict[tuple[str, str], int] = {}
        # The lines with movable (allocated, not firm) units: built the first
        # time a firm, a rebalance or a preempting policy needs it, then kept
        # up to date. None only while no line of the SKU has a firm unit (so
        # then every allocated unit is movable).
        self.movable: MovableIndex | None = None
        # Units backordered over all lines (kept, so a cap check is O(1)).
        self.backordered = 0
        # The backorder cap (None: no cap).
        self.limit: int | None = None
        # Active checkout holds on this SKU, oldest first.
        self.holds: dict[str, CheckoutHold] = {}
        # Arrival numbers of lines on this SKU (a line's slot).
        self.slots = 0
        # Backordered units by (rank, slot), for prefix sums: built the first
        # time an ETA needs it, then kept up to date.
        self.demand: DemandIndex | None = None
        # Scheduled receipts: by reference, and (arriving, seq, reference) in date order.
        self.expected: dict[str, ScheduledReceipt] = {}
        self.schedule: SortedList[tuple[datetime, int, str]] = SortedList()
        # (dates, cumulative quantities) of the schedule; None when stale.
        self.supply: tuple[list[datetime], list[int]] | None = None
        self.lead_time: timedelta | None = None
        # Bumped before every change; ETA step functions are cached against it.
        self.version = 0
        self.eta_cache: tuple[int, Any] | None = None

    def demand_index(self) -> DemandIndex:
        """The demand index, built from the waiting lines on first use (O(n log n))."""
        if self.demand is None:
            demand = DemandIndex()
            lines = self.lines
            for key in self.queue:
                line = lines[key]
                demand.add(line, line.backordered)
            self.demand = demand
        return self.demand

    def supply_curve(self) -> tuple[list[datetime], list[int]]:
        """Arrival dates and cumulative scheduled quantities, in date order."""
        if self.supply is None:
            dates: list[datetime] = []
            totals: list[int] = []
            running = 0
            expected = self.expected
            for arriving, _, reference in self.schedule:
                running += expected[reference].quantity
                dates.append(arriving)
                totals.append(running)
            self.supply = (dates, totals)
        return self.supply

    def mark_allocated(self, key: int) -> None:
        """Record that the line at `key` now has units allocated."""
        if key not in self.allocated_keys:
            self.allocated_keys.add(key)
            heap = self.allocated_heap
            heappush(heap, -key)
            if len(heap) > 2 * len(self.allocated_keys) + 64:
                # drop the stale entries left by lazy deletion: O(allocated lines), amortised
                heap[:] = [-k for k in self.allocated_keys]
                heapify(heap)

    def movable_index(self) -> MovableIndex:
        """The movable index, built from the allocated lines on first use
        (O(a log a) for a allocated lines)."""
        if self.movable is None:
            index = MovableIndex()
            lines = self.lines
            for key in self.allocated_keys:
                line = lines[key]
                index.shift(line, 0, line.allocated - line.firm)
            self.movable = index
        return self.movable

    def last_allocated(self) -> int:
        """The key of the last line in line with units allocated (one exists)."""
        heap, keys = self.allocated_heap, self.allocated_keys
        while -heap[0] not in keys:
            heappop(heap)
        return -heap[0]


class DemandIndex:
    """Backordered units of a SKU's waiting lines, summable in line order.

    One Fenwick tree per rank over the lines' slots (arrival numbers on the
    SKU), so the units ahead of a line are the totals of the lower ranks plus
    a prefix sum in its own rank: O(ranks + log n).
    """

    __slots__ = ("ranks", "slot_key", "trees")

    def __init__(self) -> None:
        self.trees: dict[int, Fenwick] = {}
        self.ranks: list[int] = []  # sorted
        self.slot_key: dict[int, int] = {}  # a line's slot -> its queue key

    def add(self, line: LineState, delta: int) -> None:
        if not delta:
            return
        self.slot_key[line.slot] = line.key
        rank = line.key >> SEQ_BITS
        tree = self.trees.get(rank)
        if tree is None:
            tree = self.trees[rank] = Fenwick()
            insort(self.ranks, rank)
        tree.add(line.slot, delta)

    def ahead(self, line: LineState) -> int:
        """Backordered units of every line before `line` in its SKU's line."""
        rank = line.key >> SEQ_BITS
        total = 0
        for other in self.ranks:
            if other >= rank:
                break
            total += self.trees[other].total
        return total + self.trees[rank].prefix(line.slot - 1) if rank in self.trees else total

    def first_reaching(self, target: int) -> int | None:
        """The key of the first line whose cumulative backordered units (its
        own included) reach `target` (>= 1), or None if all of them fall short."""
        for rank in self.ranks:
            tree = self.trees[rank]
            if target <= tree.total:
                return self.slot_key[tree.search(target)]
            target -= tree.total
        return None

    def through_rank(self, rank: int) -> int:
        """Backordered units of every line of rank <= `rank`."""
        return sum(self.trees[r].total for r in self.ranks if r <= rank)


class MovableIndex:
    """A SKU's movable units (allocated, not firm) by line, in line order.

    The keys of the lines that have any, with a max-heap over them (lazy
    deletion) to find the last one in O(log n), and their units summable in
    line order (a `DemandIndex`), so the movable units after a line cost
    O(ranks + log n). `shift` is the one step that keeps it in step.
    """

    __slots__ = ("heap", "keys", "total", "units")

    def __init__(self) -> None:
        self.keys: set[int] = set()
        self.heap: list[int] = []
        self.units = DemandIndex()
        self.total = 0

    def shift(self, line: LineState, before: int, after: int) -> None:
        """The line's movable units went from `before` to `after` (at its current key). O(log n)."""
        delta = after - before
        if not delta:
            return
        self.units.add(line, delta)
        self.total += delta
        key = line.key
        if after > 0:
            if before <= 0 and key not in self.keys:
                self.keys.add(key)
                heap = self.heap
                heappush(heap, -key)
                if len(heap) > 2 * len(self.keys) + 64:
                    heap[:] = [-k for k in self.keys]
                    heapify(heap)
        else:
            self.keys.discard(key)  # its heap entry goes stale

    def after(self, line: LineState) -> int:
        """Movable units of the lines after `line` in its SKU's line. O(ranks + log n)."""
        return self.total - self.units.ahead(line) - (line.allocated - line.firm)

    def last(self) -> int | None:
        """The key of the last line in line with movable units, or None. O(log n) amortised."""
        heap, keys = self.heap, self.keys
        while heap and -heap[0] not in keys:
            heappop(heap)
        return -heap[0] if heap else None


class ScheduledReceipt:
    """A scheduled receipt: `quantity` units of `sku` due at `arriving`."""

    __slots__ = ("arriving", "quantity", "reference", "seq", "sku")

    def __init__(
        self, reference: str, sku: str, quantity: int, arriving: datetime, seq: int
    ) -> None:
        self.reference = reference
        self.sku = sku
        self.quantity = quantity
        self.arriving = arriving
        self.seq = seq


class CheckoutHold:
    """A checkout hold: units allocated to nobody until confirmed or released."""

    __slots__ = ("expires_at", "hold_id", "quantity", "seq", "sku")

    def __init__(
        self, hold_id: str, sku: str, quantity: int, expires_at: datetime, seq: int
    ) -> None:
        self.hold_id = hold_id
        self.seq = seq
        self.sku = sku
        self.quantity = quantity
        self.expires_at = expires_at


class OrderRecord:
    """An order as placed (stamped), its rank, and its lines in line order:
    the record of an order of several lines (one of one line is its line, see
    `Record`), or of an order whose lines are not loaded yet (none)."""

    __slots__ = ("lines", "order", "rank")

    def __init__(self, order: Order, rank: int, lines: tuple[LineState, ...]) -> None:
        self.order = order
        self.rank = rank
        self.lines = lines


#: What the book keeps of one order: `order`, `rank` and `lines` in line
#: order. An order of one line is its `LineState` (whose `lines` is itself
#: and whose rank is its key's); `record_of` picks.
Record: TypeAlias = "OrderRecord | LineState"


def order_open(record: Record) -> bool:
    """Whether any line of the order is open (not every unit shipped or
    cancelled). O(lines)."""
    return any(line.ordered > line.shipped + line.cancelled for line in record.lines)


def deadline_entry(record: Record) -> tuple[datetime, int, str] | None:
    """The order's entry in `State.deadlines` as it would be kept there
    (fill-by time, arrival number, id), or None for an order without a
    deadline or whose lines are not loaded. O(1)."""
    deadline = record.order.deadline
    lines = record.lines
    if deadline is None or not lines:
        return None
    return (deadline, unpack(lines[0].key)[1], record.order.id)


def record_of(order: Order, rank: int, lines: tuple[LineState, ...]) -> Record:
    """The record of an order with these lines (keyed at `rank`)."""
    return lines[0] if len(lines) == 1 else OrderRecord(order, rank, lines)


def set_order(record: Record, order: Order, rank: int) -> None:
    """Give a record another order value and rank (its lines' keys are the
    caller's: a line record's rank is its key's)."""
    record.order = order
    if type(record) is OrderRecord:
        record.rank = rank


class State:
    """Everything a book holds. Shared by every book over one repository."""

    __slots__ = (
        "deadlines",
        "expected",
        "expected_seq",
        "expired_holds",
        "hold_expiry",
        "hold_seq",
        "holds",
        "journal",
        "ledger",
        "orders",
        "policy_id",
        "policy_saved",
        "seq",
        "skus",
    )

    def __init__(self) -> None:
        self.orders: dict[str, Record] = {}
        self.skus: dict[str, SkuState] = {}
        self.ledger = StockLedger()
        self.journal = LedgerWriter(self.ledger)  # the only way the engine writes it
        self.seq = 0
        # (deadline, seq, order_id) of every order with a fill-by deadline not
        # yet acted on, earliest first: expiry pops from the front.
        self.deadlines: SortedList[tuple[datetime, int, str]] = SortedList()
        self.holds: dict[str, CheckoutHold] = {}
        # (expires_at, hold_id) of every active hold, earliest first.
        self.hold_expiry: SortedList[tuple[datetime, str]] = SortedList()
        # ids of holds that expired, so confirming one says so
        self.expired_holds: set[str] = set()
        self.hold_seq = 0
        # every scheduled receipt by reference (a reference names one SKU)
        self.expected: dict[str, ScheduledReceipt] = {}
        self.expected_seq = 0
        # the identity of the policy the book is kept under (None: not yet
        # recorded), and whether the repository holds it already
        self.policy_id: str | None = None
        self.policy_saved = False


# Registering scheduled receipts and holds in the state and their SKU (shared by
# the book's operations and by loading stored rows).


def schedule(state: State, expected: ScheduledReceipt) -> None:
    state.expected[expected.reference] = expected
    sku = state.skus[expected.sku]
    sku.expected[expected.reference] = expected
    sku.schedule.add((expected.arriving, expected.seq, expected.reference))
    sku.supply = None


def unschedule(state: State, expected: ScheduledReceipt) -> None:
    del state.expected[expected.reference]
    sku = state.skus[expected.sku]
    del sku.expected[expected.reference]
    sku.schedule.remove((expected.arriving, expected.seq, expected.reference))
    sku.supply = None


def add_hold(state: State, hold: CheckoutHold) -> None:
    state.holds[hold.hold_id] = hold
    state.skus[hold.sku].holds[hold.hold_id] = hold
    state.hold_expiry.add((hold.expires_at, hold.hold_id))


def drop_hold(state: State, hold: CheckoutHold) -> None:
    del state.holds[hold.hold_id]
    sku = state.skus.get(hold.sku)
    if sku is not None:
        sku.holds.pop(hold.hold_id, None)
    state.hold_expiry.discard((hold.expires_at, hold.hold_id))
