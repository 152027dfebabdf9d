"""The benchmark's floor computes the same positions and fills as the library.

(The naive peer is checked against the library in the stateful test.)
"""

from __future__ import annotations

import random

import pytest

from backorder import BackorderBook, Order, OrderLine, PartialFill, StrictFIFO
from benchmarks.floor import FloorBook


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_the_floor_agrees_with_the_library(strict: bool, seed: int) -> None:
    rng = random.Random(seed)
    book = BackorderBook(StrictFIFO() if strict else PartialFill())
    floor = FloorBook(8, strict=strict)
    seqs: dict[str, int] = {}
    skus = ["A", "B"]
    for step in range(600):
        roll = rng.random()
        if roll < 0.5 or not seqs:
            order_id, sku, qty = f"o{step}", rng.choice(skus), rng.randint(1, 5)
            book.place(Order(order_id, (OrderLine(sku, qty),)))
            seqs[order_id] = floor.place(sku, qty)
        elif roll < 0.7:
            sku, qty = rng.choice(skus), rng.randint(1, 12)
            book.receive(sku, qty)
            floor.receive(sku, qty)
        elif roll < 0.85:
            order_id = rng.choice(list(seqs))
            line = book.status(order_id).lines[0]
            if line.backordered:
                # the floor cancels only the waiting units (lazy deletion)
                book.cancel(order_id, line.sku, line.backordered)
                floor.cancel(seqs[order_id])
        for order_id in rng.sample(list(seqs), min(5, len(seqs))):
            sku = book.status(order_id).lines[0].sku
            assert floor.position(seqs[order_id]) == book.position(order_id, sku)
    for sku in skus:
        assert floor.available.get(sku, 0) == book.stock(sku).available


def test_the_floors_fenwick_tree_grows_without_losing_counts() -> None:
    from benchmarks.floor import Fenwick

    rng = random.Random(1)
    tree, values = Fenwick(2), [0] * 3001
    for i in range(1, 3001):
        values[i] = rng.randint(0, 3)
        tree.add(i, values[i])
        if i % 50 == 0:
            for k in range(1, i + 1, 7):
                assert tree.prefix(k) == sum(values[1 : k + 1])
    assert tree.size >= 3000
