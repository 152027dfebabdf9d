"""What-if simulation: one stream of events through several policies, side by side.

    from backorder.simulate import simulate, synthetic
    events = synthetic(days=60, seed=1)
    result = simulate(events, {"strict": StrictFIFO(), "partial": PartialFill()})
    print(result.table())

Events are the dicts of an event file (`backorder replay`): `type` (`place`,
`receive`, `expect`, `cancel`, `ship`, `adjust`), the book's own argument
names, and `at` (when it happened; required here, in time order). Each policy
gets a fresh in-memory book whose clock is each event's `at`. The measures, per
policy and per tier (and over all tiers), are those a supply-chain analyst
uses:

* fill rate: the share of units ordered that were allocated from stock on hand
  when the order was placed;
* back-ordered: the share of orders with any unit short when placed;
* wait until fully allocated: mean, median and 95th percentile in days, over
  the orders that were back-ordered and then filled;
* units still waiting at the end;
* ETA accuracy, over the back-ordered orders that were promised a date (every
  short line had a known ETA when placed) and then filled: the mean absolute
  error in days of the promise (the latest line's ETA) against the day the
  order was filled, and the share filled on or before the promise.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any

import attrs

from ._eventfile import EventLine, FileError, _parse
from ._tables import data_frame, optional
from .book import BackorderBook
from .errors import BackorderError, InvalidArgument
from .events import LineAllocated, LineBackordered, LineCancelled, LineReleased, OrderPlaced
from .policies import AllocationPolicy

__all__ = ["ServiceMeasures", "SimulationResult", "simulate", "synthetic"]

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
        units_waiting: units still backordered at the end.
        promised: back-ordered, filled orders that had been promised a date.
        eta_error_days: mean absolute error of those promises, in days.
        on_time_share: share of those filled on or before the promise.
        refused: operations the book refused (e.g. a cancel of an order
            already shipped); they changed nothing.
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
    units_waiting: int
    promised: int
    eta_error_days: float | None
    on_time_share: float | None
    refused: int


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


def _percentile(sorted_values: Sequence[float], share: float) -> float:
    # nearest rank
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def _measures(
    policy: str, tier: str, orders: list[_Order], waiting: int, refused: int
) -> ServiceMeasures:
    units = sum(order.units for order in orders)
    short = [order for order in orders if order.short]
    waits = sorted(
        (order.filled - order.placed).total_seconds() / _DAY
        for order in short
        if order.filled is not None
    )
    promised = [
        order
        for order in short
        if order.filled is not None and order.promised and order.promise is not None
    ]
    errors = [
        abs((order.filled - order.promise).total_seconds()) / _DAY  # type: ignore[operator]
        for order in promised
    ]
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
        units_waiting=waiting,
        promised=len(promised),
        eta_error_days=sum(errors) / len(errors) if errors else None,
        on_time_share=(
            sum(order.filled <= order.promise for order in promised) / len(promised)  # type: ignore[operator]
            if promised
            else None
        ),
        refused=refused,
    )


@attrs.frozen(slots=True)
class SimulationResult:
    """The measures of every policy, per tier and over all tiers.

    Attributes:
        measures: one `ServiceMeasures` per (policy, tier), policies in the
            order given, `"all"` first within each.
        events: events simulated (per policy).
        seconds: wall time per policy, in the order given.
    """

    measures: tuple[ServiceMeasures, ...]
    events: int
    seconds: tuple[float, ...]
    #: (policy, tier) -> every filled back-ordered order's wait, in days
    waits: Mapping[tuple[str, str], tuple[float, ...]] = attrs.field(factory=dict, eq=False)
    #: policy -> (time, units on hand, units backordered), sampled over the run
    curves: Mapping[str, tuple[tuple[datetime, int, int], ...]] = attrs.field(
        factory=dict, eq=False
    )

    def to_pandas(self) -> Any:
        """The measures as a pandas DataFrame (counts int64, shares float,
        missing waits and errors as `<NA>`).

        Raises:
            ImportError: pandas is not installed (`pip install 'backorder[pandas]'`).

        Cost: O(rows).
        """
        columns = [field.name for field in attrs.fields(ServiceMeasures)]
        return data_frame(self.to_records(), columns)

    def plot(self) -> Any:
        """A matplotlib `Figure`: the wait until fully allocated per policy
        and tier (box plots, in days), and units on hand and backordered over
        time per policy. Display it in a notebook, or `.savefig(path)`.

        Raises:
            ImportError: matplotlib is not installed (`pip install 'backorder[plot]'`).

        Cost: O(orders + samples).
        """
        figure_module = optional("matplotlib.figure", "plot")
        figure = figure_module.Figure(figsize=(12, 4.5), layout="constrained")
        waits_axes, curve_axes = figure.subplots(1, 2)
        labels = [f"{policy}\n{tier}" for policy, tier in self.waits]
        if labels:
            waits_axes.boxplot(list(self.waits.values()), showfliers=False)
            waits_axes.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
        waits_axes.set_ylabel("days from order to fully allocated")
        waits_axes.set_title("wait of back-ordered orders")
        for policy, samples in self.curves.items():
            times = [sample[0] for sample in samples]
            line = curve_axes.plot(times, [s[1] for s in samples], label=f"{policy}: on hand")
            curve_axes.plot(
                times,
                [s[2] for s in samples],
                linestyle="--",
                color=line[0].get_color(),
                label=f"{policy}: backordered",
            )
        curve_axes.set_ylabel("units")
        curve_axes.set_title("on hand and backordered over time")
        curve_axes.legend(fontsize=8)
        figure.autofmt_xdate()
        return figure

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

    def table(self) -> str:
        """The measures as a text table. Cost: O(rows)."""
        header = (
            "policy", "tier", "orders", "fill rate", "backordered", "wait mean",
            "median", "p95", "waiting", "eta error", "on time",
        )  # fmt: skip
        rows = [header]
        for m in self.measures:
            rows.append(
                (
                    m.policy,
                    m.tier,
                    str(m.orders),
                    f"{m.fill_rate:.1%}",
                    f"{m.backordered_share:.1%}",
                    _days(m.wait_mean_days),
                    _days(m.wait_median_days),
                    _days(m.wait_p95_days),
                    str(m.units_waiting),
                    _days(m.eta_error_days),
                    "-" if m.on_time_share is None else f"{m.on_time_share:.1%}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
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
        rows = self.table().splitlines()
        cells = [row.split() for row in rows[2:]]
        head = "".join(f"<th>{escape(h)}</th>" for h in rows[0].split("  ") if h.strip())
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in cells
        )
        return f"<table><caption>{escape(repr(self))}</caption><tr>{head}</tr>{body}</table>"


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}d"


def _prepare(events: Iterable[Mapping[str, Any] | EventLine]) -> list[EventLine]:
    prepared: list[EventLine] = []
    last: datetime | None = None
    for number, given in enumerate(events, start=1):
        event = given
        if not isinstance(event, EventLine):
            try:
                event = _parse(dict(event), f"event {number}")
            except FileError as exc:
                raise InvalidArgument(str(exc)) from None
        if event.at is None:
            raise InvalidArgument(f"{event.where}: a simulated event needs `at`")
        if last is not None and event.at < last:
            raise InvalidArgument(f"{event.where}: events must be in time order (at {event.at})")
        last = event.at
        prepared.append(event)
    return prepared


def _levels(book: BackorderBook) -> tuple[int, int]:
    skus = book.skus()
    return sum(book.stock(s).on_hand for s in skus), sum(book.backordered(s) for s in skus)


def _run(
    name: str, policy: AllocationPolicy, events: list[EventLine]
) -> tuple[list[ServiceMeasures], dict[tuple[str, str], tuple[float, ...]], tuple[Any, ...]]:
    now: list[datetime] = [datetime(1970, 1, 1, tzinfo=timezone.utc)]
    book = BackorderBook(policy, clock=lambda: now[0])
    orders: dict[str, _Order] = {}
    refused = 0
    every = max(1, len(events) // 1_000)  # about a thousand samples of the levels
    curve: list[tuple[datetime, int, int]] = []
    for number, event in enumerate(events):
        if number % every == 0:
            curve.append((now[0], *_levels(book)))
        now[0] = event.at or now[0]
        try:
            result = event.apply(book)
        except BackorderError:
            refused += 1
            continue
        placing = event.kind == "place"
        for change in result.events:
            kind = type(change)
            if kind is LineAllocated:
                order = orders[change.order_id]
                order.open -= change.quantity
                if placing and change.at == order.placed:
                    order.immediate += change.quantity
                if order.open == 0 and order.short and order.filled is None:
                    order.filled = change.at
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
            elif kind is LineReleased:  # allocated units back: open again (or cancelled next)
                order = orders[change.order_id]
                order.open += change.quantity
                if change.reason == "rebalance":  # a preempting policy took them: waits again
                    order.short, order.filled = True, None
            elif kind is LineCancelled:
                orders[change.order_id].open -= change.quantity
    tiers: dict[str, list[_Order]] = {}
    for order in orders.values():
        tiers.setdefault(order.tier, []).append(order)
    waiting: dict[str, int] = dict.fromkeys(tiers, 0)
    for sku in book.skus():
        for line in book.waiting(sku):
            waiting[line.tier] = waiting.get(line.tier, 0) + line.backordered
    if events:
        curve.append((now[0], *_levels(book)))
    measures = [_measures(name, ALL, list(orders.values()), sum(waiting.values()), refused)]
    waits: dict[tuple[str, str], tuple[float, ...]] = {}
    for tier in sorted(tiers):
        measures.append(_measures(name, tier, tiers[tier], waiting.get(tier, 0), 0))
        waits[name, tier] = tuple(
            (order.filled - order.placed).total_seconds() / _DAY
            for order in tiers[tier]
            if order.short and order.filled is not None
        )
    return measures, waits, tuple(curve[1:])


def simulate(
    events: Iterable[Mapping[str, Any] | EventLine],
    policies: Mapping[str, AllocationPolicy] | Sequence[AllocationPolicy],
) -> SimulationResult:
    """Run the same events through each policy in a fresh in-memory book.

    Args:
        events: event dicts (as in an event file, `at` required) or parsed
            event lines, in time order.
        policies: `{name: policy}`, or policies (named by their `repr`).

    Raises:
        InvalidArgument: an event is malformed, lacks `at` or is out of
            order (naming which), or no policy is given.

    Operations a book refuses (a cancel of an order already filled and
    shipped, ...) change nothing and are counted as `refused`.
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


def synthetic(
    days: int = 90,
    orders_per_day: float = 40.0,
    skus: Sequence[str] = ("SKU-A", "SKU-B", "SKU-C"),
    sizes: Mapping[int, float] | None = None,
    tiers: Mapping[str, float] | None = None,
    replenish_every_days: float = 7.0,
    fill_ratio: float = 0.95,
    notice_days: float = 5.0,
    lateness_days: float = 0.0,
    cancel_share: float = 0.02,
    seed: int = 0,
    start: datetime | None = None,
) -> list[dict[str, Any]]:
    """Seeded synthetic demand and supply, as event dicts in time order.

    Orders arrive as a Poisson process (`orders_per_day` over all SKUs), one
    line each on a random SKU, the quantity drawn from `sizes` (quantity ->
    weight; default 1-5 units, smaller more likely) and the tier from `tiers`
    (tier -> share; default 80 % standard, 15 % vip, 5 % contract). Every
    `replenish_every_days` each SKU receives about `fill_ratio` times its
    expected demand over the period, announced `notice_days` ahead as a
    scheduled receipt (so waiting customers get ETAs) and received against it,
    up to `lateness_days` late at random (so promises can be missed). A share
    `cancel_share` of orders is cancelled a few days after it is placed.

    Raises:
        InvalidArgument: a count or rate that is not positive, a share
            outside 0..1, no SKUs.

    Cost: O(events).
    """
    if days <= 0 or orders_per_day <= 0 or replenish_every_days <= 0 or not skus:
        raise InvalidArgument(
            f"days, orders_per_day and replenish_every_days must be > 0 and skus non-empty, "
            f"got {days!r}, {orders_per_day!r}, {replenish_every_days!r}, {skus!r}"
        )
    if not 0 <= cancel_share <= 1 or fill_ratio <= 0 or notice_days < 0 or lateness_days < 0:
        raise InvalidArgument(
            f"cancel_share must be in 0..1, fill_ratio > 0, notice_days and lateness_days "
            f">= 0; got {cancel_share!r}, {fill_ratio!r}, {notice_days!r}, {lateness_days!r}"
        )
    rng = random.Random(seed)
    origin = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
    sizes = dict(sizes or {1: 0.35, 2: 0.25, 3: 0.18, 4: 0.12, 5: 0.10})
    tiers = dict(tiers or {"standard": 0.80, "vip": 0.15, "contract": 0.05})
    size_values, size_weights = list(sizes), list(sizes.values())
    tier_values, tier_weights = list(tiers), list(tiers.values())
    mean_size = sum(q * w for q, w in sizes.items()) / sum(size_weights)
    timed: list[tuple[float, int, dict[str, Any]]] = []
    tick = 0

    def add(day: float, event: dict[str, Any]) -> None:
        nonlocal tick
        tick += 1
        timed.append((day, tick, event))

    day = 0.0
    n = 0
    while True:
        day += rng.expovariate(orders_per_day)
        if day >= days:
            break
        n += 1
        order_id = f"S-{n}"
        add(
            day,
            {
                "type": "place",
                "order_id": order_id,
                "lines": [
                    {
                        "sku": rng.choice(list(skus)),
                        "quantity": rng.choices(size_values, size_weights)[0],
                    }
                ],
                "tier": rng.choices(tier_values, tier_weights)[0],
            },
        )
        if rng.random() < cancel_share:
            add(min(days, day + rng.uniform(0.5, 5.0)), {"type": "cancel", "order_id": order_id})
    per_period = orders_per_day / len(skus) * replenish_every_days * mean_size * fill_ratio
    for sku in skus:
        arrival = replenish_every_days * rng.random()  # staggered
        k = 0
        while arrival < days:
            k += 1
            quantity = max(1, round(rng.gauss(per_period, per_period * 0.1)))
            reference = f"PO-{sku}-{k}"
            late = rng.uniform(0, lateness_days) if lateness_days else 0.0
            announced = max(0.0, arrival - notice_days)
            planned = origin + timedelta(days=arrival)
            add(
                announced,
                {
                    "type": "expect",
                    "sku": sku,
                    "quantity": quantity,
                    "arriving": planned.isoformat(),
                    "reference": reference,
                },
            )
            add(
                min(days, arrival + late),
                {
                    "type": "receive",
                    "sku": sku,
                    "quantity": quantity,
                    "reference": f"GRN-{sku}-{k}",
                    "against": reference,
                },
            )
            arrival += replenish_every_days
    timed.sort(key=lambda item: (item[0], item[1]))
    events = []
    for when, _, event in timed:
        event["at"] = (origin + timedelta(days=when)).isoformat()
        events.append(event)
    return events
