"""SQLite storage benchmarks, each against a reference measured in the same run.

* one commit per operation: `place` and `receive` on a SQLite book, against
  the same operations on an in-memory book and against the floor of
  durability: a bare `INSERT` + `COMMIT` per operation through `sqlite3` on
  a file with the same settings (WAL, synchronous=FULL).
* bulk (`with book.batch():`): places in one transaction, against the
  in-memory book and a bare `executemany` of one row per order.
* opening a database holding n waiting lines: wall time and peak memory, in
  a fresh process (`ru_maxrss`, less the same process's size before opening).

Run directly (`python benchmarks/storage.py [--quick]`) or from `run.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from backorder import BackorderBook, Order, OrderLine, PartialFill

SKUS = [f"SKU-{i}" for i in range(20)]


def _orders(n: int, seed: int, prefix: str = "o") -> list[Order]:
    rng = random.Random(seed)
    return [
        Order(f"{prefix}{i}", [OrderLine(rng.choice(SKUS), rng.randint(1, 5))]) for i in range(n)
    ]


def _bare_commits(path: str, n: int) -> float:
    # The durability floor: one row and one fsync'd commit per operation.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, sku TEXT, quantity INTEGER)")
    conn.execute("DELETE FROM t")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?, ?)", (f"o{i}", "SKU-1", 3))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def _bare_bulk(path: str, n: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, sku TEXT, quantity INTEGER)")
    rows = [(f"o{i}", "SKU-1", 3) for i in range(n)]
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def _book_round(book: BackorderBook, orders: list[Order], round_: int) -> tuple[float, float]:
    n = len(orders)
    start = time.perf_counter()
    for order in orders:
        book.place(attrs_evolve_id(order, f"r{round_}-"))
    place = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(n):
        book.receive(SKUS[i % len(SKUS)], 3, reference=f"GRN-{round_}-{i}")
    return place, n / (time.perf_counter() - start)


def attrs_evolve_id(order: Order, prefix: str) -> Order:
    """The same order under another id (each round places new orders)."""
    return Order(prefix + order.id, order.lines)


def per_operation(directory: str, n: int, rounds: int = 3) -> dict[str, dict[str, float]]:
    """place and receive, one commit each: SQLite book, in-memory book, bare
    sqlite3 commits; the rounds alternate between them and the best is kept."""
    orders = _orders(n, seed=5)
    sqlite_book = BackorderBook.open(os.path.join(directory, "per-op.db"), PartialFill())
    memory_book = BackorderBook(PartialFill())
    best: dict[str, dict[str, float]] = {
        name: {"place": 0.0, "receive": 0.0} for name in ("sqlite", "memory", "bare_sqlite")
    }
    for round_ in range(rounds):
        for name, book in (("sqlite", sqlite_book), ("memory", memory_book)):
            place, receive = _book_round(book, orders, round_)
            best[name]["place"] = max(best[name]["place"], place)
            best[name]["receive"] = max(best[name]["receive"], receive)
        bare = _bare_commits(os.path.join(directory, "bare.db"), n)
        best["bare_sqlite"]["place"] = max(best["bare_sqlite"]["place"], bare)
        best["bare_sqlite"]["receive"] = best["bare_sqlite"]["place"]
    sqlite_book.close()
    return best


def bulk(directory: str, n: int) -> dict[str, float]:
    """Places in one `batch()`: SQLite book, in-memory book, bare executemany."""
    orders = _orders(n, seed=6)
    out: dict[str, float] = {}
    book = BackorderBook.open(os.path.join(directory, "bulk.db"), PartialFill())
    start = time.perf_counter()
    with book.batch():
        for order in orders:
            book.place(order)
    out["sqlite"] = n / (time.perf_counter() - start)
    book.close()
    memory = BackorderBook(PartialFill())
    start = time.perf_counter()
    for order in orders:
        memory.place(order)
    out["memory"] = n / (time.perf_counter() - start)
    out["bare_sqlite"] = _bare_bulk(os.path.join(directory, "bare-bulk.db"), n)
    return out


_OPEN_CHILD = """
import resource, sys, time
sys.path.insert(0, {src!r})
from backorder import BackorderBook, PartialFill
def rss():  # resident now (the peak so far would hide what comes after imports)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()
base = rss()
start = time.perf_counter()
book = BackorderBook.open({path!r}, PartialFill())          # lazily: no SKU yet
opened = time.perf_counter() - start
opened_rss = rss() - base
start = time.perf_counter()
book.status("b0-0")                                         # loads that order's SKU
first = time.perf_counter() - start
first_rss = rss() - base
start = time.perf_counter()
waiting = sum(len(book.waiting(sku)) for sku in book.skus())  # loads the whole book
whole = time.perf_counter() - start
whole_rss = rss() - base
print(opened, opened_rss, first, first_rss, whole, whole_rss, waiting)
"""


def opening(directory: str, n: int) -> dict[str, float]:
    """Build a database with n waiting lines (in batches), then time opening it."""
    path = os.path.join(directory, f"open-{n}.db")
    book = BackorderBook.open(path, PartialFill())
    start = time.perf_counter()
    chunk = 50_000
    for first in range(0, n, chunk):
        with book.batch():
            for order in _orders(min(chunk, n - first), seed=first, prefix=f"b{first}-"):
                book.place(order)
    build = time.perf_counter() - start
    book.close()
    src = str(Path(__file__).resolve().parent.parent / "src")
    child = subprocess.run(
        [sys.executable, "-c", _OPEN_CHILD.format(src=src, path=path)],
        capture_output=True,
        text=True,
        check=True,
    )
    opened, opened_rss, first, first_rss, whole, whole_rss, waiting = child.stdout.split()
    assert int(waiting) == n, (waiting, n)
    return {
        "lines": n,
        "skus": len(SKUS),
        "build_seconds": build,
        "open_seconds": float(opened),
        "open_peak_bytes": float(opened_rss),
        "first_sku_seconds": float(first),
        "first_sku_peak_bytes": float(first_rss),
        "whole_seconds": float(whole),
        "whole_peak_bytes": float(whole_rss),
        "file_bytes": float(os.path.getsize(path)),
    }


def run(quick: bool) -> dict[str, Any]:
    """Every storage benchmark; small sizes when `quick`."""
    with tempfile.TemporaryDirectory(prefix="backorder-bench-") as directory:
        ops = per_operation(directory, 300 if quick else 2_000)
        batch = bulk(directory, 20_000 if quick else 100_000)
        opened = opening(directory, 100_000 if quick else 1_000_000)
    return {"per_operation": ops, "bulk": batch, "open": opened}


def report(results: dict[str, Any]) -> str:
    """The results as text."""
    ops, batch, opened = results["per_operation"], results["bulk"], results["open"]
    lines = ["\nSQLite storage (one commit per operation; ops/s)"]
    lines.append(f"  {'metric':<10}{'sqlite':>10}{'memory':>12}{'bare sqlite':>13}{'sq/bare':>9}")
    for metric in ("place", "receive"):
        row = [ops[name][metric] for name in ("sqlite", "memory", "bare_sqlite")]
        lines.append(
            f"  {metric:<10}{row[0]:>10,.0f}{row[1]:>12,.0f}{row[2]:>13,.0f}{row[0] / row[2]:>9.2f}"
        )
    lines.append(
        f"  bulk place in one batch(): sqlite {batch['sqlite']:,.0f}/s, memory "
        f"{batch['memory']:,.0f}/s, bare executemany {batch['bare_sqlite']:,.0f} rows/s "
        f"(sqlite/memory {batch['sqlite'] / batch['memory']:.2f})"
    )
    n, skus = opened["lines"], opened["skus"]
    lines.append(
        f"  a file of {n:,} waiting lines on {skus} SKUs ({opened['file_bytes'] / 2**20:,.0f} MiB,"
        f" built in {opened['build_seconds']:.0f} s):"
    )
    for label, key in (
        ("open (lazily: no SKU loaded)", "open"),
        (f"first read of an order (loads its SKU, ~{n // skus:,} lines)", "first_sku"),
        ("read every SKU (the whole book)", "whole"),
    ):
        lines.append(
            f"    {label}: {opened[key + '_seconds']:.3f} s, resident memory after "
            f"+{opened[key + '_peak_bytes'] / 2**20:,.1f} MiB"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = run(args.quick)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
