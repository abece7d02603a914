"""The execution page of the dashboard (Streamlit AppTest: the generic comparison plus the execution
tabs) and the pure helpers of its tabs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from decisionlab.core.dashboard.compare import run_comparison
from decisionlab.core.errors import DecisionlabError
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.execution import SETTING, SPEC, view
from decisionlab.domains.execution.policies import ExecutionMLP

DEFAULT_POLICIES = list(SETTING.default_policies)


def test_page_runs_and_shows_the_comparison_and_the_execution_tabs(decisionlab_home: Path, domain_page) -> None:
    net = ExecutionMLP(10, 1e6, (8,))
    PolicyRegistry().save("execution", "pw", net.state_dict(), {"policy_config": net.config(), "metrics": {}})
    at = domain_page("execution").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="execution_policies").value == DEFAULT_POLICIES
    assert "execution/pw@1" in at.multiselect(key="execution_policies").options
    assert len(at.get("plotly_chart")) == 1  # the frontier before any run
    at.number_input(key="execution_episodes").set_value(500)
    at.multiselect(key="execution_policies").set_value([*DEFAULT_POLICIES, "execution/pw@1"])
    at.button(key="execution_run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error
    table = at.dataframe[0].value
    assert list(table["policy"]) == [*DEFAULT_POLICIES, "execution/pw@1"]
    assert table["diff_vs_first"][0] == 0.0
    # the paired-difference chart, then frontier, trajectories, shortfalls, liquidity
    assert len(at.get("plotly_chart")) == 5


def test_page_reports_invalid_parameters(decisionlab_home: Path, domain_page) -> None:
    at = domain_page("execution").run()
    at.number_input(key="execution_eta").set_value(1e-8)  # below gamma / 2
    at.button(key="execution_run").click().run(timeout=60)
    assert not at.exception
    assert "eta" in at.error[0].value


def test_run_comparison_and_path_frames() -> None:
    result = run_comparison(SPEC, "latent_liquidity", {}, ["static_expected", "twap", "nope"], episodes=400, seed=1,
                            device=torch.device("cpu"))
    assert "nope" in result.skipped
    assert list(result.table["policy"]) == ["static_expected", "twap"]
    assert result.table["mean_variance_objective"][1] > result.table["mean_variance_objective"][0]
    frames = view.paths_frames(result.scenario, result.policies, 400, 1)
    traj = frames.trajectories.filter(pl.col("policy") == "twap")
    np.testing.assert_allclose(traj["mean"].to_numpy(), np.linspace(1, 0, 11), atol=1e-6)
    assert set(frames.liquidity.columns) >= {"step", "path", "impact", "regime", "trade:twap"}
    assert frames.shortfalls.height == 800
    with pytest.raises(DecisionlabError, match="at least one policy"):
        run_comparison(SPEC, "latent_liquidity", {}, [], episodes=10)


def test_frontier_frame_is_monotone() -> None:
    frame = view.frontier_frame(SPEC.scenario("almgren_chriss"), points=9)
    assert frame["risk_aversion"][0] == 0.0
    assert np.all(np.diff(frame["expected"].to_numpy()) >= -1e-6)
    assert np.all(np.diff(frame["variance"].to_numpy()) <= 1e-3)
    figure = view.frontier_figure(frame, risk_aversion=1e-6)
    assert len(figure.data) == 2
