"""The backorder book: places orders, takes in stock, serves each line in order."""

from __future__ import annotations

import functools
import inspect
import os
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any, Concatenate, ParamSpec, TypeVar

import attrs

from ._persist import _LiveStore, _Retry, _RowStore
from ._state import (
    _add_hold,
    _drop_hold,
    _Expected,
    _Hold,
    _Line,
    _OrderRecord,
    _schedule,
    _Sku,
    _State,
    _unschedule,
    pack,
    unpack,
)
from ._tables import book_records, data_frame, html_table, sku_records, waiting_records
from .domain import (
    MAX_QUANTITY,
    LineStatus,
    Order,
    OrderLine,
    OrderStatus,
    StockLevel,
    check_aware,
    check_delta,
    check_quantity,
    check_text,
)
from .errors import (
    ArgumentTypeError,
    BackorderLimitExceeded,
    CannotCancel,
    DuplicateHold,
    DuplicateOrder,
    DuplicateReceipt,
    DuplicateReference,
    EventHandlerError,
    HoldExpired,
    InsufficientStock,
    InvalidArgument,
    InvalidOrder,
    InvalidQuantity,
    NotReadyToShip,
    PolicyError,
    RepositoryClosed,
    UnknownHold,
    UnknownOrder,
    UnknownReference,
    UnknownSku,
)
from .eta import LEAD_TIME, SCHEDULED, UNKNOWN, Eta, arrival
from .events import (
    EtaChanged,
    Event,
    HoldConfirmed,
    HoldReleased,
    LineAllocated,
    LineBackordered,
    LineCancelled,
    LineReleased,
    LineShipped,
    OrderCancelled,
    OrderExpired,
    OrderPlaced,
    StockAdjusted,
    StockHeld,
    StockReceived,
    SupplyCancelled,
    SupplyExpected,
    TierChanged,
)
from .ledger import ADJUSTMENT, ALLOCATION, HOLD, RECEIPT, RELEASE, SHIPMENT, StockLedger
from .policies import AllocationPolicy, PartialFill, PriorityTiers, StrictFIFO
from .results import (
    AdjustResult,
    CancelResult,
    ExpectResult,
    ExpireResult,
    HoldResult,
    OrderEta,
    OutboxEvent,
    PlaceResult,
    ReceiveResult,
    SettingResult,
    ShipResult,
    TierResult,
)
from .storage import InMemoryRepository, Repository

#: How many times an operation is run again after losing a commit race.
RETRIES = 5
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

__all__ = ["BackorderBook", "Clock"]

#: A clock: a callable returning the current time as an aware `datetime`.
Clock = Callable[[], datetime]
Handler = Callable[[Event], object]
_R = TypeVar("_R")
_P = ParamSpec("_P")


_REFERENCE_ARGS = {
    "receive": "against",
    "expect": "reference",
    "update_expected": "reference",
    "cancel_expected": "reference",
}


def _needs(
    method: Callable[..., Any],
) -> Callable[[BackorderBook, tuple[Any, ...], dict[str, Any]], None]:
    # What an operation touches, from its arguments, for a lazily loaded book:
    # the SKUs named, every SKU of the orders named, the SKU of a scheduled
    # receipt named. Arguments that do not bind are left to the operation.
    names = list(inspect.signature(method).parameters)[1:]  # after self
    reference = _REFERENCE_ARGS.get(method.__name__)

    def prefetch(book: BackorderBook, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        store = book._store
        if not store.lazy:
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
        store.ensure(skus, orders, refs)

    return prefetch


def _writes(
    method: Callable[Concatenate[BackorderBook, _P], _R],
) -> Callable[Concatenate[BackorderBook, _P], _R]:
    # An operation that may change the book: one unit of work of the repository.
    prefetch = _needs(method)

    @functools.wraps(method)
    def run(self: BackorderBook, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self._store.live and not self._closed:
            return method(self, *args, **kwargs)
        return self._unit(
            functools.partial(method, self, *args, **kwargs),
            functools.partial(prefetch, self, args, kwargs),
        )

    return run


def _reads(
    method: Callable[Concatenate[BackorderBook, _P], _R],
) -> Callable[Concatenate[BackorderBook, _P], _R]:
    # A read: with a row repository, first catch up with other writers (and,
    # lazily loaded, load what the read names).
    prefetch = _needs(method)

    @functools.wraps(method)
    def run(self: BackorderBook, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if not self._store.live or self._closed:
            self._catch_up()
            prefetch(self, args, kwargs)
        return method(self, *args, **kwargs)

    return run


_STRICT = 1
_PARTIAL = 2


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


_BASIS_RANK = {SCHEDULED: 0, LEAD_TIME: 1, UNKNOWN: 2}


_FIRST_KEY = float("-inf")  # before every key
_NO_KEY = float("inf")  # after every key: no line


class _Partitions:
    """A SKU's ETAs as step functions of the queue key (see `_partitions`)."""

    __slots__ = ("complete", "dates", "first", "lead")

    def __init__(
        self,
        complete: list[float],
        first: list[float],
        dates: list[datetime],
        lead: timedelta | None,
    ) -> None:
        self.complete = complete  # first key of each date's range, for `at`
        self.first = first  # the same for `first_unit_at`
        self.dates = dates  # range i is dates[i]; the last range is the tail
        self.lead = lead

    def _value(self, i: int, now: datetime) -> tuple[datetime | None, str]:
        if i < 0:
            return None, UNKNOWN
        if i < len(self.dates):
            return self.dates[i], SCHEDULED
        if self.lead is not None:
            return now + self.lead, LEAD_TIME
        return None, UNKNOWN

    def complete_at(self, key: float, now: datetime) -> tuple[datetime | None, str]:
        return self._value(bisect_right(self.complete, key) - 1, now)

    def first_at(self, key: float, now: datetime) -> tuple[datetime | None, str]:
        return self._value(bisect_right(self.first, key) - 1, now)


def _has_eta(sku: _Sku) -> bool:
    # A SKU's lines have dates only once it has scheduled supply or a lead time.
    return bool(sku.schedule) or sku.lead_time is not None


def _fast_mode(policy: object) -> int:
    # The built-in fills are computed inline; a subclass may override `allot`,
    # so only the exact built-in types qualify.
    if type(policy) is PriorityTiers:
        policy = policy.fill
    if type(policy) is PartialFill:
        return _PARTIAL
    if type(policy) is StrictFIFO:
        return _STRICT
    return 0


def _line_status(line: _Line) -> LineStatus:
    return LineStatus(
        line.order.id,
        line.sku,
        line.order.tier,
        line.ordered,
        line.allocated,
        line.shipped,
        line.cancelled,
        line.ordered - line.allocated - line.shipped - line.cancelled,
    )


class _Txn:
    """One operation's undo record: what to put back if it fails."""

    __slots__ = (
        "at",
        "eta_before",
        "eta_hook",
        "eta_tail",
        "events",
        "lines",
        "mark",
        "seq",
        "skus",
        "undo",
    )

    def __init__(self, state: _State, at: datetime) -> None:
        self.at = at
        self.events: list[Event] = []
        self.mark = state.ledger._mark()
        self.seq = state.seq
        self.lines: dict[_Line, tuple[int, int, int]] = {}
        self.skus: dict[_Sku, tuple[int, int, int, int]] = {}
        # Each touched SKU's ETAs before the operation (None: all unknown),
        # taken by `eta_hook` on first touch, to emit EtaChanged afterwards.
        self.eta_before: dict[_Sku, _Partitions | None] = {}
        self.eta_hook: Callable[[_Txn, _Sku], None] | None = None
        # per touched SKU: (available, last waiting key, supply curve, lead time) before
        self.eta_tail: dict[_Sku, tuple[int, float, Any, timedelta | None]] = {}
        # What else changed, in order, undone newest first if the operation
        # fails: ("order", order_id), ("sku", name), ("receipt", _Sku, ref),
        # ("deadline", item), ("deadline_gone", item), ("limit", _Sku, old),
        # ("hold_new", _Hold), ("hold_gone", _Hold), ("hold_qty", _Hold, old),
        # ("expired_hold", hold_id), ("hold_seq", old), ("tier", record, order, rank).
        self.undo: list[tuple[Any, ...]] = []

    def touch_line(self, line: _Line) -> None:
        if line not in self.lines:
            self.lines[line] = (line.allocated, line.shipped, line.cancelled)

    def touch_sku(self, sku: _Sku) -> None:
        if sku not in self.skus:
            self.skus[sku] = (sku.on_hand, sku.allocated, sku.short, sku.slots)
            if self.eta_hook is not None:
                self.eta_hook(self, sku)
            sku.version += 1  # about to change: cached ETAs no longer hold

    def rollback(self, state: _State) -> None:
        for line, (allocated, shipped, cancelled) in self.lines.items():
            sku = state.skus[line.sku]
            before = line.backordered
            was_short, was_held = before > 0, line.allocated > 0
            line.allocated, line.shipped, line.cancelled = allocated, shipped, cancelled
            if sku.demand is not None:
                sku.demand.add(line, line.backordered - before)
            _resync(sku, line, was_short, was_held)
        for sku, (on_hand, allocated, short, slots) in self.skus.items():
            sku.on_hand, sku.allocated, sku.short, sku.slots = on_hand, allocated, short, slots
            sku.version += 1  # ETAs cached during the failed operation no longer hold
        for entry in reversed(self.undo):
            _undo(state, entry)
        state.ledger._rollback(self.mark)
        state.seq = self.seq


def _undo(state: _State, entry: tuple[Any, ...]) -> None:
    kind = entry[0]
    if kind == "order":
        record = state.orders.pop(entry[1])
        for line in record.lines:
            sku = state.skus.get(line.sku)
            if sku is not None:
                if sku.demand is not None and line.key in sku.queue:
                    sku.demand.add(line, -line.backordered)
                sku.queue.discard(line.key)
                sku.held.discard(line.key)  # its heap entry goes stale
                sku.lines.pop(line.key, None)
    elif kind == "sku":
        del state.skus[entry[1]]
    elif kind == "receipt":
        del entry[1].receipts[entry[2]]
    elif kind == "deadline":
        state.deadlines.discard(entry[1])
    elif kind == "deadline_gone":
        state.deadlines.add(entry[1])
    elif kind == "limit":
        entry[1].limit = entry[2]
    elif kind == "hold_new":
        _drop_hold(state, entry[1])
    elif kind == "hold_gone":
        _add_hold(state, entry[1])
    elif kind == "hold_qty":
        entry[1].quantity = entry[2]
    elif kind == "expired_hold":
        state.expired_holds.discard(entry[1])
    elif kind == "expired_hold_gone":
        state.expired_holds.add(entry[1])
    elif kind == "hold_seq":
        state.hold_seq = entry[1]
    elif kind == "tier":
        _rekey(state, entry[1], entry[2], entry[3])
    elif kind == "expected_new":
        _unschedule(state, entry[1])
    elif kind == "expected_gone":
        _schedule(state, entry[1])
    elif kind == "expected_set":
        expected = entry[1]
        _unschedule(state, expected)
        expected.quantity, expected.arriving = entry[2], entry[3]
        _schedule(state, expected)
    elif kind == "lead_time":
        entry[1].lead_time = entry[2]
    elif kind == "expected_seq":
        state.expected_seq = entry[1]
    else:  # pragma: no cover - every kind written is handled above
        raise AssertionError(kind)


def _rekey(state: _State, record: _OrderRecord, order: Order, rank: int) -> None:
    # Give every line of the order the key (rank, its own arrival number),
    # moving it in its SKU's line, held index and line map.
    record.order, record.rank = order, rank
    for line in record.lines:
        sku = state.skus[line.sku]
        old, new = line.key, pack(rank, unpack(line.key)[1])
        line.order = order
        if old == new:
            continue
        short = line.backordered if old in sku.queue else 0
        if sku.demand is not None:
            sku.demand.add(line, -short)
        del sku.lines[old]
        sku.lines[new] = line
        line.key = new
        if old in sku.queue:
            sku.queue.remove(old)
            sku.queue.add(new)
        if old in sku.held:
            sku.held.discard(old)
            sku.hold(new)
        if sku.demand is not None:
            sku.demand.add(line, short)


def _resync(sku: _Sku, line: _Line, was_short: bool, was_held: bool) -> None:
    # Put the line's key in (or out of) the queue and the held index to match
    # its counters: in the queue iff short, held iff anything is allocated.
    short, held = line.backordered > 0, line.allocated > 0
    if short != was_short:
        if short:
            sku.queue.add(line.key)
        else:
            sku.queue.remove(line.key)
    if held != was_held:
        if held:
            sku.hold(line.key)
        else:
            sku.held.discard(line.key)  # its heap entry goes stale


@attrs.define(slots=True, eq=False, repr=False)
class _Unsubscribe:
    _handlers: list[Handler]
    _handler: Handler

    def __call__(self) -> None:
        if self._handler in self._handlers:
            self._handlers.remove(self._handler)


class BackorderBook:
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
        ArgumentTypeError: `policy` lacks `rank`/`allot`, `repository` lacks
            `state`/`commit`, or `clock` is not callable.

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

    __slots__ = (
        "_batch",
        "_clock",
        "_closed",
        "_depth",
        "_fast",
        "_handlers",
        "_policy",
        "_repository",
        "_state",
        "_store",
        "_unknown",
    )

    def __init__(
        self,
        policy: AllocationPolicy | None = None,
        repository: Repository | InMemoryRepository | None = None,
        clock: Clock | None = None,
    ) -> None:
        policy = PartialFill() if policy is None else policy
        repository = InMemoryRepository() if repository is None else repository
        for method in ("rank", "allot"):
            if not callable(getattr(policy, method, None)):
                raise ArgumentTypeError(f"policy must have a {method} method, got {policy!r}")
        if not isinstance(repository, InMemoryRepository):
            for method in _REPOSITORY_METHODS:
                if not callable(getattr(repository, method, None)):
                    raise ArgumentTypeError(
                        f"repository must have a {method} method, got {repository!r}"
                    )
        if clock is not None and not callable(clock):
            raise ArgumentTypeError(f"clock must be callable, got {clock!r}")
        self._policy = policy
        self._fast = _fast_mode(policy)
        # what every ETA is while a SKU has no scheduled supply or lead time
        self._unknown = (
            Eta(None, UNKNOWN, None, UNKNOWN) if self._fast == _PARTIAL else Eta(None, UNKNOWN)
        )
        self._repository = repository
        self._store: _LiveStore | _RowStore = (
            _LiveStore(repository)
            if isinstance(repository, InMemoryRepository)
            else _RowStore(repository)
        )
        self._state = self._store.state
        self._clock: Clock = _utc_now if clock is None else clock
        self._handlers: list[Handler] = []
        self._closed = False
        self._depth = 0  # > 0 while a unit of work is open
        self._batch: list[tuple[tuple[Event, ...], object]] | None = None

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
        `":memory:"` for a private in-memory database).

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

        Cost: O(n log n) in the stored lines and ledger entries: the whole
        book is loaded into memory (see the README for measured figures).
        """
        from ._sqlite import SQLiteRepository

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

    def close(self) -> None:
        """Release the repository (a SQLite connection). Afterwards every
        operation raises `RepositoryClosed`; closing twice is harmless.

        Raises:
            InvalidArgument: inside a `batch()` block.

        Cost: O(1).
        """
        if self._batch is not None:
            raise InvalidArgument("close() inside a batch() block; leave the block first")
        if not self._closed:
            self._closed = True
            self._store.close()

    def __enter__(self) -> BackorderBook:
        """The book itself, closed again when the `with` block ends. Cost: O(1)."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the book (see `close`). Cost: O(1)."""
        if self._batch is None:
            self.close()

    def _whole(self) -> None:
        # A whole-book read: a lazily loaded book loads everything (and stays so).
        if self._store.lazy:
            self._store.everything()
            self._state = self._store.state

    def _catch_up(self) -> None:
        # Before a read: see what other writers committed (row repositories).
        if self._closed:
            raise RepositoryClosed("the book is closed; open it again to go on")
        if not self._depth:
            self._store.refresh()
            self._state = self._store.state

    def _unit(self, call: Callable[[], _R], prefetch: Callable[[], None]) -> _R:
        # Run one operation as one unit of work: begin (catching up with
        # other writers), load what it needs (lazily loaded), apply, commit;
        # on a lost commit race run it again.
        if self._closed:
            raise RepositoryClosed("the book is closed; open it again to go on")
        if self._depth:
            prefetch()
            return call()
        store = self._store
        attempt = 0
        while True:
            attempt += 1
            store.begin()
            self._state = store.state
            self._depth = 1
            try:
                prefetch()
                return call()
            except _Retry:
                if attempt >= RETRIES:
                    raise
            finally:
                self._depth = 0
                store.end()

    @contextmanager
    def batch(self) -> Iterator[BackorderBook]:
        """Group many operations into one commit (an import, a replay).

        Inside the block every operation works and returns as usual (each
        is still atomic on its own, and one that raises changed nothing),
        but the repository writes them all in one transaction when the
        block ends, normally or by an exception: a crash before that loses
        the whole block, never part of it. Events are handed to subscribers
        after that commit. A nested `batch()` joins the outer one. Other
        processes wait for the block to end before they write.

        Raises:
            RepositoryClosed: the book is closed.
            EventHandlerError: (at the end) a handler raised.

        Cost: O(1) besides the operations; with SQLite, one commit instead
        of one per operation.
        """
        if self._closed:
            raise RepositoryClosed("the book is closed; open it again to go on")
        if self._batch is not None:
            yield self
            return
        store = self._store
        store.begin()
        self._state = store.state
        self._depth = 1
        self._batch = []
        try:
            yield self
        finally:
            self._depth = 0
            done, self._batch = self._batch, None
            store.finish_batch()
            self._state = store.state
            for events, result in done:
                self._publish(events, result)

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
        if self._closed:
            raise RepositoryClosed("the book is closed; open it again to go on")
        return tuple(OutboxEvent(event_id, event) for event_id, event in self._store.pending(limit))

    def mark_published(self, events: Iterable[OutboxEvent | int] | OutboxEvent | int) -> int:
        """Take events (or their ids; one, or an iterable of them) out of the
        outbox; return how many were still there (marking one twice is harmless).

        Raises:
            ArgumentTypeError: an item is neither an `OutboxEvent` nor an int.
            RepositoryClosed: the book is closed.

        Cost: O(events), one commit with SQLite.
        """
        ids: list[int] = []
        if isinstance(events, OutboxEvent) or (
            isinstance(events, int) and not isinstance(events, bool)
        ):
            events = [events]
        if isinstance(events, (str, bytes)) or not isinstance(events, Iterable):
            raise ArgumentTypeError(
                f"mark_published takes an iterable of OutboxEvent values or ids, got "
                f"{type(events).__name__} {events!r}"
            )
        for item in events:
            if isinstance(item, OutboxEvent):
                ids.append(item.id)
            elif isinstance(item, int) and not isinstance(item, bool):
                ids.append(item)
            else:
                raise ArgumentTypeError(
                    f"mark_published takes OutboxEvent values or ids, got "
                    f"{type(item).__name__} {item!r}"
                )
        if self._closed:
            raise RepositoryClosed("the book is closed; open it again to go on")
        return self._store.published(ids)

    def __repr__(self) -> str:
        state = self._state
        waiting = sum(len(sku.queue) for sku in state.skus.values())
        held = "loaded so far: " if self._store.lazy else ""
        closed = ", closed" if self._closed else ""
        return (
            f"<BackorderBook {held}{len(state.orders)} orders, {len(state.skus)} SKUs, "
            f"{waiting} lines waiting, policy={self._policy!r}{closed}>"
        )

    def to_records(self) -> list[dict[str, Any]]:
        """Every order line as a plain dict (`order_id`, `sku`, `tier`,
        `placed_at`, `ship_complete`, `ordered`, `allocated`, `shipped`,
        `cancelled`, `backordered`, `position`), orders in placement order;
        for notebooks (`pandas.DataFrame(book.to_records())`) and reports.

        Cost: O(lines log n) (a lazily loaded book loads everything).
        """
        return book_records(self)

    def waiting_records(self, sku: str | None = None) -> list[dict[str, Any]]:
        """Every waiting line (of `sku`, or of every SKU) as a plain dict
        (`sku`, `position`, `order_id`, `tier`, `backordered`, `allocated`,
        `eta`, `eta_basis`), in serving order.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not None or a non-empty str.

        Cost: O(waiting lines x ETA cost).
        """
        return waiting_records(self, sku)

    def sku_records(self) -> list[dict[str, Any]]:
        """Every SKU as a plain dict (`sku`, `on_hand`, `allocated`,
        `available`, `waiting_lines`, `backordered`, `next_receipt`,
        `next_receipt_quantity`). Cost: O(SKUs + waiting lines)."""
        return sku_records(self)

    def to_pandas(self) -> Any:
        """`to_records()` as a pandas DataFrame with proper dtypes (counts
        int64, `position` nullable Int64, `placed_at` UTC datetimes, ids and
        tiers `string`).

        Raises:
            ImportError: pandas is not installed (`pip install 'backorder[pandas]'`).

        Cost: as `to_records()`.
        """
        columns = [
            "order_id", "sku", "tier", "placed_at", "ship_complete", "ordered",
            "allocated", "shipped", "cancelled", "backordered", "position",
        ]  # fmt: skip
        return data_frame(self.to_records(), columns)

    def _repr_html_(self) -> str:
        """A compact HTML summary for notebooks: one row per SKU (see `sku_records`)."""
        return html_table(repr(self), self.sku_records())

    # -- reading -------------------------------------------------------------

    @property
    def policy(self) -> AllocationPolicy:
        """The book's allocation policy."""
        return self._policy

    @property
    def ledger(self) -> StockLedger:
        """The book's `StockLedger`: every stock movement, append-only. Cost:
        O(1) (a lazily loaded book loads everything first: O(rows))."""
        self._catch_up()
        self._whole()
        return self._state.ledger

    @_reads
    def __len__(self) -> int:
        """The number of orders in the book. Cost: O(1) (a lazily loaded book
        loads everything first: O(rows))."""
        self._whole()
        return len(self._state.orders)

    @_reads
    def __contains__(self, order_id: object) -> bool:
        """Whether an order with this id is in the book. Cost: O(1)."""
        return order_id in self._state.orders

    @_reads
    def order_ids(self) -> Iterator[str]:
        """Every order id, in the order they were placed. Cost: O(1) per id (a
        lazily loaded book loads everything first: O(rows))."""
        self._whole()
        return iter(list(self._state.orders))

    @_reads
    def skus(self) -> tuple[str, ...]:
        """Every SKU the book has seen (ordered, received or adjusted). Cost:
        O(SKUs) (a lazily loaded book loads everything first: O(rows))."""
        self._whole()
        return tuple(self._state.skus)

    def _record(self, order_id: object) -> _OrderRecord:
        record = self._state.orders.get(check_text(order_id, "order_id"))
        if record is None:
            raise UnknownOrder(f"order_id {order_id!r} is not in the book")
        return record

    def _line(self, order_id: object, sku: object) -> _Line:
        record = self._record(order_id)
        check_text(sku, "sku")
        for line in record.lines:
            if line.sku == sku:
                return line
        raise UnknownSku(f"order {order_id!r} has no line for sku {sku!r}")

    def _order_status(self, record: _OrderRecord) -> OrderStatus:
        return OrderStatus(record.order, tuple(_line_status(ln) for ln in record.lines))

    @_reads
    def position(self, order_id: str, sku: str) -> int | None:
        """The line's 1-based place among the lines still short on `sku`.

        Returns None when the line is not short (fully allocated, shipped or
        cancelled).

        Raises:
            UnknownOrder: no order `order_id`.
            UnknownSku: the order has no line for `sku`.
            ArgumentTypeError, InvalidArgument: an id that is not a non-empty str.

        Cost: O(log n).

        >>> from backorder import BackorderBook, Order, OrderLine
        >>> book = BackorderBook()
        >>> _ = book.place(Order("A-1", [OrderLine("MUG", 1)]))
        >>> _ = book.place(Order("A-2", [OrderLine("MUG", 1)]))
        >>> book.position("A-2", "MUG")
        2
        """
        line = self._line(order_id, sku)
        if line.backordered <= 0:
            return None
        return int(self._state.skus[line.sku].queue.index(line.key)) + 1

    @_reads
    def line(self, order_id: str, sku: str) -> LineStatus:
        """The `LineStatus` of the order's line for `sku`.

        Raises:
            UnknownOrder, UnknownSku, ArgumentTypeError, InvalidArgument: as `position`.

        Cost: O(lines of the order).
        """
        return _line_status(self._line(order_id, sku))

    @_reads
    def status(self, order_id: str) -> OrderStatus:
        """The `OrderStatus` of an order: the order and each line's status.

        Raises:
            UnknownOrder: no order `order_id`.
            ArgumentTypeError, InvalidArgument: `order_id` is not a non-empty str.

        Cost: O(lines of the order).
        """
        return self._order_status(self._record(order_id))

    @_reads
    def waiting(self, sku: str) -> tuple[LineStatus, ...]:
        """The status of every line short on `sku`, in serving order (head first).

        Empty for a SKU never seen.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.

        Cost: O(n).
        """
        check_text(sku, "sku")
        state = self._state.skus.get(sku)
        if state is None:
            return ()
        lines = state.lines
        return tuple(_line_status(lines[key]) for key in state.queue)

    @_reads
    def stock(self, sku: str) -> StockLevel:
        """The `StockLevel` of `sku` (all zero for a SKU never seen).

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.

        Cost: O(1).
        """
        check_text(sku, "sku")
        state = self._state.skus.get(sku)
        if state is None:
            return StockLevel(sku, 0, 0, 0)
        return StockLevel(sku, state.on_hand, state.allocated, state.on_hand - state.allocated)

    # -- events --------------------------------------------------------------

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Call `handler(event)` for every event, in order, after each operation
        that caused it has succeeded (and been committed).

        If a handler raises, the others still get every event and the
        operation, which has succeeded, raises `EventHandlerError` afterwards.

        Returns:
            A callable that unsubscribes the handler.

        Raises:
            ArgumentTypeError: `handler` is not callable.

        Cost: O(1).
        """
        if not callable(handler):
            raise ArgumentTypeError(f"handler must be callable, got {handler!r}")
        self._handlers.append(handler)
        return _Unsubscribe(self._handlers, handler)

    # -- the machinery of every operation -----------------------------------

    def _now(self) -> datetime:
        if self._clock is _utc_now:
            return _utc_now()
        return check_aware(self._clock(), "clock()")

    def _commit(self, txn: _Txn) -> None:
        try:
            self._eta_events(txn)
            self._store.save(txn, self._batch is not None)
        except BaseException:
            txn.rollback(self._state)
            raise

    def _finish(self, txn: _Txn, make: Callable[[tuple[Event, ...]], _R]) -> _R:
        # Every operation ends here: commit (or roll back and raise), build
        # the result from the committed state, then hand out the events.
        self._commit(txn)
        events = tuple(txn.events)
        result = make(events)
        if self._batch is not None:
            self._batch.append((events, result))
        else:
            self._publish(events, result)
        return result

    def _publish(self, events: tuple[Event, ...], result: object) -> None:
        if not events or not self._handlers:
            return
        errors: list[Exception] = []
        for event in events:
            for handler in list(self._handlers):
                try:
                    handler(event)
                except Exception as exc:  # every handler still gets every event
                    errors.append(exc)
        if errors:
            raise EventHandlerError(
                f"the operation succeeded, but {len(errors)} handler call(s) raised; "
                f"first: {errors[0]!r}",
                result,
                errors,
            ) from errors[0]

    def _sku(self, txn: _Txn, name: str) -> _Sku:
        sku = self._state.skus.get(name)
        if sku is None:
            sku = self._state.skus[name] = _Sku(name)
            txn.undo.append(("sku", name))
        return sku

    def _fill(self, sku: _Sku, txn: _Txn) -> None:
        # Offer the head of the line what is available, until it waits or
        # nothing is left. Only the head is ever offered stock.
        queue = sku.queue
        if not queue or sku.on_hand <= sku.allocated:
            return
        lines = sku.lines
        held = sku.held
        fast = self._fast
        ledger_record = self._state.ledger._record
        events = txn.events
        at = txn.at
        txn.touch_sku(sku)
        while queue:
            available = sku.on_hand - sku.allocated
            if available <= 0:
                break
            key = queue[0]
            line = lines[key]
            short = line.ordered - line.allocated - line.shipped - line.cancelled
            if fast == _PARTIAL:
                n = short if short <= available else available
            elif fast == _STRICT:
                if short > available:
                    break
                n = short
            else:
                n = self._allot(line, available, short)
                if n == 0:
                    break
            txn.touch_line(line)
            if line.allocated == 0 and key not in held:
                sku.hold(key)
            line.allocated += n
            sku.allocated += n
            sku.short -= n
            if sku.demand is not None:
                sku.demand.add(line, -n)
            if n == short:
                queue.pop(0)
            ledger_record(ALLOCATION, sku.sku, 0, n, line.order.id, None, at)
            events.append(LineAllocated(line.order.id, sku.sku, n, at))

    def _rank(self, order: Order) -> int:
        rank = self._policy.rank(order)
        if not isinstance(rank, int) or isinstance(rank, bool):
            raise PolicyError(
                f"policy {self._policy!r} rank returned {rank!r} for order "
                f"{order.id!r}; it must be an int"
            )
        return rank

    def _allot(self, line: _Line, available: int, short: int) -> int:
        n = self._policy.allot(_line_status(line), available)
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= min(short, available):
            raise PolicyError(
                f"policy {self._policy!r} allot returned {n!r} for order "
                f"{line.order.id!r} sku {line.sku!r} (backordered {short}, "
                f"available {available}); it must be an int from 0 to "
                f"{min(short, available)}"
            )
        return n

    def _backordered_events(self, txn: _Txn, lines: tuple[_Line, ...] | list[_Line]) -> None:
        for line in lines:
            short = line.backordered
            if short > 0:
                queue = self._state.skus[line.sku].queue
                # a new line usually joins at the back: its place is the length
                key = line.key
                place = len(queue) if queue[-1] == key else queue.index(key) + 1
                sku = self._state.skus[line.sku]
                eta = self._line_eta(sku, line, txn.at) if _has_eta(sku) else self._unknown
                txn.events.append(
                    LineBackordered(line.order.id, line.sku, short, place, txn.at, eta)
                )

    # -- operations ----------------------------------------------------------

    @_writes
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
        result = self._place(order, None, dry_run=False)
        assert result is not None
        return result

    @_reads
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
            self._place(order, None, dry_run=True)
        except BackorderLimitExceeded:
            return False
        return True

    def _place(self, order: Order, hold: _Hold | None, dry_run: bool) -> PlaceResult | None:
        if not isinstance(order, Order):
            raise ArgumentTypeError(f"order must be an Order, got {type(order).__name__} {order!r}")
        state = self._state
        existing = state.orders.get(order.id)
        if existing is not None:
            if existing.order.same_request(order) and hold is None:
                return PlaceResult(self._order_status(existing), (), True)
            raise DuplicateOrder(
                f"order id {order.id!r} is already in the book with other content "
                f"(stored {existing.order!r})"
            )
        rank = self._rank(order)
        at = self._now()
        if order.placed_at is None:
            order = order._stamped(at)
        txn = self._txn(at)
        try:
            state.seq += 1
            key = pack(rank, state.seq)
            lines = tuple(_Line(order, ol.sku, key, ol.quantity) for ol in order.lines)
            state.orders[order.id] = _OrderRecord(order, rank, lines)
            txn.undo.append(("order", order.id))
            txn.events.append(OrderPlaced(order.id, order, at))
            capped: list[tuple[_Sku, int]] = []
            for line in lines:
                sku = self._sku(txn, line.sku)
                if sku.limit is not None:
                    capped.append((sku, sku.short))
                txn.touch_sku(sku)
                sku.lines[key] = line
                sku.slots += 1
                line.slot = sku.slots
                if hold is not None and hold.sku == line.sku:
                    self._take_hold(txn, hold, line)
                short = line.backordered
                if short:
                    sku.queue.add(key)
                    sku.short += short
                    if sku.demand is not None:
                        sku.demand.add(line, short)
                self._fill(sku, txn)
            for sku, before in capped:
                if sku.limit is not None and sku.short > sku.limit:
                    raise BackorderLimitExceeded(
                        f"order {order.id!r} would leave {sku.short - before} units of sku "
                        f"{sku.sku!r} backordered, but its backorder limit {sku.limit} "
                        f"leaves room for {max(0, sku.limit - before)}"
                    )
            deadline = order.deadline
            if deadline is not None:
                item = (deadline, state.seq, order.id)
                state.deadlines.add(item)
                txn.undo.append(("deadline", item))
            self._backordered_events(txn, lines)
            if dry_run:
                txn.rollback(state)
                return None
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish(
            txn, lambda events: PlaceResult(self._order_status(state.orders[order.id]), events)
        )

    @_writes
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
        check_text(sku, "sku")
        check_quantity(quantity, "quantity")
        if reference is not None:
            check_text(reference, "reference")
        state = self._state
        expected: _Expected | None = None
        if against is not None:
            expected = self._expected(against)
            if expected.sku != sku:
                raise InvalidArgument(
                    f"against {against!r} is an expected receipt of sku {expected.sku!r}, "
                    f"not {sku!r}"
                )
        current = state.skus.get(sku)
        if current is not None and reference is not None:
            seen = current.receipts.get(reference)
            if seen is not None:
                if seen != quantity:
                    raise DuplicateReceipt(
                        f"reference {reference!r} was already received for sku "
                        f"{sku!r} with quantity {seen}, not {quantity}"
                    )
                return ReceiveResult(self.stock(sku), (), True)
        on_hand = current.on_hand if current is not None else 0
        if on_hand + quantity > MAX_QUANTITY:
            raise InvalidQuantity(
                f"quantity {quantity} would put sku {sku!r} on hand above {MAX_QUANTITY}"
            )
        at = self._now()
        txn = self._txn(at)
        try:
            target = self._sku(txn, sku)
            txn.touch_sku(target)
            target.on_hand += quantity
            if expected is not None:
                self._receive_against(txn, target, expected, quantity)
            if reference is not None:
                target.receipts[reference] = quantity
                txn.undo.append(("receipt", target, reference))
            state.ledger._record(RECEIPT, sku, quantity, 0, None, reference, at)
            txn.events.append(StockReceived(sku, quantity, reference, at))
            self._fill(target, txn)
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish(txn, lambda events: ReceiveResult(self.stock(sku), events))

    @_writes
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
        check_text(sku, "sku")
        check_delta(delta, "delta")
        check_text(reason, "reason")
        state = self._state
        current = state.skus.get(sku)
        on_hand = current.on_hand if current is not None else 0
        if on_hand + delta < 0:
            raise InsufficientStock(
                f"delta {delta} would remove more than the {on_hand} units of sku {sku!r} on hand"
            )
        if on_hand + delta > MAX_QUANTITY:
            raise InvalidQuantity(
                f"delta {delta} would put sku {sku!r} on hand above {MAX_QUANTITY}"
            )
        at = self._now()
        txn = self._txn(at)
        reclaimed_units = 0
        try:
            target = self._sku(txn, sku)
            txn.touch_sku(target)
            excess = target.allocated - (target.on_hand + delta)
            reclaimed: list[_Line] = []
            # checkout holds are the newest claims: they give units back first
            for hold in sorted(target.holds.values(), key=lambda h: h.seq, reverse=True):
                if excess <= 0:
                    break
                take = min(hold.quantity, excess)
                self._shrink_hold(txn, hold, take, "adjustment")
                excess -= take
                reclaimed_units += take
            while excess > 0:
                line = target.lines[target.last_held()]
                take = min(line.allocated, excess)
                txn.touch_line(line)
                was_short = line.backordered > 0
                line.allocated -= take
                target.allocated -= take
                target.short += take
                if target.demand is not None:
                    target.demand.add(line, take)
                _resync(target, line, was_short, True)
                excess -= take
                reclaimed_units += take
                reclaimed.append(line)
                state.ledger._record(RELEASE, sku, 0, -take, line.order.id, "adjustment", at)
                txn.events.append(LineReleased(line.order.id, sku, take, "adjustment", at))
            for line in reclaimed:
                # short again: a fill-by deadline acted on while it was filled
                # applies again (expire() cancels it if the deadline has passed)
                deadline = line.order.deadline
                if deadline is not None:
                    item = (deadline, unpack(line.key)[1], line.order.id)
                    if item not in state.deadlines:
                        state.deadlines.add(item)
                        txn.undo.append(("deadline", item))
            target.on_hand += delta
            state.ledger._record(ADJUSTMENT, sku, delta, 0, None, reason, at)
            txn.events.append(StockAdjusted(sku, delta, reason, at))
            self._backordered_events(txn, reclaimed)
            self._fill(target, txn)
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish(
            txn, lambda events: AdjustResult(self.stock(sku), reclaimed_units, events)
        )

    def _pick(
        self, order_id: str, sku: str | None, quantity: int | None
    ) -> tuple[_OrderRecord, list[_Line]]:
        record = self._record(order_id)
        if sku is None:
            if quantity is not None:
                raise InvalidArgument(
                    f"quantity {quantity!r} needs a sku: a quantity applies to one line"
                )
            return record, list(record.lines)
        line = self._line(order_id, sku)
        if quantity is not None:
            check_quantity(quantity, "quantity")
        return record, [line]

    @_writes
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
        record, lines = self._pick(order_id, sku, quantity)
        plan: list[tuple[_Line, int, int]] = []
        for line in lines:
            open_units = line.backordered + line.allocated
            wanted = open_units if quantity is None else quantity
            if wanted > open_units:
                raise CannotCancel(
                    f"quantity {wanted} of order {order_id!r} sku {line.sku!r} cannot "
                    f"be cancelled: only {open_units} units can still be cancelled"
                )
            if wanted:
                from_short = min(wanted, line.backordered)
                plan.append((line, from_short, wanted - from_short))
        if not plan:
            what = f"order {order_id!r}" if sku is None else f"order {order_id!r} sku {sku!r}"
            raise CannotCancel(f"{what} has nothing left to cancel: 0 units can still be cancelled")
        state = self._state
        at = self._now()
        txn = self._txn(at)
        try:
            total = self._apply_cancel(txn, record, plan)
            if sku is None:
                txn.events.append(OrderCancelled(record.order.id, total, at))
            self._fill_all(txn, [line for line, _, _ in plan])
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish(
            txn, lambda events: CancelResult(self._order_status(record), total, events)
        )

    @_writes
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
        record, lines = self._pick(order_id, sku, quantity)
        if record.order.ship_complete:
            short = [(line.sku, line.backordered) for line in record.lines if line.backordered]
            if short:
                raise NotReadyToShip(
                    f"order {order_id!r} is ship-complete and still has units "
                    f"backordered: {', '.join(f'{s} {n}' for s, n in short)}"
                )
        plan: list[tuple[_Line, int]] = []
        for line in lines:
            wanted = line.allocated if quantity is None else quantity
            if wanted > line.allocated:
                raise NotReadyToShip(
                    f"quantity {wanted} of order {order_id!r} sku {line.sku!r} cannot "
                    f"ship: only {line.allocated} units are allocated and can ship"
                )
            if wanted:
                plan.append((line, wanted))
        if not plan:
            what = f"order {order_id!r}" if sku is None else f"order {order_id!r} sku {sku!r}"
            raise NotReadyToShip(f"{what} has nothing allocated: 0 units can ship")
        state = self._state
        at = self._now()
        txn = self._txn(at)
        total = 0
        try:
            for line, n in plan:
                target = state.skus[line.sku]
                txn.touch_line(line)
                txn.touch_sku(target)
                was_short = line.backordered > 0
                line.allocated -= n
                line.shipped += n
                target.allocated -= n
                target.on_hand -= n
                _resync(target, line, was_short, True)
                state.ledger._record(SHIPMENT, line.sku, -n, -n, record.order.id, None, at)
                txn.events.append(LineShipped(record.order.id, line.sku, n, at))
                total += n
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish(
            txn, lambda events: ShipResult(self._order_status(record), total, events)
        )

    def _apply_cancel(
        self, txn: _Txn, record: _OrderRecord, plan: list[tuple[_Line, int, int]]
    ) -> int:
        # Cancel (from_short, from_allocated) units of each planned line; the
        # caller runs the fill loop afterwards. Returns the units cancelled.
        state, at, order_id = self._state, txn.at, record.order.id
        total = 0
        for line, from_short, from_allocated in plan:
            target = state.skus[line.sku]
            txn.touch_line(line)
            txn.touch_sku(target)
            was_short, was_held = line.backordered > 0, line.allocated > 0
            line.cancelled += from_short + from_allocated
            target.short -= from_short
            if target.demand is not None:
                target.demand.add(line, -from_short)
            if from_allocated:
                line.allocated -= from_allocated
                target.allocated -= from_allocated
                state.ledger._record(RELEASE, line.sku, 0, -from_allocated, order_id, "cancel", at)
                txn.events.append(LineReleased(order_id, line.sku, from_allocated, "cancel", at))
            _resync(target, line, was_short, was_held)
            txn.events.append(LineCancelled(order_id, line.sku, from_short + from_allocated, at))
            total += from_short + from_allocated
        return total

    def _fill_all(self, txn: _Txn, lines: list[_Line]) -> None:
        seen: set[str] = set()
        for line in lines:
            if line.sku not in seen:
                seen.add(line.sku)
                self._fill(self._state.skus[line.sku], txn)

    # -- promises: scheduled supply, lead times, ETAs ---------------------------

    def _txn(self, at: datetime) -> _Txn:
        txn = _Txn(self._state, at)
        txn.eta_hook = self._eta_snapshot
        return txn

    def _eta_snapshot(self, txn: _Txn, sku: _Sku) -> None:
        # The SKU's ETAs before the operation: what the last operation left
        # (cached with the SKU's version), else computed now.
        if not _has_eta(sku):
            txn.eta_before[sku] = None  # every line's ETA is unknown
            return
        cached = sku.eta_cache
        if cached is not None and cached[0] == sku.version:
            txn.eta_before[sku] = cached[1]
        else:
            txn.eta_before[sku] = self._partitions(sku)
        txn.eta_tail[sku] = (
            sku.on_hand - sku.allocated,
            sku.queue[-1] if sku.queue else _FIRST_KEY,
            sku.supply,
            sku.lead_time,
        )

    def _partitions(self, sku: _Sku) -> _Partitions | None:
        # A SKU's ETAs as step functions of the queue key: x (the units a line
        # needs beyond what is available, through itself) never falls along
        # the line, so the lines sharing a date are a key range. For each
        # scheduled receipt j (and the tail beyond all of them), the key of
        # the first line whose date it is. O((r + 1) * (ranks + log n)).
        if not _has_eta(sku):
            return None
        dates, totals = sku.supply_curve()
        thresholds = [1] + [total + 1 for total in totals]
        available = sku.on_hand - sku.allocated
        demand = sku.demand_index()
        queue = sku.queue
        complete: list[float] = []
        first: list[float] = []
        for t in thresholds:
            key = demand.first_reaching(t + available)
            complete.append(_NO_KEY if key is None else key)
            target = t + available - 1  # the units ahead of a line's next unit
            if target <= 0:
                first.append(_FIRST_KEY)
                continue
            key = demand.first_reaching(target)
            if key is None:
                first.append(_NO_KEY)
            else:
                after = queue.bisect_right(key)
                first.append(queue[after] if after < len(queue) else _NO_KEY)
        return _Partitions(complete, first, dates, sku.lead_time)

    def _appended_only(self, sku: _Sku, last_key: float, new_orders: set[str]) -> bool:
        # Every line of the new orders on this SKU sits behind every line
        # that waited before (so nobody's need moved).
        for order_id in new_orders:
            for line in self._state.orders[order_id].lines:
                if line.sku == sku.sku and line.key <= last_key:
                    return False
        return True

    def _extend(self, sku: _Sku, before: _Partitions) -> _Partitions:
        # `before` with the ranges no line reached then recomputed: the
        # lines that joined at the back may reach them now.
        if _NO_KEY not in before.complete and _NO_KEY not in before.first:
            return before
        fresh = self._partitions(sku)
        assert fresh is not None
        return fresh

    def _old_eta(self, before: _Partitions | None, key: int, now: datetime) -> Eta:
        if before is None:
            return self._unknown
        at, basis = before.complete_at(key, now)
        if self._fast != _PARTIAL:
            return Eta(at, basis)
        first, first_basis = before.first_at(key, now)
        return Eta(at, basis, first, first_basis)

    def _eta_events(self, txn: _Txn) -> None:
        # EtaChanged for exactly the lines waiting before and after the
        # operation whose (at, basis) moved: compare the before and after
        # step functions and visit only the key ranges where they differ.
        # O((r + 1) * (ranks + log n) + changed * log n) per touched SKU.
        work = [
            (sku, before)
            for sku, before in txn.eta_before.items()
            if before is not None or _has_eta(sku)
        ]
        if not work:
            return
        new_orders = {entry[1] for entry in txn.undo if entry[0] == "order"}
        moved: dict[_Line, int] = {}
        for entry in txn.undo:
            if entry[0] == "tier":
                record, rank = entry[1], entry[3]
                for line in record.lines:
                    moved[line] = pack(rank, unpack(line.key)[1])
        now = txn.at
        changed_lines = {line.sku: line for line in txn.lines if line.order.id not in new_orders}
        for sku, before in work:
            available, last_key, supply, lead = txn.eta_tail.get(sku, (0, _NO_KEY, None, None))
            if (
                before is not None
                and not moved
                and sku.sku not in changed_lines
                and available == sku.on_hand - sku.allocated
                and supply is not None
                and supply is sku.supply
                and lead == sku.lead_time
                and self._appended_only(sku, last_key, new_orders)
            ):
                # Only new lines joined, behind everyone (the usual place):
                # nobody's date moved; only unreached ranges may start now.
                sku.eta_cache = (sku.version, self._extend(sku, before))
                continue
            after = self._partitions(sku)
            sku.eta_cache = (sku.version, after)
            if before is None and after is None:
                continue
            cuts = sorted(
                set(before.complete if before else ()) | set(after.complete if after else ())
            )
            bounds = [_FIRST_KEY, *cuts, _NO_KEY]
            for low, high in pairwise(bounds):
                if low >= high:
                    continue
                old = before.complete_at(low, now) if before else (None, UNKNOWN)
                new = after.complete_at(low, now) if after else (None, UNKNOWN)
                if old == new:
                    continue
                keys = sku.queue.irange(
                    None if low == _FIRST_KEY else int(low),
                    None if high == _NO_KEY else int(high),
                    inclusive=(True, False),
                )
                for key in keys:
                    line = sku.lines[key]
                    if line not in moved:
                        self._eta_event(txn, sku, line, before, key, new_orders)
            for line, old_key in moved.items():
                if line.sku == sku.sku and line.backordered > 0:
                    self._eta_event(txn, sku, line, before, old_key, new_orders)

    def _eta_event(
        self,
        txn: _Txn,
        sku: _Sku,
        line: _Line,
        before: _Partitions | None,
        old_key: int,
        new_orders: set[str],
    ) -> None:
        if line.order.id in new_orders:
            return  # joined during the operation: its ETA travels with LineBackordered
        snapshot = txn.lines.get(line)
        if snapshot is not None and line.ordered - sum(snapshot) <= 0:
            return  # was not waiting before the operation
        old = self._old_eta(before, old_key, txn.at)
        new = self._line_eta(sku, line, txn.at) if _has_eta(sku) else self._unknown
        if not new.same_date(old):
            txn.events.append(EtaChanged(line.order.id, line.sku, old, new, txn.at))

    def _find(self, sku: _Sku, need: int, now: datetime) -> tuple[datetime | None, str]:
        # When cumulative scheduled supply first covers `need` units.
        dates, totals = sku.supply_curve()
        if need > 0:
            k = bisect_left(totals, need)
            if k < len(totals):
                return dates[k], SCHEDULED
            if sku.lead_time is not None:
                return now + sku.lead_time, LEAD_TIME
        return None, UNKNOWN

    def _eta_from(
        self, sku: _Sku, ahead: int, short: int, now: datetime, available: int | None = None
    ) -> Eta:
        if available is None:
            available = sku.on_hand - sku.allocated
        at, basis = self._find(sku, ahead + short - available, now)
        if self._fast != _PARTIAL:
            return Eta(at, basis)
        # the line's next unit: when supply passes what the lines ahead need
        first, first_basis = self._find(sku, ahead - available + 1, now)
        return Eta(at, basis, first, first_basis)

    def _line_eta(self, sku: _Sku, line: _Line, now: datetime) -> Eta:
        return self._eta_from(sku, sku.demand_index().ahead(line), line.backordered, now)

    @_reads
    def eta(self, order_id: str, sku: str) -> Eta | None:
        """When the order's line for `sku` will be completely allocated.

        If every scheduled receipt arrives as planned and nothing else
        changes, under the book's policy: for a line with cumulative demand D
        (the backordered units of every line ahead of it, plus its own), the
        arrival of the first scheduled receipt at which available stock plus
        the receipts until then reach D (basis `"scheduled"`); beyond all
        scheduled supply, now plus the SKU's lead time (`"lead_time"`), or no
        date (`"unknown"`). Under partial fill, `first_unit_at` says when its
        first unit is allocated. None when nothing of the line is backordered.

        Raises:
            UnknownOrder, UnknownSku, ArgumentTypeError, InvalidArgument: as `line`.

        Cost: O(log n + log r) for r scheduled receipts of the SKU (the first
        call on a SKU builds its demand index, O(n log n)).
        """
        line = self._line(order_id, sku)
        if line.backordered <= 0:
            return None
        target = self._state.skus[line.sku]
        if not _has_eta(target):
            return self._unknown
        return self._line_eta(target, line, self._now())

    @_reads
    def eta_for_order(self, order_id: str) -> OrderEta:
        """The order's promised date: the latest of its lines' (the one that
        matters for a ship-complete order), and each line's ETA.

        `OrderEta.eta` is None when nothing is backordered; its basis is the
        weakest of the lines' (`"unknown"` over `"lead_time"` over
        `"scheduled"`).

        Raises:
            UnknownOrder, ArgumentTypeError, InvalidArgument: as `status`.

        Cost: O(lines of the order * (log n + log r)).
        """
        record = self._record(order_id)
        lines = tuple((line.sku, self.eta(order_id, line.sku)) for line in record.lines)
        etas = [eta for _, eta in lines if eta is not None]
        latest: Eta | None = None
        if etas:
            basis = max((eta.basis for eta in etas), key=_BASIS_RANK.__getitem__)
            dates = [eta.at for eta in etas if eta.at is not None]
            at = None if basis == UNKNOWN else max(dates)
            latest = Eta(at, basis)
        return OrderEta(order_id, record.order.ship_complete, latest, lines)

    @_reads
    def promise(self, sku: str, quantity: int, tier: str = "standard") -> Eta | None:
        """What `eta` would say for a line of `quantity` units of `sku`, in
        `tier`, placed now — without placing anything. None when stock on hand
        would fill it at once.

        Raises:
            ArgumentTypeError, InvalidArgument: bad `sku` or `tier`.
            QuantityTypeError, InvalidQuantity: bad `quantity`.
            UnknownTier: (from `PriorityTiers`) the tier is unknown.
            PolicyError: the policy's rank is not an int.

        Cost: O(ranks + log r).
        """
        check_text(sku, "sku")
        check_quantity(quantity, "quantity")
        check_text(tier, "tier")
        probe = Order("promise", (OrderLine(sku, quantity),), tier=tier)
        rank = self._rank(probe)
        target = self._state.skus.get(sku)
        if target is None:
            return self._unknown
        available = target.on_hand - target.allocated
        ahead = target.demand_index().through_rank(rank) if target.queue else 0
        short = quantity
        if ahead == 0 and available > 0:
            # the new line would be the head: the fill loop serves it at once
            if quantity <= available:
                return None
            if self._fast != _STRICT:
                short, available = quantity - available, 0
        if not _has_eta(target):
            return self._unknown
        return self._eta_from(target, ahead, short, self._now(), available)

    @_writes
    def expect(
        self, sku: str, quantity: int, arriving: datetime | date, reference: str
    ) -> ExpectResult:
        """Record a scheduled receipt: `quantity` units of `sku` due at `arriving`.

        A purchase order or a production run. It never counts as stock on
        hand (nothing is allocated from it) but sets the ETAs of the lines it
        will serve. A `date` means the start of that day in UTC. Events:
        `SupplyExpected`, and `EtaChanged` for every waiting line whose ETA moved.

        Raises:
            ArgumentTypeError, InvalidArgument: bad `sku` or `reference`, a
                naive `arriving`.
            QuantityTypeError, InvalidQuantity: bad `quantity`.
            DuplicateReference: `reference` is already an expected receipt.

        Cost: O(log r), plus O(n) to find the ETAs that moved.
        """
        check_text(sku, "sku")
        check_quantity(quantity, "quantity")
        when = arrival(arriving, "arriving")
        check_text(reference, "reference")
        state = self._state
        if reference in state.expected:
            raise DuplicateReference(
                f"reference {reference!r} is already an expected receipt "
                f"(of sku {state.expected[reference].sku!r})"
            )
        txn = self._txn(self._now())
        try:
            target = self._sku(txn, sku)
            txn.touch_sku(target)
            txn.undo.append(("expected_seq", state.expected_seq))
            state.expected_seq += 1
            expected = _Expected(reference, sku, quantity, when, state.expected_seq)
            _schedule(state, expected)
            txn.undo.append(("expected_new", expected))
            txn.events.append(SupplyExpected(reference, sku, quantity, when, txn.at))
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish_expected(txn, expected)

    def _finish_expected(self, txn: _Txn, expected: _Expected) -> ExpectResult:
        return self._finish(
            txn,
            lambda events: ExpectResult(
                expected.reference, expected.sku, expected.quantity, expected.arriving, events
            ),
        )

    def _expected(self, reference: object) -> _Expected:
        expected = self._state.expected.get(check_text(reference, "reference"))
        if expected is None:
            raise UnknownReference(f"reference {reference!r} is not an expected receipt")
        return expected

    @_writes
    def update_expected(
        self,
        reference: str,
        quantity: int | None = None,
        arriving: datetime | date | None = None,
    ) -> ExpectResult:
        """Resize or move a scheduled receipt (a delayed or changed purchase order).

        Events: `SupplyExpected` with the new values, and `EtaChanged` for
        every waiting line whose ETA moved.

        Raises:
            UnknownReference: no expected receipt `reference`.
            QuantityTypeError, InvalidQuantity: bad `quantity`.
            ArgumentTypeError, InvalidArgument: a naive or wrong-typed `arriving`.

        Cost: O(log r), plus O(n) to find the ETAs that moved.
        """
        expected = self._expected(reference)
        new_quantity = (
            expected.quantity if quantity is None else check_quantity(quantity, "quantity")
        )
        when = expected.arriving if arriving is None else arrival(arriving, "arriving")
        state = self._state
        txn = self._txn(self._now())
        try:
            txn.touch_sku(state.skus[expected.sku])
            txn.undo.append(("expected_set", expected, expected.quantity, expected.arriving))
            _unschedule(state, expected)
            expected.quantity, expected.arriving = new_quantity, when
            _schedule(state, expected)
            txn.events.append(
                SupplyExpected(expected.reference, expected.sku, new_quantity, when, txn.at)
            )
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish_expected(txn, expected)

    @_writes
    def cancel_expected(self, reference: str) -> ExpectResult:
        """Drop a scheduled receipt. Events: `SupplyCancelled`, `EtaChanged`s.

        Raises:
            UnknownReference: no expected receipt `reference`.

        Cost: O(log r), plus O(n) to find the ETAs that moved.
        """
        expected = self._expected(reference)
        state = self._state
        txn = self._txn(self._now())
        try:
            txn.touch_sku(state.skus[expected.sku])
            _unschedule(state, expected)
            txn.undo.append(("expected_gone", expected))
            txn.events.append(
                SupplyCancelled(expected.reference, expected.sku, expected.quantity, txn.at)
            )
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish_expected(txn, expected)

    def _receive_against(self, txn: _Txn, target: _Sku, expected: _Expected, quantity: int) -> None:
        # A delivery against a scheduled receipt: what arrived is no longer expected.
        state = self._state
        if quantity >= expected.quantity:
            _unschedule(state, expected)
            txn.undo.append(("expected_gone", expected))
        else:
            txn.undo.append(("expected_set", expected, expected.quantity, expected.arriving))
            _unschedule(state, expected)
            expected.quantity -= quantity
            _schedule(state, expected)

    @_reads
    def expected(self, sku: str) -> tuple[ExpectResult, ...]:
        """Every scheduled receipt of `sku`, in date order (events empty).

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.

        Cost: O(r).
        """
        check_text(sku, "sku")
        target = self._state.skus.get(sku)
        if target is None:
            return ()
        return tuple(
            ExpectResult(ref, sku, target.expected[ref].quantity, arriving, ())
            for arriving, _, ref in target.schedule
        )

    @_writes
    def set_lead_time(self, sku: str, lead_time: timedelta | None) -> SettingResult:
        """Set the supplier lead time of `sku` (None: none known).

        Demand beyond all scheduled supply then gets the estimate now + lead
        time (basis `"lead_time"`). Events: `EtaChanged` for every waiting
        line whose ETA moved.

        Raises:
            ArgumentTypeError, InvalidArgument: bad `sku`; `lead_time` not a
                positive `timedelta` or None.

        Cost: O(n) to find the ETAs that moved.
        """
        check_text(sku, "sku")
        if lead_time is not None:
            if not isinstance(lead_time, timedelta):
                raise ArgumentTypeError(
                    f"lead_time must be a timedelta, got {type(lead_time).__name__} {lead_time!r}"
                )
            if lead_time <= timedelta(0):
                raise InvalidArgument(f"lead_time must be positive, got {lead_time!r}")
        state = self._state
        txn = self._txn(self._now())
        try:
            target = self._sku(txn, sku)
            txn.touch_sku(target)
            txn.undo.append(("lead_time", target, target.lead_time))
            target.lead_time = lead_time
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish(txn, SettingResult)

    @_reads
    def lead_time(self, sku: str) -> timedelta | None:
        """The supplier lead time of `sku`, or None. Cost: O(1).

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.
        """
        check_text(sku, "sku")
        target = self._state.skus.get(sku)
        return None if target is None else target.lead_time

    # -- shop controls: caps, deadlines, holds, tiers -----------------------

    @_writes
    def set_backorder_limit(self, sku: str, units: int | None) -> SettingResult:
        """Cap the units that may wait backordered on `sku` (None: no cap).

        `place` refuses, whole, an order that would take the SKU's backordered
        units past the cap (`BackorderLimitExceeded`), and `can_place` says so
        in advance. A count correction (`adjust`) that takes allocated units
        back can still push the total past the cap — the units are gone
        either way — and then no new backorder is accepted until it is below.
        0 means no backorders at all: only orders that stock on hand fills.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.
            QuantityTypeError, InvalidQuantity: `units` is not None or an int
                from 0 to 2**63 - 1.
            BackorderLimitExceeded: `units` is below what is already backordered.

        Cost: O(1).
        """
        check_text(sku, "sku")
        if units is not None and units != 0:
            check_quantity(units, "units")
        elif units is not None and (not isinstance(units, int) or isinstance(units, bool)):
            check_quantity(units, "units")  # raises: 0 of the wrong type
        state = self._state
        current = state.skus.get(sku)
        short = current.short if current is not None else 0
        if units is not None and units < short:
            raise BackorderLimitExceeded(
                f"backorder limit {units} for sku {sku!r} is below the {short} units "
                f"already backordered"
            )
        txn = self._txn(self._now())
        try:
            target = self._sku(txn, sku)
            txn.undo.append(("limit", target, target.limit))
            target.limit = units
        except BaseException:  # pragma: no cover - nothing above can fail once checked
            txn.rollback(state)
            raise
        return self._finish(txn, SettingResult)

    @_reads
    def backorder_limit(self, sku: str) -> int | None:
        """The backorder cap of `sku`, or None when it has none.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.

        Cost: O(1).
        """
        check_text(sku, "sku")
        current = self._state.skus.get(sku)
        return None if current is None else current.limit

    @_reads
    def backordered(self, sku: str) -> int:
        """The units waiting backordered on `sku`, over all lines.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.

        Cost: O(1).
        """
        check_text(sku, "sku")
        current = self._state.skus.get(sku)
        return 0 if current is None else current.short

    @_writes
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
        state = self._state
        at = self._now()
        when = at if now is None else check_aware(now, "now")
        self._store.ensure_due(when)  # a lazily loaded book loads the orders due
        txn = self._txn(at)
        expired: list[str] = []
        released: list[str] = []
        try:
            freed: list[_Line] = []
            deadlines = state.deadlines
            while deadlines and deadlines[0][0] <= when:
                item = deadlines.pop(0)
                txn.undo.append(("deadline_gone", item))
                record = state.orders[item[2]]
                if not any(line.backordered for line in record.lines):
                    continue  # filled (or cancelled) in time
                complete = record.order.ship_complete
                plan = [
                    (line, line.backordered, line.allocated if complete else 0)
                    for line in record.lines
                    if line.backordered or (complete and line.allocated)
                ]
                total = self._apply_cancel(txn, record, plan)
                txn.events.append(OrderExpired(record.order.id, total, at))
                expired.append(record.order.id)
                freed.extend(line for line, _, _ in plan)
            expiry = state.hold_expiry
            while expiry and expiry[0][0] <= when:
                hold = state.holds[expiry[0][1]]
                self._shrink_hold(txn, hold, hold.quantity, "expired")
                state.expired_holds.add(hold.hold_id)
                txn.undo.append(("expired_hold", hold.hold_id))
                released.append(hold.hold_id)
                self._fill(state.skus[hold.sku], txn)
            self._fill_all(txn, freed)
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish(
            txn, lambda events: ExpireResult(tuple(expired), tuple(released), events)
        )

    def _shrink_hold(self, txn: _Txn, hold: _Hold, units: int, reason: str) -> None:
        # Give `units` held units back (all of them drops the hold); no fill.
        state = self._state
        target = state.skus[hold.sku]
        txn.touch_sku(target)
        target.allocated -= units
        state.ledger._record(RELEASE, hold.sku, 0, -units, None, hold.hold_id, txn.at)
        txn.events.append(HoldReleased(hold.hold_id, hold.sku, units, reason, txn.at))
        if units == hold.quantity:
            txn.undo.append(("hold_gone", hold))
            _drop_hold(state, hold)
        else:
            txn.undo.append(("hold_qty", hold, hold.quantity))
            hold.quantity -= units

    def _take_hold(self, txn: _Txn, hold: _Hold, line: _Line) -> None:
        # Move a confirmed hold's units to the new order's line: the hold is
        # released in the ledger and the line allocated, with no fill between,
        # so nobody else can take them; what the line does not need is freed.
        state, at = self._state, txn.at
        target = state.skus[hold.sku]
        held = hold.quantity
        self._shrink_hold(txn, hold, held, "confirmed")
        txn.events.pop()  # reported below as HoldConfirmed (and a release of the rest)
        n = min(held, line.ordered)
        txn.touch_line(line)
        line.allocated = n
        target.allocated += n
        target.hold(line.key)
        state.ledger._record(ALLOCATION, hold.sku, 0, n, line.order.id, hold.hold_id, at)
        txn.events.append(HoldConfirmed(hold.hold_id, line.order.id, hold.sku, n, at))
        txn.events.append(LineAllocated(line.order.id, hold.sku, n, at))
        if held > n:
            txn.events.append(HoldReleased(hold.hold_id, hold.sku, held - n, "confirmed", at))

    @_writes
    def hold(
        self,
        sku: str,
        quantity: int,
        ttl: timedelta,
        hold_id: str | None = None,
    ) -> HoldResult:
        """Reserve `quantity` available units of `sku` for a checkout in progress.

        The units are allocated to nobody else until `confirm_hold` turns them
        into an order, `release_hold` gives them back, or `expire` finds the
        `ttl` has run out. A hold never jumps the line: while any line waits
        on `sku` (even a strict-FIFO head that is blocked), nothing can be held.

        Args:
            hold_id: the checkout's id; a new one (`"H-1"`, ...) when None.

        Raises:
            ArgumentTypeError, InvalidArgument: bad `sku`, `hold_id`, or `ttl`
                not a positive `timedelta`.
            QuantityTypeError, InvalidQuantity: bad `quantity`.
            DuplicateHold: a hold with `hold_id` is active.
            InsufficientStock: a line is waiting on `sku`, or fewer than
                `quantity` units are available.

        Cost: O(log h) for h active holds.
        """
        check_text(sku, "sku")
        check_quantity(quantity, "quantity")
        if not isinstance(ttl, timedelta):
            raise ArgumentTypeError(f"ttl must be a timedelta, got {type(ttl).__name__} {ttl!r}")
        if ttl <= timedelta(0):
            raise InvalidArgument(f"ttl must be positive, got {ttl!r}")
        state = self._state
        if hold_id is not None:
            check_text(hold_id, "hold_id")
            if hold_id in state.holds:
                raise DuplicateHold(f"hold_id {hold_id!r} is already an active hold")
        current = state.skus.get(sku)
        if current is not None and current.queue:
            raise InsufficientStock(
                f"sku {sku!r} has {len(current.queue)} lines waiting: its stock goes to "
                f"them first, so quantity {quantity} cannot be held"
            )
        available = 0 if current is None else current.on_hand - current.allocated
        if quantity > available:
            raise InsufficientStock(
                f"quantity {quantity} of sku {sku!r} cannot be held: only {available} available"
            )
        at = self._now()
        txn = self._txn(at)
        try:
            txn.undo.append(("hold_seq", state.hold_seq))
            state.hold_seq += 1
            if hold_id is None:
                hold_id = f"H-{state.hold_seq}"
                while hold_id in state.holds or hold_id in state.expired_holds:
                    state.hold_seq += 1
                    hold_id = f"H-{state.hold_seq}"
            assert current is not None
            hold = _Hold(hold_id, sku, quantity, at + ttl, state.hold_seq)
            if hold_id in state.expired_holds:  # an expired id used again
                state.expired_holds.discard(hold_id)
                txn.undo.append(("expired_hold_gone", hold_id))
            _add_hold(state, hold)
            txn.undo.append(("hold_new", hold))
            txn.touch_sku(current)
            current.allocated += quantity
            state.ledger._record(HOLD, sku, 0, quantity, None, hold_id, at)
            txn.events.append(StockHeld(hold_id, sku, quantity, hold.expires_at, at))
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish(
            txn,
            lambda events: HoldResult(
                hold_id, sku, quantity, hold.expires_at, self.stock(sku), events
            ),
        )

    def _active_hold(self, hold_id: object) -> _Hold:
        hold = self._state.holds.get(check_text(hold_id, "hold_id"))
        if hold is None:
            if hold_id in self._state.expired_holds:
                raise HoldExpired(f"hold_id {hold_id!r} expired: its units went back to the line")
            raise UnknownHold(f"hold_id {hold_id!r} is not an active hold")
        return hold

    @_writes
    def release_hold(self, hold_id: str) -> HoldResult:
        """Give a hold's units back: they go to the head of the line at once.

        Raises:
            UnknownHold: no active hold `hold_id`.
            HoldExpired: the hold expired already.
            PolicyError: a custom policy's allot returned a bad value.

        Cost: O(log h) plus the fill.
        """
        hold = self._active_hold(hold_id)
        state = self._state
        txn = self._txn(self._now())
        try:
            self._shrink_hold(txn, hold, hold.quantity, "released")
            self._fill(state.skus[hold.sku], txn)
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish(
            txn,
            lambda events: HoldResult(
                hold.hold_id, hold.sku, hold.quantity, hold.expires_at, self.stock(hold.sku), events
            ),
        )

    @_writes
    def confirm_hold(self, hold_id: str, order: Order) -> PlaceResult:
        """Turn a hold into an order whose line for the held SKU is already allocated.

        The order is placed as by `place` (its key, caps and deadline
        included), except that its line for the hold's SKU first takes the
        held units: up to its quantity; what it needs beyond waits in line
        as usual, what it does not need goes to the line at once.

        Raises:
            UnknownHold: no active hold `hold_id`.
            HoldExpired: the hold expired (by `expire`, or its time is up).
            InvalidOrder: the order has no line for the hold's SKU.
            BackorderError: the errors of `place` (a duplicate id included: a
                hold is confirmed once).

        Cost: that of `place`.
        """
        hold = self._active_hold(hold_id)
        if not isinstance(order, Order):
            raise ArgumentTypeError(f"order must be an Order, got {type(order).__name__} {order!r}")
        if hold.expires_at <= self._now():
            raise HoldExpired(
                f"hold_id {hold_id!r} ran out at {hold.expires_at.isoformat()}: "
                f"confirm before it runs out"
            )
        if all(line.sku != hold.sku for line in order.lines):
            raise InvalidOrder(
                f"order {order.id!r} has no line for sku {hold.sku!r} of hold {hold_id!r}"
            )
        result = self._place(order, hold, dry_run=False)
        assert result is not None
        return result

    @_writes
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
        record = self._record(order_id)
        check_text(tier, "tier")
        old = record.order
        if tier == old.tier:
            return TierResult(self._order_status(record), ())
        new = old._with_tier(tier)
        rank = self._rank(new)
        state = self._state
        txn = self._txn(self._now())
        try:
            for line in record.lines:
                txn.touch_sku(state.skus[line.sku])
            txn.undo.append(("tier", record, old, record.rank))
            _rekey(state, record, new, rank)
            txn.events.append(TierChanged(order_id, old.tier, tier, txn.at))
            self._fill_all(txn, list(record.lines))
        except BaseException:
            txn.rollback(state)
            raise
        return self._finish(txn, lambda events: TierResult(self._order_status(record), events))

    # -- self-check ------------------------------------------------------------

    def _check(self) -> None:
        """Verify every internal invariant; raise AssertionError naming the first broken.

        For tests and stress runs. Cost: O(orders + lines + ledger entries).
        """
        state = self._state
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
            assert sku.short == sum(line.backordered for line in lines), name
            for hold_id, hold in sku.holds.items():
                assert state.holds.get(hold_id) is hold, hold_id
                assert hold.sku == name, hold_id
                assert hold.quantity > 0, hold_id
            assert list(sku.queue) == sorted(k for k, ln in sku.lines.items() if ln.backordered > 0)
            assert sku.held == {k for k, ln in sku.lines.items() if ln.allocated > 0}, name
            assert sku.held <= {-k for k in sku.held_heap}, name
            balance = state.ledger.balance(name)
            assert (balance.on_hand, balance.allocated) == (sku.on_hand, sku.allocated), name
            available = sku.on_hand - sku.allocated
            if available > 0 and sku.queue:
                head = sku.lines[sku.queue[0]]
                allot = self._policy.allot(_line_status(head), available)
                assert allot == 0, ("not work-conserving", name, available, allot)
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
                assert total == sku.short, name
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
