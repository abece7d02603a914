"""The execution quickstart notebook executes top to bottom (small sizes) in under two minutes."""

from __future__ import annotations

import time


def test_quickstart_notebook_runs(run_notebook) -> None:
    start = time.perf_counter()
    run = run_notebook("execution_quickstart.ipynb")
    assert time.perf_counter() - start < 120
    assert len(run.figures) == 3
    assert "541956" in run.text  # the paper's trajectory
