"""The CLI names scripts depend on, for the execution domain."""

from __future__ import annotations

import pytest
from request_helpers import cli_json
from typer.testing import CliRunner

from decisionlab.apps.cli import app

AC_OBJECTIVE = 911_226.99 + 1e-6 * 3.64128572e11  # closed-form E + λV of the paper's example


@pytest.fixture()
def cli() -> CliRunner:
    return CliRunner()


_json = cli_json


def test_domains_lists_the_execution_names(cli: CliRunner) -> None:
    payload = _json(cli, "domains", "--json")
    execution = next(d for d in payload["domains"] if d["name"] == "execution")
    assert {"almgren_chriss", "time_varying", "latent_liquidity"} <= set(execution["scenarios"])
    assert {"ac_optimal", "twap", "vwap", "static_expected"} <= set(execution["policies"])
    assert "pathwise" in execution["algos"]
    assert {"mean_shortfall", "std_shortfall", "mean_variance_objective", "shortfall_bps",
            "cvar95_shortfall"} <= set(execution["metrics"])
    params = execution["scenarios"]["almgren_chriss"]
    names = {"shares", "horizon_steps", "sigma", "eta", "gamma", "epsilon", "risk_aversion", "initial_price"}
    assert names <= set(params)


def test_evaluate_ac_optimal_vs_twap(cli: CliRunner) -> None:
    payload = _json(cli, "evaluate", "execution", "--scenario", "almgren_chriss", "--policy", "ac_optimal",
                    "--policy", "twap", "--json")
    ac, twap = payload["results"]
    assert (ac["policy"], twap["policy"]) == ("ac_optimal", "twap")
    objective, half = ac["metrics"]["mean_variance_objective"], ac["ci95"]["mean_variance_objective"]
    assert abs(objective - AC_OBJECTIVE) < 1.5 * half  # Monte Carlo agrees with the closed form
    assert half < 0.02 * objective
    diff, diff_half = twap["diff_vs_first"]["mean_variance_objective"], twap["diff_ci95"]["mean_variance_objective"]
    assert diff - diff_half > 0.3 * AC_OBJECTIVE  # TWAP: 1,745,500 vs 1,275,355 analytically
    assert ac["metrics"]["shortfall_bps"] == pytest.approx(ac["metrics"]["mean_shortfall"] / 5e7 * 1e4)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--scenario", "nope"], "unknown execution scenario"),
        (["--policy", "nope"], "unknown execution policy 'nope'"),
        (["--set", "sharez=5"], "unknown parameter(s) sharez"),
        (["--set", "eta=1e-7"], "eta"),
        (["--set", "horizon_steps=0"], "horizon_steps"),
    ],
)
def test_user_mistakes_exit_2_naming_the_problem(cli: CliRunner, args: list[str], needle: str) -> None:
    base = ["evaluate", "execution", "--episodes", "16", "--json"]
    if "--policy" not in args:
        base += ["--policy", "twap"]
    result = cli.invoke(app, [*base, *args])
    assert result.exit_code == 2
    assert needle in result.stderr and "Traceback" not in result.output


def test_train_price_blind_pathwise_then_evaluate_against_ac(cli: CliRunner) -> None:
    """`--algo-set` reaches the trainer; the registered policy is evaluated by reference."""
    trained = _json(
        cli, "train", "execution", "--scenario", "almgren_chriss", "--algo", "pathwise", "--algo-set",
        "price_features=false", "--algo-set", "max_steps=60", "--algo-set", "train_paths=4096", "--algo-set",
        "eval_paths=4096", "--name", "blind", "--json",
    )
    assert trained["policy_ref"] == "execution/blind@1"
    payload = _json(cli, "evaluate", "execution", "--scenario", "almgren_chriss", "--policy", "ac_optimal",
                    "--policy", "blind", "--episodes", "20000", "--json")
    ac, blind = payload["results"]
    gap = blind["diff_vs_first"]["mean_variance_objective"] / ac["metrics"]["mean_variance_objective"]
    assert abs(gap) < 0.005


def test_bad_pathwise_option_is_named(cli: CliRunner) -> None:
    result = cli.invoke(app, ["train", "execution", "--algo", "pathwise", "--algo-set", "steps=3", "--json"])
    assert result.exit_code == 2 and "unknown pathwise option(s) steps" in result.stderr
