"""What-if simulation: one stream of events through several policies, side by side.

    from backorder.simulate import simulate, synthetic
    events = synthetic(preset="scarce", seed=1)
    result = simulate(events, {"strict": StrictFIFO(), "partial": PartialFill()})
    print(result.table())

Events are the dicts of an event file (`backorder replay`): `type` (`place`,
`receive`, `expect`, `cancel`, `ship`, `adjust`), the book's own argument
names, and `at` (when it happened; required here, in time order). Two more
types say what a shop's warehouse and customers do, which depends on how the
policy served the line, so only the simulator runs them:

* `{"type": "dispatch", "handling_days": 1.0, "at": ...}`: the warehouse
  ships every unit allocated at least `handling_days` (default 0) before
  (a `ship_complete` order once nothing of it is backordered);
* `{"type": "withdraw", "order_id": "S-1", "if_waiting": true, "at": ...}`:
  the customer cancels what is not yet shipped of the order; with
  `if_waiting` only when some of it is still backordered (they gave up
  waiting). Nothing to cancel is not an error;
* `{"type": "reschedule", "reference": "PO-7", "arriving": ..., "at": ...}`:
  the supplier moves an expected receipt to a new date (`update_expected`).

Each policy gets a fresh in-memory book whose clock is each event's `at`.
The measures, per policy and per tier (and over all tiers), are those a
supply-chain analyst uses:

* fill rate: the share of units ordered that were allocated from stock on
  hand when the order was placed;
* back-ordered: the share of orders with any unit short when placed;
* wait until fully allocated: mean, median and 95th percentile in days, over
  the orders that were back-ordered and then filled;
* units still waiting at the end;
* customers who gave up waiting, and the share of units they cancelled (lost
  sales);
* promises: the back-ordered orders given a date for every short line when
  placed; of those that fell due (filled, or their promised day ended before
  the run did or the order was cancelled), the share filled on or before the
  promised day (UTC), and over those filled the mean absolute error in days.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any

import attrs

from ._eventfile import EventLine, FileError, _parse, read_time
from ._synthetic import (
    PRESETS,
    InvalidScenario,
    ScenarioTypeError,
    preset_parameters,
    synthetic,
)
from ._tables import optional
from .book import BackorderBook
from .errors import BackorderError, CannotCancel, InvalidArgument, NotReadyToShip, UnknownOrder
from .events import (
    LineAllocated,
    LineBackordered,
    LineCancelled,
    LineReleased,
    LineShipped,
    OrderPlaced,
)
from .policies import AllocationPolicy

__all__ = [
    "PRESETS",
    "SIMULATED_ONLY",
    "InvalidScenario",
    "ScenarioTypeError",
    "ServiceMeasures",
    "SimulationResult",
    "preset_parameters",
    "simulate",
    "synthetic",
]

_DAY = 86_400.0
ALL = "all"


@attrs.frozen(slots=True)
class ServiceMeasures:
    """The service one policy gave one tier (or `"all"` tiers).

    Attributes:
        policy, tier: whose measures these are.
        orders, units: orders placed and units ordered.
        fill_rate: units allocated from stock at order time / units ordered.
        backordered_share: orders with a unit short when placed / orders.
        filled: back-ordered orders fully allocated by the end.
        wait_mean_days, wait_median_days, wait_p95_days: their wait from
            placing to fully allocated (None when there is none).
        unit_wait_mean_days: the mean wait of a unit allocated after its
            order was placed, from placing to that allocation, in days: a
            policy that hands out part of an order early waits less here
            (None when no unit waited).
        units_waiting: units still backordered at the end.
        gave_up: orders whose customer gave up waiting (a `withdraw` with
            `if_waiting` that cancelled something).
        lost_share: units those customers cancelled / units ordered.
        promised: back-ordered orders promised a date (every short line had
            an ETA when placed) whose promise fell due: filled, or the
            promised day (UTC) ended before the run did or before the
            order was cancelled (or given up).
        on_time_share: share of those filled on or before the promised day.
        eta_error_days: mean absolute error of the promises of those filled,
            in days.
        refused: operations the book refused (a cancel of an order already
            shipped, ...); they changed nothing. Counted over all tiers:
            None on a tier's row.
    """

    policy: str
    tier: str
    orders: int
    units: int
    fill_rate: float
    backordered_share: float
    filled: int
    wait_mean_days: float | None
    wait_median_days: float | None
    wait_p95_days: float | None
    unit_wait_mean_days: float | None
    units_waiting: int
    gave_up: int
    lost_share: float
    promised: int
    on_time_share: float | None
    eta_error_days: float | None
    refused: int | None


@attrs.define(slots=True)
class _Order:
    tier: str
    placed: datetime
    units: int
    open: int  # units neither allocated nor cancelled
    immediate: int = 0
    short: bool = False
    promise: datetime | None = None
    promised: bool = True
    filled: datetime | None = None
    gave_up: datetime | None = None
    left: datetime | None = None  # when cancels left nothing to fill
    lost: int = 0
    late_units: int = 0  # units allocated after placing
    late_unit_days: float = 0.0  # and their waits, summed


def _percentile(sorted_values: Sequence[float], share: float) -> float:
    # nearest rank
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def _day(moment: datetime) -> Any:
    return moment.astimezone(timezone.utc).date()


def _due(order: _Order, end: datetime) -> bool:
    # filled, or the promised day ended before the run did or the order was cancelled
    if order.filled is not None:
        return True
    assert order.promise is not None
    day_end = datetime.combine(_day(order.promise), datetime.min.time(), timezone.utc)
    return day_end + timedelta(days=1) <= (order.left or end)


def _measures(
    policy: str, tier: str, orders: list[_Order], waiting: int, refused: int | None, end: datetime
) -> ServiceMeasures:
    units = sum(order.units for order in orders)
    short = [order for order in orders if order.short]
    waits = sorted(
        (order.filled - order.placed).total_seconds() / _DAY
        for order in short
        if order.filled is not None
    )
    due = [o for o in short if o.promised and o.promise is not None and _due(o, end)]
    kept = [o for o in due if o.filled is not None and _day(o.filled) <= _day(o.promise)]  # type: ignore[arg-type]
    errors = [
        abs((o.filled - o.promise).total_seconds()) / _DAY  # type: ignore[operator]
        for o in due
        if o.filled is not None
    ]
    gave_up = [order for order in orders if order.gave_up is not None]
    late_units = sum(order.late_units for order in orders)
    return ServiceMeasures(
        policy=policy,
        tier=tier,
        orders=len(orders),
        units=units,
        fill_rate=sum(order.immediate for order in orders) / units if units else 0.0,
        backordered_share=len(short) / len(orders) if orders else 0.0,
        filled=len(waits),
        wait_mean_days=sum(waits) / len(waits) if waits else None,
        wait_median_days=_percentile(waits, 0.5) if waits else None,
        wait_p95_days=_percentile(waits, 0.95) if waits else None,
        unit_wait_mean_days=(
            sum(order.late_unit_days for order in orders) / late_units if late_units else None
        ),
        units_waiting=waiting,
        gave_up=len(gave_up),
        lost_share=sum(order.lost for order in gave_up) / units if units else 0.0,
        promised=len(due),
        on_time_share=len(kept) / len(due) if due else None,
        eta_error_days=sum(errors) / len(errors) if errors else None,
        refused=refused,
    )


# (column title, ServiceMeasures field) of the table, in order
_COLUMNS = (
    ("policy", "policy"),
    ("tier", "tier"),
    ("orders", "orders"),
    ("fill rate", "fill_rate"),
    ("backordered", "backordered_share"),
    ("wait mean", "wait_mean_days"),
    ("median", "wait_median_days"),
    ("p95", "wait_p95_days"),
    ("unit wait", "unit_wait_mean_days"),
    ("waiting", "units_waiting"),
    ("gave up", "gave_up"),
    ("lost", "lost_share"),
    ("on time", "on_time_share"),
    ("eta error", "eta_error_days"),
    ("refused", "refused"),
)
_SHARES = ("fill_rate", "backordered_share", "lost_share", "on_time_share")
_DAYS = (
    "wait_mean_days",
    "wait_median_days",
    "wait_p95_days",
    "unit_wait_mean_days",
    "eta_error_days",
)
# field -> pandas dtype (the rest are `string`)
_DTYPES = {
    **dict.fromkeys(("orders", "units", "filled", "units_waiting", "gave_up", "promised"), "int64"),
    "refused": "Int64",
    **dict.fromkeys(("fill_rate", "backordered_share", "lost_share"), "float64"),
    **dict.fromkeys((*_DAYS, "on_time_share"), "Float64"),
}


def _cell(field: str, value: Any) -> str:
    if value is None:
        return "-"
    if field in _SHARES:
        return f"{value:.1%}"
    if field in _DAYS:
        return f"{value:.2f}d"
    return str(value)


@attrs.frozen(slots=True)
class SimulationResult:
    """The measures of every policy, per tier and over all tiers.

    Attributes:
        measures: one `ServiceMeasures` per (policy, tier), policies in the
            order given, `"all"` first within each.
        events: events simulated (per policy).
        seconds: wall time per policy, in the order given.
        waits: (policy, tier) -> every filled back-ordered order's wait, in days.
        curves: policy -> (time, units on hand, units backordered), about a
            thousand samples over the run.
    """

    measures: tuple[ServiceMeasures, ...]
    events: int
    seconds: tuple[float, ...]
    waits: Mapping[tuple[str, str], tuple[float, ...]] = attrs.field(factory=dict, eq=False)
    curves: Mapping[str, tuple[tuple[datetime, int, int], ...]] = attrs.field(
        factory=dict, eq=False
    )

    def to_pandas(self) -> Any:
        """The measures as a pandas DataFrame, one row per (policy, tier):
        counts int64, shares float64, waits, errors and on-time `Float64`
        and `refused` `Int64` (missing as `<NA>`), names `string`.

        Raises:
            ImportError: pandas is not installed (`pip install 'backorder[pandas]'`).

        Cost: O(rows).
        """
        pandas = optional("pandas", "pandas")
        columns = [field.name for field in attrs.fields(ServiceMeasures)]
        frame = pandas.DataFrame.from_records(self.to_records(), columns=columns)
        return frame.astype({column: _DTYPES.get(column, "string") for column in columns})

    def plot(self) -> Any:
        """A matplotlib `Figure` of three panels: the wait until fully
        allocated of back-ordered orders per tier (box plots in days, one
        colour per policy), and units backordered and units on hand over
        time (days since the first event), one colour and line style per
        policy, each with a legend. Display it in a notebook, or
        `.savefig(path)`.

        Raises:
            ImportError: matplotlib is not installed (`pip install 'backorder[plot]'`).

        Cost: O(orders + samples).
        """
        from ._simplot import figure

        return figure(self)

    def to_records(self) -> list[dict[str, Any]]:
        """The measures as plain dicts (for `pandas.DataFrame`). Cost: O(rows)."""
        return [attrs.asdict(measure) for measure in self.measures]

    def get(self, policy: str, tier: str = ALL) -> ServiceMeasures:
        """The measures of `policy` for `tier` (`"all"` by default).

        Raises:
            InvalidArgument: no such policy or tier in this result.

        Cost: O(rows).
        """
        for measure in self.measures:
            if measure.policy == policy and measure.tier == tier:
                return measure
        raise InvalidArgument(f"no measures for policy {policy!r} tier {tier!r}")

    def rows(self) -> list[tuple[str, ...]]:
        """The table's cells: a header, then one row of text per (policy,
        tier) (shares in %, days with a `d`, missing values `-`).
        Cost: O(rows)."""
        rows = [tuple(title for title, _ in _COLUMNS)]
        for m in self.measures:
            rows.append(tuple(_cell(field, getattr(m, field)) for _, field in _COLUMNS))
        return rows

    def table(self) -> str:
        """The measures as a text table, one row per (policy, tier), the
        columns those of `rows()`. Cost: O(rows)."""
        rows = self.rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
        lines = [
            "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __repr__(self) -> str:
        policies = list(dict.fromkeys(m.policy for m in self.measures))
        return f"<SimulationResult {self.events:,} events through {', '.join(policies)}>"

    def _repr_html_(self) -> str:
        """The measures as an HTML table, for notebooks."""
        header, *body = self.rows()
        head = "".join(f"<th>{escape(title)}</th>" for title in header)
        cells = "".join(
            "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in body
        )
        return (
            f"<table><caption>{escape(repr(self))}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>"
        )


@attrs.frozen(slots=True)
class _Special:
    """A `dispatch` or `withdraw`: what the warehouse or a customer does."""

    where: str
    kind: str
    at: datetime
    handling: timedelta = timedelta(0)
    order_id: str = ""
    if_waiting: bool = False
    reference: str = ""
    arriving: Any = None


_SPECIAL_FIELDS = {
    "dispatch": {"handling_days"},
    "withdraw": {"order_id", "if_waiting"},
    "reschedule": {"reference", "arriving"},
}
#: The kinds of event only the simulator reads (beside those of event files).
SIMULATED_ONLY = frozenset(_SPECIAL_FIELDS)


def _special(record: Mapping[str, Any], where: str) -> _Special:
    kind = str(record["type"])
    unknown = sorted(set(record) - _SPECIAL_FIELDS[kind] - {"type", "at"})
    if unknown:
        raise InvalidArgument(f"{where}: a {kind} has no field {', '.join(map(str, unknown))}")
    if record.get("at") is None:
        raise InvalidArgument(f"{where}: a simulated event needs `at`")
    at = read_time(record["at"], "at", where)
    assert isinstance(at, datetime)
    if kind == "dispatch":
        handling = record.get("handling_days", 0.0)
        if (
            isinstance(handling, bool)
            or not isinstance(handling, (int, float))
            or not 0 <= handling <= 36_500
        ):
            raise InvalidArgument(
                f"{where}: handling_days must be a finite number from 0 to 36500, got {handling!r}"
            )
        return _Special(where, kind, at, handling=timedelta(days=handling))
    if kind == "reschedule":
        reference = record.get("reference")
        if not isinstance(reference, str) or not reference:
            raise InvalidArgument(f"{where}: a reschedule needs reference (a non-empty str)")
        if "arriving" not in record:
            raise InvalidArgument(f"{where}: a reschedule needs arriving")
        arriving = read_time(record["arriving"], "arriving", where, dated=True)
        return _Special(where, kind, at, reference=reference, arriving=arriving)
    order_id = record.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise InvalidArgument(f"{where}: a withdraw needs order_id (a non-empty str)")
    if_waiting = record.get("if_waiting", False)
    if not isinstance(if_waiting, bool):
        raise InvalidArgument(f"{where}: if_waiting must be true or false, got {if_waiting!r}")
    return _Special(where, kind, at, order_id=order_id, if_waiting=if_waiting)


def _prepare(
    events: Iterable[Mapping[str, Any] | EventLine | _Special],
) -> list[EventLine | _Special]:
    prepared: list[EventLine | _Special] = []
    last: datetime | None = None
    for number, given in enumerate(events, start=1):
        event: EventLine | _Special
        if isinstance(given, (EventLine, _Special)):  # already prepared
            event = given
        elif isinstance(given, Mapping) and given.get("type") in _SPECIAL_FIELDS:
            event = _special(given, f"event {number}")
        else:
            try:
                event = _parse(dict(given), f"event {number}")
            except FileError as exc:
                raise InvalidArgument(str(exc)) from None
        if event.at is None:
            raise InvalidArgument(f"{event.where}: a simulated event needs `at`")
        if last is not None and event.at < last:
            raise InvalidArgument(f"{event.where}: events must be in time order (at {event.at})")
        last = event.at
        prepared.append(event)
    return prepared


class _Run:
    """One policy's book, and what the measures need from its events."""

    def __init__(self, policy: AllocationPolicy) -> None:
        self.now = datetime(1970, 1, 1, tzinfo=timezone.utc)
        self.book = BackorderBook(policy, clock=lambda: self.now)
        self.orders: dict[str, _Order] = {}
        self.refused = 0
        # (order id, sku) -> [allocated at, units not yet shipped], oldest first
        self.unshipped: dict[tuple[str, str], list[list[Any]]] = {}
        self.giving_up: str | None = None

    def levels(self) -> tuple[int, int]:
        book = self.book
        skus = book.skus()
        return sum(book.stock(s).on_hand for s in skus), sum(book.backordered(s) for s in skus)

    def apply(self, event: EventLine | _Special) -> None:
        if isinstance(event, _Special):
            if event.kind == "dispatch":
                self.dispatch(event.handling)
            elif event.kind == "reschedule":
                try:
                    result = self.book.update_expected(event.reference, arriving=event.arriving)
                except BackorderError:
                    self.refused += 1
                else:
                    self.observe(result.events)
            else:
                self.withdraw(event.order_id, event.if_waiting)
            return
        try:
            result = event.apply(self.book)
        except BackorderError:
            self.refused += 1
            return
        self.observe(result.events, placing=event.kind == "place")

    def dispatch(self, handling: timedelta) -> None:
        cutoff = self.now - handling
        for (order_id, sku), chunks in list(self.unshipped.items()):
            ready = 0
            for allocated_at, units in chunks:
                if allocated_at > cutoff:
                    break
                ready += units
            if ready:
                try:
                    result = self.book.ship(order_id, sku, ready)
                except NotReadyToShip:  # ship_complete: waits for the rest
                    continue
                self.observe(result.events)

    def withdraw(self, order_id: str, if_waiting: bool) -> None:
        try:
            lines = self.book.status(order_id).lines
        except UnknownOrder:
            self.refused += 1
            return
        if if_waiting and not any(line.backordered for line in lines):
            return
        if not any(line.backordered or line.allocated for line in lines):
            return
        self.giving_up = order_id if if_waiting else None
        try:
            result = self.book.cancel(order_id)
        except CannotCancel:  # pragma: no cover - checked just above
            return
        self.observe(result.events)
        if if_waiting:
            self.orders[order_id].gave_up = self.now
        self.giving_up = None

    def observe(self, changes: Sequence[Any], placing: bool = False) -> None:
        orders = self.orders
        for change in changes:
            kind = type(change)
            if kind is LineAllocated:
                order = orders[change.order_id]
                order.open -= change.quantity
                if placing and change.at == order.placed:
                    order.immediate += change.quantity
                else:
                    order.late_units += change.quantity
                    days = (change.at - order.placed).total_seconds() / _DAY
                    order.late_unit_days += days * change.quantity
                if order.open == 0 and order.short and order.filled is None:
                    order.filled = change.at
                key = (change.order_id, change.sku)
                self.unshipped.setdefault(key, []).append([change.at, change.quantity])
            elif kind is OrderPlaced:
                placed = change.order
                units = sum(line.quantity for line in placed.lines)
                orders[change.order_id] = _Order(placed.tier, change.at, units, units)
            elif kind is LineBackordered:
                order = orders[change.order_id]
                if placing and change.at == order.placed:
                    order.short = True
                    eta = change.eta
                    if eta is None or eta.at is None:
                        order.promised = False
                    elif order.promise is None or eta.at > order.promise:
                        order.promise = eta.at
            elif kind is LineShipped:
                self._take((change.order_id, change.sku), change.quantity, oldest=True)
            elif kind is LineReleased:  # allocated units back: open again (or cancelled next)
                order = orders[change.order_id]
                order.open += change.quantity
                self._take((change.order_id, change.sku), change.quantity, oldest=False)
                if change.reason == "rebalance":  # a preempting policy took them: waits again
                    order.short, order.filled = True, None
            elif kind is LineCancelled:
                order = orders[change.order_id]
                order.open -= change.quantity
                if order.open == 0 and order.filled is None and order.left is None:
                    order.left = change.at
                if change.order_id == self.giving_up:
                    order.lost += change.quantity

    def _take(self, key: tuple[str, str], units: int, oldest: bool) -> None:
        chunks = self.unshipped.get(key)
        while units and chunks:
            chunk = chunks[0 if oldest else -1]
            taken = min(units, chunk[1])
            chunk[1] -= taken
            units -= taken
            if not chunk[1]:
                chunks.pop(0 if oldest else -1)
        if not chunks:
            self.unshipped.pop(key, None)

    def measures(self, name: str) -> tuple[list[ServiceMeasures], dict[tuple[str, str], Any]]:
        tiers: dict[str, list[_Order]] = {}
        for order in self.orders.values():
            tiers.setdefault(order.tier, []).append(order)
        waiting: dict[str, int] = dict.fromkeys(tiers, 0)
        for sku in self.book.skus():
            for line in self.book.waiting(sku):
                waiting[line.tier] = waiting.get(line.tier, 0) + line.backordered
        everyone = list(self.orders.values())
        measures = [_measures(name, ALL, everyone, sum(waiting.values()), self.refused, self.now)]
        waits: dict[tuple[str, str], tuple[float, ...]] = {}
        for tier in sorted(tiers):
            measures.append(_measures(name, tier, tiers[tier], waiting[tier], None, self.now))
            waits[name, tier] = tuple(
                (order.filled - order.placed).total_seconds() / _DAY
                for order in tiers[tier]
                if order.short and order.filled is not None
            )
        return measures, waits


def _run(
    name: str, policy: AllocationPolicy, events: list[EventLine | _Special]
) -> tuple[list[ServiceMeasures], dict[tuple[str, str], tuple[float, ...]], tuple[Any, ...]]:
    run = _Run(policy)
    every = max(1, len(events) // 1_000)  # about a thousand samples of the levels
    curve: list[tuple[datetime, int, int]] = []
    for number, event in enumerate(events):
        if number % every == 0:
            curve.append((run.now, *run.levels()))
        run.now = event.at or run.now
        run.apply(event)
    if events:
        curve.append((run.now, *run.levels()))
    measures, waits = run.measures(name)
    return measures, waits, tuple(curve[1:])


def simulate(
    events: Iterable[Mapping[str, Any] | EventLine],
    policies: Mapping[str, AllocationPolicy] | Sequence[AllocationPolicy],
) -> SimulationResult:
    """Run the same events through each policy in a fresh in-memory book.

    Args:
        events: event dicts (as in an event file, `at` required, plus the
            simulator's `dispatch` and `withdraw`) or parsed event lines,
            in time order.
        policies: `{name: policy}`, or policies (named by their `repr`).

    Raises:
        InvalidArgument: an event is malformed, lacks `at` or is out of
            order (naming which), or no policy is given.

    Operations a book refuses (a cancel of an order already filled and
    shipped, a withdraw of an unknown order, ...) change nothing and are
    counted as `refused` (the `"all"` row of each policy).
    Cost: O(events x operation cost) per policy.
    """
    named = dict(policies) if isinstance(policies, Mapping) else {repr(p): p for p in policies}
    if not named:
        raise InvalidArgument("simulate needs at least one policy, got none")
    prepared = _prepare(events)
    measures: list[ServiceMeasures] = []
    seconds: list[float] = []
    waits: dict[tuple[str, str], tuple[float, ...]] = {}
    curves: dict[str, tuple[tuple[datetime, int, int], ...]] = {}
    for name, policy in named.items():
        start = time.perf_counter()
        ran, waits_of, curves[name] = _run(name, policy, prepared)
        measures.extend(ran)
        waits.update(waits_of)
        seconds.append(time.perf_counter() - start)
    return SimulationResult(tuple(measures), len(prepared), tuple(seconds), waits, curves)
