"""The engine's state as rows, and back.

`changes_of` turns one operation's undo log into the rows it changed
(O(what the operation touched)), reading the keys each change record says it
touched. `apply_rows` is the one way rows become state: catching up with
other writers, loading SKUs lazily, and a whole load (`state_of`), which is
applying every row to an empty state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .._codec import micros_timedelta, text_time, time_text, timedelta_micros
from .._stored import event_text, order_text, stored_order, stored_orders
from ..engine.changes import Touched, UndoLog
from ..engine.checks import check
from ..engine.state import (
    SEQ_BITS,
    CheckoutHold,
    LineState,
    OrderRecord,
    Record,
    ScheduledReceipt,
    SkuState,
    State,
    add_hold,
    deadline_entry,
    drop_hold,
    order_open,
    schedule,
    set_order,
    unschedule,
)
from ..errors import LedgerCorrupted, StorageCorrupted
from ..events import Event
from .rows import (
    Changes,
    DeadlineRow,
    ExpectedRow,
    HoldRow,
    LedgerRow,
    LineRow,
    OrderRow,
    ReceiptRow,
    ReturnRow,
    SkuRow,
    Snapshot,
)

__all__ = [
    "apply_checked",
    "apply_rows",
    "changes_of",
    "entries_of",
    "rows_of",
    "state_of",
    "state_of_parts",
    "validate",
]

_T = TypeVar("_T")


# (rows built by tuple.__new__ with every field in order: the named tuples'
# own constructors are a Python call each, and a place writes three rows)
_new_row = tuple.__new__
_LOW = (1 << SEQ_BITS) - 1


def _sku_row(sku: SkuState) -> SkuRow:
    lead_time = sku.lead_time
    return _new_row(
        SkuRow,
        (
            sku.sku,
            sku.on_hand,
            sku.allocated,
            sku.slots,
            sku.limit,
            None if lead_time is None else timedelta_micros(lead_time),
        ),
    )


def _line_row(line: LineState) -> LineRow:
    key = line.key
    return _new_row(
        LineRow,
        (
            line.order.id,
            line.sku,
            key >> SEQ_BITS,
            key & _LOW,
            line.slot,
            line.ordered,
            line.allocated,
            line.shipped,
            line.cancelled,
            line.firm,
            line.returned,
        ),
    )


def _order_row(record: Record) -> OrderRow:
    seq = record.lines[0].key & _LOW
    return _new_row(OrderRow, (record.order.id, seq, record.rank, order_text(record.order)))


def _deadline_item(state: State, order_id: str) -> tuple[Any, int, str] | None:
    # The order's entry in `state.deadlines`, found from its record (the
    # entry is (deadline, seq, id), as `check` asserts), or None. O(log d).
    record = state.orders.get(order_id)
    item = None if record is None else deadline_entry(record)
    return item if item is not None and item in state.deadlines else None


def _final(
    keys: dict[str, None], now: Mapping[str, Any], row: Callable[[Any], _T]
) -> tuple[list[_T], list[str]]:
    # The rows of the touched keys still present, and the keys now gone.
    rows = [row(now[key]) for key in keys if key in now]
    return rows, [key for key in keys if key not in now]


def changes_of(state: State, log: UndoLog) -> Changes:
    """The rows `log`'s operation changed, as they are now, and its events.

    Cost: O(what the operation touched); only the kinds of rows it touched
    are looked at (a place: its order, lines and SKUs, and its events).
    """
    return rows_of(state, log.touched(), entries_of(state, log), log.events)


def entries_of(state: State, log: UndoLog) -> list[Any]:
    """The ledger entries `log`'s operation wrote (the journal's raw rows).
    O(entries)."""
    journal = state.journal
    return journal.since(log.mark) if journal.wrote_since(log.mark) else []


def rows_of(
    state: State, touched: Touched, entries: Sequence[Any], events: Sequence[Event]
) -> Changes:
    """The rows with these keys, as they are now, these ledger entries
    (`entries_of`) and these events: what one operation changed, or several
    (a batch's, their keys gathered: each row built once, as it is after
    the last). O(keys + entries + events).
    """
    skus = state.skus
    rows: dict[str, Any] = {
        "counters": {
            "seq": state.seq,
            "hold_seq": state.hold_seq,
            "expected_seq": state.expected_seq,
        },
        "skus": [_sku_row(skus[name]) for name in touched.skus if name in skus],
        "lines": [_line_row(line) for line in touched.lines],
    }
    if touched.orders:
        orders = state.orders
        rows["orders"] = [_order_row(orders[order_id]) for order_id in touched.orders]
    if touched.deadlines:
        # (each touched order's entry found from its record: not every deadline)
        pending = {
            order_id: item
            for order_id in touched.deadlines
            if (item := _deadline_item(state, order_id)) is not None
        }
        rows["deadlines"], rows["deadlines_deleted"] = _final(
            touched.deadlines,
            pending,
            lambda item: DeadlineRow(item[2], time_text(item[0]), item[1]),
        )
    if touched.holds:
        rows["holds"], rows["holds_deleted"] = _final(
            touched.holds,
            state.holds,
            lambda hold: HoldRow(
                hold.hold_id, hold.sku, hold.quantity, time_text(hold.expires_at), hold.seq
            ),
        )
    if touched.expected:
        rows["expected"], rows["expected_deleted"] = _final(
            touched.expected,
            state.expected,
            lambda item: ExpectedRow(
                item.reference, item.sku, item.quantity, time_text(item.arriving), item.seq
            ),
        )
    if touched.expired_holds:
        expired = touched.expired_holds
        rows["expired_holds"] = [i for i in expired if i in state.expired_holds]
        rows["expired_holds_deleted"] = [i for i in expired if i not in state.expired_holds]
    if touched.receipts:
        rows["receipts"] = [
            ReceiptRow(sku, reference, skus[sku].receipts[reference])
            for sku, reference in dict.fromkeys(touched.receipts)
        ]
    if touched.returns:
        rows["returns"] = [
            ReturnRow(order_id, sku, reference, skus[sku].returns[order_id, reference])
            for sku, order_id, reference in dict.fromkeys(touched.returns)
        ]
    if entries:
        rows["ledger"] = [
            LedgerRow._make((*row[:7], time_text(row[7]), row[8], row[9])) for row in entries
        ]
    if events:
        rows["events"] = [event_text(event) for event in events]
    if not state.policy_saved:
        rows["policy"] = state.policy_id
    return Changes(**rows)


def state_of(snapshot: Snapshot, unique_numbers: bool = True) -> State:
    """A working state made from every row of a repository: the rows applied
    to an empty state. `unique_numbers`: ledger entry numbers are unique
    book-wide (False: per SKU, see `LockingRepository`). O(rows log n).

    Raises:
        StorageCorrupted: rows that contradict each other (a line of an order
            never stored, an order with a line missing, ...).
    """
    return state_of_parts((snapshot,), unique_numbers)[1]


def state_of_parts(parts: Iterable[Snapshot], unique_numbers: bool = True) -> tuple[int, State]:
    """`state_of` from a whole load handed over in parts (one `Snapshot`,
    or `StreamingRepository.load_parts`), each applied before the next is
    taken; with the version of the last. Every order's lines come in the
    part of the order or a later one. O(rows log n); memory: the state and
    one part's rows.

    Raises:
        StorageCorrupted: as `state_of`.
    """
    by_seq: Callable[[Any], int] = lambda row: row.seq  # noqa: E731
    state = State()
    state.journal.set_unique(unique_numbers)
    version = -1
    numbers: dict[int, int] = {}  # (slot numbers, each kept once: see `apply_rows`)
    for snapshot in parts:
        version = snapshot.version
        changes = Changes(
            counters=snapshot.counters,
            skus=snapshot.skus,
            orders=snapshot.orders,
            lines=snapshot.lines,
            receipts=snapshot.receipts,
            holds=sorted(snapshot.holds, key=by_seq),
            expired_holds=snapshot.expired_holds,
            expected=sorted(snapshot.expected, key=by_seq),
            deadlines=snapshot.deadlines,
            ledger=sorted(snapshot.ledger, key=by_seq),
            policy=snapshot.policy,
            returns=snapshot.returns,
        )
        del snapshot
        apply_checked(state, changes, adding=True, numbers=numbers)
        del changes  # (this part's rows go before the next part is read)
    validate(state, state.skus)
    try:
        check(state, None)  # every structural invariant of what was loaded
    except AssertionError as exc:
        raise StorageCorrupted(f"stored rows do not make a book: {exc!r}") from exc
    return version, state


def apply_checked(
    state: State,
    changes: Changes,
    lazy: bool = False,
    loading: frozenset[str] = frozenset(),
    history: bool = False,
    adding: bool = False,
    numbers: dict[int, int] | None = None,
    stubs: set[str] | None = None,
) -> set[str]:
    """`apply_rows`, with rows that cannot be read back (damage) reported as
    `StorageCorrupted`."""
    try:
        return apply_rows(state, changes, lazy, loading, history, adding, numbers, stubs)
    except StorageCorrupted:
        raise
    except (KeyError, ValueError, TypeError, IndexError, UnicodeError, OverflowError) as exc:
        raise StorageCorrupted(f"stored rows do not make a book: {exc!r}") from exc


def validate(state: State, names: Iterable[str]) -> None:
    """Check what was loaded for these SKUs agrees with itself: stock
    counters with the lines and holds, the ledger's balances with the
    counters, every ledger entry with the one before. Raises
    StorageCorrupted. O(lines + holds + ledger entries of the SKUs)."""
    ledger = state.ledger
    for name in names:
        sku = state.skus.get(name)
        if sku is None:
            continue
        lines = sku.lines.values()
        held = sum(hold.quantity for hold in sku.holds.values())
        problems = []
        get_record = state.orders.get
        for line in lines:
            order = line.order
            record = get_record(order.id)
            listed = order.lines
            if len(listed) == 1:
                wanted: int | None = listed[0].quantity if listed[0].sku == name else None
            else:
                wanted = {ol.sku: ol.quantity for ol in listed}.get(name)
            if (
                record is None
                or order is not record.order
                or line.key >> SEQ_BITS != record.rank
                or wanted != line.ordered
                or line.allocated < 0
                or line.shipped < 0
                or line.cancelled < 0
                or line.ordered - line.allocated - line.shipped - line.cancelled < 0
            ):
                problems.append(f"line of order {line.order.id!r} disagrees with its order")
                break
        if not 0 <= sku.allocated <= sku.on_hand:
            problems.append(f"allocated {sku.allocated} of {sku.on_hand} on hand")
        if sku.allocated != sum(line.allocated for line in lines) + held:
            problems.append("allocated differs from its lines and holds")
        balance = ledger.balance(name)
        if (balance.on_hand, balance.allocated) != (sku.on_hand, sku.allocated):
            problems.append("the ledger's balance differs from the stock")
        if problems:
            raise StorageCorrupted(f"stored rows of sku {name!r} disagree: {'; '.join(problems)}")
    try:
        ledger.verify()
    except LedgerCorrupted as exc:
        raise StorageCorrupted(f"the stored ledger does not replay: {exc}") from exc


def set_sku(sku: SkuState, row: SkuRow) -> SkuState:
    """A SKU's stored counters and settings onto its working record."""
    sku.on_hand, sku.allocated, sku.slots, sku.limit = (
        row.on_hand,
        row.allocated,
        row.slots,
        row.limit,
    )
    sku.lead_time = micros_timedelta(row.lead_time_us)
    return sku


def hold_of(row: HoldRow) -> CheckoutHold:
    """The working record of a stored hold."""
    return CheckoutHold(row.hold_id, row.sku, row.quantity, text_time(row.expires_at), row.seq)


def expected_of(row: ExpectedRow) -> ScheduledReceipt:
    """The working record of a stored scheduled receipt."""
    return ScheduledReceipt(row.reference, row.sku, row.quantity, text_time(row.arriving), row.seq)


def _add_orders(
    state: State,
    rows: Sequence[OrderRow],
    names: dict[str, str],
    keep_first: bool,
    new_only: bool = False,
) -> None:
    # The orders of these rows the state does not hold (`new_only`: none of
    # them, a part of a whole load), decoded in one pass (`stored_orders`)
    # and added with no lines yet; of an id that comes twice, the first row
    # (`keep_first`) or the last.
    orders = state.orders
    fresh = [row for row in rows if row[0] not in orders] if orders and not new_only else rows
    decoded = stored_orders([row[0] for row in fresh], [row[3] for row in fresh], names)
    new = object.__new__
    for row, order in zip(fresh, decoded, strict=True):
        order_id = row[0]
        if keep_first and order_id in orders:
            continue
        # (keyed by the order's own id string when it is the row's: one string)
        if order.id == order_id:
            order_id = order.id
        record = new(OrderRecord)
        record.order = order
        record.rank = row[2]
        record.lines = ()
        orders[order_id] = record


def apply_rows(
    state: State,
    changes: Changes,
    lazy: bool = False,
    loading: frozenset[str] = frozenset(),
    history: bool = False,
    adding: bool = False,
    numbers: dict[int, int] | None = None,
    stubs: set[str] | None = None,
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
    brings both forward together). `history`: the rows are closed orders read
    by id (`load_orders`), kept although no line of theirs is open (catching
    up leaves such orders out: they are history). `adding` (eager): a part
    of a whole load into a state that holds only earlier parts (every order
    in it is new). `numbers`: the slot numbers of lines made so far, each
    kept once (a SKU numbers its lines 1, 2, ...: the SKUs of a book repeat
    each other's numbers, and an int above 256 is an object of its own);
    shared by the parts of one load. `stubs` (lazy): gets the SKU of every
    line left as a stub.

    Returns the SKUs of holds on SKUs not loaded (a lazy state loads every
    SKU with an active hold). ETA caches of the SKUs concerned are dropped.
    Applying the same rows twice changes nothing. Cost: O(rows x log n).
    """
    counters = changes.counters
    if changes.policy is not None:  # recorded (or switched) by this or another book
        state.policy_id, state.policy_saved = changes.policy, True
    # counters only rise: a load may read a newer version than the state's,
    # and (PostgreSQL) catching up reads the numbers others' rows hold
    state.seq = max(state.seq, counters.get("seq", 0))
    state.hold_seq = max(state.hold_seq, counters.get("hold_seq", 0))
    state.expected_seq = max(state.expected_seq, counters.get("expected_seq", 0))
    skus = state.skus
    touched: set[str] = set()
    for row in changes.skus:
        sku = skus.get(row.sku)
        if sku is None:
            if lazy and row.sku not in loading:
                continue
            sku = skus[row.sku] = SkuState(row.sku)
        elif lazy and loading and row.sku not in loading:
            continue
        set_sku(sku, row)
        touched.add(row.sku)
    names = {name: name for name in skus}  # one string per SKU and tier name
    # (a load) the orders of the deadline rows that the state held before it
    # (O(rows), not a copy of every order held)
    known = (
        {row.order_id for row in changes.deadlines if row.order_id in state.orders}
        if loading
        else set()
    )
    if (lazy and loading) or not (lazy or (state.orders and not adding)):
        # a SKU load (every order it brings is relevant; one the state holds
        # already keeps its own version), or a whole load (a part of one)
        # into an empty state: every new order kept, decoded in one pass
        _add_orders(state, changes.orders, names, keep_first=bool(loading), new_only=adding)
        orders_left: Sequence[OrderRow] = ()
        relevant: set[str] = set()
    else:
        orders_left = changes.orders
        # which orders this state keeps: those it has, and those with a line on a loaded SKU
        relevant = {row.order_id for row in changes.lines if row.sku in skus}
    # (lazy catch-up) of an order not held, how many lines came and how many are open
    came: dict[str, list[int]] = {}
    if lazy and not loading:
        for row_c in changes.lines:
            if row_c.order_id in relevant and row_c.order_id not in state.orders:
                counts = came.setdefault(row_c.order_id, [0, 0])
                counts[0] += 1
                counts[1] += row_c.shipped + row_c.cancelled < row_c.ordered
    for order_row in orders_left:
        record = state.orders.get(order_row.order_id)
        if record is None:
            if lazy and order_row.order_id not in relevant:
                continue
            order = stored_order(order_row.order_id, order_row.order, names)
            seen = came.get(order_row.order_id) if came else None
            if seen is not None and not seen[1] and not history:
                # an order not held whose lines that came are all closed (a
                # closed order rewritten, or one placed and closed since):
                # history, read by id when asked for, as a SKU load leaves it
                # (were it kept, its closed lines on SKUs loaded later would
                # never join them: those loads bring open lines only)
                relevant.discard(order_row.order_id)
                continue
            # (keyed by the order's own id string when it is the row's: one string)
            order_id = order.id if order.id == order_row.order_id else order_row.order_id
            state.orders[order_id] = OrderRecord(order, order_row.rank, ())
        elif not (lazy and loading):
            order = stored_order(order_row.order_id, order_row.order, names)
            set_order(record, order, order_row.rank)
            for kept in record.lines:
                kept.order = order
    new_lines: dict[str, dict[str, LineState]] = {}
    queued: dict[SkuState, list[int]] = {}  # keys joining each SKU's line, added at once
    firmed: set[SkuState] = set()  # SKUs without a movable index that have firm units now
    get_record, get_sku = state.orders.get, skus.get
    new_line = object.__new__
    one_number = (numbers if numbers is not None else {}).setdefault
    for row_l in changes.lines:
        order_id, sku_name, rank, seq, slot, ordered, allocated, shipped, cancelled, firm, ret = (
            row_l
        )
        record = get_record(order_id)
        sku = get_sku(sku_name)
        if record is None or (sku is None and not lazy):
            if lazy:
                continue  # an order with no line on a loaded SKU
            raise StorageCorrupted(f"line {row_l!r} of an order or SKU never stored")
        key = (rank << SEQ_BITS) + seq  # pack(rank, seq)
        line: LineState | None = None
        for existing in record.lines:
            if existing.sku == sku_name:
                line = existing
                break
        fresh = line is None
        if line is None:
            # (built slot by slot: each set once, here and below)
            line = new_line(LineState)
            line.order = record.order
            line.sku = sku.sku if sku is not None else names.setdefault(sku_name, sku_name)
            line.ordered = ordered
            order_lines = record.order.lines
            if len(order_lines) == 1 and order_lines[0].sku == sku_name and not record.lines:
                # an order of one line: complete at once, and its line is its record
                if rank != record.rank:
                    raise StorageCorrupted(f"line {row_l!r} has another rank than its order")
                state.orders[order_id] = line
            else:
                new_lines.setdefault(order_id, {})[sku_name] = line
        elif loading and sku is not None and sku_name not in loading:
            continue  # (lazy load) a loaded SKU keeps its own version
        else:
            old = line.key
            if sku is not None and sku.lines.get(old) is line:
                sku.backordered -= line.backordered
                sku.queue.discard(old)
                sku.allocated_keys.discard(old)  # its heap entry goes stale
                if sku.movable is not None:
                    sku.movable.shift(line, line.allocated - line.firm, 0)
                del sku.lines[old]
        line.key = key
        line.slot = one_number(slot, slot)
        line.allocated = allocated
        line.shipped = shipped
        line.cancelled = cancelled
        line.firm = firm
        line.returned = ret
        if sku is None or (
            fresh and loading and sku_name not in loading and shipped + cancelled < ordered
        ):
            if stubs is not None:
                stubs.add(sku_name)
            continue  # a stub: its SKU is not loaded (or is, at another version)
        # (a closed line of an order new to the state joins its loaded SKU's
        # lines whatever the version: it moves none of the SKU's counters)
        touched.add(sku_name)
        sku.lines[key] = line
        short = ordered - allocated - shipped - cancelled
        if short < 0 or allocated < 0 or shipped < 0 or cancelled < 0:
            raise StorageCorrupted(f"line {row_l!r} has negative counters")
        if not (0 <= firm <= allocated and 0 <= ret <= shipped):
            raise StorageCorrupted(f"line {row_l!r} has firm or returned units out of range")
        if sku.movable is not None:
            sku.movable.shift(line, 0, allocated - firm)
        elif firm:
            firmed.add(sku)  # a firm unit: the SKU keeps a movable index
        if short:
            sku.backordered += short
            keys = queued.get(sku)
            if keys is None:
                keys = queued[sku] = []
            keys.append(key)
        if allocated:
            sku.mark_allocated(key)
    for sku, keys in queued.items():
        sku.queue.update(keys)
    for sku in firmed:
        sku.movable_index()
    for order_id, lines in new_lines.items():
        record = state.orders[order_id]
        if type(record) is not OrderRecord:  # (an order of one line, loaded complete)
            raise StorageCorrupted(f"order {order_id!r} has stored lines {sorted(lines)!r}")
        if len(lines) != len(record.order.lines) and not record.lines:
            raise StorageCorrupted(
                f"order {order_id!r} has stored lines {sorted(lines)!r}, not the lines it lists"
            )
        record.lines = tuple(lines[order_line.sku] for order_line in record.order.lines)
    for receipt in changes.receipts:
        if receipt.sku in skus and not (loading and receipt.sku not in loading):
            skus[receipt.sku].receipts[receipt.reference] = receipt.quantity
    for counted in changes.returns:
        if counted.sku in skus and not (loading and counted.sku not in loading):
            skus[counted.sku].returns[counted.order_id, counted.reference] = counted.quantity
    for hold_id in changes.holds_deleted:
        hold = state.holds.get(hold_id)
        if hold is not None:
            drop_hold(state, hold)
    elsewhere: set[str] = set()
    for hold_row in changes.holds:
        hold = state.holds.get(hold_row.hold_id)
        if hold is not None and (hold.seq != hold_row.seq or hold.sku != hold_row.sku):
            # the id used again, by another hold (after the first expired),
            # perhaps on another SKU: the one held goes
            drop_hold(state, hold)
            hold = None
        if hold_row.sku not in skus:
            elsewhere.add(hold_row.sku)
            continue
        if loading and hold_row.sku not in loading:
            continue
        if hold is None:
            add_hold(state, hold_of(hold_row))
        else:  # in place: a SKU's holds stay oldest first
            state.hold_expiry.discard((hold.expires_at, hold.hold_id))
            hold.quantity, hold.expires_at = hold_row.quantity, text_time(hold_row.expires_at)
            state.hold_expiry.add((hold.expires_at, hold.hold_id))
    state.expired_holds.update(changes.expired_holds)
    state.expired_holds.difference_update(changes.expired_holds_deleted)
    for reference in changes.expected_deleted:
        expected = state.expected.get(reference)
        if expected is not None:
            unschedule(state, expected)
            touched.add(expected.sku)
    for row_e in changes.expected:
        expected = state.expected.get(row_e.reference)
        if expected is not None and expected.sku != row_e.sku:
            # the reference scheduled again on another SKU: the old one goes
            unschedule(state, expected)
            touched.add(expected.sku)
            expected = None
        if row_e.sku not in skus or (loading and row_e.sku not in loading):
            continue
        if expected is not None:
            unschedule(state, expected)
        schedule(state, expected_of(row_e))
        touched.add(row_e.sku)
    if changes.deadlines or changes.deadlines_deleted:
        # (each order's entry found from its record: O(log d), not every deadline)
        for order_id in changes.deadlines_deleted:
            item = _deadline_item(state, order_id)
            if item is not None:
                state.deadlines.remove(item)
        for row_d in changes.deadlines:
            record = state.orders.get(row_d.order_id)
            if record is None or (loading and row_d.order_id in known):
                continue  # (a load) an order held already keeps its own deadline
            if record.lines and not order_open(record):
                continue  # a closed order's (kept by a version that did not drop it)
            item = _deadline_item(state, row_d.order_id)
            if item is not None:
                state.deadlines.remove(item)
            state.deadlines.add((text_time(row_d.deadline), row_d.seq, row_d.order_id))
    if changes.ledger:
        journal = state.journal
        journal.extend(
            [
                ledger_row(row)
                for row in changes.ledger
                if row.sku in skus and not (loading and row.sku not in loading)
            ],
            start=bool(loading),  # a SKU load may bring its last entries only
        )
        journal.seq = max(journal.seq, *(row.seq for row in changes.ledger))
    for name in touched:
        sku = skus[name]
        sku.version += 1
        sku.demand = None
        sku.supply = None
        sku.eta_cache = None
    return elsewhere


def ledger_row(row: LedgerRow) -> Any:
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
