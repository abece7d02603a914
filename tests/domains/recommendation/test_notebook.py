"""The recommendation quickstart notebook executes top to bottom (small sizes) in seconds."""

from __future__ import annotations

import re
import time


def test_quickstart_notebook_runs(run_notebook) -> None:
    start = time.perf_counter()
    run = run_notebook("recommendation_quickstart.ipynb")
    assert time.perf_counter() - start < 60
    assert len(run.figures) == 2  # the funnel, the off-policy estimates
    ctr = {name: float(value) for name, value in
           re.findall(r"^revenue (\S+): [0-9.]+ ± [0-9.]+ \(ctr ([0-9.]+)\)$", run.text, re.M)}
    assert set(ctr) == {"random", "popularity", "ctr_greedy", "rliv"}, run.text
    assert ctr["ctr_greedy"] > ctr["random"], ctr  # the click-greedy ranker gets the most clicks
    truth = re.search(r"^([0-9,]+) logged requests; truth: ctr ([0-9.]+), revenue ([0-9.]+)$", run.text, re.M)
    assert truth is not None and int(truth[1].replace(",", "")) > 0 and 0 < float(truth[2]) < 1, run.text
    for estimator in ("IPS", "SNIPS", "doubly robust", "pseudo-inverse (slate)"):
        assert estimator in run.text, estimator
