"""The book's side of a row repository: a loaded copy kept in step."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from .._codec import time_text
from .._stored import text_event
from ..engine.changes import Touched, UndoLog
from ..engine.state import State
from ..errors import ConcurrencyConflict, ConnectionLost, StorageCorrupted
from ..events import Event
from .mapping import (
    apply_checked,
    apply_rows,
    changes_of,
    entries_of,
    rows_of,
    state_of_parts,
    validate,
)
from .protocol import (
    ClaimingRepository,
    IncrementalRepository,
    LazyRepository,
    LockingRepository,
    OrderLoadingRepository,
    Repository,
    StreamingRepository,
)
from .rows import WRITE_EVERY, Changes

__all__ = ["CommitRace", "RowStore", "StaleCopy", "collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a load (the rows and
    records it makes hold no cycles to collect, and each collection pass
    would walk every object made so far: quadratic in a large load). The
    collector runs again afterwards if it ran before. O(1)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _closed_orders(changes: Changes) -> Changes:
    # Only the orders whose every line is closed (an order with an open line
    # comes with its SKUs' loads): what `load_orders` may add to a copy.
    still_open = {
        row.order_id for row in changes.lines if row.shipped + row.cancelled < row.ordered
    }
    keep: Callable[[str], bool] = lambda order_id: order_id not in still_open  # noqa: E731
    return Changes(
        counters=changes.counters,
        orders=[row for row in changes.orders if keep(row.order_id)],
        lines=[row for row in changes.lines if keep(row.order_id)],
        deadlines=[row for row in changes.deadlines if keep(row.order_id)],
    )


class CommitRace(ConcurrencyConflict):
    """A commit lost a race with another writer: catch up and run the operation again."""


class StaleCopy(ConcurrencyConflict):
    """Raised by `load_changes(since)` when `since` is a version that never
    committed (the caller's transaction the book worked in was rolled back):
    the book's copy holds work the store does not, so it loads again."""


def _skus_or_unknown(
    keys: Iterable[object], skus_of: Callable[[str], Iterable[str] | None]
) -> tuple[set[str], list[str]]:
    # The SKUs of the keys a copy knows (`skus_of` gives None for one it does
    # not), and those keys it does not, for the store to find. Keys that are
    # not text are left to the operation's own checks.
    known: set[str] = set()
    unknown: list[str] = []
    for key in keys:
        if type(key) is str:
            skus = skus_of(key)
            if skus is None:
                unknown.append(key)
            else:
                known.update(skus)
    return known, unknown


class _Pending:
    """What the operations of a batch not yet written touched: their keys,
    the ledger entries they wrote and their events, in order."""

    __slots__ = ("count", "entries", "events", "touched")

    def __init__(self) -> None:
        self.touched = Touched()
        self.entries: list[Any] = []
        self.events: list[Event] = []
        self.count = 0


class RowStore:
    """The book's side of a row `Repository`: a loaded copy kept in step.

    Every unit of work starts with `begin()`; when the repository's version is
    not the one this copy was loaded or last committed at, the copy catches
    up (another book or process committed in between).

    Lazy (a repository with `load_header`/`load_skus`/`locate`/`due` whose
    `lazy` is true): the copy starts with no SKU and loads the SKUs each
    operation needs (`ensure`) before it runs; reading everything
    (`everything`) turns it into a whole copy. Over an
    `OrderLoadingRepository` a SKU load brings its open lines only, and
    `ensure` reads a closed order an operation names by id.
    """

    __slots__ = (
        *("by_id", "catch_ups", "lazy", "leases", "open", "reloads", "repo", "state", "streams"),
        *("extra", "locked", "locker", "named", "whole_lock"),
        *("folds", "knows_every_order", "stubs", "unwritten", "version"),
    )
    live = False

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.open = False
        self.reloads = 0  # whole re-loads (for tests: catching up should not need them)
        self.catch_ups = 0
        self.leases: dict[int, int] = {}  # for a repository without claim_events
        self.lazy = isinstance(repo, LazyRepository) and repo.lazy is True
        # the repository, if it reads closed orders and receipts by id (found
        # once here: isinstance against a runtime Protocol costs ~80 µs)
        self.by_id = repo if isinstance(repo, OrderLoadingRepository) else None
        # the repository, if it hands a whole load over in parts (found once
        # here: a repository without `load_changes` loads whole every time)
        self.streams = repo if isinstance(repo, StreamingRepository) else None
        # (a LockingRepository: the SKUs this unit of work locked, whether it
        # locked the whole book, whether the operation being prepared named
        # any SKU, and SKUs a lost attempt found it had to lock too)
        self.locker = repo if isinstance(repo, LockingRepository) else None
        self.extra: set[str] = set()
        # (a batch over a repository whose `write` only folds rows, and which
        # checks no lock: its operations' rows are built once per write)
        self.folds = self.locker is None and getattr(repo, "write_folds", False) is True
        self.unwritten: _Pending | None = None  # (a batch's operations not yet written)
        # (lazy) whether this copy holds every order the store has: it started
        # from a store where no order was ever placed, and has seen no commit
        # but its own since (any catch-up ends it). An id it does not hold is
        # then new: no need to ask the store about it (see `ensure`).
        self.knows_every_order = False
        # (lazy) the SKUs a held order has a line on that is not in its SKU's
        # lines (a stub: the SKU was not loaded when the line came); a SKU
        # load looks for closed stubs to join only when it loads one of them
        self.stubs: set[str] = set()
        self._unlock()
        if self.lazy:
            self.start_lazy()
        else:
            self.reload()
            self.reloads = 0

    @property
    def scoped(self) -> bool:
        """Whether each unit of work locks what its operation names (over a
        `LockingRepository`). O(1)."""
        return self.locker is not None

    def _unlock(self) -> None:
        # (a unit of work begins or ends: it holds no lock)
        self.locked: set[str] = set()
        self.whole_lock = False
        self.named = False

    def start_lazy(self) -> None:
        repo = self.repo
        assert isinstance(repo, LazyRepository)
        header = repo.load_header()
        state = State()
        state.seq = header.counters.get("seq", 0)
        state.hold_seq = header.counters.get("hold_seq", 0)
        state.expected_seq = header.counters.get("expected_seq", 0)
        state.expired_holds.update(header.expired_holds)
        if header.policy is not None:
            state.policy_id, state.policy_saved = header.policy, True
        state.journal.seq = header.ledger_seq
        state.journal.set_complete(False)
        state.journal.set_unique(not self.scoped)
        self.state = state
        self.stubs = set()
        self.version = header.version
        # (not over a LockingRepository: writers of other SKUs commit unseen)
        self.knows_every_order = state.seq == 0 and self.locker is None
        self.load(header.held_skus)

    def reload(self) -> None:
        self.version, self.state = self._whole()
        self.reloads += 1

    def load(self, names: Iterable[str]) -> None:
        # (lazy) Load these SKUs whole, and any SKU their holds need. (`lazy`
        # was set only for a LazyRepository: a cast, as isinstance against a
        # runtime-checkable Protocol costs ~80 µs, on every operation.)
        repo = cast(LazyRepository, self.repo)
        wanted = frozenset(name for name in names if name not in self.state.skus)
        if not wanted:
            return
        with collector_paused():
            while wanted:
                changes = repo.load_skus(sorted(wanted))
                stubs = self.stubs
                elsewhere = apply_checked(
                    self.state, changes, lazy=True, loading=wanted, stubs=stubs
                )
                del changes  # (its rows go before the collector runs again)
                if not stubs.isdisjoint(wanted):
                    self._join_closed(wanted)
                    stubs.difference_update(wanted)
                validate(self.state, wanted)
                wanted = frozenset(name for name in elsewhere if name not in self.state.skus)

    def _join_closed(self, names: frozenset[str]) -> None:
        # A held order's closed line on a SKU loaded just now was a stub (its
        # SKU was not loaded); a SKU load brings open lines only, so it joins
        # its SKU's lines here, as a whole load would have put it (a closed
        # line moves none of the SKU's counters). O(lines of held orders).
        skus = self.state.skus
        for record in self.state.orders.values():
            for line in record.lines:
                if line.sku in names and line.shipped + line.cancelled >= line.ordered:
                    sku = skus.get(line.sku)
                    if sku is not None and sku.lines.get(line.key) is not line:
                        sku.lines[line.key] = line

    def load_orders(self, order_ids: list[str]) -> None:
        # (lazy) Read orders by id that the loads of their SKUs did not bring
        # (closed ones), when the repository can (`load_orders`).
        repo = self.by_id
        if repo is None:
            return
        state = self.state
        wanted = [order_id for order_id in order_ids if order_id not in state.orders]
        if wanted:
            with collector_paused():
                apply_checked(
                    state,
                    _closed_orders(repo.load_orders(wanted)),
                    lazy=True,
                    history=True,
                    stubs=self.stubs,
                )

    def ensure(
        self,
        skus: Iterable[object],
        orders: Iterable[object],
        refs: Iterable[object],
        receipts: Iterable[tuple[object, object]] = (),
    ) -> None:
        # (lazy) Make sure what an operation names is loaded: SKUs, every SKU of
        # the orders, the SKUs of scheduled receipts, closed orders named, and
        # whether the (sku, reference) of a receipt was counted. Bad values are
        # left to the operation's own checks. Over a LockingRepository the
        # SKUs named are locked first (and the copy caught up), lazy or not.
        located: tuple[list[str], list[str], list[str]] | None = None
        if self.locker is not None and self.open:  # (a read locks nothing)
            skus, orders, refs = list(skus), list(orders), list(refs)
            located = self._lock_named(skus, orders, refs)
        if not self.lazy:
            return
        state = self.state
        missing = {s for s in skus if type(s) is str and s not in state.skus}
        find_orders = [o for o in orders if type(o) is str and not self._complete(o)]
        if find_orders and self.knows_every_order:  # an order it does not hold is new
            find_orders = [o for o in find_orders if o in state.orders]
        find_refs = [r for r in refs if type(r) is str and r not in state.expected]
        found: list[str] = []
        if located is not None and located[:2] == (find_orders, find_refs):
            found = located[2]  # (found just now, before locking: ids never move)
            missing.update(found)
        elif find_orders or find_refs:
            repo = cast(LazyRepository, self.repo)  # (lazy: see `load`)
            found = repo.locate(find_orders, find_refs)
            missing.update(found)
        if missing:
            self.load(missing)
        if find_orders and found:  # (no SKU found: the orders are new, nothing to read)
            self.load_orders(find_orders)
        if receipts:
            self.load_receipts(receipts)

    def _lock_named(
        self, skus: list[object], orders: list[object], refs: list[object]
    ) -> tuple[list[str], list[str], list[str]]:
        # Lock the SKUs an operation names (its SKUs, those of the orders and
        # scheduled receipts it names: a copy knows those it holds, the store
        # finds the others; neither ever changes), then catch up.
        state = self.state
        names = {s for s in skus if type(s) is str}

        def order_skus(order_id: str) -> list[str] | None:
            record = state.orders.get(order_id)
            return None if record is None else [line.sku for line in record.lines]

        def receipt_skus(reference: str) -> list[str] | None:
            expected = state.expected.get(reference)
            return None if expected is None else [expected.sku]

        of_orders, find_orders = _skus_or_unknown(orders, order_skus)
        of_receipts, find_refs = _skus_or_unknown(refs, receipt_skus)
        names |= of_orders | of_receipts
        found: list[str] = []
        if find_orders or find_refs:
            found = cast(LazyRepository, self.repo).locate(find_orders, find_refs)
            names.update(found)
        if names:
            self.named = True
            self.lock(names | self.extra)
        # (what was looked for and found: the lazy load needs no second look
        # when its copy still lacks the same orders and receipts)
        return find_orders, find_refs, found

    def lock(self, names: Iterable[str]) -> None:
        # (LockingRepository) Lock these SKUs too, and catch up when anything
        # committed since the copy's version (the locks held: what the copy
        # then holds of them stays current until the unit of work ends).
        locker = self.locker
        assert locker is not None
        if self.whole_lock:
            return
        new = sorted(set(names) - self.locked)
        if not new:
            return
        version = locker.lock_skus(new)
        self.locked.update(new)
        if version != self.version:
            self.catch_up()

    def ready(self) -> None:
        # Before an operation runs: over a LockingRepository, one that named
        # no SKU (a sweep, a policy switch, a bad argument) locks the whole
        # book. O(1) otherwise.
        locker = self.locker
        if locker is None or not self.open:
            return
        named, self.named = self.named, False
        if named or self.whole_lock:
            return
        version = locker.lock_book()
        self.whole_lock = True
        if version != self.version:
            self.catch_up()

    def _check_locked(self, changes: Changes) -> None:
        # Every row written must be of a SKU this unit of work locked: else
        # lock that SKU too on the next attempt, and lose this one.
        if self.whole_lock:
            return
        locked = self.locked
        missing = {
            row.sku
            for rows in (
                changes.skus,
                changes.lines,
                changes.ledger,
                changes.receipts,
                changes.holds,
                changes.expected,
                changes.returns,
            )
            for row in rows
            if row.sku not in locked
        }
        if missing:
            self.extra.update(missing)
            raise CommitRace(
                f"the operation wrote rows of SKUs it had not locked ({sorted(missing)!r}): "
                f"it runs again with them locked"
            )

    def load_receipts(self, receipts: Iterable[tuple[object, object]]) -> None:
        # (lazy) Receipt references counted on loaded SKUs, read when a
        # receipt names one (a SKU load leaves them out; see load_orders).
        repo = self.by_id
        if repo is None:
            return
        skus = self.state.skus
        wanted = [
            (sku, reference)
            for sku, reference in receipts
            if type(sku) is str
            and type(reference) is str
            and sku in skus
            and reference not in skus[sku].receipts
        ]
        for row in repo.load_receipts(wanted) if wanted else ():
            if row.sku in skus:
                skus[row.sku].receipts[row.reference] = row.quantity

    def ensure_due(self, when: datetime) -> None:
        # (lazy) Load the SKUs of every order whose deadline passes by `when`.
        repo = self.repo
        if self.lazy and isinstance(repo, LazyRepository):
            self.load(repo.due(time_text(when)))

    def _complete(self, order_id: str) -> bool:
        record = self.state.orders.get(order_id)
        return record is not None and all(line.sku in self.state.skus for line in record.lines)

    def everything(self) -> None:
        # Stop being lazy: load the whole book (for whole-book reads).
        if self.lazy:
            self.version, self.state = self._whole()
            self.lazy = False

    def _whole(self) -> tuple[int, State]:
        # Every row, as a new state and its version: in parts when the
        # repository hands them over so (never every row at once), else
        # `load` whole. (Each part's rows go before the collector runs again.)
        # A connection lost part way (PostgreSQL) loses nothing but the parts
        # read: the load starts again once, on a new connection, as `load`
        # itself would.
        self._write_pending()  # (a batch's rows before a read that needs them)
        streams = self.streams
        with collector_paused():
            if streams is None:
                return state_of_parts((self.repo.load(),), not self.scoped)
            for attempt in (1, 2):
                parts = streams.load_parts()
                try:
                    return state_of_parts(parts, not self.scoped)
                except ConnectionLost:
                    if attempt == 2:
                        raise
                finally:  # (a read left before the end ends now)
                    close = getattr(parts, "close", None)
                    if close is not None:
                        close()
            raise AssertionError("unreachable")  # pragma: no cover

    def catch_up(self) -> None:
        # Read only what other writers committed since this copy's version,
        # when the repository can say (`load_changes`); else re-load it all.
        self._write_pending()  # (a batch's rows before a read that needs them)
        repo = self.repo
        self.knows_every_order = False  # another writer committed
        if not isinstance(repo, IncrementalRepository):
            self.reload()
            return
        try:
            version, changes = repo.load_changes(self.version)
        except StaleCopy:  # what this copy committed was rolled back: start again
            self._restart()
            return
        try:
            # (a repository that cannot read closed orders by id keeps every
            # order that comes: it could not bring one left out back)
            elsewhere = apply_rows(
                self.state, changes, lazy=self.lazy, history=self.by_id is None, stubs=self.stubs
            )
            if elsewhere:
                self.load(elsewhere)
        except Exception:  # rows this copy cannot place: start again from the store
            self._restart()
            return
        self.version = version
        self.catch_ups += 1

    def _restart(self) -> None:
        if self.lazy:
            self.start_lazy()
            self.reloads += 1
        else:
            self.reload()

    def begin(self) -> None:
        if self.locker is not None:  # locks come once the operation is known
            self._unlock()
            self.locker.begin_unlocked()
            self.open = True
            return
        version = self.repo.begin()
        self.open = True
        if version != self.version:
            try:
                self.catch_up()
            except BaseException:
                self.end()
                raise

    def refresh(self) -> None:
        # (only between units of work: no batch's rows are waiting here)
        if self.repo.version() != self.version:
            self.catch_up()

    def save(self, log: UndoLog, batching: bool) -> None:
        if batching and self.folds:
            # (a batch: the keys each operation touched are gathered, and
            # the rows built once per WRITE_EVERY operations from the state,
            # each as it is after the last: a SKU's row once, not once per
            # place. A repository that locks checks every operation's rows.)
            pending = self.unwritten
            if pending is None:
                pending = self.unwritten = _Pending()
            log.touched(pending.touched)
            pending.entries.extend(entries_of(self.state, log))
            pending.events.extend(log.events)
            pending.count += 1
            if pending.count >= WRITE_EVERY:
                self._write_pending()
            return
        changes = changes_of(self.state, log)
        if self.locker is not None:
            self._check_locked(changes)
        self.repo.write(changes)
        if not batching:
            try:
                version = self.repo.commit()
            except ConcurrencyConflict as exc:
                raise CommitRace(str(exc)) from exc
            self.open = False
            self.version = version
            self.state.policy_saved = True
            self.extra = set()

    def _write_pending(self) -> None:
        pending, self.unwritten = self.unwritten, None
        if pending is not None:
            self.repo.write(rows_of(self.state, pending.touched, pending.entries, pending.events))

    def end(self) -> None:
        self.unwritten = None
        self._unlock()
        if self.open:
            self.open = False
            self.repo.rollback()

    def finish_batch(self) -> None:
        try:
            self._write_pending()
            version = self.repo.commit()
        except BaseException:
            self.end()
            self.reload()  # what the failed commit held is gone: start from the store
            raise
        self.open = False
        self.version = version
        self.state.policy_saved = True

    def abandon_batch(self) -> None:
        # A batch left by an exception: nothing of it is written, and the
        # copy starts again from the store (what it applied is dropped).
        self.end()
        if self.lazy:
            self.start_lazy()
        else:
            self.reload()

    def pending(self, limit: int | None) -> list[tuple[int, Event]]:
        self._write_pending()  # (a batch's rows before a read that needs them)
        out: list[tuple[int, Event]] = []
        for event_id, text in self.repo.pending_events(limit):
            try:
                out.append((event_id, text_event(text)))
            except StorageCorrupted:
                raise
            except (KeyError, ValueError, TypeError, UnicodeError, OverflowError) as exc:
                raise StorageCorrupted(f"outbox event {event_id} cannot be read: {exc!r}") from exc
        return out

    def claim(self, limit: int, lease_us: int, now_us: int) -> list[tuple[int, Event]]:
        self._write_pending()  # (a batch's rows before a read that needs them)
        repo = self.repo
        if isinstance(repo, ClaimingRepository):
            claimed = repo.claim_events(limit, lease_us, now_us)
        else:  # leases kept here: disjoint among this book's threads only
            leases = self.leases
            claimed = []
            for event_id, text in repo.pending_events():
                if len(claimed) >= limit:
                    break
                if leases.get(event_id, now_us) <= now_us:
                    leases[event_id] = now_us + lease_us
                    claimed.append((event_id, text))
        return [(event_id, text_event(text)) for event_id, text in claimed]

    def published(self, ids: list[int]) -> int:
        self._write_pending()  # (a batch's rows before a read that needs them)
        for event_id in ids:
            self.leases.pop(event_id, None)
        return self.repo.mark_published(ids)

    def close(self) -> None:
        self.repo.close()
