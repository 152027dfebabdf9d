"""The unit of work between a book and its repository.

Every operation of a book runs as one unit of work: begin (catching up with
other writers), load what it names (a lazily loaded book), apply it in the
engine, commit; on a lost commit race it runs again. A `batch()` block is
one unit of work for many operations. This module is the skeleton of that,
written once; the book's operations only say which engine function to run.

Threads: every public method of a book runs holding the book's lock (a
`threading.RLock`, `UnitOfWork.lock`), so the operations of one book run one
at a time, whichever thread calls them. Events are handed to subscribers
only after the unit of work has ended (committed, the store closed), still
holding the lock re-entrantly: a subscriber that calls the book starts a
unit of work of its own, after the one that called it, on every repository
alike, and its events are handed out after the rest of the first's.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from .domain import Order
from .engine.changes import UndoLog
from .engine.core import Applied, Engine
from .engine.moves import settle
from .errors import ArgumentTypeError, EventHandlerError, PolicyMismatch, RepositoryClosed, shown
from .events import Event
from .policies import policy_from_identity
from .results import OutboxEvent
from .storage.loaded import CommitRace, RowStore
from .storage.memory import InMemoryRepository, LiveStore
from .storage.protocol import Repository
from .subscribers import Subscribers

__all__ = ["RETRIES", "UnitOfWork", "locked", "outbox_ids", "reads", "writes"]

#: How many times an operation is run again after losing a commit race.
RETRIES = 5

_R = TypeVar("_R")
_P = ParamSpec("_P")


class _Host(Protocol):
    """What the decorators need of the object whose methods they wrap (the book)."""

    @property
    def _work(self) -> UnitOfWork: ...


_B = TypeVar("_B", bound=_Host)

# The argument of each operation that names a scheduled receipt.
_REFERENCE_ARGS = {
    "receive": "against",
    "expect": "reference",
    "update_expected": "reference",
    "cancel_expected": "reference",
}


class UnitOfWork:
    """A book's side of its repository: the store, the open unit of work,
    the batch being gathered, and the engine kept on the store's state."""

    __slots__ = (
        "batch_logs",
        "batched",
        "closed",
        "delivering",
        "depth",
        "engine",
        "fast",
        "keep_logs",
        "lock",
        "outgoing",
        "saves",
        "store",
        "subscribers",
    )

    def __init__(
        self, repository: Repository | InMemoryRepository, engine: Engine, subscribers: Subscribers
    ) -> None:
        #: held by every public method of the book (re-entrant: a subscriber,
        #: a batch block and the book's own reads call back in). Two books over
        #: one `InMemoryRepository` share its lock, as they share its state.
        self.lock: threading.RLock = (
            repository.lock if isinstance(repository, InMemoryRepository) else threading.RLock()
        )
        self.store: LiveStore | RowStore = (
            LiveStore(repository)
            if isinstance(repository, InMemoryRepository)
            else RowStore(repository)
        )
        self.subscribers = subscribers
        # (events, result) of finished operations not yet handed to subscribers
        self.outgoing: list[tuple[tuple[Event, ...], object]] = []
        self.delivering = False
        self.engine = engine
        engine.state = self.store.state
        self.closed = False
        # the in-memory fast path: a live store, and open (no unit of work to run)
        self.fast = self.store.live
        self.saves = not isinstance(self.store, LiveStore) or self.store.keep
        self.depth = 0  # > 0 while a unit of work is open
        # (events, result) of each operation of the open batch, and their undo logs
        self.batched: list[tuple[tuple[Event, ...], object]] | None = None
        self.batch_logs: list[UndoLog] = []
        self.keep_logs = False

    def _sync(self) -> None:
        engine = self.engine
        state = engine.state = self.store.state
        stored = state.policy_id
        if stored is None:
            # a store that records no policy yet (a new one, loaded again
            # after an abandoned first batch): it is told at the next write
            state.policy_id, state.policy_saved = engine.identity, False
        elif stored != engine.identity:
            # another book (another process) switched the policy: follow it
            # when it is a built-in one, else refuse to work under the old one
            adopted = policy_from_identity(stored)
            if adopted is None:
                raise PolicyMismatch(stored, engine.identity)
            engine.set_policy(adopted)

    def follow(self) -> None:
        """(In-memory fast path) Follow the policy another book over the same
        `InMemoryRepository` switched to (they share one state), as a row
        store's book does when it catches up; refuse to work under the old
        one when the new one is not a built-in (`PolicyMismatch`)."""
        engine = self.engine
        state = engine.state
        if state.policy_id == engine.identity:
            state.policy_id = engine.identity  # (the same string: `is` next time)
        else:
            self._sync()

    def check_open(self) -> None:
        """Raise RepositoryClosed when the book is closed."""
        if self.closed:
            raise RepositoryClosed("the book is closed; open it again to go on")

    def load_everything(self) -> None:
        """A whole-book read: a lazily loaded book loads everything (and stays so)."""
        if self.store.lazy:
            self.store.everything()
            self._sync()

    def catch_up(self) -> None:
        """Before a read: see what other writers committed (row repositories)."""
        self.check_open()
        if not self.depth:
            self.store.refresh()
            self._sync()

    def run(self, call: Callable[[], _R], prefetch: Callable[[], None]) -> _R:
        """Run one operation as one unit of work (or inside the open one)."""
        self.check_open()

        def prepared() -> _R:
            prefetch()  # (loads, and over a LockingRepository locks, what it names)
            self.store.ready()  # (locks the whole book if it named nothing)
            if self.store.scoped:  # (it caught up once locked: follow the policy stored)
                self._sync()
            return call()

        if self.depth:
            return prepared()
        store = self.store
        attempt = 0
        while True:
            attempt += 1
            store.begin()
            self._sync()
            self.depth = 1
            try:
                return prepared()
            except CommitRace:
                if attempt >= RETRIES:
                    raise
            finally:
                self.depth = 0
                store.end()

    def finish(self, outcome: Applied[_R]) -> _R:
        """End an operation: commit what the engine applied (or roll it back
        and raise), build the result from the committed state, and queue the
        events for the subscribers (`deliver` hands them out once the unit of
        work has ended; at the end of the batch, inside one)."""
        log = outcome.log
        engine = self.engine
        try:
            if engine.preempts:  # a preempting policy: rebalance what it touched
                settle(engine, log)
            for sku, before in log.eta_before.items():  # (`changed`'s first test, inlined:
                if before is not None or sku.expected or sku.lead_time is not None:  # dates)
                    engine.etas.changed(engine.state, log)
                    break
            if self.saves:  # (an in-memory store without an outbox keeps nothing)
                self.store.save(log, self.batched is not None)
        except BaseException:
            log.rollback()
            raise
        events = tuple(log.events)
        result: _R = outcome.make(events)
        if self.batched is not None:
            # (kept only as far as needed, so a long batch holds the book, not
            # its history: events while someone listens, undo logs when an
            # atomic block over a live store may have to be undone)
            if events and self.subscribers.handlers:
                self.batched.append((events, result))
            if self.keep_logs:
                self.batch_logs.append(log)
        elif events and self.subscribers.handlers:
            self.outgoing.append((events, result))
        return result

    def deliver(self) -> None:
        """Hand the queued events to the subscribers, oldest operation first.

        Called with the lock held, after the unit of work has ended. A
        subscriber that calls the book queues that call's events behind the
        rest (they are handed out by this same loop, not nested in it). Every
        queued operation's events reach every handler; then the first
        `EventHandlerError` is raised."""
        if self.delivering:
            return  # a subscriber's own call: the loop below hands its events out
        self.delivering = True
        failed: EventHandlerError | None = None
        outgoing = self.outgoing
        try:
            while outgoing:
                events, result = outgoing.pop(0)
                try:
                    self.subscribers.publish(events, result)
                except EventHandlerError as exc:
                    if failed is None:
                        failed = exc
        finally:
            self.delivering = False
        if failed is not None:
            raise failed

    @contextmanager
    def batch(self, atomic: bool) -> Iterator[None]:
        """Many operations in one unit of work (see `BackorderBook.batch`)."""
        self.check_open()
        if self.batched is not None:
            yield
            return
        store = self.store
        store.begin()
        self._sync()
        self.depth = 1
        self.batched = []
        self.batch_logs = []
        # a row store abandons a batch by loading its copy again, so only a
        # live (in-memory) store needs the undo logs
        self.keep_logs = atomic and store.live
        abandoned = False
        try:
            yield
        except BaseException:
            if atomic:
                abandoned = True
                logs = self.batch_logs
                for log in reversed(logs):
                    log.rollback(ledger=False)
                if logs:
                    logs[0].state.journal.drop_since(logs[0].mark)
                store.abandon_batch()  # (a row store loads its copy again)
            raise
        finally:
            self.depth = 0
            done, self.batched, self.batch_logs = self.batched, None, []
            if not abandoned:
                store.finish_batch()
            self._sync()
            if not abandoned and self.subscribers.handlers:
                self.outgoing.extend(item for item in done if item[0])


def _prefetcher(
    method: Callable[..., Any],
) -> Callable[[_Host, tuple[Any, ...], dict[str, Any]], None]:
    # What an operation touches, from its arguments, for a lazily loaded book:
    # the SKUs named, every SKU of the orders named, the SKU of a scheduled
    # receipt named, and whether a receipt's reference was counted already.
    # Arguments that do not bind are left to the operation.
    names = list(inspect.signature(method).parameters)[1:]  # after self
    reference = _REFERENCE_ARGS.get(method.__name__)
    receipt = method.__name__ == "receive"  # counts its reference (idempotency)

    def prefetch(book: _Host, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        store = book._work.store
        if not (store.lazy or store.scoped):
            return
        bound = dict(zip(names, args, strict=False))  # a bad call raises in the call
        bound.update(kwargs)
        skus: list[object] = [bound.get("sku")]
        orders: list[object] = [bound.get("order_id")]
        order = bound.get("order")
        if isinstance(order, Order):
            orders.append(order.id)
            skus.extend(line.sku for line in order.lines)
        refs = [bound.get(reference)] if reference else []
        counted = bound.get("reference") if receipt else None  # a receipt's own reference
        store.ensure(skus, orders, refs, [(skus[0], counted)] if counted is not None else ())

    return prefetch


def writes(
    method: Callable[Concatenate[_B, _P], _R],
) -> Callable[Concatenate[_B, _P], _R]:
    """Mark a book method that may change the book: one unit of work."""
    prefetch = _prefetcher(method)

    @functools.wraps(method)
    def run(self: _B, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        work = self._work
        lock = work.lock
        lock.acquire()  # (cheaper than `with` on the hot path)
        try:
            if work.fast:
                engine = work.engine
                if engine.state.policy_id is not engine.identity:
                    work.follow()  # (another book over the same state switched policy)
                result = method(self, *args, **kwargs)
            else:
                result = work.run(
                    functools.partial(method, self, *args, **kwargs),
                    functools.partial(prefetch, self, args, kwargs),
                )
            if work.outgoing and not work.depth:
                work.deliver()
            return result
        finally:
            lock.release()

    return run


def reads(
    method: Callable[Concatenate[_B, _P], _R],
) -> Callable[Concatenate[_B, _P], _R]:
    """Mark a book method that reads: with a row repository, first catch up
    with other writers (and, lazily loaded, load what the read names)."""
    prefetch = _prefetcher(method)

    @functools.wraps(method)
    def run(self: _B, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        work = self._work
        lock = work.lock
        lock.acquire()  # (cheaper than `with` on the hot path)
        try:
            if not work.fast:
                work.catch_up()
                prefetch(self, args, kwargs)
            elif work.engine.state.policy_id is not work.engine.identity:
                work.follow()
            return method(self, *args, **kwargs)
        finally:
            lock.release()

    return run


def locked(
    method: Callable[Concatenate[_B, _P], _R],
) -> Callable[Concatenate[_B, _P], _R]:
    """Mark a book method that only needs the book to itself while it runs
    (it calls the book's reads, or the outbox): hold the book's lock."""

    @functools.wraps(method)
    def run(self: _B, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._work.lock:
            return method(self, *args, **kwargs)

    return run


def outbox_ids(events: Iterable[OutboxEvent | int] | OutboxEvent | int) -> list[int]:
    """The event ids `mark_published` was given (one, or an iterable of
    `OutboxEvent` values or ids). Raises ArgumentTypeError for anything else."""
    if isinstance(events, OutboxEvent) or (
        isinstance(events, int) and not isinstance(events, bool)
    ):
        events = [events]
    if isinstance(events, (str, bytes)) or not isinstance(events, Iterable):
        raise ArgumentTypeError(
            f"mark_published takes an iterable of OutboxEvent values or ids, got "
            f"{type(events).__name__} {shown(events)}"
        )
    ids: list[int] = []
    for item in events:
        if isinstance(item, OutboxEvent):
            ids.append(item.id)
        elif isinstance(item, int) and not isinstance(item, bool):
            if 0 < item < 2**63:  # any other id is in no outbox (and fits no column)
                ids.append(int.__int__(item))
        else:
            raise ArgumentTypeError(
                f"mark_published takes OutboxEvent values or ids, got "
                f"{type(item).__name__} {shown(item)}"
            )
    return ids
