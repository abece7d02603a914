"""The fleet quickstart notebook executes top to bottom on small sizes (nbclient, the python3 kernel)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "fleet_quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("DECISIONLAB_NUM_THREADS", "1")
    monkeypatch.setenv("DECISIONLAB_NOTEBOOK_SMALL", "1")  # the quick sizes
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in code)  # stored cleared
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in code for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 3  # the map, daily profit with CIs, spill per hour
    text = "".join(o.get("text", "") for o in outputs)
    profits = dict(re.findall(r"^daily_profit (\S+): (-?[0-9.]+)", text, re.M))
    assert set(profits) == {"greedy", "random", "ppo"}, text
    assert float(profits["ppo"]) > float(profits["random"]), profits
    assert "bound above every policy: True" in text, text
