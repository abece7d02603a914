"""Network baselines: closed-form oracles, order-up-to mechanics, the level search and the metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.evaluation import mean_ci95
from decisionlab.core.spec import get_domain
from decisionlab.domains.inventory.network.metrics import NETWORK_METRICS, network_episode_metrics
from decisionlab.domains.inventory.network.policies import LevelPolicy, critical_fractile
from decisionlab.domains.inventory.network.scenario import (
    BacklogScenario,
    MultiWarehouseScenario,
    OneWarehouseScenario,
    SerialScenario,
)
from decisionlab.domains.inventory.network.search import SearchBudget, search_levels
from decisionlab.domains.inventory.network.sim import NetworkSim, NetworkState

CPU = torch.device("cpu")
# The brief's oracle: μ=5, σ=1.6, L=4, p=9, h=1 → S* = 29.585, cost (p+h)·σ√5·φ(z) = 6.2788.
ORACLE = BacklogScenario(lead_time=4, demand_mean=5.0, demand_cv=0.32, underage_cost=9.0, holding_cost=1.0,
                         allow_negative_demand=True, horizon_periods=3000, warmup_periods=200)
SMALL_BUDGET = SearchBudget(paths=64, periods=800, warmup=100, resolution=0.03)
TINY_BUDGET = SearchBudget(paths=32, periods=400, warmup=80, resolution=0.1, sweeps=2, points=7)


def _cost(scenario, policy, episodes: int = 128, seed: int = 11) -> np.ndarray:
    return network_episode_metrics(scenario, policy, episodes, seed, CPU)["cost_per_period"]


def test_closed_form_of_the_backlog_oracle() -> None:
    z = stats.norm.ppf(0.9)
    assert ORACLE.critical_fractile_level() == pytest.approx(25 + z * 1.6 * 5**0.5)
    assert ORACLE.critical_fractile_cost() == pytest.approx(6.2788, abs=1e-4)


def test_simulated_cost_of_the_critical_fractile_level_matches_the_formula() -> None:
    """Untruncated normal demand: the simulated cost of S* is (p+h)·σ√(L+1)·φ(z) within its 95% CI."""
    mean, half = mean_ci95(_cost(ORACLE, critical_fractile(ORACLE), episodes=256))
    assert abs(mean - ORACLE.critical_fractile_cost()) < max(half, 0.01)
    assert half < 0.05


@pytest.mark.parametrize("offset", [-1.5, 1.5])
def test_search_finds_the_critical_fractile_level(offset: float) -> None:
    """Started 1.5 σ-units away, the simulation search lands on S* (within its resolution and
    sampling noise) and the level it finds costs what the formula says."""
    result = search_levels(ORACLE, "local", budget=SMALL_BUDGET, start_offset=offset)
    level = float(result.policy.levels[1])
    sigma_cover = 1.6 * 5**0.5
    assert abs(level - ORACLE.critical_fractile_level()) < 0.1 * sigma_cover
    mean, half = mean_ci95(_cost(ORACLE, result.policy, episodes=256))
    assert mean < ORACLE.critical_fractile_cost() + max(half, 0.01) + 0.005


def test_serial_with_equal_holding_costs_reduces_to_one_stage_with_the_total_lead_time() -> None:
    """With equal installation holding costs holding stock upstream saves nothing, so the best
    echelon-stock policy passes everything through: cost = the one-stage formula with L = L1 + L2."""
    scenario = SerialScenario(lead_times=(2, 1), holding_costs=(1.0, 1.0), demand_std=1.6,
                              allow_negative_demand=True, horizon_periods=3000, warmup_periods=200)
    one_stage = BacklogScenario(lead_time=3, demand_cv=0.32, allow_negative_demand=True)
    result = search_levels(scenario, "echelon", budget=SMALL_BUDGET)
    mean, half = mean_ci95(_cost(scenario, result.policy, episodes=256))
    assert mean == pytest.approx(one_stage.critical_fractile_cost(), abs=max(half, 0.02) + 0.02)


def test_echelon_stock_beats_installation_base_stock_in_a_serial_chain() -> None:
    scenario = SerialScenario(lead_times=(2, 1, 2), holding_costs=(0.2, 0.5, 1.0), horizon_periods=1500,
                              warmup_periods=200)
    echelon = search_levels(scenario, "echelon", budget=TINY_BUDGET).policy
    local = search_levels(scenario, "local", budget=TINY_BUDGET).policy
    difference = _cost(scenario, echelon, 64) - _cost(scenario, local, 64)  # paired: same demand
    mean, half = mean_ci95(difference)
    assert mean + half < 0


def test_level_policy_orders_up_to_local_and_echelon_positions_by_hand() -> None:
    """One warehouse (node 1) and two stores (nodes 2, 3), lead times 1: positions from a state."""
    sim = NetworkSim(OneWarehouseScenario(n_stores=2, store_lead_times=(1,), warehouse_lead_time=1))
    state = NetworkState(torch.tensor([[0.0, 10.0, 3.0, 1.0]]), torch.tensor([[[4.0], [2.0], [0.0]]]))
    obs = sim.observe(state)
    local = LevelPolicy(sim, torch.tensor([0.0, 20.0, 8.0, 8.0]), "local")
    assert local.positions(obs)[0].tolist() == [0.0, 14.0, 5.0, 1.0]
    assert local.act(obs)[0].tolist() == [6.0, 3.0, 7.0]  # links: supplier→warehouse, →store0, →store1
    echelon = LevelPolicy(sim, torch.tensor([0.0, 30.0, 8.0, 8.0]), "echelon", caps=torch.tensor([99, 99, 2.0, 5.0]))
    assert echelon.positions(obs)[0].tolist() == [0.0, 20.0, 5.0, 1.0]
    assert echelon.act(obs)[0].tolist() == [10.0, 2.0, 5.0]


def test_a_store_with_two_warehouses_splits_its_order() -> None:
    sim = NetworkSim(MultiWarehouseScenario(n_warehouses=2, n_stores=1, adjacency=((1,), (1,))))
    policy = LevelPolicy(sim, torch.tensor([0.0, 0.0, 0.0, 10.0]), "local")
    obs = sim.observe(sim.reset(1))
    assert policy.act(obs)[0].tolist() == [0.0, 0.0, 5.0, 5.0]


def test_capped_search_is_no_worse_than_uncapped_with_lost_sales() -> None:
    scenario = OneWarehouseScenario(n_stores=2, horizon_periods=1500, warmup_periods=200)
    uncapped = search_levels(scenario, "echelon", budget=TINY_BUDGET, individual_stores=0)
    capped = search_levels(scenario, "echelon", capped=True, budget=TINY_BUDGET, individual_stores=0)
    assert capped.search_cost <= uncapped.search_cost + 1e-6 * uncapped.search_cost + 0.02
    assert capped.policy.caps is not None and capped.policy.name == "capped_echelon_stock"


def test_baseline_lookup_errors_name_the_problem() -> None:
    spec = get_domain("inventory")
    with pytest.raises(DecisionlabError, match="unknown inventory policy 'nope'"):
        spec.policy("nope").build(ORACLE, CPU)
    with pytest.raises(DecisionlabError, match="backlog"):
        critical_fractile(SerialScenario())
    with pytest.raises(DecisionlabError, match="one_warehouse, multi_warehouse"):
        spec.policy("capped_echelon_stock").build(SerialScenario(), CPU)
    # the checks are declared in the setting, so the dashboard and the API know before building
    assert "capped_echelon_stock" not in spec.setting("network").available_policies(SerialScenario())
    assert "capped_echelon_stock" in spec.setting("network").available_policies(OneWarehouseScenario())


def test_episode_metrics_shapes_ranges_and_common_random_numbers() -> None:
    scenario = OneWarehouseScenario(n_stores=3, horizon_periods=300, warmup_periods=50)
    sim = NetworkSim(scenario)
    policy = LevelPolicy(sim, sim.typical_position("echelon") * 1.2, "echelon")
    first = network_episode_metrics(scenario, policy, 8, 5, CPU)
    again = network_episode_metrics(scenario, policy, 8, 5, CPU)
    assert set(first) == set(NETWORK_METRICS)
    for key, values in first.items():
        assert values.shape == (8,) and np.array_equal(values, again[key])
    assert ((first["fill_rate"] > 0) & (first["fill_rate"] <= 1)).all()
    total = first["holding_cost_per_period"] + first["shortage_cost_per_period"] + first["backlog_cost_per_period"]
    assert np.allclose(first["cost_per_period"], total)
    assert (first["backlog_cost_per_period"] == 0).all()  # lost sales here
