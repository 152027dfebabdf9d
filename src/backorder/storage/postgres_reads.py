"""How a `PostgresRepository` reads a book: whole, changed since a version,
a SKU at a time (a base class of the repository, kept in a module of its own)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg

from .loaded import StaleCopy
from .rows import COUNTERS, Changes, Header, ReceiptRow, Snapshot
from .sql import KINDS as _KINDS
from .sql import Statements, changes_from, micros, sku_changes, snapshot_of

__all__ = ["PostgresReads"]


def _unseen(snapshot: str) -> tuple[int, list[int]]:
    # What a snapshot (`xmin:xmax:xip,...`) did not see: every transaction
    # from xmax on, and those it lists as running (xip).
    _, xmax, running = snapshot.split(":")
    return int(xmax), [int(xid) for xid in running.split(",") if xid]


def _visible(xid: int, snapshot: str) -> bool:
    # Whether a snapshot sees the work of transaction `xid` (committed before it).
    xmin, xmax, running = snapshot.split(":")
    if xid < int(xmin):
        return True
    return xid < int(xmax) and str(xid) not in running.split(",")


_T = TypeVar("_T")

# Each counter, and the table whose rows hold its numbers: PostgreSQL does
# not write the counters (one row every writer updates), so a read takes the
# highest of the last value written to `meta` (by schema 4 and before) and
# the numbers the rows read hold. (A copy keeps the highest it has seen.)
_COUNTED = (("seq", "orders"), ("hold_seq", "holds"), ("expected_seq", "expected"))


def _highest(counters: dict[str, int], rows: dict[str, list[Any]]) -> None:
    # Raise each counter to the highest number among the raw rows read.
    for counter, table in _COUNTED:
        at = _KINDS[table]._fields.index("seq")
        top = max((int(row[at]) for row in rows.get(table, ())), default=0)
        if top > counters.get(counter, 0):
            counters[counter] = top


class PostgresReads:
    """The reads of the repository: every one runs through `_reading` (one
    consistent view; the repository defines it)."""

    __slots__ = ("_bits", "_hints", "_snaps", "_tick", "_version")
    _q: Any
    _schema: str
    _owned: bool
    _select: dict[str, str]
    _select_new: dict[str, str]
    _bits: dict[str, int]  # each table's bit in `change_log.tables`
    _hints: tuple[int, str, int] | None
    _sql: Statements
    # what each version number handed out stands for: the snapshot the book's
    # copy is current at, and (inside a caller's transaction) the number of
    # the book's last commit in it (0: none)
    _snaps: dict[int, tuple[str, int, tuple[int, ...]]]
    _tick: int
    _version: int

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

    # -- versions: snapshots ------------------------------------------------------
    #
    # A version this repository hands out is a number standing for a snapshot
    # (`pg_current_snapshot()`) at which the book's copy is current. Every row
    # records the transaction that wrote it (`changed`); catching up reads the
    # rows whose writer that snapshot did not see, so commits that become
    # visible in any order are all found. `commits` lists the transaction of
    # every commit, so "did anything commit since" is one indexed read.

    def _token(self, snapshot: str, mine: int = 0, own: tuple[int, ...] = ()) -> int:
        # A new version number for `snapshot` (the last 16 are remembered).
        self._tick += 1
        self._snaps[self._tick] = (snapshot, mine, own)
        if len(self._snaps) > 16:
            del self._snaps[min(self._snaps)]
        self._version = self._tick
        return self._tick

    def _advance(self, version: int, snapshot: str, mine: int | None = None, xid: int = 0) -> None:
        # The copy at `version` is current at `snapshot` too (nothing else
        # committed in between); `mine`/`xid`: its own commit, just made.
        _, kept, own = self._snaps.get(version, (snapshot, 0, ()))
        own = tuple(x for x in (*own, *((xid,) if xid else ())) if not _visible(x, snapshot))
        self._snaps[version] = (snapshot, kept if mine is None else mine, own)

    def _stale_query(self) -> str:
        # The current snapshot, and whether the copy at a snapshot is stale: a
        # commit it did not see (from %(xmax)s on, or running then: %(xip)s)
        # other than its own (%(own)s), or (inside a caller's transaction)
        # the newest commit of that transaction the copy holds, %(mine)s,
        # gone with a rollback, or a commit of that transaction after it
        # (numbered above %(news)s: another book on the caller's connection
        # wrote; the copy loads again, as the rows of one transaction cannot
        # be told apart by their writer). Indexed comparisons only.
        # (the newest commits, as many as the copy has of its own and one
        # more, are read backwards on the index: if any commit from xmax on is
        # not the copy's, the newest such one is among them)
        q = self._q
        # (inside a caller's transaction, the rows of that transaction are
        # never commits made under the copy: they are judged by number alone)
        other = (
            ""
            if self._owned
            else " AND xid IS DISTINCT FROM pg_current_xact_id_if_assigned()::text::bigint"
        )
        query = (
            f"SELECT pg_current_snapshot()::text, (SELECT coalesce(bit_or(tables), 0) FROM"
            f" {q}.change_log WHERE (xid >= %(xmax)s::bigint OR xid = ANY(%(xip)s::bigint[]))"
            f" AND xid <> ALL(%(own)s::bigint[]){other}), EXISTS (SELECT 1 FROM (SELECT xid FROM"
            f" {q}.change_log WHERE true{other} ORDER BY xid DESC LIMIT %(k)s) AS newest"
            " WHERE xid >= %(xmax)s::bigint AND xid <> ALL(%(own)s::bigint[]))"
            " OR (cardinality(%(xip)s::bigint[]) > 0 AND EXISTS (SELECT 1 FROM"
            f" {q}.change_log WHERE xid = ANY(%(xip)s::bigint[])"
            f" AND xid <> ALL(%(own)s::bigint[]){other}))"
        )
        if not self._owned:
            query += (
                f" OR (%(mine)s::bigint <> 0 AND NOT EXISTS (SELECT 1 FROM {q}.change_log"
                " WHERE version = %(mine)s::bigint))"
                f" OR EXISTS (SELECT 1 FROM {q}.change_log"
                " WHERE xid = pg_current_xact_id_if_assigned()::text::bigint"
                " AND version > %(news)s::bigint)"
            )
        return query

    def _hint(self, row: tuple[Any, ...]) -> bool:
        # Whether a row of `_stale_query` says the copy is stale; if so, keep
        # what it found for the catch-up that follows: the snapshot it read
        # at and which tables the commits that snapshot sees (and the copy's
        # does not) wrote. Rows of the other tables are then not read.
        if not row[2]:
            return False
        self._hints = (self._version, str(row[0]), int(row[1]))
        return True

    def _stale_params(self, version: int, own: tuple[int, ...] = ()) -> dict[str, Any] | None:
        known = self._snaps.get(version)
        if known is None:
            return None
        snapshot, mine, kept = known
        xmax, xip = _unseen(snapshot)
        mine_too = [*kept, *own, *self._running()]
        k = len(mine_too) + 1
        return {"xmax": xmax, "xip": xip, "mine": mine, "news": mine, "own": mine_too, "k": k}

    def _running(self) -> tuple[int, ...]:
        # The transaction of the open unit of work, or the caller's (its own
        # commits, seen by itself): never news to the copy.
        return ()

    def _current(self, conn: psycopg.Connection[Any]) -> int:
        # The version now: the copy's own when nothing committed since its
        # snapshot (which moves forward to now), else -1 (catch up).
        params = self._stale_params(self._version)
        if params is None:
            return -1
        row = conn.execute(self._stale_query(), params).fetchone()
        if row is None or self._hint(row):
            return -1
        self._advance(self._version, str(row[0]))
        return self._version

    def _snapshot(self, conn: psycopg.Connection[Any]) -> str:
        row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        return str(row[0]) if row else ""

    def _mine_query(self) -> str:
        # (inside a caller's transaction) the newest commit of that
        # transaction a read sees: the rows the copy holds that a rollback
        # of the caller's would take away (its stale check asks whether
        # that commit is still there). Indexed on xid.
        return (
            f"SELECT coalesce(max(version), 0) FROM {self._q}.change_log"
            " WHERE xid = pg_current_xact_id_if_assigned()::text::bigint"
        )

    def _caller_mine(self, conn: psycopg.Connection[Any]) -> int:
        # `_mine_query`'s answer (0 with a connection of our own)
        if self._owned:
            return 0
        row = conn.execute(self._mine_query()).fetchone()
        return int(row[0]) if row else 0

    def _changed_since(self, conn: psycopg.Connection[Any], snapshot: str) -> bool:
        # Whether a commit the snapshot did not see happened since, other
        # than the copy's own (and, inside a caller's transaction, that
        # transaction's: its writes cannot change under a read it runs)
        xmax, xip = _unseen(snapshot)
        own = list(self._running())
        params = {"xmax": xmax, "xip": xip, "mine": 0, "news": 2**63 - 1, "own": own}
        row = conn.execute(self._stale_query(), {**params, "k": len(own) + 1}).fetchone()
        return bool(row and row[2])

    def _counters(self, conn: psycopg.Connection[Any]) -> dict[str, int]:
        return {
            name: int(value)
            for name, value in self._run(conn, f"SELECT name, value FROM {self._q}.meta")
        }

    def _read(self, since: int) -> tuple[int, dict[str, int], dict[str, list[Any]]]:
        def read(conn: psycopg.Connection[Any]) -> tuple[int, dict[str, int], dict[str, list[Any]]]:
            queries: dict[str, tuple[str, Any]] = {
                "snapshot": ("SELECT pg_current_snapshot()::text", ())
            }
            hint, self._hints = self._hints, None
            if since < 0:
                queries.update({table: (q, (since,)) for table, q in self._select.items()})
            else:
                params = self._stale_params(since)
                if params is None:
                    raise StaleCopy(f"version {since} of schema {self._schema!r} is not known")
                mine = params["mine"]
                if mine and not self._owned:
                    found = conn.execute(
                        f"SELECT 1 FROM {self._q}.change_log WHERE version = %s", (mine,)
                    ).fetchone()
                    if found is None:
                        raise StaleCopy(
                            f"commit {mine} of schema {self._schema!r} never committed "
                            f"(the caller's transaction was rolled back)"
                        )
                if not self._owned and conn.execute(self._mine_query()).fetchone() not in (
                    None,
                    (0,),
                    (mine,),
                ):
                    # (another book on the caller's connection committed in
                    # its transaction: rows the copy cannot tell from its own)
                    raise StaleCopy(
                        f"schema {self._schema!r} was written by another book in the "
                        f"caller's transaction"
                    )
                seen = (params["xmax"], params["xip"], params["own"])
                if hint is not None and hint[0] == since and self._owned:
                    # (the check just made, after this unit of work's locks:
                    # the copy is current at its snapshot once the tables
                    # those commits wrote are read; rows read later, of
                    # commits after it, are read again next time)
                    del queries["snapshot"]
                    bits = self._bits
                    queries.update(
                        (table, (q, seen))
                        for table, q in self._select_new.items()
                        if hint[2] & bits[table]
                    )
                else:
                    hint = None
                    queries.update({table: (q, seen) for table, q in self._select_new.items()})
            if since < 0:  # (the counters kept before schema 5; since, the rows' highest)
                queries["meta"] = (f"SELECT name, value FROM {self._q}.meta", ())
            if not self._owned:
                queries["mine"] = (self._mine_query(), ())
            rows = self._many(conn, queries)
            mine = int(rows.pop("mine", [(0,)])[0][0])
            counters = {name: int(value) for name, value in rows.pop("meta", ())}
            counters.pop("version", None)
            for table in self._select_new:
                rows.setdefault(table, [])
            _highest(counters, rows)
            snapshot = hint[1] if hint is not None else rows.pop("snapshot")[0][0]
            return self._token(str(snapshot), mine), counters, rows

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
            snapshot = self._snapshot(conn)
            counters = self._counters(conn)
            tables = [table for _, table in _COUNTED] + ["ledger"]
            highest = ", ".join(f"(SELECT coalesce(max(seq), 0) FROM {s}.{t})" for t in tables)
            *tops, ledger_seq = conn.execute(f"SELECT {highest}").fetchone() or (0,) * len(tables)
            for (counter, _), top in zip(_COUNTED, tops, strict=True):  # (indexed on seq)
                counters[counter] = max(counters.get(counter, 0), int(top))
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
                self._token(snapshot, self._caller_mine(conn)),
                {name: counters.get(name, 0) for name in COUNTERS},
                int(ledger_seq),
                expired,
                held,
                None if policy is None else str(policy[0]),
            )

        return self._reading(read, "read the book's header")

    def load_skus(self, names: Sequence[str]) -> Changes:
        """What a book needs of these SKUs, read consistently: their rows,
        their open lines (shipped + cancelled < ordered) with the orders of
        those lines and all their lines (on any SKU), those orders' active
        deadlines, and the SKUs' active holds, scheduled receipts, returns
        counted and last ledger entry (the balances the next entry starts
        from). Closed lines, their orders, receipt references counted and
        older ledger entries are history: `load_orders`, `load_receipts` and
        `load` read them when asked for.

        Raises:
            StorageCorrupted: a row this library never writes.
            ConnectionLost: the server cannot be reached.

        Cost: O(rows returned), one round trip (indexed: the open lines
        through the partial index `lines_open`, each SKU's last ledger entry
        on the ledger's key).
        """
        wanted = list(names)
        select = self._sql.select
        s = self._q
        of_orders = (
            f"SELECT l.order_id FROM {s}.lines l"
            " WHERE l.sku = ANY(%(skus)s) AND l.shipped + l.cancelled < l.ordered"
        )
        last_entries = (
            f"SELECT u.sku, (SELECT max(x.seq) FROM {s}.ledger x WHERE x.sku = u.sku)"
            " FROM unnest(%(skus)s::text[]) AS u(sku)"
        )
        queries = (
            ("skus", select["skus"] + " WHERE sku = ANY(%(skus)s) ORDER BY pos"),
            ("orders", select["orders"] + f" WHERE order_id IN ({of_orders}) ORDER BY seq"),
            ("lines", select["lines"] + f" WHERE order_id IN ({of_orders})"),
            ("holds", select["holds"] + " WHERE gone = 0 AND sku = ANY(%(skus)s) ORDER BY seq"),
            (
                "expected",
                select["expected"] + " WHERE gone = 0 AND sku = ANY(%(skus)s) ORDER BY seq",
            ),
            ("deadlines", select["deadlines"] + f" WHERE gone = 0 AND order_id IN ({of_orders})"),
            ("ledger", select["ledger"] + f" WHERE (sku, seq) IN ({last_entries}) ORDER BY seq"),
            ("returns", select["returns"] + " WHERE sku = ANY(%(skus)s)"),
        )
        return self._rows_of(queries, {"skus": wanted}, "read SKUs")

    def load_orders(self, order_ids: Sequence[str]) -> Changes:
        """These orders, whatever their state (closed ones included), with
        all their lines and their active deadlines, read consistently;
        unknown ids are left out. What a lazily loaded book reads for an
        order its SKU loads did not bring (a closed order: `status`, `line`,
        `cancel`, ...).

        Raises:
            StorageCorrupted: a row this library never writes.
            ConnectionLost: the server cannot be reached.

        Cost: O(rows returned), one round trip (indexed).
        """
        select = self._sql.select
        queries = (
            ("orders", select["orders"] + " WHERE order_id = ANY(%(ids)s) ORDER BY seq"),
            ("lines", select["lines"] + " WHERE order_id = ANY(%(ids)s)"),
            ("deadlines", select["deadlines"] + " WHERE gone = 0 AND order_id = ANY(%(ids)s)"),
        )
        return self._rows_of(queries, {"ids": list(order_ids)}, "read orders")

    def load_receipts(self, receipts: Sequence[tuple[str, str]]) -> list[ReceiptRow]:
        """The receipts counted under these `(sku, reference)` keys (keys
        never counted are left out): what a lazily loaded book reads when a
        `receive` names a reference, to tell a retry from a new receipt.

        Raises:
            StorageCorrupted: a row this library never writes.
            ConnectionLost: the server cannot be reached.

        Cost: O(keys), one round trip (the primary key).
        """
        query = (
            self._sql.select["receipts"]
            + " WHERE (sku, reference) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
        )
        skus = [sku for sku, _ in receipts]
        references = [reference for _, reference in receipts]
        return self._reading(
            lambda conn: [
                ReceiptRow._make(row) for row in self._run(conn, query, (skus, references))
            ],
            "read receipts",
        )

    def _rows_of(
        self, queries: Sequence[tuple[str, str]], params: dict[str, Any], doing: str
    ) -> Changes:
        # These reads, in one round trip and one view, with the counters
        # (raised to the highest numbers the rows hold), as `Changes`.
        def read(conn: psycopg.Connection[Any]) -> Changes:
            asked: dict[str, tuple[str, Any]] = {t: (q, params) for t, q in queries}
            asked["meta"] = (f"SELECT name, value FROM {self._q}.meta", ())
            got = self._many(conn, asked)
            counters = {name: int(value) for name, value in got["meta"]}
            _highest(counters, got)
            rows = {table: [_KINDS[table]._make(row) for row in got[table]] for table, _ in queries}
            return sku_changes(counters, rows)

        return self._reading(read, doing)

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
        """The SKUs of the open lines of orders whose fill-by deadline passes by
        `until` (ISO 8601).
        Cost: O(result) (indexed)."""
        s = self._q
        query = (
            f"SELECT DISTINCT l.sku FROM {s}.deadlines d JOIN {s}.lines l"
            " ON l.order_id = d.order_id WHERE d.gone = 0 AND d.due_us <= %s"
            " AND l.ordered > l.shipped + l.cancelled"
        )
        due_us = micros(until)
        return self._reading(  # (staged rows: as for `locate`; SKUs held are not loaded again)
            lambda conn: [sku for (sku,) in self._run(conn, query, (due_us,))],
            "find deadlines",
            staged=False,
        )
