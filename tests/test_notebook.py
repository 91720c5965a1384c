"""examples/quickstart.ipynb runs from top to bottom, offline, on generated arrays: any error in a cell fails it."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_the_example_notebook_is_committed_without_outputs():
    notebook = json.loads(NOTEBOOK.read_text())
    for cell in notebook["cells"]:
        assert cell.get("outputs", []) == [] and cell.get("execution_count") is None


def test_the_example_notebook_runs_and_shows_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_QUICKSTART_TINY", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "<table" in html and ("Keep the baseline" in html or "Recommended" in html)  # the report's summary
    assert any("image/png" in o.get("data", {}) for o in outputs)  # a figure inline
    assert (tmp_path / "reports" / "report.md").exists() and (tmp_path / "tuner_results" / "grid" / "trials.csv").exists()
    assert os.environ["STUDY_QUICKSTART_TINY"] == "1"
