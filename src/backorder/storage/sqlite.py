"""`SQLiteRepository`: a book in one SQLite file, safe for several processes."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import operator
import os
import sqlite3
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..errors import (
    ArgumentTypeError,
    BackorderError,
    ConcurrencyConflict,
    InvalidArgument,
    NotABackorderDatabase,
    RepositoryClosed,
    StorageCorrupted,
    StorageError,
    UnsupportedSchema,
)
from .loaded import StaleCopy
from .rows import (
    COUNTERS,
    WRITE_EVERY,
    Changes,
    Header,
    LedgerRow,
    Merged,
    ReceiptRow,
    Snapshot,
    staged_with,
)
from .sql import (
    IN_ARRIVAL,
    TABLES,
    Statements,
    changes_from,
    micros,
    parts_of,
    sku_changes,
    snapshot_of,
    statement_rows,
)
from .sql import KINDS as _KINDS
from .sqlite_schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, inspect_file

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "SQLiteRepository"]


_SQL = Statements("?")
# Connections a forked child inherited and must not close (see `close`).
_FORKED_AWAY: list[sqlite3.Connection] = []
# This process's id, kept current in a forked child (`os.register_at_fork`):
# each operation checks it, and `os.getpid()` is a system call.
_PID = [os.getpid()]


def _forked() -> None:
    _PID[0] = os.getpid()


if hasattr(os, "register_at_fork"):  # (not on Windows, which never forks)
    os.register_at_fork(after_in_child=_forked)
_GONE_KEYS = {"holds": "hold_id", "expected": "reference", "deadlines": "order_id"}
_ORDER = {"skus": " ORDER BY rowid", "orders": " ORDER BY seq", "holds": " ORDER BY seq"}
_ORDER.update(expected=" ORDER BY seq", ledger=" ORDER BY seq")
# What `load` reads (every row with `changed > -1`), and what catching up
# reads of a table a commit wrote too much of to list its keys (`changed >
# version`: a scan, no table but `settings` has a `changed` index since
# schema 6).
_SELECT = {table: query + _ORDER.get(table, "") for table, query in _SQL.select_changed.items()}
_SELECT["settings"] = "SELECT name, value FROM settings WHERE changed > ?"
# The ledger: entries are appended in `seq` order one commit after another,
# so what was written after a version is a range of the key from the first
# such entry (each commit's first entry is in the change log).
_SELECT["ledger"] = (
    "SELECT "
    + _SQL.select["ledger"][len("SELECT ") :].split(" FROM ")[0]
    + " FROM ledger WHERE seq >= ? AND changed > ? ORDER BY seq"
)
# An order's row is written only with its lines (see `_store`), so the
# orders written after a version are those of the lines written after it.
_SELECT["orders"] = (
    _SQL.select["orders"]
    + " WHERE order_id IN (SELECT order_id FROM lines WHERE changed > ?) ORDER BY seq"
)
# Catching up by key (schema 6): the rows of the keys the change log names,
# each table by its primary key (`_rows_of_keys` adds the WHERE).
_KEYED = {table: query.split(" WHERE ")[0] for table, query in _SQL.select_changed.items()}
# (a key of several columns is the first columns of its rows; the ledger is
# read as a range of its key instead)
_KEY_COLUMNS = {name: table.key for name, table in TABLES.items() if name != "ledger"}
_KEY_COLUMNS["expired_holds"] = ("hold_id",)
# where a row's `seq` is, for the tables read in `seq` order
# A SKU load's open lines with their orders in one query: the line's
# columns, then the order's seq, rank and text (`_read_open_lines`).
_LINE_COLUMNS = _SQL.select["lines"][len("SELECT ") : _SQL.select["lines"].index(" FROM ")]
_OPEN_WITH_ORDERS = (
    "SELECT "
    + ", ".join(f"l.{column}" for column in _LINE_COLUMNS.split(", "))
    + ", o.seq, o.rank, o.body FROM lines l JOIN orders o ON o.order_id = l.order_id WHERE "
)
_LINE_PART = operator.itemgetter(slice(0, len(_KINDS["lines"]._fields)))
_ORDER_PART = operator.itemgetter(
    0, *range(len(_KINDS["lines"]._fields), len(_KINDS["lines"]._fields) + 3)
)
_MAKE_LINE = functools.partial(tuple.__new__, _KINDS["lines"])
_MAKE_ORDER = functools.partial(tuple.__new__, _KINDS["orders"])

_SEQ_AT = {name: _KINDS[name]._fields.index("seq") for name in ("orders", "holds", "expected")}
# The change log: a commit's counters and keys (see `sqlite_schema`, v6).
_HEAD = (
    "SELECT version, seq, hold_seq, expected_seq, event_seq FROM change_log"
    " ORDER BY version DESC LIMIT 1"
)
_COMMIT_ROW = (
    "INSERT INTO change_log (version, seq, hold_seq, expected_seq, event_seq, keys)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_HEAD_NAMES = ("seq", "hold_seq", "expected_seq", "event_seq")
# Whether any fill-by deadline is live (`deadlines_due` is keyed by `gone` first).
_ANY_DEADLINE = "SELECT 1 FROM deadlines WHERE gone = 0 LIMIT 1"
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
_SKUS_OF_ORDER = "SELECT sku FROM lines WHERE order_id = ?"
_OUTBOX_INSERT = "INSERT INTO outbox (id, event) VALUES (?, ?)"
_LAST_ENTRY = "UPDATE skus SET last_entry = ? WHERE sku = ?"


_R = TypeVar("_R")
_P = ParamSpec("_P")


def _storage_error(exc: sqlite3.Error | UnicodeError, path: str) -> BackorderError:
    # What a driver error means to the caller, as the library's own error.
    text = str(exc).lower()
    if isinstance(exc, UnicodeError):
        return StorageCorrupted(f"{path!r} is damaged: {str(exc)[:200]}")
    said = str(exc)[:200]
    if "decode" in text or "malformed" in text or "not a database" in text:
        return StorageCorrupted(f"{path!r} is damaged: {said}")
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return ConcurrencyConflict(f"{path!r} stayed locked by another writer: {said}")
    if isinstance(exc, sqlite3.OperationalError) and (
        "full" in text or "readonly" in text or "read-only" in text or "i/o" in text
    ):
        return StorageError(f"{path!r} cannot be written ({said}); nothing was changed")
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, (sqlite3.OperationalError, sqlite3.IntegrityError, sqlite3.ProgrammingError)
    ):
        return StorageCorrupted(f"{path!r} is damaged: {said}")
    return StorageError(f"{path!r}: {type(exc).__name__}: {said}")


def _mapped(
    method: Callable[Concatenate[SQLiteRepository, _P], _R],
) -> Callable[Concatenate[SQLiteRepository, _P], _R]:
    # The library's errors instead of sqlite3's at this boundary.
    @functools.wraps(method)
    def run(self: SQLiteRepository, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, UnicodeError) as exc:
            raise _storage_error(exc, self._path) from exc

    return run


class SQLiteRepository:
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

    @staticmethod
    def _read_version(conn: sqlite3.Connection) -> int:
        # the last commit's version (the log's key: one look-up at its end)
        (version,) = conn.execute("SELECT max(version) FROM change_log").fetchone()
        if version is None:
            raise StorageCorrupted("the change log (table change_log) is empty")
        return int(version)

    def _head(self, conn: sqlite3.Connection, own: bool) -> tuple[int, dict[str, int]]:
        # The last commit's version and counters; inside this unit of work
        # (`own` False), the counters as its writes moved them.
        row = conn.execute(_HEAD).fetchone()
        if row is None:
            raise StorageCorrupted("the change log (table change_log) is empty")
        counters = dict(zip(_HEAD_NAMES, map(int, row[1:]), strict=True))
        if not own:
            for name, value in self._meta.items():
                if name in counters and value > counters[name]:
                    counters[name] = value
        return int(row[0]), counters

    @staticmethod
    def _written(conn: sqlite3.Connection, since: int, version: int) -> dict[str, Any]:
        # The keys the commits after `since` up to `version` wrote, by table
        # (a table's value "*": read it by `changed`); "ledger": the first
        # entry number they wrote. StaleCopy when the log does not reach back
        # to `since` (pruned), or `since` is past the last commit.
        (first,) = conn.execute("SELECT min(version) FROM change_log").fetchone()
        if first is None or since > version or (first > since + 1 and since < version):
            raise StaleCopy(
                f"version {since} is not in the change log (versions {first} to {version})"
            )
        keys: dict[str, Any] = {}
        for (text,) in conn.execute(
            "SELECT keys FROM change_log WHERE version > ? AND version <= ? ORDER BY version",
            (since, version),
        ):
            wrote = json.loads(text)
            if wrote == "*":
                return dict.fromkeys((*_KEY_COLUMNS, "ledger"), "*")
            for table, listed in wrote.items():
                if table == "ledger":
                    keys["ledger"] = min(keys.get("ledger", listed), listed)
                elif listed == "*" or keys.get(table) == "*":
                    keys[table] = "*"
                else:
                    keys.setdefault(table, set()).update(
                        map(tuple, listed) if len(_KEY_COLUMNS[table]) > 1 else listed
                    )
        return keys

    def _read_keyed(
        self, conn: sqlite3.Connection, since: int, version: int
    ) -> dict[str, list[Any]]:
        # The rows the commits after `since` wrote, as `select_changed` reads
        # them, by the keys of the change log.
        keys = self._written(conn, since, version)
        lines = keys.get("lines")  # the orders of the lines written are read too
        if lines == "*":
            keys["orders"] = "*"
        elif lines and keys.get("orders") != "*":
            keys.setdefault("orders", set()).update(order_id for order_id, _ in lines)
        rows: dict[str, list[Any]] = {}
        for table, query in _SELECT.items():
            listed = keys.get(table)
            if table == "settings":
                rows[table] = conn.execute(query, (since,)).fetchall()
            elif table == "ledger":
                floor = 0 if listed == "*" else listed
                rows[table] = (
                    [] if listed is None else conn.execute(query, (floor, since)).fetchall()
                )
            elif not listed:
                rows[table] = []
            elif listed == "*" or (table == "skus" and len(listed) > 500):
                # (more SKUs than one query asks for: by `changed`, in rowid order)
                rows[table] = conn.execute(query, (since,)).fetchall()
            else:
                rows[table] = self._rows_of_keys(conn, table, list(listed))
        return rows

    @staticmethod
    def _rows_of_keys(conn: sqlite3.Connection, table: str, keys: list[Any]) -> list[Any]:
        # The rows of these keys, 500 keys a query, through the primary key.
        # A key of several columns is asked as one IN list per column (SQLite
        # searches a key by `(a, b) IN (VALUES ...)` only for a single row:
        # more rows, and it scans), the rows then kept by their whole key.
        columns = _KEY_COLUMNS[table]
        width = len(columns)
        got: list[Any] = []
        for at in range(0, len(keys), 500):
            chunk = keys[at : at + 500]
            parts = (
                [chunk] if width == 1 else [list(set(part)) for part in zip(*chunk, strict=True)]
            )
            where = " AND ".join(
                f"{column} IN ({', '.join('?' * len(values))})"
                for column, values in zip(columns, parts, strict=True)
            )
            query = f"{_KEYED[table]} WHERE {where}{_ORDER.get(table, '')}"
            rows = conn.execute(query, [value for values in parts for value in values])
            if width == 1:
                got.extend(rows)
            else:
                wanted = set(chunk)
                got.extend(row for row in rows if row[:width] in wanted)
        if len(keys) > 500 and table in _SEQ_AT:  # in `seq` order, as one query's
            at = _SEQ_AT[table]
            got.sort(key=lambda row: row[at])
        return got

    def _read(self, since: int) -> tuple[int, dict[str, int], dict[str, list[Any]]]:
        # Every row (`since` -1), or every row written after version `since`,
        # in one read transaction.
        conn, own = self._reading()
        try:
            version, counters = self._head(conn, own)
            if since >= 0:
                rows = self._read_keyed(conn, since, version)
            else:
                rows = {}
                for table, query in _SELECT.items():
                    cursor = conn.execute(
                        query, (-(2**63), since) if table == "ledger" else (since,)
                    )
                    kind = _KINDS.get(table)
                    if kind is not None and table not in _GONE_KEYS:
                        # a whole load: each row made its row value at once (one
                        # tuple per row, not a plain one and then a copy)
                        rows[table] = list(map(functools.partial(tuple.__new__, kind), cursor))
                    else:
                        rows[table] = cursor.fetchall()
        except sqlite3.DatabaseError as exc:
            raise StorageCorrupted(f"cannot read {self._path!r}: {exc}") from exc
        finally:
            if own and conn.in_transaction:
                conn.execute("COMMIT")
        return version, {name: counters.get(name, 0) for name in COUNTERS}, rows

    @_mapped
    def load(self) -> Snapshot:
        """Every row, read in one read transaction (a consistent snapshot).

        Raises:
            StorageCorrupted: SQLite cannot read the file.

        Cost: O(rows).
        """
        version, counters, rows = self._read(-1)
        return snapshot_of(version, counters, rows)

    def load_parts(self, size: int = 2_000) -> Generator[Snapshot, None, None]:
        """Every row, as `load` reads them, in parts read in one read
        transaction (`StreamingRepository`): first the SKUs, the counters
        and the policy; then the orders in arrival order, `size` at a time,
        each part with every line of its orders; last every other row. A
        book loading everything applies each part before the next is read,
        so it never holds every row at once. The read transaction ends when
        the iterator is exhausted or closed.

        Raises (as it is iterated):
            StorageCorrupted: SQLite cannot read the file.
            StorageError: SQLite could not read (I/O error, ...).
            InvalidArgument: `size` is not a positive int (at the first part).

        Cost: O(rows) in all (orders and lines sorted by arrival number:
        O(rows log rows) in SQLite's sorter); memory O(`size`) rows at a time.
        """
        if type(size) is not int or size < 1:
            raise InvalidArgument(f"size must be a positive int, got {size!r}")
        try:
            conn, own = self._reading()
        except (sqlite3.Error, UnicodeError) as exc:
            raise _storage_error(exc, self._path) from exc
        failed = True
        try:
            yield from self._parts(conn, own, size)
            failed = False
        except GeneratorExit:  # (closed before the end: the read ends)
            failed = False
            raise
        except sqlite3.DatabaseError as exc:
            raise StorageCorrupted(f"cannot read {self._path!r}: {exc}") from exc
        except (sqlite3.Error, UnicodeError) as exc:
            raise _storage_error(exc, self._path) from exc
        finally:  # (unless the repository was closed meanwhile: then the read is gone)
            if own and self._conn is conn and conn.in_transaction:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    if conn.in_transaction:  # (past use if this fails too: its error is raised)
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    if not failed:  # (else the read's own error is the one raised)
                        raise _storage_error(exc, self._path) from exc

    def _parts(self, conn: sqlite3.Connection, own: bool, size: int) -> Iterator[Snapshot]:
        # `load_parts` inside its read transaction (see `sql.parts_of`).
        version, counters = self._head(conn, own)
        first = {
            table: conn.execute(_SELECT[table], (-1,)).fetchall() for table in ("skus", "settings")
        }
        orders = conn.execute(_SQL.select["orders"] + IN_ARRIVAL)
        lines = conn.execute(_SQL.select["lines"] + IN_ARRIVAL)
        yield from parts_of(
            version,
            {name: counters.get(name, 0) for name in COUNTERS},
            first,
            lambda: orders.fetchmany(size),
            lambda: lines.fetchmany(size),
            lambda: {
                table: conn.execute(
                    query, (-(2**63), -1) if table == "ledger" else (-1,)
                ).fetchall()
                for table, query in _SELECT.items()
                if table not in ("skus", "settings", "orders", "lines")
            },
        )

    @_mapped
    def load_changes(self, since: int) -> tuple[int, Changes]:
        """What every commit after version `since` wrote, as one `Changes`
        (rows as they are now; keys that went away in the `*_deleted` lists),
        with the version it brings the reader to.

        Optional in the protocol: a book over a repository without it
        re-loads everything when another writer committed.

        Raises:
            StorageCorrupted: SQLite cannot read the file.
            StaleCopy: `since` is older than the change log keeps
                (`COMMITS_KEPT` commits), or past its last commit: the
                caller loads again.

        Cost: O(commits since `since` + rows they wrote) (the change log,
        then each row by its primary key; the ledger from the first entry
        they wrote, by its key); a table one of them wrote more than
        `KEYS_LISTED` keys of is read by `changed`: O(rows of the table).
        """
        version, counters, rows = self._read(since)
        return version, changes_from(counters, rows)

    # -- lazy loading (optional in the protocol) ------------------------------

    def _fresh(self) -> sqlite3.Connection:
        # A connection whose reads see this unit of work's staged rows too.
        conn = self._connection()
        if self._staged is not None:
            self._flush(conn)
        return conn

    def _reading(self) -> tuple[sqlite3.Connection, bool]:
        conn = self._fresh()
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")
        return conn, own

    @_mapped
    def load_header(self) -> Header:
        """What a lazily loaded book needs before any SKU: the version, the
        counters, the last ledger entry's number, the ids of expired holds and
        the SKUs with an active hold (loaded at once). Cost: O(holds)."""
        conn, own = self._reading()
        try:
            version, counters = self._head(conn, own)
            (ledger_seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM ledger").fetchone()
            expired = [
                i for (i,) in conn.execute("SELECT hold_id FROM expired_holds WHERE gone = 0")
            ]
            held = [s for (s,) in conn.execute("SELECT DISTINCT sku FROM holds WHERE gone = 0")]
            policy = conn.execute("SELECT value FROM settings WHERE name = 'policy'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StorageCorrupted(f"cannot read {self._path!r}: {exc}") from exc
        finally:
            if own and conn.in_transaction:
                conn.execute("COMMIT")
        return Header(
            version,
            {name: counters.get(name, 0) for name in COUNTERS},
            int(ledger_seq),
            expired,
            held,
            None if policy is None else str(policy[0]),
        )

    @_mapped
    def load_skus(self, names: Sequence[str]) -> Changes:
        """What a book needs of these SKUs, read consistently: their rows,
        their open lines (shipped + cancelled < ordered) and the orders of
        those lines with all their lines (on any SKU), those orders'
        deadlines, and the SKUs' active holds, scheduled receipts, returns
        counted and last ledger entry (the balances the next entry starts
        from). Closed lines, their orders, receipt references counted and
        older ledger entries are history: `load_orders`, `load_receipts` and
        `load` read them when asked for.

        Cost: O(rows returned) (indexed; the open lines through the partial
        index `lines_open` when the schema has it; each SKU's last ledger
        entry by its number, kept on the SKU's row).

        Raises:
            StorageCorrupted: SQLite cannot read the file.
        """
        conn, own = self._reading()
        rows: dict[str, list[Any]] = {table: [] for table in _KINDS}
        try:
            counters = self._head(conn, own)[1]
            names = list(names)
            # (no live deadline in the book, as in most: their join is not run)
            deadlines = conn.execute(_ANY_DEADLINE).fetchone() is not None
            for first in range(0, len(names), 500):
                chunk = names[first : first + 500]
                marks = ",".join("?" * len(chunk))
                # the open lines of these SKUs (served by `lines_open` when it exists)
                is_open = f"l.sku IN ({marks}) AND l.shipped + l.cancelled < l.ordered"
                joined = f" {{}} JOIN lines l ON {{}}.order_id = l.order_id WHERE {is_open}"
                several = self._read_open_lines(conn, rows, chunk, is_open)
                self._read_rows(
                    conn,
                    rows,
                    chunk,
                    (
                        ("skus", f" WHERE sku IN ({marks}) ORDER BY rowid"),
                        ("holds", f" WHERE gone = 0 AND sku IN ({marks}) ORDER BY seq"),
                        ("expected", f" WHERE gone = 0 AND sku IN ({marks}) ORDER BY seq"),
                        *(
                            [("deadlines", joined.format("d", "d") + " AND d.gone = 0")]
                            if deadlines
                            else []
                        ),
                        ("returns", f" WHERE sku IN ({marks})"),
                    ),
                    alias={"lines": "l", "orders": "o", "deadlines": "d"},
                )
                # the other lines of those orders that may have several, on any SKU
                for start in range(0, len(several), 400):
                    ids = several[start : start + 400]
                    self._read_rows(
                        conn,
                        rows,
                        [*ids, *chunk],
                        (
                            (
                                "lines",
                                f" WHERE order_id IN ({','.join('?' * len(ids))})"
                                f" AND NOT (sku IN ({marks}) AND shipped + cancelled < ordered)",
                            ),
                        ),
                    )
            if len(names) > 1:  # an order with open lines on two of them came twice
                for table, key in (("orders", 0), ("deadlines", 0)):
                    rows[table] = list({row[key]: row for row in rows[table]}.values())
            last = (
                _SQL.select["ledger"] + " WHERE seq = (SELECT last_entry FROM skus WHERE sku = ?)"
            )
            for name in names:
                rows["ledger"].extend(LedgerRow._make(row) for row in conn.execute(last, (name,)))
            rows["ledger"].sort(key=lambda row: row.seq)
            self.rows_read["ledger"] += len(rows["ledger"])
        except sqlite3.DatabaseError as exc:
            raise StorageCorrupted(f"cannot read {self._path!r}: {exc}") from exc
        finally:
            if own and conn.in_transaction:
                conn.execute("COMMIT")
        return sku_changes(counters, rows)

    def _read_open_lines(
        self,
        conn: sqlite3.Connection,
        rows: dict[str, list[Any]],
        names: Sequence[str],
        is_open: str,
    ) -> list[str]:
        # The open lines of these SKUs with their orders, in one pass over
        # `lines_open` (each line's order found by its key as the line is),
        # split into line rows and order rows; returns the ids of the orders
        # whose stored text may list more than one line (the compact text of
        # an order of one line has exactly two commas; a comma in its SKU
        # only costs a look for lines that are not there).
        joined = conn.execute(_OPEN_WITH_ORDERS + is_open, names).fetchall()
        rows["lines"].extend(map(_MAKE_LINE, map(_LINE_PART, joined)))
        rows["orders"].extend(map(_MAKE_ORDER, map(_ORDER_PART, joined)))
        self.rows_read["lines"] += len(joined)
        self.rows_read["orders"] += len(joined)
        return [row[0] for row in joined if row[-1].count(",") != 2]

    def _read_rows(
        self,
        conn: sqlite3.Connection,
        rows: dict[str, list[Any]],
        values: Sequence[Any],
        queries: Sequence[tuple[str, str]],
        alias: dict[str, str] | None = None,
    ) -> None:
        # Each (table, what follows `FROM table`) read with `values`, as row
        # values; `alias[table]` (a join) names the table the columns come
        # from, after `DISTINCT ` when it starts so.
        for table, where in queries:
            select = _SQL.select[table]
            if alias and table in alias:
                name = alias[table]
                distinct = "DISTINCT " if name.startswith("DISTINCT ") else ""
                name = name.removeprefix("DISTINCT ")
                columns = select[len("SELECT ") : select.index(" FROM ")].split(", ")
                select = (
                    f"SELECT {distinct}{', '.join(f'{name}.{c}' for c in columns)}"
                    + select[select.index(" FROM ") :]
                )
            # each row as its row type, built by tuple.__new__ directly (the
            # SELECT names every field, in order: no length check needed)
            make = functools.partial(tuple.__new__, _KINDS[table])
            before = len(rows[table])
            rows[table].extend(map(make, conn.execute(select + where, values)))
            self.rows_read[table] += len(rows[table]) - before

    @_mapped
    def load_orders(self, order_ids: Sequence[str]) -> Changes:
        """These orders, whatever their state (closed ones included), with
        all their lines and their deadlines, read consistently; unknown ids
        are left out. What a lazily loaded book reads for an order its SKU
        loads did not bring (a closed order: `status`, `line`, `cancel`, ...).

        Raises:
            StorageCorrupted: SQLite cannot read the file.

        Cost: O(rows returned) (indexed).
        """
        conn, own = self._reading()
        rows: dict[str, list[Any]] = {table: [] for table in _KINDS}
        try:
            counters = self._head(conn, own)[1]
            ids = list(order_ids)
            for first in range(0, len(ids), 500):
                chunk = ids[first : first + 500]
                marks = ",".join("?" * len(chunk))
                self._read_rows(
                    conn,
                    rows,
                    chunk,
                    (
                        ("orders", f" WHERE order_id IN ({marks}) ORDER BY seq"),
                        ("lines", f" WHERE order_id IN ({marks})"),
                        ("deadlines", f" WHERE gone = 0 AND order_id IN ({marks})"),
                    ),
                )
        except sqlite3.DatabaseError as exc:
            raise StorageCorrupted(f"cannot read {self._path!r}: {exc}") from exc
        finally:
            if own and conn.in_transaction:
                conn.execute("COMMIT")
        return sku_changes(counters, rows)

    @_mapped
    def load_receipts(self, receipts: Sequence[tuple[str, str]]) -> list[ReceiptRow]:
        """The receipts counted under these `(sku, reference)` keys (keys
        never counted are left out): what a lazily loaded book reads when a
        `receive` names a reference, to tell a retry from a new receipt.

        Raises:
            StorageCorrupted: SQLite cannot read the file.

        Cost: O(keys) (the primary key).
        """
        conn, own = self._reading()
        query = _SQL.select["receipts"] + " WHERE sku = ? AND reference = ?"
        try:
            found = [ReceiptRow._make(row) for key in receipts for row in conn.execute(query, key)]
        except sqlite3.DatabaseError as exc:
            raise StorageCorrupted(f"cannot read {self._path!r}: {exc}") from exc
        finally:
            if own and conn.in_transaction:
                conn.execute("COMMIT")
        self.rows_read["receipts"] += len(found)
        return found

    @_mapped
    def locate(self, order_ids: Sequence[str], references: Sequence[str]) -> list[str]:
        """The SKUs of these orders' lines and of these scheduled receipts.

        Staged rows are not written first: a book asks only about orders and
        receipts it does not hold, which staged rows never change.
        Cost: O(result)."""
        conn = self._connection()
        if len(order_ids) == 1 and not references:  # (every place asks this)
            return sorted({sku for (sku,) in conn.execute(_SKUS_OF_ORDER, (order_ids[0],))})
        found: set[str] = set()
        for values, query in (
            (list(order_ids), "SELECT DISTINCT sku FROM lines WHERE order_id IN ({})"),
            (list(references), "SELECT sku FROM expected WHERE gone = 0 AND reference IN ({})"),
        ):
            for first in range(0, len(values), 500):
                chunk = values[first : first + 500]
                marks = ",".join("?" * len(chunk))
                found.update(sku for (sku,) in conn.execute(query.format(marks), chunk))
        return sorted(found)

    @_mapped
    def due(self, until: str) -> list[str]:
        """The SKUs of orders whose fill-by deadline passes by `until` (ISO 8601).
        Cost: O(result) (indexed)."""
        conn = self._connection()
        query = (
            "SELECT DISTINCT l.sku FROM deadlines d JOIN lines l ON l.order_id = d.order_id"
            " WHERE d.gone = 0 AND d.due_us <= ?"
        )
        return [sku for (sku,) in conn.execute(query, (micros(until),))]

    @_mapped
    def version(self) -> int:
        """The commit counter now (one indexed read). Cost: O(1)."""
        return self._read_version(self._connection())

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
