"""The market-making quickstart notebook executes top to bottom (small sizes)."""

from __future__ import annotations


def test_quickstart_notebook_runs(run_notebook) -> None:
    run = run_notebook("market_making_quickstart.ipynb")
    assert len(run.figures) == 3
    assert "avellaneda_stoikov  mean= 64.89" in run.text  # the published 65.0 (exact recursion)
