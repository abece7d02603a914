"""The ride-hailing quickstart notebook executes top to bottom (small sizes)."""

from __future__ import annotations

import re

POLICIES = {"nearest", "fare_matching", "nearest+reposition", "td_online"}


def test_quickstart_notebook_runs(run_notebook) -> None:
    run = run_notebook("ride_hailing_quickstart.ipynb")
    assert len(run.figures) == 3  # KPIs with CIs, the value map, the income distribution
    rates = {name: float(value) for name, value in re.findall(r"^answer_rate (\S+): ([0-9.]+)$", run.text, re.M)}
    assert set(rates) == POLICIES, run.text
    assert all(0.0 < rate <= 1.0 for rate in rates.values()), rates
