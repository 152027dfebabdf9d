"""The what-if simulator: measures checked by hand, bad input, the generator."""

from __future__ import annotations

import inspect
import io
import json
import math
import pickle
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from backorder import InvalidArgument, PartialFill, PriorityTiers, StrictFIFO
from backorder.cli import main, run_simulation
from backorder.simulate import (
    PRESETS,
    InvalidScenario,
    ScenarioTypeError,
    preset_parameters,
    simulate,
    synthetic,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def _at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


STORY: list[dict[str, Any]] = [
    {"type": "receive", "sku": "X", "quantity": 2, "at": _at(0)},
    # A: 2 of 3 from stock; its last unit has no date (nothing scheduled yet)
    {"type": "place", "order_id": "A", "lines": [{"sku": "X", "quantity": 3}], "at": _at(1)},
    {
        "type": "expect",
        "sku": "X",
        "quantity": 5,
        "arriving": _at(48),
        "reference": "PO",
        "at": _at(2),
    },
    # B (vip): short 1, promised the PO's arrival
    {
        "type": "place",
        "order_id": "B",
        "lines": [{"sku": "X", "quantity": 1}],
        "tier": "vip",
        "at": _at(3),
    },
    {"type": "cancel", "order_id": "NOPE", "at": _at(4)},  # refused
    {"type": "receive", "sku": "X", "quantity": 5, "against": "PO", "at": _at(48)},
]


def test_the_measures_of_a_story_worked_by_hand() -> None:
    result = simulate(STORY, {"partial": PartialFill()})
    every = result.get("partial")
    assert (every.orders, every.units) == (2, 4)
    assert every.fill_rate == 0.5  # 2 of 4 units from stock at order time
    assert every.backordered_share == 1.0
    assert every.filled == 2
    waits = sorted([(48 - 1) / 24, (48 - 3) / 24])
    assert every.wait_mean_days == pytest.approx(sum(waits) / 2)
    assert every.wait_median_days == pytest.approx(waits[0])  # nearest rank
    assert every.wait_p95_days == pytest.approx(waits[1])
    assert every.units_waiting == 0
    assert every.promised == 1  # A had no date for its short unit
    assert every.eta_error_days == 0.0
    assert every.on_time_share == 1.0
    assert every.refused == 1
    standard, vip = result.get("partial", "standard"), result.get("partial", "vip")
    assert standard.fill_rate == pytest.approx(2 / 3)
    assert vip.fill_rate == 0.0
    assert vip.wait_mean_days == pytest.approx(45 / 24)
    with pytest.raises(InvalidArgument, match="gold"):
        result.get("partial", "gold")


def test_policies_side_by_side_differ_where_they_should() -> None:
    # strict: A's 3 cannot be filled from 2 on hand, so nothing is allocated at once
    result = simulate(STORY, {"strict": StrictFIFO(), "tiers": PriorityTiers()})
    assert result.get("strict").fill_rate == 0.0
    assert result.get("tiers").fill_rate == 0.5
    records = result.to_records()
    assert [(r["policy"], r["tier"]) for r in records] == [
        ("strict", "all"),
        ("strict", "standard"),
        ("strict", "vip"),
        ("tiers", "all"),
        ("tiers", "standard"),
        ("tiers", "vip"),
    ]
    table = result.table()
    assert "fill rate" in table.splitlines()[0]
    assert len(table.splitlines()) == 2 + 6
    assert repr(result) == "<SimulationResult 6 events through strict, tiers>"
    assert result._repr_html_().count("<tr>") == 7
    assert len(result.seconds) == 2


def test_bad_streams_are_refused_naming_the_event() -> None:
    with pytest.raises(InvalidArgument, match="event 1: a simulated event needs `at`"):
        simulate([{"type": "receive", "sku": "X", "quantity": 1}], [PartialFill()])
    with pytest.raises(InvalidArgument, match="event 2: events must be in time order"):
        simulate([STORY[1], STORY[0]], [PartialFill()])
    with pytest.raises(InvalidArgument, match="event 1: type must be one of"):
        simulate([{"type": "teleport", "at": _at(0)}], [PartialFill()])
    with pytest.raises(InvalidArgument, match="at least one policy"):
        simulate(STORY, {})
    bad_specials: list[tuple[dict[str, Any], str]] = [
        ({"type": "dispatch"}, "needs `at`"),
        ({"type": "dispatch", "at": "soon"}, "ISO 8601 time"),
        ({"type": "dispatch", "at": _at(0), "handling_days": math.nan}, "handling_days"),
        ({"type": "dispatch", "at": _at(0), "handling_days": -1}, "handling_days"),
        ({"type": "dispatch", "at": _at(0), "speed": 1}, "has no field speed"),
        ({"type": "withdraw", "at": _at(0)}, "needs order_id"),
        ({"type": "withdraw", "at": _at(0), "order_id": "A", "if_waiting": 1}, "if_waiting"),
        ({"type": "reschedule", "at": _at(0), "reference": "PO"}, "needs arriving"),
        ({"type": "reschedule", "at": _at(0), "arriving": _at(1)}, "needs reference"),
    ]
    for event, message in bad_specials:
        with pytest.raises(InvalidArgument, match=f"event 1: .*{message}"):
            simulate([event], [PartialFill()])


# One product, two customers, a warehouse that ships after half a day, and a
# customer who gives up: strict FIFO and partial fill, worked by hand.
SHOP: list[dict[str, Any]] = [
    {"type": "receive", "sku": "X", "quantity": 3, "at": _at(0)},
    # A wants 5 of the 3: partial allocates 3 at once, strict none
    {"type": "place", "order_id": "A", "lines": [{"sku": "X", "quantity": 5}], "at": _at(1)},
    {"type": "place", "order_id": "B", "lines": [{"sku": "X", "quantity": 1}], "at": _at(2)},
    # partial ships A's 3 (allocated 13 hours ago); strict has nothing to ship
    {"type": "dispatch", "handling_days": 0.5, "at": _at(14)},
    # B is still waiting under both: gives up, cancelling its 1 unit
    {"type": "withdraw", "order_id": "B", "if_waiting": True, "at": _at(20)},
    # A is filled under both at the same moment
    {"type": "receive", "sku": "X", "quantity": 2, "at": _at(30)},
    {"type": "dispatch", "at": _at(40)},
    # everything of A shipped: nothing to cancel, not an error
    {"type": "withdraw", "order_id": "A", "at": _at(50)},
    {"type": "withdraw", "order_id": "NOPE", "at": _at(51)},  # refused
]


def test_shipments_give_ups_and_refusals_worked_by_hand() -> None:
    result = simulate(SHOP, {"strict": StrictFIFO(), "partial": PartialFill()})
    strict, partial = result.get("strict"), result.get("partial")
    for every in (strict, partial):
        assert (every.orders, every.units, every.backordered_share) == (2, 6, 1.0)
        assert every.filled == 1  # A; B gave up
        assert every.wait_mean_days == pytest.approx(29 / 24)  # the same moment
        assert every.gave_up == 1
        assert every.lost_share == pytest.approx(1 / 6)
        assert every.units_waiting == 0
        assert every.refused == 1  # the unknown order; A's no-op withdraw is not
    assert partial.fill_rate == 0.5  # 3 of 6 units at order time
    assert strict.fill_rate == 0.0
    # partial: 2 units waited 29 h; strict: all 5 of A's
    assert partial.unit_wait_mean_days == pytest.approx(29 / 24)
    assert strict.unit_wait_mean_days == pytest.approx(29 / 24)
    # everything received was shipped: the last sample has nothing on hand
    assert result.curves["partial"][-1][1:] == (0, 0)
    assert result.curves["strict"][-1][1:] == (0, 0)
    assert result.get("partial", "standard").refused is None  # counted over all tiers
    assert "refused" in result.table().splitlines()[0]


PROMISES: list[dict[str, Any]] = [
    # E is promised 2026-03-04 (00:00) and filled at 10:00 that day: on time
    {
        "type": "expect",
        "sku": "X",
        "quantity": 1,
        "arriving": "2026-03-04",
        "reference": "PX",
        "at": _at(0),
    },
    {"type": "place", "order_id": "E", "lines": [{"sku": "X", "quantity": 1}], "at": _at(1)},
    # F is promised 2026-03-03; the delivery never comes: missed once that day ended
    {
        "type": "expect",
        "sku": "Y",
        "quantity": 1,
        "arriving": "2026-03-03",
        "reference": "PY",
        "at": _at(1),
    },
    {"type": "place", "order_id": "F", "lines": [{"sku": "Y", "quantity": 1}], "at": _at(2)},
    # G is promised 2026-03-20: not due when the run ends
    {
        "type": "expect",
        "sku": "Z",
        "quantity": 1,
        "arriving": "2026-03-20",
        "reference": "PZ",
        "at": _at(2),
    },
    {"type": "place", "order_id": "G", "lines": [{"sku": "Z", "quantity": 1}], "at": _at(3)},
    # H is promised PW's date, which the supplier then moves a day on
    {
        "type": "expect",
        "sku": "W",
        "quantity": 2,
        "arriving": _at(48),
        "reference": "PW",
        "at": _at(3),
    },
    {"type": "place", "order_id": "H", "lines": [{"sku": "W", "quantity": 1}], "at": _at(4)},
    {"type": "reschedule", "reference": "PW", "arriving": _at(72), "at": _at(30)},
    # J, placed after the new date was known, is promised it
    {"type": "place", "order_id": "J", "lines": [{"sku": "W", "quantity": 1}], "at": _at(31)},
    {"type": "receive", "sku": "X", "quantity": 1, "against": "PX", "at": _at(50)},
    {"type": "receive", "sku": "W", "quantity": 2, "against": "PW", "at": _at(72)},
    {"type": "reschedule", "reference": "GONE", "arriving": _at(90), "at": _at(80)},  # refused
]


def test_a_promise_is_kept_by_its_day_and_missed_once_its_day_ends() -> None:
    every = simulate(PROMISES, [PartialFill()]).get("PartialFill()")
    # due: E, F (its day ended), H, J; not G
    assert every.promised == 4
    assert every.on_time_share == pytest.approx(2 / 4)  # E (same day) and J
    # over the filled ones: E 10 h after its date, H a day late, J exact
    assert every.eta_error_days == pytest.approx((10 / 24 + 1 + 0) / 3)
    assert every.units_waiting == 2  # F and G
    assert every.refused == 1


def test_the_generator_is_seeded_ordered_and_plausible() -> None:
    events = synthetic(days=30, orders_per_day=20, seed=7)
    assert events == synthetic(days=30, orders_per_day=20, seed=7)
    assert events != synthetic(days=30, orders_per_day=20, seed=8)
    times = [datetime.fromisoformat(event["at"]) for event in events]
    assert times == sorted(times)
    assert times[-1] < datetime(2026, 1, 31, tzinfo=timezone.utc)  # nothing after the last day
    places = [event for event in events if event["type"] == "place"]
    assert 450 < len(places) < 750  # Poisson(600)
    tiers = {event.get("tier") for event in places}
    assert tiers == {"standard", "vip", "contract"}
    kinds = {event["type"] for event in events}
    assert kinds == {"place", "withdraw", "expect", "receive", "dispatch"}
    assert sum(event["type"] == "dispatch" for event in events) == 30  # one a day
    result = simulate(events, {"partial": PartialFill()})
    every = result.get("partial")
    assert every.units_waiting == 0
    assert every.promised > 0
    assert every.on_time_share == 1.0  # steady: no lateness, every promise kept
    assert every.refused == 0
    # what is allocated ships, so stock does not pile up: it stays near the
    # starting stock (the day-0 receipts)
    initial = sum(
        e["quantity"] for e in events if e["type"] == "receive" and e["at"] == times[0].isoformat()
    )
    on_hand = [sample[1] for sample in result.curves["partial"]]
    assert max(on_hand) < 1.5 * initial
    second_half = on_hand[len(on_hand) // 2 :]
    assert sum(second_half) / len(second_half) < initial


def test_presets_set_every_parameter_and_a_given_one_wins() -> None:
    assert list(PRESETS) == ["steady", "scarce", "lumpy", "late-supplier"]
    steady = preset_parameters()
    assert steady == preset_parameters("steady")
    changed = preset_parameters()
    changed["sizes"][1] = 99.0  # a copy: the preset is unchanged
    assert preset_parameters()["sizes"][1] == 0.35
    with pytest.raises(TypeError):
        PRESETS["scarce"]["days"] = 3  # type: ignore[index]
    assert set(steady) == set(inspect.signature(synthetic).parameters) - {
        "preset",
        "seed",
        "start",
    }
    scarce = preset_parameters("scarce")
    assert scarce["shortages"] == ((20.0, 50.0, 0.4),)
    assert {k: v for k, v in scarce.items() if v != steady[k]} == {"shortages": ((20, 50, 0.4),)}
    assert synthetic(preset="steady", seed=3) == synthetic(seed=3)
    shorter = synthetic(preset="scarce", days=30, seed=3)
    assert datetime.fromisoformat(shorter[-1]["at"]) < datetime(2026, 1, 31, tzinfo=timezone.utc)
    assert shorter == synthetic(days=30, shortages=[(20, 50, 0.4)], seed=3)


def _receipts(events: list[dict[str, Any]], begin: float, end: float) -> int:
    origin = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return sum(
        event["quantity"]
        for event in events
        if event["type"] == "receive"
        and begin <= (datetime.fromisoformat(event["at"]) - origin).days < end
    )


def test_each_preset_makes_the_shop_it_names() -> None:
    steady, scarce = synthetic(seed=5), synthetic(preset="scarce", seed=5)
    # scarce: from day 20 to 50 the supplier brings 40 % of demand, then catches up
    assert _receipts(scarce, 21, 50) < 0.5 * _receipts(steady, 21, 50)
    assert _receipts(scarce, 50, 80) > 1.2 * _receipts(steady, 50, 80)
    lumpy = [event for event in synthetic(preset="lumpy", seed=5) if event["type"] == "place"]
    large = [event for event in lumpy if event["lines"][0]["quantity"] >= 50]
    assert 0.015 < len(large) / len(lumpy) < 0.05
    assert {event["lines"][0]["quantity"] for event in large} == {50, 100, 200}
    assert {event["tier"] for event in large} == {"contract", "standard"}
    late = synthetic(preset="late-supplier", seed=5)
    moved = [event for event in late if event["type"] == "reschedule"]
    deliveries = [event for event in late if event["type"] == "receive"]
    rests = [event for event in deliveries if event["reference"].endswith("-rest")]
    assert moved
    assert 0.1 < len(rests) / len(deliveries) < 0.4
    # every delivery is against a purchase order announced before it
    announced = {event["reference"] for event in late if event["type"] == "expect"}
    assert {event.get("against") for event in deliveries} - {None} <= announced


NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("days", 0),
        ("days", -3),
        ("days", 36_501),
        ("orders_per_day", NAN),
        ("orders_per_day", INF),
        ("orders_per_day", -1.0),
        ("orders_per_day", 0),
        ("orders_per_day", 1e6),  # 90 million orders over 90 days
        ("fill_ratio", NAN),
        ("fill_ratio", 0),
        ("lateness_days", NAN),
        ("lateness_days", -1),
        ("lateness_days", INF),
        ("notice_days", -0.5),
        ("handling_days", INF),
        ("patience_days", NAN),
        ("replenish_every_days", 0),
        ("cancel_share", 2.0),
        ("give_up_share", -0.1),
        ("late_share", NAN),
        ("large_share", 1.5),
        ("short_ratio", 1.0),
        ("short_ratio", 0.0),
        ("skus", []),
        ("skus", ["A", "A"]),
        ("skus", ["A", ""]),
        ("sizes", {0: 1.0}),
        ("sizes", {1: -1.0}),
        ("sizes", {1: 0.0}),
        ("sizes", {1: NAN}),
        ("tiers", {"": 1.0}),
        ("large_tiers", {}),
        ("shortages", [(10, 5, 0.5)]),
        ("shortages", [(0, 10, NAN)]),
        ("shortages", [(0, 10)]),
        ("start", datetime(2026, 1, 1)),  # naive
        ("start", datetime(9999, 12, 1, tzinfo=timezone.utc)),  # dates past year 9999
        ("preset", "rainy"),
    ],
)
def test_bad_numbers_are_refused_naming_the_field_and_value(field: str, value: object) -> None:
    with pytest.raises(InvalidScenario) as caught:
        synthetic(**{field: value})  # type: ignore[arg-type]
    error = caught.value
    assert isinstance(error, InvalidArgument)
    assert isinstance(error, ValueError)
    assert error.field.startswith(field)
    assert f"synthetic: {error.field} must be" in str(error)
    assert f"got {error.value!r}"[:40] in str(error)
    assert pickle.loads(pickle.dumps(error)).field == error.field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("days", 1.5),
        ("days", True),
        ("orders_per_day", "40"),
        ("skus", "ABC"),
        ("sizes", [1, 2]),
        ("shortages", "none"),
        ("start", "2026-01-01"),
        ("seed", 1.5),
    ],
)
def test_values_of_the_wrong_type_are_refused_as_type_errors(field: str, value: object) -> None:
    with pytest.raises(ScenarioTypeError, match=field) as caught:
        synthetic(**{field: value})  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError)
    assert isinstance(caught.value, InvalidScenario)
    assert caught.value.value == value


def test_the_simulate_command(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    options = {"days": 10, "orders_per_day": 15.0, "seed": 3}
    assert run_simulation(None, ["strict", "partial"], options, out, err) == 0, err.getvalue()
    text = out.getvalue()
    assert "events from synthetic demand days=10" in text
    assert " strict " in text
    assert "partial" in text
    assert "tiers" not in text
    path = tmp_path / "story.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in STORY))
    out = io.StringIO()
    assert run_simulation(path, [], {}, out, err) == 0
    assert "6 events from" in out.getvalue()
    assert out.getvalue().count(" all ") == 3  # strict, partial, tiers by default
    path.write_text(json.dumps({"type": "receive", "sku": "X", "quantity": 1}) + "\n")
    err = io.StringIO()
    assert run_simulation(path, [], {}, io.StringIO(), err) == 1
    assert "needs `at`" in err.getvalue()
    assert main(["simulate", "--days", "5", "--policy", "strict", "--seed", "1"]) == 0
    with pytest.raises(SystemExit) as caught:
        main(["simulate", "--policy", "fastest"])
    assert caught.value.code == 2


def test_the_html_table_is_built_from_the_measures_not_the_text() -> None:
    # a tier name with spaces and markup: one cell, escaped
    tier = "key account <B2B>"
    story: list[dict[str, Any]] = [
        {"type": "receive", "sku": "X", "quantity": 1, "at": _at(0)},
        {
            "type": "place",
            "order_id": "K",
            "lines": [{"sku": "X", "quantity": 2}],
            "tier": tier,
            "at": _at(1),
        },
    ]
    result = simulate(story, {"tiers": PriorityTiers(tiers=(tier, "standard"))})
    html = result._repr_html_()
    assert "<td>key account &lt;B2B&gt;</td>" in html
    rows = html.split("<tr>")[1:]
    assert len(rows) == 1 + 2  # header, all, the tier
    assert all(row.count("<td>") + row.count("<th>") == len(result.rows()[0]) for row in rows)
    assert "<td>50.0%</td>" in html  # fill rate: 1 of 2
    assert "<td>-</td>" in html  # refused on the tier's row


def test_preemption_compared_with_queue_order_only() -> None:
    # the same demand through tiers that only order the queue and tiers that preempt
    events = synthetic(days=30, orders_per_day=30, fill_ratio=0.8, seed=3)
    result = simulate(events, {"queue": PriorityTiers(), "preempt": PriorityTiers(preempt=True)})
    queue, preempt = result.get("queue", "contract"), result.get("preempt", "contract")
    assert queue.orders == preempt.orders
    # contract orders are served from standard lines at once: more filled on the spot
    assert preempt.fill_rate > queue.fill_rate
    assert preempt.backordered_share <= queue.backordered_share
    # ... and standard orders pay for it
    assert result.get("preempt", "standard").fill_rate <= result.get("queue", "standard").fill_rate
    # over all tiers, no unit is made up or lost
    assert result.get("queue").units == result.get("preempt").units
