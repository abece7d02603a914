"""The inventory quickstart notebook runs top to bottom (small sizes)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "inventory_quickstart.ipynb"


def test_quickstart_notebook_executes(monkeypatch) -> None:
    monkeypatch.setenv("DECISIONLAB_NOTEBOOK_SMALL", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.get("output_type") == "error"]
    assert any("application/vnd.plotly.v1+json" in out.get("data", {}) for out in outputs)
