"""What the PostgreSQL tests run in other processes (importable by `spawn`)."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from backorder import BackorderBook, BackorderError, Order, OrderLine, event_to_dict
from backorder.events import Event
from backorder.storage.postgres import PostgresRepository


def event_json(event: Event) -> str:
    """An event as canonical JSON text (to compare events across processes)."""
    return json.dumps(event_to_dict(event), sort_keys=True)


def hold_batch(dsn: str, schema: str, sku: str, ready: Any, release: Any) -> None:
    """Open a batch that places an order on `sku`, say so, and commit it only
    when told to (the lock stays held meanwhile)."""
    with BackorderBook(None, PostgresRepository(dsn, schema=schema)) as book, book.batch():
        book.place(Order("HELD-1", [OrderLine(sku, 1)]))
        ready.set()
        release.wait(30)


def random_ops(dsn: str, schema: str, seed: int, count: int, skus: list[str]) -> list[str]:
    """`count` random operations on shared SKUs with think time between them;
    returns the events each successful operation returned, in order."""
    rng = random.Random(seed)
    told: list[str] = []
    placed: list[str] = []
    with BackorderBook(None, PostgresRepository(dsn, schema=schema, timeout=60)) as book:
        for i in range(count):
            time.sleep(rng.random() * 0.003)
            kind = rng.random()
            try:
                if kind < 0.45 or not placed:
                    order_id = f"P{seed}-{i}"
                    lines = rng.sample(skus, rng.randint(1, 2))
                    result: Any = book.place(
                        Order(order_id, [OrderLine(sku, rng.randint(1, 3)) for sku in lines])
                    )
                    placed.append(order_id)
                elif kind < 0.75:
                    result = book.receive(rng.choice(skus), rng.randint(1, 4), f"R{seed}-{i}")
                elif kind < 0.9:
                    result = book.cancel(rng.choice(placed))
                else:
                    result = book.ship(rng.choice(placed))
            except BackorderError:
                continue  # nothing to cancel or ship: changes nothing
            told.extend(event_json(event) for event in result.events)
    return told
