"""Off-policy evaluation of rankers: the log's propensities are the logging policy's, and the intervals hold the
simulator's truth (the benchmark checks coverage over 20 logs)."""

from __future__ import annotations

import json

import numpy as np
import torch
from typer.testing import CliRunner

from decisionlab.apps.cli import app
from decisionlab.core import off_policy_report
from decisionlab.domains.recommendation.ope import off_policy_log
from decisionlab.domains.recommendation.policies import ctr_greedy, popularity
from decisionlab.domains.recommendation.scenario import PRESETS

CPU = torch.device("cpu")
SCENARIO = PRESETS["small"].model_copy(update={"days": 1, "n_candidates": 8, "slate_size": 2})


def test_a_log_of_popularity_estimates_ctr_greedy_within_its_intervals() -> None:
    log = off_policy_log(SCENARIO, popularity(SCENARIO, CPU), ctr_greedy(SCENARIO, CPU), 300, 5, CPU, 2.0)
    report = off_policy_report(log)
    assert set(report["estimates"]) == {"ips", "snips", "dr", "pi"}
    for kind in ("snips", "dr"):  # revenue needs a larger log for its gifts (the benchmark's)
        e = report["estimates"][kind]["ctr"]
        assert abs(e["estimate"] - report["truth"]["ctr"]) <= e["ci95"], (kind, e, report["truth"])
    # every logged slate had a positive probability under the logging policy, and the deterministic target's
    # weight is 0 or 1/μ
    assert np.all(np.isfinite(log.logging_logp)) and np.all(log.logging_logp <= 0)
    assert set(np.unique(log.target_logp)) <= {0.0, -np.inf}
    assert 0 < report["effective_n"]["snips"]["ctr"] < report["rows"]


def test_the_cli_prints_one_json_object_with_the_truth_and_every_estimate(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DECISIONLAB_HOME", str(tmp_path))
    result = CliRunner().invoke(app, [
        "ope", "recommendation", "--scenario", "small", "--set", "days=1", "--set", "n_candidates=8",
        "--set", "slate_size=2", "--logging-policy", "random", "--target-policy", "popularity", "--episodes", "60",
        "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(body["truth"]) == {"ctr", "revenue"}
    assert {"ips", "snips", "dr"} <= set(body["estimates"])
    assert set(body["estimates"]["snips"]["ctr"]) == {"estimate", "ci95"}
    assert set(body["ab_test"]) == {"ctr", "revenue", "retention"}


def test_a_setting_without_propensities_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DECISIONLAB_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["ope", "taxation", "--logging-policy", "saez", "--target-policy",
                                      "us_federal", "--episodes", "4"])
    assert result.exit_code == 2
    assert "no off-policy evaluation" in result.output
