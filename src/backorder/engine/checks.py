"""The engine's self-check: every internal invariant, for tests and stress runs."""

from __future__ import annotations

from ..policies import AllocationPolicy
from .core import line_status
from .state import State, unpack

__all__ = ["check"]


def check(state: State, policy: AllocationPolicy | None) -> None:
    """Verify every internal invariant; raise AssertionError naming the first broken.

    For tests and stress runs, and for a whole load (with `policy` None:
    the structure only, not work conservation). Cost: O(orders + lines +
    ledger entries).
    """
    seen_keys: dict[str, set[int]] = {}
    for order_id, record in state.orders.items():
        assert record.order.id == order_id, order_id
        assert record.order.placed_at is not None, order_id
        assert len(record.lines) == len(record.order.lines), order_id
        for ol, line in zip(record.order.lines, record.lines, strict=True):
            assert line.sku == ol.sku, (order_id, ol)
            assert line.ordered == ol.quantity, (order_id, ol)
            assert line.order is record.order, order_id
            assert unpack(line.key)[0] == record.rank, order_id
            assert 0 < unpack(line.key)[1] <= state.seq, order_id
            for field in ("allocated", "shipped", "cancelled"):
                assert getattr(line, field) >= 0, (order_id, line.sku, field)
            assert line.backordered >= 0, (order_id, line.sku)
            # invariant 10: 0 <= firm <= allocated (and returned <= shipped)
            assert 0 <= line.firm <= line.allocated, (order_id, line.sku, "firm")
            assert 0 <= line.returned <= line.shipped, (order_id, line.sku, "returned")
            if line.sku not in state.skus:
                continue  # (lazily loaded) a line on a SKU not loaded
            assert state.skus[line.sku].lines.get(line.key) is line, (order_id, line.sku)
            keys = seen_keys.setdefault(line.sku, set())
            assert line.key not in keys, ("two lines share a key", order_id, line.sku)
            keys.add(line.key)
    for name, sku in state.skus.items():
        assert sku.sku == name
        assert set(sku.lines) == seen_keys.get(name, set()), name
        assert 0 <= sku.allocated <= sku.on_hand, (name, sku.allocated, sku.on_hand)
        lines = sku.lines.values()
        held_units = sum(hold.quantity for hold in sku.holds.values())
        assert sku.allocated == sum(line.allocated for line in lines) + held_units, name
        assert sku.backordered == sum(line.backordered for line in lines), name
        for hold_id, hold in sku.holds.items():
            assert state.holds.get(hold_id) is hold, hold_id
            assert hold.sku == name, hold_id
            assert hold.quantity > 0, hold_id
        assert list(sku.queue) == sorted(k for k, ln in sku.lines.items() if ln.backordered > 0)
        assert sku.allocated_keys == {k for k, ln in sku.lines.items() if ln.allocated > 0}, name
        assert sku.allocated_keys <= {-k for k in sku.allocated_heap}, name
        balance = state.ledger.balance(name)
        assert (balance.on_hand, balance.allocated) == (sku.on_hand, sku.allocated), name
        available = sku.on_hand - sku.allocated
        if policy is not None and available > 0 and sku.queue:
            head = sku.lines[sku.queue[0]]
            allot = policy.allot(line_status(head), available)
            assert allot == 0, ("not work-conserving", name, available, allot)
        movable = sku.movable
        if movable is None:
            assert not any(ln.firm for ln in lines), ("firm units but no movable index", name)
        else:
            units = {k: ln.allocated - ln.firm for k, ln in sku.lines.items()}
            assert movable.keys == {k for k, m in units.items() if m > 0}, name
            assert movable.keys <= {-k for k in movable.heap}, name
            assert movable.total == sum(units.values()), name
            for key, m in units.items():
                line = sku.lines[key]
                tree = movable.units.trees.get(key >> 64)
                point = 0 if tree is None else tree.prefix(line.slot) - tree.prefix(line.slot - 1)
                assert point == m, (name, line.order.id, "movable")
        if policy is not None and getattr(policy, "preempts", False) and sku.queue:
            # invariant 9: the first short line waits when offered the
            # available units plus the movable units of the lines after it
            head = sku.lines[sku.queue[0]]
            after = sum(ln.allocated - ln.firm for k, ln in sku.lines.items() if k > head.key)
            offer = available + after
            if offer > 0:
                allot = policy.allot(line_status(head), offer)
                assert allot == 0, ("not priority-consistent", name, offer, allot)
    assert sum(len(sku.holds) for sku in state.skus.values()) == len(state.holds)
    assert set(state.hold_expiry) == {(h.expires_at, h.hold_id) for h in state.holds.values()}
    for deadline, seq, order_id in state.deadlines:
        record = state.orders[order_id]
        assert record.order.deadline == deadline, order_id
        assert unpack(record.lines[0].key)[1] == seq, order_id
    for name, sku in state.skus.items():
        if sku.demand is not None:
            # the demand index holds exactly each waiting line's shortfall
            for key in sku.queue:
                line = sku.lines[key]
                rank = key >> 64
                tree = sku.demand.trees[rank]
                point = tree.prefix(line.slot) - tree.prefix(line.slot - 1)
                assert point == line.backordered, (name, line.order.id)
                assert sku.demand.slot_key[line.slot] == key, (name, line.order.id)
            total = sum(tree.total for tree in sku.demand.trees.values())
            assert total == sku.backordered, name
        for reference, expected in sku.expected.items():
            assert state.expected.get(reference) is expected, reference
            assert expected.sku == name, reference
            assert expected.quantity > 0, reference
        assert list(sku.schedule) == sorted(
            (e.arriving, e.seq, e.reference) for e in sku.expected.values()
        ), name
        slots = [sku.lines[k].slot for k in sku.lines]
        assert len(set(slots)) == len(slots), name
        assert all(0 < slot <= sku.slots for slot in slots), name
    assert sum(len(sku.expected) for sku in state.skus.values()) == len(state.expected)
    state.ledger.verify()
