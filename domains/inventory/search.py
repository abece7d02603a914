"""Best parameters of the base-stock family, found by simulation on common random numbers.

All candidates are simulated in one batch (candidate × path), every candidate facing the same
demand paths, so the argmin is not fooled by sampling noise between candidates.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from decisionlab.core.seeding import make_generator
from decisionlab.domains.inventory.demand import grid_demand
from decisionlab.domains.inventory.policies import BaseStockPolicy, CappedBaseStockPolicy
from decisionlab.domains.inventory.scenario import LostSalesScenario
from decisionlab.domains.inventory.sim import SingleStoreSim

SEARCH_SEED = 20_240_601
SEARCH_PATHS = 128
SEARCH_PERIODS = 1500
SEARCH_WARMUP = 300


@torch.no_grad()
def _mean_costs(scenario: LostSalesScenario, policy, candidates: int) -> torch.Tensor:
    """Average post-warm-up cost per candidate ``[C]``; policy parameters are ``[C·P]`` tensors."""
    sim = SingleStoreSim(scenario, "cpu")
    demand = sim.sample_exogenous(SEARCH_PATHS, SEARCH_PERIODS, make_generator(SEARCH_SEED))
    demand = demand.repeat(candidates, 1)
    state = sim.reset(demand.shape[0])
    total = torch.zeros(demand.shape[0], dtype=torch.float64)
    for t in range(SEARCH_PERIODS):
        result = sim.step(state, policy.act(sim.observe(state)), demand[:, t])
        state = result.state
        if t >= SEARCH_WARMUP:
            total += result.info["cost"]
    return total.view(candidates, SEARCH_PATHS).mean(dim=1)


def _level_grid(scenario: LostSalesScenario) -> torch.Tensor:
    demand = grid_demand(scenario)
    top = demand.quantile(0.9999, scenario.lead_time + 1) + 2 * demand.unit
    step = demand.unit if scenario.demand_distribution == "poisson" else max(demand.unit, top / 200)
    return torch.arange(0.0, top + step, step)


@lru_cache(maxsize=64)
def best_base_stock(scenario: LostSalesScenario) -> BaseStockPolicy:
    """The base-stock level with the lowest simulated cost."""
    levels = _level_grid(scenario)
    costs = _mean_costs(scenario, BaseStockPolicy(levels.repeat_interleave(SEARCH_PATHS)), levels.numel())
    return BaseStockPolicy(float(levels[costs.argmin()]))


@lru_cache(maxsize=64)
def best_capped_base_stock(scenario: LostSalesScenario) -> CappedBaseStockPolicy:
    """Best (level, cap) pair; levels around the best base-stock level, caps up to a high
    one-period demand quantile."""
    base = best_base_stock(scenario).level
    demand = grid_demand(scenario)
    levels = _level_grid(scenario)
    levels = levels[(levels >= 0.6 * base) & (levels <= base + 4 * demand.unit + 0.15 * base)]
    cap_top = demand.quantile(0.999) + demand.unit
    step = demand.unit if scenario.demand_distribution == "poisson" else max(demand.unit, cap_top / 40)
    caps = torch.arange(max(step, 0.5 * scenario.demand_mean), cap_top + step, step)
    grid_l, grid_c = torch.meshgrid(levels, caps, indexing="ij")
    grid_l, grid_c = grid_l.reshape(-1), grid_c.reshape(-1)
    policy = CappedBaseStockPolicy(
        grid_l.repeat_interleave(SEARCH_PATHS), grid_c.repeat_interleave(SEARCH_PATHS)
    )
    best = _mean_costs(scenario, policy, grid_l.numel()).argmin()
    return CappedBaseStockPolicy(float(grid_l[best]), float(grid_c[best]))
