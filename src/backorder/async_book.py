"""`AsyncBackorderBook`: the book for `async` code, never blocking the event loop.

Each book runs its calls in a worker thread of its own (one thread per book,
so calls run in the order they were awaited and the loop's default thread
pool is left to the application). The event loop only waits on a future:
an `fsync`, or another process holding the SQLite write lock, blocks that
worker thread, never the loop.

Cancellation: a call that has not started when its `await` is cancelled
never runs. One that has started runs to its end in the worker thread (an
operation is never left half done): it either committed or changed
nothing, and the caller sees `CancelledError` without the result. To learn
the outcome, repeat the call: `place` with the same order, `receive` with
the same reference (and `receive_return` with the same reference) are
retries that change nothing and return the current state (`replayed=True`);
or read it (`status`, `stock`, `pending_events`).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from .book import BackorderBook, Clock
from .domain import LineStatus, Order, OrderStatus, StockLevel
from .errors import ArgumentTypeError, RepositoryClosed
from .eta import Eta
from .events import Event
from .inspection import BookInspector
from .ledger import StockLedger
from .policies import AllocationPolicy
from .results import (
    AdjustResult,
    CancelResult,
    ExpectResult,
    ExpireResult,
    FirmResult,
    HoldResult,
    OrderEta,
    OutboxEvent,
    PlaceResult,
    RebalanceResult,
    ReceiveResult,
    ReturnResult,
    SettingResult,
    ShipResult,
    TierResult,
)
from .storage.memory import InMemoryRepository
from .storage.protocol import Repository

__all__ = ["AsyncBackorderBook"]

_R = TypeVar("_R")


def _worker() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="backorder")


class AsyncBackorderBook:
    """A `BackorderBook` whose every operation and read is a coroutine.

    Args:
        policy: as for `BackorderBook`.
        repository: as for `BackorderBook` (loaded here, in the caller's
            thread; prefer `AsyncBackorderBook.open` for a file).
        clock: as for `BackorderBook`.

    Raises:
        ArgumentTypeError: as `BackorderBook`.

    Every method awaits the `BackorderBook` method of the same name, run in
    the book's worker thread: same arguments, results, errors and costs
    (plus about the cost of a thread hand-off per call, see
    docs/performance.md). See the module text for what a cancelled `await`
    means. The sync book itself is `book.sync` (for code that runs in a
    thread already); both may be used at once, from any threads: the sync
    book's lock keeps their calls one at a time.

    >>> import asyncio
    >>> from backorder import AsyncBackorderBook, Order, OrderLine
    >>> async def main() -> int | None:
    ...     async with AsyncBackorderBook() as book:
    ...         await book.place(Order("A-1", [OrderLine("MUG", 1)]))
    ...         return await book.position("A-1", "MUG")
    >>> asyncio.run(main())
    1
    """

    __slots__ = ("_book", "_closed", "_executor")

    def __init__(
        self,
        policy: AllocationPolicy | None = None,
        repository: Repository | InMemoryRepository | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._book = BackorderBook(policy, repository, clock)
        self._executor = _worker()
        self._closed = False

    @classmethod
    def wrap(cls, book: BackorderBook) -> AsyncBackorderBook:
        """An async face on a book made already (it keeps working as before).

        Raises:
            ArgumentTypeError: `book` is not a `BackorderBook`.

        Cost: O(1).
        """
        if not isinstance(book, BackorderBook):
            raise ArgumentTypeError(f"book must be a BackorderBook, got {book!r}")
        made = cls.__new__(cls)
        made._book = book
        made._executor = _worker()
        made._closed = False
        return made

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        policy: AllocationPolicy | None = None,
        clock: Clock | None = None,
        *,
        timeout: float = 30.0,
    ) -> _Opening:
        """A durable book in the SQLite file at `path`, opened in the book's
        worker thread (as `BackorderBook.open`, which see).

        Await it (`book = await AsyncBackorderBook.open(path)`) or use it as
        an async context manager (`async with AsyncBackorderBook.open(path)
        as book:`), which closes the book at the end.

        Raises:
            BackorderError: what `BackorderBook.open` raises, when awaited.

        Cost: as `BackorderBook.open`.
        """
        return _Opening(functools.partial(BackorderBook.open, path, policy, clock, timeout=timeout))

    @property
    def sync(self) -> BackorderBook:
        """The `BackorderBook` underneath (its calls block). Cost: O(1)."""
        return self._book

    @property
    def policy(self) -> AllocationPolicy:
        """The book's allocation policy. Cost: O(1)."""
        return self._book.policy

    @property
    def repository(self) -> Repository | InMemoryRepository:
        """The book's repository. Cost: O(1)."""
        return self._book.repository

    async def _call(self, function: Callable[..., _R], *args: Any) -> _R:
        if self._closed:
            raise RepositoryClosed("the book is closed; open it again to go on")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def close(self) -> None:
        """Close the book (`BackorderBook.close`) once the calls awaited
        before have run, and stop its worker thread. Closing twice is harmless.

        Raises:
            InvalidArgument: inside a batch (see `batch`).

        Cost: O(1) after the calls before it.
        """
        if self._closed:
            return
        await self._call(self._book.close)
        self._closed = True
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncBackorderBook:
        """The book itself, closed when the `async with` block ends. Cost: O(1)."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the book (see `close`). Cost: O(1)."""
        await self.close()

    def subscribe(self, handler: Callable[[Event], object]) -> Callable[[], None]:
        """`BackorderBook.subscribe`: `handler(event)` for every event.

        The handler runs in the book's worker thread, not on the event loop:
        to reach the loop, hand over with `loop.call_soon_threadsafe`.

        Raises:
            ArgumentTypeError: `handler` is not callable.

        Cost: O(1).
        """
        return self._book.subscribe(handler)

    def inspect(self) -> BookInspector:
        """`BackorderBook.inspect` (its checks run in the caller's thread,
        holding the book). Cost: O(1)."""
        return self._book.inspect()

    async def run(self, function: Callable[[BackorderBook], _R]) -> _R:
        """Run `function(book)` with the sync book in the worker thread: for
        several calls that belong together, or code written for the sync book.

        Other calls on this book run before or after it, never in between
        (when `function` holds the book: in a `batch()` block, say).

        Raises:
            Exception: whatever `function` raises.

        Cost: that of `function`.
        """
        return await self._call(function, self._book)

    async def batch(self, function: Callable[[BackorderBook], _R], *, atomic: bool = False) -> _R:
        """Run `function(book)` inside `book.batch(atomic=atomic)` (see
        `BackorderBook.batch`): one commit for all it does, in the worker
        thread; no other call on this book runs in between.

        Raises:
            ArgumentTypeError: `atomic` is not a bool.
            Exception: whatever `function` raises (with `atomic`, nothing of
                it is kept).

        Cost: as `BackorderBook.batch`.
        """

        def in_batch(book: BackorderBook) -> _R:
            with book.batch(atomic=atomic):
                return function(book)

        return await self._call(in_batch, self._book)

    async def ledger(self) -> StockLedger:
        """Await `BackorderBook.ledger` (see there)."""
        return await self._call(lambda: self._book.ledger)

    async def count(self) -> int:
        """Await `len(book)`: the number of orders (see `BackorderBook.__len__`)."""
        return await self._call(self._book.__len__)

    async def contains(self, order_id: object) -> bool:
        """Await `order_id in book` (see `BackorderBook.__contains__`)."""
        return await self._call(self._book.__contains__, order_id)

    def __repr__(self) -> str:
        return f"<Async{self._book!r}>"

    async def pending_events(self, limit: int | None = None) -> tuple[OutboxEvent, ...]:
        """Await `BackorderBook.pending_events` (see there)."""
        return await self._call(self._book.pending_events, limit)

    async def claim_events(
        self, limit: int = 100, lease: timedelta = timedelta(seconds=60)
    ) -> tuple[OutboxEvent, ...]:
        """Await `BackorderBook.claim_events` (see there)."""
        return await self._call(self._book.claim_events, limit, lease)

    async def mark_published(self, events: Iterable[OutboxEvent | int] | OutboxEvent | int) -> int:
        """Await `BackorderBook.mark_published` (see there)."""
        return await self._call(self._book.mark_published, events)

    async def place(self, order: Order) -> PlaceResult:
        """Await `BackorderBook.place` (see there)."""
        return await self._call(self._book.place, order)

    async def can_place(self, order: Order) -> bool:
        """Await `BackorderBook.can_place` (see there)."""
        return await self._call(self._book.can_place, order)

    async def receive(
        self, sku: str, quantity: int, reference: str | None = None, against: str | None = None
    ) -> ReceiveResult:
        """Await `BackorderBook.receive` (see there)."""
        return await self._call(self._book.receive, sku, quantity, reference, against)

    async def adjust(self, sku: str, delta: int, reason: str) -> AdjustResult:
        """Await `BackorderBook.adjust` (see there)."""
        return await self._call(self._book.adjust, sku, delta, reason)

    async def cancel(
        self, order_id: str, sku: str | None = None, quantity: int | None = None
    ) -> CancelResult:
        """Await `BackorderBook.cancel` (see there)."""
        return await self._call(self._book.cancel, order_id, sku, quantity)

    async def ship(
        self, order_id: str, sku: str | None = None, quantity: int | None = None
    ) -> ShipResult:
        """Await `BackorderBook.ship` (see there)."""
        return await self._call(self._book.ship, order_id, sku, quantity)

    async def change_tier(self, order_id: str, tier: str) -> TierResult:
        """Await `BackorderBook.change_tier` (see there)."""
        return await self._call(self._book.change_tier, order_id, tier)

    async def expect(
        self, sku: str, quantity: int, arriving: datetime | date, reference: str
    ) -> ExpectResult:
        """Await `BackorderBook.expect` (see there)."""
        return await self._call(self._book.expect, sku, quantity, arriving, reference)

    async def update_expected(
        self, reference: str, quantity: int | None = None, arriving: datetime | date | None = None
    ) -> ExpectResult:
        """Await `BackorderBook.update_expected` (see there)."""
        return await self._call(self._book.update_expected, reference, quantity, arriving)

    async def cancel_expected(self, reference: str) -> ExpectResult:
        """Await `BackorderBook.cancel_expected` (see there)."""
        return await self._call(self._book.cancel_expected, reference)

    async def set_lead_time(self, sku: str, lead_time: timedelta | None) -> SettingResult:
        """Await `BackorderBook.set_lead_time` (see there)."""
        return await self._call(self._book.set_lead_time, sku, lead_time)

    async def set_backorder_limit(self, sku: str, units: int | None) -> SettingResult:
        """Await `BackorderBook.set_backorder_limit` (see there)."""
        return await self._call(self._book.set_backorder_limit, sku, units)

    async def firm(
        self, order_id: str, sku: str | None = None, quantity: int | None = None
    ) -> FirmResult:
        """Await `BackorderBook.firm` (see there)."""
        return await self._call(self._book.firm, order_id, sku, quantity)

    async def rebalance(self, sku: str | None = None) -> RebalanceResult:
        """Await `BackorderBook.rebalance` (see there)."""
        return await self._call(self._book.rebalance, sku)

    async def receive_return(
        self,
        order_id: str,
        sku: str,
        quantity: int,
        reference: str | None = None,
        restock: bool = True,
    ) -> ReturnResult:
        """Await `BackorderBook.receive_return` (see there)."""
        return await self._call(
            self._book.receive_return, order_id, sku, quantity, reference, restock
        )

    async def change_policy(self, policy: AllocationPolicy) -> SettingResult:
        """Await `BackorderBook.change_policy` (see there)."""
        return await self._call(self._book.change_policy, policy)

    async def expire(self, now: datetime | None = None) -> ExpireResult:
        """Await `BackorderBook.expire` (see there)."""
        return await self._call(self._book.expire, now)

    async def hold(
        self, sku: str, quantity: int, ttl: timedelta, hold_id: str | None = None
    ) -> HoldResult:
        """Await `BackorderBook.hold` (see there)."""
        return await self._call(self._book.hold, sku, quantity, ttl, hold_id)

    async def release_hold(self, hold_id: str) -> HoldResult:
        """Await `BackorderBook.release_hold` (see there)."""
        return await self._call(self._book.release_hold, hold_id)

    async def confirm_hold(self, hold_id: str, order: Order) -> PlaceResult:
        """Await `BackorderBook.confirm_hold` (see there)."""
        return await self._call(self._book.confirm_hold, hold_id, order)

    async def order_ids(self) -> Iterator[str]:
        """Await `BackorderBook.order_ids` (see there)."""
        return await self._call(self._book.order_ids)

    async def skus(self) -> tuple[str, ...]:
        """Await `BackorderBook.skus` (see there)."""
        return await self._call(self._book.skus)

    async def position(self, order_id: str, sku: str) -> int | None:
        """Await `BackorderBook.position` (see there)."""
        return await self._call(self._book.position, order_id, sku)

    async def line(self, order_id: str, sku: str) -> LineStatus:
        """Await `BackorderBook.line` (see there)."""
        return await self._call(self._book.line, order_id, sku)

    async def status(self, order_id: str) -> OrderStatus:
        """Await `BackorderBook.status` (see there)."""
        return await self._call(self._book.status, order_id)

    async def waiting(self, sku: str) -> tuple[LineStatus, ...]:
        """Await `BackorderBook.waiting` (see there)."""
        return await self._call(self._book.waiting, sku)

    async def stock(self, sku: str) -> StockLevel:
        """Await `BackorderBook.stock` (see there)."""
        return await self._call(self._book.stock, sku)

    async def eta(self, order_id: str, sku: str) -> Eta | None:
        """Await `BackorderBook.eta` (see there)."""
        return await self._call(self._book.eta, order_id, sku)

    async def eta_for_order(self, order_id: str) -> OrderEta:
        """Await `BackorderBook.eta_for_order` (see there)."""
        return await self._call(self._book.eta_for_order, order_id)

    async def promise(self, sku: str, quantity: int, tier: str = "standard") -> Eta | None:
        """Await `BackorderBook.promise` (see there)."""
        return await self._call(self._book.promise, sku, quantity, tier)

    async def expected(self, sku: str) -> tuple[ExpectResult, ...]:
        """Await `BackorderBook.expected` (see there)."""
        return await self._call(self._book.expected, sku)

    async def lead_time(self, sku: str) -> timedelta | None:
        """Await `BackorderBook.lead_time` (see there)."""
        return await self._call(self._book.lead_time, sku)

    async def backorder_limit(self, sku: str) -> int | None:
        """Await `BackorderBook.backorder_limit` (see there)."""
        return await self._call(self._book.backorder_limit, sku)

    async def backordered(self, sku: str) -> int:
        """Await `BackorderBook.backordered` (see there)."""
        return await self._call(self._book.backordered, sku)

    async def to_records(self) -> list[dict[str, Any]]:
        """Await `BackorderBook.to_records` (see there)."""
        return await self._call(self._book.to_records)

    async def waiting_records(self, sku: str | None = None) -> list[dict[str, Any]]:
        """Await `BackorderBook.waiting_records` (see there)."""
        return await self._call(self._book.waiting_records, sku)

    async def sku_records(self) -> list[dict[str, Any]]:
        """Await `BackorderBook.sku_records` (see there)."""
        return await self._call(self._book.sku_records)

    async def to_pandas(self) -> Any:
        """Await `BackorderBook.to_pandas` (see there)."""
        return await self._call(self._book.to_pandas)


class _Opening:
    """What `AsyncBackorderBook.open` returns: await it, or `async with` it."""

    __slots__ = ("_book", "_make")

    def __init__(self, make: Callable[[], BackorderBook]) -> None:
        self._make = make
        self._book: AsyncBackorderBook | None = None

    async def _open(self) -> AsyncBackorderBook:
        executor = _worker()
        loop = asyncio.get_running_loop()
        try:
            book = await loop.run_in_executor(executor, self._make)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        made = AsyncBackorderBook.__new__(AsyncBackorderBook)
        made._book = book
        made._executor = executor
        made._closed = False
        return made

    def __await__(self) -> Generator[Any, None, AsyncBackorderBook]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncBackorderBook:
        self._book = await self._open()
        return self._book

    async def __aexit__(self, *exc_info: object) -> None:
        if self._book is not None:
            await self._book.close()
