"""Baselines for inventory networks: order-up-to rules on inventory positions, levels by search.

Every baseline is a :class:`LevelPolicy`: node ``j`` requests ``min(cap_j, (S_j − position_j)⁺)``,
split over its inbound links (equal shares where it has several suppliers). Positions are linear
maps of the flat observation (:meth:`NetworkSim.position_matrix`):

- ``base_stock``: every node orders up to a level on its *local* position (on hand + inbound
  pipeline). For the single backlogging store this is the optimal policy.
- ``echelon_stock``: every non-store node orders up to a level on its *echelon* position (its
  own stock, everything downstream and in transit to it; split-weighted in a network with several
  warehouses per store); stores use their local position (the same thing there). In a serial
  chain with backlog this is the Clark–Scarf policy, optimal for the right levels.
- ``capped_echelon_stock``: ``echelon_stock`` plus a cap on each store's order (lost sales make
  smoothed orders pay, as the capped base-stock does for one store).
- ``critical_fractile`` (``backlog`` only): the closed-form level ``μ(L+1) + z·σ√(L+1)``.

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
from scipy import stats

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.seeding import make_generator
from decisionlab.domains.inventory.network.scenario import (
    BacklogScenario,
    MultiWarehouseScenario,
    NetworkScenario,
    OneWarehouseScenario,
)
from decisionlab.domains.inventory.network.sim import NetworkSim

SEARCH_SEED = 20_240_917


class LevelPolicy:
    """Order-up-to on positions: ``request_j = min(cap_j, (S_j − position_j)⁺)``, then
    ``q_e = request_{dst(e)} · split_e``; ``position`` is ``local`` for every node or ``echelon``
    (for nodes that ship; a store's echelon is its local position).

    ``levels`` / ``caps``: ``[n_nodes]`` or ``[B, n_nodes]`` (one row per environment, used by the
    search); ``caps=None`` means uncapped. ``act(obs [B, obs_dim]) -> [B, n_edges]``.
    """

    def __init__(
        self,
        sim: NetworkSim,
        levels: torch.Tensor,
        kind: str = "local",
        caps: torch.Tensor | None = None,
        name: str = "base_stock",
    ) -> None:
        if kind not in ("local", "echelon"):
            raise ValueError(f"unknown position kind {kind!r}: use 'local' or 'echelon'")
        self.name, self.kind, self.n_nodes = name, kind, sim.n_nodes
        self.levels = torch.as_tensor(levels, dtype=torch.float32).to(sim.device)
        self.caps = None if caps is None else torch.as_tensor(caps, dtype=torch.float32).to(sim.device)
        self.split = torch.tensor(sim.topology.default_split(), dtype=torch.float32, device=sim.device)  # [E]
        self.edge_dst, self.observation_nodes = sim.edge_dst, sim.observation_nodes
        shipping = [j for j in range(sim.n_nodes) if sim.topology.outbound(j) and j not in
                    {i for i, node in enumerate(sim.topology.nodes) if node.kind == "supplier"}]
        self.internal = torch.tensor(shipping if kind == "echelon" else [], dtype=torch.long, device=sim.device)
        weights = sim.topology.downstream_weights()[shipping].T  # [N, K]
        self.echelon_weights = torch.tensor(weights, dtype=torch.float32, device=sim.device).reshape(sim.n_nodes, -1)

    def positions(self, obs: torch.Tensor) -> torch.Tensor:
        """Inventory positions ``[B, n_nodes]`` from the flat observation."""
        local = torch.zeros(obs.shape[0], self.n_nodes, dtype=obs.dtype, device=obs.device)
        local.index_add_(1, self.observation_nodes, obs)
        if self.internal.numel():
            local = local.index_copy(1, self.internal, local @ self.echelon_weights)
        return local

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        need = torch.relu(self.levels - self.positions(obs))  # [B, N]
        if self.caps is not None:
            need = torch.minimum(need, self.caps)
        return need.index_select(1, self.edge_dst) * self.split

    def to(self, sim: NetworkSim) -> LevelPolicy:
        """The same policy for a simulator on another device."""
        return LevelPolicy(sim, self.levels, self.kind, self.caps, self.name)

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "levels": [round(float(x), 4) for x in self.levels.reshape(-1)]}
        if self.caps is not None:
            out["caps"] = [round(float(x), 4) for x in self.caps.reshape(-1)]
        return out


# ---- statistics used for start points and step sizes ------------------------------------------

@dataclass(frozen=True)
class NodeStats:
    """Per node ``[n_nodes]``: mean demand covered by its position at an order-up-to level, the
    std of that demand, and the newsvendor z of the stores below it."""

    mean_cover: np.ndarray
    std_cover: np.ndarray
    z: float


def node_stats(sim: NetworkSim, kind: str) -> NodeStats:
    """A position ``local`` / ``echelon`` of node j covers the demand of its inbound lead time(s)
    and one more period, summed over the stores it serves (split-weighted), correlations included."""
    topo, demand = sim.topology, sim.demand_model
    flow = sim.node_flow.cpu().numpy().astype(np.float64)
    cover = sim.typical_position(kind).cpu().numpy().astype(np.float64)  # mean units
    periods = cover / np.maximum(flow, 1e-9)
    stds = np.array(demand.stds)
    corr = np.full((len(stds), len(stds)), demand.correlation) + (1 - demand.correlation) * np.eye(len(stds))
    full = topo.downstream_weights()[:, list(topo.stores)]  # share of each store's demand through j
    sigma = np.sqrt(np.einsum("ns,st,nt->n", full * stds, corr, full * stds))
    ratios = [topo.nodes[j].underage_cost / (topo.nodes[j].underage_cost + topo.nodes[j].holding_cost)
              for j in topo.stores]
    return NodeStats(cover, sigma * np.sqrt(periods), float(stats.norm.ppf(np.mean(ratios))))


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
        state = sim.reset(demand.shape[0])
        total = torch.zeros(demand.shape[0], dtype=torch.float64, device=sim.device)
        for t in range(budget.periods):
            result = sim.step(state, policy.act(sim.observe(state)), demand[:, t])
            state = result.state
            if t >= budget.warmup:
                total += result.info["cost"]
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
    return search_levels(scenario, kind, capped).policy


def best_base_stock(scenario: NetworkScenario) -> LevelPolicy:
    """Local base-stock at every node, levels by search (for ``backlog``: the optimal policy)."""
    return _cached_search(_search_key(scenario), "local", False)


def best_echelon_stock(scenario: NetworkScenario) -> LevelPolicy:
    """Echelon base-stock at every non-store node, local base-stock at stores; levels by search."""
    return _cached_search(_search_key(scenario), "echelon", False)


def best_capped_echelon_stock(scenario: NetworkScenario) -> LevelPolicy:
    """:func:`best_echelon_stock` plus a cap on every store's order; levels and caps by search."""
    if not isinstance(scenario, OneWarehouseScenario | MultiWarehouseScenario):
        raise DecisionlabError("capped_echelon_stock needs a one_warehouse or multi_warehouse scenario")
    return _cached_search(_search_key(scenario), "echelon", True)


def critical_fractile(scenario: NetworkScenario, device: torch.device | str = "cpu") -> LevelPolicy:
    """The closed-form optimal base-stock level of the backlogging single store."""
    if not isinstance(scenario, BacklogScenario):
        raise DecisionlabError("critical_fractile needs a backlog scenario")
    sim = NetworkSim(scenario, device)
    levels = torch.zeros(sim.n_nodes)
    levels[1] = scenario.critical_fractile_level()
    return LevelPolicy(sim, levels, "local", name="critical_fractile")


def newsvendor_levels(scenario: NetworkScenario, kind: str, device: torch.device | str = "cpu") -> LevelPolicy:
    """Search-free order-up-to levels ``mean cover + z·std cover`` on ``local`` or ``echelon``
    positions (:func:`node_stats`; the point the searches start from): a quick reference, and the
    only level policy that costs nothing to build on a large network."""
    sim = NetworkSim(scenario, device)
    stats = node_stats(sim, kind)
    levels = torch.tensor(stats.mean_cover + stats.z * stats.std_cover, dtype=torch.float32).clamp_min(0.0)
    return LevelPolicy(sim, levels, kind, name=f"newsvendor_{kind}")


NETWORK_BASELINES: dict[str, tuple[str, Callable[[NetworkScenario], LevelPolicy]]] = {
    "base_stock": ("every node orders up to a level on its local position (on hand + in transit to it); "
                   "levels by coordinate search on common random numbers", best_base_stock),
    "echelon_stock": ("warehouses/centres order up to an echelon level (their stock + everything downstream, "
                      "in transit included), stores up to a local level; levels by coordinate search",
                      best_echelon_stock),
    "capped_echelon_stock": ("echelon_stock with a cap on each store's order (lost sales); levels and caps by "
                             "coordinate search", best_capped_echelon_stock),
    "critical_fractile": ("closed-form base-stock level mu(L+1) + z sigma sqrt(L+1) (backlog store)",
                          lambda s: critical_fractile(s)),
    "newsvendor_echelon": ("no search: echelon_stock at newsvendor-style levels (mean + z std of the demand each "
                           "echelon position covers)", lambda s: newsvendor_levels(s, "echelon")),
    "newsvendor_local": ("no search: base_stock on local positions at newsvendor-style levels (mean + z std of "
                         "the covered demand)", lambda s: newsvendor_levels(s, "local")),
}


def network_baseline(name: str, scenario: NetworkScenario, device: torch.device | str = "cpu") -> LevelPolicy:
    """Baseline ``name`` for a network scenario on ``device`` (levels searched on the CPU, cached)."""
    if name not in NETWORK_BASELINES:
        raise DecisionlabError(f"unknown network baseline {name!r}; choose one of {', '.join(NETWORK_BASELINES)}")
    policy = NETWORK_BASELINES[name][1](scenario)
    return policy if torch.device(device) == policy.levels.device else policy.to(NetworkSim(scenario, device))
