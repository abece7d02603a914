"""The quickstart notebook executes top to bottom (nbclient, the current environment's python3 kernel)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "market_making_quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("DECISIONLAB_NUM_THREADS", "1")
    monkeypatch.setenv("DECISIONLAB_NOTEBOOK_SMALL", "1")  # the quick sizes
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 3
    text = "".join(o.get("text", "") for o in outputs)
    assert "avellaneda_stoikov  mean= 64.89" in text  # the published 65.0 (exact recursion)
