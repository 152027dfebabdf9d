"""The example notebook runs top to bottom, its claims' asserts holding (the same
claims are asserted without the notebook in tests/test_simulate_presets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "examples" / "choosing-a-policy.ipynb"


def test_the_example_notebook_runs(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "<caption>&lt;SimulationResult" in html  # a result shown as its table
    assert "<th>on time</th>" in html
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # the waits by preset, the scarce and the lumpy runs
