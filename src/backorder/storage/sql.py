"""The SQL every SQL adapter shares: the tables' columns and keys, the
statements built from them, and how merged changes become statement rows.

A dialect (SQLite, PostgreSQL) adds only its own DDL types, locking,
placeholders and error mapping: statements here take the placeholder as an
argument (`?` for sqlite3, `%s` for psycopg). Table and column names come
from this module, never from a user; values are always parameters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import attrs

from .._codec import parse_time
from .rows import (
    COUNTERS,
    Changes,
    DeadlineRow,
    ExpectedRow,
    HoldRow,
    LedgerRow,
    LineRow,
    Merged,
    OrderRow,
    ReceiptRow,
    ReturnRow,
    SkuRow,
    Snapshot,
)

__all__ = [
    "IN_ARRIVAL",
    "KINDS",
    "TABLES",
    "Statements",
    "Table",
    "changes_from",
    "micros",
    "parts_of",
    "sku_changes",
    "snapshot_of",
    "split_whole",
    "statement_rows",
]


class Table(NamedTuple):
    """One stored table: its row type, its key columns, the columns an
    update may not change, whether rows that go away are kept as `gone`,
    and the extra columns a dialect stores after the row's (before `changed`)."""

    kind: Any
    key: tuple[str, ...]
    fixed: tuple[str, ...] = ()
    gone: bool = False
    extra: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The row type's columns, in order."""
        return tuple(self.kind._fields)


#: Every table a book stores, keyed by name, with the SQL names of the row
#: type's fields (`SkuRow.limit` is stored as `backorder_limit`, `order` as `body`).
TABLES: dict[str, Table] = {
    "skus": Table(SkuRow, ("sku",)),
    "orders": Table(OrderRow, ("order_id",), fixed=("seq",)),
    "lines": Table(LineRow, ("order_id", "sku"), fixed=("ordered",)),
    "receipts": Table(ReceiptRow, ("sku", "reference")),
    "holds": Table(HoldRow, ("hold_id",), gone=True),
    "expected": Table(ExpectedRow, ("reference",), gone=True),
    "deadlines": Table(DeadlineRow, ("order_id",), gone=True, extra=("due_us",)),
    "ledger": Table(LedgerRow, ("seq",)),
    "returns": Table(ReturnRow, ("order_id", "sku", "reference")),
}

#: The row type of each table.
KINDS: dict[str, Any] = {name: table.kind for name, table in TABLES.items()}

_SQL_NAMES = {"limit": "backorder_limit", "order": "body"}


def sql_columns(table: str) -> list[str]:
    """The SQL column names of a table's row fields, in order."""
    return [_SQL_NAMES.get(column, column) for column in TABLES[table].columns]


class Statements:
    """The shared statements, written with one dialect's placeholder; each
    table name after `prefix` (a quoted schema and a dot, for a dialect whose
    tables live in a schema; never a user's value unquoted)."""

    __slots__ = ("select", "select_changed", "upsert")

    def __init__(self, mark: str, prefix: str = "") -> None:
        self.upsert: dict[str, str] = {}
        self.select: dict[str, str] = {}
        self.select_changed: dict[str, str] = {}
        for name, table in TABLES.items():
            columns = sql_columns(name)
            written = [*columns, *(["gone"] if table.gone else []), *table.extra, "changed"]
            values = ", ".join("0" if column == "gone" else mark for column in written)
            statement = f"INSERT INTO {prefix}{name} ({', '.join(written)}) VALUES ({values})"
            if name not in ("receipts", "ledger", "returns"):  # appended, never updated
                updated = [c for c in written if c not in table.key and c not in table.fixed]
                sets = ", ".join(
                    f"{c} = 0" if c == "gone" else f"{c} = excluded.{c}" for c in updated
                )
                statement += f" ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {sets}"
            self.upsert[name] = statement
            read = ", ".join([*columns, *(["gone"] if table.gone else [])])
            self.select[name] = f"SELECT {', '.join(columns)} FROM {prefix}{name}"
            self.select_changed[name] = f"SELECT {read} FROM {prefix}{name} WHERE changed > {mark}"
        self.select_changed["expired_holds"] = (
            f"SELECT hold_id, gone FROM {prefix}expired_holds WHERE changed > {mark}"
        )


def statement_rows(
    merged: Merged, changed: int, extra: dict[str, Any] | None = None
) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The (table, parameter rows) of an upsert per table for merged changes
    written at version `changed`, and the (table, [(changed, key)]) of rows
    that went away (table names ending in ":gone"). `extra[table]` computes
    a dialect's extra columns from a row. O(rows)."""
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    for table, rows in (
        ("skus", list(merged.skus.values())),
        ("orders", list(merged.orders.values())),
        ("lines", list(merged.lines.values())),
        ("receipts", merged.receipts),
        ("returns", merged.returns),
    ):
        if rows:
            out.append((table, [(*row, changed) for row in rows]))
    for table, keyed in (
        ("holds", merged.holds),
        ("expected", merged.expected),
        ("deadlines", merged.deadlines),
    ):
        compute = (extra or {}).get(table)
        # (a row written and gone in this unit is written too, then marked
        # gone: the number it holds stays counted)
        vanished = merged.vanished
        kept: list[tuple[Any, ...]] = [
            (*row, *(compute(row) if compute else ()), changed)
            for row in (
                row if row is not None else vanished.get(f"{table}:{name}")
                for name, row in keyed.items()
            )
            if row is not None
        ]
        gone = [(changed, name) for name, row in keyed.items() if row is None]
        if kept:
            out.append((table, kept))
        if gone:
            out.append((table + ":gone", gone))
    if merged.ledger:
        out.append(("ledger", [(*row, changed) for row in merged.ledger]))
    return out


_GONE_TABLES = ("holds", "expected", "deadlines")  # rows kept with `gone`, last column


def snapshot_of(
    version: int, counters: Mapping[str, int], rows: Mapping[str, Sequence[Any]]
) -> Snapshot:
    """A `Snapshot` from every table's rows as `select_changed` reads them
    (version -1: every row), with the `settings` rows. O(rows)."""
    made: dict[str, list[Any]] = {}
    for table, kind in KINDS.items():
        given = rows[table]
        if table in _GONE_TABLES:  # (the row's fields, then `gone`)
            made[table] = [kind._make(row[: len(kind._fields)]) for row in given]
        elif isinstance(given, list) and (not given or type(given[0]) is kind):
            made[table] = given  # read as row values already
        else:  # exactly the row's fields: built by tuple.__new__, no length check
            made[table] = list(map(functools.partial(tuple.__new__, kind), given))
    for table in _GONE_TABLES:
        made[table] = [
            kept for kept, row in zip(made[table], rows[table], strict=True) if not row[-1]
        ]
    return Snapshot(
        policy=dict(rows["settings"]).get("policy"),
        version=version,
        counters=counters,
        skus=made["skus"],
        orders=made["orders"],
        lines=made["lines"],
        receipts=made["receipts"],
        holds=made["holds"],
        expired_holds=[hold_id for hold_id, gone in rows["expired_holds"] if not gone],
        expected=made["expected"],
        deadlines=made["deadlines"],
        ledger=made["ledger"],
        returns=made["returns"],
    )


#: How a whole load in parts reads orders and lines: by arrival number, then
#: id (PostgreSQL writers on different SKUs may take one number at once).
IN_ARRIVAL = " ORDER BY seq, order_id"


def parts_of(
    version: int,
    counters: Mapping[str, int],
    first: Mapping[str, list[Any]],
    orders: Callable[[], Sequence[Any]],
    lines: Callable[[], Sequence[Any]],
    rest: Callable[[], Mapping[str, list[Any]]],
) -> Iterator[Snapshot]:
    """A whole load in parts (`StreamingRepository.load_parts`) from a SQL
    adapter's reads of one consistent view, as `select_changed` reads rows:
    `first` (the `skus` and `settings` rows); then each call of `orders()`
    (the next rows of every order, none at the end) as one part, with every
    line up to its last order from `lines()` (the rows of every line, called
    for more the same way), both sorted by `(seq, order_id)` (`IN_ARRIVAL`: a
    line's `seq` is its order's); last `rest()`, every other table's rows,
    with any line left (a line whose order is not stored: damage, reported by
    the book's load). O(rows); memory: one call's rows at a time.
    """
    empty: dict[str, list[Any]] = {table: [] for table in (*KINDS, "expired_holds", "settings")}

    def part(**rows: list[Any]) -> Snapshot:
        return snapshot_of(version, counters, {**empty, **rows})

    yield part(**first)
    make_order = functools.partial(tuple.__new__, KINDS["orders"])
    make_line = functools.partial(tuple.__new__, KINDS["lines"])

    def key(line: LineRow) -> tuple[int, str]:
        return line.seq, line.order_id

    held: list[LineRow] = []  # lines read past the last part's orders
    while True:
        chunk = list(map(make_order, orders()))
        if not chunk:
            break
        last = (chunk[-1].seq, chunk[-1].order_id)
        taken, held = held, []
        while not taken or key(taken[-1]) <= last:
            more = lines()
            if not more:
                break
            taken.extend(map(make_line, more))
        if taken and key(taken[-1]) > last:  # (sorted: the lines past `last` are the tail)
            cut = len(taken)
            while cut and key(taken[cut - 1]) > last:
                cut -= 1
            taken, held = taken[:cut], taken[cut:]
        yield part(orders=chunk, lines=taken)
        del chunk, taken
    while more := lines():
        held.extend(map(make_line, more))
    yield part(lines=held, **rest())


def split_whole(whole: Snapshot) -> Iterator[Snapshot]:
    """A whole `load` as the parts `parts_of` hands over (for a read that
    cannot be made in parts): the SKUs, counters and policy; the orders
    with their lines, if any; every other row. O(1) a part."""
    nothing: dict[str, Any] = {
        "orders": [],
        "lines": [],
        "receipts": [],
        "holds": [],
        "expired_holds": [],
        "expected": [],
        "deadlines": [],
        "ledger": [],
        "returns": [],
    }
    yield attrs.evolve(whole, **nothing)
    if whole.orders:
        yield attrs.evolve(
            whole, **{**nothing, "orders": whole.orders, "lines": whole.lines}, skus=[], policy=None
        )
    yield attrs.evolve(whole, skus=[], policy=None, orders=[], lines=[])


def changes_from(counters: Mapping[str, int], rows: Mapping[str, Sequence[Any]]) -> Changes:
    """A `Changes` from the rows every table changed after a version, as
    `select_changed` reads them (keys that went away in `*_deleted`). O(rows)."""
    split: dict[str, tuple[list[Any], list[str]]] = {}
    for table in _GONE_TABLES:
        kind = KINDS[table]
        width = len(kind._fields)
        split[table] = (
            [kind._make(row[:width]) for row in rows[table] if not row[-1]],
            [row[0] for row in rows[table] if row[-1]],
        )
    return Changes(
        policy=dict(rows["settings"]).get("policy"),
        counters=counters,
        skus=[SkuRow._make(row) for row in rows["skus"]],
        orders=[OrderRow._make(row) for row in rows["orders"]],
        lines=[LineRow._make(row) for row in rows["lines"]],
        receipts=[ReceiptRow._make(row) for row in rows["receipts"]],
        holds=split["holds"][0],
        holds_deleted=split["holds"][1],
        expired_holds=[hold_id for hold_id, gone in rows["expired_holds"] if not gone],
        expired_holds_deleted=[hold_id for hold_id, gone in rows["expired_holds"] if gone],
        expected=split["expected"][0],
        expected_deleted=split["expected"][1],
        deadlines=split["deadlines"][0],
        deadlines_deleted=split["deadlines"][1],
        ledger=[LedgerRow._make(row) for row in rows["ledger"]],
        returns=[ReturnRow._make(row) for row in rows["returns"]],
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def micros(text: str) -> int:
    """An ISO 8601 instant as whole microseconds since the epoch (sortable in SQL)."""
    moment = parse_time(text, "time")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def sku_changes(counters: Mapping[str, Any], rows: Mapping[str, Sequence[Any]]) -> Changes:
    """The `Changes` of a lazy SKU load (`load_skus`, `load_orders`): each
    table's rows already made into row values (a table not read: none), live
    rows only, and the book's counters (missing ones are 0). O(rows)."""
    return Changes(
        counters={name: int(counters.get(name, 0)) for name in COUNTERS},
        skus=rows.get("skus", []),
        orders=rows.get("orders", []),
        lines=rows.get("lines", []),
        receipts=rows.get("receipts", []),
        holds=rows.get("holds", []),
        expected=rows.get("expected", []),
        deadlines=rows.get("deadlines", []),
        ledger=rows.get("ledger", []),
        returns=rows.get("returns", []),
    )
