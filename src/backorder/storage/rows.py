"""The rows a row repository stores, and the changes a book hands it.

Every table of a book is a `NamedTuple` row type here; `Changes` is what one
operation (or one batch) wrote, `Snapshot` everything a repository holds,
`Header` what a lazily loaded book reads first. `merge` folds the changes
of a unit of work into one write per key (shared by every adapter).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import attrs

__all__ = [
    "WRITE_EVERY",
    "Changes",
    "DeadlineRow",
    "ExpectedRow",
    "Header",
    "HoldRow",
    "LedgerRow",
    "LineRow",
    "Merged",
    "OrderRow",
    "ReceiptRow",
    "ReturnRow",
    "SkuRow",
    "Snapshot",
    "fold",
    "merge",
    "staged_with",
]

#: The names of the counters a repository keeps for the book.
COUNTERS = ("seq", "hold_seq", "expected_seq")


class SkuRow(NamedTuple):
    """A SKU's counters and settings (key: `sku`)."""

    sku: str
    on_hand: int
    allocated: int
    #: arrival numbers handed out on this SKU so far
    slots: int
    #: the backorder cap, None for none
    limit: int | None
    #: the supplier lead time in whole microseconds, None for none
    lead_time_us: int | None


class OrderRow(NamedTuple):
    """An order as placed (key: `order_id`). `order` is JSON text."""

    order_id: str
    #: the book's arrival number of the order
    seq: int
    #: the policy's rank of the order (changes with its tier)
    rank: int
    order: str


class LineRow(NamedTuple):
    """One order line's counters (key: `order_id`, `sku`)."""

    order_id: str
    sku: str
    rank: int
    seq: int
    #: the line's arrival number on its SKU
    slot: int
    ordered: int
    allocated: int
    shipped: int
    cancelled: int
    #: of the allocated units, those marked firm
    firm: int = 0
    #: of the shipped units, those that came back
    returned: int = 0


class ReceiptRow(NamedTuple):
    """A goods receipt already counted (key: `sku`, `reference`); never changes."""

    sku: str
    reference: str
    quantity: int


class ReturnRow(NamedTuple):
    """A return already counted (key: `order_id`, `sku`, `reference`); never changes."""

    order_id: str
    sku: str
    reference: str
    quantity: int


class HoldRow(NamedTuple):
    """An active checkout hold (key: `hold_id`). Times are ISO 8601 text."""

    hold_id: str
    sku: str
    quantity: int
    expires_at: str
    seq: int


class ExpectedRow(NamedTuple):
    """A scheduled receipt (key: `reference`)."""

    reference: str
    sku: str
    quantity: int
    arriving: str
    seq: int


class DeadlineRow(NamedTuple):
    """An order's fill-by deadline not yet acted on (key: `order_id`)."""

    order_id: str
    deadline: str
    seq: int


class LedgerRow(NamedTuple):
    """One ledger entry (key: `seq`); append-only."""

    seq: int
    kind: str
    sku: str
    on_hand_delta: int
    allocated_delta: int
    order_id: str | None
    reference: str | None
    at: str
    on_hand: int
    allocated: int


@attrs.frozen(slots=True)
class Snapshot:
    """Everything a row repository holds, as `load()` returns it.

    Rows of `skus` and `orders` come in the order they were first written
    (the book's order of SKUs and orders); the others in any order.
    `version` is the repository's commit counter at the time of the read.
    """

    version: int
    counters: Mapping[str, int]
    skus: Sequence[SkuRow]
    orders: Sequence[OrderRow]
    lines: Sequence[LineRow]
    receipts: Sequence[ReceiptRow]
    holds: Sequence[HoldRow]
    expired_holds: Sequence[str]
    expected: Sequence[ExpectedRow]
    deadlines: Sequence[DeadlineRow]
    ledger: Sequence[LedgerRow]
    #: the identity of the policy the book is kept under (None: not recorded)
    policy: str | None = None
    returns: Sequence[ReturnRow] = ()


@attrs.frozen(slots=True)
class Changes:
    """What one operation (or one batch) changed, for `Repository.write`.

    Rows under a key replace the row stored under that key (or add it);
    `*_deleted` name keys to remove; `ledger` rows, `receipts`, `returns`,
    `expired_holds` and `events` (JSON text, one event each, in order) are
    appended.
    `counters` holds the new value of every counter in `COUNTERS`.
    """

    counters: Mapping[str, int]
    skus: Sequence[SkuRow] = ()
    orders: Sequence[OrderRow] = ()
    lines: Sequence[LineRow] = ()
    receipts: Sequence[ReceiptRow] = ()
    holds: Sequence[HoldRow] = ()
    holds_deleted: Sequence[str] = ()
    expired_holds: Sequence[str] = ()
    expired_holds_deleted: Sequence[str] = ()
    expected: Sequence[ExpectedRow] = ()
    expected_deleted: Sequence[str] = ()
    deadlines: Sequence[DeadlineRow] = ()
    deadlines_deleted: Sequence[str] = ()
    ledger: Sequence[LedgerRow] = ()
    events: Sequence[str] = ()
    #: a new policy identity to record (None: unchanged)
    policy: str | None = None
    returns: Sequence[ReturnRow] = ()


class Header(NamedTuple):
    """What a lazily loaded book reads first (`load_header`, optional)."""

    version: int
    counters: Mapping[str, int]
    #: the number of the last ledger entry
    ledger_seq: int
    expired_holds: Sequence[str]
    #: every SKU with an active hold (a lazy book loads them at once)
    held_skus: Sequence[str]
    #: the identity of the policy the book is kept under (None: not recorded)
    policy: str | None = None


class Merged:
    """The changes of one unit of work folded per key: the last write of a
    key wins; None (or False for an expired hold id) means it went away.
    Appended rows (receipts, returns, ledger, events) keep their order. A
    hold or scheduled receipt written and gone in the same unit keeps its
    last row in `vanished`, so that the store can keep it as gone: its
    number stays counted (PostgreSQL reads its counters back from the rows)."""

    __slots__ = (
        "counters",
        "deadlines",
        "events",
        "expected",
        "expired_holds",
        "holds",
        "ledger",
        "lines",
        "orders",
        "policy",
        "receipts",
        "returns",
        "skus",
        "vanished",
    )

    def __init__(self) -> None:
        self.policy: str | None = None
        self.skus: dict[str, SkuRow] = {}
        self.orders: dict[str, OrderRow] = {}
        self.lines: dict[tuple[str, str], LineRow] = {}
        self.holds: dict[str, HoldRow | None] = {}
        self.expected: dict[str, ExpectedRow | None] = {}
        self.deadlines: dict[str, DeadlineRow | None] = {}
        self.receipts: list[ReceiptRow] = []
        self.returns: list[ReturnRow] = []
        self.expired_holds: dict[str, bool] = {}  # id -> still expired
        self.ledger: list[LedgerRow] = []
        self.events: list[str] = []
        self.counters: dict[str, int] = {}
        self.vanished: dict[str, HoldRow | ExpectedRow] = {}  # "table:key" -> last row


def merge(staged: Sequence[Changes]) -> Merged:
    """Fold the changes of a unit of work into one write per key. O(rows)."""
    merged = Merged()
    fold(merged, staged)
    return merged


#: How many operations a unit of work folds before it writes them (in a long
#: batch: what is staged stays young for the garbage collector).
WRITE_EVERY = 500


def staged_with(staged: Merged | None, changes: Changes) -> Merged:
    """`staged` (a new `Merged` when None) with one operation's `changes`
    folded in: what a unit of work keeps between writes. O(rows)."""
    if staged is None:
        staged = Merged()
    fold(staged, (changes,))
    return staged


def fold(merged: Merged, staged: Iterable[Changes]) -> None:
    """Fold more changes into `merged` (see `merge`). O(rows)."""
    skus, orders, lines = merged.skus, merged.orders, merged.lines
    holds, expected, deadlines = merged.holds, merged.expected, merged.deadlines
    expired, vanished = merged.expired_holds, merged.vanished
    for changes in staged:
        for sku in changes.skus:
            skus[sku.sku] = sku
        for order in changes.orders:
            orders[order.order_id] = order
        for line in changes.lines:
            lines[line.order_id, line.sku] = line
        merged.receipts.extend(changes.receipts)
        merged.returns.extend(changes.returns)
        for hold in changes.holds:
            holds[hold.hold_id] = hold
        for hold_id in changes.holds_deleted:
            was = holds.get(hold_id)
            if was is not None:  # (written in this unit: keep it, as gone)
                vanished["holds:" + hold_id] = was
            holds[hold_id] = None
        for hold_id in changes.expired_holds:
            expired[hold_id] = True
        for hold_id in changes.expired_holds_deleted:
            expired[hold_id] = False
        for item in changes.expected:
            expected[item.reference] = item
        for reference in changes.expected_deleted:
            was_expected = expected.get(reference)
            if was_expected is not None:
                vanished["expected:" + reference] = was_expected
            expected[reference] = None
        for deadline in changes.deadlines:
            deadlines[deadline.order_id] = deadline
        for order_id in changes.deadlines_deleted:
            deadlines[order_id] = None
        merged.ledger.extend(changes.ledger)
        merged.events.extend(changes.events)
        merged.counters.update(changes.counters)
        if changes.policy is not None:
            merged.policy = changes.policy
