"""The optional extras: DataFrames with proper dtypes (pandas), plots (matplotlib).

Skipped where the extra is not installed; CI installs both for the wheel's run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backorder import BackorderBook, PartialFill, PriorityTiers, StrictFIFO
from backorder.simulate import simulate, synthetic

from .helpers import small_book


def _book() -> BackorderBook:
    return small_book("PO-1")


def test_data_frames_have_proper_dtypes() -> None:
    pytest.importorskip("pandas")
    book = _book()
    lines = book.to_pandas()
    assert list(lines["order_id"]) == ["A-1", "A-1", "V-1"]
    assert str(lines["ordered"].dtype) == "int64"
    assert str(lines["position"].dtype) == "Int64"
    assert lines["position"].isna().tolist() == [False, False, True]
    assert str(lines["placed_at"].dtype).startswith("datetime64")
    assert str(lines["placed_at"].dt.tz) == "UTC"
    assert str(lines["tier"].dtype) == "string"
    ledger = book.ledger.to_pandas()
    assert list(ledger["kind"]) == ["receipt", "allocation", "allocation"]
    assert str(ledger["on_hand"].dtype) == "int64"
    assert str(ledger["at"].dt.tz) == "UTC"
    result = simulate(synthetic(days=10, orders_per_day=10, seed=2), [PartialFill()])
    measures = result.to_pandas()
    assert len(measures) == len(result.measures)
    assert str(measures["fill_rate"].dtype) == "float64"
    assert str(measures["orders"].dtype) == "int64"
    # an empty book still has its columns
    empty = BackorderBook().to_pandas()
    assert len(empty) == 0
    assert "backordered" in empty.columns


def test_a_simulation_plots_waits_and_levels(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    events = synthetic(days=20, orders_per_day=15, seed=4, fill_ratio=0.9)
    result = simulate(events, {"strict": StrictFIFO(), "tiers": PriorityTiers()})
    assert set(result.curves) == {"strict", "tiers"}
    assert 0 < len(result.curves["strict"]) <= 1_001
    assert all(len(result.waits[key]) == result.get(*key).filled for key in result.waits)
    figure = result.plot()
    waits_axes, curve_axes = figure.axes
    assert len(curve_axes.get_lines()) == 4  # on hand and backordered per policy
    assert "wait" in waits_axes.get_title()
    path = tmp_path / "comparison.png"
    figure.savefig(path)
    assert path.stat().st_size > 10_000


def test_without_the_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    real = importlib.import_module

    def without_extras(name: str, package: str | None = None) -> object:
        if name in ("pandas", "matplotlib.figure"):
            raise ImportError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_extras)
    with pytest.raises(ImportError, match=r"backorder\[pandas\]"):
        BackorderBook().to_pandas()
    result = simulate(synthetic(days=3, orders_per_day=5, seed=1), [PartialFill()])
    with pytest.raises(ImportError, match=r"backorder\[plot\]"):
        result.plot()
