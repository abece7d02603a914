"""Inventory baselines: closed forms by hand, and simulated costs against the exact DP optimum."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.evaluation import mean_ci95
from decisionlab.core.policy import Policy
from decisionlab.core.spec import get_domain
from decisionlab.domains.inventory.single_store.dp import solve_lost_sales
from decisionlab.domains.inventory.single_store.metrics import episode_metrics
from decisionlab.domains.inventory.single_store.policies import (
    BaseStockPolicy,
    CappedBaseStockPolicy,
    MyopicPolicy,
    OptimalLostSalesPolicy,
)
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario
from decisionlab.domains.inventory.single_store.search import best_base_stock, best_capped_base_stock

CPU = torch.device("cpu")
# Observations: on hand, then the pipeline oldest first (L = 2).
OBS = torch.tensor([[3.0, 2.0, 1.0], [20.0, 0.0, 0.0], [0.0, 0.0, 0.0], [4.0, 4.0, 1.5]])


def _scenario(lead_time: int, underage: float, horizon: int = 600) -> LostSalesScenario:
    return LostSalesScenario(lead_time=lead_time, underage_cost=underage, horizon_periods=horizon, warmup_periods=100)


def _costs(scenario: LostSalesScenario, policy: Policy, episodes: int, seed: int = 0) -> np.ndarray:
    return episode_metrics(scenario, policy, episodes, seed, CPU)["cost_per_period"]


def test_base_stock_orders_up_to_the_level() -> None:
    """q = max(0, S - inventory position)."""
    orders = BaseStockPolicy(10.0).act(OBS)
    assert orders.tolist() == [4.0, 0.0, 10.0, 0.5]


def test_base_stock_level_per_environment() -> None:
    levels = torch.tensor([6.0, 25.0, 1.0, 9.5])
    assert BaseStockPolicy(levels).act(OBS).tolist() == [0.0, 5.0, 1.0, 0.0]


def test_capped_base_stock_respects_the_cap() -> None:
    """q = min(max(0, S - IP), cap)."""
    orders = CappedBaseStockPolicy(10.0, 3.0).act(OBS)
    assert orders.tolist() == [3.0, 0.0, 3.0, 0.5]
    uncapped = BaseStockPolicy(10.0).act(OBS)
    assert torch.equal(CappedBaseStockPolicy(10.0, 1e9).act(OBS), uncapped)


def test_myopic_at_zero_lead_time_is_the_newsvendor() -> None:
    """With L = 0 the myopic order brings stock up to the critical-fractile quantile (scipy's ppf)."""
    scenario = LostSalesScenario(lead_time=0, underage_cost=9.0, demand_mean=5.0)
    level = stats.poisson.ppf(9.0 / 10.0, 5.0)
    on_hand = torch.arange(0.0, level + 4)
    orders = MyopicPolicy(scenario, CPU).act(on_hand[:, None])
    assert orders.tolist() == torch.clamp(level - on_hand, min=0).tolist()


def test_optimal_policy_simulates_to_the_dp_value() -> None:
    """Simulated long-run cost of the DP policy matches the DP average cost within 0.5% (L=2, p=9)."""
    scenario = _scenario(2, 9.0)
    policy = OptimalLostSalesPolicy(scenario, CPU)
    mean, half = mean_ci95(_costs(scenario, policy, 1024))
    assert policy.average_cost == pytest.approx(6.0936, abs=1e-3)
    assert half < 0.004 * policy.average_cost  # the check below has the power to fail
    assert mean == pytest.approx(policy.average_cost, rel=0.005)


@pytest.fixture(scope="module")
def lead2_costs() -> dict[str, np.ndarray]:
    """Per-episode costs at L=2, p=9 for the baselines, on shared demand."""
    scenario = _scenario(2, 9.0)
    policies = {
        "optimal": OptimalLostSalesPolicy(scenario, CPU),
        "myopic": MyopicPolicy(scenario, CPU),
        "base_stock": best_base_stock(scenario),
    }
    return {name: _costs(scenario, policy, 64) for name, policy in policies.items()}


def test_myopic_is_near_optimal(lead2_costs: dict[str, np.ndarray]) -> None:
    """Myopic costs no less than the optimum and at most 5% more (paired on the same demand)."""
    optimal = lead2_costs["optimal"].mean()
    diff, half = mean_ci95(lead2_costs["myopic"] - lead2_costs["optimal"])
    assert diff + half > 0
    assert lead2_costs["myopic"].mean() <= 1.05 * optimal


@pytest.mark.parametrize(("lead_time", "underage"), [(2, 9.0), (1, 4.0)])
def test_best_base_stock_gap_matches_the_literature(lead_time: int, underage: float) -> None:
    """Base-stock is suboptimal under lost sales by a few percent (Zipkin 2008: about 3-4% here)."""
    scenario = _scenario(lead_time, underage)
    optimal = _costs(scenario, OptimalLostSalesPolicy(scenario, CPU), 256)
    base = _costs(scenario, best_base_stock(scenario), 256)
    gap = base.mean() / optimal.mean() - 1
    assert 0.003 < gap < 0.10
    assert base.mean() > solve_lost_sales(lead_time, 1.0, underage, 5.0).average_cost


def test_best_base_stock_level_is_near_the_backlog_level() -> None:
    """The searched level lies between the mean lead-time demand and the backlog newsvendor level."""
    scenario = _scenario(2, 9.0)
    level = best_base_stock(scenario).level
    assert 15.0 <= level <= stats.poisson.ppf(0.9, 15.0)


@pytest.mark.parametrize(("lead_time", "underage"), [(1, 4.0), (2, 9.0)])
def test_capped_base_stock_is_between_optimal_and_base_stock(lead_time: int, underage: float) -> None:
    """Capping orders helps under lost sales, but cannot beat the optimum (paired, significant both ways)."""
    scenario = _scenario(lead_time, underage)
    optimal = _costs(scenario, OptimalLostSalesPolicy(scenario, CPU), 512)
    capped = _costs(scenario, best_capped_base_stock(scenario), 512)
    base = _costs(scenario, best_base_stock(scenario), 512)
    low, low_half = mean_ci95(capped - optimal)
    high, high_half = mean_ci95(base - capped)
    assert low - low_half > 0
    assert high - high_half > 0


@pytest.mark.parametrize(("lead_time", "underage"), [(2, 9.0), (1, 4.0)])
def test_poisson_baselines_order_whole_units(lead_time: int, underage: float) -> None:
    """Demand comes in whole units, so the searched base-stock level and (level, cap) are whole
    numbers; a fractional level or cap only strands a fraction of a unit in stock."""
    scenario = _scenario(lead_time, underage)
    base = best_base_stock(scenario)
    capped = best_capped_base_stock(scenario)
    assert float(base.level).is_integer()
    assert float(capped.level).is_integer(), capped.describe()
    assert float(capped.cap).is_integer(), capped.describe()


@pytest.mark.parametrize(("lead_time", "underage", "level", "cap"), [(2, 9.0, 19.0, 6.0), (1, 4.0, 12.0, 6.0)])
def test_capped_search_is_not_beaten_by_a_whole_unit_pair(lead_time: int, underage: float, level: float,
                                                          cap: float) -> None:
    """The searched (level, cap) is at least as good as the best whole-unit pair found by brute force
    (L=2, p=9: (19, 6) is 0.4% above the optimum; L=1, p=4: (12, 6) is 0.6% above), and within 1% of optimal."""
    scenario = _scenario(lead_time, underage)
    optimal = _costs(scenario, OptimalLostSalesPolicy(scenario, CPU), 512)
    searched = _costs(scenario, best_capped_base_stock(scenario), 512)
    reference = _costs(scenario, CappedBaseStockPolicy(level, cap), 512)
    diff, half = mean_ci95(searched - reference)
    assert diff <= half + 0.002 * optimal.mean(), best_capped_base_stock(scenario).describe()
    assert searched.mean() / optimal.mean() - 1 < 0.01


def test_domain_builds_every_baseline() -> None:
    """Every single-store baseline builds for the preset and returns one order per row; the
    real_series-only ones refuse it with a message naming the scenario they need."""
    spec = get_domain("inventory")
    scenario = spec.scenario("lost_sales", {"lead_time": 2, "underage_cost": 9})
    series_only = {"fixed_quantile", "newsvendor_quantile", "transformed_quantile", "just_in_time"}
    network_only = {"echelon_stock", "capped_echelon_stock", "critical_fractile", "newsvendor_echelon",
                    "newsvendor_local"}
    assert {"base_stock", "capped_base_stock", "myopic", "optimal"} <= set(spec.policies)
    for name, policy_spec in spec.policies.items():
        if name in series_only | network_only:
            with pytest.raises(DecisionlabError, match="real_series" if name in series_only else "network"):
                policy_spec.build(scenario, CPU)
            continue
        policy = policy_spec.build(scenario, CPU)
        orders = policy.act(OBS)
        assert orders.shape == (OBS.shape[0],), name
        assert (orders >= 0).all(), name


def test_deterministic_normal_demand_is_a_point_mass_not_billions_of_cells() -> None:
    # demand_cv = 0 is valid: the grid's step had been std/4 with std floored at 1e-9 (a 149 GiB grid)
    from decisionlab.domains.inventory.single_store.demand import MAX_CELLS, grid_demand

    scenario = LostSalesScenario(lead_time=1, demand_distribution="normal", demand_cv=0.0, horizon_periods=60,
                                 warmup_periods=0)
    grid = grid_demand(scenario)
    assert len(grid.pmf) <= MAX_CELLS + 2
    mean = float((np.arange(len(grid.pmf)) * grid.unit * grid.pmf).sum())
    assert mean == pytest.approx(scenario.demand_mean, abs=grid.unit)  # all its mass at the mean
    for policy in (BaseStockPolicy(scenario.demand_mean * (scenario.lead_time + 1)), MyopicPolicy(scenario)):
        metrics = episode_metrics(scenario, policy, episodes=4, seed=1, device=torch.device("cpu"))
        assert all(np.isfinite(v).all() for v in metrics.values())
