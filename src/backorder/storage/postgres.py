"""`PostgresRepository`: a book in PostgreSQL tables (psycopg 3).

The rows, the merge of staged writes and the statements are the shared ones
(`storage.sql`); this module adds only what is PostgreSQL's own: the DDL
types, the schema the tables live in, locking, the `%s` placeholder, the
caller's transaction (`connection=`) and the mapping of the driver's errors.

How writers are kept apart (schema version 5): a unit of work takes the
schema's advisory lock shared, then one transaction-level advisory lock per
SKU the operation names, in the order of their keys (`lock_skus`); one that
names no SKU takes the schema's lock exclusive (`lock_book`). Writers on
different SKUs work at once, writers on one SKU take turns, and each
catches up with what the others committed once its locks are held, before
it applies an operation, so arrival numbers drawn from the copy follow the
commit order on each SKU. Readers never take a lock.

How a copy catches up (schema version 4): every row records the transaction
that wrote it (`changed`), a version number this repository hands out
stands for the snapshot the book's copy is current at, and catching up reads
the rows whose writer that snapshot did not see, so it does not depend on
commits becoming visible in any order (no commit counter every commit
updates, and no counter in `meta`: a reader takes the highest number the
rows hold).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql as pg_sql
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "PostgresRepository needs psycopg 3: pip install 'backorder[postgres]'"
    ) from exc

from ..errors import (
    ArgumentTypeError,
    CommitOutcomeUnknown,
    ConcurrencyConflict,
    ConnectionLost,
    InvalidArgument,
    NotABackorderDatabase,
    RepositoryClosed,
    StorageCorrupted,
    StorageError,
    UnsupportedSchema,
)
from .loaded import CommitRace
from .postgres_reads import _COUNTED, PostgresReads
from .postgres_schema import MARK, MIGRATIONS, SCHEMA_VERSION
from .rows import COUNTERS, WRITE_EVERY, Changes, Merged, Snapshot, staged_with
from .sql import IN_ARRIVAL, Statements, micros, parts_of, split_whole, statement_rows

__all__ = ["SCHEMA_VERSION", "PostgresRepository"]

_T = TypeVar("_T")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_GONE_KEYS = {"holds": "hold_id", "expected": "reference", "deadlines": "order_id"}

# Tables keyed by something other than a SKU: two writers holding different
# SKUs' locks may both write one key (one new order id, one hold id). An
# upsert of such a key overwrites only a row the writer's copy knew (its
# writer visible in the copy's snapshot, or the writer itself); any other
# row sets `changed` to NULL, which its NOT NULL refuses: the unit of work
# is lost and runs again after catching up (finding the key taken).
_GUARDED = ("orders", "holds", "expected", "deadlines")  # (and expired_holds, in _store)
_GUARD = (
    "changed = CASE WHEN coalesce(pg_visible_in_snapshot({t}.changed::text::xid8,"
    " %s::pg_snapshot), true) OR {t}.changed = ANY(%s::bigint[]) THEN excluded.changed END"
)
_ORDER = {"skus": " ORDER BY pos", "orders": " ORDER BY seq, order_id"}
_ORDER.update(
    holds=" ORDER BY seq, hold_id", expected=" ORDER BY seq, reference", ledger=" ORDER BY seq, sku"
)
_SAVEPOINT = "backorder_work"
_READ_SAVEPOINT = "backorder_read"


def _lock_key(schema: str) -> int:
    # The advisory lock of a book's schema: a stable signed 64-bit number.
    digest = hashlib.blake2b(f"backorder:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _redacted(conninfo: str) -> str:
    # The connection string without its password, for messages.
    try:
        parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<unreadable connection string>"
    parts.pop("password", None)
    return " ".join(f"{key}={value}" for key, value in sorted(parts.items())) or "(defaults)"


def _unusable(exc: psycopg.OperationalError) -> bool:
    # An error the client raised itself (no SQLSTATE: a failed send or
    # read, a pipeline it could not end) or the server's "connection
    # exception" / "operator intervention" classes: the connection cannot
    # be trusted with another statement.
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))


class PostgresRepository(PostgresReads):
    """A book kept in PostgreSQL tables, in one schema (psycopg 3).

    Two ways to use it:

    * `PostgresRepository("postgresql://...")`: the repository opens its
      own connection, commits every operation (durable when it returns, as
      the server's `synchronous_commit` says) and connects again after a lost
      connection.
    * `PostgresRepository(connection=conn)`: the book works inside the
      caller's transaction on the caller's psycopg connection. It never
      commits or rolls back that transaction: each of its units of work is a
      savepoint, released on success and rolled back on failure, so a failed
      operation undoes only its own part. Its rows and outbox rows commit or
      roll back with the caller's; after the caller rolls back, the book's
      next operation sees the database as it is. The book does not call
      subscribers (they could hear of work that is rolled back later): read
      the outbox after the caller's commit instead. Use PostgreSQL's default
      isolation level (READ COMMITTED) for that transaction.

    Several processes and machines may open one schema: each unit of work
    locks the SKUs it names (advisory locks, in key order; one naming no
    SKU locks the whole book), so writers on different SKUs work at once and
    writers on one SKU take turns (no table is locked, readers never wait);
    a writer that waits longer than `timeout` gets `ConcurrencyConflict`.
    Inside a caller's transaction the locks are held until that transaction
    ends.

    The tables live in `schema` (created on first open, with a
    `schema_version` table; older versions are migrated forward). A schema
    that holds anything else, or a newer version, is refused untouched.
    Every value is passed as a parameter; the schema name is checked as an
    identifier and quoted.

    Args:
        conninfo: a libpq connection string or `postgresql://` URL ("" for
            the libpq defaults and environment).
        connection: a caller's open `psycopg.Connection` instead (not in
            autocommit mode, or inside a transaction it opened).
        schema: the schema of the book's tables.
        timeout: seconds to wait for another writer (and to connect).
        lazy: a book over this repository loads SKUs as operations need them.

    Raises:
        ArgumentTypeError: an argument of the wrong type.
        InvalidArgument: both `conninfo` and `connection`, a schema name that
            is not a plain identifier, `timeout` out of 0..86400.
        ConnectionLost: the server cannot be reached.
        NotABackorderDatabase: the schema holds tables of something else.
        UnsupportedSchema: the schema was written by a newer version.
        StorageError: the server refused (permissions, ...).

    Cost: opening one connection and a few catalogue reads (plus the
    migration once).
    """

    __slots__ = (
        "_closed",
        "_conn",
        "_conninfo",
        "_count",
        "_failed",
        "_held",
        "_key",
        "_mask",
        "_next",
        "_open",
        "_owned",
        "_q",
        "_schema",
        "_select",
        "_select_new",
        "_sql",
        "_staged",
        "_timeout",
        "_xid",
        "lazy",
    )

    def __init__(
        self,
        conninfo: str = "",
        *,
        connection: psycopg.Connection[Any] | None = None,
        schema: str = "backorder",
        timeout: float = 30.0,
        lazy: bool = True,
    ) -> None:
        """Open (or create) the book in `schema`. Cost: see the class text."""
        if type(lazy) is not bool:
            raise ArgumentTypeError(f"lazy must be a bool, got {type(lazy).__name__} {lazy!r}")
        if not isinstance(conninfo, str):
            raise ArgumentTypeError(
                f"conninfo must be a str, got {type(conninfo).__name__} {conninfo!r}"
            )
        if connection is not None:
            if not isinstance(connection, psycopg.Connection):
                raise ArgumentTypeError(
                    f"connection must be a psycopg.Connection, got "
                    f"{type(connection).__name__} {connection!r}"
                )
            if conninfo:
                raise InvalidArgument(
                    "give conninfo or connection, not both "
                    f"(got conninfo {_redacted(conninfo)!r} and a connection)"
                )
        if not isinstance(schema, str):
            raise ArgumentTypeError(f"schema must be a str, got {type(schema).__name__} {schema!r}")
        if not _IDENTIFIER.fullmatch(schema) or schema.lower().startswith("pg_"):
            raise InvalidArgument(
                f"schema must be a plain identifier (letters, digits, _; not pg_...), "
                f"got {schema!r}"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ArgumentTypeError(f"timeout must be a number >= 0, got {timeout!r}")
        if not math.isfinite(timeout) or timeout > 86_400:
            raise InvalidArgument(
                f"timeout must be a number of seconds from 0 to 86400, got {timeout!r}"
            )
        #: a book over this repository loads SKUs as operations need them
        self.lazy = lazy
        self._conninfo = conninfo
        self._owned = connection is None
        self._schema = schema
        self._timeout = float(timeout)
        self._key = _lock_key(schema)
        quoted = pg_sql.Identifier(schema).as_string(None)
        self._q = quoted
        self._sql = Statements("%s", prefix=quoted + ".")
        for table in _GUARDED:
            statement = self._sql.upsert[table]
            assert statement.endswith("changed = excluded.changed")
            self._sql.upsert[table] = statement.replace(
                "changed = excluded.changed", _GUARD.format(t=table)
            )
        self._select = {
            table: query + _ORDER.get(table, "")
            for table, query in self._sql.select_changed.items()
        }
        self._select["settings"] = f"SELECT name, value FROM {self._q}.settings WHERE changed > %s"
        # what changed since a snapshot: rows whose writer it did not see
        # (but the copy's own commits, which it holds)
        unseen = (
            " WHERE (changed >= %s::bigint OR changed = ANY(%s::bigint[]))"
            " AND changed <> ALL(%s::bigint[])"
        )
        self._select_new = {
            table: query.replace(" WHERE changed > %s", unseen)
            for table, query in self._select.items()
        }
        self._bits = {table: 1 << bit for bit, table in enumerate(sorted(self._select_new))}
        self._hints: tuple[int, str, int] | None = None
        self._mask = 0  # the tables the open unit of work wrote (`change_log.tables`)
        self._snaps: dict[int, tuple[str, int, tuple[int, ...]]] = {}
        self._tick = 0
        self._xid = 0
        self._staged: Merged | None = None  # (each operation folded in as written)
        self._count = 0  # operations folded into `_staged`
        self._failed: BaseException | None = None
        self._held = 0  # the unit of work's locks: 0 none, 1 SKUs (book shared), 2 book
        self._version = 0
        self._next = 0
        self._open = False
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = connection
        if connection is not None:
            self._check_caller(connection)
        try:
            conn = self._connection()
            self._migrate(conn)
        except BaseException:
            self._drop()
            raise

    # -- connection -----------------------------------------------------------

    @property
    def schema(self) -> str:
        """The schema the book's tables live in. Cost: O(1)."""
        return self._schema

    @property
    def channel(self) -> str:
        """The `LISTEN` channel notified (in the same commit) whenever events
        reach the outbox: `LISTEN "<channel>"` to wait for new events without
        polling. Cost: O(1)."""
        return f"{self._schema}_events"

    @property
    def in_caller_transaction(self) -> bool:
        """Whether the book works inside the caller's transaction
        (`connection=`): then it does not call subscribers. Cost: O(1)."""
        return not self._owned

    def __repr__(self) -> str:
        if not hasattr(self, "_conn"):  # (an error raised while it was being made)
            return "<PostgresRepository, not opened>"
        state = "closed" if self._closed else "open"
        where = "caller's connection" if not self._owned else _redacted(self._conninfo)
        return f"<PostgresRepository {where} schema={self._schema!r} {state}>"

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=max(1, math.ceil(self._timeout)),
            )
        except psycopg.Error as exc:
            raise ConnectionLost(
                f"cannot connect to PostgreSQL ({_redacted(self._conninfo)}): {exc}"
            ) from exc
        try:
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (self._lock_timeout(),))
        except BaseException:
            conn.close()
            raise
        return conn

    def _lock_timeout(self) -> str:
        # PostgreSQL's lock_timeout: 0 there means "wait forever", so no wait is 1 ms.
        return f"{max(1, round(self._timeout * 1000))}ms"

    def _check_caller(self, conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.broken:
            raise ConnectionLost("the caller's connection is closed")
        status = conn.info.transaction_status
        if conn.autocommit and status == psycopg.pq.TransactionStatus.IDLE:
            raise InvalidArgument(
                "connection is in autocommit mode with no transaction open: the book works "
                "inside the caller's transaction, so open one (with conn.transaction():) "
                "or use a connection with autocommit off"
            )
        if status == psycopg.pq.TransactionStatus.INERROR:
            raise StorageError(
                "the caller's transaction has failed (a statement raised): roll it back first"
            )
        level = conn.isolation_level
        if level not in (None, psycopg.IsolationLevel.READ_COMMITTED):
            raise InvalidArgument(
                f"connection isolation level must be READ COMMITTED (the default), got {level!r}: "
                f"the book reads what other writers committed while it waits for its lock"
            )

    def _connection(self) -> psycopg.Connection[Any]:
        # The connection to use now; an owned one is made again when it broke
        # (between units of work: inside one, losing it is an error).
        if self._closed:
            raise RepositoryClosed(f"the repository {self!r} is closed")
        conn = self._conn
        if conn is not None and not (conn.closed or conn.broken):
            return conn
        if not self._owned:
            raise ConnectionLost("the caller's connection is closed or broken")
        if self._open:
            raise ConnectionLost("the connection broke inside a unit of work: nothing committed")
        if conn is not None:
            conn.close()
        self._conn = None
        self._conn = self._connect()
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._closed = True
        if conn is not None and self._owned:
            conn.close()

    @contextmanager
    def _mapped(self, doing: str) -> Iterator[None]:
        # The driver's errors as the library's.
        try:
            yield
        except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
            raise CommitRace(f"PostgreSQL chose this unit of work to {doing} again: {exc}") from exc
        except pg_errors.NotNullViolation as exc:
            if exc.diag.column_name != "changed":
                raise StorageError(f"PostgreSQL refused to {doing}: {exc}") from exc
            # (the guard of a key not partitioned by SKU: see _GUARDED)
            raise CommitRace(
                f"another writer stored a row with the same key ({exc.diag.table_name}) first "
                f"while trying to {doing}: it runs again"
            ) from exc
        except pg_errors.UniqueViolation as exc:
            # two writers on different SKUs chose one key at once (an order
            # id, a generated hold id): the later one catches up and runs again
            raise CommitRace(
                f"another writer committed the same key first while trying to {doing}: {exc}"
            ) from exc
        except pg_errors.LockNotAvailable as exc:
            raise ConcurrencyConflict(
                f"could not {doing}: held by another writer past the timeout "
                f"({self._timeout:g} s): {exc}"
            ) from exc
        except psycopg.OperationalError as exc:
            conn = self._conn
            if conn is not None and self._owned and not conn.closed and _unusable(exc):
                # the driver lost track of the connection (say the server
                # ended it while a pipeline ran, before the socket told):
                # nothing was committed, and it is made again
                conn.close()
            if conn is None or conn.closed or conn.broken:
                raise ConnectionLost(
                    f"the connection to PostgreSQL was lost while trying to {doing}; "
                    f"nothing of it was committed: {exc}"
                ) from exc
            raise StorageError(f"PostgreSQL could not {doing}: {exc}") from exc
        except psycopg.DataError as exc:
            raise StorageCorrupted(f"PostgreSQL could not {doing}: {exc}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL refused to {doing}: {exc}") from exc

    # -- schema ---------------------------------------------------------------

    def _inspect(self, conn: psycopg.Connection[Any]) -> int | None:
        # The schema's book version, read without changing anything: None when
        # the schema does not exist, 0 when it is empty. Raises for a schema
        # that holds something else, or a newer version.
        schema = self._schema
        row = conn.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        if row is None:
            return None
        names = [
            name
            for (name,) in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = %s AND relkind <> 'i'"
                " UNION ALL SELECT proname FROM pg_proc WHERE pronamespace = %s"
                " UNION ALL SELECT typname FROM pg_type WHERE typnamespace = %s"
                " AND typrelid = 0 AND typelem = 0 ORDER BY 1",
                (row[0], row[0], row[0]),
            )
        ]
        if not names:
            return 0
        mark = conn.execute(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c"
            " WHERE c.relnamespace = %s AND c.relname = 'schema_version' AND c.relkind = 'r'",
            (row[0],),
        ).fetchone()
        if mark is None or mark[0] != MARK:
            raise NotABackorderDatabase(
                f"schema {schema!r} holds something other than a backorder book "
                f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}); it was left "
                f"untouched: choose another schema"
            )
        (version,) = conn.execute(
            pg_sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_version").format(
                pg_sql.Identifier(schema)
            )
        ).fetchone() or (0,)
        if version > SCHEMA_VERSION:
            raise UnsupportedSchema(
                f"schema {schema!r} has book schema version {version}, newer than "
                f"{SCHEMA_VERSION} which this version of backorder knows; upgrade backorder"
            )
        return int(version)

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with self._mapped("read the schema"):
            if self._inspect(conn) == SCHEMA_VERSION:
                return
        with self._mapped("create or migrate the schema"), self._unit(conn):
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
            current = self._inspect(conn)  # again, under the lock
            s = self._q
            if current is None:
                conn.execute(f"CREATE SCHEMA {s}")
            if not current:
                conn.execute(f"CREATE TABLE {s}.schema_version (version INTEGER NOT NULL)")
                conn.execute(f"COMMENT ON TABLE {s}.schema_version IS '{MARK}'")
                current = 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement.replace("{s}", s))
                conn.execute(f"INSERT INTO {s}.schema_version (version) VALUES (%s)", (version,))

    @contextmanager
    def _unit(self, conn: psycopg.Connection[Any], name: str = _SAVEPOINT) -> Iterator[None]:
        # A transaction of our own (owned connection) or a savepoint in the
        # caller's transaction, ended here.
        self._start(conn, name)
        try:
            yield
        except BaseException:
            self._undo(conn, name)
            raise
        self._end(conn, name)

    def _start(self, conn: psycopg.Connection[Any], name: str) -> None:
        if self._owned:
            conn.execute("BEGIN")
        else:
            self._check_caller(conn)
            conn.execute(f"SAVEPOINT {name}")

    def _end(self, conn: psycopg.Connection[Any], name: str) -> None:
        conn.execute("COMMIT" if self._owned else f"RELEASE SAVEPOINT {name}")

    def _undo(self, conn: psycopg.Connection[Any], name: str) -> None:
        if conn.closed or conn.broken:
            return
        try:
            if self._owned:
                conn.execute("ROLLBACK")
            else:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
        except psycopg.Error:
            if self._owned:
                conn.close()  # a connection in an unknown state is made again

    # -- reading --------------------------------------------------------------

    def _reading(
        self, read: Callable[[psycopg.Connection[Any]], _T], doing: str, staged: bool = True
    ) -> _T:
        # Run `read` on one consistent view: inside the open unit of work (its
        # staged rows written first, unless the read never needs them), in a
        # read-only repeatable-read transaction of our own, or (caller's
        # transaction) in a savepoint, again until nothing committed between
        # the first statement and the last.
        def run(conn: psycopg.Connection[Any]) -> _T:
            if self._open:
                if staged and self._staged is not None:
                    self._flush(conn)
                return read(conn)
            if self._owned:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    result = read(conn)
                except BaseException:
                    self._undo(conn, "")
                    raise
                conn.execute("COMMIT")
                return result
            for _ in range(20):
                with self._unit(conn, _READ_SAVEPOINT):
                    before = self._snapshot(conn)
                    result = read(conn)
                    if not self._changed_since(conn, before):
                        return result
            raise ConcurrencyConflict(
                f"schema {self._schema!r} changed under every one of 20 reads; try again"
            )

        return self._again(run, doing)

    def load_parts(self, size: int = 2_000) -> Generator[Snapshot, None, None]:
        """Every row, as `load` reads them, in parts (`StreamingRepository`),
        in one read-only repeatable-read transaction of the repository's own:
        the SKUs, the counters and the policy; then the orders in arrival
        order, `size` at a time (server-side cursors), each part with every
        line of its orders; last every other row. Inside a unit of work or a
        caller's transaction: what `load` reads there, split the same way.
        The read ends when the iterator is exhausted or closed.

        Raises (as it is iterated):
            ConnectionLost: the server went away (a broken connection found
                before the first part is made again once, as for `load`;
                after it, nothing is read on: read again).
            StorageCorrupted: a row this library never writes.
            InvalidArgument: `size` is not a positive int (at the first part).

        Cost: O(rows) in all; memory O(`size`) rows at a time.
        """
        if type(size) is not int or size < 1:
            raise InvalidArgument(f"size must be a positive int, got {size!r}")
        if not self._owned or self._open:  # (the view of the caller's transaction, or of the unit)
            yield from split_whole(self.load())
            return
        s = self._q
        self._hints = None  # (as every whole read: a hint serves only a catch-up)

        def start(conn: psycopg.Connection[Any]) -> dict[str, list[Any]]:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                return self._many(
                    conn,
                    {
                        "snapshot": ("SELECT pg_current_snapshot()::text", ()),
                        "meta": (f"SELECT name, value FROM {s}.meta", ()),
                        # (the counters: the highest number the rows hold, see _highest)
                        "tops": (
                            "SELECT "
                            + ", ".join(
                                f"(SELECT coalesce(max(seq), 0) FROM {s}.{table})"
                                for _, table in _COUNTED
                            ),
                            (),
                        ),
                        "skus": (self._select["skus"], (-1,)),
                        "settings": (self._select["settings"], (-1,)),
                        **({} if self._owned else {"mine": (self._mine_query(), ())}),
                    },
                )
            except BaseException:
                self._undo(conn, "")
                raise

        first = self._again(start, "read the book")
        conn = self._connection()
        counters = {name: int(value) for name, value in first.pop("meta")}
        counters.pop("version", None)
        for (counter, _), top in zip(_COUNTED, first.pop("tops")[0], strict=True):
            counters[counter] = max(counters.get(counter, 0), int(top))
        mine = int(first.pop("mine", [(0,)])[0][0])
        version = self._token(str(first.pop("snapshot")[0][0]), mine)
        cursors = [conn.cursor(name=f"backorder_load_{table}") for table in ("orders", "lines")]
        done = False
        try:
            with self._mapped("read the book"):
                for cursor, table in zip(cursors, ("orders", "lines"), strict=True):
                    cursor.execute(self._sql.select[table] + IN_ARRIVAL)

            def fetch(cursor: Any) -> Callable[[], list[Any]]:
                def more() -> list[Any]:
                    with self._mapped("read the book"):
                        return list(cursor.fetchmany(size))

                return more

            def rest() -> dict[str, list[Any]]:
                with self._mapped("read the book"):
                    return {
                        table: self._run(conn, query, (-1,))
                        for table, query in self._select.items()
                        if table not in ("skus", "settings", "orders", "lines")
                    }

            yield from parts_of(
                version,
                {name: counters.get(name, 0) for name in COUNTERS},
                first,
                fetch(cursors[0]),
                fetch(cursors[1]),
                rest,
            )
            done = True
        except GeneratorExit:  # (closed before the end: the read ends)
            done = True
            raise
        finally:
            with contextlib.suppress(psycopg.Error):
                for cursor in cursors:
                    cursor.close()
            if done and not (conn.closed or conn.broken):
                with self._mapped("end the read"):
                    conn.execute("COMMIT")
            else:
                self._undo(conn, "")

    def version(self) -> int:
        """The version the book's copy is at when nothing committed since it
        was read (or written), else -1: the book catches up. One indexed read
        of `commits`. Cost: O(commits since the oldest transaction running
        when the copy was read)."""
        return self._again(self._current, "read the version")

    def _running(self) -> tuple[int, ...]:
        # (see PostgresReads) inside a caller's transaction, or a unit of work
        # of our own, its transaction's rows are the copy's own
        return (self._xid,) if self._xid and (self._open or not self._owned) else ()

    # -- writing ----------------------------------------------------------------

    def begin(self) -> int:
        """Start a unit of work holding the whole book's write lock (no other
        writer runs until it ends) and return the copy's version when nothing
        committed since its snapshot, else -1 (the book catches up). An owned
        connection that broke is made again. (A book uses `begin_unlocked`
        and `lock_skus` instead, so writers on different SKUs work at once.)

        Raises:
            ConcurrencyConflict: another writer held a lock past the timeout.
            ConnectionLost: the server cannot be reached.
            RepositoryClosed: closed.

        Cost: two round trips plus the wait for other writers.
        """
        self.begin_unlocked()
        return self.lock_book()

    def begin_unlocked(self) -> None:
        """Start a unit of work that holds no lock yet (see
        `LockingRepository`). An owned connection that broke is made again.

        Raises:
            ConnectionLost: the server cannot be reached.
            RepositoryClosed: closed.

        Cost: one round trip.
        """
        self._staged, self._count = None, 0
        self._failed = None
        self._held = 0
        self._hints = None  # (a check's hint serves only the catch-up right after it)
        xid, number = self._again(self._begin, "begin a unit of work")
        self._xid, self._next = int(xid), int(number)
        self._mask = 0

    def _begin(self, conn: psycopg.Connection[Any]) -> Any:
        # BEGIN (or a savepoint), then this unit of work's transaction id
        # (assigned now, so every snapshot it takes sees its own writes) and
        # the number it commits as.
        ids = f"SELECT pg_current_xact_id()::text::bigint, nextval('{self._q}.versions')"
        try:
            if self._owned:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    self._open = True
                    first = conn.execute(ids)
            else:
                self._start(conn, _SAVEPOINT)
                self._open = True
                first = conn.execute(ids)
            return first.fetchone()
        except BaseException:
            self.rollback()
            raise

    def lock_skus(self, skus: Sequence[str]) -> int:
        """Lock these SKUs until the unit of work ends: the book's lock
        shared first (a `lock_book` waits for it), then one advisory lock
        per SKU (`pg_advisory_xact_lock`), in the order of their keys, so
        writers on different SKUs never wait for each other and writers on
        one SKU take turns. Returns the copy's version when nothing
        committed since its snapshot, else -1 (read after the locks are
        held).

        Raises:
            ConcurrencyConflict: a SKU stayed locked past the timeout (or
                no unit of work is open).
            CommitRace: PostgreSQL found a deadlock (the book runs it again).
            ConnectionLost: the connection broke (nothing committed).

        Cost: one round trip plus the wait for writers of these SKUs.
        """
        keys = sorted({_lock_key(f"{self._schema}\x00sku\x00{sku}") for sku in skus})
        # one statement: its calls run left to right, the book's lock first
        calls = ["pg_advisory_xact_lock(%s)"] * len(keys)
        if not self._held:
            calls.insert(0, "pg_advisory_xact_lock_shared(%s)")
            keys.insert(0, self._key)
        locks = [(f"SELECT {', '.join(calls)}", tuple(keys))]
        version = self._locking(locks, f"SKUs {sorted(skus)!r}")
        self._held = max(self._held, 1)
        return version

    def lock_book(self) -> int:
        """Lock the whole book until the unit of work ends: it waits for
        every writer and no writer starts until it ends (a sweep, a policy
        switch, migrating). Returns the copy's version or -1 as `lock_skus`.

        Raises:
            ConcurrencyConflict: another writer held the book past the timeout.
            CommitRace: PostgreSQL found a deadlock (the book runs it again).
            ConnectionLost: the connection broke (nothing committed).

        Cost: one round trip plus the wait for every other writer.
        """
        if self._held == 2:
            return self._current(self._connection())
        version = self._locking(
            [("SELECT pg_advisory_xact_lock(%s)", (self._key,))], f"schema {self._schema!r}"
        )
        self._held = 2
        return version

    def _locking(self, locks: list[tuple[str, tuple[int, ...]]], what: str) -> int:
        # Take these locks, then read whether the copy is stale, in one
        # round trip (a caller's lock_timeout is ours only while waiting).
        if not self._open:
            raise ConcurrencyConflict("a lock outside a unit of work: call begin() first")
        conn = self._connection()
        params = self._stale_params(self._version)
        try:
            with self._mapped(f"lock {what}"):
                if self._owned:
                    with conn.pipeline():
                        for query, args in locks:
                            conn.execute(query, args)
                        check = (
                            None if params is None else conn.execute(self._stale_query(), params)
                        )
                else:
                    with conn.pipeline():
                        before = conn.execute("SELECT current_setting('lock_timeout')")
                        conn.execute(
                            "SELECT set_config('lock_timeout', %s, true)", (self._lock_timeout(),)
                        )
                    (old,) = before.fetchone() or ("0",)
                    with conn.pipeline():
                        for query, args in locks:
                            conn.execute(query, args)
                        conn.execute("SELECT set_config('lock_timeout', %s, true)", (old,))
                        check = (
                            None if params is None else conn.execute(self._stale_query(), params)
                        )
                stale = None if check is None else check.fetchone()
        except BaseException:
            self.rollback()
            raise
        if stale is None or self._hint(stale):
            return -1  # something committed since the copy's snapshot: catch up
        # nothing did: the copy is current at this unit of work's snapshot
        # (which sees its own writes)
        self._advance(self._version, str(stale[0]))
        return self._version

    def _again(self, call: Callable[[psycopg.Connection[Any]], _T], doing: str) -> _T:
        # Run `call` on the connection; an owned connection found broken
        # (the server restarted, the backend was terminated) before a unit of
        # work started is made again once, and `call` run again on it.
        again = self._owned and not self._open
        for attempt in (1, 2):
            try:
                with self._mapped(doing):
                    return call(self._connection())
            except ConnectionLost:
                if attempt == 2 or not again:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def write(self, changes: Changes) -> None:
        """Stage one operation's rows in the unit of work.

        Rows are folded into one per key as they come and written at
        `commit()` (or every 500 operations in a long batch, or before a read
        inside the unit of work), one `executemany` per table, pipelined. If writing fails,
        the unit of work is rolled back and this and every later
        `write`/`commit` of it raises.

        Raises:
            ConcurrencyConflict: no unit of work is open.
            StorageError: an earlier write of this unit of work failed.

        Cost: O(1); O(rows) when it writes.
        """
        if self._failed is not None:
            raise self._failure(self._failed, "an earlier write")
        if not self._open:
            raise ConcurrencyConflict("write() outside a unit of work: call begin() first")
        conn = self._connection()
        self._staged = staged_with(self._staged, changes)
        self._count += 1
        if self._count >= WRITE_EVERY:
            with self._mapped("write rows"):
                self._flush(conn)

    def _flush(self, conn: psycopg.Connection[Any]) -> None:
        staged, self._staged, self._count = self._staged, None, 0
        if staged is None:
            return
        try:
            with conn.pipeline():
                self._store(conn, staged)
        except BaseException as exc:
            self._failed = exc
            if conn.closed or conn.broken:
                self._failed = ConnectionLost(f"the connection was lost: {exc}")
                self._failed.__cause__ = exc
            self._drop_unit()
            raise

    def _store(self, conn: psycopg.Connection[Any], merged: Merged) -> None:
        s = self._q
        changed = self._xid  # (every row records the transaction that wrote it)
        extra = {"deadlines": lambda row: (micros(row[1]),)}
        known = self._snaps.get(self._version)
        guard = (
            None if known is None else known[0],
            [*(() if known is None else known[2]), *self._running()],
        )
        with conn.cursor() as cur:
            run = cur.executemany
            bits = self._bits
            for table, rows in statement_rows(merged, changed, extra):
                self._mask |= bits[table.split(":")[0]]
                if table.endswith(":gone"):
                    name = table[: -len(":gone")]
                    key = _GONE_KEYS[name]
                    # table and key names come from this module, never from a user
                    run(f"UPDATE {s}.{name} SET gone = 1, changed = %s WHERE {key} = %s", rows)
                elif table in _GUARDED:
                    run(self._sql.upsert[table], [(*row, *guard) for row in rows])
                else:
                    run(self._sql.upsert[table], rows)
            if merged.expired_holds:
                self._mask |= bits["expired_holds"]
                run(
                    f"INSERT INTO {s}.expired_holds (hold_id, gone, changed) VALUES (%s, %s, %s)"
                    " ON CONFLICT (hold_id) DO UPDATE SET gone = excluded.gone, "
                    + _GUARD.format(t="expired_holds"),
                    [
                        (hold_id, int(not still), changed, *guard)
                        for hold_id, still in merged.expired_holds.items()
                    ],
                )
            if merged.events:
                run(
                    f"INSERT INTO {s}.outbox (event) VALUES (%s)",
                    [(text,) for text in merged.events],
                )
                cur.execute("SELECT pg_notify(%s, '')", (self.channel,))
            if merged.policy is not None:
                self._mask |= bits["settings"]
                cur.execute(
                    f"INSERT INTO {s}.settings (name, value, changed) VALUES ('policy', %s, %s)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
                    " changed = excluded.changed",
                    (merged.policy, changed),
                )
            # (the counters are not written: one row every writer updates
            # would make writers on different SKUs wait for each other; they
            # are read back as the highest number the rows hold)

    def _failure(self, failed: BaseException, which: str) -> StorageError:
        # The error that a unit of work whose write failed ends with.
        if isinstance(failed, ConnectionLost):
            error: StorageError = ConnectionLost(
                f"the connection to PostgreSQL was lost during {which} of this unit of work; "
                f"nothing of it was committed: {failed}"
            )
        else:
            error = StorageError(
                f"{which} of this unit of work failed ({failed!r}); it was rolled back"
            )
        error.__cause__ = failed
        return error

    def _drop_unit(self) -> None:
        # End the open unit of work after a failure (nothing of it stays).
        self._open = False
        self._staged, self._count = None, 0
        conn = self._conn
        if conn is not None:
            self._undo(conn, _SAVEPOINT)

    def commit(self) -> int:
        """Write what was staged, record the commit and commit (inside a
        caller's transaction: release the savepoint). All or nothing.
        Returns the copy's version (its snapshot now counts this commit as
        its own).

        Raises:
            StorageError: a write of this unit of work failed (rolled back).
            ConnectionLost: the connection broke before the commit was sent
                (nothing was committed).
            CommitOutcomeUnknown: the connection broke while committing: it
                may or may not have committed.
            CommitRace: PostgreSQL found a deadlock (the book runs it again).

        Cost: O(rows staged), one round trip plus the server's commit.
        """
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise self._failure(failed, "a write")
        conn = self._connection()
        if not self._open:
            raise ConcurrencyConflict("commit() outside a unit of work: call begin() first")
        version = self._next
        s = self._q
        with self._mapped("commit"):
            staged, self._staged, self._count = self._staged, None, 0
            try:
                with conn.pipeline():
                    if staged is not None:
                        self._store(conn, staged)
                    conn.execute(
                        f"INSERT INTO {s}.change_log (version, xid, tables) VALUES (%s, %s, %s)",
                        (version, self._xid, self._mask),
                    )
            except BaseException:
                self._drop_unit()
                raise
            try:
                self._end(conn, _SAVEPOINT)
            except psycopg.OperationalError as exc:
                self._open = False
                if self._owned and not conn.closed and _unusable(exc):
                    conn.close()  # made again by the next unit of work
                if conn.closed or conn.broken:
                    raise CommitOutcomeUnknown(
                        f"the connection to PostgreSQL was lost while committing: the operation "
                        f"may or may not have committed (version {version}): {exc}"
                    ) from exc
                self._drop_unit()
                raise
            except BaseException:
                self._drop_unit()
                raise
        self._open = False
        # the copy holds this unit of work's writes: they are its own, not news
        self._advance(
            self._version, self._snaps.get(self._version, ("0:0:",))[0], version, self._xid
        )
        return self._version

    def rollback(self) -> None:
        """Drop the open unit of work, if any (inside a caller's transaction:
        roll back to its savepoint). Cost: O(1)."""
        self._staged, self._count = None, 0
        self._failed = None
        self._hints = None
        if self._open:
            self._drop_unit()

    # -- the outbox -------------------------------------------------------------

    def pending_events(self, limit: int | None = None) -> list[tuple[int, str]]:
        """`(id, event JSON)` of the outbox, oldest first. Cost: O(returned)."""
        query = f"SELECT id, event FROM {self._q}.outbox ORDER BY id"
        if limit is not None:
            query += " LIMIT %s"
        params = () if limit is None else (limit,)
        return self._again(
            lambda conn: [(int(i), text) for i, text in self._run(conn, query, params)],
            "read the outbox",
        )

    def claim_events(self, limit: int, lease_us: int, now_us: int) -> list[tuple[int, str]]:
        """Lease the oldest events no running lease holds (see
        `ClaimingRepository.claim_events`) in one statement: rows another
        sender is claiming are skipped (`FOR UPDATE SKIP LOCKED`), never
        waited for, so senders on any number of machines share the outbox.
        Wait for new events without polling with `LISTEN` on `channel`.

        Inside a caller's transaction in which a book wrote (this one or
        another on the connection), it refuses: the events of that work
        are in the outbox already, but may still be rolled back with it,
        and no sender may deliver an event of work that did not commit.

        Raises:
            ConnectionLost: the server cannot be reached.
            InvalidArgument: inside a caller's transaction a book wrote in
                (claim after the commit, or from a connection of the sender's own).

        Cost: O(returned + skipped as leased).
        """
        s = self._q
        query = (
            f"UPDATE {s}.outbox SET leased_until_us = %s WHERE id IN ("
            f"SELECT id FROM {s}.outbox WHERE leased_until_us IS NULL OR leased_until_us <= %s"
            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, event"
        )
        params = (now_us + lease_us, now_us, limit)

        def claim(conn: psycopg.Connection[Any]) -> list[tuple[int, str]]:
            if self._open or self._owned:
                rows = conn.execute(query, params).fetchall()
            else:
                wrote = conn.execute(
                    f"SELECT EXISTS (SELECT 1 FROM {s}.change_log"
                    " WHERE xid = pg_current_xact_id_if_assigned()::text::bigint)"
                ).fetchone()
                if wrote is not None and wrote[0]:
                    raise InvalidArgument(
                        "claim_events inside the caller's transaction after a book wrote in it "
                        "would hand out events that may still be rolled back: claim after the "
                        "commit (or from a connection of the sender's own)"
                    )
                with self._unit(conn, _READ_SAVEPOINT):
                    rows = conn.execute(query, params).fetchall()
            return sorted((int(i), str(text)) for i, text in rows)

        return self._again(claim, "claim outbox events")

    def mark_published(self, ids: Sequence[int]) -> int:
        """Delete these events from the outbox (in the open unit of work, the
        caller's transaction, or one commit of its own). Cost: O(ids)."""
        wanted = [i for i in ids if -(2**63) <= i < 2**63]
        query = f"DELETE FROM {self._q}.outbox WHERE id = ANY(%s)"

        def delete(conn: psycopg.Connection[Any]) -> int:
            if self._open or self._owned:  # (owned, outside a unit: one autocommit statement)
                return conn.execute(query, (wanted,)).rowcount
            with self._unit(conn, _READ_SAVEPOINT):
                return conn.execute(query, (wanted,)).rowcount

        # deleting again is harmless, so a lost connection is simply tried again
        return self._again(delete, "mark events published")

    def close(self) -> None:
        """Close the connection (rolling back anything uncommitted); a
        caller's connection is left open (its savepoint rolled back).
        Harmless when already closed. Cost: O(1)."""
        if self._closed:
            return
        if self._open:
            self.rollback()
        self._drop()
