"""The fleet quickstart notebook executes top to bottom (small sizes)."""

from __future__ import annotations

import re


def test_quickstart_notebook_runs(run_notebook) -> None:
    run = run_notebook("fleet_quickstart.ipynb")
    assert len(run.figures) == 3  # the map, daily profit with CIs, spill per hour
    profits = dict(re.findall(r"^daily_profit (\S+): (-?[0-9.]+)", run.text, re.M))
    assert set(profits) == {"greedy", "random", "ppo"}, run.text
    assert float(profits["ppo"]) > float(profits["random"]), profits
    assert "bound above every policy: True" in run.text, run.text
