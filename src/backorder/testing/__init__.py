"""Tools to prove your own storage adapter (and, later, your own policy).

* `DictRepository`: the smallest complete row repository, in plain dicts.
  Read it before writing an adapter of your own: it is the whole protocol.
* `snapshot(book)`: everything observable about a book as plain values; two
  snapshots are equal exactly when the books are in the same state.
* `backorder.testing.contract.RepositoryContract`: the pytest contract suite
  an adapter must pass (needs `pytest` and `hypothesis`: the `test` extra).
* `check_policy(policy, tiers=...)` (from `backorder.testing.policy`, needs
  `hypothesis`): random operation sequences against a custom policy, failing
  with the shortest sequence that breaks an invariant.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ..book import BackorderBook
from ..errors import ConcurrencyConflict, RepositoryClosed
from ..storage import COUNTERS, Changes, Snapshot, merge

__all__ = ["DictRepository", "PolicyCheckFailed", "check_policy", "snapshot"]


def __getattr__(name: str) -> Any:
    # check_policy needs hypothesis: imported only when asked for
    if name in ("check_policy", "PolicyCheckFailed"):
        from . import policy

        return getattr(policy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Rows:
    # The stored rows, shared by every handle on one store.
    def __init__(self) -> None:
        self.tables: dict[str, dict[Any, Any]] = {
            name: {}
            for name in (
                "skus",
                "orders",
                "lines",
                "receipts",
                "holds",
                "expected",
                "deadlines",
                "returns",
            )
        }
        self.expired_holds: dict[str, None] = {}
        self.ledger: list[Any] = []
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.outbox: dict[int, str] = {}
        self.leases: dict[int, int] = {}  # event id -> leased until (microseconds)
        self.next_event = 0
        self.version = 0
        self.policy: str | None = None
        # Handles on one store may be used by books in several threads: each
        # commit, claim and publish is one step under this lock.
        self.lock = threading.Lock()


class DictRepository:
    """A row `Repository` in plain dicts: a reference adapter, and a store for tests.

    `DictRepository()` is a new, empty store; `reopen()` gives another handle
    on the same rows, as opening the same database file again. Several books
    over one store behave like several processes over one database: each
    re-loads when another committed. `begin()` does not lock; `commit()`
    compares versions instead and raises `ConcurrencyConflict` when another
    writer committed since `begin()` (the book then re-loads and runs the
    operation again).

    Cost: `load` O(rows); `write` O(1) (staged); `commit` O(rows staged);
    the rest O(1) or O(returned).
    """

    def __init__(self) -> None:
        """An empty store. Cost: O(1)."""
        self.rows = _Rows()
        self.closed = False
        self._started: int | None = None
        self._staged: list[Changes] = []

    def reopen(self) -> DictRepository:
        """A new handle on the same rows (the old one may be closed). Cost: O(1)."""
        handle = DictRepository()
        handle.rows = self.rows
        return handle

    def _open(self) -> _Rows:
        if self.closed:
            raise RepositoryClosed("this DictRepository handle is closed")
        return self.rows

    def load(self) -> Snapshot:
        """Every row (copies of the lists). Cost: O(rows)."""
        rows = self._open()
        tables = rows.tables
        return Snapshot(
            version=rows.version,
            counters=dict(rows.counters),
            skus=list(tables["skus"].values()),
            orders=list(tables["orders"].values()),
            lines=list(tables["lines"].values()),
            receipts=list(tables["receipts"].values()),
            holds=list(tables["holds"].values()),
            expired_holds=list(rows.expired_holds),
            expected=list(tables["expected"].values()),
            deadlines=list(tables["deadlines"].values()),
            ledger=list(rows.ledger),
            policy=rows.policy,
            returns=list(tables["returns"].values()),
        )

    def version(self) -> int:
        """The commit counter. Cost: O(1)."""
        return self._open().version

    def begin(self) -> int:
        """Start staging; remember the version to compare at commit. Cost: O(1)."""
        self._started = self._open().version
        self._staged = []
        return self._started

    def write(self, changes: Changes) -> None:
        """Stage `changes` (applied at commit). Cost: O(1)."""
        self._open()
        if self._started is None:
            raise ConcurrencyConflict("write() outside a unit of work: call begin() first")
        self._staged.append(changes)

    def commit(self) -> int:
        """Apply what was staged, unless another writer committed since `begin()`.

        Raises:
            ConcurrencyConflict: the version moved since `begin()`.

        Cost: O(rows staged).
        """
        rows = self._open()
        with rows.lock:
            return self._commit(rows)

    def _commit(self, rows: _Rows) -> int:
        started, staged = self._started, self._staged
        self._started, self._staged = None, []
        if started != rows.version:
            raise ConcurrencyConflict(
                f"another writer committed version {rows.version} since this unit "
                f"of work began at {started}"
            )
        tables: dict[str, dict[Any, Any]] = rows.tables
        merged = merge(staged)  # the last write of a key wins; None: it went away
        tables["skus"].update(merged.skus)
        tables["orders"].update(merged.orders)
        tables["lines"].update(merged.lines)
        for receipt in merged.receipts:
            tables["receipts"][receipt.sku, receipt.reference] = receipt
        for counted in merged.returns:
            tables["returns"][counted.order_id, counted.sku, counted.reference] = counted
        for name, keyed in (
            ("holds", merged.holds),
            ("expected", merged.expected),
            ("deadlines", merged.deadlines),
        ):
            for key, row in keyed.items():
                if row is None:
                    tables[name].pop(key, None)
                else:
                    tables[name][key] = row
        for hold_id, still in merged.expired_holds.items():
            if still:
                rows.expired_holds[hold_id] = None
            else:
                rows.expired_holds.pop(hold_id, None)
        rows.ledger.extend(merged.ledger)
        for text in merged.events:
            rows.next_event += 1
            rows.outbox[rows.next_event] = text
        rows.counters.update(merged.counters)
        if merged.policy is not None:
            rows.policy = merged.policy
        rows.version += 1
        return rows.version

    def rollback(self) -> None:
        """Drop what was staged. Cost: O(1)."""
        self._started, self._staged = None, []

    def pending_events(self, limit: int | None = None) -> list[tuple[int, str]]:
        """The outbox, oldest first. Cost: O(returned)."""
        items = list(self._open().outbox.items())
        return items if limit is None else items[:limit]

    def claim_events(self, limit: int, lease_us: int, now_us: int) -> list[tuple[int, str]]:
        """Lease the oldest events no running lease holds, until `now_us +
        lease_us` (see `backorder.storage.ClaimingRepository`). Cost:
        O(returned + skipped as leased)."""
        rows = self._open()
        claimed: list[tuple[int, str]] = []
        with rows.lock:
            for event_id, text in rows.outbox.items():
                if len(claimed) >= limit:
                    break
                if rows.leases.get(event_id, now_us) <= now_us:
                    rows.leases[event_id] = now_us + lease_us
                    claimed.append((event_id, text))
        return claimed

    def mark_published(self, ids: Sequence[int]) -> int:
        """Remove events from the outbox (and their leases). Cost: O(ids)."""
        rows = self._open()
        with rows.lock:
            count = 0
            for event_id in ids:
                count += rows.outbox.pop(event_id, None) is not None
                rows.leases.pop(event_id, None)
            return count

    def close(self) -> None:
        """Refuse every later call on this handle (the rows stay). Cost: O(1)."""
        self.closed = True

    def __repr__(self) -> str:
        rows = self.rows
        return (
            f"<DictRepository {len(rows.tables['orders'])} orders, "
            f"version {rows.version}, {len(rows.outbox)} events pending>"
        )


def snapshot(book: BackorderBook) -> dict[str, Any]:
    """Everything observable about a book, and its private counters, as plain values.

    Two snapshots are equal exactly when nothing differs: every order's
    status, every SKU's stock, queue and positions, the ledger, the arrival
    counters, receipt and return references counted, holds, scheduled receipts, lead
    times, caps and fill-by deadlines.

    A lazily loaded book loads everything (and stays loaded).

    Cost: O(orders + lines + ledger entries).
    """
    skus = book.skus()  # (a lazily loaded book loads everything)
    return {
        "orders": [book.status(order_id) for order_id in book.order_ids()],
        "stock": [book.stock(sku) for sku in skus],
        "waiting": [book.waiting(sku) for sku in skus],
        "positions": {
            (line.order_id, line.sku): book.position(line.order_id, line.sku)
            for sku in skus
            for line in book.waiting(sku)
        },
        "ledger": list(book.ledger),
        "ledger_len": len(book.ledger),
        **book.inspect().internals(),
    }
