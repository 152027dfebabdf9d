"""Benchmarks: the library against the naive peer and the floor, in one run.

    python benchmarks/run.py            # full run (10k, 100k, 1M waiting lines)
    python benchmarks/run.py --quick    # under a minute (10k, 100k)
    python benchmarks/run.py --json results.json

Every workload runs through the library (in-memory), the naive peer
(`naive.py`) and the floor (`floor.py`) in the same process, interleaved (the
order of the three rotates between repeats) so machine noise hits all alike;
the best of the repeats is kept. Results are operations per second and the
ratios library/floor and library/naive. The SQLite storage benchmarks of
`storage.py` and the loading benchmarks of `loading.py` run last, each against its own
reference. Where the naive peer is O(n) per
operation, it is timed on a sample of the operations at that size (marked
"sampled"); its rate per operation is what is compared.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import random
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import loading
import storage
from backorder import (
    AllocationPolicy,
    BackorderBook,
    Order,
    OrderLine,
    PartialFill,
    PriorityTiers,
    StrictFIFO,
)
from floor import FloorBook
from naive import NaiveBook

SKU = "SKU-1"
TIERS = ("contract", "vip", "standard")


@contextmanager
def timer(into: list[float]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    into.append(time.perf_counter() - start)


def make_orders(n: int, seed: int, tiers: bool = False) -> list[tuple[str, int, str]]:
    rng = random.Random(seed)
    return [(f"o{i}", rng.randint(1, 5), TIERS[i % 3] if tiers else "standard") for i in range(n)]


def receipts(total: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    out: list[int] = []
    while total > 0:
        size = min(total, rng.randint(1, 50))
        out.append(size)
        total -= size
    return out


# -- one adapter per implementation: the same calls, each done the natural way -----


class Library:
    name = "library"

    def __init__(self, n: int, policy: AllocationPolicy) -> None:
        self.book = BackorderBook(policy)

    def place(self, orders: list[tuple[str, int, str]], sku: str = SKU) -> None:
        place = self.book.place
        for order_id, qty, tier in orders:
            place(Order(order_id, (OrderLine(sku, qty),), tier=tier))

    def place_many(self, orders: list[tuple[str, str, int]]) -> None:
        place = self.book.place
        for order_id, sku, qty in orders:
            place(Order(order_id, (OrderLine(sku, qty),)))

    def receive(self, sizes: list[int], sku: str = SKU) -> None:
        receive = self.book.receive
        for size in sizes:
            receive(sku, size)

    def receive_many(self, pairs: list[tuple[str, int]]) -> None:
        receive = self.book.receive
        for sku, size in pairs:
            receive(sku, size)

    def cancel(self, ids: list[str]) -> None:
        cancel = self.book.cancel
        for order_id in ids:
            cancel(order_id)

    def position(self, ids: list[str], sku: str = SKU) -> None:
        position = self.book.position
        for order_id in ids:
            position(order_id, sku)

    def waiting(self, sku: str = SKU) -> int:
        return len(self.book._state.skus[sku].queue)


class Naive(Library):
    name = "naive"

    def __init__(self, n: int, policy: AllocationPolicy) -> None:
        self.book = NaiveBook(policy)  # type: ignore[assignment]  # same calls

    def waiting(self, sku: str = SKU) -> int:
        return len(self.book.waiting_lines.get(sku, []))  # type: ignore[attr-defined]  # a NaiveBook here


class Floor(Library):
    """The floor through the same calls (receipts as the library's)."""

    name = "floor"

    def __init__(self, n: int, policy: AllocationPolicy) -> None:
        self.book = FloorBook(n + 10, strict=isinstance(policy, StrictFIFO))  # type: ignore[assignment]  # same receive calls
        self.seqs: dict[str, int] = {}

    def place(self, orders: list[tuple[str, int, str]], sku: str = SKU) -> None:
        place, seqs = self.book.place, self.seqs
        for order_id, qty, _ in orders:
            seqs[order_id] = place(sku, qty)

    def place_many(self, orders: list[tuple[str, str, int]]) -> None:
        place, seqs = self.book.place, self.seqs
        for order_id, sku, qty in orders:
            seqs[order_id] = place(sku, qty)

    def cancel(self, ids: list[str]) -> None:
        cancel, seqs = self.book.cancel, self.seqs
        for order_id in ids:
            cancel(seqs[order_id])

    def position(self, ids: list[str], sku: str = SKU) -> None:
        position, seqs = self.book.position, self.seqs
        for order_id in ids:
            position(seqs[order_id])

    def waiting(self, sku: str = SKU) -> int:
        return sum(1 for entry in self.book.queues.get(sku, ()) if entry[1])


IMPLS: list[type[Any]] = [Library, Naive, Floor]


def rotations(repeats: int) -> Iterator[list[type[Any]]]:
    for r in range(repeats):
        yield IMPLS[r % 3 :] + IMPLS[: r % 3]


# -- workloads ------------------------------------------------------------------------


def scaling(n: int, policy: AllocationPolicy, repeats: int, naive_cap: int) -> dict[str, Any]:
    """Place n lines, then time position, cancel and receive (per line served)."""
    orders = make_orders(n, seed=n)
    rng = random.Random(7)
    sample = min(n // 4, 20_000)
    ids = [orders[i][0] for i in rng.sample(range(n), sample)]
    drain = receipts(sum(q for _, q, _ in orders), seed=3)
    best: dict[str, dict[str, float]] = {}
    for order in rotations(repeats):
        for impl in order:
            gc.collect()
            book = impl(n, policy)
            times: list[float] = []
            with timer(times):
                book.place(orders)
            cut = sample if impl is not Naive else min(sample, naive_cap)
            with timer(times):
                book.position(ids[:cut])
            with timer(times):
                book.cancel(ids[:cut])
            # serve lines: drain receipts until `served` lines left the queue
            waiting_before = book.waiting()
            limit = len(drain) if impl is not Naive else max(1, naive_cap // 3)
            with timer(times):
                book.receive(drain[:limit])
            served = waiting_before - book.waiting()
            rates = {
                "place": n / times[0],
                "position": cut / times[1],
                "cancel": cut / times[2],
                "receive_per_line": served / times[3] if served else 0.0,
            }
            mine = best.setdefault(impl.name, {})
            for key, value in rates.items():
                mine[key] = max(mine.get(key, 0.0), value)
            del book
    return best


def flood_and_drain(
    n: int, policy: AllocationPolicy, tiers: bool, repeats: int, naive_cap: int
) -> dict[str, Any]:
    """W1 (and W4 with tiers): n orders on one SKU with no stock, then drain."""
    orders = make_orders(n, seed=11, tiers=tiers)
    drain = receipts(sum(q for _, q, _ in orders), seed=12)
    best: dict[str, dict[str, float]] = {}
    for order in rotations(repeats):
        for impl in order:
            gc.collect()
            book = impl(n, policy)
            times: list[float] = []
            with timer(times):
                book.place(orders)
            limit = len(drain) if impl is not Naive else max(1, naive_cap // 3)
            with timer(times):
                book.receive(drain[:limit])
            served = n - book.waiting()
            place_rate = n / times[0]
            fill_rate = served / times[1]
            rates = {
                "place": place_rate,
                "fill": fill_rate,
                # orders placed and served per second, end to end
                "place_and_fill": 1 / (1 / place_rate + 1 / fill_rate),
            }
            mine = best.setdefault(impl.name, {})
            for key, value in rates.items():
                mine[key] = max(mine.get(key, 0.0), value)
            del book
    return best


def churn(n: int, policy: AllocationPolicy, repeats: int, naive_cap: int) -> dict[str, Any]:
    """W2: n waiting, then n cancels at random places, n positions, n/10 receipts."""
    orders = make_orders(n, seed=21)
    rng = random.Random(22)
    victims = [orders[i][0] for i in rng.sample(range(n), n)]
    probes = [orders[rng.randrange(n)][0] for _ in range(n)]
    stream: list[tuple[str, Any]] = []
    for i in range(n):
        stream.append(("cancel", victims[i]))
        stream.append(("position", probes[i]))
        if i % 10 == 0:
            stream.append(("receive", rng.randint(1, 5)))
    best: dict[str, dict[str, float]] = {}
    for order in rotations(repeats):
        for impl in order:
            gc.collect()
            book = impl(n, policy)
            book.place(orders)
            cut = len(stream) if impl is not Naive else min(len(stream), naive_cap)
            cancel, receive = book.book.cancel, book.book.receive
            position = book.book.position
            seqs = getattr(book, "seqs", None)
            start = time.perf_counter()
            for kind, arg in stream[:cut]:
                if kind == "cancel":
                    # an order already fully served has nothing to cancel
                    with contextlib.suppress(Exception):
                        cancel(seqs[arg]) if seqs is not None else cancel(arg)
                elif kind == "position":
                    position(seqs[arg]) if seqs is not None else position(arg, SKU)
                elif seqs is not None:
                    receive(SKU, arg)
                else:
                    receive(SKU, arg)
            elapsed = time.perf_counter() - start
            mine = best.setdefault(impl.name, {})
            mine["ops"] = max(mine.get("ops", 0.0), cut / elapsed)
            del book
    return best


def catalogue(skus: int, per_sku: int, policy: AllocationPolicy, repeats: int) -> dict[str, Any]:
    """W3: skus x per_sku waiting lines, random receipts across SKUs until all served."""
    rng = random.Random(31)
    orders = [
        (f"o{s}-{k}", f"S{s}", rng.randint(1, 5)) for k in range(per_sku) for s in range(skus)
    ]
    demand: dict[str, int] = {}
    for _, sku, qty in orders:
        demand[sku] = demand.get(sku, 0) + qty
    pairs = [
        (sku, size) for sku, total in demand.items() for size in receipts(total, seed=len(sku))
    ]
    rng.shuffle(pairs)
    n = len(orders)
    best: dict[str, dict[str, float]] = {}
    for order in rotations(repeats):
        for impl in order:
            gc.collect()
            book = impl(n, policy)
            times: list[float] = []
            with timer(times):
                book.place_many(orders)
            with timer(times):
                book.receive_many(pairs)
            mine = best.setdefault(impl.name, {})
            mine["place"] = max(mine.get("place", 0.0), n / times[0])
            mine["fill"] = max(mine.get("fill", 0.0), n / times[1])
            del book
    return best


def promises(n: int, samples: int) -> dict[str, float]:
    """ETAs at n waiting lines (library only: the peers have no ETAs).

    One SKU, PartialFill, 10 scheduled receipts covering the line and a lead
    time. Times `eta` on random lines, `promise`, a schedule change (a receipt
    moved by a day, with the EtaChanged events it causes), and place and
    receive while ETAs are kept up to date.
    """
    from datetime import datetime, timedelta, timezone

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    orders = make_orders(n, seed=51)
    rng = random.Random(52)
    book = BackorderBook(PartialFill(), clock=lambda: start)
    lib = Library.__new__(Library)
    lib.book = book
    lib.place(orders)
    total = sum(q for _, q, _ in orders)
    for k in range(10):
        book.expect(SKU, total // 10 + 1, start + timedelta(days=7 * k + 7), f"PO-{k}")
    book.set_lead_time(SKU, timedelta(days=90))
    ids = [orders[rng.randrange(n)][0] for _ in range(samples)]
    book.eta(ids[0], SKU)  # builds the demand index once
    out: dict[str, float] = {}
    t = time.perf_counter()
    for order_id in ids:
        book.eta(order_id, SKU)
    out["eta"] = samples / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(samples):
        book.promise(SKU, 1 + i % 5, "standard")
    out["promise"] = samples / (time.perf_counter() - t)
    # a move can change the date of a tenth of the line: keep the count of
    # EtaChanged events (and so the run time) bounded as the line grows
    moves = max(1, min(samples, 200, 1_000_000 // n))
    changed = 0
    t = time.perf_counter()
    for i in range(moves):
        ref = f"PO-{rng.randrange(10)}"
        when = start + timedelta(days=rng.randint(1, 70), hours=i % 24)
        events = book.update_expected(ref, arriving=when).events
        changed += len(events) - 1
    elapsed = time.perf_counter() - t
    out["schedule_change"] = moves / elapsed
    out["eta_changed_per_change"] = changed / moves
    out["eta_changed_per_s"] = changed / elapsed
    extra = make_orders(samples, seed=53)
    extra = [(f"x{i}", q, tier) for i, (_, q, tier) in enumerate(extra)]
    t = time.perf_counter()
    lib.place(extra)
    out["place_with_etas"] = samples / (time.perf_counter() - t)
    t = time.perf_counter()
    lib.receive([5] * samples)
    out["receive_with_etas"] = samples / (time.perf_counter() - t)
    return out


def memory(n: int) -> dict[str, float]:
    """Peak bytes per waiting line while n lines wait (the user's Orders included)."""
    out: dict[str, float] = {}
    orders = make_orders(n, seed=41)
    for impl in (Library, Floor):
        gc.collect()
        tracemalloc.start()
        book = impl(n, PartialFill())
        book.place(orders)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out[impl.name] = peak / n
        del book
    return out


# -- the report ------------------------------------------------------------------------


def ratios(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    lib = rows["library"]
    return {
        metric: {
            "library/floor": lib[metric] / rows["floor"][metric]
            if rows["floor"].get(metric)
            else 0,
            "library/naive": lib[metric] / rows["naive"][metric]
            if rows["naive"].get(metric)
            else 0,
        }
        for metric in lib
    }


def table(title: str, rows: dict[str, dict[str, float]]) -> str:
    metrics = list(rows["library"])
    lines = [
        f"\n{title}",
        f"  {'metric':<18}{'library':>12}{'naive':>12}{'floor':>12}"
        f"{'lib/floor':>11}{'lib/naive':>11}",
    ]
    rat = ratios(rows)
    for metric in metrics:
        lines.append(
            f"  {metric:<18}"
            + "".join(
                f"{rows[name].get(metric, 0):>12,.0f}" for name in ("library", "naive", "floor")
            )
            + f"{rat[metric]['library/floor']:>11.3f}{rat[metric]['library/naive']:>11.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    quick = args.quick
    sizes = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    w1 = 100_000 if quick else 1_000_000
    w2 = 20_000 if quick else 100_000
    w3 = (1_000, 100) if quick else (10_000, 100)
    naive_cap = 600
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "quick": quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    started = time.perf_counter()
    out: list[str] = [
        f"backorder benchmarks (Python {results['python']}, {'quick' if quick else 'full'} run)"
    ]

    def record(key: str, title: str, rows: dict[str, Any]) -> None:
        results[key] = {"rates": rows, "ratios": ratios(rows)}
        out.append(table(title, rows))
        print(out[-1], flush=True)

    print(out[0], flush=True)
    for n in sizes:
        repeats = 2 if n <= 100_000 else 1
        record(
            f"scaling_{n}",
            f"scaling at {n:,} waiting lines (PartialFill; ops/s)",
            scaling(n, PartialFill(), repeats, naive_cap),
        )
    record(
        "W1_partial",
        f"W1 flood and drain, {w1:,} orders, PartialFill (orders/s)",
        flood_and_drain(w1, PartialFill(), False, 1, naive_cap),
    )
    record(
        "W1_strict",
        f"W1 flood and drain, {w1:,} orders, StrictFIFO (orders/s)",
        flood_and_drain(w1, StrictFIFO(), False, 1, naive_cap),
    )
    record(
        "W2_churn",
        f"W2 churn, {w2:,} waiting: cancels, positions, receipts (ops/s)",
        churn(w2, PartialFill(), 1, naive_cap),
    )
    record(
        "W3_catalogue",
        f"W3 catalogue, {w3[0]:,} SKUs x {w3[1]} lines (lines/s)",
        catalogue(w3[0], w3[1], PartialFill(), 1),
    )
    record(
        "W4_priority",
        f"W4 priority, {w1:,} orders in 3 tiers (floor: one tier) (orders/s)",
        flood_and_drain(w1, PriorityTiers(), True, 1, naive_cap),
    )
    # tracemalloc slows allocation several-fold; the cost per line is linear, so a
    # smaller book measures it as well as 1M lines would
    for n in sizes:
        rates = promises(n, 2_000 if quick else 5_000)
        results[f"promises_{n}"] = rates
        line = f"\npromises at {n:,} waiting lines (library; ops/s): " + ", ".join(
            f"{k} {v:,.0f}" if "per_change" not in k else f"{k} {v:,.1f}" for k, v in rates.items()
        )
        out.append(line)
        print(line, flush=True)
    mem_n = 100_000 if quick else 200_000
    mem = memory(mem_n)
    results["memory_bytes_per_waiting_line"] = mem
    line = (
        f"\npeak memory per waiting line ({mem_n:,} lines, Orders included): "
        f"library {mem['library']:.0f} B ({mem['library'] * 1e6 / 2**20:.0f} MiB per 1M), "
        f"floor {mem['floor']:.0f} B ({mem['floor'] * 1e6 / 2**20:.0f} MiB per 1M)"
    )
    out.append(line)
    print(line)
    stored = storage.run(quick)
    results["storage"] = stored
    print(storage.report(stored), flush=True)
    loaded = loading.run(quick, repeats=1 if quick else 3)
    results["loading"] = loaded
    print(loading.report(loaded), flush=True)
    results["seconds"] = time.perf_counter() - started
    print(f"\ntook {results['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
