"""Place and status through a real web server, against the same calls made directly.

    python benchmarks/web.py [--requests 400] [--concurrency 8] [--workers 2]

Needs the `servers` extra. Starts `docs/examples/web/fastapi_app.py` under
uvicorn with two workers on one SQLite file, and prints requests per second
and p50/p99 latency for place (POST /orders) and status (GET /orders/{id}),
next to the same operations called directly on a SQLite book in one thread;
then the cost `AsyncBackorderBook` adds per call over the sync book.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from backorder import AsyncBackorderBook, BackorderBook, Order, OrderLine, PriorityTiers

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples" / "web"


def _summary(name: str, latencies: list[float], wall: float) -> str:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1e3
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3
    rate = len(ordered) / wall
    return f"{name:<34} {rate:>9,.0f}/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"


def _timed(calls: list[Callable[[], object]], concurrency: int) -> tuple[list[float], float]:
    def one(call: Callable[[], object]) -> float:
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    start = time.perf_counter()
    if concurrency == 1:
        latencies = [one(call) for call in calls]
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(one, calls))
    return latencies, time.perf_counter() - start


def direct(requests: int, folder: Path) -> None:
    with BackorderBook.open(folder / "direct.db", policy=PriorityTiers()) as book:
        places: list[Callable[[], object]] = [
            lambda n=n: book.place(Order(f"D-{n}", [OrderLine("MUG", 1)])) for n in range(requests)
        ]
        latencies, wall = _timed(places, 1)
        print(_summary("direct: place (SQLite, fsync)", latencies, wall))
        reads: list[Callable[[], object]] = [
            lambda n=n: book.status(f"D-{n}") for n in range(requests)
        ]
        latencies, wall = _timed(reads, 1)
        print(_summary("direct: status", latencies, wall))


def through_uvicorn(requests: int, concurrency: int, workers: int, folder: Path) -> None:
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(EXAMPLES)]),
        "BACKORDER_DB": str(folder / "web.db"),
        "BACKORDER_SENT": str(folder / "sent.jsonl"),
    }
    command = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    server = subprocess.Popen(command, cwd=EXAMPLES, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=60) as client:
            for path, name in (("/orders", "async"), ("/sync/orders", "sync")):
                places: list[Callable[[], object]] = [
                    lambda n=n, p=path, k=name: client.post(
                        p, json={"id": f"{k}-{n}", "lines": [{"sku": "MUG", "quantity": 1}]}
                    ).raise_for_status()
                    for n in range(requests)
                ]
                latencies, wall = _timed(places, concurrency)
                print(_summary(f"uvicorn x{workers}: place ({name} endpoint)", latencies, wall))
            reads: list[Callable[[], object]] = [
                lambda n=n: client.get(f"/orders/async-{n}").raise_for_status()
                for n in range(requests)
            ]
            latencies, wall = _timed(reads, concurrency)
            print(_summary(f"uvicorn x{workers}: status (async endpoint)", latencies, wall))
    finally:
        server.terminate()
        server.wait()


def async_overhead(calls: int, folder: Path) -> None:
    book = BackorderBook()
    book.place(Order("A-1", [OrderLine("MUG", 1)]))
    start = time.perf_counter()
    for _ in range(calls):
        book.position("A-1", "MUG")
    sync_each = (time.perf_counter() - start) / calls

    async def awaited() -> float:
        async with AsyncBackorderBook.wrap(book) as abook:
            await abook.position("A-1", "MUG")
            start = time.perf_counter()
            for _ in range(calls):
                await abook.position("A-1", "MUG")
            return (time.perf_counter() - start) / calls

    async_each = asyncio.run(awaited())
    print(
        f"position in memory: sync {sync_each * 1e6:.1f} us, awaited {async_each * 1e6:.1f} us"
        f" per call (+{(async_each - sync_each) * 1e6:.1f} us for the thread hand-off)"
    )
    with BackorderBook.open(folder / "overhead.db") as sqlite_book:
        n = max(50, calls // 100)
        start = time.perf_counter()
        for i in range(n):
            sqlite_book.place(Order(f"S-{i}", [OrderLine("MUG", 1)]))
        sync_place = (time.perf_counter() - start) / n

        async def places() -> float:
            abook = AsyncBackorderBook.wrap(sqlite_book)
            start = time.perf_counter()
            for i in range(n):
                await abook.place(Order(f"T-{i}", [OrderLine("MUG", 1)]))
            return (time.perf_counter() - start) / n

        async_place = asyncio.run(places())
    print(
        f"place on SQLite: sync {sync_place * 1e3:.2f} ms, awaited {async_place * 1e3:.2f} ms"
        f" per call"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        direct(args.requests, Path(folder))
        through_uvicorn(args.requests, args.concurrency, args.workers, Path(folder))
        async_overhead(20_000, Path(folder))


if __name__ == "__main__":
    main()
