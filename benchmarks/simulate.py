"""The what-if simulator on one million events, against the plain book's own
rate on the same operations measured in the same run.

    python benchmarks/simulate.py [--events N]

The reference is the same event stream applied to a book with no measuring
(the simulator's overhead is what it adds on top); the target of the issue is
one million events in under a minute for one policy.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from backorder import BackorderBook, BackorderError, PartialFill
from backorder._eventfile import _parse
from backorder.simulate import simulate, synthetic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    # about 1.03 events per order (cancels, schedules, receipts): size the days to the target
    per_day = 2_000.0
    days = max(1, math.ceil(args.events / (per_day * 1.02)))
    start = time.perf_counter()
    events = synthetic(days=days, orders_per_day=per_day, skus=[f"SKU-{i}" for i in range(50)])
    generated = time.perf_counter() - start
    start = time.perf_counter()
    lines = [_parse(event, f"event {n}") for n, event in enumerate(events, start=1)]
    parsed = time.perf_counter() - start
    now = [lines[0].at]
    book = BackorderBook(PartialFill(), clock=lambda: now[0])  # type: ignore[arg-type,return-value]
    start = time.perf_counter()
    for line in lines:
        now[0] = line.at
        with contextlib.suppress(BackorderError):  # refused: changes nothing
            line.apply(book)
    plain = time.perf_counter() - start
    result = simulate(lines, {"partial": PartialFill()})
    simulated = result.seconds[0]
    print(
        f"{len(events):,} events over {days} days "
        f"(generated in {generated:.1f} s, parsed in {parsed:.1f} s)"
    )
    print(f"  plain book, same operations: {plain:.1f} s ({len(events) / plain:,.0f} events/s)")
    print(
        f"  simulate (one policy, measuring): {simulated:.1f} s ({len(events) / simulated:,.0f} "
        f"events/s), {simulated / plain:.2f}x the plain book"
    )
    print(result.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
