"""The backorder book: places orders, takes in stock, serves each line in order.

`BackorderBook` is the façade over the engine (`backorder.engine`: the state
and every change to it) and storage (`backorder.storage`): each operation
checks its arguments in the engine, runs as one unit of work
(`backorder.unit_of_work`), and hands out its events. Its reads live in
`backorder.reads` (the base class).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from .book_controls import BookControls
from .domain import Order, check_aware, check_quantity
from .engine import controls, orders, stock
from .engine.checks import check
from .engine.core import Applied, Engine
from .engine.state import State
from .errors import (
    ArgumentTypeError,
    BackorderLimitExceeded,
    InvalidArgument,
    PolicyMismatch,
    shown,
)
from .inspection import BookInspector
from .policies import AllocationPolicy, PartialFill, policy_from_identity, policy_identity
from .results import (
    AdjustResult,
    CancelResult,
    ExpireResult,
    OutboxEvent,
    PlaceResult,
    ReceiveResult,
    ShipResult,
    TierResult,
)
from .storage.memory import InMemoryRepository
from .storage.protocol import Repository
from .subscribers import Handler, Subscribers
from .unit_of_work import UnitOfWork, locked, outbox_ids, reads, writes

__all__ = ["BackorderBook", "Clock"]

#: A clock: a callable returning the current time as an aware `datetime`.
Clock = Callable[[], datetime]

_REPOSITORY_METHODS = (
    "load",
    "version",
    "begin",
    "write",
    "commit",
    "rollback",
    "pending_events",
    "mark_published",
    "close",
)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _policy_for(state: State, given: AllocationPolicy | None) -> AllocationPolicy:
    # The policy a book works under: the one given, which must be the one the
    # store records (if it records one); else the stored built-in; else
    # PartialFill(). A store that records none is told at its next write.
    stored = state.policy_id
    if given is not None:
        identity = policy_identity(given)
        if stored is not None and stored != identity:
            raise PolicyMismatch(stored, identity)
        if stored is None:
            state.policy_id, state.policy_saved = identity, False
        return given
    if stored is None:
        chosen = PartialFill()
        state.policy_id, state.policy_saved = policy_identity(chosen), False
        return chosen
    built_in = policy_from_identity(stored)
    if built_in is None:
        raise PolicyMismatch(stored, "none (pass the custom policy the book was stored with)")
    return built_in


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_LEASE = timedelta(days=36_525)  # about 100 years, as every other duration


def _lease_micros(lease: object) -> int:
    if not isinstance(lease, timedelta):
        raise ArgumentTypeError(f"lease must be a timedelta, got {type(lease).__name__} {lease!r}")
    if lease <= timedelta(0) or lease > _MAX_LEASE:
        raise InvalidArgument(f"lease must be positive and at most 100 years, got {lease!r}")
    return max(1, lease // timedelta(microseconds=1))


class BackorderBook(BookControls):
    """The backorders of a shop: every order's lines, each SKU's line of
    customers, the stock on hand, and the ledger of every movement.

    Args:
        policy: the allocation policy (`PartialFill()` when None).
        repository: where the state lives (a new `InMemoryRepository` when
            None). A repository that already holds a book's state continues it.
        clock: returns the current time as an aware `datetime`
            (`datetime.now(timezone.utc)` when None); inject one for tests and
            simulations.

    Raises:
        ArgumentTypeError: `policy` lacks `rank`/`allot`, `repository` is
            neither an `InMemoryRepository` nor has the `Repository` methods,
            or `clock` is not callable.
        PolicyMismatch: the repository holds a book kept under a policy of
            another identity (see `change_policy`); with `policy` None, a book
            kept under a custom policy (pass it).

    With `policy` None a stored book works under the policy it records (a
    built-in one), a new one under `PartialFill()`.

    Every operation validates everything first and is atomic: when it raises,
    the book, the ledger and the repository are exactly as before, and no
    event is handed out. Costs below use n for the waiting lines of the SKU
    concerned.

    >>> from backorder import BackorderBook, Order, OrderLine
    >>> book = BackorderBook()
    >>> _ = book.place(Order("A-1", [OrderLine("MUG", 2)]))
    >>> _ = book.place(Order("A-2", [OrderLine("MUG", 1)]))
    >>> book.position("A-2", "MUG")
    2
    >>> _ = book.receive("MUG", 2, reference="GRN-1")
    >>> book.line("A-1", "MUG").allocated, book.position("A-2", "MUG")
    (2, 1)
    """

    __slots__ = ("_clock", "_engine", "_repository", "_subscribers", "_work")

    def __init__(
        self,
        policy: AllocationPolicy | None = None,
        repository: Repository | InMemoryRepository | None = None,
        clock: Clock | None = None,
    ) -> None:
        repository = InMemoryRepository() if repository is None else repository
        if policy is not None:
            for method in ("rank", "allot"):
                if not callable(getattr(policy, method, None)):
                    raise ArgumentTypeError(
                        f"policy must have a {method} method, got {shown(policy)}"
                    )
            policy_identity(policy)  # a bad policy_id raises here
        if not isinstance(repository, InMemoryRepository):
            for method in _REPOSITORY_METHODS:
                if not callable(getattr(repository, method, None)):
                    raise ArgumentTypeError(
                        f"repository must have a {method} method, got {shown(repository)}"
                    )
        if clock is not None and not callable(clock):
            raise ArgumentTypeError(f"clock must be callable, got {shown(clock)}")
        self._repository = repository
        self._clock: Clock = _utc_now if clock is None else clock
        self._subscribers = Subscribers()
        self._engine = Engine(State(), PartialFill() if policy is None else policy, self._now)
        self._work = UnitOfWork(repository, self._engine, self._subscribers)
        self._engine.set_policy(_policy_for(self._engine.state, policy))

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        policy: AllocationPolicy | None = None,
        clock: Clock | None = None,
        *,
        timeout: float = 30.0,
    ) -> BackorderBook:
        """A durable book in the SQLite file at `path` (created if missing;
        `":memory:"` for a private in-memory database), or, for a
        `postgresql://` (or `postgres://`) URL, in that PostgreSQL database
        (a `PostgresRepository` in schema `backorder`; needs the
        `backorder[postgres]` extra).

        Every operation is committed to the file before it returns; several
        processes may open the same file at once. Close the book with
        `close()` or use it as a context manager.

        Args:
            path: the database file.
            policy: as for `BackorderBook`.
            clock: as for `BackorderBook`.
            timeout: seconds an operation waits for another process's
                write to finish before raising `ConcurrencyConflict`.

        Raises:
            NotABackorderDatabase: the file is not a database, or belongs to
                another program (the file is left untouched).
            UnsupportedSchema: the file was written by a newer version.
            StorageCorrupted: stored rows cannot be read back.
            PolicyMismatch: the file records a policy of another identity.

        Cost: O(1) to open: the book loads lazily, each operation first
        reading the SKUs it names (a SKU's rows: O(its lines log n)); a
        whole-book read loads everything (see docs/storage.md for figures).
        """
        repository: Repository
        if isinstance(path, str) and path.startswith(("postgresql://", "postgres://")):
            from .storage.postgres import PostgresRepository

            repository = PostgresRepository(path, timeout=timeout)
        else:
            from .storage.sqlite import SQLiteRepository

            repository = SQLiteRepository(path, timeout=timeout)
        try:
            return cls(policy, repository, clock)
        except BaseException:
            repository.close()
            raise

    @property
    def repository(self) -> Repository | InMemoryRepository:
        """The repository the book stores its state in. Cost: O(1)."""
        return self._repository

    @property
    def policy(self) -> AllocationPolicy:
        """The book's allocation policy."""
        return self._engine.policy

    def close(self) -> None:
        """Release the repository (a SQLite connection). Afterwards every
        operation raises `RepositoryClosed`; closing twice is harmless.

        Raises:
            InvalidArgument: inside a `batch()` block.

        Cost: O(1).
        """
        work = self._work
        with work.lock:
            if work.batched is not None:
                raise InvalidArgument("close() inside a batch() block; leave the block first")
            if not work.closed:
                work.closed, work.fast = True, False
                work.store.close()

    def __enter__(self) -> BackorderBook:
        """The book itself, closed again when the `with` block ends. Cost: O(1)."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the book (see `close`). Cost: O(1)."""
        with self._work.lock:
            if self._work.batched is None:
                self.close()

    @contextmanager
    def batch(self, *, atomic: bool = False) -> Iterator[BackorderBook]:
        """Group many operations into one commit (an import, a replay).

        Inside the block every operation works and returns as usual (each
        is still atomic on its own, and one that raises changed nothing),
        but the repository writes them all in one transaction when the
        block ends: a crash before that loses the whole block, never part
        of it. Events are handed to subscribers after that commit (those of
        the operations done while they were subscribed). The block keeps no
        history of its own beyond that: memory is bounded by the book (and
        the undo records of an atomic block over an in-memory book). A nested
        `batch()` joins the outer one. Other processes wait for the block to
        end before they write.

        When an exception leaves the block, what happens depends on
        `atomic`. By default what returned inside the block is committed
        (each operation stands on its own). With `atomic=True` the block is
        abandoned whole: nothing of it is written, the book is as it was
        before the block, no subscriber hears any of it, and the exception
        goes on — all or nothing, as an import or a replay wants.

        Args:
            atomic: abandon the whole block if an exception leaves it.

        Raises:
            ArgumentTypeError: `atomic` is not a bool.
            RepositoryClosed: the book is closed.
            EventHandlerError: (at the end) a handler raised.

        Cost: O(1) besides the operations; with SQLite, one commit instead
        of one per operation. Abandoning costs O(changes of the block) over
        an in-memory book; a stored book keeps no undo records (a long
        import's memory stays bounded) and starts again from the store: a
        book loaded whole loads again (O(book)), a lazy one drops what it
        holds and loads SKUs again as operations need them.
        """
        if type(atomic) is not bool:
            raise ArgumentTypeError(
                f"atomic must be a bool, got {type(atomic).__name__} {shown(atomic)}"
            )
        work = self._work
        with work.lock:
            try:
                with work.batch(atomic):
                    yield self
            finally:
                if work.outgoing and not work.depth:
                    work.deliver()

    def pending_events(self, limit: int | None = None) -> tuple[OutboxEvent, ...]:
        """Events not yet marked published (the outbox), oldest first.

        Events are written in the same commit as the change that caused
        them, so after a crash nothing is lost: send them (an e-mail, a
        message), then `mark_published` them; an event is sent at least once.
        With an `InMemoryRepository` the outbox is kept only when it was made
        with `outbox=True` (else this is always empty).

        Raises:
            InvalidQuantity: `limit` is not None or a positive int.
            RepositoryClosed: the book is closed.

        Cost: O(returned events), one query with SQLite.
        """
        if limit is not None:
            check_quantity(limit, "limit")
        work = self._work
        with work.lock:
            work.check_open()
            pending = work.store.pending(limit)
            return tuple(OutboxEvent(event_id, event) for event_id, event in pending)

    def claim_events(
        self, limit: int = 100, lease: timedelta = timedelta(seconds=60)
    ) -> tuple[OutboxEvent, ...]:
        """Lease the oldest unpublished events no running lease holds, for one sender.

        For several senders (threads, worker processes, machines) emptying
        one outbox: each calls `claim_events`, sends what it got, then
        `mark_published`. Two claims never return the same event while its
        lease runs, in any threads or processes; an event whose lease ran
        out without `mark_published` (its sender died or hung) is claimed
        again, so every event is sent at least once and none is lost. Send
        within the lease, or an event may be sent twice. The lease is
        measured on the book's clock (every sender must share one clock).
        `pending_events` still shows leased events (a look, not a claim).

        With an `InMemoryRepository` the outbox exists only with
        `outbox=True`; a third-party repository without `claim_events`
        gets leases kept by this book alone (disjoint among the threads
        using this book, not across processes).

        Args:
            limit: at most this many events (1 to 2**63 - 1).
            lease: how long they are held for this sender: a positive `timedelta`.

        Returns:
            The claimed events, oldest first (empty when there are none).

        Raises:
            QuantityTypeError, InvalidQuantity: `limit` is not a positive int.
            ArgumentTypeError, InvalidArgument: `lease` is not a positive
                `timedelta` (of at most 100 years).
            InvalidArgument: (PostgreSQL, `connection=`) inside the caller's
                transaction after a book wrote in it: those events may still
                be rolled back; claim after the commit.
            RepositoryClosed: the book is closed.

        Cost: O(returned events) plus those skipped as leased; one write
        transaction with SQLite (`BEGIN IMMEDIATE`: it waits for a writer).
        """
        check_quantity(limit, "limit")
        lease_us = _lease_micros(lease)
        work = self._work
        with work.lock:
            work.check_open()
            now = self._now()
            now_us = (now - _EPOCH) // timedelta(microseconds=1)
            claimed = work.store.claim(limit, lease_us, now_us)
            return tuple(OutboxEvent(event_id, event) for event_id, event in claimed)

    def mark_published(self, events: Iterable[OutboxEvent | int] | OutboxEvent | int) -> int:
        """Take events (or their ids; one, or an iterable of them) out of the
        outbox; return how many were still there (marking one twice is harmless).

        Raises:
            ArgumentTypeError: an item is neither an `OutboxEvent` nor an int.
            RepositoryClosed: the book is closed.

        Cost: O(events), one commit with SQLite.
        """
        ids = outbox_ids(events)
        work = self._work
        with work.lock:
            work.check_open()
            return work.store.published(ids)

    @locked
    def __repr__(self) -> str:
        state = self._engine.state
        waiting = sum(len(sku.queue) for sku in state.skus.values())
        loaded = "loaded so far: " if self._work.store.lazy else ""
        closed = ", closed" if self._work.closed else ""
        return (
            f"<BackorderBook {loaded}{len(state.orders)} orders, {len(state.skus)} SKUs, "
            f"{waiting} lines waiting, policy={self._engine.policy!r}{closed}>"
        )

    # -- events --------------------------------------------------------------

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Call `handler(event)` for every event, in order, after each operation
        that caused it has succeeded (and been committed).

        If a handler raises, the others still get every event and the
        operation, which has succeeded, raises `EventHandlerError` afterwards.

        Returns:
            A callable that unsubscribes the handler.

        A book working inside the caller's transaction
        (`PostgresRepository(connection=...)`) has no subscribers: its work
        is final only when the caller commits, so read the outbox then.

        Raises:
            ArgumentTypeError: `handler` is not callable.
            InvalidArgument: the book works inside the caller's transaction.

        Handlers run in the thread of the call that caused the events, after
        its unit of work has ended, holding the book: a handler may call the
        book (that call runs after the one that caused the event, and its
        events are handed out after the rest), while other threads wait.
        Keep handlers short; send slow work through the outbox.

        Cost: O(1).
        """
        if getattr(self._repository, "in_caller_transaction", False) is True:
            raise InvalidArgument(
                "this book works inside the caller's transaction (PostgresRepository("
                "connection=...)): a subscriber could hear of work the caller rolls back "
                "later; read pending_events() after your commit instead"
            )
        with self._work.lock:
            return self._subscribers.add(handler)

    def _now(self) -> datetime:
        if self._clock is _utc_now:
            return _utc_now()
        return check_aware(self._clock(), "clock()")

    # -- operations: each one engine call, finished by the unit of work ------

    @writes
    def place(self, order: Order) -> PlaceResult:
        """Place an order: each line joins its SKU's line, then stock is served.

        Every line enters its SKU's line at `(policy.rank(order), seq)`, `seq`
        being the book's arrival counter; then the fill loop runs for each
        SKU, so stock on hand goes to the new line only if it is the head.
        Events: `OrderPlaced`, a `LineAllocated` per allocation, and a
        `LineBackordered` for each line still short.

        Placing the same order again (same id, lines, tier, `ship_complete`
        and metadata; `placed_at` None or equal) changes nothing and returns
        the current status with `replayed=True`.

        Raises:
            ArgumentTypeError: `order` is not an `Order`.
            DuplicateOrder: the id is in the book with other content.
            UnknownTier: (from `PriorityTiers`) the order's tier is unknown.
            PolicyError: the policy's rank or allot returned a bad value.

        Cost: O(k log n) per line for k allocations made.

        >>> from backorder import BackorderBook, Order, OrderLine
        >>> book = BackorderBook()
        >>> _ = book.receive("MUG", 1)
        >>> result = book.place(Order("A-1", [OrderLine("MUG", 3)]))
        >>> result.lines[0].allocated, result.lines[0].backordered
        (1, 2)
        >>> book.place(Order("A-1", [OrderLine("MUG", 3)])).replayed  # a retry
        True
        """
        outcome = orders.place(self._engine, order)
        assert outcome is not None
        if isinstance(outcome, Applied):
            return self._work.finish(outcome)
        return outcome  # a retry: nothing changed

    @reads
    def can_place(self, order: Order) -> bool:
        """Whether `place(order)` would be accepted now, without changing anything.

        False when it would take a SKU's backordered units past its cap (see
        `set_backorder_limit`); True otherwise, a retry of an order already
        placed included. For a storefront's "add to cart" button.

        Raises:
            BackorderError: the other errors `place` raises (a bad or
                duplicate order, an unknown tier, a policy error).

        Cost: that of `place`, then of undoing it.
        """
        try:
            orders.place(self._engine, order, dry_run=True)
        except BackorderLimitExceeded:
            return False
        return True

    @writes
    def receive(
        self,
        sku: str,
        quantity: int,
        reference: str | None = None,
        against: str | None = None,
    ) -> ReceiveResult:
        """Take `quantity` units of `sku` into stock; then serve its line.

        A `(sku, reference)` pair already received is a no-op returning
        `replayed=True` (a redelivered warehouse message must not count
        twice); one reference may cover several SKUs. Events: `StockReceived`
        and a `LineAllocated` per allocation.

        `against` names the expected receipt (see `expect`) this delivery
        fulfils, wholly or in part: its quantity falls by what arrived and the
        rest stays expected (several partial deliveries against one purchase
        order are normal; each has its own `reference`).

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` or `reference` is not a
                non-empty str.
            QuantityTypeError, InvalidQuantity: `quantity` is not an int from 1
                to 2**63 - 1, or on hand would pass 2**63 - 1.
            DuplicateReceipt: the reference was received for `sku` with
                another quantity.
            UnknownReference: `against` is not an expected receipt.
            InvalidArgument: `against` is an expected receipt of another SKU.
            PolicyError: a custom policy's allot returned a bad value.

        Cost: O(k log n) for k allocations made.

        >>> from backorder import BackorderBook, Order, OrderLine
        >>> book = BackorderBook()
        >>> _ = book.place(Order("A-1", [OrderLine("MUG", 2)]))
        >>> book.receive("MUG", 5, reference="GRN-1").stock.available
        3
        >>> book.receive("MUG", 5, reference="GRN-1").replayed  # redelivered
        True
        """
        outcome = stock.receive(self._engine, sku, quantity, reference, against)
        if isinstance(outcome, Applied):
            return self._work.finish(outcome)
        return outcome  # redelivered: nothing changed

    @writes
    def adjust(self, sku: str, delta: int, reason: str) -> AdjustResult:
        """Correct the count of `sku` on hand by `delta` (a stock-take, breakage).

        A negative delta that leaves less on hand than is allocated takes the
        missing units back from the allocated-but-unshipped lines *last* in
        line first; those lines go back to backordered at their original
        place. A positive delta is served to the line like a receipt (but
        recorded as an adjustment). Events: a `LineReleased` (reason
        `"adjustment"`) per line reclaimed, `StockAdjusted`, a
        `LineBackordered` per line reclaimed, and a `LineAllocated` per
        allocation.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` or `reason` is not a
                non-empty str.
            QuantityTypeError, InvalidQuantity: `delta` is 0, not an int, beyond
                +-(2**63 - 1), or would put on hand above 2**63 - 1.
            InsufficientStock: `delta` removes more than is on hand.
            PolicyError: a custom policy's allot returned a bad value.

        Cost: O(r log n) for r lines reclaimed, plus O(k log n) for k allocations.

        >>> from backorder import BackorderBook, Order, OrderLine
        >>> book = BackorderBook()
        >>> _ = book.receive("MUG", 2)
        >>> _ = book.place(Order("A-1", [OrderLine("MUG", 2)]))
        >>> book.adjust("MUG", -1, "found broken").reclaimed
        1
        >>> book.line("A-1", "MUG").backordered
        1
        """
        return self._work.finish(stock.adjust(self._engine, sku, delta, reason))

    @writes
    def cancel(
        self, order_id: str, sku: str | None = None, quantity: int | None = None
    ) -> CancelResult:
        """Cancel a whole order, one line (`sku`), or `quantity` units of a line.

        A partial cancel takes backordered units first and releases allocated
        units only for the rest. Released units go through the fill loop at
        once, so the next in line gets them; the ledger records them as a
        release, never as a receipt. Cancelling a whole order skips lines with
        nothing left. Events: a `LineReleased` (reason `"cancel"`) for
        allocated units given back, a `LineCancelled` per line,
        `OrderCancelled` for a whole order, then a `LineAllocated` per
        allocation of the freed stock.

        Raises:
            UnknownOrder, UnknownSku: no such order or line.
            InvalidArgument: `quantity` without `sku`; ids not non-empty str.
            QuantityTypeError, InvalidQuantity: `quantity` not an int from 1 to
                2**63 - 1.
            CannotCancel: more than can still be cancelled (the message says
                how many can), or nothing at all can be.
            PolicyError: a custom policy's allot returned a bad value.

        Cost: O(lines of the order * log n) plus O(k log n) for k allocations.

        >>> from backorder import BackorderBook, Order, OrderLine
        >>> book = BackorderBook()
        >>> _ = book.place(Order("A-1", [OrderLine("MUG", 3)]))
        >>> book.cancel("A-1", "MUG", 1).cancelled
        1
        >>> book.line("A-1", "MUG").backordered
        2
        """
        outcome = orders.cancel(self._engine, order_id, sku, quantity)
        return self._work.finish(outcome)

    @writes
    def ship(
        self, order_id: str, sku: str | None = None, quantity: int | None = None
    ) -> ShipResult:
        """Ship allocated units: the whole order's, one line's, or `quantity` of a line's.

        On hand and allocated both fall by what ships (a partial shipment is
        fine). A `ship_complete` order ships only when no line of it has
        anything backordered, whether or not a SKU is named. Events: a
        `LineShipped` per line shipped.

        Raises:
            UnknownOrder, UnknownSku: no such order or line.
            InvalidArgument: `quantity` without `sku`; ids not non-empty str.
            QuantityTypeError, InvalidQuantity: `quantity` not an int from 1 to
                2**63 - 1.
            NotReadyToShip: nothing allocated; `quantity` above what is
                allocated (the message says how many can ship); a ship-complete
                order with units still backordered.

        Cost: O(lines of the order * log n).

        >>> from backorder import BackorderBook, Order, OrderLine
        >>> book = BackorderBook()
        >>> _ = book.receive("MUG", 2)
        >>> _ = book.place(Order("A-1", [OrderLine("MUG", 2)]))
        >>> book.ship("A-1").shipped
        2
        >>> book.stock("MUG").on_hand
        0
        """
        return self._work.finish(orders.ship(self._engine, order_id, sku, quantity))

    @writes
    def change_tier(self, order_id: str, tier: str) -> TierResult:
        """Move an order to another tier, keeping its arrival number.

        Its lines land among the new tier at the place their arrival earns
        them; then the fill loop runs (a line moved up may be served now).
        Changing to the tier it has changes nothing.

        Raises:
            UnknownOrder: no order `order_id`.
            ArgumentTypeError, InvalidOrder: `tier` is not a non-empty str.
            UnknownTier: (from `PriorityTiers`) the tier is unknown.
            PolicyError: the policy's rank or allot returned a bad value.

        Cost: O(lines of the order * log n) plus the fill.
        """
        outcome = orders.change_tier(self._engine, order_id, tier)
        if isinstance(outcome, Applied):
            return self._work.finish(outcome)
        return outcome  # the tier it has: nothing changed

    @writes
    def expire(self, now: datetime | None = None) -> ExpireResult:
        """Act on every deadline that has passed by `now` (the clock's time when None).

        For each order whose `fill_by` has passed and that still has units
        backordered: a `ship_complete` order is cancelled whole (its allocated
        units are released), any other order has only its short remainder
        cancelled; `OrderExpired` follows the cancel events. Each deadline is
        acted on once; units a count correction makes short after an order's
        deadline are cancelled at the next call. Then every checkout hold whose
        time is up is released. Freed units go through the fill loop at once (a
        release in the ledger, never a receipt).

        Raises:
            ArgumentTypeError, InvalidArgument: `now` is not an aware datetime.
            PolicyError: a custom policy's allot returned a bad value.

        Cost: O(e log n) for e deadlines and holds that passed, plus the fill;
        orders whose deadline has not passed are not looked at.
        """
        at = self._now()
        when = at if now is None else check_aware(now, "now")
        self._work.store.ensure_due(when)  # a lazily loaded book loads the orders due
        return self._work.finish(controls.expire(self._engine, at, when))

    # -- self-check ------------------------------------------------------------

    def inspect(self) -> BookInspector:
        """A read-only look at the book's internals for test suites (see
        `BookInspector`): the self-check, private counters, what a lazily
        loaded book holds. Cost: O(1)."""
        return BookInspector(self._engine, self._work)

    def _check(self) -> None:
        """Verify every internal invariant; raise AssertionError naming the first broken.

        For tests and stress runs. Cost: O(orders + lines + ledger entries).
        """
        check(self._engine.state, self._engine.policy)
