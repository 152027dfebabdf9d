"""The PostgreSQL book's schema: forward migrations (`{s}` is the quoted
schema name) and the mark that tells a book's schema from any other."""

from __future__ import annotations

__all__ = ["MARK", "MIGRATIONS", "SCHEMA_VERSION"]

# Forward migrations: MIGRATIONS[v] takes a schema from version v - 1 to v.
# Only ever append; never edit a released migration. `{s}` is the quoted
# schema name. Every row carries `changed`: the version of the commit that
# last wrote it (indexed), so a book catches up by reading only what changed;
# rows that go away are kept with `gone = 1` for the same reason. `skus.pos`
# keeps the order SKUs were first written in. `commits` lists every version
# committed (so a book inside a caller's transaction can tell that the
# caller rolled its work back: its version is not there).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE {s}.meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        "CREATE SEQUENCE {s}.versions",
        """CREATE TABLE {s}.skus (
            sku TEXT PRIMARY KEY,
            on_hand BIGINT NOT NULL CHECK (on_hand >= 0),
            allocated BIGINT NOT NULL CHECK (allocated >= 0 AND allocated <= on_hand),
            slots BIGINT NOT NULL,
            backorder_limit BIGINT,
            lead_time_us BIGINT,
            changed BIGINT NOT NULL,
            pos BIGSERIAL NOT NULL)""",
        """CREATE TABLE {s}.orders (
            order_id TEXT PRIMARY KEY,
            seq BIGINT NOT NULL UNIQUE,
            rank BIGINT NOT NULL,
            body TEXT NOT NULL,
            changed BIGINT NOT NULL)""",
        """CREATE TABLE {s}.lines (
            order_id TEXT NOT NULL REFERENCES {s}.orders (order_id),
            sku TEXT NOT NULL REFERENCES {s}.skus (sku),
            rank BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            slot BIGINT NOT NULL,
            ordered BIGINT NOT NULL CHECK (ordered > 0),
            allocated BIGINT NOT NULL CHECK (allocated >= 0),
            shipped BIGINT NOT NULL CHECK (shipped >= 0),
            cancelled BIGINT NOT NULL CHECK (cancelled >= 0),
            changed BIGINT NOT NULL,
            CHECK (allocated + shipped + cancelled <= ordered),
            PRIMARY KEY (order_id, sku))""",
        "CREATE INDEX lines_by_sku ON {s}.lines (sku, rank, seq)",
        "CREATE INDEX lines_by_order ON {s}.lines (order_id)",
        """CREATE TABLE {s}.receipts (
            sku TEXT NOT NULL REFERENCES {s}.skus (sku),
            reference TEXT NOT NULL,
            quantity BIGINT NOT NULL CHECK (quantity > 0),
            changed BIGINT NOT NULL,
            PRIMARY KEY (sku, reference))""",
        """CREATE TABLE {s}.holds (
            hold_id TEXT PRIMARY KEY,
            sku TEXT NOT NULL REFERENCES {s}.skus (sku),
            quantity BIGINT NOT NULL CHECK (quantity > 0),
            expires_at TEXT NOT NULL,
            seq BIGINT NOT NULL,
            gone INTEGER NOT NULL,
            changed BIGINT NOT NULL)""",
        "CREATE INDEX holds_live ON {s}.holds (gone)",
        """CREATE TABLE {s}.expired_holds (
            hold_id TEXT PRIMARY KEY,
            gone INTEGER NOT NULL,
            changed BIGINT NOT NULL)""",
        """CREATE TABLE {s}.expected (
            reference TEXT PRIMARY KEY,
            sku TEXT NOT NULL REFERENCES {s}.skus (sku),
            quantity BIGINT NOT NULL CHECK (quantity > 0),
            arriving TEXT NOT NULL,
            seq BIGINT NOT NULL,
            gone INTEGER NOT NULL,
            changed BIGINT NOT NULL)""",
        """CREATE TABLE {s}.deadlines (
            order_id TEXT PRIMARY KEY REFERENCES {s}.orders (order_id),
            deadline TEXT NOT NULL,
            seq BIGINT NOT NULL,
            gone INTEGER NOT NULL,
            due_us BIGINT NOT NULL,
            changed BIGINT NOT NULL)""",
        "CREATE INDEX deadlines_due ON {s}.deadlines (gone, due_us)",
        """CREATE TABLE {s}.ledger (
            seq BIGINT PRIMARY KEY,
            kind TEXT NOT NULL,
            sku TEXT NOT NULL REFERENCES {s}.skus (sku),
            on_hand_delta BIGINT NOT NULL,
            allocated_delta BIGINT NOT NULL,
            order_id TEXT,
            reference TEXT,
            at TEXT NOT NULL,
            on_hand BIGINT NOT NULL,
            allocated BIGINT NOT NULL,
            changed BIGINT NOT NULL)""",
        "CREATE INDEX ledger_by_sku ON {s}.ledger (sku, seq)",
        """CREATE TABLE {s}.outbox (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event TEXT NOT NULL)""",
        "CREATE TABLE {s}.commits (version BIGINT PRIMARY KEY)",
        *(
            f"CREATE INDEX {table}_changed ON {{s}}.{table} (changed)"
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
        "INSERT INTO {s}.meta (name, value) VALUES "
        "('version', 0), ('seq', 0), ('hold_seq', 0), ('expected_seq', 0)",
    ),
}

# Version 2: a book records the identity of its policy (`settings`).
MIGRATIONS[2] = (
    """CREATE TABLE {s}.settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        changed BIGINT NOT NULL)""",
    "CREATE INDEX settings_changed ON {s}.settings (changed)",
)

# Version 3: outbox leases for several senders (`claim_events`), and stock that
# moves between orders (firm and returned units of each line, returns counted).
MIGRATIONS[3] = (
    "ALTER TABLE {s}.outbox ADD COLUMN leased_until_us BIGINT",
    "ALTER TABLE {s}.lines ADD COLUMN firm BIGINT NOT NULL DEFAULT 0 CHECK (firm >= 0)",
    "ALTER TABLE {s}.lines ADD COLUMN returned BIGINT NOT NULL DEFAULT 0 CHECK (returned >= 0)",
    """CREATE TABLE {s}.returns (
        order_id TEXT NOT NULL REFERENCES {s}.orders (order_id),
        sku TEXT NOT NULL REFERENCES {s}.skus (sku),
        reference TEXT NOT NULL,
        quantity BIGINT NOT NULL CHECK (quantity > 0),
        changed BIGINT NOT NULL,
        PRIMARY KEY (order_id, sku, reference))""",
    "CREATE INDEX returns_by_sku ON {s}.returns (sku)",
    "CREATE INDEX returns_changed ON {s}.returns (changed)",
)

# Version 4: catching up by snapshot, not by one commit counter. `changed` now
# holds the writer's transaction id (`pg_current_xact_id()`); a book
# remembers the snapshot it read at and reads the rows whose writer that
# snapshot did not see. `commits` records each commit's transaction id; the
# meta row `version` is no longer written by every commit. Rows written
# before are marked 0 (seen by every snapshot).
MIGRATIONS[4] = (
    "ALTER TABLE {s}.commits ADD COLUMN xid BIGINT NOT NULL DEFAULT 0",
    "CREATE INDEX commits_xid ON {s}.commits (xid)",
    *(
        f"UPDATE {{s}}.{table} SET changed = 0"
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
            "settings",
            "returns",
        )
    ),
)

# Version 5: writers on different SKUs work at once (per-SKU locks). The
# counters are no longer written to `meta` (one row every writer would
# update): a reader takes the highest number the rows hold, so `seq` of
# orders, holds and scheduled receipts gets a plain index. Two SKUs' orders
# may share an arrival number, and two SKUs' ledger entries a number: the
# ledger is keyed by (sku, seq). Each commit records which tables it wrote.
MIGRATIONS[5] = (
    "ALTER TABLE {s}.orders DROP CONSTRAINT orders_seq_key",
    "CREATE INDEX orders_by_seq ON {s}.orders (seq)",
    "CREATE INDEX holds_by_seq ON {s}.holds (seq)",
    "CREATE INDEX expected_by_seq ON {s}.expected (seq)",
    "ALTER TABLE {s}.ledger DROP CONSTRAINT ledger_pkey",
    "ALTER TABLE {s}.ledger ADD PRIMARY KEY (sku, seq)",
    "DROP INDEX {s}.ledger_by_sku",
    "CREATE INDEX ledger_by_seq ON {s}.ledger (seq)",
    # which tables each commit wrote (a bit per table; -1: all, for commits
    # made before): a catch-up reads only those
    "ALTER TABLE {s}.commits ADD COLUMN tables INTEGER NOT NULL DEFAULT -1",
)

# Version 6: orders and events in the compact stored form SQLite's schema 7
# has (see `backorder._stored`). No row is rewritten: rows written before keep
# the public form, which is still read; the version tells an older library,
# which could not read the new rows, that the schema is newer than it knows,
# and `commits` becomes `change_log`, so that a process of the older version
# still running fails at its next operation (every one reads `commits`)
# instead of going on without the rows it cannot read.
MIGRATIONS[6] = ("ALTER TABLE {s}.commits RENAME TO change_log",)

# Version 7: a SKU load reads the SKU's open lines, not its history (as
# SQLite's schema does): the open lines through a partial index; the index
# of every line by SKU goes (no read uses it any more, and every write of a
# line paid for it). Closed orders and receipt references are read by id.
MIGRATIONS[7] = (
    "CREATE INDEX lines_open ON {s}.lines (sku, rank, seq) WHERE shipped + cancelled < ordered",
    "DROP INDEX {s}.lines_by_sku",
)

#: The schema version this library writes.
SCHEMA_VERSION = max(MIGRATIONS)

#: The comment on `schema_version` that marks a schema as a backorder book.
MARK = "backorder book"
