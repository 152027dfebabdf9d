"""Profile W1 (flood and drain) through the library with pyinstrument.

    pip install pyinstrument
    python benchmarks/profile_w1.py [N]

Prints where place and fill spend their time (see docs/performance.md).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pyinstrument import Profiler

from backorder import BackorderBook, Order, OrderLine, PartialFill


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rng = random.Random(1)
    sizes = [rng.randint(1, 5) for _ in range(n)]
    book = BackorderBook(PartialFill())
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for i, qty in enumerate(sizes):
        book.place(Order(f"o{i}", (OrderLine("SKU", qty),)))
    remaining = sum(sizes)
    while remaining:
        size = min(remaining, rng.randint(1, 50))
        book.receive("SKU", size)
        remaining -= size
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    main()
