"""The what-if simulator on one million events, against the same book
operations without the measuring, in the same run.

    python benchmarks/simulate.py [--events N] [--preset NAME]

The stream is `synthetic(preset=...)` (steady by default) sized to about N
events over 50 SKUs. Besides the stream's own operations (place, expect,
receive, reschedule) the simulator ships what was allocated (the daily
`dispatch`: one `ship` per order line) and runs the customers' `withdraw`.
The reference does exactly those book operations, with only the bookkeeping
the shipments need and no measuring; the simulator's own cost is what it adds
on top. The target of the issue is one million events in under a minute for
one policy.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from backorder import PartialFill, UnknownOrder
from backorder.events import LineAllocated, LineReleased, LineShipped
from backorder.simulate import _prepare, _Run, simulate, synthetic


class _Plain(_Run):
    """The same book operations as the simulator, without its measures."""

    def observe(self, changes: Sequence[Any], placing: bool = False) -> None:
        for change in changes:
            kind = type(change)
            if kind is LineAllocated:
                key = (change.order_id, change.sku)
                self.unshipped.setdefault(key, []).append([change.at, change.quantity])
            elif kind is LineShipped:
                self._take((change.order_id, change.sku), change.quantity, oldest=True)
            elif kind is LineReleased:
                self._take((change.order_id, change.sku), change.quantity, oldest=False)

    def withdraw(self, order_id: str, if_waiting: bool) -> None:
        try:
            lines = self.book.status(order_id).lines
        except UnknownOrder:
            return
        if if_waiting and not any(line.backordered for line in lines):
            return
        if any(line.backordered or line.allocated for line in lines):
            self.observe(self.book.cancel(order_id).events)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="about how many events")
    parser.add_argument("--preset", default="steady", help="the synthetic() preset")
    args = parser.parse_args(argv)
    skus = [f"SKU-{i}" for i in range(50)]
    per_day = 2_000.0
    # events per day, from a small stream long enough for the give-ups to fall inside
    sample = synthetic(preset=args.preset, days=60, orders_per_day=200.0, skus=skus)
    per_order = len(sample) / sum(event["type"] == "place" for event in sample)
    days = max(1, round(args.events / (per_day * per_order)))
    start = time.perf_counter()
    events = synthetic(preset=args.preset, days=days, orders_per_day=per_day, skus=skus)
    generated = time.perf_counter() - start
    start = time.perf_counter()
    lines = _prepare(events)
    parsed = time.perf_counter() - start
    plain = _Plain(PartialFill())
    start = time.perf_counter()
    for line in lines:
        plain.now = line.at or plain.now
        plain.apply(line)
    plain_seconds = time.perf_counter() - start
    result = simulate(lines, {"partial": PartialFill()})  # type: ignore[arg-type]
    simulated = result.seconds[0]
    own = sum(event["type"] in ("dispatch", "withdraw") for event in events)
    print(
        f"{len(events):,} events over {days} days, preset {args.preset}, {own:,} of them "
        f"dispatches and withdrawals (generated in {generated:.1f} s, parsed in {parsed:.1f} s)"
    )
    print(
        f"  plain book, the same operations: {plain_seconds:.1f} s "
        f"({len(events) / plain_seconds:,.0f} events/s)"
    )
    print(
        f"  simulate (one policy, measuring): {simulated:.1f} s "
        f"({len(events) / simulated:,.0f} events/s), "
        f"{simulated / plain_seconds:.2f}x the plain book"
    )
    print(result.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
