"""The CLI contract that outside scripts depend on: names, --json shape, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from request_helpers import cli_json
from typer.testing import CliRunner

from decisionlab.apps.cli import app

ZIPKIN_L2_P9 = 6.0936  # exact lost-sales optimum, Poisson(5), h = 1 (Zipkin 2008)


@pytest.fixture()
def cli() -> CliRunner:
    return CliRunner()


_json = cli_json


def test_domains_json_lists_inventory_with_its_names(cli: CliRunner) -> None:
    payload = _json(cli, "domains", "--json")
    inventory = next(d for d in payload["domains"] if d["name"] == "inventory")
    assert "lost_sales" in inventory["scenarios"]
    assert {"base_stock", "capped_base_stock", "myopic", "optimal"} <= set(inventory["policies"])
    assert "hdpo" in inventory["algos"]
    assert inventory["primary_metric"] == "cost_per_period"
    assert {"lead_time", "holding_cost", "underage_cost", "demand_mean"} <= set(inventory["scenarios"]["lost_sales"])


def test_evaluate_optimal_matches_zipkin_within_half_a_percent(cli: CliRunner) -> None:
    payload = _json(
        cli, "evaluate", "inventory", "--scenario", "lost_sales", "--set", "lead_time=2", "--set", "underage_cost=9",
        "--policy", "optimal", "--json",
    )
    assert payload["domain"] == "inventory"
    assert payload["scenario"]["lead_time"] == 2 and payload["scenario"]["underage_cost"] == 9
    (result,) = payload["results"]
    assert result["policy"] == "optimal"
    cost = result["metrics"]["cost_per_period"]
    assert abs(cost / ZIPKIN_L2_P9 - 1) < 0.005
    assert result["ci95"]["cost_per_period"] > 0


def test_base_stock_is_worse_than_optimal_by_the_expected_margin(cli: CliRunner) -> None:
    """Literature: best base-stock is 0.3-10% above the lost-sales optimum; at L=2, p=9 about 3-4%."""
    payload = _json(
        cli, "evaluate", "inventory", "--set", "lead_time=2", "--set", "underage_cost=9", "--set",
        "horizon_periods=3000", "--set", "warmup_periods=500", "--policy", "optimal", "--policy", "base_stock",
        "--episodes", "32", "--json",
    )
    optimal, base = payload["results"]
    gap = base["diff_vs_first"]["cost_per_period"] / optimal["metrics"]["cost_per_period"]
    assert 0.01 < gap < 0.08
    assert base["diff_vs_first"]["cost_per_period"] > base["diff_ci95"]["cost_per_period"]  # significant


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["evaluate", "nope", "--policy", "optimal"], "unknown domain 'nope'"),
        (["evaluate", "inventory", "--scenario", "nope", "--policy", "optimal"], "unknown inventory scenario"),
        (["evaluate", "inventory", "--policy", "nope"], "unknown inventory policy 'nope'"),
        (["evaluate", "inventory", "--policy", "optimal", "--set", "lead=2"], "unknown parameter(s) lead"),
        (["evaluate", "inventory", "--policy", "optimal", "--set", "lead_time=-1"], "lead_time"),
        (["evaluate", "inventory", "--policy", "optimal", "--set", "lead_time=9"], "exact DP"),
        (["evaluate", "inventory", "--policy", "optimal", "--set", "lead_time"], "key=value"),
        (["evaluate", "inventory", "--policy", "inventory/missing@3"], "no registered policy"),
        (["evaluate", "inventory", "--policy", "optimal", "--policy", "optimal"], "more than once"),
        (["train", "inventory", "--algo", "nope"], "unknown inventory algorithm 'nope'"),
        (["train", "inventory", "--algo", "hdpo", "--name", "bad name"], "policy name 'bad name'"),
        (["train", "inventory", "--algo", "hdpo", "--set", "demand_mean=0"], "demand_mean"),
        (["train", "inventory", "--algo", "hdpo", "--algo-set", "steps=3"], "unknown hdpo option(s) steps"),
        (["train", "inventory", "--algo", "hdpo", "--algo-set", "quality=best"], "quality"),
        # found by an outside-in audit: a traceback, or an option trained on and stored as Infinity
        (["evaluate", "execution", "--policy", "twap", "--seed", "99999999999999999999999"], "--seed"),
        (["train", "execution", "--algo", "pathwise", "--algo-set", "hidden=[-5]"], "hidden.0"),
        (["train", "execution", "--algo", "pathwise", "--algo-set", "hidden=[]"], "hidden"),
        (["train", "execution", "--algo", "pathwise", "--algo-set", "learning_rate=inf"], "learning_rate"),
        (["sweep", "execution", "--algo", "pathwise", "--grid", "max_steps=2,3", "--alias", "9bad"], "alias '9bad'"),
        (["policies", "list", "--domain", "nowhere"], "unknown domain 'nowhere'"),  # was an empty list, exit 0
    ],
)
def test_user_mistakes_give_a_message_and_exit_2(cli: CliRunner, args: list[str], needle: str) -> None:
    result = cli.invoke(app, [*args, "--json"])
    assert result.exit_code == 2
    assert needle in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_json_stdout_is_exactly_one_object_from_the_installed_command() -> None:
    """Run the real entry point: stdout must parse as one JSON object (logs go to stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "decisionlab.apps.cli", "evaluate", "inventory", "--set", "lead_time=1",
         "--set", "horizon_periods=500", "--set", "warmup_periods=100", "--policy", "myopic", "--episodes", "4",
         "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["results"][0]["policy"] == "myopic"


def test_trained_policy_is_registered_and_usable_by_reference(cli: CliRunner) -> None:
    """train --json returns a reference; evaluate accepts it in both long and short form."""
    trained = _json(
        cli, "train", "inventory", "--scenario", "lost_sales", "--set", "lead_time=1", "--algo", "hdpo",
        "--algo-set", "max_steps=40", "--name", "quick", "--json",
    )
    assert trained["policy_ref"] == "inventory/quick@1"
    assert trained["metrics"]["cost_per_period"] > 0 and trained["train_seconds"] > 0
    again = _json(cli, "train", "inventory", "--set", "lead_time=1", "--algo", "hdpo", "--algo-set", "max_steps=20",
                  "--name", "quick", "--json")
    assert again["policy_ref"] == "inventory/quick@2"
    payload = _json(
        cli, "evaluate", "inventory", "--set", "lead_time=1", "--set", "horizon_periods=600", "--set",
        "warmup_periods=100", "--policy", "optimal", "--policy", "inventory/quick@1", "--policy", "quick",
        "--episodes", "8", "--json",
    )
    labels = [r["policy"] for r in payload["results"]]
    assert labels == ["optimal", "inventory/quick@1", "inventory/quick@2"]
    # A policy trained for lead time 1 refuses a lead-time-3 scenario with a clear message.
    result = cli.invoke(app, ["evaluate", "inventory", "--set", "lead_time=3", "--policy", "quick", "--json"])
    assert result.exit_code == 2 and "lead_time=1" in result.stderr


# --- found when tried as a new user would (domain contract v2) ----------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_parameters_say_finite_number(cli: CliRunner, value: str) -> None:
    result = cli.invoke(app, ["evaluate", "inventory", "--policy", "myopic", "--set", f"demand_mean={value}"])
    assert result.exit_code == 2
    assert "demand_mean" in result.stderr and "finite number" in result.stderr
    assert "less than or equal" not in result.stderr


@pytest.mark.parametrize("name", ["", " ", "-leading", "x" * 65])
def test_an_empty_or_invalid_name_is_refused_before_training(cli: CliRunner, name: str) -> None:
    result = cli.invoke(app, ["train", "inventory", "--algo", "hdpo", "--name", name])
    assert result.exit_code == 2
    assert "policy name" in result.stderr and "not a valid registry name" in result.stderr


def test_huge_episode_counts_are_refused_up_front_naming_the_memory(cli: CliRunner) -> None:
    result = cli.invoke(app, ["evaluate", "inventory", "--policy", "myopic", "--policy", "base_stock",
                              "--episodes", "100000000"])
    assert result.exit_code == 2
    assert "episodes" in result.stderr and "GiB" in result.stderr and "DECISIONLAB_MAX_EVAL_BYTES" in result.stderr


def test_messages_name_the_setting_not_a_class(cli: CliRunner) -> None:
    result = cli.invoke(app, ["evaluate", "inventory", "--scenario", "backlog", "--policy", "optimal"])
    assert result.exit_code == 2
    assert "Single store" in result.stderr and "Inventory networks" in result.stderr
    assert "Scenario" not in result.stderr  # no class names such as LostSalesScenario


def test_numbers_are_never_cut_when_piped(cli: CliRunner) -> None:
    result = cli.invoke(app, ["evaluate", "inventory", "--scenario", "backlog", "--set", "demand_mean=128458",
                              "--set", "horizon_periods=300", "--set", "warmup_periods=50",
                              "--policy", "critical_fractile", "--episodes", "4"])
    assert result.exit_code == 0, result.output
    payload = _json(cli, "evaluate", "inventory", "--scenario", "backlog", "--set", "demand_mean=128458",
                    "--set", "horizon_periods=300", "--set", "warmup_periods=50",
                    "--policy", "critical_fractile", "--episodes", "4", "--json")
    cost = payload["results"][0]["metrics"]["cost_per_period"]
    assert f"{cost:.4f}" in result.stdout and "…" not in result.stdout


def test_narrow_terminals_drop_the_secondary_columns_first() -> None:
    from decisionlab.apps.cli import REPORT_COLUMNS, report_columns

    rows = [{"policy": "p", "metric": "cost_per_period", "mean": "1284580.1234", "± 95% CI": "1.0000",
             "vs first": "+0.0000", "± 95% CI (paired)": "0.0000"}]
    assert report_columns(rows, 200) == list(REPORT_COLUMNS)
    narrow = report_columns(rows, 60)
    assert "mean" in narrow and "vs first" in narrow and "± 95% CI" not in narrow


def test_piped_policy_listing_is_plain_and_never_breaks_a_reference(tmp_path, monkeypatch) -> None:
    """``decisionlab policies list | ...``: one line per version, whole references, no box drawing."""
    from decisionlab.core.store.registry import PolicyRegistry

    monkeypatch.setenv("DECISIONLAB_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "40")
    long_name = "a_rather_long_policy_name_for_market_making"
    PolicyRegistry(tmp_path).save("market_making", long_name, {}, {"algo": "pathwise", "scenario_name": "x",
                                                                   "metrics": {"sharpe": 1.25}})
    done = subprocess.run([sys.executable, "-m", "decisionlab.apps.cli", "policies", "list"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].split()[0] == "reference" and len(lines) == 2
    assert lines[1].startswith(f"market_making/{long_name}@1 ") and "sharpe = 1.25" in lines[1]
    assert not set(done.stdout) & set("┃│━─┏┓")
