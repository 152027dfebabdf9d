"""How a `PostgresRepository` reads a book: whole, changed since a version,
a SKU at a time (a base class of the repository, kept in a module of its own)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg

from ..errors import StorageCorrupted
from .loaded import StaleCopy
from .rows import COUNTERS, Changes, Header, Snapshot
from .sql import KINDS as _KINDS
from .sql import Statements, changes_from, micros, sku_changes, snapshot_of

__all__ = ["PostgresReads"]

_T = TypeVar("_T")


class PostgresReads:
    """The reads of the repository: every one runs through `_reading` (one
    consistent view; the repository defines it)."""

    __slots__ = ()
    _q: Any
    _schema: str
    _owned: bool
    _select: dict[str, str]
    _sql: Statements

    def _reading(
        self, read: Callable[[psycopg.Connection[Any]], _T], doing: str, staged: bool = True
    ) -> _T:
        raise NotImplementedError  # the repository's own (see PostgresRepository)

    def _many(
        self, conn: psycopg.Connection[Any], queries: dict[str, tuple[str, Any]]
    ) -> dict[str, list[Any]]:
        # Several reads in one round trip (pipelined), each one's rows by name.
        with conn.pipeline():
            cursors = {
                name: conn.execute(query, params) for name, (query, params) in queries.items()
            }
        return {name: cursor.fetchall() for name, cursor in cursors.items()}

    def _run(self, conn: psycopg.Connection[Any], query: str, params: Any = ()) -> list[Any]:
        return conn.execute(query, params).fetchall()

    def _read_version(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(f"SELECT value FROM {self._q}.meta WHERE name = 'version'").fetchone()
        if row is None:
            raise StorageCorrupted(f"schema {self._schema!r} has no version row")
        return int(row[0])

    def _counters(self, conn: psycopg.Connection[Any]) -> dict[str, int]:
        return {
            name: int(value)
            for name, value in self._run(conn, f"SELECT name, value FROM {self._q}.meta")
        }

    def _read(self, since: int) -> tuple[int, dict[str, int], dict[str, list[Any]]]:
        def read(conn: psycopg.Connection[Any]) -> tuple[int, dict[str, int], dict[str, list[Any]]]:
            if since > 0 and not self._owned:
                found = conn.execute(
                    f"SELECT 1 FROM {self._q}.commits WHERE version = %s", (since,)
                ).fetchone()
                if found is None:
                    raise StaleCopy(
                        f"version {since} of schema {self._schema!r} never committed "
                        f"(the caller's transaction was rolled back)"
                    )
            queries: dict[str, tuple[str, Any]] = {
                table: (q, (since,)) for table, q in self._select.items()
            }
            queries["meta"] = (f"SELECT name, value FROM {self._q}.meta", ())
            rows = self._many(conn, queries)
            counters = {name: int(value) for name, value in rows.pop("meta")}
            return counters.pop("version"), counters, rows

        return self._reading(read, "read the book")

    def load(self) -> Snapshot:
        """Every row, read in one snapshot, with the version.

        Raises:
            StorageCorrupted: a row this library never writes.
            ConnectionLost: the server cannot be reached.

        Cost: O(rows).
        """
        version, counters, rows = self._read(-1)
        return snapshot_of(version, counters, rows)

    def load_changes(self, since: int) -> tuple[int, Changes]:
        """What every commit after version `since` wrote, as one `Changes`
        (rows as they are now; keys that went away in the `*_deleted` lists),
        with the version it brings the reader to.

        Raises:
            StaleCopy: (inside a caller's transaction) `since` never
                committed: the caller rolled back the book's work; the book
                loads again.
            StorageCorrupted: a row this library never writes.

        Cost: O(rows written since `since`) (indexed on `changed`).
        """
        version, counters, rows = self._read(since)
        return version, changes_from(counters, rows)

    # -- lazy loading -----------------------------------------------------------

    def load_header(self) -> Header:
        """What a lazily loaded book needs before any SKU: the version, the
        counters, the last ledger entry's number, the ids of expired holds and
        the SKUs with an active hold. Cost: O(holds)."""
        s = self._q

        def read(conn: psycopg.Connection[Any]) -> Header:
            counters = self._counters(conn)
            (ledger_seq,) = conn.execute(
                f"SELECT coalesce(max(seq), 0) FROM {s}.ledger"
            ).fetchone() or (0,)
            query = f"SELECT hold_id FROM {s}.expired_holds WHERE gone = 0"
            expired = [i for (i,) in self._run(conn, query)]
            held = [
                sku
                for (sku,) in self._run(conn, f"SELECT DISTINCT sku FROM {s}.holds WHERE gone = 0")
            ]
            policy = conn.execute(
                f"SELECT value FROM {s}.settings WHERE name = 'policy'"
            ).fetchone()
            return Header(
                counters["version"],
                {name: counters.get(name, 0) for name in COUNTERS},
                int(ledger_seq),
                expired,
                held,
                None if policy is None else str(policy[0]),
            )

        return self._reading(read, "read the book's header")

    def load_skus(self, names: Sequence[str]) -> Changes:
        """Everything about these SKUs, read consistently: their rows, every
        line on them, the orders of those lines with all their lines, the
        orders' deadlines, and the SKUs' receipts, active holds, scheduled
        receipts and ledger entries. Cost: O(rows returned) (indexed)."""
        wanted = list(names)
        select = self._sql.select
        of_orders = f"SELECT order_id FROM {self._q}.lines WHERE sku = ANY(%(skus)s)"
        queries = (
            ("skus", select["skus"] + " WHERE sku = ANY(%(skus)s) ORDER BY pos"),
            ("orders", select["orders"] + f" WHERE order_id IN ({of_orders}) ORDER BY seq"),
            ("lines", select["lines"] + f" WHERE order_id IN ({of_orders})"),
            ("receipts", select["receipts"] + " WHERE sku = ANY(%(skus)s)"),
            ("holds", select["holds"] + " WHERE gone = 0 AND sku = ANY(%(skus)s) ORDER BY seq"),
            (
                "expected",
                select["expected"] + " WHERE gone = 0 AND sku = ANY(%(skus)s) ORDER BY seq",
            ),
            ("deadlines", select["deadlines"] + f" WHERE gone = 0 AND order_id IN ({of_orders})"),
            ("ledger", select["ledger"] + " WHERE sku = ANY(%(skus)s) ORDER BY seq"),
            ("returns", select["returns"] + " WHERE sku = ANY(%(skus)s)"),
        )

        def read(conn: psycopg.Connection[Any]) -> Changes:
            asked: dict[str, tuple[str, Any]] = {t: (q, {"skus": wanted}) for t, q in queries}
            asked["meta"] = (f"SELECT name, value FROM {self._q}.meta", ())
            got = self._many(conn, asked)
            counters = {name: int(value) for name, value in got["meta"]}
            rows = {table: [_KINDS[table]._make(row) for row in got[table]] for table, _ in queries}
            return sku_changes(counters, rows)

        return self._reading(read, "read SKUs")

    def locate(self, order_ids: Sequence[str], references: Sequence[str]) -> list[str]:
        """The SKUs of these orders' lines and of these scheduled receipts.
        Cost: O(result) (indexed)."""
        s = self._q

        def read(conn: psycopg.Connection[Any]) -> list[str]:
            found = self._run(
                conn,
                f"SELECT sku FROM {s}.lines WHERE order_id = ANY(%s)"
                f" UNION SELECT sku FROM {s}.expected WHERE gone = 0 AND reference = ANY(%s)",
                (list(order_ids), list(references)),
            )
            return sorted(sku for (sku,) in found)

        # (inside a unit of work the rows it staged are not written first: a
        # book asks only for orders and receipts it does not hold whole, and
        # every row it staged is of what it holds)
        return self._reading(read, "find SKUs", staged=False)

    def due(self, until: str) -> list[str]:
        """The SKUs of orders whose fill-by deadline passes by `until` (ISO 8601).
        Cost: O(result) (indexed)."""
        s = self._q
        query = (
            f"SELECT DISTINCT l.sku FROM {s}.deadlines d JOIN {s}.lines l"
            " ON l.order_id = d.order_id WHERE d.gone = 0 AND d.due_us <= %s"
        )
        due_us = micros(until)
        return self._reading(  # (staged rows: as for `locate`; SKUs held are not loaded again)
            lambda conn: [sku for (sku,) in self._run(conn, query, (due_us,))],
            "find deadlines",
            staged=False,
        )
