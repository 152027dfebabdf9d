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
    assert str(measures["gave_up"].dtype) == "int64"
    assert str(measures["unit_wait_mean_days"].dtype) == "Float64"
    assert str(measures["refused"].dtype) == "Int64"
    assert measures["refused"].isna().tolist() == [r.tier != "all" for r in result.measures]
    assert str(measures["tier"].dtype) == "string"
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
    waits_axes, backordered_axes, on_hand_axes = figure.axes
    assert "wait" in waits_axes.get_title()
    assert "days" in waits_axes.get_ylabel()
    legend = waits_axes.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["strict", "tiers"]
    for axes in (backordered_axes, on_hand_axes):
        lines = axes.get_lines()
        assert [line.get_label() for line in lines] == ["strict", "tiers"]
        # one colour, line style and marker per policy, so the lines can be told apart
        assert lines[0].get_color() != lines[1].get_color()
        assert lines[0].get_linestyle() != lines[1].get_linestyle()
        assert lines[0].get_marker() != lines[1].get_marker()
        assert axes.get_legend() is not None
        assert "days" in axes.get_xlabel()
        assert "units" in axes.get_ylabel()
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
