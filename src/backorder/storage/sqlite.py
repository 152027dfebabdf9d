"""`SQLiteRepository`: a book in one SQLite file, safe for several processes.

Its reads (`load`, `load_skus`, ...) are those of its base class
`SQLiteReads` (`storage.sqlite_reads`)."""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from ..errors import (
    ArgumentTypeError,
    ConcurrencyConflict,
    InvalidArgument,
    NotABackorderDatabase,
    RepositoryClosed,
    StorageCorrupted,
    StorageError,
    UnsupportedSchema,
)
from .rows import WRITE_EVERY, Changes, Merged, staged_with
from .sql import KINDS as _KINDS
from .sql import micros, statement_rows
from .sqlite_reads import _GONE_KEYS, _HEAD_NAMES, _SQL, SQLiteReads, _mapped, _storage_error
from .sqlite_schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, inspect_file

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "SQLiteRepository"]


# Connections a forked child inherited and must not close (see `close`).
_FORKED_AWAY: list[sqlite3.Connection] = []
# This process's id, kept current in a forked child (`os.register_at_fork`):
# each operation checks it, and `os.getpid()` is a system call.
_PID = [os.getpid()]


def _forked() -> None:
    _PID[0] = os.getpid()


if hasattr(os, "register_at_fork"):  # (not on Windows, which never forks)
    os.register_at_fork(after_in_child=_forked)
# The change log: a commit's counters and keys (see `sqlite_schema`, v6).
_COMMIT_ROW = (
    "INSERT INTO change_log (version, seq, hold_seq, expected_seq, event_seq, keys)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
#: the most keys of one table a commit lists; more, and readers read that
#: table by its `changed` column (a scan)
KEYS_LISTED = 2_000
#: change-log rows kept: a reader further behind loads again
COMMITS_KEPT = 50_000
_PRUNE_EVERY = 1_000
# A line whose key and closed counts stay is updated without touching the
# columns `lines_open` and `lines_closed` are made of (SQLite rewrites an
# index entry whenever an UPDATE assigns one of its columns, equal or not:
# a page per line); what that misses (new lines, moved or closed ones) goes
# through the upsert, which leaves alone a row already stored exactly so.
_LINE_COUNTS = (
    "UPDATE lines SET slot = ?, allocated = ?, firm = ?, returned = ?, changed = ?"
    " WHERE order_id = ? AND sku = ? AND rank = ? AND seq = ? AND shipped = ? AND cancelled = ?"
)
_LINE_VALUES = ("rank", "seq", "slot", "allocated", "shipped", "cancelled", "firm", "returned")
_LINE_UPSERT = (
    _SQL.upsert["lines"]
    + f" WHERE ({', '.join('lines.' + c for c in (*_LINE_VALUES, 'changed'))})"
    + f" <> ({', '.join('excluded.' + c for c in (*_LINE_VALUES, 'changed'))})"
)
_TOUCH_LINES = "UPDATE lines SET changed = ? WHERE order_id = ? AND changed <> ?"
_OUTBOX_INSERT = "INSERT INTO outbox (id, event) VALUES (?, ?)"
_LAST_ENTRY = "UPDATE skus SET last_entry = ? WHERE sku = ?"


class SQLiteRepository(SQLiteReads):
    """A book kept in one SQLite file (the standard library's `sqlite3`).

    WAL journal, `synchronous=FULL` (a commit is on disk before an operation
    returns), foreign keys on, every value passed as a parameter. A
    `schema_version` table and `PRAGMA application_id` mark the file as a
    book; older schemas are migrated forward on open.

    Several processes may open one file: `begin()` takes SQLite's write lock
    (`BEGIN IMMEDIATE`), so writers take turns, and each book re-loads what
    the others committed before it applies an operation: no lost update and
    no double allocation. A writer that waits longer than `timeout` seconds
    for the lock gets `ConcurrencyConflict`.

    Args:
        path: the database file (created if missing), or `":memory:"`.
        timeout: seconds to wait for another process's write.

    Raises:
        ArgumentTypeError: `path` is not a str or path, `timeout` not a number.
        InvalidArgument: `timeout` is not finite or above a day.
        NotABackorderDatabase: the file is not a SQLite database, or is one
            of another program; it is left byte for byte as it was.
        UnsupportedSchema: the file was written by a newer version.

    Cost: opening O(1) (plus a migration once); see each method.
    """

    #: `write` only folds rows into the unit of work (written at `commit()`,
    #: or every 500 operations or lines): a book's batch may hand it the rows
    #: of many operations at once, each row built once.
    write_folds = True

    __slots__ = (
        "_conn",
        "_count",
        "_failed",
        "_first_entry",
        "_keys",
        "_meta",
        "_path",
        "_pid",
        "_staged",
        "_version",
        "lazy",
        "rows_read",
    )

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 30.0, lazy: bool = True
    ) -> None:
        """Open (or create) the book database at `path`. Cost: O(1)."""
        if type(lazy) is not bool:
            raise ArgumentTypeError(f"lazy must be a bool, got {type(lazy).__name__} {lazy!r}")
        #: a book over this repository loads SKUs as operations need them
        self.lazy = lazy
        #: rows read by lazy loads so far, by table (`load_skus`,
        #: `load_orders`): what a load costs, for tests and benchmarks
        self.rows_read: dict[str, int] = dict.fromkeys(_KINDS, 0)
        if not isinstance(path, (str, os.PathLike)):
            raise ArgumentTypeError(
                f"path must be a str or os.PathLike, got {type(path).__name__} {path!r}"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ArgumentTypeError(f"timeout must be a number >= 0, got {timeout!r}")
        if not math.isfinite(timeout) or timeout > 86_400:
            raise InvalidArgument(
                f"timeout must be a number of seconds from 0 to 86400, got {timeout!r}"
            )
        self._path = os.fspath(path)
        if not isinstance(self._path, str):
            raise ArgumentTypeError(f"path must name a file as text, got {self._path!r}")
        if (
            self._path != ":memory:"
            and os.path.exists(self._path)
            and os.path.getsize(self._path) > 0
        ):
            try:
                inspect_file(self._path)
            except (sqlite3.Error, UnicodeError) as exc:  # a damaged header or schema
                raise StorageCorrupted(f"{self._path!r} cannot be read: {str(exc)[:200]}") from exc
        # Any thread may use the connection: the book runs one call at a time
        # (its lock), which is what sqlite3's same-thread check stood for.
        try:
            conn = sqlite3.connect(
                self._path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _storage_error(exc, self._path) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(conn)
        except (sqlite3.Error, UnicodeError) as exc:
            conn.close()
            raise _storage_error(exc, self._path) from exc
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn
        self._pid = _PID[0]
        self._version = 0
        # the counters as this unit of work has moved them (read from the
        # change log's last row at `begin`; its own row records them at commit)
        self._meta: dict[str, int] = {}
        # the keys this unit of work wrote, by table (None: too many to list)
        self._keys: dict[str, set[Any] | None] = {}
        # the first ledger entry this unit of work wrote (the change log's
        # "ledger": catching up reads the ledger's key from it)
        self._first_entry: int | None = None
        self._staged: Merged | None = None  # this unit of work's rows not yet written
        self._count = 0  # the operations folded into them
        self._failed: BaseException | None = None

    @property
    def path(self) -> str:
        """The database file, as given. Cost: O(1)."""
        return self._path

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"<SQLiteRepository {self._path!r} {state}>"

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # A book of this schema opens without the write lock (a long batch of
        # another process must not keep readers out); anything else is
        # looked at again under the lock, and migrated there.
        try:
            row = conn.execute(
                "SELECT max(version) FROM schema_version"
                " WHERE (SELECT count(*) FROM sqlite_master WHERE name = 'meta') = 1"
            ).fetchone()
        except sqlite3.OperationalError:
            row = None  # no schema_version table yet
        if row is not None and row[0] == SCHEMA_VERSION:
            return
        # Tables are rebuilt with foreign keys off (they can only be switched
        # outside a transaction); every reference is checked before the commit.
        conn.execute("PRAGMA foreign_keys = OFF")
        try:
            self._migrate_locked(conn)
        finally:
            conn.execute("PRAGMA foreign_keys = ON")

    def _migrate_locked(self, conn: sqlite3.Connection) -> None:
        self._lock(conn)
        try:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
            if "schema_version" in tables:
                (current,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
                current = int(current or 0)
            elif tables:
                raise NotABackorderDatabase(
                    f"{self._path!r} is a database of another program "
                    f"(tables {sorted(tables)[:8]!r})"
                )
            else:
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                current = 0
            if current > SCHEMA_VERSION:
                raise UnsupportedSchema(
                    f"{self._path!r} has schema version {current}, newer than {SCHEMA_VERSION}"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            broken = conn.execute("PRAGMA foreign_key_check").fetchmany(3)
            if broken:
                raise StorageCorrupted(
                    f"{self._path!r} has rows that refer to rows it does not hold "
                    f"(table, row, parent: {broken!r}); it was left as it was"
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _lock(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise ConcurrencyConflict(
                f"{self._path!r} stayed locked by another writer past the timeout: {exc}"
            ) from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RepositoryClosed(f"the repository {self._path!r} is closed")
        if _PID[0] != self._pid:
            raise StorageError(
                f"this book of {self._path!r} was opened in process {self._pid} and is "
                f"used in process {_PID[0]} after a fork; a SQLite connection must "
                f"not cross a fork: open the book in each worker process after it "
                f"forked (e.g. on its first request, or in a post-fork hook)"
            )
        return self._conn

    def _fresh(self) -> sqlite3.Connection:
        # A connection whose reads see this unit of work's staged rows too.
        conn = self._connection()
        if self._staged is not None:
            self._flush(conn)
        return conn

    @_mapped
    def begin(self) -> int:
        """Take the write lock and return the version it starts from.

        Raises:
            ConcurrencyConflict: another process held the lock past the timeout.
            RepositoryClosed: closed.

        Cost: O(1) plus the wait for other writers.
        """
        conn = self._connection()
        self._lock(conn)
        self._staged, self._count = None, 0
        self._failed = None
        self._keys = {}
        self._first_entry = None
        self._version, self._meta = self._head(conn, True)
        return self._version

    @_mapped
    def write(self, changes: Changes) -> None:
        """Stage one operation's rows in the unit of work.

        Rows are folded into one per key as they come and written at
        `commit()` (or every 500 operations, or 500 lines, in a long batch), one
        `executemany` per table: a batch costs a few statements, not a few
        per operation. If writing
        fails, the whole unit of work is rolled back and this and every
        later `write`/`commit` of it raises.

        Raises:
            ConcurrencyConflict: no unit of work is open.
            StorageError: an earlier write of this unit of work failed.
            StorageError: SQLite could not write (the unit of work is then void).

        Cost: O(1); O(rows) when it writes.
        """
        conn = self._connection()
        if not conn.in_transaction:
            raise ConcurrencyConflict("write() outside a unit of work: call begin() first")
        if self._failed is not None:
            raise StorageError(
                f"an earlier write of this unit of work failed ({self._failed!r}); "
                f"it was rolled back"
            ) from self._failed
        self._staged = staged_with(self._staged, changes)
        self._count += max(1, len(changes.lines))  # (a batch's rows may come at once)
        if self._count >= WRITE_EVERY:
            self._flush(conn)

    def _flush(self, conn: sqlite3.Connection) -> None:
        staged, self._staged, self._count = self._staged, None, 0
        if staged is None:
            return
        try:
            self._store(conn, staged)
        except BaseException as exc:
            self._failed = exc
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _store(self, conn: sqlite3.Connection, merged: Merged) -> None:
        # The rows merged per key (the last write of a key wins), one
        # executemany per table.
        self._note_keys(merged)
        run = conn.executemany
        changed = self._version + 1
        extra = {"deadlines": lambda row: (micros(row[1]),)}
        for table, rows in statement_rows(merged, changed, extra):
            if table == "lines":
                self._store_lines(conn, merged, rows, changed)
            elif table.endswith(":gone"):
                name = table[: -len(":gone")]
                key = _GONE_KEYS[name]
                # table and key names come from this module, never from a user
                run(f"UPDATE {name} SET gone = 1, changed = ? WHERE {key} = ?", rows)
            else:
                run(_SQL.upsert[table], rows)
        if merged.expired_holds:
            run(
                "INSERT INTO expired_holds (hold_id, gone, changed) VALUES (?, ?, ?)"
                " ON CONFLICT (hold_id) DO UPDATE SET gone = excluded.gone,"
                " changed = excluded.changed",
                [
                    (hold_id, int(not still), changed)
                    for hold_id, still in merged.expired_holds.items()
                ],
            )
        if merged.ledger:  # each SKU's last entry, on its row (see `load_skus`)
            last: dict[str, int] = {}
            for row in merged.ledger:
                last[row.sku] = max(row.seq, last.get(row.sku, row.seq))
            run(_LAST_ENTRY, [(seq, sku) for sku, seq in last.items()])
        meta = self._meta
        meta.update(merged.counters)
        if merged.events:
            first = meta["event_seq"] + 1
            run(_OUTBOX_INSERT, enumerate(merged.events, first))
            meta["event_seq"] = first + len(merged.events) - 1
        if merged.policy is not None:
            conn.execute(
                "INSERT INTO settings (name, value, changed) VALUES ('policy', ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
                " changed = excluded.changed",
                (merged.policy, changed),
            )

    def _note_keys(self, merged: Merged) -> None:
        # The keys of these rows, into this unit of work's change-log entry.
        keys = self._keys
        for table, written in (
            ("skus", merged.skus),
            ("orders", merged.orders),
            ("lines", merged.lines),
            ("receipts", [(row.sku, row.reference) for row in merged.receipts]),
            ("returns", [(row.order_id, row.sku, row.reference) for row in merged.returns]),
            ("holds", merged.holds),
            ("expected", merged.expected),
            ("deadlines", merged.deadlines),
            ("expired_holds", merged.expired_holds),
        ):
            if not written:
                continue
            if table not in keys:
                keys[table] = set()
            listed = keys[table]
            if listed is not None:
                listed.update(written)
                if len(listed) > KEYS_LISTED:
                    keys[table] = None
        if merged.ledger and self._first_entry is None:  # (the rest follow it in the key)
            self._first_entry = min(row.seq for row in merged.ledger)

    def _keys_text(self) -> str:
        # This unit of work's keys as the change log keeps them (JSON).
        wrote: dict[str, Any] = {
            table: "*" if listed is None else list(listed) for table, listed in self._keys.items()
        }
        if self._first_entry is not None:
            wrote["ledger"] = self._first_entry
        return json.dumps(wrote, separators=(",", ":"))

    @staticmethod
    def _store_lines(
        conn: sqlite3.Connection, merged: Merged, rows: list[tuple[Any, ...]], changed: int
    ) -> None:
        # Lines of orders written now (placed, re-ranked) by the upsert; the
        # others first as counts only (see `_LINE_COUNTS`).
        orders = merged.orders
        kept = [row for row in rows if row[0] not in orders]
        if kept:
            conn.executemany(
                _LINE_COUNTS,
                [
                    (r[4], r[6], r[9], r[10], changed, r[0], r[1], r[2], r[3], r[7], r[8])
                    for r in kept
                ],
            )
        conn.executemany(_LINE_UPSERT, rows)
        # an order written without its lines (not something a book does) still
        # marks them written now, so catching up reads the order
        covered = {row[0] for row in rows}
        missing = [(changed, order_id, changed) for order_id in orders if order_id not in covered]
        if missing:
            conn.executemany(_TOUCH_LINES, missing)

    @_mapped
    def commit(self) -> int:
        """Write what was staged, bump the version and commit (durable on
        return: `synchronous=FULL`). All or nothing.

        Raises:
            StorageError: a write of this unit of work failed (rolled back).
            StorageError: SQLite could not commit (rolled back): disk full,
                read-only media; StorageCorrupted: the file is damaged.

        Cost: O(rows staged) plus one fsync.
        """
        conn = self._connection()
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise StorageError(
                f"a write of this unit of work failed ({failed!r}); it was rolled back"
            ) from failed
        if self._staged is not None:
            self._flush(conn)
        version = self._version + 1
        meta = self._meta
        conn.execute(
            _COMMIT_ROW,
            (version, *(meta.get(name, 0) for name in _HEAD_NAMES), self._keys_text()),
        )
        if version % _PRUNE_EVERY == 0 and version > COMMITS_KEPT:
            conn.execute("DELETE FROM change_log WHERE version <= ?", (version - COMMITS_KEPT,))
        conn.execute("COMMIT")
        self._version = version
        return version

    def rollback(self) -> None:
        """Drop the open unit of work, if any. Cost: O(rows staged)."""
        self._staged, self._count = None, 0
        self._failed = None
        self._keys = {}
        self._first_entry = None
        conn = self._conn
        if conn is not None and conn.in_transaction:
            conn.execute("ROLLBACK")

    @_mapped
    def pending_events(self, limit: int | None = None) -> list[tuple[int, str]]:
        """`(id, event JSON)` of the outbox, oldest first. Cost: O(returned)."""
        conn = self._connection()
        if limit is None:
            return list(conn.execute("SELECT id, event FROM outbox ORDER BY id"))
        return list(conn.execute("SELECT id, event FROM outbox ORDER BY id LIMIT ?", (limit,)))

    @_mapped
    def claim_events(self, limit: int, lease_us: int, now_us: int) -> list[tuple[int, str]]:
        """Lease the oldest events no running lease holds (see
        `ClaimingRepository.claim_events`), under the write lock (`BEGIN
        IMMEDIATE`), so claims of every process are disjoint.

        Raises:
            ConcurrencyConflict: another writer held the lock past the timeout.

        Cost: O(returned + skipped as leased), one commit.
        """
        conn = self._connection()
        own = not conn.in_transaction
        if own:
            self._lock(conn)
        try:
            claimed: list[tuple[int, str]] = list(
                conn.execute(
                    "SELECT id, event FROM outbox WHERE leased_until_us IS NULL"
                    " OR leased_until_us <= ? ORDER BY id LIMIT ?",
                    (now_us, limit),
                )
            )
            conn.executemany(
                "UPDATE outbox SET leased_until_us = ? WHERE id = ?",
                [(now_us + lease_us, event_id) for event_id, _ in claimed],
            )
            if own:
                conn.execute("COMMIT")
        except BaseException:
            if own and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return claimed

    @_mapped
    def mark_published(self, ids: Sequence[int]) -> int:
        """Delete these events from the outbox, in one commit. Cost: O(ids)."""
        conn = self._connection()
        own = not conn.in_transaction
        if own:
            self._lock(conn)
        try:
            before = conn.total_changes
            conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            removed = conn.total_changes - before
            if own:
                conn.execute("COMMIT")
        except BaseException:
            if own and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return removed

    def close(self) -> None:
        """Close the connection (rolling back anything uncommitted). Cost: O(1).

        In a process forked after the book was opened, the connection belongs
        to the parent: it is left alone (kept, never closed here)."""
        conn, self._conn = self._conn, None
        if conn is not None and _PID[0] != self._pid:
            _FORKED_AWAY.append(conn)  # closing it here could disturb the parent's
            return
        if conn is not None:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
