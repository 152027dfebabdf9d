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


def recorded_ops(dsn: str, schema: str, seed: int, count: int, skus: list[str]) -> list[Any]:
    """`count` random operations on shared SKUs with think time between them.

    Returns, for every operation that succeeded, `(kind, arguments, events)`:
    what was called (plain values, to call again on another book) and the
    events it returned, as canonical JSON text. An operation that raised a
    `BackorderError` changed nothing and is not returned."""
    rng = random.Random(seed)
    done: list[Any] = []
    placed: list[str] = []
    with BackorderBook(None, PostgresRepository(dsn, schema=schema, timeout=60)) as book:
        for i in range(count):
            time.sleep(rng.random() * 0.004)
            draw = rng.random()
            args: list[Any]
            if draw < 0.45 or not placed:
                lines = [[sku, rng.randint(1, 3)] for sku in rng.sample(skus, rng.randint(1, 2))]
                kind, args = "place", [f"P{seed}-{i}", lines]
                placed.append(args[0])
            elif draw < 0.72:
                kind, args = "receive", [rng.choice(skus), rng.randint(1, 4), f"R{seed}-{i}"]
            elif draw < 0.8:
                kind, args = "adjust", [rng.choice(skus), rng.choice([-2, -1, 1, 2]), f"n{i}"]
            elif draw < 0.92:
                kind, args = "cancel", [rng.choice(placed)]
            else:
                kind, args = "ship", [rng.choice(placed)]
            try:
                result = call(book, kind, args)
            except BackorderError:
                continue  # nothing to cancel, ship or take away: changes nothing
            done.append((kind, args, [event_json(event) for event in result.events]))
    return done


def call(book: BackorderBook, kind: str, args: list[Any]) -> Any:
    """Run one operation `recorded_ops` recorded on `book`; its result."""
    if kind == "place":
        return book.place(Order(args[0], [OrderLine(sku, n) for sku, n in args[1]]))
    operation = getattr(book, kind)
    return operation(*args)


def place_until_killed(dsn: str, schema: str, seed: int, acknowledged: str) -> None:
    """Place two-line orders (and receive stock) as fast as possible until
    killed; after each operation returns, append its order id (or receipt
    reference) to the file `acknowledged`, flushed, so the test knows what
    the book acknowledged before the kill."""
    rng = random.Random(seed)
    with (
        BackorderBook(None, PostgresRepository(dsn, schema=schema, timeout=60)) as book,
        open(acknowledged, "a", encoding="utf-8") as out,
    ):
        for i in range(1_000_000):
            if i % 3 == 2:
                name = f"R{seed}-{i}"
                book.receive(rng.choice(["MUG", "CUP"]), rng.randint(1, 5), name)
            else:
                name = f"K{seed}-{i}"
                book.place(Order(name, [OrderLine("MUG", 2), OrderLine("CUP", 1)]))
            out.write(name + "\n")
            out.flush()
