"""Inventory episode KPIs: identities between metrics, bounds, and a closed-form newsvendor check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from decisionlab.core.evaluation import mean_ci95
from decisionlab.core.policy import Policy
from decisionlab.domains.inventory.single_store.metrics import METRICS, episode_metrics
from decisionlab.domains.inventory.single_store.policies import BaseStockPolicy, CappedBaseStockPolicy
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario

CPU = torch.device("cpu")
SCENARIO = LostSalesScenario(lead_time=2, holding_cost=1.5, underage_cost=9.0, horizon_periods=400,
                             warmup_periods=100)
EPISODES = 16


def _metrics(policy: Policy, scenario: LostSalesScenario = SCENARIO, seed: int = 3) -> dict[str, np.ndarray]:
    return episode_metrics(scenario, policy, EPISODES, seed, CPU)


def test_returns_every_declared_metric_per_episode() -> None:
    result = _metrics(BaseStockPolicy(17.0))
    assert set(result) == set(METRICS)
    for values in result.values():
        assert values.shape == (EPISODES,)
        assert np.isfinite(values).all()


@pytest.mark.parametrize("policy", [BaseStockPolicy(12.0), BaseStockPolicy(19.0), CappedBaseStockPolicy(19.0, 6.0)])
def test_cost_is_holding_plus_shortage_and_fill_rate_is_a_share(policy: Policy) -> None:
    result = _metrics(policy)
    np.testing.assert_allclose(
        result["cost_per_period"], result["holding_cost_per_period"] + result["shortage_cost_per_period"], rtol=1e-12
    )
    assert ((result["fill_rate"] >= 0) & (result["fill_rate"] <= 1)).all()
    assert 0 < result["fill_rate"].min() < 1
    np.testing.assert_allclose(result["holding_cost_per_period"], SCENARIO.holding_cost * result["mean_on_hand"],
                               rtol=1e-12)


def test_never_ordering_loses_every_sale() -> None:
    """No stock: fill rate 0, no holding cost, lost-sales cost = p x demand per period (about p x mean)."""
    result = _metrics(BaseStockPolicy(0.0))
    assert (result["fill_rate"] == 0).all()
    assert (result["holding_cost_per_period"] == 0).all()
    assert (result["mean_on_hand"] == 0).all()
    demand_per_period = result["shortage_cost_per_period"] / SCENARIO.underage_cost
    assert demand_per_period.mean() == pytest.approx(SCENARIO.demand_mean, abs=0.1)


def test_plenty_of_stock_serves_all_demand_after_warm_up() -> None:
    """A huge level: the first orders arrive during warm-up, after which nothing is lost."""
    result = _metrics(BaseStockPolicy(1000.0))
    assert (result["fill_rate"] == 1).all()
    assert (result["shortage_cost_per_period"] == 0).all()


def test_policies_see_the_same_demand() -> None:
    """Same seed, any policy: lost sales per period = demand per period x (1 - fill rate), where the
    demand per period is read off a policy that never orders (all its demand is lost)."""
    demand = _metrics(BaseStockPolicy(0.0))["shortage_cost_per_period"] / SCENARIO.underage_cost
    other = _metrics(BaseStockPolicy(16.0))
    lost = other["shortage_cost_per_period"] / SCENARIO.underage_cost
    np.testing.assert_allclose(lost, demand * (1 - other["fill_rate"]), rtol=1e-9, atol=1e-9)


def test_seed_determines_the_episodes() -> None:
    a = _metrics(BaseStockPolicy(17.0), seed=1)
    b = _metrics(BaseStockPolicy(17.0), seed=1)
    c = _metrics(BaseStockPolicy(17.0), seed=2)
    for key in METRICS:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["cost_per_period"], c["cost_per_period"])


def test_zero_lead_time_base_stock_cost_is_the_newsvendor_cost() -> None:
    """L = 0 and level S: every period starts at S, so the cost per period is E[h(S-D)+ + p(D-S)+]."""
    h, p, mean = 1.0, 4.0, 5.0
    scenario = LostSalesScenario(lead_time=0, holding_cost=h, underage_cost=p, demand_mean=mean,
                                 horizon_periods=1000, warmup_periods=10)
    level = 7.0
    d = np.arange(200)
    pmf = stats.poisson.pmf(d, mean)
    expected = float((pmf * (h * np.maximum(level - d, 0) + p * np.maximum(d - level, 0))).sum())
    expected_fill = float((pmf * np.minimum(d, level)).sum()) / mean
    result = episode_metrics(scenario, BaseStockPolicy(level), 64, 0, CPU)
    cost, half = mean_ci95(result["cost_per_period"])
    assert half < 0.02 * expected
    assert cost == pytest.approx(expected, abs=2 * half)
    assert result["fill_rate"].mean() == pytest.approx(expected_fill, abs=0.005)


def test_horizon_longer_than_one_chunk() -> None:
    """Horizons past the internal demand chunk (1000 periods) count every period after warm-up."""
    scenario = LostSalesScenario(lead_time=1, horizon_periods=2500, warmup_periods=1200)
    result = episode_metrics(scenario, BaseStockPolicy(0.0), 4, 0, CPU)
    demand_per_period = result["shortage_cost_per_period"] / scenario.underage_cost
    assert demand_per_period.mean() == pytest.approx(scenario.demand_mean, abs=0.15)
    assert (result["fill_rate"] == 0).all()
