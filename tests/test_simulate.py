"""The what-if simulator: measures checked by hand, bad input, the generator."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from backorder import InvalidArgument, PartialFill, PriorityTiers, StrictFIFO
from backorder.cli import main, run_simulation
from backorder.simulate import simulate, synthetic

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
    with pytest.raises(InvalidArgument, match="days"):
        synthetic(days=0)
    with pytest.raises(InvalidArgument, match="cancel_share"):
        synthetic(cancel_share=2.0)


def test_the_generator_is_seeded_ordered_and_plausible() -> None:
    events = synthetic(days=30, orders_per_day=20, seed=7)
    assert events == synthetic(days=30, orders_per_day=20, seed=7)
    assert events != synthetic(days=30, orders_per_day=20, seed=8)
    times = [datetime.fromisoformat(event["at"]) for event in events]
    assert times == sorted(times)
    places = [event for event in events if event["type"] == "place"]
    assert 450 < len(places) < 750  # Poisson(600)
    tiers = {event.get("tier") for event in places}
    assert tiers == {"standard", "vip", "contract"}
    kinds = {event["type"] for event in events}
    assert kinds == {"place", "cancel", "expect", "receive"}
    # enough supply and no lateness: every promise is kept
    result = simulate(
        synthetic(days=30, orders_per_day=20, seed=7, fill_ratio=1.5, cancel_share=0.0),
        {"partial": PartialFill()},
    )
    every = result.get("partial")
    assert every.units_waiting == 0
    assert every.promised > 0
    assert every.on_time_share == 1.0
    assert every.refused == 0


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
