"""How a `SQLiteRepository` reads a book: whole, in parts, changed since a
version, a SKU at a time (a base class of the repository, kept in a module of
its own)."""

from __future__ import annotations

import contextlib
import functools
import json
import operator
import sqlite3
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..errors import (
    BackorderError,
    ConcurrencyConflict,
    InvalidArgument,
    StorageCorrupted,
    StorageError,
)
from .loaded import StaleCopy
from .rows import COUNTERS, Changes, Header, LedgerRow, ReceiptRow, Snapshot
from .sql import (
    IN_ARRIVAL,
    TABLES,
    Statements,
    changes_from,
    micros,
    parts_of,
    sku_changes,
    snapshot_of,
)
from .sql import KINDS as _KINDS

__all__ = ["SQLiteReads"]


_SQL = Statements("?")
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
_HEAD_NAMES = ("seq", "hold_seq", "expected_seq", "event_seq")
# Whether any fill-by deadline is live (`deadlines_due` is keyed by `gone` first).
_ANY_DEADLINE = "SELECT 1 FROM deadlines WHERE gone = 0 LIMIT 1"
_SKUS_OF_ORDER = "SELECT sku FROM lines WHERE order_id = ?"


_R = TypeVar("_R")
_P = ParamSpec("_P")
_S = TypeVar("_S", bound="SQLiteReads")


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
    method: Callable[Concatenate[_S, _P], _R],
) -> Callable[Concatenate[_S, _P], _R]:
    # The library's errors instead of sqlite3's at this boundary.
    @functools.wraps(method)
    def run(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, UnicodeError) as exc:
            raise _storage_error(exc, self._path) from exc

    return run


class SQLiteReads:
    """The reads of the repository: each in one read transaction
    (`_reading`) on the connection the repository keeps (`_connection`,
    `_fresh`: the repository defines them)."""

    __slots__ = ()
    _conn: sqlite3.Connection | None
    # the counters as the open unit of work has moved them (see `_head`)
    _meta: dict[str, int]
    _path: str
    rows_read: dict[str, int]

    def _connection(self) -> sqlite3.Connection:
        raise NotImplementedError  # the repository's own (see SQLiteRepository)

    def _fresh(self) -> sqlite3.Connection:
        raise NotImplementedError  # the repository's own (see SQLiteRepository)

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
        with self._view() as (conn, own):
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

    def _reading(self) -> tuple[sqlite3.Connection, bool]:
        conn = self._fresh()
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")
        return conn, own

    @contextlib.contextmanager
    def _view(self) -> Iterator[tuple[sqlite3.Connection, bool]]:
        # One consistent read: `(connection, whether the read transaction is
        # its own)`, in a read transaction of its own unless the unit of work's
        # is open; what SQLite finds damaged reading is StorageCorrupted.
        conn, own = self._reading()
        try:
            yield conn, own
        except sqlite3.DatabaseError as exc:
            raise StorageCorrupted(f"cannot read {self._path!r}: {exc}") from exc
        finally:
            if own and conn.in_transaction:
                conn.execute("COMMIT")

    @_mapped
    def load_header(self) -> Header:
        """What a lazily loaded book needs before any SKU: the version, the
        counters, the last ledger entry's number, the ids of expired holds and
        the SKUs with an active hold (loaded at once). Cost: O(holds)."""
        with self._view() as (conn, own):
            version, counters = self._head(conn, own)
            (ledger_seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM ledger").fetchone()
            expired = [
                i for (i,) in conn.execute("SELECT hold_id FROM expired_holds WHERE gone = 0")
            ]
            held = [s for (s,) in conn.execute("SELECT DISTINCT sku FROM holds WHERE gone = 0")]
            policy = conn.execute("SELECT value FROM settings WHERE name = 'policy'").fetchone()
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
        rows: dict[str, list[Any]] = {table: [] for table in _KINDS}
        with self._view() as (conn, own):
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
        rows: dict[str, list[Any]] = {table: [] for table in _KINDS}
        with self._view() as (conn, own):
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
        query = _SQL.select["receipts"] + " WHERE sku = ? AND reference = ?"
        with self._view() as (conn, _):
            found = [ReceiptRow._make(row) for key in receipts for row in conn.execute(query, key)]
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
        """The SKUs of the open lines of orders whose fill-by deadline passes by
        `until` (ISO 8601).
        Cost: O(result) (indexed)."""
        conn = self._connection()
        query = (
            "SELECT DISTINCT l.sku FROM deadlines d JOIN lines l ON l.order_id = d.order_id"
            " WHERE d.gone = 0 AND d.due_us <= ? AND l.ordered > l.shipped + l.cancelled"
        )
        return [sku for (sku,) in conn.execute(query, (micros(until),))]

    @_mapped
    def version(self) -> int:
        """The commit counter now (one indexed read). Cost: O(1)."""
        return self._read_version(self._connection())
