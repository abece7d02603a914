"""Sweeps without Ray: the grid, the plan's checks, the ledger, the best configuration, a local sweep with
Ray missing. (A local sweep killed halfway and resumed is in test_ray.py, where its per-trial
results are compared with Ray's.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from decisionlab.core.errors import DecisionlabError, ScenarioError
from decisionlab.core.sweep import SweepLedger, SweepPlan, Trial, best_trial, check_plan, parse_grid

# A trial of pathwise training on Almgren–Chriss (about half a second), scored on 16 episodes: the sweep's
# workings, not its figures (docs/scaling.md runs the 2 seeds x 3 learning rates of HDPO on lost sales).
TINY = ["--algo-set", "max_steps=100", "--algo-set", "batch_size=64", "--algo-set", "train_paths=256",
        "--algo-set", "eval_paths=256", "--episodes", "16"]


def sweep_command(name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "decisionlab.apps.cli", "sweep", "execution", "--scenario", "almgren_chriss",
            "--algo", "pathwise", "--grid", "learning_rate=0.001,0.003,0.01", "--seeds", "2", *TINY, "--name", name,
            "--json", *extra]


def plan(**changes) -> SweepPlan:
    fields = dict(name="s", domain="inventory", scenario="lost_sales", algo="hdpo",
                  grid={"learning_rate": [0.01, 0.03]}, seeds=[0, 1], options={"max_steps": 3}, episodes=4)
    return SweepPlan(**{**fields, **changes})


def test_the_grid_is_parsed_like_set_and_bad_grids_are_named() -> None:
    assert parse_grid(["learning_rate=0.003,0.01", "quality=fast,precise"]) == {
        "learning_rate": [0.003, 0.01], "quality": ["fast", "precise"]}
    for bad, message in ((["learning_rate"], "key=value1,value2"), (["learning_rate="], "key=value1,value2"),
                         (["a=1", "a=2"], "given twice"), (["a=1,1"], "twice"), ([], "at least one")):
        with pytest.raises(ScenarioError, match=message) as caught:
            parse_grid(bad)
        assert "--grid" in str(caught.value)


def test_trials_are_configurations_times_seeds_in_grid_order() -> None:
    trials = plan(grid={"learning_rate": [0.01, 0.03], "hidden": [16, 32]}, seeds=[0, 1, 2]).trials()
    assert len(trials) == 12 and [t.index for t in trials] == list(range(12))
    assert trials[0] == Trial(0, {"learning_rate": 0.01, "hidden": 16}, 0)
    assert trials[3].config == {"learning_rate": 0.01, "hidden": 32} and trials[3].seed == 0
    assert len({t.key for t in trials}) == 12


def test_a_plan_is_checked_before_any_training() -> None:
    check_plan(plan())
    with pytest.raises(DecisionlabError, match="learning_rat"):
        check_plan(plan(grid={"learning_rat": [0.1]}))
    with pytest.raises(DecisionlabError, match="learning_rate"):
        check_plan(plan(grid={"learning_rate": ["fast"]}))
    with pytest.raises(DecisionlabError, match="--algo-set"):
        check_plan(plan(options={"learning_rate": 0.1}))
    with pytest.raises(DecisionlabError, match="seeds"):
        check_plan(plan(seeds=[]))
    with pytest.raises(DecisionlabError, match="algorithm|algo"):
        check_plan(plan(algo="nope"))


def test_the_ledger_keeps_one_plan_and_skips_a_torn_line(decisionlab_home: Path) -> None:
    ledger = SweepLedger("s")
    ledger.open(plan())
    ledger.open(plan())  # the same plan: a resume
    with pytest.raises(DecisionlabError, match="another plan"):
        ledger.open(plan(seeds=[0, 1, 2]))
    first = plan().trials()[0]
    ledger.record({"index": 0, "config": first.config, "seed": first.seed, "metrics": {"cost_per_period": 5.0},
                   "policy_ref": "inventory/s@1", "train_seconds": 1.0})
    with open(ledger.folder / "trials.jsonl", "a") as out:
        out.write('{"index": 1, "config"')  # a kill mid-write
    assert list(ledger.finished()) == [first.key]


def test_the_best_configuration_is_the_best_mean_over_seeds() -> None:
    def trial(lr: float, seed: int, cost: float) -> dict:
        return {"config": {"learning_rate": lr}, "seed": seed, "metrics": {"cost": cost}, "policy_ref": f"{lr}/{seed}"}

    # 0.01 has the single best seed (1.0) but the worse mean (3.0 vs 2.5)
    trials = [trial(0.01, 0, 1.0), trial(0.01, 1, 5.0), trial(0.03, 0, 2.0), trial(0.03, 1, 3.0)]
    assert best_trial(trials, "cost", "lower")["policy_ref"] == "0.03/0"
    assert best_trial(trials, "cost", "higher")["policy_ref"] == "0.01/1"


def test_a_local_sweep_needs_no_ray(decisionlab_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from decisionlab.core.sweep_runner import run_sweep

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    report = run_sweep(plan(grid={"learning_rate": [0.01]}, seeds=[0], overrides={"horizon_periods": 300,
                                                                                   "warmup_periods": 50}))
    assert report.trained == 1 and report.best["alias"] == "inventory/s@best"
    with pytest.raises(DecisionlabError, match=r"decisionlab\[ray\]"):
        run_sweep(plan(name="t"), backend="ray")


def test_a_sweep_name_with_another_plan_is_refused_naming_the_option(decisionlab_home: Path) -> None:
    from typer.testing import CliRunner

    from decisionlab.apps.cli import app

    SweepLedger("taken").open(plan(name="taken"))
    result = CliRunner().invoke(app, sweep_command("taken")[3:])
    assert result.exit_code == 2 and "--name" in result.stderr and "another plan" in result.stderr
    result = CliRunner().invoke(app, [*sweep_command("x")[3:], "--backend", "spark"])
    assert result.exit_code == 2 and "--backend" in result.stderr
