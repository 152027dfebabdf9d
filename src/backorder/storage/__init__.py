"""Storage: where a book's state lives between operations and processes.

Two kinds of repository:

* `InMemoryRepository` (the default) holds the book's live state in this
  process. Nothing is copied or encoded, so it costs nothing per operation;
  it is gone when the process ends.
* A **row repository** stores the book as rows of a few plain tables and
  implements the `Repository` protocol (`storage.protocol`).
  `SQLiteRepository` is one; `backorder.testing.DictRepository` is the
  smallest possible one, to copy when writing an adapter of your own, and
  `backorder.testing.contract` holds the suite that proves an adapter.

A book over a row repository keeps a copy of what it loaded in memory. A
lazily loaded one (`LazyRepository` with `lazy` true, as `SQLiteRepository`
is by default) opens with no SKU and loads the SKUs each operation names;
whole-book reads load everything. One that is also an
`OrderLoadingRepository` (`SQLiteRepository`) loads a SKU's open lines only,
and a closed order by id when it is asked for. Before each unit of work the copy catches
up with what other writers committed (`load_changes`, or a whole re-load for
a repository without it).

Modules: `rows` (row types, `Changes`, `merge`), `protocol` (the
protocols), `mapping` (state to rows and back), `loaded` (the book's copy),
`memory` (in-memory), `sql` (the SQL every SQL adapter shares), `sqlite`.

Every built-in repository also implements `ClaimingRepository` (outbox
leases for several senders).
"""

from __future__ import annotations

from .memory import InMemoryRepository
from .protocol import (
    ClaimingRepository,
    IncrementalRepository,
    LazyRepository,
    LockingRepository,
    OrderLoadingRepository,
    Repository,
    StreamingRepository,
)
from .rows import (
    COUNTERS,
    Changes,
    DeadlineRow,
    ExpectedRow,
    Header,
    HoldRow,
    LedgerRow,
    LineRow,
    Merged,
    OrderRow,
    ReceiptRow,
    ReturnRow,
    SkuRow,
    Snapshot,
    merge,
)
from .sqlite import SQLiteRepository

__all__ = [
    "COUNTERS",
    "Changes",
    "ClaimingRepository",
    "DeadlineRow",
    "ExpectedRow",
    "Header",
    "HoldRow",
    "InMemoryRepository",
    "IncrementalRepository",
    "LazyRepository",
    "LedgerRow",
    "LineRow",
    "LockingRepository",
    "Merged",
    "OrderLoadingRepository",
    "OrderRow",
    "ReceiptRow",
    "Repository",
    "ReturnRow",
    "SQLiteRepository",
    "SkuRow",
    "Snapshot",
    "StreamingRepository",
    "merge",
]
