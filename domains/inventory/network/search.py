"""Best levels of the order-up-to families on inventory networks, by coordinate search on common
random numbers.

Levels (and caps) are found by :func:`coordinate_search`: line searches along direction vectors
(one per node, plus "all stores together" / "all caps together"), each a coarse-to-fine grid on
common random numbers, swept until nothing moves. All candidates of a line search run in one
batch on the same demand paths, so the comparison is paired and the search is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from decisionlab.core import PolicyMismatchError, Sum, make_generator, persisted, run
from decisionlab.domains.inventory.network.policies import LevelPolicy, node_stats, two_echelon_distribution
from decisionlab.domains.inventory.network.scenario import NetworkScenario
from decisionlab.domains.inventory.network.sim import NetworkSim

SEARCH_SEED = 20_240_917




# ---- evaluation on common random numbers ---------------------------------------------------------

@dataclass(frozen=True)
class SearchBudget:
    """Paths, periods and warm-up of one candidate evaluation; step resolution of the search."""

    paths: int = 128
    periods: int = 1200
    warmup: int = 200
    resolution: float = 0.02  # smallest step, in units of a direction's scale (a σ-like unit)
    sweeps: int = 3
    points: int = 9  # candidates per line-search pass


class CandidateEvaluator:
    """Mean post-warm-up cost per period of candidate ``(levels, caps)`` rows on fixed paths."""

    def __init__(self, sim: NetworkSim, kind: str, budget: SearchBudget, capped: bool) -> None:
        self.sim, self.kind, self.budget, self.capped = sim, kind, budget, capped
        self.demand = sim.sample_exogenous(budget.paths, budget.periods, make_generator(SEARCH_SEED, sim.device))
        self.calls = 0

    @torch.no_grad()
    def __call__(self, params: torch.Tensor) -> torch.Tensor:
        """``params [C, n_nodes]`` (levels) or ``[C, 2·n_nodes]`` (levels, caps) -> cost ``[C]``."""
        self.calls += 1
        sim, budget, n = self.sim, self.budget, self.sim.n_nodes
        candidates = params.shape[0]
        rows = params.repeat_interleave(budget.paths, dim=0)
        policy = LevelPolicy(sim, rows[:, :n], self.kind, rows[:, n:] if self.capped else None)
        demand = self.demand.repeat(candidates, 1, 1)
        total = run(sim, policy, state=sim.reset(demand.shape[0]), exogenous=demand, steps=budget.periods,
                    reducers={"cost": Sum("cost")}, warmup=budget.warmup).totals["cost"]
        return (total / (budget.periods - budget.warmup)).view(candidates, budget.paths).mean(1)


def coordinate_search(
    cost: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    directions: list[torch.Tensor],
    budget: SearchBudget,
    lower: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float]:
    """Minimise ``cost`` from ``start [D]`` by line searches along ``directions`` (each ``[D]``,
    scaled so that 1 is a sensible unit). Each line search is a coarse-to-fine grid of
    ``budget.points`` candidates (initial step 1 unit, halved while the best point is inside the
    grid, down to ``budget.resolution``; the grid moves on while the best is at its edge).
    Sweeps over all directions repeat until none moves or ``budget.sweeps`` is reached.
    Returns the best point and its cost. ``lower [D]``: the point is clamped from below."""
    point = start.clone()
    best = float(cost(point[None])[0])
    half = budget.points // 2
    offsets = torch.arange(-half, half + 1, dtype=point.dtype, device=point.device)
    for sweep in range(budget.sweeps):
        moved = False
        for direction in directions:
            step = 1.0 if sweep == 0 else 0.25
            while step >= budget.resolution:
                grid = point[None] + (offsets * step)[:, None] * direction[None]
                if lower is not None:
                    grid = torch.maximum(grid, lower)
                costs = cost(grid)
                index = int(costs.argmin())
                if float(costs[index]) < best:
                    if not torch.equal(grid[index], point):
                        moved = True
                    point, best = grid[index].clone(), float(costs[index])
                    if index in (0, len(offsets) - 1):
                        continue  # best at the edge: keep the step, search further out
                step /= 2
        if not moved:
            break
    return point, best


# ---- the baselines -------------------------------------------------------------------------------

@dataclass
class SearchResult:
    policy: LevelPolicy
    search_cost: float
    evaluations: int


def _direction(width: int, entries: dict[int, float], device: torch.device) -> torch.Tensor:
    out = torch.zeros(width, device=device)
    for index, value in entries.items():
        out[index] = value
    return out


def search_levels(
    scenario: NetworkScenario,
    kind: str,
    capped: bool = False,
    budget: SearchBudget | None = None,
    individual_stores: int = 10,
    start_offset: float = 0.0,
    device: torch.device | str = "cpu",
) -> SearchResult:
    """Best levels (and store caps) of the ``kind`` (``local`` / ``echelon``) order-up-to family.

    Starts from the newsvendor-style level ``mean cover + (z + start_offset)·std cover`` of every
    node (caps at mean demand + 2σ), then searches along "all stores together", every shipping
    node, each store alone when there are at most ``individual_stores`` stores (and several),
    and "all caps together"."""
    budget = budget or SearchBudget()
    sim = NetworkSim(scenario, device)
    st = node_stats(sim, kind)
    n, stores = sim.n_nodes, list(sim.topology.stores)
    scale = np.maximum(st.std_cover, 0.05 * st.mean_cover)
    start = st.mean_cover + (st.z + start_offset) * st.std_cover
    width = 2 * n if capped else n
    directions = [_direction(width, {j: scale[j] for j in stores}, sim.device)]
    shipping = [j for j in range(n) if sim.topology.outbound(j) and sim.topology.nodes[j].kind != "supplier"]
    directions += [_direction(width, {j: scale[j]}, sim.device) for j in shipping]
    if 1 < len(stores) <= individual_stores:
        directions += [_direction(width, {j: scale[j]}, sim.device) for j in stores]
    if capped:
        means, stds = np.array(sim.demand_model.means), np.array(sim.demand_model.stds)
        caps = np.full(n, 1e9)
        caps[stores] = means + 2.0 * stds
        start = np.concatenate([start, caps])
        cap_scale = np.maximum(stds, 0.05 * means)
        directions.append(_direction(width, {n + j: cap_scale[i] for i, j in enumerate(stores)}, sim.device))
    evaluator = CandidateEvaluator(sim, kind, budget, capped)
    point, cost = coordinate_search(
        evaluator, torch.tensor(start, dtype=torch.float32, device=sim.device), directions, budget,
        lower=torch.zeros(width, device=sim.device),
    )
    name = {"local": "base_stock", "echelon": "echelon_stock"}[kind]
    policy = LevelPolicy(sim, point[:n], kind, point[n:] if capped else None,
                         name=f"capped_{name}" if capped else name)
    return SearchResult(policy, cost, evaluator.calls)


def _search_key(scenario: NetworkScenario) -> NetworkScenario:
    """The scenario without its evaluation horizon (which the search does not use): one cached
    search serves every horizon."""
    fields = type(scenario).model_fields
    return scenario.model_copy(update={"horizon_periods": fields["horizon_periods"].default,
                                       "warmup_periods": fields["warmup_periods"].default})


@lru_cache(maxsize=64)
def _cached_search(scenario: NetworkScenario, kind: str, capped: bool) -> LevelPolicy:
    """The searched levels (and caps), once per data dir and scenario (kept there for other processes)."""

    def search() -> dict[str, object]:
        found = search_levels(scenario, kind, capped).policy
        return {"levels": found.levels, **({"caps": found.caps} if found.caps is not None else {})}

    key = {"scenario": type(scenario).__name__, "parameters": scenario.model_dump(mode="json"), "kind": kind,
           "capped": capped}
    values = persisted("inventory.network.levels", 1, key, search)
    name = {"local": "base_stock", "echelon": "echelon_stock"}[kind]
    return LevelPolicy(NetworkSim(scenario), values["levels"], kind, values.get("caps"),
                       name=f"capped_{name}" if capped else name)


def best_base_stock(scenario: NetworkScenario) -> LevelPolicy:
    """Local base-stock at every node, levels by search (for ``backlog``: the optimal policy)."""
    return _cached_search(_search_key(scenario), "local", False)


def best_echelon_stock(scenario: NetworkScenario) -> LevelPolicy:
    """Echelon base-stock at every non-store node, local base-stock at stores; levels by search."""
    return _cached_search(_search_key(scenario), "echelon", False)


def best_capped_echelon_stock(scenario: NetworkScenario) -> LevelPolicy:
    """:func:`best_echelon_stock` plus a cap on every store's order; levels and caps by search."""
    problem = two_echelon_distribution(scenario.topology())
    if problem is not None:
        raise PolicyMismatchError(f"capped_echelon_stock {problem}")
    return _cached_search(_search_key(scenario), "echelon", True)

