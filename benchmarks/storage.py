"""SQLite storage benchmarks, each against a reference measured in the same run.

* one commit per operation: `place` and `receive` on a SQLite book, against
  the same operations on an in-memory book, against the floor of
  durability (a bare one-row `INSERT` + `COMMIT` per operation through
  `sqlite3` on a file with the same settings: WAL, synchronous=FULL), and
  against a hand-written sqlite3 order book of the same semantics (order
  lines indexed on (sku, priority, created_at), one commit per place, a
  receive allocating to the head lines). Timed twice: as the library runs
  (SQLite's automatic checkpoints on, in all four: each pays for the
  checkpoints its pages cause), and with automatic checkpoints off in all
  four, where WAL pages (frames) per commit are counted from the -wal file
  (which then grows with every commit: a commit of many pages costs more
  there than where the -wal is reused after a checkpoint).
* bulk (`with book.batch():`): places in one transaction, against the
  in-memory book, a bare `executemany` of one row per order and the
  hand-written schema; the file each leaves, by table (`dbstat`).
* opening a database holding n waiting lines: wall time and peak memory, in
  a fresh process (`ru_maxrss`, less the same process's size before opening).

Run directly (`python benchmarks/storage.py [--quick]`) or from `run.py`.
`--before SRC` also runs the per-operation and bulk benchmarks on another
checkout's source (`SRC`, e.g. `/work/main/src`), each in a child process,
interleaved round by round with this checkout's, and prints both side by side.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_SRC = os.environ.get("BACKORDER_BENCH_SRC") or str(Path(__file__).resolve().parent.parent / "src")
sys.path.insert(0, _SRC)

from backorder import BackorderBook, Order, OrderLine, PartialFill  # noqa: E402

SKUS = [f"SKU-{i}" for i in range(20)]


def _orders(n: int, seed: int, prefix: str = "o") -> list[Order]:
    rng = random.Random(seed)
    return [
        Order(f"{prefix}{i}", [OrderLine(rng.choice(SKUS), rng.randint(1, 5))]) for i in range(n)
    ]


_PAGE = 4096  # SQLite's default page size (every file here uses it)


def _frames(path: str) -> int:
    """WAL frames written so far to `path`'s -wal (valid while no checkpoint
    has reset it: automatic checkpoints are off in these benchmarks)."""
    wal = path + "-wal"
    size = os.path.getsize(wal) if os.path.exists(wal) else 0
    return max(0, size - 32) // (_PAGE + 24)


def _checkpoint(path: str) -> None:
    """Empty the -wal into the file (between rounds, nothing else is open on it)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _connect(path: str, checkpoints: bool = False) -> sqlite3.Connection:
    # The settings of the library's own connection; automatic checkpoints off
    # unless `checkpoints` (then SQLite's default, as the library runs).
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    if not checkpoints:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    return conn


def _bare_bulk(path: str, n: int) -> float:
    conn = _connect(path)
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, sku TEXT, quantity INTEGER)")
    rows = [(f"o{i}", "SKU-1", 3) for i in range(n)]
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


class HandWritten:
    """A hand-written sqlite3 order book of the same semantics as the
    benchmarked operations: order lines with an index on (sku, priority,
    created_at), stock per SKU; `place` allocates what is free and commits;
    `receive` adds stock and allocates it to the head lines of the SKU's
    queue, in one commit. (No ledger, outbox, holds or catch-up: what the
    library adds to this is what the comparison shows.)"""

    def __init__(self, path: str, checkpoints: bool = False) -> None:
        self.path = path
        conn = self.conn = _connect(path, checkpoints)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, on_hand INTEGER NOT NULL,"
            " allocated INTEGER NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS lines (order_id TEXT NOT NULL, sku TEXT NOT NULL,"
            " priority INTEGER NOT NULL, created_at REAL NOT NULL, quantity INTEGER NOT NULL,"
            " allocated INTEGER NOT NULL, PRIMARY KEY (order_id, sku))"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS lines_queue ON lines (sku, priority, created_at)")

    def place(self, order: Order) -> None:
        """One order, one commit."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        now = time.time()
        for line in order.lines:
            row = conn.execute(
                "SELECT on_hand - allocated FROM stock WHERE sku = ?", (line.sku,)
            ).fetchone()
            if row is None:
                conn.execute("INSERT INTO stock VALUES (?, 0, 0)", (line.sku,))
                row = (0,)
            allocated = min(row[0], line.quantity)
            conn.execute(
                "INSERT INTO lines VALUES (?, ?, 0, ?, ?, ?)",
                (order.id, line.sku, now, line.quantity, allocated),
            )
            if allocated:
                conn.execute(
                    "UPDATE stock SET allocated = allocated + ? WHERE sku = ?",
                    (allocated, line.sku),
                )
        conn.execute("COMMIT")

    def receive(self, sku: str, quantity: int) -> None:
        """Stock in, allocated to the head of the queue, one commit."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO stock VALUES (?, ?, 0) ON CONFLICT (sku) DO UPDATE"
            " SET on_hand = on_hand + excluded.on_hand",
            (sku, quantity),
        )
        free = quantity
        for order_id, short in conn.execute(
            "SELECT order_id, quantity - allocated FROM lines WHERE sku = ?"
            " AND allocated < quantity ORDER BY priority, created_at LIMIT ?",
            (sku, quantity),
        ).fetchall():
            take = min(free, short)
            conn.execute(
                "UPDATE lines SET allocated = allocated + ? WHERE order_id = ? AND sku = ?",
                (take, order_id, sku),
            )
            free -= take
            if not free:
                break
        conn.execute(
            "UPDATE stock SET allocated = allocated + ? WHERE sku = ?", (quantity - free, sku)
        )
        conn.execute("COMMIT")

    def receive_as(self, sku: str, quantity: int, reference: str) -> None:
        """`receive` called as a book's (the reference is not kept)."""
        self.receive(sku, quantity)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def _repository_connection(book: BackorderBook) -> sqlite3.Connection:
    # (the benchmark only) the book's own connection, to switch its automatic
    # checkpoints off so the -wal keeps every frame of the round
    conn: sqlite3.Connection = getattr(book.repository, "_conn")  # noqa: B009
    return conn


def _receive_on(book: BackorderBook, sku: str, quantity: int, reference: str) -> None:
    book.receive(sku, quantity, reference=reference)


def attrs_evolve_id(order: Order, prefix: str) -> Order:
    """The same order under another id (each round places new orders)."""
    return Order(prefix + order.id, order.lines)


_PER_OP = ("sqlite", "memory", "bare_sqlite", "hand_sqlite")


class _Bare:
    """The durability floor as a book: one row and one fsync'd commit per call."""

    def __init__(self, path: str, checkpoints: bool = False) -> None:
        self.path = path
        self.conn = _connect(path, checkpoints)
        self.conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, sku TEXT, quantity INTEGER)")
        self.count = 0

    def commit_one(self, *_: object) -> None:
        """One INSERT, one COMMIT."""
        self.count += 1
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO t VALUES (?, ?, ?)", (f"o{self.count}", "SKU-1", 3))
        self.conn.execute("COMMIT")


_TABLES_PER_COMMIT = (1, 2, 3, 4, 6)


def pages_curve(directory: str, n: int, rounds: int = 3, chunk: int = 25) -> dict[int, float]:
    """What a durable commit costs by the number of tables it writes a row
    to (each in its own B-tree page: a commit writes one WAL frame per page it
    dirtied), the library's settings, checkpoints on: commits per second for
    1, 2, 3, 4 and 6 tables of 20,000 rows each, a row inserted at a random
    key in each. The turns rotate every `chunk` commits, as in
    `per_operation`. What a place's pages cost, whatever writes them."""
    os.makedirs(directory, exist_ok=True)
    conns = {}
    for k in _TABLES_PER_COMMIT:
        conn = _connect(os.path.join(directory, f"pages-{k}.db"), checkpoints=True)
        for table in range(k):
            conn.execute(f"CREATE TABLE t{table} (id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID")
            conn.execute("BEGIN")
            conn.executemany(
                f"INSERT INTO t{table} VALUES (?, ?)",
                ((f"k{i:07d}", "x" * 60) for i in range(0, 40_000, 2)),
            )
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # (each starts from an empty -wal)
        conns[k] = conn
    rng = random.Random(13)
    seconds = dict.fromkeys(_TABLES_PER_COMMIT, 0.0)
    turn = made = 0
    for _ in range(rounds):
        for _ in range(0, n, chunk):
            turn += 1
            order = _TABLES_PER_COMMIT[turn % 5 :] + _TABLES_PER_COMMIT[: turn % 5]
            for k in order:
                conn = conns[k]
                keys = []
                for _ in range(chunk):  # (new keys, each between two of the first rows)
                    made += 1
                    keys.append(f"k{rng.randrange(20_000) * 2 + 1:07d}-{made}")
                start = time.perf_counter()
                for key in keys:
                    conn.execute("BEGIN IMMEDIATE")
                    for table in range(k):
                        conn.execute(f"INSERT INTO t{table} VALUES (?, ?)", (key, "y" * 60))
                    conn.execute("COMMIT")
                seconds[k] += time.perf_counter() - start
    for conn in conns.values():
        conn.close()
    commits = rounds * len(range(0, n, chunk)) * chunk
    return {k: commits / seconds[k] for k in _TABLES_PER_COMMIT}


def per_operation(
    directory: str, n: int, rounds: int = 3, chunk: int = 20, checkpoints: bool = True
) -> dict[str, dict[str, float]]:
    """place and receive, one commit each: SQLite book, in-memory book, bare
    sqlite3 commits, the hand-written sqlite3 book. The four take turns every
    `chunk` operations (the first of each turn rotating), so the disk's and
    the machine's noise hits them alike; rates in ops/s over all rounds, and
    `*_frames`: WAL frames per commit.

    `checkpoints`: every file checkpoints as SQLite does by default (as the
    library runs: each pays for the checkpoints its pages cause); frames are
    then not counted (0). Without, automatic checkpoints are off in all four,
    so the -wal keeps every frame to count; each commit then also grows the
    -wal file, which costs a commit of many pages more than one of few."""
    orders = _orders(n, seed=5)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "per-op.db")
    sqlite_book = BackorderBook.open(path, PartialFill())
    if not checkpoints:
        _repository_connection(sqlite_book).execute("PRAGMA wal_autocheckpoint = 0")
    memory_book = BackorderBook(PartialFill())
    hand = HandWritten(os.path.join(directory, "hand.db"), checkpoints)
    bare = _Bare(os.path.join(directory, "bare.db"), checkpoints)
    doers: dict[str, tuple[Any, Any, str]] = {
        "sqlite": (sqlite_book.place, functools.partial(_receive_on, sqlite_book), path),
        "memory": (memory_book.place, functools.partial(_receive_on, memory_book), ""),
        "bare_sqlite": (bare.commit_one, bare.commit_one, bare.path),
        "hand_sqlite": (hand.place, hand.receive_as, hand.path),
    }
    seconds = {name: {"place": 0.0, "receive": 0.0} for name in _PER_OP}
    frames = {name: {"place": 0, "receive": 0} for name in _PER_OP}
    turn = 0
    for round_ in range(rounds):
        prefix = f"r{round_}-"
        for metric in ("place", "receive"):
            for first in range(0, n, chunk):
                turn += 1
                names = _PER_OP[turn % 4 :] + _PER_OP[: turn % 4]
                for name in names:
                    place, receive, watched = doers[name]
                    watched = "" if checkpoints else watched
                    before = _frames(watched) if watched else 0
                    start = time.perf_counter()
                    if metric == "place":
                        for order in orders[first : first + chunk]:
                            place(attrs_evolve_id(order, prefix))
                    else:
                        for i in range(first, min(n, first + chunk)):
                            receive(SKUS[i % len(SKUS)], 3, f"GRN-{prefix}{i}")
                    seconds[name][metric] += time.perf_counter() - start
                    frames[name][metric] += (_frames(watched) - before) if watched else 0
    sqlite_book.close()
    hand.close()
    bare.conn.close()
    total = n * rounds
    return {
        name: {
            **{metric: total / seconds[name][metric] for metric in ("place", "receive")},
            **{metric + "_frames": frames[name][metric] / total for metric in ("place", "receive")},
        }
        for name in _PER_OP
    }


def _tables(path: str) -> dict[str, int]:
    # Bytes per table and index of a file (after a checkpoint), by `dbstat`.
    conn = sqlite3.connect(path)
    try:
        return {
            name: int(size)
            for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
        }
    finally:
        conn.close()


def bulk(directory: str, n: int, rounds: int = 2) -> dict[str, Any]:
    """Places in one `batch()`: SQLite book, in-memory book (interleaved, best
    of `rounds`), bare executemany, the hand-written schema's executemany of
    the same lines; and the files they leave (bytes, and by table)."""
    orders = _orders(n, seed=6)
    out: dict[str, Any] = {"sqlite": 0.0, "memory": 0.0, "lines": n}
    for round_ in range(rounds):
        path = os.path.join(directory, f"bulk-{round_}.db")
        book = BackorderBook.open(path, PartialFill())
        start = time.perf_counter()
        with book.batch():
            for order in orders:
                book.place(order)
        out["sqlite"] = max(out["sqlite"], n / (time.perf_counter() - start))
        book.close()
        memory = BackorderBook(PartialFill())
        start = time.perf_counter()
        for order in orders:
            memory.place(order)
        out["memory"] = max(out["memory"], n / (time.perf_counter() - start))
    _checkpoint(path)
    out["file_bytes"] = os.path.getsize(path)
    out["tables"] = _tables(path)
    out["bare_sqlite"] = _bare_bulk(os.path.join(directory, "bare-bulk.db"), n)
    hand = HandWritten(os.path.join(directory, "hand-bulk.db"))
    now = time.time()
    rows = [
        (order.id, line.sku, 0, now + i * 1e-6, line.quantity, 0)
        for i, order in enumerate(orders)
        for line in order.lines
    ]
    start = time.perf_counter()
    hand.conn.execute("BEGIN IMMEDIATE")
    hand.conn.executemany("INSERT INTO lines VALUES (?, ?, ?, ?, ?, ?)", rows)
    hand.conn.execute("COMMIT")
    out["hand_sqlite"] = n / (time.perf_counter() - start)
    hand.close()
    _checkpoint(hand.path)
    out["hand_file_bytes"] = os.path.getsize(hand.path)
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


def run(quick: bool, opening_too: bool = True) -> dict[str, Any]:
    """Every storage benchmark; small sizes when `quick`."""
    with tempfile.TemporaryDirectory(prefix="backorder-bench-") as directory:
        n = 200 if quick else 2_000
        ops = per_operation(os.path.join(directory, "on"), n)
        # frames, counted with automatic checkpoints off (and the rates so)
        off = per_operation(os.path.join(directory, "off"), n, checkpoints=False)
        for name, figures in off.items():
            for metric, value in figures.items():
                ops[name][metric if metric.endswith("_frames") else metric + "_off"] = value
        batch = bulk(directory, 20_000 if quick else 100_000)
        pages = pages_curve(os.path.join(directory, "pages"), 1_000)
        opened = opening(directory, 100_000 if quick else 1_000_000) if opening_too else {}
    return {"per_operation": ops, "bulk": batch, "pages": pages, "open": opened}


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """The figures issue 13 sets targets for, as ratios within one run."""
    ops, batch = results["per_operation"], results["bulk"]
    lines = batch["lines"]
    outbox = sum(size for name, size in batch["tables"].items() if name == "outbox")
    return {
        "place / bare commit": ops["sqlite"]["place"] / ops["bare_sqlite"]["place"],
        "receive / bare commit": ops["sqlite"]["receive"] / ops["bare_sqlite"]["receive"],
        "place / bare commit, checkpoints off": ops["sqlite"]["place_off"]
        / ops["bare_sqlite"]["place_off"],
        "receive / bare commit, checkpoints off": ops["sqlite"]["receive_off"]
        / ops["bare_sqlite"]["receive_off"],
        "hand-written place / bare": ops["hand_sqlite"]["place"] / ops["bare_sqlite"]["place"],
        "hand-written receive / bare": ops["hand_sqlite"]["receive"]
        / ops["bare_sqlite"]["receive"],
        "WAL frames per place": ops["sqlite"]["place_frames"],
        "WAL frames per receive": ops["sqlite"]["receive_frames"],
        "hand-written frames per place": ops["hand_sqlite"]["place_frames"],
        "hand-written frames per receive": ops["hand_sqlite"]["receive_frames"],
        "bare frames per commit": ops["bare_sqlite"]["place_frames"],
        "batch() import / in-memory place": batch["sqlite"] / batch["memory"],
        "file bytes per line": batch["file_bytes"] / lines,
        "file bytes per line, outbox left out": (batch["file_bytes"] - outbox) / lines,
        "hand-written file bytes per line": batch["hand_file_bytes"] / lines,
        "file / hand-written": batch["file_bytes"] / batch["hand_file_bytes"],
        "file without outbox / hand-written": (batch["file_bytes"] - outbox)
        / batch["hand_file_bytes"],
    }


def report(results: dict[str, Any]) -> str:
    """The results as text."""
    ops, batch, opened = results["per_operation"], results["bulk"], results["open"]
    lines = ["\nSQLite storage (one commit per operation; ops/s, medians of the rounds)"]
    lines.append(
        f"  {'metric':<10}{'sqlite':>10}{'memory':>12}{'bare sqlite':>13}{'hand-written':>14}"
        f"{'sq/bare':>9}{'frames':>8}"
    )
    for metric in ("place", "receive"):
        row = [ops[name][metric] for name in _PER_OP]
        lines.append(
            f"  {metric:<10}{row[0]:>10,.0f}{row[1]:>12,.0f}{row[2]:>13,.0f}{row[3]:>14,.0f}"
            f"{row[0] / row[2]:>9.2f}{ops['sqlite'][metric + '_frames']:>8.1f}"
        )
    lines.append(
        f"  bulk place in one batch(): sqlite {batch['sqlite']:,.0f}/s, memory "
        f"{batch['memory']:,.0f}/s, bare executemany {batch['bare_sqlite']:,.0f} rows/s, "
        f"hand-written executemany {batch['hand_sqlite']:,.0f} lines/s "
        f"(sqlite/memory {batch['sqlite'] / batch['memory']:.2f})"
    )
    lines.append(
        f"  the file of that batch ({batch['lines']:,} lines): "
        f"{batch['file_bytes'] / batch['lines']:,.0f} B/line against "
        f"{batch['hand_file_bytes'] / batch['lines']:,.0f} B/line hand-written; by table:"
    )
    for name, size in sorted(batch["tables"].items(), key=lambda item: -item[1])[:10]:
        lines.append(f"    {name:<28}{size / batch['lines']:>8,.1f} B/line")
    pages = results["pages"]
    lines.append(
        "  a bare commit of one row in each of k tables (k pages), commits/s and as a"
        " share of k = 1: "
        + ", ".join(f"k={k} {rate:,.0f} ({rate / pages[1]:.2f})" for k, rate in pages.items())
    )
    lines.append("  " + "; ".join(f"{k} {v:.2f}" for k, v in ratios(results).items()))
    if not opened:
        return "\n".join(lines)
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


def compare(before_src: str, quick: bool, rounds: int) -> str:
    """Per-operation and bulk benchmarks of this checkout and of `before_src`,
    each round in a child process per side, the sides alternating (so machine
    noise hits both alike); the table of medians of the ratios."""
    here: list[dict[str, float]] = []
    there: list[dict[str, float]] = []
    for round_ in range(rounds):
        sides = [(here, _SRC), (there, before_src)]
        for into, src in sides if round_ % 2 == 0 else reversed(sides):
            child = subprocess.run(
                [sys.executable, __file__, "--child", *(["--quick"] if quick else [])],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "BACKORDER_BENCH_SRC": src, "PYTHONPATH": src},
            )
            into.append(json.loads(child.stdout.splitlines()[-1]))
    names = list(here[0])
    out = [
        f"\n  {'(medians of ' + str(rounds) + ' interleaved runs)':<40}{'before':>10}{'after':>10}"
    ]
    for name in names:
        old = statistics.median(run[name] for run in there)
        new = statistics.median(run[name] for run in here)
        out.append(f"  {name:<40}{old:>10.2f}{new:>10.2f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--before", help="another checkout's src/ to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one side of `--before`: the ratios, as one JSON line
        print(json.dumps(ratios(run(args.quick, opening_too=False))))
        return 0
    if args.before:
        print(compare(args.before, args.quick, args.rounds))
        return 0
    results = run(args.quick)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
