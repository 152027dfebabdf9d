"""The SQLite book's schema: forward migrations, and how an existing file is
looked at before anything writes to it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..errors import NotABackorderDatabase, UnsupportedSchema

__all__ = ["APPLICATION_ID", "MIGRATIONS", "REBUILDS_FROM", "SCHEMA_VERSION", "inspect_file"]

#: Written into the file header (`PRAGMA application_id`): "BkOr".
APPLICATION_ID = 0x426B4F72

# Forward migrations: MIGRATIONS[v] takes a database from version v - 1 to v.
# Only ever append; never edit a migration that has been released.
# Every row carries `changed`: the version of the commit that last wrote it
# (indexed), so a book catches up with other writers by reading only what
# changed. Rows that go away (holds, scheduled receipts, deadlines) are kept
# with `gone = 1` for the same reason.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        """CREATE TABLE skus (
            sku TEXT PRIMARY KEY,
            on_hand INTEGER NOT NULL CHECK (on_hand >= 0),
            allocated INTEGER NOT NULL CHECK (allocated >= 0 AND allocated <= on_hand),
            slots INTEGER NOT NULL,
            backorder_limit INTEGER,
            lead_time_us INTEGER,
            changed INTEGER NOT NULL)""",
        """CREATE TABLE orders (
            order_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL UNIQUE,
            rank INTEGER NOT NULL,
            body TEXT NOT NULL,
            changed INTEGER NOT NULL)""",
        """CREATE TABLE lines (
            order_id TEXT NOT NULL REFERENCES orders (order_id),
            sku TEXT NOT NULL REFERENCES skus (sku),
            rank INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            slot INTEGER NOT NULL,
            ordered INTEGER NOT NULL CHECK (ordered > 0),
            allocated INTEGER NOT NULL CHECK (allocated >= 0),
            shipped INTEGER NOT NULL CHECK (shipped >= 0),
            cancelled INTEGER NOT NULL CHECK (cancelled >= 0),
            changed INTEGER NOT NULL,
            CHECK (allocated + shipped + cancelled <= ordered),
            PRIMARY KEY (order_id, sku))""",
        "CREATE INDEX lines_by_sku ON lines (sku, rank, seq)",
        """CREATE TABLE receipts (
            sku TEXT NOT NULL REFERENCES skus (sku),
            reference TEXT NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            changed INTEGER NOT NULL,
            PRIMARY KEY (sku, reference))""",
        """CREATE TABLE holds (
            hold_id TEXT PRIMARY KEY,
            sku TEXT NOT NULL REFERENCES skus (sku),
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            expires_at TEXT NOT NULL,
            seq INTEGER NOT NULL,
            gone INTEGER NOT NULL,
            changed INTEGER NOT NULL)""",
        """CREATE TABLE expired_holds (
            hold_id TEXT PRIMARY KEY,
            gone INTEGER NOT NULL,
            changed INTEGER NOT NULL)""",
        """CREATE TABLE expected (
            reference TEXT PRIMARY KEY,
            sku TEXT NOT NULL REFERENCES skus (sku),
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            arriving TEXT NOT NULL,
            seq INTEGER NOT NULL,
            gone INTEGER NOT NULL,
            changed INTEGER NOT NULL)""",
        """CREATE TABLE deadlines (
            order_id TEXT PRIMARY KEY REFERENCES orders (order_id),
            deadline TEXT NOT NULL,
            seq INTEGER NOT NULL,
            gone INTEGER NOT NULL,
            changed INTEGER NOT NULL,
            due_us INTEGER NOT NULL)""",
        "CREATE INDEX deadlines_due ON deadlines (gone, due_us)",
        "CREATE INDEX holds_live ON holds (gone)",
        "CREATE INDEX lines_by_order ON lines (order_id)",
        """CREATE TABLE ledger (
            seq INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            sku TEXT NOT NULL REFERENCES skus (sku),
            on_hand_delta INTEGER NOT NULL,
            allocated_delta INTEGER NOT NULL,
            order_id TEXT,
            reference TEXT,
            at TEXT NOT NULL,
            on_hand INTEGER NOT NULL,
            allocated INTEGER NOT NULL,
            changed INTEGER NOT NULL)""",
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL)",
        *(
            f"CREATE INDEX {table}_changed ON {table} (changed)"
            for table in (
                "skus",
                "orders",
                "lines",
                "receipts",
                "holds",
                "expired_holds",
                "expected",
                "deadlines",
                "ledger",
            )
        ),
        "INSERT INTO meta (name, value) VALUES "
        "('version', 0), ('seq', 0), ('hold_seq', 0), ('expected_seq', 0)",
    ),
    # Outbox leases for several senders (`claim_events`): until when an event
    # is held by the sender that claimed it (microseconds since the epoch).
    2: ("ALTER TABLE outbox ADD COLUMN leased_until_us INTEGER",),
}

# Version 3: a book records the identity of its policy (`settings`).
MIGRATIONS[3] = (
    "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL, changed INTEGER NOT NULL)",
    "CREATE INDEX settings_changed ON settings (changed)",
)

# Version 4: stock that moves between orders: firm and returned units of each
# line, and the return references already counted.
MIGRATIONS[4] = (
    "ALTER TABLE lines ADD COLUMN firm INTEGER NOT NULL DEFAULT 0 CHECK (firm >= 0)",
    "ALTER TABLE lines ADD COLUMN returned INTEGER NOT NULL DEFAULT 0 CHECK (returned >= 0)",
    """CREATE TABLE returns (
            order_id TEXT NOT NULL REFERENCES orders (order_id),
            sku TEXT NOT NULL REFERENCES skus (sku),
            reference TEXT NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            changed INTEGER NOT NULL,
            PRIMARY KEY (order_id, sku, reference))""",
    "CREATE INDEX returns_by_sku ON returns (sku)",
    "CREATE INDEX returns_changed ON returns (changed)",
)

# Version 5: fewer pages written per commit and a smaller file (issue 13).
# Tables keyed by text are rebuilt WITHOUT ROWID, clustered on their primary
# key (one b-tree instead of a table and its key's index): `lines` keyed
# (order_id, sku) serves the by-order look-ups, so `lines_by_order` goes.
# A SKU's lines are two partial indexes: `lines_open` (the open lines in
# queue order: what a SKU's queue reads) and `lines_closed` (shipped or
# cancelled in full: history), so a new line is written to one of them and
# a line that only changes its allocation to neither. `orders` is keyed by
# its arrival number (`seq`, the order a book reads them in: appended, no
# sort on load), its id UNIQUE, and has no `changed` index: an order's row is
# only ever written with every line of it (`Touched.record`; the adapter
# makes sure), so the orders written after a version are those of the lines
# written after it. The ledger loses its `changed` index: it is appended in
# `seq` order, one commit after another, so catching up seeks the first
# entry written after a version in its key (`_SELECT["ledger"] in sqlite_reads.py`).
# The outbox drops AUTOINCREMENT (a page of `sqlite_sequence` per commit):
# its ids come from the `event_seq` counter in `meta`, never handed out twice.
# (Rebuilt with foreign keys off, as SQLite's ALTER TABLE documentation says,
# and checked with `PRAGMA foreign_key_check` before the commit.)
_LINE_COLUMNS = (
    "order_id, sku, rank, seq, slot, ordered, allocated, shipped, cancelled, changed,"
    " firm, returned"
)
_REBUILT: tuple[tuple[str, str, str], ...] = (
    (
        "orders",
        """(seq INTEGER PRIMARY KEY,
            order_id TEXT NOT NULL UNIQUE,
            rank INTEGER NOT NULL,
            body TEXT NOT NULL,
            changed INTEGER NOT NULL)""",
        "seq, order_id, rank, body, changed",
    ),
    (
        "lines",
        """(order_id TEXT NOT NULL REFERENCES orders (order_id),
            sku TEXT NOT NULL REFERENCES skus (sku),
            rank INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            slot INTEGER NOT NULL,
            ordered INTEGER NOT NULL CHECK (ordered > 0),
            allocated INTEGER NOT NULL CHECK (allocated >= 0),
            shipped INTEGER NOT NULL CHECK (shipped >= 0),
            cancelled INTEGER NOT NULL CHECK (cancelled >= 0),
            changed INTEGER NOT NULL,
            firm INTEGER NOT NULL DEFAULT 0 CHECK (firm >= 0),
            returned INTEGER NOT NULL DEFAULT 0 CHECK (returned >= 0),
            CHECK (allocated + shipped + cancelled <= ordered),
            PRIMARY KEY (order_id, sku)) WITHOUT ROWID""",
        _LINE_COLUMNS,
    ),
    (
        "receipts",
        """(sku TEXT NOT NULL REFERENCES skus (sku),
            reference TEXT NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            changed INTEGER NOT NULL,
            PRIMARY KEY (sku, reference)) WITHOUT ROWID""",
        "sku, reference, quantity, changed",
    ),
    (
        "returns",
        """(order_id TEXT NOT NULL REFERENCES orders (order_id),
            sku TEXT NOT NULL REFERENCES skus (sku),
            reference TEXT NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            changed INTEGER NOT NULL,
            PRIMARY KEY (order_id, sku, reference)) WITHOUT ROWID""",
        "order_id, sku, reference, quantity, changed",
    ),
    (
        "holds",
        """(hold_id TEXT PRIMARY KEY,
            sku TEXT NOT NULL REFERENCES skus (sku),
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            expires_at TEXT NOT NULL,
            seq INTEGER NOT NULL,
            gone INTEGER NOT NULL,
            changed INTEGER NOT NULL) WITHOUT ROWID""",
        "hold_id, sku, quantity, expires_at, seq, gone, changed",
    ),
    (
        "expired_holds",
        """(hold_id TEXT PRIMARY KEY,
            gone INTEGER NOT NULL,
            changed INTEGER NOT NULL) WITHOUT ROWID""",
        "hold_id, gone, changed",
    ),
    (
        "expected",
        """(reference TEXT PRIMARY KEY,
            sku TEXT NOT NULL REFERENCES skus (sku),
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            arriving TEXT NOT NULL,
            seq INTEGER NOT NULL,
            gone INTEGER NOT NULL,
            changed INTEGER NOT NULL) WITHOUT ROWID""",
        "reference, sku, quantity, arriving, seq, gone, changed",
    ),
    (
        "deadlines",
        """(order_id TEXT PRIMARY KEY REFERENCES orders (order_id),
            deadline TEXT NOT NULL,
            seq INTEGER NOT NULL,
            gone INTEGER NOT NULL,
            changed INTEGER NOT NULL,
            due_us INTEGER NOT NULL) WITHOUT ROWID""",
        "order_id, deadline, seq, gone, changed, due_us",
    ),
    (
        "outbox",
        """(id INTEGER PRIMARY KEY,
            event TEXT NOT NULL,
            leased_until_us INTEGER)""",
        "id, event, leased_until_us",
    ),
)
MIGRATIONS[5] = (
    # the next event id: after every id the outbox ever handed out
    "INSERT INTO meta (name, value) VALUES ('event_seq', max("
    " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0),"
    " coalesce((SELECT max(id) FROM outbox), 0)))",
    *(
        statement
        for table, definition, columns in _REBUILT
        for statement in (
            f"CREATE TABLE {table}_v5 {definition}",
            f"INSERT INTO {table}_v5 ({columns}) SELECT {columns} FROM {table}",
            f"DROP TABLE {table}",
            f"ALTER TABLE {table}_v5 RENAME TO {table}",
        )
    ),
    "DROP INDEX ledger_changed",
    # a lazy SKU load reads the SKU's last ledger entry (its balances)
    "CREATE INDEX ledger_by_sku ON ledger (sku, seq)",
    # (written `ordered > ...`: SQLite turns a query's `shipped + cancelled <
    # ordered` round so the column comes first, and uses a partial index only
    # when its WHERE is the query's term as turned; written the other way round
    # the index serves no query)
    "CREATE INDEX lines_open ON lines (sku, rank, seq) WHERE ordered > shipped + cancelled",
    "CREATE INDEX lines_closed ON lines (sku) WHERE ordered <= shipped + cancelled",
    "CREATE INDEX lines_changed ON lines (changed)",
    "CREATE INDEX receipts_changed ON receipts (changed)",
    "CREATE INDEX returns_by_sku ON returns (sku)",
    "CREATE INDEX returns_changed ON returns (changed)",
    "CREATE INDEX holds_live ON holds (gone)",
    "CREATE INDEX holds_changed ON holds (changed)",
    "CREATE INDEX expired_holds_changed ON expired_holds (changed)",
    "CREATE INDEX expected_changed ON expected (changed)",
    "CREATE INDEX deadlines_due ON deadlines (gone, due_us)",
    "CREATE INDEX deadlines_changed ON deadlines (changed)",
)

# Version 6: one change-log row per commit instead of a `changed` index on
# every table (issue 13). `commits` holds, for each commit, its version, the
# counters as it left them (what `meta` held: a commit no longer writes
# `meta`) and the keys it wrote, table by table (JSON; "*" for a table of
# which it wrote more than `SQLiteRepository` lists, read then by the
# `changed` column). Catching up reads the log after its version and the rows
# of those keys by their primary keys; a reader older than the log's first
# row (the log keeps its last rows only) loads again. A commit then writes one
# log page instead of a `changed` index page per table and the `meta` page.
# `settings` keeps its `changed` index (written once per policy). (`orders`
# stays keyed by `seq` with its id UNIQUE, two pages per order placed: keyed
# by id WITHOUT ROWID it measured as many, its rows of JSON being too long
# for a clustered b-tree's interior pages; version 7 does it, with short rows.)
MIGRATIONS[6] = (
    """CREATE TABLE commits (
            version INTEGER PRIMARY KEY,
            seq INTEGER NOT NULL,
            hold_seq INTEGER NOT NULL,
            expected_seq INTEGER NOT NULL,
            event_seq INTEGER NOT NULL,
            keys TEXT NOT NULL)""",
    # the first row: the book as version 5 left it ("*": a reader from before
    # it, if any, reads every table by `changed`)
    "INSERT INTO commits (version, seq, hold_seq, expected_seq, event_seq, keys) SELECT "
    + ", ".join(
        f"coalesce((SELECT value FROM meta WHERE name = '{name}'), 0)"
        for name in ("version", "seq", "hold_seq", "expected_seq", "event_seq")
    )
    + ", '\"*\"'",
    "DELETE FROM meta",
    # each SKU's last ledger entry, kept on its row (written with the row a
    # commit writes anyway) instead of an index on (sku, seq) (a page per receive)
    "ALTER TABLE skus ADD COLUMN last_entry INTEGER",
    "UPDATE skus SET last_entry = (SELECT max(seq) FROM ledger WHERE ledger.sku = skus.sku)",
    "DROP INDEX ledger_by_sku",
    *(
        f"DROP INDEX IF EXISTS {table}_changed"
        for table in (
            "skus",
            "lines",
            "receipts",
            "returns",
            "holds",
            "expired_holds",
            "expected",
            "deadlines",
        )
    ),
)

# Version 7: orders and events in a compact stored form (issue 13; see
# `backorder._stored`): an order's body is a JSON array of its fields without
# its id and defaults, a UTC time as microseconds; an event in the outbox is
# `[code, field, ...]`. No body or event is rewritten: rows written before
# keep the public form, which is still read. With bodies that short, `orders`
# is keyed by its id WITHOUT ROWID (one b-tree instead of the rowid table and
# the id's UNIQUE index: a page less per order placed, 15 bytes less per
# order in the file); reads in arrival order sort by `seq`. The version tells
# an older library (which could not read the new rows) that the file is newer
# than it knows, and `commits` becomes `change_log`, so that a process of
# the older version still running fails at once instead of going on without
# the rows it cannot read.
MIGRATIONS[7] = (
    """CREATE TABLE orders_v7 (order_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            rank INTEGER NOT NULL,
            body TEXT NOT NULL,
            changed INTEGER NOT NULL) WITHOUT ROWID""",
    "INSERT INTO orders_v7 (order_id, seq, rank, body, changed)"
    " SELECT order_id, seq, rank, body, changed FROM orders",
    "DROP TABLE orders",
    "ALTER TABLE orders_v7 RENAME TO orders",
    # (a process of the older version still running fails at its next
    # operation, which reads `commits`, and writes nothing: it could not read
    # the rows this version writes, and must not write on without them)
    "ALTER TABLE commits RENAME TO change_log",
)

#: The first version whose migration rebuilds tables (run with foreign keys off).
REBUILDS_FROM = 5

#: The schema version this library writes.
SCHEMA_VERSION = max(MIGRATIONS)


#: Tables every book file has (a file that lacks one is not a book).
_BOOK_TABLES = frozenset(
    {
        *("schema_version", "meta", "skus", "orders", "lines", "receipts", "holds"),
        *("expected", "expired_holds", "deadlines", "ledger", "outbox"),
    }
)
_MAGIC = b"SQLite format 3\x00"


def _check_header(path: str) -> None:
    # The first 100 bytes of the file, read as bytes: another program's
    # database is refused before SQLite opens it (no -shm is made beside it).
    try:
        with open(path, "rb") as file:
            header = file.read(100)
    except OSError as exc:
        raise NotABackorderDatabase(f"cannot read {path!r}: {exc}") from exc
    if len(header) < 100 or not header.startswith(_MAGIC):
        raise NotABackorderDatabase(f"{path!r} is not a SQLite database")
    app = int.from_bytes(header[68:72], "big")
    user_version = int.from_bytes(header[60:64], "big")
    if app not in (0, APPLICATION_ID) or (app == 0 and user_version != 0):
        raise NotABackorderDatabase(
            f"{path!r} is a database of another program (application id {app}, "
            f"user version {user_version}), not a backorder book"
        )


def inspect_file(path: str) -> int:
    """The schema version of an existing book file (0: an empty database),
    read without changing a byte of it. Raises NotABackorderDatabase,
    UnsupportedSchema."""
    # The schema version of an existing file, read without changing a byte of
    # it; 0 for a file with no tables. Raises for a file that is not ours. (An
    # open under the write lock checks the version again.) Read-only and
    # immutable, so no -wal or -shm is made beside it — unless a -wal with
    # content is there already (a writer crashed or is running): committed
    # pages may be in it, and the file alone can look malformed mid-checkpoint,
    # so then it is read through the WAL (read-only: the file is still not written).
    _check_header(path)
    wal = path + "-wal"
    hot = os.path.exists(wal) and os.path.getsize(wal) > 0
    uri = Path(path).absolute().as_uri() + ("?mode=ro" if hot else "?mode=ro&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise NotABackorderDatabase(f"cannot open {path!r} to read it: {exc}") from exc
    try:
        try:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
            (app,) = conn.execute("PRAGMA application_id").fetchone()
        except sqlite3.DatabaseError as exc:
            raise NotABackorderDatabase(f"{path!r} is not a SQLite database: {exc}") from exc
        (user_version,) = conn.execute("PRAGMA user_version").fetchone()
        if not tables and app == 0 and user_version == 0:
            return 0
        if app != APPLICATION_ID or not tables >= _BOOK_TABLES:
            raise NotABackorderDatabase(
                f"{path!r} is a database of another program (application id {app}, "
                f"tables {sorted(tables)[:8]!r}), not a backorder book"
            )
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        version = int(row[0] or 0)
        if version > SCHEMA_VERSION:
            raise UnsupportedSchema(
                f"{path!r} has schema version {version}, newer than {SCHEMA_VERSION} "
                f"which this version of backorder knows; upgrade backorder to open it"
            )
        return version
    finally:
        conn.close()
