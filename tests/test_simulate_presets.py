"""The presets tell the policies apart where the docs and the notebook say they do.

These are the claims of docs/examples/choosing-a-policy.ipynb and docs/simulate.md,
asserted on the same seeded data (every preset at `SEED`), so a change that makes
their story untrue fails here even where the notebook cannot run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backorder import AllocationPolicy, PartialFill, PriorityTiers, StrictFIFO
from backorder.simulate import PRESETS, ServiceMeasures, SimulationResult, simulate, synthetic

SEED = 7
NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "examples" / "choosing-a-policy.ipynb"
TIERS = ("contract", "vip", "standard")


@pytest.fixture(scope="module")
def results() -> dict[str, SimulationResult]:
    policies: dict[str, AllocationPolicy] = {
        "strict": StrictFIFO(),
        "partial": PartialFill(),
        "tiers": PriorityTiers(),
    }
    return {preset: simulate(synthetic(preset=preset, seed=SEED), policies) for preset in PRESETS}


def _m(
    results: dict[str, SimulationResult], preset: str, policy: str, tier: str = "all"
) -> ServiceMeasures:
    return results[preset].get(policy, tier)


def _wait(results: dict[str, SimulationResult], preset: str, policy: str, tier: str) -> float:
    wait = _m(results, preset, policy, tier).wait_mean_days
    assert wait is not None
    return wait


def test_the_notebook_runs_the_data_these_tests_check() -> None:
    source = "".join("".join(cell["source"]) for cell in json.loads(NOTEBOOK.read_text())["cells"])
    assert f"SEED = {SEED}\n" in source
    assert "synthetic(preset=preset, seed=SEED)" in source
    assert '"strict": StrictFIFO(), "partial": PartialFill(), "tiers": PriorityTiers()' in source


def test_steady_supply_every_policy_serves_alike(results: dict[str, SimulationResult]) -> None:
    for tier in TIERS:
        waits = {
            _wait(results, "steady", policy, tier) for policy in ("strict", "partial", "tiers")
        }
        assert max(waits) - min(waits) < 0.01
    for policy in ("strict", "partial", "tiers"):
        assert _m(results, "steady", policy).backordered_share < 0.05
        assert _m(results, "steady", policy).fill_rate > 0.95
        assert _m(results, "steady", policy).on_time_share == 1.0


def test_scarce_tiers_serve_vip_and_contract_first_at_standard_cost(
    results: dict[str, SimulationResult],
) -> None:
    for tier in ("contract", "vip"):
        assert _wait(results, "scarce", "tiers", tier) < 0.7 * _wait(
            results, "scarce", "partial", tier
        )
    tiers, partial = (_m(results, "scarce", p, "standard") for p in ("tiers", "partial"))
    assert _wait(results, "scarce", "tiers", "standard") > _wait(
        results, "scarce", "partial", "standard"
    )
    assert tiers.gave_up > partial.gave_up
    assert tiers.on_time_share is not None
    assert partial.on_time_share is not None
    assert tiers.on_time_share < partial.on_time_share - 0.03


def test_strict_and_partial_complete_orders_together_but_hand_out_differently(
    results: dict[str, SimulationResult],
) -> None:
    for preset in PRESETS:  # docs/simulate.md: "under every preset"
        for tier in ("all", *TIERS):
            gap = _wait(results, preset, "strict", tier) - _wait(results, preset, "partial", tier)
            assert abs(gap) < 0.05
    strict, partial = _m(results, "lumpy", "strict"), _m(results, "lumpy", "partial")
    assert partial.fill_rate > strict.fill_rate + 0.02
    assert partial.units_waiting < strict.units_waiting
    contract = [
        _m(results, "lumpy", p, "contract").unit_wait_mean_days for p in ("strict", "partial")
    ]
    assert contract[0] is not None
    assert contract[1] is not None
    assert contract[1] < 0.9 * contract[0]


def test_lumpy_tiers_hurt_the_standard_customers_worst_waits_and_promises(
    results: dict[str, SimulationResult],
) -> None:
    for tier in ("contract", "vip"):
        assert _wait(results, "lumpy", "tiers", tier) < 0.7 * _wait(
            results, "lumpy", "partial", tier
        )
    tiers, partial = (_m(results, "lumpy", p, "standard") for p in ("tiers", "partial"))
    assert tiers.wait_p95_days is not None
    assert partial.wait_p95_days is not None
    assert tiers.wait_p95_days > 1.3 * partial.wait_p95_days
    assert tiers.on_time_share is not None
    assert partial.on_time_share is not None
    assert tiers.on_time_share < partial.on_time_share - 0.10
    assert tiers.gave_up > 1.5 * partial.gave_up


def test_a_late_supplier_breaks_promises_whatever_the_policy(
    results: dict[str, SimulationResult],
) -> None:
    shares = [_m(results, "late-supplier", p).on_time_share for p in ("strict", "partial", "tiers")]
    assert all(share is not None and share < 0.9 for share in shares)
    assert max(shares) - min(shares) < 0.01  # type: ignore[type-var,operator]
    for tier in TIERS:  # the lines clear at the next delivery: order barely matters
        waits = [_wait(results, "late-supplier", p, tier) for p in ("strict", "partial", "tiers")]
        assert max(waits) - min(waits) < 0.1


def test_which_policy_serves_which_tier_best(results: dict[str, SimulationResult]) -> None:
    # the notebook's last table: the policies within 2 % of the shortest mean wait
    def best(preset: str, tier: str) -> set[str]:
        waits = {p: _wait(results, preset, p, tier) for p in ("strict", "partial", "tiers")}
        return {p for p, wait in waits.items() if wait <= 1.02 * min(waits.values())}

    for preset in ("scarce", "lumpy"):
        assert best(preset, "contract") == best(preset, "vip") == {"tiers"}
        assert best(preset, "standard") == {"strict", "partial"}
    for tier in TIERS:
        assert best("steady", tier) == {"strict", "partial", "tiers"}
