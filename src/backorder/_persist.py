"""The book's state as rows, and back: what a row repository stores.

`changes_of` turns one operation's undo record into the rows it changed
(O(what the operation touched)); `state_of` rebuilds the whole working state
from a `Snapshot` (O(n log n) in lines, the sort of each SKU's line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from heapq import heapify
from typing import TYPE_CHECKING, Any, TypeVar

from sortedcontainers import SortedList

from ._codec import (
    event_text,
    micros_timedelta,
    order_text,
    text_event,
    text_order,
    text_time,
    time_text,
    timedelta_micros,
)
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
from .errors import ConcurrencyConflict, StorageCorrupted
from .events import Event
from .ledger import StockLedger
from .storage import (
    Changes,
    DeadlineRow,
    ExpectedRow,
    HoldRow,
    InMemoryRepository,
    LedgerRow,
    LineRow,
    OrderRow,
    ReceiptRow,
    Repository,
    SkuRow,
    Snapshot,
)

if TYPE_CHECKING:
    from .book import _Txn

_T = TypeVar("_T")


def _sku_row(sku: _Sku) -> SkuRow:
    return SkuRow(
        sku.sku, sku.on_hand, sku.allocated, sku.slots, sku.limit, timedelta_micros(sku.lead_time)
    )


def _line_row(line: _Line) -> LineRow:
    rank, seq = unpack(line.key)
    return LineRow(
        line.order.id,
        line.sku,
        rank,
        seq,
        line.slot,
        line.ordered,
        line.allocated,
        line.shipped,
        line.cancelled,
    )


def _order_row(record: _OrderRecord) -> OrderRow:
    return OrderRow(
        record.order.id, unpack(record.lines[0].key)[1], record.rank, order_text(record.order)
    )


def _final(
    keys: dict[str, None], now: Mapping[str, Any], row: Callable[[Any], _T]
) -> tuple[list[_T], list[str]]:
    # The rows of the touched keys still present, and the keys now gone.
    rows = [row(now[key]) for key in keys if key in now]
    return rows, [key for key in keys if key not in now]


def changes_of(state: _State, txn: _Txn) -> Changes:
    """The rows `txn`'s operation changed, as they are now, and its events."""
    skus: dict[str, None] = {}
    lines: dict[_Line, None] = dict.fromkeys(txn.lines)
    orders: dict[str, None] = {}
    receipts: list[ReceiptRow] = []
    holds: dict[str, Any] = {}
    expired: dict[str, None] = {}
    expected: dict[str, None] = {}
    deadlines: dict[str, None] = {}
    for sku in txn.skus:
        skus[sku.sku] = None
    for line in txn.lines:
        skus[line.sku] = None
    for entry in txn.undo:
        kind = entry[0]
        if kind == "sku":
            skus[entry[1]] = None
        elif kind in {"order", "tier"}:
            record = state.orders.get(entry[1]) if kind == "order" else entry[1]
            if record is not None:
                orders[record.order.id] = None
                for line in record.lines:
                    lines[line] = None
                    skus[line.sku] = None
        elif kind == "receipt":
            sku = entry[1]
            skus[sku.sku] = None
            receipts.append(ReceiptRow(sku.sku, entry[2], sku.receipts[entry[2]]))
        elif kind in ("limit", "lead_time"):
            skus[entry[1].sku] = None
        elif kind in ("deadline", "deadline_gone"):
            deadlines[entry[1][2]] = None
        elif kind in ("hold_new", "hold_gone", "hold_qty"):
            hold = entry[1]
            holds[hold.hold_id] = None
            skus[hold.sku] = None
        elif kind in ("expired_hold", "expired_hold_gone"):
            expired[entry[1]] = None
        elif kind in ("expected_new", "expected_gone", "expected_set"):
            expected[entry[1].reference] = None
            skus[entry[1].sku] = None
    pending = {item[2]: item for item in state.deadlines} if deadlines else {}
    deadline_rows, deadlines_deleted = _final(
        deadlines, pending, lambda item: DeadlineRow(item[2], time_text(item[0]), item[1])
    )
    hold_rows, holds_deleted = _final(
        holds,
        state.holds,
        lambda hold: HoldRow(
            hold.hold_id, hold.sku, hold.quantity, time_text(hold.expires_at), hold.seq
        ),
    )
    expected_rows, expected_deleted = _final(
        expected,
        state.expected,
        lambda item: ExpectedRow(
            item.reference, item.sku, item.quantity, time_text(item.arriving), item.seq
        ),
    )
    ledger = state.ledger
    return Changes(
        counters={
            "seq": state.seq,
            "hold_seq": state.hold_seq,
            "expected_seq": state.expected_seq,
        },
        skus=[_sku_row(state.skus[name]) for name in skus if name in state.skus],
        orders=[_order_row(state.orders[order_id]) for order_id in orders],
        lines=[_line_row(line) for line in lines],
        receipts=receipts,
        holds=hold_rows,
        holds_deleted=holds_deleted,
        expired_holds=[i for i in expired if i in state.expired_holds],
        expired_holds_deleted=[i for i in expired if i not in state.expired_holds],
        expected=expected_rows,
        expected_deleted=expected_deleted,
        deadlines=deadline_rows,
        deadlines_deleted=deadlines_deleted,
        ledger=[
            LedgerRow(*row[:7], time_text(row[7]), row[8], row[9])
            for row in ledger._since(txn.mark)
        ],
        events=[event_text(event) for event in txn.events],
    )


def state_of(snapshot: Snapshot) -> _State:
    """A working state rebuilt from every row of a repository.

    Raises:
        StorageCorrupted: rows that contradict each other (a line of an order
            never stored, an order with a line missing, ...).
    """
    try:
        return _build(snapshot)
    except StorageCorrupted:
        raise
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise StorageCorrupted(f"stored rows do not make a book: {exc!r}") from exc


def _set_sku(sku: _Sku, row: SkuRow) -> _Sku:
    # A SKU's stored counters and settings onto its working record.
    sku.on_hand, sku.allocated, sku.slots, sku.limit = (
        row.on_hand,
        row.allocated,
        row.slots,
        row.limit,
    )
    sku.lead_time = micros_timedelta(row.lead_time_us)
    return sku


def _hold(row: HoldRow) -> _Hold:
    return _Hold(row.hold_id, row.sku, row.quantity, text_time(row.expires_at), row.seq)


def _expected(row: ExpectedRow) -> _Expected:
    return _Expected(row.reference, row.sku, row.quantity, text_time(row.arriving), row.seq)


def _build(snapshot: Snapshot) -> _State:
    state = _State()
    counters = snapshot.counters
    state.seq = counters.get("seq", 0)
    state.hold_seq = counters.get("hold_seq", 0)
    state.expected_seq = counters.get("expected_seq", 0)
    skus = state.skus
    for row in snapshot.skus:
        skus[row.sku] = _set_sku(_Sku(row.sku), row)
    by_order: dict[str, dict[str, LineRow]] = {}
    for line_row in snapshot.lines:
        by_order.setdefault(line_row.order_id, {})[line_row.sku] = line_row
    queued: dict[str, list[int]] = {}
    for order_row in snapshot.orders:
        order = text_order(order_row.order)
        rows = by_order.pop(order_row.order_id)
        built = []
        for order_line in order.lines:
            row_l = rows.pop(order_line.sku)
            sku = skus[row_l.sku]
            key = pack(row_l.rank, row_l.seq)
            line = _Line(order, row_l.sku, key, row_l.ordered)
            line.slot = row_l.slot
            line.allocated, line.shipped, line.cancelled = (
                row_l.allocated,
                row_l.shipped,
                row_l.cancelled,
            )
            short = line.backordered
            if short < 0 or min(line.allocated, line.shipped, line.cancelled) < 0:
                raise StorageCorrupted(f"line {row_l!r} has negative counters")
            sku.lines[key] = line
            if short:
                sku.short += short
                queued.setdefault(row_l.sku, []).append(key)
            if line.allocated:
                sku.held.add(key)
            built.append(line)
        if rows:
            raise StorageCorrupted(
                f"order {order_row.order_id!r} has stored lines {sorted(rows)!r} it does not list"
            )
        state.orders[order_row.order_id] = _OrderRecord(order, order_row.rank, tuple(built))
    if by_order:
        raise StorageCorrupted(f"lines stored for orders never stored: {sorted(by_order)[:5]!r}")
    for name, keys in queued.items():
        skus[name].queue = SortedList(keys)
    for sku in skus.values():
        sku.held_heap = [-key for key in sku.held]
        heapify(sku.held_heap)
    for receipt in snapshot.receipts:
        skus[receipt.sku].receipts[receipt.reference] = receipt.quantity
    for hold_row in sorted(snapshot.holds, key=lambda row: row.seq):
        _add_hold(state, _hold(hold_row))
    state.expired_holds.update(snapshot.expired_holds)
    for row_e in sorted(snapshot.expected, key=lambda row: row.seq):
        _schedule(state, _expected(row_e))
    state.deadlines.update(
        (text_time(row.deadline), row.seq, row.order_id) for row in snapshot.deadlines
    )
    state.ledger = _ledger_of(snapshot.ledger)
    return state


def apply_changes(
    state: _State, changes: Changes, lazy: bool = False, loading: frozenset[str] = frozenset()
) -> set[str]:
    """Bring a working state up to date with rows read from the repository.

    Eager (`lazy` False): `changes` is what `Repository.load_changes` returns,
    every row written since the state's version, applied whole. Lines are
    updated in place (an order record keeps its line objects) and moved in
    their SKU's line when their key changed.

    Lazy: the state holds only some SKUs (`state.skus`), every order with a
    line on one of them (complete: its lines on other SKUs are kept as
    detached "stub" lines), and the ledger of those SKUs. Rows of other SKUs
    are skipped; `loading` names SKUs being loaded now, whose rows are taken
    whole. A line on an already loaded SKU that is not in `loading` is left
    as it is during a load (its SKU is kept at its own version; catching up
    brings both forward together).

    Returns the SKUs of holds on SKUs not loaded (a lazy state loads every
    SKU with an active hold). ETA caches of the SKUs concerned are dropped.
    Applying the same rows twice changes nothing. Cost: O(rows x log n).
    """
    counters = changes.counters
    if lazy:  # a load may read a newer version than the state's: never go back
        state.seq = max(state.seq, counters.get("seq", 0))
        state.hold_seq = max(state.hold_seq, counters.get("hold_seq", 0))
        state.expected_seq = max(state.expected_seq, counters.get("expected_seq", 0))
    else:
        state.seq = counters.get("seq", state.seq)
        state.hold_seq = counters.get("hold_seq", state.hold_seq)
        state.expected_seq = counters.get("expected_seq", state.expected_seq)
    skus = state.skus
    touched: set[str] = set()
    for row in changes.skus:
        sku = skus.get(row.sku)
        if sku is None:
            if lazy and row.sku not in loading:
                continue
            sku = skus[row.sku] = _Sku(row.sku)
        elif lazy and loading and row.sku not in loading:
            continue
        _set_sku(sku, row)
        touched.add(row.sku)
    # which orders this state keeps: those it has, and those with a line on a loaded SKU
    relevant = {row.order_id for row in changes.lines if row.sku in skus}
    known = set(state.orders) if loading else set()
    for order_row in changes.orders:
        record = state.orders.get(order_row.order_id)
        if record is None:
            if lazy and order_row.order_id not in relevant:
                continue
            order = text_order(order_row.order)
            state.orders[order_row.order_id] = _OrderRecord(order, order_row.rank, ())
        elif not (lazy and loading):
            order = text_order(order_row.order)
            record.order, record.rank = order, order_row.rank
            for kept in record.lines:
                kept.order = order
    new_lines: dict[str, dict[str, _Line]] = {}
    for row_l in changes.lines:
        record = state.orders.get(row_l.order_id)
        sku = skus.get(row_l.sku)
        if record is None or (sku is None and not lazy):
            if lazy:
                continue  # an order with no line on a loaded SKU
            raise StorageCorrupted(f"line {row_l!r} of an order or SKU never stored")
        key = pack(row_l.rank, row_l.seq)
        line: _Line | None = None
        for existing in record.lines:
            if existing.sku == row_l.sku:
                line = existing
                break
        fresh = line is None
        if line is None:
            line = _Line(record.order, row_l.sku, key, row_l.ordered)
            new_lines.setdefault(row_l.order_id, {})[row_l.sku] = line
        elif loading and sku is not None and row_l.sku not in loading:
            continue  # (lazy load) a loaded SKU keeps its own version
        else:
            old = line.key
            if sku is not None and sku.lines.get(old) is line:
                sku.short -= line.backordered
                sku.queue.discard(old)
                sku.held.discard(old)  # its heap entry goes stale
                del sku.lines[old]
        line.key = key
        line.slot = row_l.slot
        line.allocated, line.shipped, line.cancelled = (
            row_l.allocated,
            row_l.shipped,
            row_l.cancelled,
        )
        if sku is None or (fresh and loading and row_l.sku not in loading):
            continue  # a stub: its SKU is not loaded (or is, at another version)
        touched.add(row_l.sku)
        sku.lines[key] = line
        short = line.backordered
        if short:
            sku.short += short
            sku.queue.add(key)
        if line.allocated:
            sku.hold(key)
    for order_id, lines in new_lines.items():
        record = state.orders[order_id]
        record.lines = tuple(lines[order_line.sku] for order_line in record.order.lines)
    for receipt in changes.receipts:
        if receipt.sku in skus and not (loading and receipt.sku not in loading):
            skus[receipt.sku].receipts[receipt.reference] = receipt.quantity
    for hold_id in changes.holds_deleted:
        hold = state.holds.get(hold_id)
        if hold is not None:
            _drop_hold(state, hold)
    elsewhere: set[str] = set()
    for hold_row in changes.holds:
        if hold_row.sku not in skus:
            elsewhere.add(hold_row.sku)
            continue
        if loading and hold_row.sku not in loading:
            continue
        hold = state.holds.get(hold_row.hold_id)
        if hold is None:
            _add_hold(state, _hold(hold_row))
        else:  # in place: a SKU's holds stay oldest first
            state.hold_expiry.discard((hold.expires_at, hold.hold_id))
            hold.quantity, hold.expires_at = hold_row.quantity, text_time(hold_row.expires_at)
            state.hold_expiry.add((hold.expires_at, hold.hold_id))
    state.expired_holds.update(changes.expired_holds)
    state.expired_holds.difference_update(changes.expired_holds_deleted)
    for reference in changes.expected_deleted:
        expected = state.expected.get(reference)
        if expected is not None:
            _unschedule(state, expected)
            touched.add(expected.sku)
    for row_e in changes.expected:
        if row_e.sku not in skus or (loading and row_e.sku not in loading):
            continue
        expected = state.expected.get(row_e.reference)
        if expected is not None:
            _unschedule(state, expected)
        _schedule(state, _expected(row_e))
        touched.add(row_e.sku)
    if changes.deadlines or changes.deadlines_deleted:
        by_order = {item[2]: item for item in state.deadlines}
        for order_id in changes.deadlines_deleted:
            item = by_order.get(order_id)
            if item is not None:
                state.deadlines.remove(item)
        for row_d in changes.deadlines:
            if row_d.order_id not in state.orders or (loading and row_d.order_id in known):
                continue  # (a load) an order held already keeps its own deadline
            item = by_order.get(row_d.order_id)
            if item is not None:
                state.deadlines.remove(item)
            state.deadlines.add((text_time(row_d.deadline), row_d.seq, row_d.order_id))
    if changes.ledger:
        ledger = state.ledger
        ledger._extend(
            [
                _ledger_row(row)
                for row in changes.ledger
                if row.sku in skus and not (loading and row.sku not in loading)
            ]
        )
        ledger._seq = max(ledger._seq, *(row.seq for row in changes.ledger))
    for name in touched:
        sku = skus[name]
        sku.version += 1
        sku.demand = None
        sku.supply = None
        sku.eta_cache = None
    return elsewhere


def _ledger_row(row: LedgerRow) -> Any:
    return (
        row.seq,
        row.kind,
        row.sku,
        row.on_hand_delta,
        row.allocated_delta,
        row.order_id,
        row.reference,
        text_time(row.at),
        row.on_hand,
        row.allocated,
    )


def _ledger_of(rows: Any) -> StockLedger:
    ledger = StockLedger()
    ledger._extend([_ledger_row(row) for row in sorted(rows, key=lambda row: row.seq)])
    return ledger


class _Retry(ConcurrencyConflict):
    """A commit lost a race with another writer: re-load and run the operation again."""


class _LiveStore:
    """The book's side of an `InMemoryRepository`: the state lives there."""

    __slots__ = ("repo", "state")
    live = True
    lazy = False

    def __init__(self, repo: InMemoryRepository) -> None:
        self.repo = repo
        self.state = repo._state

    def begin(self) -> None:
        pass

    def refresh(self) -> None:
        pass

    def ensure(
        self, skus: Iterable[object], orders: Iterable[object], refs: Iterable[object]
    ) -> None:
        pass

    def ensure_due(self, when: datetime) -> None:
        pass

    def everything(self) -> None:
        pass

    def save(self, txn: _Txn, batching: bool) -> None:
        repo = self.repo
        if repo._outbox:
            for event in txn.events:
                repo._next_event += 1
                repo._events[repo._next_event] = event

    def end(self) -> None:
        pass

    def finish_batch(self) -> None:
        pass

    def pending(self, limit: int | None) -> list[tuple[int, Event]]:
        items: list[tuple[int, Event]] = list(self.repo._events.items())
        return items if limit is None else items[:limit]

    def published(self, ids: list[int]) -> int:
        events = self.repo._events
        return sum(events.pop(event_id, None) is not None for event_id in ids)

    def close(self) -> None:
        pass


class _RowStore:
    """The book's side of a row `Repository`: a loaded copy kept in step.

    Every unit of work starts with `begin()`; when the repository's version is
    not the one this copy was loaded or last committed at, the copy catches
    up (another book or process committed in between).

    Lazy (a repository with `load_header`/`load_skus`/`locate`/`due` whose
    `lazy` is true): the copy starts with no SKU and loads the SKUs each
    operation needs (`ensure`) before it runs; reading everything
    (`everything`) turns it into a whole copy.
    """

    __slots__ = ("catch_ups", "lazy", "open", "reloads", "repo", "state", "version")
    live = False

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.open = False
        self.reloads = 0  # whole re-loads (for tests: catching up should not need them)
        self.catch_ups = 0
        self.lazy = bool(getattr(repo, "lazy", False)) and all(
            callable(getattr(repo, name, None))
            for name in ("load_header", "load_skus", "locate", "due", "load_changes")
        )
        if self.lazy:
            self.start_lazy()
        else:
            self.reload()
            self.reloads = 0

    def start_lazy(self) -> None:
        header = self.repo.load_header()  # type: ignore[attr-defined]
        state = _State()
        state.seq = header.counters.get("seq", 0)
        state.hold_seq = header.counters.get("hold_seq", 0)
        state.expected_seq = header.counters.get("expected_seq", 0)
        state.expired_holds.update(header.expired_holds)
        state.ledger._seq = header.ledger_seq
        state.ledger._complete = False
        self.state = state
        self.version = header.version
        self.load(header.held_skus)

    def reload(self) -> None:
        snapshot = self.repo.load()
        self.state = state_of(snapshot)
        self.version = snapshot.version
        self.reloads += 1

    def load(self, names: Iterable[str]) -> None:
        # (lazy) Load these SKUs whole, and any SKU their holds need.
        wanted = frozenset(name for name in names if name not in self.state.skus)
        while wanted:
            changes = self.repo.load_skus(sorted(wanted))  # type: ignore[attr-defined]
            elsewhere = apply_changes(self.state, changes, lazy=True, loading=wanted)
            wanted = frozenset(name for name in elsewhere if name not in self.state.skus)

    def ensure(
        self, skus: Iterable[object], orders: Iterable[object], refs: Iterable[object]
    ) -> None:
        # (lazy) Make sure what an operation names is loaded: SKUs, every SKU of
        # the orders, the SKUs of scheduled receipts. Bad values are left to the
        # operation's own checks.
        if not self.lazy:
            return
        state = self.state
        missing = {s for s in skus if type(s) is str and s not in state.skus}
        find_orders = [o for o in orders if type(o) is str and not self._complete(o)]
        find_refs = [r for r in refs if type(r) is str and r not in state.expected]
        if find_orders or find_refs:
            missing.update(self.repo.locate(find_orders, find_refs))  # type: ignore[attr-defined]
        if missing:
            self.load(missing)

    def ensure_due(self, when: datetime) -> None:
        # (lazy) Load the SKUs of every order whose deadline passes by `when`.
        if self.lazy:
            self.load(self.repo.due(time_text(when)))  # type: ignore[attr-defined]

    def _complete(self, order_id: str) -> bool:
        record = self.state.orders.get(order_id)
        return record is not None and all(line.sku in self.state.skus for line in record.lines)

    def everything(self) -> None:
        # Stop being lazy: load the whole book (for whole-book reads).
        if self.lazy:
            snapshot = self.repo.load()
            self.state = state_of(snapshot)
            self.version = snapshot.version
            self.lazy = False

    def catch_up(self) -> None:
        # Read only what other writers committed since this copy's version,
        # when the repository can say (`load_changes`); else re-load it all.
        load_changes = getattr(self.repo, "load_changes", None)
        if load_changes is None:
            self.reload()
            return
        version, changes = load_changes(self.version)
        try:
            elsewhere = apply_changes(self.state, changes, lazy=self.lazy)
            if elsewhere:
                self.load(elsewhere)
        except Exception:  # rows this copy cannot place: start again from the store
            if self.lazy:
                self.start_lazy()
                self.reloads += 1
            else:
                self.reload()
            return
        self.version = version
        self.catch_ups += 1

    def begin(self) -> None:
        version = self.repo.begin()
        self.open = True
        if version != self.version:
            try:
                self.catch_up()
            except BaseException:
                self.end()
                raise

    def refresh(self) -> None:
        if self.repo.version() != self.version:
            self.catch_up()

    def save(self, txn: _Txn, batching: bool) -> None:
        self.repo.write(changes_of(self.state, txn))
        if not batching:
            try:
                version = self.repo.commit()
            except ConcurrencyConflict as exc:
                raise _Retry(str(exc)) from exc
            self.open = False
            self.version = version

    def end(self) -> None:
        if self.open:
            self.open = False
            self.repo.rollback()

    def finish_batch(self) -> None:
        try:
            version = self.repo.commit()
        except BaseException:
            self.end()
            self.reload()  # what the failed commit held is gone: start from the store
            raise
        self.open = False
        self.version = version

    def pending(self, limit: int | None) -> list[tuple[int, Event]]:
        return [(event_id, text_event(text)) for event_id, text in self.repo.pending_events(limit)]

    def published(self, ids: list[int]) -> int:
        return self.repo.mark_published(ids)

    def close(self) -> None:
        self.repo.close()
