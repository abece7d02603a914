"""The execution dashboard page (Streamlit AppTest) and its pure helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from streamlit.testing.v1 import AppTest

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.execution import dashboard
from decisionlab.domains.execution.policies import ExecutionMLP

PAGE = str(Path(__file__).resolve().parents[3] / "dashboards" / "pages" / "2_Execution.py")


def test_page_runs_and_shows_four_charts(decisionlab_home: Path) -> None:
    net = ExecutionMLP(10, 1e6, (8,))
    PolicyRegistry().save("execution", "pw", net.state_dict(), {"policy_config": net.config(), "metrics": {}})
    at = AppTest.from_file(PAGE).run(timeout=60)
    assert not at.exception, at.exception
    assert at.multiselect(key="execution_policies").value == list(dashboard.DEFAULT_POLICIES)
    assert "execution/pw@1" in at.multiselect(key="execution_policies").options
    assert len(at.get("plotly_chart")) == 1  # the frontier before any run
    at.number_input(key="execution_episodes").set_value(500)
    at.multiselect(key="execution_policies").set_value([*dashboard.DEFAULT_POLICIES, "execution/pw@1"])
    at.button(key="execution_run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error
    table = at.dataframe[0].value
    assert list(table["policy"]) == [*dashboard.DEFAULT_POLICIES, "execution/pw@1"]
    assert table["diff_vs_first"][0] == 0.0
    assert len(at.get("plotly_chart")) == 4  # frontier, trajectories, shortfalls, liquidity


def test_page_reports_invalid_parameters(decisionlab_home: Path) -> None:
    at = AppTest.from_file(PAGE).run(timeout=60)
    at.number_input(key="execution_eta").set_value(1e-8)  # below gamma / 2
    at.button(key="execution_run").click().run(timeout=60)
    assert not at.exception
    assert "eta" in at.error[0].value


def test_run_comparison_frames() -> None:
    result = dashboard.run_comparison({}, ["static_expected", "twap", "nope"], preset="latent_liquidity",
                                      episodes=400, seed=1, device=torch.device("cpu"))
    assert "nope" in result.skipped
    assert list(result.table["policy"]) == ["static_expected", "twap"]
    assert result.table["mean_variance_objective"][1] > result.table["mean_variance_objective"][0]
    traj = result.trajectories.filter(pl.col("policy") == "twap")
    np.testing.assert_allclose(traj["mean"].to_numpy(), np.linspace(1, 0, 11), atol=1e-6)
    assert set(result.liquidity.columns) >= {"step", "path", "impact", "regime", "trade:twap"}
    assert result.shortfalls.height == 800
    with pytest.raises(DecisionlabError, match="at least one policy"):
        dashboard.run_comparison({}, [], episodes=10)


def test_frontier_frame_is_monotone() -> None:
    from decisionlab.core.spec import get_domain

    frame = dashboard.frontier_frame(get_domain("execution").scenario("almgren_chriss"), points=9)
    assert frame["risk_aversion"][0] == 0.0
    assert np.all(np.diff(frame["expected"].to_numpy()) >= -1e-6)
    assert np.all(np.diff(frame["variance"].to_numpy()) <= 1e-3)
    figure = dashboard.frontier_figure(frame, risk_aversion=1e-6)
    assert len(figure.data) == 2
