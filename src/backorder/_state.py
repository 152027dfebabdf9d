"""The book's working state, kept lean: plain slotted records and sorted keys.

A waiting line is a `_Line` record; each SKU keeps the keys of its short lines
in a `SortedList`, ordered by `(rank, seq)` packed into one int, so the head
is `queue[0]`, a place or a cancel costs O(log n) and a position is
`queue.index(key)`. attrs values are built only at the API boundary.
"""

from __future__ import annotations

from datetime import datetime
from heapq import heapify, heappop, heappush

from sortedcontainers import SortedList

from .domain import Order
from .ledger import StockLedger

# seq is below 2**64 forever, so (rank, seq) packs into rank * 2**64 + seq and
# int comparison of packed keys is tuple comparison of (rank, seq).
SEQ_BITS = 64


def pack(rank: int, seq: int) -> int:
    """The queue key of arrival `seq` in class `rank`."""
    return (rank << SEQ_BITS) + seq


def unpack(key: int) -> tuple[int, int]:
    """The `(rank, seq)` a queue key was packed from."""
    return key >> SEQ_BITS, key & ((1 << SEQ_BITS) - 1)


class _Line:
    """One order line's counters. `backordered` is derived, never stored."""

    __slots__ = ("allocated", "cancelled", "key", "order", "ordered", "shipped", "sku")

    def __init__(self, order: Order, sku: str, key: int, ordered: int) -> None:
        self.order = order
        self.sku = sku
        self.key = key
        self.ordered = ordered
        self.allocated = 0
        self.shipped = 0
        self.cancelled = 0

    @property
    def backordered(self) -> int:
        return self.ordered - self.allocated - self.shipped - self.cancelled


class _Sku:
    """One SKU: its stock counters, its line of short lines, its held lines."""

    __slots__ = (
        "allocated",
        "held",
        "held_heap",
        "holds",
        "limit",
        "lines",
        "on_hand",
        "queue",
        "receipts",
        "short",
        "sku",
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
        self.held: set[int] = set()
        self.held_heap: list[int] = []
        # Every line ever placed on this SKU, by key.
        self.lines: dict[int, _Line] = {}
        # reference -> quantity of every receipt already counted.
        self.receipts: dict[str, int] = {}
        # Units backordered over all lines (kept, so a cap check is O(1)).
        self.short = 0
        # The backorder cap (None: no cap).
        self.limit: int | None = None
        # Active checkout holds on this SKU, oldest first.
        self.holds: dict[str, _Hold] = {}

    def hold(self, key: int) -> None:
        """Record that the line at `key` now has units allocated."""
        if key not in self.held:
            self.held.add(key)
            heap = self.held_heap
            heappush(heap, -key)
            if len(heap) > 2 * len(self.held) + 64:
                # drop the stale entries left by lazy deletion: O(held), amortised
                heap[:] = [-k for k in self.held]
                heapify(heap)

    def last_held(self) -> int:
        """The key of the held line last in line. The caller knows one exists."""
        heap, held = self.held_heap, self.held
        while -heap[0] not in held:
            heappop(heap)
        return -heap[0]


class _Hold:
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


class _OrderRecord:
    """An order as placed (stamped), its rank, and its lines in line order."""

    __slots__ = ("lines", "order", "rank")

    def __init__(self, order: Order, rank: int, lines: tuple[_Line, ...]) -> None:
        self.order = order
        self.rank = rank
        self.lines = lines


class _State:
    """Everything a book holds. Shared by every book over one repository."""

    __slots__ = (
        "deadlines",
        "expired_holds",
        "hold_expiry",
        "hold_seq",
        "holds",
        "ledger",
        "orders",
        "seq",
        "skus",
    )

    def __init__(self) -> None:
        self.orders: dict[str, _OrderRecord] = {}
        self.skus: dict[str, _Sku] = {}
        self.ledger = StockLedger()
        self.seq = 0
        # (deadline, seq, order_id) of every order with a fill-by deadline not
        # yet acted on, earliest first: expiry pops from the front.
        self.deadlines: SortedList[tuple[datetime, int, str]] = SortedList()
        self.holds: dict[str, _Hold] = {}
        # (expires_at, hold_id) of every active hold, earliest first.
        self.hold_expiry: SortedList[tuple[datetime, str]] = SortedList()
        # ids of holds that expired, so confirming one says so
        self.expired_holds: set[str] = set()
        self.hold_seq = 0
