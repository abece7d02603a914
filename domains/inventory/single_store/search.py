"""Best parameters of the base-stock family, found by simulation on common random numbers.

All candidates of a pass are simulated in one batch (candidate × path), every candidate facing
the same demand paths, so the argmin is not fooled by sampling noise between candidates. A
coarse-to-fine grid keeps the number of candidates small at any demand scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch

from decisionlab.core import Sum, make_generator, persisted, run
from decisionlab.domains.inventory.single_store.demand import grid_demand
from decisionlab.domains.inventory.single_store.policies import BaseStockPolicy, CappedBaseStockPolicy
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario
from decisionlab.domains.inventory.single_store.sim import SingleStoreSim

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
    total = run(sim, policy, state=sim.reset(demand.shape[0]), exogenous=demand, reducers={"cost": Sum("cost")},
                warmup=SEARCH_WARMUP).totals["cost"]
    return total.view(candidates, SEARCH_PATHS).mean(dim=1)


POINTS_PER_AXIS = 12  # candidates per axis and pass of the coarse-to-fine search


def _aligned_grid(low: float, high: float, unit: float) -> tuple[torch.Tensor, float]:
    """At most ``POINTS_PER_AXIS`` multiples of ``unit`` covering [low, high], and their step."""
    step = unit * max(1, math.ceil((high - low) / (unit * (POINTS_PER_AXIS - 1))))
    start = max(0.0, math.floor(low / unit) * unit)
    return torch.arange(start, high + 0.5 * step, step), step


def _coarse_to_fine(
    cost: Callable[[list[torch.Tensor]], torch.Tensor], bounds: list[tuple[float, float]], unit: float
) -> list[float]:
    """Minimise ``cost`` over a box by grid passes that shrink around the best point until the
    step is one grid unit. ``cost`` takes one flat tensor per axis (the candidate points) and
    returns one cost per candidate. The search costs about the same at any demand scale."""
    while True:
        axes = [_aligned_grid(low, high, unit) for low, high in bounds]
        mesh = torch.meshgrid(*[grid for grid, _ in axes], indexing="ij")
        flat = [m.reshape(-1) for m in mesh]
        best = int(cost(flat).argmin())
        point = [float(f[best]) for f in flat]
        if all(step <= unit for _, step in axes):
            return point
        bounds = [(max(0.0, x - step), x + step) for x, (_, step) in zip(point, axes, strict=True)]


def _level_bounds(scenario: LostSalesScenario) -> tuple[float, float]:
    demand = grid_demand(scenario)
    return 0.0, demand.quantile(0.9999, scenario.lead_time + 1) + 2 * demand.unit


def search_key(scenario: LostSalesScenario) -> dict[str, object]:
    """What a search result depends on: every parameter but the evaluation horizon."""
    return scenario.model_dump(mode="json", exclude={"horizon_periods", "warmup_periods"})


@lru_cache(maxsize=64)
def best_base_stock(scenario: LostSalesScenario) -> BaseStockPolicy:
    """The base-stock level with the lowest simulated cost (searched once per data dir)."""

    def cost(axes: list[torch.Tensor]) -> torch.Tensor:
        (levels,) = axes
        return _mean_costs(scenario, BaseStockPolicy(levels.repeat_interleave(SEARCH_PATHS)), levels.numel())

    def search() -> dict[str, float]:
        (level,) = _coarse_to_fine(cost, [_level_bounds(scenario)], grid_demand(scenario).unit)
        return {"level": level}

    found = persisted("inventory.single_store.base_stock", 1, search_key(scenario), search)
    return BaseStockPolicy(float(found["level"]))


@lru_cache(maxsize=64)
def best_capped_base_stock(scenario: LostSalesScenario) -> CappedBaseStockPolicy:
    """Best (level, cap) pair: levels around the best base-stock level, caps from half the mean
    demand up to a high one-period demand quantile."""
    base = best_base_stock(scenario).level
    demand = grid_demand(scenario)

    def cost(axes: list[torch.Tensor]) -> torch.Tensor:
        levels, caps = axes
        policy = CappedBaseStockPolicy(
            levels.repeat_interleave(SEARCH_PATHS), caps.repeat_interleave(SEARCH_PATHS)
        )
        return _mean_costs(scenario, policy, levels.numel())

    bounds = [
        (0.6 * base, base + 4 * demand.unit + 0.15 * base),
        (max(demand.unit, 0.5 * scenario.demand_mean), demand.quantile(0.999) + demand.unit),
    ]

    def search() -> dict[str, float]:
        level, cap = _coarse_to_fine(cost, bounds, demand.unit)
        return {"level": level, "cap": cap}

    found = persisted("inventory.single_store.capped_base_stock", 1, search_key(scenario), search)
    return CappedBaseStockPolicy(float(found["level"]), float(found["cap"]))
