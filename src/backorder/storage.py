"""Storage: where a book's state lives between operations and processes.

Two kinds of repository:

* `InMemoryRepository` (the default) holds the book's live state in this
  process. Nothing is copied or encoded, so it costs nothing per operation;
  it is gone when the process ends.
* A **row repository** stores the book as rows of a few plain tables and
  implements the `Repository` protocol below. `SQLiteRepository` is one;
  `backorder.testing.DictRepository` is the smallest possible one, to copy
  when writing an adapter of your own (Django ORM, SQLAlchemy, PostgreSQL),
  and `backorder.testing` holds the contract suite that proves an adapter.

How a book uses a row repository: it loads everything once (`load`), keeps
it in memory, and for each operation calls `begin()` (which must exclude
other writers, or let `commit` detect them), re-loads if the returned
version is not the one it last saw (another book or process committed in
between), applies the operation in memory, hands `write()` the rows that
changed and the events caused, and calls `commit()`. If anything raises
before `commit()` returns, the book calls `rollback()` and restores its
memory; nothing is half-written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import attrs

from ._state import _State
from .errors import ArgumentTypeError
from .events import Event

__all__ = [
    "Changes",
    "DeadlineRow",
    "ExpectedRow",
    "Header",
    "HoldRow",
    "InMemoryRepository",
    "LedgerRow",
    "LineRow",
    "OrderRow",
    "ReceiptRow",
    "Repository",
    "SkuRow",
    "Snapshot",
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


class ReceiptRow(NamedTuple):
    """A goods receipt already counted (key: `sku`, `reference`); never changes."""

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


@attrs.frozen(slots=True)
class Changes:
    """What one operation (or one batch) changed, for `Repository.write`.

    Rows under a key replace the row stored under that key (or add it);
    `*_deleted` name keys to remove; `ledger` rows, `expired_holds` and
    `events` (JSON text, one event each, in order) are appended.
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


class Header(NamedTuple):
    """What a lazily loaded book reads first (`load_header`, optional)."""

    version: int
    counters: Mapping[str, int]
    #: the number of the last ledger entry
    ledger_seq: int
    expired_holds: Sequence[str]
    #: every SKU with an active hold (a lazy book loads them at once)
    held_skus: Sequence[str]


@runtime_checkable
class Repository(Protocol):
    """What a `BackorderBook` needs from a row store (see the module text).

    One unit of work is `begin()`, any number of `write()`, then `commit()`
    or `rollback()`. A book makes one unit of work per operation, or one per
    `book.batch()` block.
    """

    def load(self) -> Snapshot:
        """Every row, read consistently (one snapshot), with the version."""
        ...

    def version(self) -> int:
        """The commit counter now: it moves with every commit, by any writer."""
        ...

    def begin(self) -> int:
        """Start a unit of work and return the version it starts from.

        Either exclude other writers until `commit`/`rollback` (SQLite does),
        or let `commit` raise `ConcurrencyConflict` if the version moved.
        """
        ...

    def write(self, changes: Changes) -> None:
        """Stage `changes` in the unit of work: all of them or, raising, none."""
        ...

    def commit(self) -> int:
        """Make the unit of work durable, all or nothing, and return the new
        version. Raises `ConcurrencyConflict` if another writer committed
        since `begin()` (the book then re-loads and retries the operation)."""
        ...

    def rollback(self) -> None:
        """Drop what the unit of work staged and end it. Harmless when none is open."""
        ...

    def pending_events(self, limit: int | None = None) -> list[tuple[int, str]]:
        """The outbox: `(id, event JSON)` of events not yet marked published,
        oldest first, at most `limit`. Ids increase with every event written."""
        ...

    def mark_published(self, ids: Sequence[int]) -> int:
        """Take these events out of the outbox (in one commit); return how many were there."""
        ...

    def close(self) -> None:
        """Release the store (a connection, a file). Harmless when already closed."""
        ...


class InMemoryRepository:
    """Keeps a book's state in memory, for as long as this object lives.

    Not a row store: the book works on the live state held here directly, so
    it costs nothing per operation. Two books over the same
    `InMemoryRepository` share one state: what one book does the other sees,
    which is how a test reopens a book.

    Args:
        outbox: keep every event until `book.mark_published` takes it out
            (`book.pending_events()`). Off by default: a process that never
            marks events published would otherwise hold every event forever.

    Cost: O(1) per operation; memory O(orders + ledger entries), plus the
    events waiting in the outbox when `outbox=True`.
    """

    __slots__ = ("_events", "_next_event", "_outbox", "_state")

    def __init__(self, outbox: bool = False) -> None:
        """Make an empty repository. Cost: O(1)."""
        if type(outbox) is not bool:
            raise ArgumentTypeError(
                f"outbox must be a bool, got {type(outbox).__name__} {outbox!r}"
            )
        self._state = _State()
        self._outbox = outbox
        self._events: dict[int, Event] = {}
        self._next_event = 0

    @property
    def outbox(self) -> bool:
        """Whether events are kept until marked published. Cost: O(1)."""
        return self._outbox

    def __repr__(self) -> str:
        return (
            f"<InMemoryRepository {len(self._state.orders)} orders, "
            f"{len(self._state.skus)} SKUs, {len(self._events)} events pending>"
        )
