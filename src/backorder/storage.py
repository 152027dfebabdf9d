"""Storage: where a book's state lives between operations.

`Repository` is the protocol the book uses; `InMemoryRepository` (the
default) keeps the state in this process's memory. A book built over a
repository that already holds state continues from it exactly: every order in
every state, queue order and positions, the arrival counter, the ledger and
the receipt references already counted.

The protocol is provisional: durable storage (SQLite) and the contract suite
for third-party adapters are the storage issue's work and will extend it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ._state import _State

__all__ = ["InMemoryRepository", "Repository"]


@runtime_checkable
class Repository(Protocol):
    """What a `BackorderBook` needs from storage.

    `state()` hands the book the state to work on; `commit()` is called once
    at the end of every operation that changed something, after the book has
    validated and applied it, and must store the change whole or raise (the
    book then restores its state to what it was before the operation).
    """

    def state(self) -> _State:
        """The state the book works on (the same object on every call)."""
        ...

    def commit(self) -> None:
        """Make the operation just applied to `state()` durable, or raise."""
        ...


class InMemoryRepository:
    """Keeps a book's state in memory, for as long as this object lives.

    Two books over the same `InMemoryRepository` share one state: what one
    book does the other sees, which is how a test reopens a book.
    Cost: O(1) per call; memory O(orders + ledger entries).
    """

    __slots__ = ("_state",)

    def __init__(self) -> None:
        """Make an empty repository. Cost: O(1)."""
        self._state = _State()

    def state(self) -> _State:
        """The state held (the same object on every call). Cost: O(1)."""
        return self._state

    def commit(self) -> None:
        """Nothing to do: the state already lives here. Cost: O(1)."""

    def __repr__(self) -> str:
        return (
            f"<InMemoryRepository {len(self._state.orders)} orders, {len(self._state.skus)} SKUs>"
        )
