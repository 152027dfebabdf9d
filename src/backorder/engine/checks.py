"""The engine's self-check: every internal invariant, for tests and stress runs."""

from __future__ import annotations

from ..policies import AllocationPolicy
from .core import line_status
from .state import SEQ_BITS, LineState, State, order_open, unpack

__all__ = ["check"]


def check(state: State, policy: AllocationPolicy | None) -> None:
    """Verify every internal invariant; raise AssertionError naming the first broken.

    For tests and stress runs, and for a whole load (with `policy` None:
    the structure only, not work conservation). Cost: O(orders + lines +
    ledger entries).
    """
    # (each line's fields read once, `unpack` and `backordered` written out:
    # a whole load runs this over every line; the same checks, in the same order)
    seen_keys: dict[str, set[int]] = {}
    skus = state.skus
    top, low = state.seq, (1 << SEQ_BITS) - 1
    for order_id, record in state.orders.items():
        order = record.order
        assert order.id == order_id, order_id
        assert order.placed_at is not None, order_id
        assert len(record.lines) == len(order.lines), order_id
        # an order of one line is its line (no `OrderRecord`, no tuple)
        assert (type(record) is LineState) == (len(order.lines) == 1), order_id
        rank = record.rank
        for ol, line in zip(order.lines, record.lines, strict=True):
            name, key, ordered = line.sku, line.key, line.ordered
            allocated, shipped, cancelled = line.allocated, line.shipped, line.cancelled
            assert name == ol.sku, (order_id, ol)
            assert ordered == ol.quantity, (order_id, ol)
            assert line.order is order, order_id
            assert key >> SEQ_BITS == rank, order_id
            assert 0 < key & low <= top, order_id
            assert allocated >= 0, (order_id, name, "allocated")
            assert shipped >= 0, (order_id, name, "shipped")
            assert cancelled >= 0, (order_id, name, "cancelled")
            assert ordered - allocated - shipped - cancelled >= 0, (order_id, name)
            # invariant 10: 0 <= firm <= allocated (and returned <= shipped)
            assert 0 <= line.firm <= allocated, (order_id, name, "firm")
            assert 0 <= line.returned <= shipped, (order_id, name, "returned")
            sku_of = skus.get(name)
            if sku_of is None:
                continue  # (lazily loaded) a line on a SKU not loaded
            assert sku_of.lines.get(key) is line, (order_id, name)
            keys = seen_keys.get(name)
            if keys is None:
                keys = seen_keys[name] = set()
            assert key not in keys, ("two lines share a key", order_id, name)
            keys.add(key)
    for name, sku in state.skus.items():
        assert sku.sku == name
        assert set(sku.lines) == seen_keys.get(name, set()), name
        assert 0 <= sku.allocated <= sku.on_hand, (name, sku.allocated, sku.on_hand)
        lines = sku.lines.values()
        # one pass over the SKU's lines: units allocated and backordered, the
        # keys of the lines short and of those with units allocated
        allocated_units = backordered_units = 0
        short_keys: list[int] = []
        allocated_keys: set[int] = set()
        for key, ln in sku.lines.items():
            allocated = ln.allocated
            short = ln.ordered - allocated - ln.shipped - ln.cancelled
            allocated_units += allocated
            backordered_units += short
            if short > 0:
                short_keys.append(key)
            if allocated > 0:
                allocated_keys.add(key)
        held_units = sum(hold.quantity for hold in sku.holds.values())
        assert sku.allocated == allocated_units + held_units, name
        assert sku.backordered == backordered_units, name
        for hold_id, hold in sku.holds.items():
            assert state.holds.get(hold_id) is hold, hold_id
            assert hold.sku == name, hold_id
            assert hold.quantity > 0, hold_id
        seqs = [hold.seq for hold in sku.holds.values()]
        assert seqs == sorted(seqs), (name, "holds oldest first")
        short_keys.sort()
        assert list(sku.queue) == short_keys
        assert sku.allocated_keys == allocated_keys, name
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
        # (a closed order's deadline went when it closed)
        assert order_open(record), order_id
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
        slots = [line.slot for line in sku.lines.values()]
        assert len(set(slots)) == len(slots), name
        assert all(0 < slot <= sku.slots for slot in slots), name
    assert sum(len(sku.expected) for sku in state.skus.values()) == len(state.expected)
    state.ledger.verify()
