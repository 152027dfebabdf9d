"""What moving stock between orders costs.

    python benchmarks/moves.py [--lines 10000 100000] [--moves 1 10 100 1000]

1. `rebalance` moving k units: n standard lines of one unit took all the
   stock; a contract order for k units is placed (queue order only), then
   `rebalance()` takes k units from the k last standard lines. The cost per
   unit moved should stay flat in n and k (O(k log n): no queue scan).
2. A preempting `place` when nothing moves (the SKU's stock is all firm):
   it costs a rebalance check per SKU, O(ranks + log n), against a plain
   place with `preempt=False`.
3. A preempting `place` of a contract order that takes one unit back.

Prints microseconds per operation (best of `--repeat` runs).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

from backorder import BackorderBook, Order, OrderLine, PriorityTiers

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _book(n: int, preempt: bool, firm: bool = False) -> BackorderBook:
    book = BackorderBook(PriorityTiers(preempt=preempt), clock=lambda: START)
    book.receive("MUG", n)
    with book.batch():
        for i in range(n):
            book.place(Order(f"S-{i}", [OrderLine("MUG", 1)], placed_at=START))
            if firm:
                book.firm(f"S-{i}")
    return book


def rebalance_cost(n: int, k: int, repeat: int) -> float:
    """Microseconds per unit moved by one rebalance moving k units."""
    best = float("inf")
    for _ in range(repeat):
        book = _book(n, preempt=False)
        book.place(Order("C-1", [OrderLine("MUG", k)], tier="contract", placed_at=START))
        book.rebalance("MUG")  # (builds the SKU's movable index once)
        book.cancel("C-1")  # its units go back to the standard lines
        book.place(Order("C-2", [OrderLine("MUG", k)], tier="contract", placed_at=START))
        t = time.perf_counter()
        result = book.rebalance("MUG")
        elapsed = time.perf_counter() - t
        assert result.moved == k, result.moved
        best = min(best, elapsed / k)
    return best * 1e6


def place_cost(n: int, preempt: bool, count: int, repeat: int, tier: str) -> float:
    """Microseconds per place of `count` orders on a SKU with n lines allocated."""
    best = float("inf")
    for _ in range(repeat):
        # all firm under preemption: nothing can move, only the check runs
        book = _book(n, preempt=preempt, firm=tier == "standard")
        # warm up: the SKU's movable index and the tier's sums are built once
        book.place(Order("W-1", [OrderLine("MUG", 1)], tier=tier, placed_at=START))
        orders = [
            Order(f"N-{i}", [OrderLine("MUG", 1)], tier=tier, placed_at=START) for i in range(count)
        ]
        t = time.perf_counter()
        for order in orders:
            book.place(order)
        best = min(best, (time.perf_counter() - t) / count)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--moves", type=int, nargs="+", default=[1, 10, 100, 1_000])
    parser.add_argument("--places", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("rebalance moving k units (us per unit moved)")
    print(f"{'n lines':>10} " + " ".join(f"{'k=' + str(k):>9}" for k in args.moves))
    for n in args.lines:
        costs = [rebalance_cost(n, k, args.repeat) for k in args.moves if k <= n]
        print(f"{n:>10,} " + " ".join(f"{c:>9.1f}" for c in costs))
    print()
    print("place (us per order)")
    print(f"{'n lines':>10} {'preempt=False':>14} {'preempt, none moves':>20} {'one moves':>10}")
    for n in args.lines:
        plain = place_cost(n, False, args.places, args.repeat, "standard")
        still = place_cost(n, True, args.places, args.repeat, "standard")
        moving = place_cost(n, True, min(args.places, n), args.repeat, "contract")
        print(f"{n:>10,} {plain:>14.1f} {still:>20.1f} {moving:>10.1f}")


if __name__ == "__main__":
    main()
