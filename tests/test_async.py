"""AsyncBackorderBook (issue 14): the loop is never blocked, a cancelled
await never leaves half an operation, every method has its coroutine."""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from backorder import (
    AsyncBackorderBook,
    BackorderBook,
    InMemoryRepository,
    Order,
    OrderLine,
    OrderPlaced,
    PartialFill,
    RepositoryClosed,
    SQLiteRepository,
    StockReceived,
    UnknownOrder,
)
from backorder.testing import snapshot

from .pg import DSN, schema, schemas

__all__ = ["schema", "schemas"]  # the fixtures

_HOLD_LOCK = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
conn.close()
"""


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "locked\n"
    return holder


def test_the_loop_keeps_ticking_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    BackorderBook.open(path).close()

    async def main() -> tuple[float, float, int]:
        async with AsyncBackorderBook.open(path, timeout=30) as book:
            await book.place(Order("A-1", [OrderLine("MUG", 2)]))
            holder = _hold_lock(path, 2.0)
            gaps: list[float] = []
            stop = asyncio.Event()

            async def ticker() -> None:
                last = time.perf_counter()
                while not stop.is_set():
                    await asyncio.sleep(0.01)
                    now = time.perf_counter()
                    gaps.append(now - last)
                    last = now

            ticking = asyncio.create_task(ticker())
            started = time.perf_counter()
            result = await book.receive("MUG", 2, reference="GRN-1")  # waits for the lock
            took = time.perf_counter() - started
            stop.set()
            await ticking
            holder.communicate()
            assert result.stock.allocated == 2
            return max(gaps), took, len(gaps)

    largest, took, ticks = asyncio.run(main())
    assert took > 1.5  # it did wait for the other process ...
    assert largest < 0.25  # ... and the loop never stopped meanwhile
    assert ticks > 50


def test_a_cancelled_await_finishes_the_operation_and_a_retry_learns_it(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    BackorderBook.open(path).close()

    async def main() -> None:
        async with AsyncBackorderBook.open(path) as book:
            await book.place(Order("A-1", [OrderLine("MUG", 3)]))
            holder = _hold_lock(path, 1.0)
            call = asyncio.create_task(book.receive("MUG", 3, reference="GRN-1"))
            await asyncio.sleep(0.2)  # it runs, waiting for the lock
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            # the operation went on in the worker thread and committed whole
            again = await book.receive("MUG", 3, reference="GRN-1")  # a retry
            assert again.replayed
            assert again.stock.on_hand == 3
            assert (await book.line("A-1", "MUG")).allocated == 3
            holder.communicate()
            (await book.ledger()).verify()

    asyncio.run(main())


def test_a_call_cancelled_before_it_started_never_runs() -> None:
    async def main() -> None:
        book = AsyncBackorderBook(repository=InMemoryRepository(outbox=True))
        block = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow(sync: BackorderBook) -> None:
            asyncio.run_coroutine_threadsafe(block.wait(), loop).result()

        first = asyncio.create_task(book.run(slow))  # occupies the worker
        await asyncio.sleep(0.05)
        second = asyncio.create_task(book.place(Order("A-1", [OrderLine("MUG", 1)])))
        await asyncio.sleep(0.05)
        second.cancel()
        block.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await second
        assert not await book.contains("A-1")
        assert await book.count() == 0
        await book.close()

    asyncio.run(main())


def test_the_async_book_does_what_the_sync_book_does(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncBackorderBook.open(tmp_path / "book.db") as book:
            await book.receive("MUG", 1, reference="GRN-1")
            placed = await book.place(Order("A-1", [OrderLine("MUG", 3)]))
            assert placed.lines[0].allocated == 1
            assert await book.position("A-1", "MUG") == 1
            assert (await book.status("A-1")).lines[0].backordered == 2
            assert (await book.stock("MUG")).allocated == 1
            assert (await book.ship("A-1")).shipped == 1
            assert (await book.cancel("A-1")).cancelled == 2
            with pytest.raises(UnknownOrder):
                await book.status("nope")

            def import_many(sync: BackorderBook) -> int:
                for n in range(5):
                    sync.place(Order(f"B-{n}", [OrderLine("CUP", 1)]))
                return len(sync)

            assert await book.batch(import_many) == 6
            claimed = await book.claim_events(limit=3)
            assert len(claimed) == 3
            assert await book.mark_published(claimed) == 3
            assert len(await book.pending_events()) > 0
            assert book.sync.stock("MUG").on_hand == 0
        with pytest.raises(RepositoryClosed):
            await book.stock("MUG")

    asyncio.run(main())


def test_awaiting_open_gives_the_book(tmp_path: Path) -> None:
    async def main() -> None:
        book = await AsyncBackorderBook.open(tmp_path / "book.db")
        await book.place(Order("A-1", [OrderLine("MUG", 1)]))
        await book.close()
        await book.close()  # twice is harmless
        wrapped = AsyncBackorderBook.wrap(BackorderBook.open(tmp_path / "book.db"))
        assert await wrapped.contains("A-1")
        await wrapped.close()

    asyncio.run(main())


def _public(cls: type) -> set[str]:
    names = {name for name in dir(cls) if not name.startswith("_")}
    return names | {"__enter__", "__exit__", "__len__", "__contains__"}


def test_every_method_of_the_book_has_an_async_counterpart() -> None:
    counterpart = {
        "__enter__": "__aenter__",
        "__exit__": "__aexit__",
        "__len__": "count",
        "__contains__": "contains",
    }
    sync_only = {"policy", "repository", "subscribe", "inspect"}  # O(1), no I/O
    for name in _public(BackorderBook):
        target = counterpart.get(name, name)
        assert hasattr(AsyncBackorderBook, target), name
        if name in sync_only:
            continue
        method = getattr(AsyncBackorderBook, target)
        assert inspect.iscoroutinefunction(method) or name == "open", name
        if name in counterpart or name in ("open", "batch", "ledger", "close"):
            continue
        sync_params = list(inspect.signature(getattr(BackorderBook, name)).parameters)
        async_params = list(inspect.signature(method).parameters)
        assert sync_params == async_params, name


def test_no_loop_thread_is_used_by_the_book() -> None:
    async def main() -> set[int]:
        seen: set[int] = set()
        book = AsyncBackorderBook()
        book.subscribe(lambda event: seen.add(threading.get_ident()))
        await book.place(Order("A-1", [OrderLine("MUG", 1)]))
        await book.close()
        return seen

    seen = asyncio.run(main())
    assert seen
    assert threading.get_ident() not in seen  # handlers ran in the worker thread


@pytest.mark.skipif(os.name != "posix", reason="posix file locks")
def test_sqlite_lock_holder_helper_really_locks(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    sqlite3.connect(path).close()
    holder = _hold_lock(path, 0.5)
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("BEGIN IMMEDIATE")
    conn.close()
    holder.communicate()


def _cancelled_at_random(open_store: Callable[[], Any], seed: int) -> BackorderBook:
    # 90 operations started at once, half of them cancelled at random moments
    # (before they ran, while they ran, after they ran); returns a sync book
    # on the same store, after every operation that started has ended
    async def main() -> dict[str, Any]:
        rng = random.Random(seed)
        book = AsyncBackorderBook(PartialFill(), open_store())
        tasks: dict[str, asyncio.Task[Any]] = {}
        for i in range(90):
            call: Coroutine[Any, Any, object]
            if i % 3 == 0:
                call = book.receive("MUG", 1, reference=f"GRN-{i}")
            else:
                call = book.place(Order(f"O-{i}", [OrderLine("MUG", 1 + i % 2)]))
            tasks[f"GRN-{i}" if i % 3 == 0 else f"O-{i}"] = asyncio.create_task(call)
            if rng.random() < 0.3:
                await asyncio.sleep(0)
        for key in rng.sample(sorted(tasks), 45):
            await asyncio.sleep(rng.random() * 0.003)
            tasks[key].cancel()
        outcomes = await asyncio.gather(*tasks.values(), return_exceptions=True)
        await book.stock("MUG")  # (runs after every operation that started)
        done = {
            key
            for key, outcome in zip(tasks, outcomes, strict=True)
            if not isinstance(outcome, BaseException)
        }
        assert all(
            isinstance(outcome, asyncio.CancelledError)
            for outcome in outcomes
            if isinstance(outcome, BaseException)
        )
        await book.close()
        return {"done": done, "keys": set(tasks)}

    seen = asyncio.run(main())
    book = BackorderBook(None, open_store())
    orders = set(book.order_ids())
    refs = {entry.reference for entry in book.ledger.entries("MUG") if entry.kind == "receipt"}
    # every operation that returned happened; every one happened whole or not at all
    assert {k for k in seen["done"] if k.startswith("O-")} <= orders
    assert {k for k in seen["done"] if k.startswith("GRN-")} <= refs
    assert orders | refs <= seen["keys"]
    for order_id in orders:
        n = int(order_id[2:])
        assert book.line(order_id, "MUG").ordered == 1 + n % 2
    assert book.stock("MUG").on_hand == len(refs)
    # the outbox holds exactly the events of what happened, each once
    placed = [p.event.order_id for p in book.pending_events() if isinstance(p.event, OrderPlaced)]
    received = [
        p.event.reference for p in book.pending_events() if isinstance(p.event, StockReceived)
    ]
    assert sorted(placed) == sorted(orders)
    assert sorted(str(r) for r in received) == sorted(str(r) for r in refs)
    book.inspect().check()
    book.ledger.verify()
    return book


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_awaits_cancelled_at_random_leave_whole_operations_sqlite(
    tmp_path: Path, seed: int
) -> None:
    path = tmp_path / "book.db"
    book = _cancelled_at_random(lambda: SQLiteRepository(path), seed)
    before = snapshot(book)
    book.close()
    with BackorderBook.open(path) as again:
        assert snapshot(again) == before


def test_awaits_cancelled_at_random_leave_whole_operations_in_memory() -> None:
    repository = InMemoryRepository(outbox=True)
    _cancelled_at_random(lambda: repository, 4)


def test_awaits_cancelled_at_random_leave_whole_operations_postgres(schema: str) -> None:
    from backorder.storage.postgres import PostgresRepository

    book = _cancelled_at_random(lambda: PostgresRepository(DSN, schema=schema), 5)
    before = snapshot(book)
    book.close()
    with BackorderBook(None, PostgresRepository(DSN, schema=schema)) as again:
        assert snapshot(again) == before
