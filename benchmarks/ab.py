"""Compare this tree's book with another checkout's, interleaved in one run.

    python benchmarks/ab.py OTHER_CHECKOUT [--this CHECKOUT] [--rounds 5] [--lines 50000]

Each round runs the same small workload in a fresh process for each tree,
alternating, and keeps each tree's best rate per operation (the least
disturbed run), so a busy machine slows both alike. Prints the rates and
this tree's ratio to the other's (1.00 = as fast).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

_WORKLOAD = r"""
import json, sys, time
from datetime import datetime, timedelta, timezone
from backorder import BackorderBook, Order, OrderLine

n = int(sys.argv[1])
start = datetime(2026, 1, 1, tzinfo=timezone.utc)
clock = lambda: start
out = {}
book = BackorderBook(clock=clock)
orders = [Order(f"O-{i}", [OrderLine("MUG", 2)], placed_at=start) for i in range(n)]
t = time.perf_counter()
for order in orders:
    book.place(order)
out["place"] = n / (time.perf_counter() - t)
k = n // 5
t = time.perf_counter()
for i in range(0, k):
    book.position(f"O-{(i * 7919) % n}", "MUG")
out["position"] = k / (time.perf_counter() - t)
book.expect("MUG", n // 2, start + timedelta(days=3), "PO-1")
t = time.perf_counter()
for i in range(0, k):
    book.eta(f"O-{(i * 7919) % n}", "MUG")
out["eta"] = k / (time.perf_counter() - t)
book.cancel_expected("PO-1")
t = time.perf_counter()
for i in range(k):
    book.receive("MUG", 1, reference=f"R-{i}")
out["receive"] = k / (time.perf_counter() - t)
t = time.perf_counter()
for i in range(k, 2 * k):
    book.cancel(f"O-{i}")
out["cancel"] = k / (time.perf_counter() - t)
print(json.dumps(out))
"""


def _run(tree: Path, lines: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    done = subprocess.run(
        [sys.executable, "-c", _WORKLOAD, str(lines)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path)
    parser.add_argument("--this", type=Path, default=None, help="this tree (default: here)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lines", type=int, default=50_000)
    args = parser.parse_args()
    here = args.this or Path(__file__).resolve().parent.parent
    best: dict[str, dict[str, float]] = {"this": {}, "other": {}}
    for _ in range(args.rounds):
        for name, tree in (("other", args.other), ("this", here)):
            for op, rate in _run(tree, args.lines).items():
                best[name][op] = max(best[name].get(op, 0.0), rate)
    print(f"{'operation':<10} {'this':>12} {'other':>12} {'ratio':>7}")
    for op in best["this"]:
        this, other = best["this"][op], best["other"][op]
        print(f"{op:<10} {this:>12,.0f} {other:>12,.0f} {this / other:>7.2f}")


if __name__ == "__main__":
    main()
