"""Loading benchmarks: what a lazily loaded SQLite book costs to read, against
references measured in the same run.

* bytes per loaded line against bytes per line placed in memory (one
  process, `tracemalloc`: what the book still holds after a collection);
* loading a SKU of `n` waiting lines (the first read of one of its orders)
  against placing those lines in an in-memory book (`place` of orders built
  beforehand), in one process;
* a SKU with a long closed history (most of its lines shipped): the rows the
  load reads (`SQLiteRepository.rows_read`) and its time, against the same
  SKU's open lines alone;
* the whole book (`book.skus()` loads everything): time and resident memory
  after (`/proc/self/statm`, less the process before opening).

Every measurement runs in a fresh child process, for this worktree's source
and, with `--before SRC` (for example `/work/main/src`; `--original SRC`
adds a third tree), for another source tree too, interleaved (after, before,
after, ...); the median of the repeats is kept. Each source tree reads files
of the same content written by its own code (in a child process: an older
tree cannot open a newer schema, and a newer one would migrate an older
file).

Run directly (`python benchmarks/loading.py [--quick] [--before SRC]`) or
from `run.py` (this source only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parent.parent / "src")
SKUS = [f"SKU-{i}" for i in range(20)]


_BUILD = r"""
import json, sys
src, path, n_lines, closed, names = json.loads(sys.argv[1])
sys.path.insert(0, src)
from backorder import BackorderBook, Order, OrderLine, PartialFill
book = BackorderBook.open(path, PartialFill())
group = 1_000
for first in range(0, closed, group):
    ids = [f"h{i}" for i in range(first, min(first + group, closed))]
    with book.batch():
        for order_id in ids:
            book.place(Order(order_id, [OrderLine(names[0], 1)]))
        if (first // group) % 2:
            for order_id in ids:
                book.cancel(order_id)
        else:
            book.receive(names[0], len(ids), f"r{first}")
            for order_id in ids:
                book.ship(order_id)
chunk = 50_000
for first in range(0, n_lines, chunk):
    with book.batch():
        for i in range(first, min(first + chunk, n_lines)):
            book.place(Order(f"w{i}", [OrderLine(names[i % len(names)], 1 + i % 5)]))
book.close()
"""


def _build(
    src: str, path: str, n_lines: int, closed: int = 0, skus: list[str] | None = None
) -> None:
    # First `closed` lines on the first SKU that end closed (history: in
    # groups of 1,000, received with one reference and shipped, or
    # cancelled), then `n_lines` waiting lines over `skus` (round robin);
    # written by the code of source tree `src`, in a child process.
    args = json.dumps([src, path, n_lines, closed, skus or ["ONE"]])
    subprocess.run([sys.executable, "-c", _BUILD, args], check=True)


_CHILD = r"""
import gc, json, sys, time, tracemalloc, resource
sys.path.insert(0, {src!r})
from backorder import BackorderBook, Order, OrderLine, PartialFill
kind, path, order_id, n = {kind!r}, {path!r}, {order_id!r}, {n!r}
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()
out = {{}}
if kind == "sku":  # load one SKU; then place the same lines in memory
    book = BackorderBook.open(path, PartialFill())
    start = time.perf_counter()
    book.status(order_id)
    out["load_seconds"] = time.perf_counter() - start
    out["rows_read"] = dict(getattr(book.repository, "rows_read", {{}}))
    book.close()
    del book
    gc.collect()
    orders = [Order(f"w{{i}}", [OrderLine("ONE", 1 + i % 5)]) for i in range(n)]
    memory = BackorderBook(policy=PartialFill())
    start = time.perf_counter()
    for order in orders:
        memory.place(order)
    out["place_seconds"] = time.perf_counter() - start
elif kind == "bytes":  # bytes the book holds per line: loaded, then placed
    book = BackorderBook.open(path, PartialFill())
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    book.status(order_id)
    gc.collect()
    out["loaded_bytes"] = tracemalloc.get_traced_memory()[0] - before
    out["loaded_lines"] = len(book.waiting("ONE"))
    tracemalloc.stop()
    book.close()
    del book
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    memory = BackorderBook(policy=PartialFill())
    for i in range(n):
        memory.place(Order(f"w{{i}}", [OrderLine("ONE", 1 + i % 5)]))
    gc.collect()
    out["placed_bytes"] = tracemalloc.get_traced_memory()[0] - before
    out["placed_lines"] = len(memory.waiting("ONE"))
    tracemalloc.stop()
else:  # the whole book
    base = rss()
    book = BackorderBook.open(path, PartialFill())
    start = time.perf_counter()
    waiting = sum(len(book.waiting(sku)) for sku in book.skus())
    out["whole_seconds"] = time.perf_counter() - start
    out["whole_rss"] = rss() - base
    out["waiting"] = waiting
print(json.dumps(out))
"""


def _child(src: str, kind: str, path: str, order_id: str, n: int) -> dict[str, Any]:
    code = _CHILD.format(src=src, kind=kind, path=path, order_id=order_id, n=n)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def run(
    quick: bool,
    before: str | None = None,
    repeats: int = 3,
    whole_lines: int | None = None,
    original: str | None = None,
) -> dict[str, Any]:
    """Every loading benchmark, for this source and (`before`, `original`)
    other ones."""
    sku_lines = 50_000
    history = 45_000 if quick else 95_000
    whole = whole_lines or (100_000 if quick else 200_000)
    sources = {
        "after": SRC,
        **({"before": before} if before else {}),
        **({"original": original} if original else {}),
    }
    results: dict[str, Any] = {
        "sku_lines": sku_lines,
        "history_closed": history,
        "whole_lines": whole,
        "whole_skus": len(SKUS),
    }
    with tempfile.TemporaryDirectory(prefix="backorder-load-") as directory:
        files: dict[str, tuple[str, str, str]] = {}
        for name, src in sources.items():  # each tree's files, written by its own code
            one, past, book_path = (
                os.path.join(directory, f"{name}-{file}.db") for file in ("one", "history", "whole")
            )
            _build(src, one, sku_lines)
            _build(src, past, 5_000, closed=history)
            _build(src, book_path, whole, skus=SKUS)
            files[name] = (one, past, book_path)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            name: {"sku": [], "bytes": [], "history": [], "whole": []} for name in sources
        }
        for _ in range(repeats):
            for name, src in sources.items():
                one, past, book_path = files[name]
                runs[name]["sku"].append(_child(src, "sku", one, "w0", sku_lines))
                runs[name]["history"].append(_child(src, "sku", past, "w0", 5_000))
                runs[name]["whole"].append(_child(src, "whole", book_path, "w0", whole))
        for name, src in sources.items():
            runs[name]["bytes"].append(_child(src, "bytes", files[name][0], "w0", sku_lines))
    for name, kinds in runs.items():
        sku, byte, hist, every = kinds["sku"], kinds["bytes"][0], kinds["history"], kinds["whole"]
        assert all(r["waiting"] == whole for r in every), every
        results[name] = {
            "sku_load_seconds": _median(sku, "load_seconds"),
            "sku_place_seconds": _median(sku, "place_seconds"),
            "loaded_bytes_per_line": byte["loaded_bytes"] / byte["loaded_lines"],
            "placed_bytes_per_line": byte["placed_bytes"] / byte["placed_lines"],
            "history_load_seconds": _median(hist, "load_seconds"),
            "history_lines_read": hist[0]["rows_read"].get("lines"),
            "history_ledger_read": hist[0]["rows_read"].get("ledger"),
            "whole_seconds": _median(every, "whole_seconds"),
            "whole_rss_bytes": _median(every, "whole_rss"),
        }
    return results


def report(results: dict[str, Any]) -> str:
    """The results as text (a before/after table when both were measured)."""
    names = [name for name in ("original", "before", "after") if name in results]
    n, hist, whole = results["sku_lines"], results["history_closed"], results["whole_lines"]
    rows = [
        ("bytes per loaded line", "loaded_bytes_per_line", "{:,.0f} B"),
        ("bytes per line placed in memory", "placed_bytes_per_line", "{:,.0f} B"),
        (f"load a SKU of {n:,} waiting lines", "sku_load_seconds", "{:.3f} s"),
        (f"place {n:,} lines in memory", "sku_place_seconds", "{:.3f} s"),
        (f"load a SKU of 5,000 open + {hist:,} closed lines", "history_load_seconds", "{:.3f} s"),
        ("  its lines read", "history_lines_read", "{}"),
        ("  its ledger entries read", "history_ledger_read", "{}"),
        (
            f"whole book, {whole:,} lines on {results['whole_skus']} SKUs",
            "whole_seconds",
            "{:.2f} s",
        ),
        ("  resident memory after", "whole_rss_bytes", "{}"),
    ]
    head = f"  {'':<52}" + "".join(f"{name:>14}" for name in names)
    lines = ["\nLoading a lazily loaded SQLite book (medians)", head]
    for label, key, form in rows:
        cells = []
        for name in names:
            value = results[name].get(key)
            if key == "whole_rss_bytes":
                cells.append(f"+{value / 2**20:,.0f} MiB")
            else:
                cells.append("-" if value is None else form.format(value))
        lines.append(f"  {label:<52}" + "".join(f"{cell:>14}" for cell in cells))
    for name in names:
        r = results[name]
        held = r["loaded_bytes_per_line"] / r["placed_bytes_per_line"]
        took = r["sku_load_seconds"] / r["sku_place_seconds"]
        lines.append(
            f"  {name}: loaded/placed bytes {held:.2f} (target <= 1.5),"
            f" SKU load/place time {took:.2f} (target <= 0.5)"
        )
    a = results["after"]
    for name in names[:-1]:
        b = results[name]
        lines.append(
            f"  whole book after/{name}: time {a['whole_seconds'] / b['whole_seconds']:.2f},"
            f" memory {a['whole_rss_bytes'] / b['whole_rss_bytes']:.2f}"
            + (" (target < 0.33)" if name == "original" or len(names) == 2 else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--before", help="another source tree to measure too (before)")
    parser.add_argument("--original", help="a third source tree (the code before any loading work)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whole", type=int, help="lines in the whole book")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = run(args.quick, args.before, args.repeats, args.whole, args.original)
    print(report(results))
    print(f"\ntook {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
