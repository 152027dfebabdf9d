"""A Fenwick (binary indexed) tree: prefix sums over positions 1..size."""

from __future__ import annotations


class Fenwick:
    """Point add, prefix sum and search in O(log n); grows by doubling."""

    __slots__ = ("size", "total", "tree")

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.tree = [0] * (size + 1)
        self.total = 0

    def _grow(self, index: int) -> None:
        old = self.size
        new = max(2 * index, 2 * old)  # room ahead: a sparse tree regrows rarely
        values = self.tree[:]
        for i in range(old, 0, -1):  # undo the sums: back to point values
            parent = i + (i & -i)
            if parent <= old:
                values[parent] -= values[i]
        tree = values + [0] * (new - old)
        for i in range(1, new + 1):
            parent = i + (i & -i)
            if parent <= new:
                tree[parent] += tree[i]
        self.size, self.tree = new, tree

    def add(self, index: int, delta: int) -> None:
        """Add `delta` at `index` (1-based)."""
        if index > self.size:
            self._grow(index)
        self.total += delta
        tree, size = self.tree, self.size
        while index <= size:
            tree[index] += delta
            index += index & -index

    def prefix(self, index: int) -> int:
        """The sum over positions 1..index."""
        index = min(index, self.size)
        tree = self.tree
        total = 0
        while index > 0:
            total += tree[index]
            index -= index & -index
        return total

    def search(self, target: int) -> int:
        """The smallest index whose prefix sum is >= `target` (values are >= 0).

        Returns size + 1 when the total is below `target`.
        """
        tree, size = self.tree, self.size
        position = 0
        step = 1 << size.bit_length()
        while step:
            nxt = position + step
            if nxt <= size and tree[nxt] < target:
                position = nxt
                target -= tree[nxt]
            step >>= 1
        return position + 1
