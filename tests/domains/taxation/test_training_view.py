"""The training tab's data: a registered two-level run's curve carries both levels and the measured rates."""

from __future__ import annotations

from pathlib import Path

import torch

from decisionlab.core import PolicyRegistry, RunStore
from decisionlab.core.training import train_and_register
from decisionlab.domains.taxation import ONE_STEP, SPEC
from decisionlab.domains.taxation.training_view import objective_figure, returns_figure, two_level_runs

SMOKE = dict(ONE_STEP.algo("two_level_ppo").smoke_options) | {"planner_stages": 2}


def test_a_two_level_run_records_both_levels_and_the_measured_rates(tmp_path: Path) -> None:
    registry = PolicyRegistry(tmp_path)
    report = train_and_register(SPEC, "one_step", {"n_agents": 5}, "two_level_ppo", seed=0, name="pair",
                                device=torch.device("cpu"), progress=False, options=SMOKE, registry=registry)
    assert report.record.card["policy_kind"] == "taxation_pair"
    runs = two_level_runs(RunStore(tmp_path), "taxation")
    assert [run.label for run in runs] == [str(report.record.ref)]
    curve = RunStore.table(runs[0], "curve")
    assert curve["step"].is_sorted()  # one axis across the phases' training calls
    assert {"workers", "planner", "measure"} <= set(curve["phase"].to_list())
    figure = returns_figure(curve)
    assert [trace.name.split(" ")[0] for trace in figure.data] == ["planner", "workers"]
    measured = objective_figure(curve, "equality_times_productivity")
    per_restart = 2 + 1  # a cycle per stage, then the final catch-up
    assert measured is not None and len(measured.data[0].x) == SMOKE["restarts"] * per_restart
    ends = curve.filter(curve["phase"] == "measure")["exact_objective"].to_list()[per_restart - 1::per_restart]
    kept = report.outcome.metrics["exact_equality_times_productivity"]
    assert any(abs(end - kept) < 1e-9 for end in ends)  # the pair kept is one restart's final pair
