"""Instructions per operation, this tree against another checkout (valgrind).

    python benchmarks/instructions.py OTHER_CHECKOUT [--this CHECKOUT] [--ops 1000]

Wall-clock ratios on a busy machine swing by tens of percent; the count of
instructions an operation executes does not. Each tree runs the same small
workload (3,000 waiting lines on one SKU, then `--ops` operations) under
`valgrind --tool=callgrind` with `PYTHONHASHSEED=0`; the setup alone is
counted too and subtracted. Prints instructions per operation and this
tree's ratio to the other's (1.00 = the same work). Needs valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

_WORKLOAD = r"""
import sys
from datetime import datetime, timedelta, timezone
from backorder import BackorderBook, Order, OrderLine
op, k = sys.argv[1], int(sys.argv[2])
n = 3000
start = datetime(2026, 1, 1, tzinfo=timezone.utc)
book = BackorderBook(clock=lambda: start)
orders = [Order(f"O-{i}", [OrderLine("MUG", 2)], placed_at=start) for i in range(n + k)]
for order in orders[:n]:
    book.place(order)
if op == "eta":
    book.expect("MUG", n // 2, start + timedelta(days=3), "PO-1")
ids = [f"O-{(i * 7919) % n}" for i in range(k)]
if op == "place":
    for order in orders[n:]:
        book.place(order)
elif op == "position":
    for i in ids:
        book.position(i, "MUG")
elif op == "eta":
    for i in ids:
        book.eta(i, "MUG")
elif op == "receive":
    for i in range(k):
        book.receive("MUG", 1, reference=f"R-{i}")
elif op == "cancel":
    for i in range(k):
        book.cancel(f"O-{i}")
"""

OPERATIONS = ("place", "position", "eta", "receive", "cancel")


def _count(tree: Path, op: str, k: int) -> int:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), PYTHONHASHSEED="0")
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    done = subprocess.run(
        [*command, sys.executable, "-c", _WORKLOAD, op, str(k)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind said no count:\n{done.stderr[-500:]}")
    return int(found.group(1))


def per_operation(tree: Path, k: int) -> dict[str, float]:
    """Instructions per operation of each workload in `tree`."""
    setup = {"plain": _count(tree, "place", 0), "eta": _count(tree, "eta", 0)}
    return {
        op: (_count(tree, op, k) - setup["eta" if op == "eta" else "plain"]) / k
        for op in OPERATIONS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path)
    parser.add_argument("--this", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--ops", type=int, default=1000)
    args = parser.parse_args()
    other, this = per_operation(args.other, args.ops), per_operation(args.this, args.ops)
    print(f"{'operation':<10} {'this':>10} {'other':>10} {'ratio':>7}")
    for op in OPERATIONS:
        print(f"{op:<10} {this[op]:>10,.0f} {other[op]:>10,.0f} {this[op] / other[op]:>7.3f}")


if __name__ == "__main__":
    main()
