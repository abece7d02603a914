"""The inventory page on lost_sales (through AppTest: the generic comparison and the single-store
tabs) and the pure helpers behind it. The other settings and the generated sidebar have their own
tests; the home page is tested with the shell (tests/core/dashboard)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from streamlit.testing.v1 import AppTest

from decisionlab.core.dashboard import compare
from decisionlab.core.errors import DecisionlabError, ScenarioError
from decisionlab.core.evaluation import EvaluationReport
from decisionlab.core.spec import get_domain
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory import SINGLE_STORE, SPEC
from decisionlab.domains.inventory.single_store import view as single_view
from decisionlab.domains.inventory.single_store.policies import BaseStockPolicy, OptimalLostSalesPolicy
from decisionlab.domains.inventory.views import decomposition_figure

REF = "inventory/hdpo_test@1"
CPU = torch.device("cpu")
DEFAULT_POLICIES = list(SINGLE_STORE.default_policies)
STATE_KEY = compare.results_key(SPEC)


def _charts(at: AppTest) -> list:
    return list(at.get("plotly_chart"))


# ------------------------------------------------------------------------------------------------
# Inventory page
# ------------------------------------------------------------------------------------------------


def _short(at: AppTest, horizon: int = 300, warmup: int = 50, episodes: int = 8) -> None:
    at.number_input(key="inventory_horizon_periods").set_value(horizon)
    at.number_input(key="inventory_warmup_periods").set_value(warmup)
    at.number_input(key="inventory_episodes").set_value(episodes)


def test_inventory_page_runs_and_keeps_results(registered: Path, domain_page) -> None:
    at = domain_page("inventory").run()
    assert not at.exception
    assert at.multiselect(key="inventory_policies").value == DEFAULT_POLICIES
    assert REF in at.multiselect(key="inventory_policies").options
    assert not at.dataframe  # nothing computed before Run

    _short(at)
    at.multiselect(key="inventory_policies").set_value([*DEFAULT_POLICIES, REF])
    at.button(key="inventory_run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error
    table = at.dataframe[0].value
    assert list(table["policy"]) == [*DEFAULT_POLICIES, REF]
    costs = table["cost_per_period"].to_numpy()
    assert np.all(np.isfinite(costs)) and np.all(costs > 0)
    assert table["diff_vs_first"][0] == 0.0
    assert np.all((table["fill_rate"] > 0.5) & (table["fill_rate"] <= 1.0))
    assert len(_charts(at)) == 4  # paired difference, trajectories, order curve, decomposition

    # A rerun without pressing Run shows the kept results without recomputing them.
    result = at.session_state[STATE_KEY]
    at.number_input(key="inventory_seed").set_value(7).run(timeout=60)
    assert not at.exception
    assert at.session_state[STATE_KEY] is result
    assert any("settings changed" in i.value for i in at.info)
    assert list(at.dataframe[0].value["policy"]) == list(table["policy"])


def test_inventory_page_reports_errors_without_tracebacks(
    home: Path, monkeypatch: pytest.MonkeyPatch, domain_page
) -> None:
    at = domain_page("inventory").run()
    # Invalid scenario: warm-up as long as the horizon.
    _short(at, horizon=300, warmup=300)
    at.button(key="inventory_run").click().run(timeout=60)
    assert not at.exception
    assert "warmup_periods" in at.error[0].value

    # The exact DP is over the memory budget at lead time 6: not offered, and the page says why.
    _short(at)
    at.number_input(key="inventory_lead_time").set_value(6)
    at.run(timeout=60)
    assert "optimal" not in at.multiselect(key="inventory_policies").options
    assert any("optimal" in c.value and "lead_time=6" in c.value and "GiB" in c.value for c in at.caption)
    at.multiselect(key="inventory_policies").set_value(["myopic"])
    at.button(key="inventory_run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error
    assert list(at.dataframe[0].value["policy"]) == ["myopic"]

    # A bad device setting is a user error too.
    monkeypatch.setenv("DECISIONLAB_DEVICE", "not-a-device")
    at.button(key="inventory_run").click().run(timeout=60)
    assert not at.exception
    assert "not-a-device" in at.error[0].value


# ------------------------------------------------------------------------------------------------
# Pure helpers
# ------------------------------------------------------------------------------------------------


def _scenario(**overrides: object):
    return get_domain("inventory").scenario("lost_sales", {"horizon_periods": 300, "warmup_periods": 50, **overrides})


def test_order_vs_position_base_stock_is_order_up_to() -> None:
    scenario = _scenario()
    frame = single_view.order_vs_position(scenario, [("bs", BaseStockPolicy(12.0))])
    assert frame.columns == ["policy", "on_hand", "inventory_position", "order"]
    position = frame["inventory_position"].to_numpy()
    order = frame["order"].to_numpy()
    assert position.min() == pytest.approx(2 * 5.0) and frame["on_hand"].max() == pytest.approx(15.0)
    assert np.all(np.diff(position) > 0)
    assert np.all(np.diff(order) <= 0)
    assert np.all(order[position >= 12.0] == 0)
    np.testing.assert_allclose(order, np.maximum(12.0 - position, 0.0))


def test_order_vs_position_optimal_is_monotone_with_slope_above_minus_one() -> None:
    scenario = _scenario()
    frame = single_view.order_vs_position(scenario, [("optimal", OptimalLostSalesPolicy(scenario))])
    order = frame["order"].to_numpy()
    steps = np.diff(order)  # on-hand grid is whole units for Poisson demand
    assert np.all(steps <= 0) and np.all(steps >= -1)  # Morton's bounds for lost sales
    assert order[0] > 0 and order[-1] == 0


def test_simulate_paths_share_one_demand_path() -> None:
    scenario = _scenario()
    policies = [("low", BaseStockPolicy(8.0)), ("high", BaseStockPolicy(20.0))]
    paths = single_view.simulate_paths(scenario, policies, periods=30, warmup=10, seed=3)
    assert paths.height == 60
    low = paths.filter(pl.col("policy") == "low")
    high = paths.filter(pl.col("policy") == "high")
    assert low["period"].to_list() == list(range(1, 31))
    assert low["demand"].to_list() == high["demand"].to_list()
    assert (paths["on_hand"] >= 0).all() and (paths["order"] >= 0).all()
    assert high["on_hand"].mean() > low["on_hand"].mean()
    again = single_view.simulate_paths(scenario, policies, periods=30, warmup=10, seed=3)
    assert again.equals(paths)


def test_results_frame_is_one_row_per_policy_in_order() -> None:
    metrics = ("cost_per_period", "holding_cost_per_period", "shortage_cost_per_period", "fill_rate", "mean_on_hand")

    def episodes(cost: float) -> dict[str, np.ndarray]:
        out = {m: np.full(4, 1.0) for m in metrics}
        out["cost_per_period"] = np.array([cost, cost + 1, cost + 2, cost + 3])
        return out

    report = EvaluationReport("inventory", _scenario(), ["b", "a"], {"b": episodes(5.0), "a": episodes(6.0)}, 4, 0)
    frame = report.wide("cost_per_period")
    assert frame["policy"].to_list() == ["b", "a"]
    assert frame.columns[:5] == ["policy", "cost_per_period", "ci95", "diff_vs_first", "diff_ci95"]
    assert {"holding_cost_per_period", "shortage_cost_per_period", "fill_rate"} <= set(frame.columns)
    assert frame["cost_per_period"].to_list() == pytest.approx([6.5, 7.5])
    assert frame["diff_vs_first"].to_list() == pytest.approx([0.0, 1.0])
    assert frame["diff_ci95"].to_list() == pytest.approx([0.0, 0.0])
    assert frame["ci95"][0] > 0
    # The chart is the paired difference with its CI (tight here: the pairs differ by a constant).
    figure = compare.difference_figure(report, "cost_per_period")
    assert [trace.name for trace in figure.data] == ["a"]
    assert list(figure.data[0].x) == pytest.approx([1.0]) and list(figure.data[0].error_x.array) == pytest.approx([0.0])
    assert decomposition_figure(frame).layout.barmode == "stack"


def test_build_selected_skips_what_cannot_run() -> None:
    spec = get_domain("inventory")
    scenario = _scenario(demand_distribution="normal")
    built, skipped = compare.build_selected(spec, scenario, ["optimal", "myopic"], CPU)
    assert [label for label, _ in built] == ["myopic"]
    assert "poisson" in skipped["optimal"]


def test_run_comparison_raises_user_errors(home: Path) -> None:
    quick = {"horizon_periods": 300, "warmup_periods": 50}
    with pytest.raises(DecisionlabError, match="at least one policy"):
        compare.run_comparison(SPEC, "lost_sales", quick, [], episodes=4, device=CPU)
    with pytest.raises(ScenarioError, match="warmup_periods"):
        compare.run_comparison(SPEC, "lost_sales", {"horizon_periods": 300, "warmup_periods": 300}, ["myopic"],
                               episodes=4, device=CPU)
    with pytest.raises(DecisionlabError, match="none of the chosen policies"):
        compare.run_comparison(SPEC, "lost_sales", {"lead_time": 6, **quick}, ["optimal"], episodes=4, device=CPU)


def test_policy_choices_lists_baselines_then_registered(registered: Path) -> None:
    spec = get_domain("inventory")
    scenario = spec.scenario("lost_sales")
    assert compare.policy_choices(spec, scenario, PolicyRegistry()) == [*SINGLE_STORE.policies, REF]
    # normal demand: the exact DP is not offered
    normal = spec.scenario("lost_sales", {"demand_distribution": "normal"})
    assert "optimal" not in compare.policy_choices(spec, normal, PolicyRegistry())
