"""Exact lost-sales DP against published numbers (Zipkin 2008, Poisson(5) demand, h = 1) and the newsvendor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from decisionlab.core.errors import DecisionlabError, NotTractableError
from decisionlab.core.spec import get_domain
from decisionlab.domains.inventory.single_store.dp import solve_lost_sales
from decisionlab.domains.inventory.single_store.policies import OptimalLostSalesPolicy
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario

# Zipkin (2008), "Old and new methods for lost-sales inventory systems", Table: optimal average cost.
ZIPKIN = {
    1: {4: 4.0407, 9: 5.4382, 19: 6.6757, 39: 7.8359},
    2: {4: 4.3953, 9: 6.0936, 19: 7.6644, 39: 9.1064},
    3: {4: 4.5987, 9: 6.5314, 19: 8.3625, 39: 10.0385},
}
CELLS = [(lead, p, cost) for lead, row in ZIPKIN.items() for p, cost in row.items()]


@pytest.mark.parametrize(("lead_time", "underage", "published"), CELLS)
def test_reproduces_zipkin_table(lead_time: int, underage: int, published: float) -> None:
    solution = solve_lost_sales(lead_time, 1.0, float(underage), 5.0)
    assert solution.average_cost == pytest.approx(published, abs=1e-3)


def test_reproduces_zipkin_lead_time_four() -> None:
    solution = solve_lost_sales(4, 1.0, 9.0, 5.0)
    assert solution.average_cost == pytest.approx(6.8359, abs=1e-3)
    assert solution.order.ndim == 4  # state: (on hand after the arrival, r_1, r_2, r_3)


def _newsvendor(h: float, p: float, mean: float) -> tuple[int, float]:
    """Critical-fractile level S and E[h(S-D)+ + p(D-S)+] for Poisson demand, by direct summation."""
    level = int(stats.poisson.ppf(p / (p + h), mean))
    d = np.arange(0, 200)
    pmf = stats.poisson.pmf(d, mean)
    cost = float((pmf * (h * np.maximum(level - d, 0) + p * np.maximum(d - level, 0))).sum())
    return level, cost


@pytest.mark.parametrize(("h", "p", "mean"), [(1.0, 4.0, 5.0), (1.0, 9.0, 5.0), (2.0, 3.0, 8.0), (1.0, 39.0, 3.0)])
def test_zero_lead_time_is_the_newsvendor(h: float, p: float, mean: float) -> None:
    """With L = 0 every period is a fresh newsvendor (leftover never exceeds S): same cost, order up to S."""
    level, cost = _newsvendor(h, p, mean)
    solution = solve_lost_sales(0, h, p, mean)
    assert solution.average_cost == pytest.approx(cost, abs=1e-6)
    on_hand = np.arange(level + 1)
    np.testing.assert_array_equal(solution.order[on_hand], level - on_hand)


def test_cost_grows_with_lead_time_and_penalty() -> None:
    """More lead time or a higher lost-sales penalty never makes the optimum cheaper."""
    costs = np.array(
        [[solve_lost_sales(lead, 1.0, p, 5.0).average_cost for p in (4.0, 9.0, 19.0)] for lead in range(4)]
    )
    assert (np.diff(costs, axis=0) > 0).all()
    assert (np.diff(costs, axis=1) > 0).all()


def test_intractable_size_is_refused_quickly() -> None:
    """demand_mean=50 at L=4 would need billions of cells: a NotTractableError naming the lead time."""
    with pytest.raises(NotTractableError) as info:
        solve_lost_sales(4, 1.0, 9.0, 50.0)
    assert "lead_time=4" in str(info.value)
    assert isinstance(info.value, DecisionlabError)
    assert info.value.http_status == 422


def test_optimal_policy_refuses_intractable_and_continuous_scenarios() -> None:
    """The 'optimal' baseline surfaces the same user errors through the domain spec."""
    build = get_domain("inventory").policy("optimal").build
    cpu = torch.device("cpu")
    with pytest.raises(DecisionlabError, match=r"lead_time=4, demand_mean=50 would need about .* GiB") as info:
        build(LostSalesScenario(lead_time=4, demand_mean=50.0), cpu)
    assert info.value.http_status == 422
    with pytest.raises(NotTractableError, match="poisson"):
        OptimalLostSalesPolicy(LostSalesScenario(lead_time=1, demand_distribution="normal"), cpu)


def test_optimal_policy_reads_the_dp_table() -> None:
    """The policy maps the simulator's observation (on hand, pipeline) to the DP state
    (on hand + arriving order, rest of pipeline) and returns the table's order."""
    scenario = LostSalesScenario(lead_time=2, underage_cost=9.0)
    policy = OptimalLostSalesPolicy(scenario, "cpu")
    table = solve_lost_sales(2, 1.0, 9.0, 5.0).order
    obs = torch.tensor([[0.0, 0.0, 0.0], [3.0, 4.0, 5.0], [10.0, 2.0, 1.0], [1.0, 6.0, 0.0]])
    expected = [table[int(on_hand + arriving), int(rest)] for on_hand, arriving, rest in obs.tolist()]
    assert policy.act(obs).tolist() == expected
    assert policy.act(obs)[0] > 0  # an empty system orders
