"""The floor: the least work pure Python can do for the same stream of operations.

One `collections.deque` per SKU of `[arrival, short]` lists, plain ints, no
validation, no events, no ledger, a single tier, lazy deletion (a cancelled
entry stays in the deque with `short = 0` and is dropped when it reaches the
head). Positions are exact and cost O(log n): a Fenwick (binary indexed) tree
over arrival numbers holds 1 for every waiting line, so a line's position is
the prefix sum up to its arrival number. That is the cheapest exact method
found in pure Python: a `bisect` over a sorted list of live arrival numbers is
O(log n) to query but O(n) to delete from; counting with a deque scan is O(n).

It is the physical limit the library is measured against, not a usable book.
"""

from __future__ import annotations

from collections import deque


class Fenwick:
    """Prefix sums over positions 1..size, O(log n) update and query."""

    __slots__ = ("size", "tree")

    def __init__(self, size: int) -> None:
        self.size = size
        self.tree = [0] * (size + 1)

    def grow(self, size: int) -> None:
        """Make room for positions up to `size` (doubling; O(n), so O(1) amortised)."""
        new_size = max(size, 2 * self.size)
        values = self.tree[:]
        for i in range(self.size, 0, -1):  # undo the sums: back to point values
            parent = i + (i & -i)
            if parent <= self.size:
                values[parent] -= values[i]
        tree = values + [0] * (new_size - self.size)
        for i in range(1, new_size + 1):  # and build the bigger tree in O(n)
            parent = i + (i & -i)
            if parent <= new_size:
                tree[parent] += tree[i]
        self.size, self.tree = new_size, tree

    def add(self, index: int, delta: int) -> None:
        if index > self.size:
            self.grow(index)
        tree, size = self.tree, self.size
        while index <= size:
            tree[index] += delta
            index += index & -index

    def prefix(self, index: int) -> int:
        tree = self.tree
        total = 0
        while index > 0:
            total += tree[index]
            index -= index & -index
        return total


class FloorBook:
    """Single-tier partial-fill (or strict) back orders at the least cost."""

    def __init__(self, capacity: int, strict: bool = False) -> None:
        self.strict = strict
        # a first guess at arrivals per SKU; each SKU's tree grows as needed
        self.capacity = capacity
        self.queues: dict[str, deque[list[int]]] = {}
        self.entries: dict[int, list[int]] = {}
        self.sku_of: dict[int, str] = {}
        self.available: dict[str, int] = {}
        self.trees: dict[str, Fenwick] = {}
        self.arrivals: dict[str, int] = {}
        self.seq = 0

    def place(self, sku: str, quantity: int) -> int:
        self.seq += 1
        seq = self.seq
        queue = self.queues.get(sku)
        if queue is None:
            queue = self.queues[sku] = deque()
            self.trees[sku] = Fenwick(min(self.capacity, 1024))
            self.available.setdefault(sku, 0)
            self.arrivals[sku] = 0
        # each SKU numbers its own arrivals, so its tree stays its own size
        local = self.arrivals[sku] + 1
        self.arrivals[sku] = local
        entry = [local, quantity]
        queue.append(entry)
        self.entries[seq] = entry
        self.sku_of[seq] = sku
        self.trees[sku].add(local, 1)
        if self.available[sku]:
            self.fill(sku)
        return seq

    def receive(self, sku: str, quantity: int) -> int:
        """Add stock and fill; return the number of lines completed."""
        self.available[sku] = self.available.get(sku, 0) + quantity
        return self.fill(sku)

    def fill(self, sku: str) -> int:
        queue = self.queues.get(sku)
        if not queue:
            return 0
        available = self.available[sku]
        tree = self.trees[sku]
        done = 0
        while queue and available:
            entry = queue[0]
            short = entry[1]
            if short == 0:  # cancelled: lazy deletion
                queue.popleft()
                continue
            if short <= available:
                available -= short
                entry[1] = 0
                queue.popleft()
                tree.add(entry[0], -1)
                done += 1
            elif self.strict:
                break
            else:
                entry[1] = short - available
                available = 0
        self.available[sku] = available
        return done

    def cancel(self, seq: int) -> None:
        entry = self.entries[seq]
        if entry[1]:
            entry[1] = 0
            sku = self.sku_of[seq]
            self.trees[sku].add(entry[0], -1)
            if self.strict and self.available[sku]:
                self.fill(sku)  # the blocked head may have been the one cancelled

    def position(self, seq: int) -> int | None:
        if not self.entries[seq][1]:
            return None
        return self.trees[self.sku_of[seq]].prefix(self.entries[seq][0])
