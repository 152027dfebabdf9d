"""PostgreSQL benchmarks, each against references measured in the same run.

* one commit per operation (`place`, `receive` serving k lines, `cancel`,
  `position`): a book on PostgreSQL, the same book on SQLite, and a
  hand-written psycopg baseline of the same workload: the SQL a developer
  would write (order lines with an index on `(sku, priority, created_at)`,
  the SKU's stock row and the head line taken `FOR UPDATE` on receipt).
* batch import: many `place` calls in one `batch()` (one commit) against
  the baseline's one `executemany` of the order lines in one transaction,
  and the same batch on SQLite;
* writers in 1, 2 and 4 processes on disjoint SKUs (ops/s and the speed-up
  over one process), for the book and for the baseline, interleaved over
  rounds, medians.

Needs a server (`BACKORDER_PG_DSN`, default `dbname=test`); every table is
made in a schema of its own, dropped at the end. Run directly:
`python benchmarks/postgres.py [--quick] [--json]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import psycopg

from backorder import BackorderBook, BackorderError, Order, OrderLine, SQLiteRepository
from backorder.storage.postgres import PostgresRepository

DSN = os.environ.get("BACKORDER_PG_DSN", "dbname=test")


class Baseline:
    """The same workload written by hand on psycopg: one transaction per call."""

    def __init__(self, schema: str) -> None:
        self.conn = psycopg.connect(DSN, autocommit=True)
        s = self.s = f'"{schema}"'
        self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.stock (sku TEXT PRIMARY KEY,"
            " on_hand BIGINT NOT NULL, allocated BIGINT NOT NULL)"
        )
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.order_lines (order_id TEXT, sku TEXT,"
            " priority INT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),"
            " quantity BIGINT NOT NULL, allocated BIGINT NOT NULL DEFAULT 0,"
            " cancelled BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (order_id, sku))"
        )
        self.conn.execute(
            f"CREATE INDEX IF NOT EXISTS order_lines_queue ON {s}.order_lines"
            " (sku, priority, created_at)"
        )

    def _fill(self, cur: psycopg.Cursor[Any], sku: str) -> None:
        # serve the head while there is stock (the stock row is locked by the caller)
        s = self.s
        row = cur.execute(f"SELECT on_hand - allocated FROM {s}.stock WHERE sku = %s", (sku,))
        available = (row.fetchone() or (0,))[0]
        while available > 0:
            head = cur.execute(
                f"SELECT order_id, quantity - allocated - cancelled FROM {s}.order_lines"
                " WHERE sku = %s AND quantity > allocated + cancelled"
                " ORDER BY priority, created_at LIMIT 1 FOR UPDATE",
                (sku,),
            ).fetchone()
            if head is None:
                break
            take = min(available, head[1])
            cur.execute(
                f"UPDATE {s}.order_lines SET allocated = allocated + %s"
                " WHERE order_id = %s AND sku = %s",
                (take, head[0], sku),
            )
            cur.execute(
                f"UPDATE {s}.stock SET allocated = allocated + %s WHERE sku = %s", (take, sku)
            )
            available -= take

    def _locked(self, sku: str, work: Callable[[psycopg.Cursor[Any]], object]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO {self.s}.stock VALUES (%s, 0, 0) ON CONFLICT DO NOTHING", (sku,)
            )
            cur.execute(f"SELECT 1 FROM {self.s}.stock WHERE sku = %s FOR UPDATE", (sku,))
            work(cur)
            self._fill(cur, sku)

    def place(self, order: Order) -> None:
        line = order.lines[0]
        self._locked(
            line.sku,
            lambda cur: cur.execute(
                f"INSERT INTO {self.s}.order_lines (order_id, sku, priority, quantity)"
                " VALUES (%s, %s, 0, %s)",
                (order.id, line.sku, line.quantity),
            ),
        )

    def import_orders(self, orders: list[Order]) -> None:
        # one transaction: the stock rows, every line in one executemany, the fill per SKU
        skus = sorted({line.sku for order in orders for line in order.lines})
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.s}.stock VALUES (%s, 0, 0) ON CONFLICT DO NOTHING",
                [(sku,) for sku in skus],
            )
            cur.execute(f"SELECT 1 FROM {self.s}.stock WHERE sku = ANY(%s) FOR UPDATE", (skus,))
            cur.executemany(
                f"INSERT INTO {self.s}.order_lines (order_id, sku, priority, quantity)"
                " VALUES (%s, %s, 0, %s)",
                [(o.id, line.sku, line.quantity) for o in orders for line in o.lines],
            )
            for sku in skus:
                self._fill(cur, sku)

    def receive(self, sku: str, quantity: int) -> None:
        self._locked(
            sku,
            lambda cur: cur.execute(
                f"UPDATE {self.s}.stock SET on_hand = on_hand + %s WHERE sku = %s", (quantity, sku)
            ),
        )

    def cancel(self, order_id: str, sku: str) -> None:
        def work(cur: psycopg.Cursor[Any]) -> None:
            row = cur.execute(
                f"UPDATE {self.s}.order_lines SET cancelled = quantity - allocated,"
                " allocated = 0 WHERE order_id = %s AND sku = %s RETURNING allocated",
                (order_id, sku),
            ).fetchone()
            del row  # (released units go back through the fill)

        self._locked(sku, work)

    def position(self, order_id: str, sku: str) -> int:
        row = self.conn.execute(
            f"SELECT count(*) FROM {self.s}.order_lines o, {self.s}.order_lines me"
            " WHERE me.order_id = %s AND me.sku = %s AND o.sku = me.sku"
            " AND o.quantity > o.allocated + o.cancelled"
            " AND (o.priority, o.created_at) <= (me.priority, me.created_at)",
            (order_id, sku),
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


class BookTarget:
    """The book's operations, as the baseline's."""

    def __init__(self, book: BackorderBook) -> None:
        self.book = book

    def place(self, order: Order) -> None:
        self.book.place(order)

    def import_orders(self, orders: list[Order]) -> None:
        with self.book.batch():
            for order in orders:
                self.book.place(order)

    def receive(self, sku: str, quantity: int) -> None:
        self.book.receive(sku, quantity)

    def cancel(self, order_id: str, sku: str) -> None:
        with contextlib.suppress(BackorderError):  # nothing left to cancel
            self.book.cancel(order_id, sku)

    def position(self, order_id: str, sku: str) -> int:
        return self.book.position(order_id, sku) or 0

    def close(self) -> None:
        self.book.close()


def _workload(target: Any, n: int, skus: list[str], prefix: str, seed: int) -> dict[str, float]:
    # ops/s of each kind, one commit per operation
    rng = random.Random(seed)
    orders = [
        Order(f"{prefix}{i}", [OrderLine(rng.choice(skus), rng.randint(1, 3))]) for i in range(n)
    ]
    out: dict[str, float] = {}
    start = time.perf_counter()
    for order in orders:
        target.place(order)
    out["place"] = n / (time.perf_counter() - start)
    receipts = max(1, n // 10)  # each serves about k = 5 lines (10 units, 2 per line)
    start = time.perf_counter()
    for i in range(receipts):
        target.receive(skus[i % len(skus)], 10)
    out["receive"] = receipts / (time.perf_counter() - start)
    picked = rng.sample(orders, n // 5)
    start = time.perf_counter()
    for order in picked:
        target.position(order.id, order.lines[0].sku)
    out["position"] = len(picked) / (time.perf_counter() - start)
    start = time.perf_counter()
    for order in picked:
        target.cancel(order.id, order.lines[0].sku)
    out["cancel"] = len(picked) / (time.perf_counter() - start)
    return out


def _make(kind: str, schema: str, directory: str) -> Any:
    if kind == "postgres":
        return BookTarget(BackorderBook(None, PostgresRepository(DSN, schema=schema)))
    if kind == "sqlite":
        return BookTarget(BackorderBook(None, SQLiteRepository(Path(directory) / f"{schema}.db")))
    return Baseline(schema)


def per_operation(n: int, directory: str, made: list[str]) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    skus = [f"SKU-{i}" for i in range(10)]
    for kind in ("postgres", "sqlite", "psycopg baseline"):
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        made.append(schema)
        target = _make(kind, schema, directory)
        try:
            results[kind] = _workload(target, n, skus, "o", 7)
        finally:
            target.close()
    return results


def batch_import(n: int, directory: str, made: list[str]) -> dict[str, float]:
    # orders/s of one batch of n single-line orders on 50 SKUs (one commit),
    # kinds interleaved over 3 rounds, the best round of each kept
    rng = random.Random(11)
    skus = [f"SKU-{i}" for i in range(50)]
    out: dict[str, float] = {}
    for round_ in range(3):
        for kind in ("postgres", "sqlite", "psycopg baseline"):
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            made.append(schema)
            target = _make(kind, schema, directory)
            orders = [
                Order(f"b{round_}-{i}", [OrderLine(rng.choice(skus), rng.randint(1, 3))])
                for i in range(n)
            ]
            try:
                start = time.perf_counter()
                target.import_orders(orders)
                rate = n / (time.perf_counter() - start)
            finally:
                target.close()
            out[kind] = max(out.get(kind, 0.0), rate)
    return out


def _writer(kind: str, schema: str, worker: int, n: int, start_at: float) -> float:
    # one process: its own SKUs; returns the seconds its operations took
    target = _make(kind, schema, "")
    skus = [f"W{worker}-{i}" for i in range(3)]
    target.receive(skus[0], 1)  # connected and warmed up before the clock starts
    time.sleep(max(0.0, start_at - time.time()))
    began = time.perf_counter()
    rng = random.Random(worker)
    for i in range(n):
        sku = rng.choice(skus)
        if i % 4 == 3:
            target.receive(sku, 4)
        else:
            target.place(Order(f"w{worker}-{i}", [OrderLine(sku, 2)]))
    elapsed = time.perf_counter() - began
    target.close()
    return elapsed


def scaling(n: int, made: list[str], rounds: int = 3) -> dict[str, dict[int, float]]:
    # ops/s of 1, 2 and 4 writers, every count and kind interleaved over
    # `rounds` rounds (the machine's noise hits them alike), median kept
    ctx = multiprocessing.get_context("spawn")
    seen: dict[str, dict[int, list[float]]] = {}
    for _ in range(rounds):
        for kind in ("postgres", "psycopg baseline"):
            for writers in (1, 2, 4):
                schema = f"bench_{uuid.uuid4().hex[:10]}"
                made.append(schema)
                _make(kind, schema, "").close()  # the schema exists before the writers start
                start_at = time.time() + 2
                with ctx.Pool(writers) as pool:
                    times = pool.starmap(
                        _writer, [(kind, schema, w, n, start_at) for w in range(writers)]
                    )
                seen.setdefault(kind, {}).setdefault(writers, []).append(writers * n / max(times))
    return {
        kind: {writers: statistics.median(rates) for writers, rates in by.items()}
        for kind, by in seen.items()
    }


def sku_load(n_open: int, n_closed: int, made: list[str], rounds: int = 3) -> dict[str, float]:
    # A lazy book's first read of a SKU of `n_open` waiting lines that also
    # has `n_closed` closed ones (shipped and cancelled, in groups of 1,000),
    # against the first read of a SKU of the same waiting lines and no
    # history, in the same schema: seconds (best of `rounds`, the two
    # interleaved) and the orders each load left in the book.
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    made.append(schema)
    with BackorderBook(None, PostgresRepository(DSN, schema=schema)) as book, book.batch():
        for first in range(0, n_closed, 1_000):
            ids = [f"h{i}" for i in range(first, min(n_closed, first + 1_000))]
            for order_id in ids:
                book.place(Order(order_id, [OrderLine("PAST", 1)]))
            book.receive("PAST", len(ids) // 2, f"r{first}")
            for order_id in ids[: len(ids) // 2]:
                book.ship(order_id)
            for order_id in ids[len(ids) // 2 :]:
                book.cancel(order_id)
        for i in range(n_open):
            book.place(Order(f"p{i}", [OrderLine("PAST", 1)]))
            book.place(Order(f"n{i}", [OrderLine("NEW", 1)]))
    best = {"PAST": float("inf"), "NEW": float("inf")}
    held = {}
    for _ in range(rounds):
        for sku, order_id in (("PAST", "p0"), ("NEW", "n0")):
            with BackorderBook(None, PostgresRepository(DSN, schema=schema)) as book:
                start = time.perf_counter()
                book.position(order_id, sku)
                best[sku] = min(best[sku], time.perf_counter() - start)
                held[sku] = len(book.inspect().loaded_orders())
    return {
        "with_history_seconds": best["PAST"],
        "without_history_seconds": best["NEW"],
        "with_history_orders_held": held["PAST"],
        "without_history_orders_held": held["NEW"],
        "open": n_open,
        "closed": n_closed,
    }


def _drop(made: list[str]) -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        for schema in made:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(quick: bool) -> dict[str, Any]:
    made: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as directory:
            ops = per_operation(300 if quick else 2000, directory, made)
            batch = batch_import(2000 if quick else 20000, directory, made)
        writers = scaling(200 if quick else 600, made, 3 if quick else 5)
        loads = sku_load(2_000 if quick else 5_000, 20_000 if quick else 95_000, made)
    finally:
        _drop(made)
    return {
        "per_operation": ops,
        "batch": batch,
        "scaling": writers,
        "sku_load": loads,
        "cpus": os.cpu_count(),
    }


def report(results: dict[str, Any]) -> str:
    lines = ["one commit per operation (ops/s)", ""]
    kinds = list(results["per_operation"])
    lines.append(f"{'operation':<10}" + "".join(f"{k:>18}" for k in kinds))
    for op in ("place", "receive", "cancel", "position"):
        row = "".join(f"{results['per_operation'][k][op]:>18,.0f}" for k in kinds)
        lines.append(f"{op:<10}{row}")
    lines += ["", "batch import, one commit (orders/s)", ""]
    lines.append("".join(f"{k:>18}" for k in results["batch"]))
    lines.append("".join(f"{rate:>18,.0f}" for rate in results["batch"].values()))
    lines += ["", f"writers on disjoint SKUs (ops/s, median of rounds; {results['cpus']} CPUs)", ""]
    for kind, by in results["scaling"].items():
        one = by[1]
        cells = ", ".join(f"{w}: {rate:,.0f} ({rate / one:.2f}x)" for w, rate in by.items())
        lines.append(f"{kind:<18} {cells}")
    loads = results["sku_load"]
    lines += [
        "",
        f"a lazy book's first read of a SKU of {loads['open']:,} waiting lines (best of 3):",
        f"  with {loads['closed']:,} closed lines: {loads['with_history_seconds']:.3f} s, "
        f"{loads['with_history_orders_held']:,} orders held",
        f"  with none: {loads['without_history_seconds']:.3f} s, "
        f"{loads['without_history_orders_held']:,} orders held",
        f"  with / without history: "
        f"{loads['with_history_seconds'] / loads['without_history_seconds']:.2f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.quick)
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
