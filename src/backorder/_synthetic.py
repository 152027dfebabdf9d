"""Seeded synthetic demand and supply for the simulator: shops in named presets.

The generator knows nothing of policies: everything that depends on how a
policy served the line (which units ship, who is still waiting when their
patience runs out) is left to the simulator through two event types of its
own, `dispatch` and `withdraw` (see `backorder.simulate`).
"""

from __future__ import annotations

import bisect
import copy
import math
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from types import MappingProxyType
from typing import Any

from .errors import InvalidScenario, ScenarioTypeError

__all__ = [
    "PRESETS",
    "InvalidScenario",
    "ScenarioTypeError",
    "preset_parameters",
    "synthetic",
]

_MAX_DAYS = 36_500  # a hundred years: every date stays computable
_MAX_ORDERS = 10_000_000  # expected orders of one stream (days x orders_per_day)
_MAX_QUANTITY = 1_000_000_000  # one order line
_MAX_SKUS = 100_000
_MAX_RATIO = 1_000.0


_STEADY: dict[str, Any] = {
    "days": 90,
    "orders_per_day": 40.0,
    "skus": ("SKU-A", "SKU-B", "SKU-C"),
    "sizes": {1: 0.35, 2: 0.25, 3: 0.18, 4: 0.12, 5: 0.10},
    "tiers": {"standard": 0.80, "vip": 0.15, "contract": 0.05},
    "large_share": 0.01,
    "large_sizes": {20: 0.5, 40: 0.3, 80: 0.2},
    "large_tiers": {"contract": 0.7, "standard": 0.3},
    "replenish_every_days": 7.0,
    "notice_days": 5.0,
    "safety_days": 3.0,
    "fill_ratio": 1.5,
    "shortages": (),
    "late_share": 1.0,
    "lateness_days": 0.0,
    "short_share": 0.0,
    "short_ratio": 0.5,
    "handling_days": 1.0,
    "cancel_share": 0.02,
    "give_up_share": 0.3,
    "patience_days": 10.0,
}

PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "steady": MappingProxyType({}),
        # the supplier can bring only 40 % of demand from day 20 to day 50, then
        # catches up at up to 1.5 times demand
        "scarce": MappingProxyType({"shortages": ((20.0, 50.0, 0.4),)}),
        # three orders in a hundred are large B2B orders (50 to 200 units),
        # mostly on contract; little safety stock, a supplier who barely keeps up
        "lumpy": MappingProxyType(
            {
                "large_share": 0.03,
                "large_sizes": {50: 0.4, 100: 0.35, 200: 0.25},
                "safety_days": 1.0,
                "fill_ratio": 1.05,
            }
        ),
        # half the deliveries up to 6 days late, a third short by half (the
        # rest a period later)
        "late-supplier": MappingProxyType(
            {
                "late_share": 0.5,
                "lateness_days": 6.0,
                "short_share": 0.3,
                "short_ratio": 0.5,
            }
        ),
    }
)
"""Preset name -> the parameters it sets; every other one is `steady`'s
(`preset_parameters(name)` gives them all)."""


def preset_parameters(name: str = "steady") -> dict[str, Any]:
    """Every parameter of `synthetic()` as preset `name` sets it.

    For a command line's defaults and help text: these are the values
    `synthetic(preset=name)` uses for every parameter not given. The dict is
    a copy: changing it changes no preset.

    Raises:
        InvalidScenario: `name` is not a preset.

    Cost: O(parameters).
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise InvalidScenario(
            f"synthetic: preset must be one of {', '.join(PRESETS)}, got {name!r}", "preset", name
        )
    return copy.deepcopy({**_STEADY, **PRESETS[name]})


# --- validation -------------------------------------------------------------


def _refuse(field: str, value: object, rule: str) -> InvalidScenario:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InvalidScenario(f"synthetic: {field} must be {rule}, got {shown}", field, value)


def _number(
    field: str,
    value: object,
    *,
    low: float,
    high: float,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioTypeError(f"synthetic: {field} must be a number, got {value!r}", field, value)
    rule = f"a finite number {'>' if low_open else '>='} {low:g}" + (
        "" if math.isinf(high) else f" and {'<' if high_open else '<='} {high:g}"
    )
    number = float(value)
    if (
        not math.isfinite(number)
        or number < low
        or (low_open and number == low)
        or number > high
        or (high_open and number == high)
    ):
        raise _refuse(field, value, rule)
    return number


def _integer(field: str, value: object, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioTypeError(f"synthetic: {field} must be an int, got {value!r}", field, value)
    if not low <= value <= high:
        raise _refuse(field, value, f"an int from {low} to {high:,}")
    return int(value)


def _weights(field: str, value: object, key_rule: str) -> dict[Any, float]:
    if not isinstance(value, Mapping):
        raise ScenarioTypeError(
            f"synthetic: {field} must be a mapping of {key_rule} to weights, got {value!r}",
            field,
            value,
        )
    weights: dict[Any, float] = {}
    for key, weight in value.items():
        if field.endswith("sizes"):
            _integer(f"{field} key", key, low=1, high=_MAX_QUANTITY)
        elif not isinstance(key, str) or not key.strip():
            raise _refuse(f"{field} key", key, "a non-empty str (a tier name)")
        weights[key] = _number(f"{field}[{key!r}]", weight, low=0.0, high=math.inf)
    if not weights or sum(weights.values()) <= 0 or math.isinf(sum(weights.values())):
        raise _refuse(field, value, f"a non-empty mapping of {key_rule} to weights, some > 0")
    return weights


def _skus(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ScenarioTypeError(
            f"synthetic: skus must be a sequence of str, got {value!r}", "skus", value
        )
    skus = tuple(value)
    if not 1 <= len(skus) <= _MAX_SKUS:
        raise _refuse("skus", value, f"1 to {_MAX_SKUS:,} SKUs")
    for sku in skus:
        if not isinstance(sku, str) or not sku.strip():
            raise _refuse("skus", value, "non-empty strs")
    if len(set(skus)) != len(skus):
        raise _refuse("skus", value, "distinct")
    return skus


def _shortages(value: object) -> tuple[tuple[float, float, float], ...]:
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
        raise ScenarioTypeError(
            f"synthetic: shortages must be a sequence of (from_day, to_day, ratio), got {value!r}",
            "shortages",
            value,
        )
    periods = []
    for index, period in enumerate(value):
        field = f"shortages[{index}]"
        if isinstance(period, (str, Mapping)) or not isinstance(period, Sequence):
            raise ScenarioTypeError(
                f"synthetic: {field} must be (from_day, to_day, ratio), got {period!r}",
                field,
                period,
            )
        if len(period) != 3:
            raise _refuse(field, period, "(from_day, to_day, ratio)")
        begin = _number(f"{field} from_day", period[0], low=0.0, high=_MAX_DAYS)
        end = _number(f"{field} to_day", period[1], low=begin, high=_MAX_DAYS, low_open=True)
        ratio = _number(f"{field} ratio", period[2], low=0.0, high=_MAX_RATIO)
        periods.append((begin, end, ratio))
    return tuple(periods)


def _checked(given: Mapping[str, Any], start: object, seed: object) -> dict[str, Any]:
    p = dict(given)
    days = p["days"] = _integer("days", p["days"], low=1, high=_MAX_DAYS)
    p["orders_per_day"] = _number(
        "orders_per_day", p["orders_per_day"], low=0.0, high=math.inf, low_open=True
    )
    if p["orders_per_day"] * days > _MAX_ORDERS:
        raise _refuse(
            "orders_per_day",
            p["orders_per_day"],
            f"at most {_MAX_ORDERS:,} orders over the {days} days "
            f"(<= {_MAX_ORDERS / days:,.1f} a day)",
        )
    p["skus"] = _skus(p["skus"])
    p["sizes"] = _weights("sizes", p["sizes"], "quantities")
    p["tiers"] = _weights("tiers", p["tiers"], "tiers")
    p["large_sizes"] = _weights("large_sizes", p["large_sizes"], "quantities")
    p["large_tiers"] = _weights("large_tiers", p["large_tiers"], "tiers")
    for share in ("large_share", "late_share", "short_share", "cancel_share", "give_up_share"):
        p[share] = _number(share, p[share], low=0.0, high=1.0)
    p["short_ratio"] = _number(
        "short_ratio", p["short_ratio"], low=0.0, high=1.0, low_open=True, high_open=True
    )
    p["replenish_every_days"] = _number(
        "replenish_every_days", p["replenish_every_days"], low=0.01, high=_MAX_DAYS
    )
    if days / p["replenish_every_days"] * len(p["skus"]) > _MAX_ORDERS:
        raise _refuse(
            "replenish_every_days",
            p["replenish_every_days"],
            f"large enough for at most {_MAX_ORDERS:,} deliveries",
        )
    for span in ("notice_days", "safety_days", "lateness_days", "handling_days", "patience_days"):
        p[span] = _number(span, p[span], low=0.0, high=_MAX_DAYS)
    p["fill_ratio"] = _number(
        "fill_ratio", p["fill_ratio"], low=0.0, high=_MAX_RATIO, low_open=True
    )
    p["shortages"] = _shortages(p["shortages"])
    if start is not None:
        if not isinstance(start, datetime):
            raise ScenarioTypeError(
                f"synthetic: start must be a datetime, got {start!r}", "start", start
            )
        if start.tzinfo is None or start.utcoffset() is None:
            raise _refuse("start", start, "an aware datetime (with a UTC offset)")
        # the latest date written: a rest delivery's new date, or a give-up
        horizon = (
            days
            + 1
            + max(
                p["notice_days"] + p["lateness_days"] + p["replenish_every_days"],
                1.5 * p["patience_days"],
            )
        )
        try:
            start + timedelta(days=horizon)
        except OverflowError:
            raise _refuse("start", start, "early enough for every date to exist") from None
    _integer("seed", seed, low=-(2**63), high=2**63 - 1)
    return p


# --- the generator ----------------------------------------------------------


def synthetic(
    *,
    preset: str | None = None,
    days: int | None = None,
    orders_per_day: float | None = None,
    skus: Sequence[str] | None = None,
    sizes: Mapping[int, float] | None = None,
    tiers: Mapping[str, float] | None = None,
    large_share: float | None = None,
    large_sizes: Mapping[int, float] | None = None,
    large_tiers: Mapping[str, float] | None = None,
    replenish_every_days: float | None = None,
    notice_days: float | None = None,
    safety_days: float | None = None,
    fill_ratio: float | None = None,
    shortages: Sequence[tuple[float, float, float]] | None = None,
    late_share: float | None = None,
    lateness_days: float | None = None,
    short_share: float | None = None,
    short_ratio: float | None = None,
    handling_days: float | None = None,
    cancel_share: float | None = None,
    give_up_share: float | None = None,
    patience_days: float | None = None,
    seed: int = 0,
    start: datetime | None = None,
) -> list[dict[str, Any]]:
    """Seeded synthetic demand and supply of a shop, as event dicts in time order.

    `preset` (`"steady"`, `"scarce"`, `"lumpy"`, `"late-supplier"`; default
    `"steady"`) sets every parameter; any parameter given beside it
    overrides the preset's value (`preset_parameters(name)` lists them).
    Days count from `start` (default 2026-01-01 00:00 UTC).

    Demand: orders arrive as a Poisson process, one line each on a SKU drawn
    at random. A share `large_share` of them are large (B2B) orders, sized
    from `large_sizes` with tiers from `large_tiers`; the rest are sized from
    `sizes` and tiered from `tiers` (each a mapping of value to weight).

    Supply: every `replenish_every_days` (staggered per SKU) the shop orders
    up to a target of `replenish_every_days + notice_days + safety_days`
    days of expected demand, counting stock, open purchase orders and
    backorders; the order is announced at once as a scheduled receipt
    (`expect`, so waiting customers get ETAs) due `notice_days` later. The
    supplier confirms at most `fill_ratio` times the expected demand of a
    period, or the ratio of a `shortages` period `(from_day, to_day, ratio)`
    covering the due day: below 1, supply falls behind demand. A share
    `late_share` of deliveries comes up to `lateness_days` late; a share
    `short_share` brings only `short_ratio` of the quantity, the rest a
    period later. The shop starts with `replenish_every_days + safety_days`
    days of demand on hand. Deliveries due after the last day never come.

    Customers and the warehouse (events only `simulate` runs, see there):
    every day at 18:00 a `dispatch` ships what has been allocated for at
    least `handling_days`; a share `cancel_share` of customers cancels what
    is not yet shipped 0.5 to 5 days after ordering; a share
    `give_up_share` gives up if still waiting after about `patience_days`
    (0.5 to 1.5 times it), cancelling what is not yet shipped.

    Presets: `steady` supply keeps up; `scarce` the supplier brings only
    40 % of demand from day 20 to day 50; `lumpy` one order in twenty is a
    large B2B order, with little safety stock and a supplier who barely
    keeps up; `late-supplier` half the deliveries are up to 6 days late and
    a third come short by half.

    Raises:
        InvalidScenario: an unknown preset; a number that is not finite
            (nan, inf) or out of its range (a negative count or span, a
            share outside 0..1, more than 10 million expected orders); an
            empty or repeated SKU; weights that are negative or all zero;
            a naive `start`. The message names the parameter and the value.
        ScenarioTypeError: a parameter of the wrong type.

    Cost: O(events log events).
    """
    base = preset_parameters("steady" if preset is None else preset)
    given = {
        "days": days,
        "orders_per_day": orders_per_day,
        "skus": skus,
        "sizes": sizes,
        "tiers": tiers,
        "large_share": large_share,
        "large_sizes": large_sizes,
        "large_tiers": large_tiers,
        "replenish_every_days": replenish_every_days,
        "notice_days": notice_days,
        "safety_days": safety_days,
        "fill_ratio": fill_ratio,
        "shortages": shortages,
        "late_share": late_share,
        "lateness_days": lateness_days,
        "short_share": short_share,
        "short_ratio": short_ratio,
        "handling_days": handling_days,
        "cancel_share": cancel_share,
        "give_up_share": give_up_share,
        "patience_days": patience_days,
    }
    p = _checked({**base, **{k: v for k, v in given.items() if v is not None}}, start, seed)
    origin = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
    return _Generator(p, random.Random(seed), origin).events()


def _mean(weights: Mapping[int, float]) -> float:
    return sum(q * w for q, w in weights.items()) / sum(weights.values())


class _Generator:
    def __init__(self, p: dict[str, Any], rng: random.Random, origin: datetime) -> None:
        self.p = p
        self.rng = rng
        self.origin = origin
        self.days: int = p["days"]
        self.timed: list[tuple[float, int, dict[str, Any]]] = []
        # sku -> (order times, cumulative units) for the order-up-to review
        self.demand: dict[str, tuple[list[float], list[int]]] = {}

    def add(self, day: float, event: dict[str, Any]) -> None:
        if day < self.days:  # what would happen after the last day never does
            self.timed.append((day, len(self.timed), event))

    def events(self) -> list[dict[str, Any]]:
        self.orders()
        self.supply()
        self.dispatches()
        self.timed.sort(key=lambda item: (item[0], item[1]))
        events = []
        for when, _, event in self.timed:
            event["at"] = (self.origin + timedelta(days=when)).isoformat()
            events.append(event)
        return events

    def orders(self) -> None:
        p, rng = self.p, self.rng
        skus = list(p["skus"])
        normal = (list(p["sizes"]), list(p["sizes"].values()))
        normal_tiers = (list(p["tiers"]), list(p["tiers"].values()))
        large = (list(p["large_sizes"]), list(p["large_sizes"].values()))
        large_tiers = (list(p["large_tiers"]), list(p["large_tiers"].values()))
        placed: dict[str, tuple[list[float], list[int]]] = {sku: ([], []) for sku in skus}
        day = 0.0
        n = 0
        while True:
            day += rng.expovariate(p["orders_per_day"])
            if day >= self.days:
                break
            n += 1
            order_id = f"S-{n}"
            sku = rng.choice(skus)
            is_large = p["large_share"] > 0 and rng.random() < p["large_share"]
            sizes, tiers = (large, large_tiers) if is_large else (normal, normal_tiers)
            quantity = rng.choices(*sizes)[0]
            self.add(
                day,
                {
                    "type": "place",
                    "order_id": order_id,
                    "lines": [{"sku": sku, "quantity": quantity}],
                    "tier": rng.choices(*tiers)[0],
                },
            )
            placed[sku][0].append(day)
            placed[sku][1].append(quantity)
            if rng.random() < p["cancel_share"]:
                self.add(day + rng.uniform(0.5, 5.0), {"type": "withdraw", "order_id": order_id})
            if rng.random() < p["give_up_share"]:
                patience = p["patience_days"] * rng.uniform(0.5, 1.5)
                self.add(
                    day + patience,
                    {"type": "withdraw", "order_id": order_id, "if_waiting": True},
                )
        self.demand = {
            sku: (times, list(accumulate(units))) for sku, (times, units) in placed.items()
        }

    def ratio(self, due: float) -> float:
        for begin, end, ratio in self.p["shortages"]:
            if begin <= due < end:
                return float(ratio)
        return float(self.p["fill_ratio"])

    def supply(self) -> None:
        p, rng = self.p, self.rng
        period, lead = p["replenish_every_days"], p["notice_days"]
        mean_units = (1 - p["large_share"]) * _mean(p["sizes"]) + p["large_share"] * _mean(
            p["large_sizes"]
        )
        per_day = p["orders_per_day"] / len(p["skus"]) * mean_units
        target = per_day * (period + lead + p["safety_days"])
        for sku in p["skus"]:
            times, cumulative = self.demand[sku]
            initial = round(per_day * (period + p["safety_days"]))
            if initial > 0:
                self.add(
                    0.0,
                    {
                        "type": "receive",
                        "sku": sku,
                        "quantity": initial,
                        "reference": f"GRN-{sku}-0",
                    },
                )
            confirmed = 0  # every unit the supplier confirmed so far
            review = period * rng.random()  # staggered
            k = 0
            while review < self.days:
                placed = bisect.bisect_right(times, review)
                ordered = cumulative[placed - 1] if placed else 0
                position = initial + confirmed - ordered
                due = review + lead
                quantity = min(round(target - position), round(self.ratio(due) * per_day * period))
                if quantity > 0:
                    k += 1
                    confirmed += quantity
                    self.purchase(sku, k, review, due, quantity)
                review += period

    def purchase(self, sku: str, k: int, placed: float, due: float, quantity: int) -> None:
        p, rng = self.p, self.rng
        reference = f"PO-{sku}-{k}"
        self.add(
            placed,
            {
                "type": "expect",
                "sku": sku,
                "quantity": quantity,
                "arriving": (self.origin + timedelta(days=due)).isoformat(),
                "reference": reference,
            },
        )
        late = p["lateness_days"] > 0 and rng.random() < p["late_share"]
        arrives = due + (rng.uniform(0.0, p["lateness_days"]) if late else 0.0)
        if arrives > due:  # on the day it was due, the supplier gives the new date
            self.reschedule(due, reference, arrives)
        first = quantity
        if p["short_share"] > 0 and rng.random() < p["short_share"]:
            first = max(1, min(quantity - 1, round(quantity * p["short_ratio"])))
        self.receive(arrives, sku, first, f"GRN-{sku}-{k}", reference)
        if first < quantity:  # the rest a period later, and the supplier says so
            later = arrives + p["replenish_every_days"]
            self.reschedule(arrives, reference, later)
            self.receive(later, sku, quantity - first, f"GRN-{sku}-{k}-rest", reference)

    def reschedule(self, day: float, reference: str, arriving: float) -> None:
        self.add(
            day,
            {
                "type": "reschedule",
                "reference": reference,
                "arriving": (self.origin + timedelta(days=arriving)).isoformat(),
            },
        )

    def receive(self, day: float, sku: str, units: int, grn: str, against: str) -> None:
        self.add(
            day,
            {
                "type": "receive",
                "sku": sku,
                "quantity": units,
                "reference": grn,
                "against": against,
            },
        )

    def dispatches(self) -> None:
        for day in range(self.days):
            self.add(day + 0.75, {"type": "dispatch", "handling_days": self.p["handling_days"]})
