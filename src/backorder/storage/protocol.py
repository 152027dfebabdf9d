"""The storage protocols: what a book needs from a row store.

`Repository` is the whole of what is required. A repository that can say
what changed since a version (`IncrementalRepository`) lets a book catch up
with other writers by reading only that; one that can load a SKU at a time
(`LazyRepository`, with `lazy` true) lets a book open without reading
everything. A book checks for both with `isinstance` when it is made.

How a book uses a row repository: for each operation it calls `begin()`
(which must exclude other writers, or let `commit` detect them), catches up
if the returned version is not the one it last saw (another book or process
committed in between), applies the operation in memory, hands `write()` the
rows that changed and the events caused, and calls `commit()`. If anything
raises before `commit()` returns, the book calls `rollback()` and restores
its memory; nothing is half-written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from .rows import Changes, Header, ReceiptRow, Snapshot

__all__ = [
    "ClaimingRepository",
    "IncrementalRepository",
    "LazyRepository",
    "LockingRepository",
    "OrderLoadingRepository",
    "Repository",
    "StreamingRepository",
]


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
        """The commit counter now: it moves with every commit, by any writer
        (or any number that differs from the version the book last saw
        whenever another writer committed since, as PostgreSQL's does)."""
        ...

    def begin(self) -> int:
        """Start a unit of work and return the version it starts from (or,
        like `version()`, a number that differs from the book's when another
        writer committed since).

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


@runtime_checkable
class ClaimingRepository(Repository, Protocol):
    """A repository whose outbox serves several senders (optional; every
    built-in repository has it). A book over a repository without it keeps
    leases in the book (disjoint among the book's threads only)."""

    def claim_events(self, limit: int, lease_us: int, now_us: int) -> list[tuple[int, str]]:
        """Lease the oldest events no running lease holds, atomically.

        Return `(id, event JSON)` of at most `limit` unpublished events,
        oldest first, whose lease is none or ran out (`leased until <=
        now_us`), and lease each until `now_us + lease_us` (microseconds
        since the epoch, on the caller's clock), all in one transaction.
        Two calls, from any threads, processes or machines, never return
        the same event while its lease runs; an event whose lease ran out
        is returned again. `mark_published` removes an event whatever its
        lease; `pending_events` ignores leases. Outside any unit of work
        (the book never claims inside one).

        A SQL store: `UPDATE outbox SET leased_until_us = :until WHERE id IN
        (SELECT id FROM outbox WHERE leased_until_us IS NULL OR
        leased_until_us <= :now ORDER BY id LIMIT :limit [FOR UPDATE SKIP
        LOCKED]) RETURNING id, event` (SQLite takes its write lock instead).
        """
        ...


@runtime_checkable
class IncrementalRepository(Repository, Protocol):
    """A repository that can say what changed since a version (optional)."""

    def load_changes(self, since: int) -> tuple[int, Changes]:
        """What every commit after version `since` wrote, as one `Changes`
        (rows as they are now; keys that went away in `*_deleted`), and the
        version it brings the reader to."""
        ...


@runtime_checkable
class StreamingRepository(Repository, Protocol):
    """A repository that can hand over everything in parts (optional): a
    book loading the whole book then never holds every row at once."""

    def load_parts(self) -> Iterator[Snapshot]:
        """Every row `load` would return, in parts read consistently: the
        first part holds the SKUs, the counters and the policy; then the
        orders in arrival order, each part with every line of its orders;
        the last part every other row (receipts, holds, scheduled receipts,
        deadlines, the ledger, returns). Every part carries the version and
        counters of the read. Raises as `load` does, as it is iterated
        (`ConnectionLost`: the book loads again once). Cost: O(rows) in all,
        memory of one part's rows at a time."""
        ...


@runtime_checkable
class LazyRepository(IncrementalRepository, Protocol):
    """A repository a book can load one SKU at a time (optional). A book
    loads lazily only when `lazy` is true."""

    @property
    def lazy(self) -> bool:
        """Whether a book over this repository should load lazily."""
        ...

    def load_header(self) -> Header:
        """What a lazily loaded book reads before any SKU."""
        ...

    def load_skus(self, names: Sequence[str]) -> Changes:
        """What a book needs of these SKUs: their rows, at least their open
        lines (shipped + cancelled < ordered) with the orders of those lines
        and all their lines, their receipts, returns counted, active holds,
        scheduled receipts, and at least the last ledger entry of each.

        A repository that is also an `OrderLoadingRepository` may leave out
        closed lines whose order has no open line on these SKUs, receipts,
        and ledger entries before the last: the book reads those orders with
        `load_orders` and receipt references with `load_receipts` when an
        operation names them, and the whole ledger with `load`. Without
        them, it must return every line and receipt of the SKUs."""
        ...

    def locate(self, order_ids: Sequence[str], references: Sequence[str]) -> list[str]:
        """The SKUs of these orders' lines and of these scheduled receipts."""
        ...

    def due(self, until: str) -> list[str]:
        """The SKUs of the open lines of orders whose fill-by deadline passes by
        `until` (ISO 8601)."""
        ...


@runtime_checkable
class OrderLoadingRepository(LazyRepository, Protocol):
    """A lazy repository whose SKU loads leave history out (optional): a
    book reads a closed order by id, and a receipt reference counted, when
    an operation names it."""

    def load_orders(self, order_ids: Sequence[str]) -> Changes:
        """These orders (open or closed), with all their lines and their
        active deadlines; ids not stored are left out."""
        ...

    def load_receipts(self, receipts: Sequence[tuple[str, str]]) -> list[ReceiptRow]:
        """The receipts counted under these `(sku, reference)` keys; keys
        never counted are left out."""
        ...


@runtime_checkable
class LockingRepository(IncrementalRepository, Protocol):
    """A repository whose writers lock what each operation touches, so
    writers on different SKUs work at once (`PostgresRepository`).

    A book over one starts a unit of work with `begin_unlocked()` instead of
    `begin()`, then, before the operation runs, locks the SKUs it names
    (`lock_skus`, those of the orders and receipts it names found with
    `locate`) or, for an operation that names none (a sweep, a policy
    switch), the whole book (`lock_book`); each returns the copy's version,
    or -1 when something committed since (the book catches up then, with
    the locks held). Rows the book writes are of SKUs it locked: a row of
    another SKU makes it lock that one too and run the operation again.
    Counters and ledger numbers are drawn from the copy after catching up
    (above everything committed on the SKUs locked), so they rise per SKU in
    commit order; two SKUs may share a number, and a key two writers chose
    at once (an order id, a generated hold id) makes the later commit lose a
    race (`CommitRace`) and run again.
    """

    def begin_unlocked(self) -> None:
        """Start a unit of work that holds no lock yet.

        Raises:
            ConnectionLost: the store cannot be reached.
            RepositoryClosed: the repository is closed.

        Cost: one round trip to the store.
        """
        ...

    def lock_skus(self, skus: Sequence[str]) -> int:
        """Lock these SKUs until the unit of work ends (after the book's
        shared lock, in one fixed order); return the copy's version, or -1
        when something committed since it (read once the locks are held).

        Raises:
            ConcurrencyConflict: a SKU stayed locked past the timeout, or no
                unit of work is open.
            CommitRace: the store found a deadlock (the book runs the
                operation again; inside a batch it surfaces as the
                `ConcurrencyConflict` it is).

        Cost: one round trip plus the wait for writers of these SKUs.
        """
        ...

    def lock_book(self) -> int:
        """Lock the whole book until the unit of work ends (no other writer
        runs); return the copy's version or -1, as `lock_skus`.

        Raises:
            ConcurrencyConflict: another writer held the book past the timeout.
            CommitRace: the store found a deadlock (run again).

        Cost: one round trip plus the wait for every writer at work.
        """
        ...
