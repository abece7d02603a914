"""Policies for inventory networks: order-up-to rules on inventory positions, and the vanilla HDPO MLP.

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
- ``critical_fractile`` (one backlogging store): the closed-form level ``μ(L+1) + z·σ√(L+1)``.
- ``newsvendor_echelon`` / ``newsvendor_local``: search-free levels ``mean cover + z·std cover``.

The searched levels come from :mod:`.search`. The learned policies are :class:`NetworkMLP` (here:
the vanilla MLP over the flat state, one network per topology) and the size-independent
symmetry-aware and GNN policies of :mod:`.graph_policies`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from decisionlab.core import PolicyMismatchError, mlp
from decisionlab.domains.inventory.network.scenario import NetworkScenario
from decisionlab.domains.inventory.network.sim import NetworkSim
from decisionlab.domains.inventory.network.topology import Topology


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

# ---- closed-form and search-free levels ------------------------------------------------------------


def single_backlog_store(topology: Topology) -> str | None:
    """Why ``topology`` is not one backlogging store fed by the supplier (``None`` when it is)."""
    if len(topology.stores) != 1 or topology.n_nodes != 2:
        return "needs a single store supplied directly (the backlog setting)"
    if topology.lost_sales:
        return "needs backlogged demand (the closed form does not hold with lost sales)"
    return None


def two_echelon_distribution(topology: Topology) -> str | None:
    """Why ``topology`` is not a distribution network of warehouses (fed by the supplier) feeding
    stores with lost sales (``None`` when it is): where capping store orders pays."""
    kinds = [node.kind for node in topology.nodes]
    for edge in topology.edges:
        source, target = kinds[edge.src], kinds[edge.dst]
        if target == "store" and source != "warehouse":
            return "needs stores supplied by warehouses that hold stock (one_warehouse, multi_warehouse)"
        if target == "warehouse" and source != "supplier":
            return "needs warehouses supplied by the supplier directly (one_warehouse, multi_warehouse)"
    if not topology.lost_sales:
        return "needs lost sales at the stores (capping orders pays when unmet demand is lost)"
    return None


def critical_fractile(scenario: NetworkScenario, device: torch.device | str = "cpu") -> LevelPolicy:
    """The closed-form optimal base-stock level ``S* = μ(L+1) + z·σ√(L+1)``, ``z = Φ⁻¹(p/(p+h))``, of
    the backlogging single store (exact for untruncated normal demand)."""
    sim = NetworkSim(scenario, device)
    topology = scenario.topology()
    problem = single_backlog_store(topology)
    if problem is not None:
        raise PolicyMismatchError(f"critical_fractile {problem}")
    store = topology.nodes[topology.stores[0]]
    periods = topology.edges[0].lead_time + 1
    z = stats.norm.ppf(store.underage_cost / (store.underage_cost + store.holding_cost))
    demand = sim.demand_model
    levels = torch.zeros(sim.n_nodes)
    levels[topology.stores[0]] = float(demand.means[0] * periods + z * demand.stds[0] * periods**0.5)
    return LevelPolicy(sim, levels, "local", name="critical_fractile")


def newsvendor_levels(scenario: NetworkScenario, kind: str, device: torch.device | str = "cpu") -> LevelPolicy:
    """Search-free order-up-to levels ``mean cover + z·std cover`` on ``local`` or ``echelon``
    positions (:func:`node_stats`; the point the searches start from): a quick reference, and the
    only level policy that costs nothing to build on a large network."""
    sim = NetworkSim(scenario, device)
    stats = node_stats(sim, kind)
    levels = torch.tensor(stats.mean_cover + stats.z * stats.std_cover, dtype=torch.float32).clamp_min(0.0)
    return LevelPolicy(sim, levels, kind, name=f"newsvendor_{kind}")



# ---- the vanilla HDPO network ----------------------------------------------------------------------


def network_signature(sim: NetworkSim) -> dict[str, Any]:
    """What a trained network must match to act in a simulator: node kinds, links, lead times and
    store demand means (the scales the inputs and outputs were normalised with)."""
    topo = sim.topology
    return {
        "kinds": [node.kind for node in topo.nodes],
        "edges": [[e.src, e.dst, e.lead_time] for e in topo.edges],
        "demand_means": [round(float(m), 6) for m in sim.demand_model.means],
    }


class NetworkMLP(nn.Module):
    """Vanilla HDPO policy for networks: ``softplus(MLP(features)) · link mean flow`` per link.

    Features: the flat observation divided by each column's mean flow, plus every node's local
    and echelon inventory positions (fixed linear maps of the observation, in periods of the node's
    mean flow; they help optimisation, not expressiveness). The
    scales and maps are buffers, so they travel with the weights; :meth:`config` holds sizes and
    the network signature only.
    Initialisation: last layer near 0, bias so every link first orders its mean flow.
    ``forward(obs [B, observation_size]) -> orders [B, n_edges]``.
    """

    name = "hdpo_network_mlp"
    kind = "network_mlp"

    def __init__(
        self,
        observation_size: int,
        n_edges: int,
        n_positions: int,
        hidden: tuple[int, ...] = (128, 128),
        signature: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.observation_size, self.n_edges, self.n_positions = int(observation_size), int(n_edges), int(n_positions)
        self.hidden = tuple(int(h) for h in hidden)
        self.signature = signature or {}
        # input_map = [diag(1 / feature scale) | position maps]: features = obs @ input_map.
        self.register_buffer("input_map", torch.zeros(self.observation_size, self.observation_size + self.n_positions))
        self.register_buffer("action_scale", torch.ones(self.n_edges))
        self.net = mlp(self.observation_size + self.n_positions, self.hidden, self.n_edges, activation="elu")
        with torch.no_grad():
            last = self.net[-1]
            last.weight.mul_(0.1)
            last.bias.fill_(math.log(math.e - 1.0))  # softplus(bias) = 1: order ≈ mean flow

    @classmethod
    def for_simulator(cls, sim: NetworkSim, hidden: tuple[int, ...] = (128, 128)) -> NetworkMLP:
        """A fresh network with the scales and position maps of ``sim``."""
        nodes = [j for j in range(sim.n_nodes) if sim.topology.nodes[j].kind != "supplier"]
        maps = [sim.position_matrix(kind)[:, nodes] / sim.node_flow[nodes] for kind in ("local", "echelon")]
        net = cls(sim.observation_size, sim.n_edges, 2 * len(nodes), hidden, network_signature(sim))
        with torch.no_grad():
            net.input_map.copy_(torch.cat([torch.diag(1.0 / sim.feature_scale), *maps], dim=1))
            net.action_scale.copy_(sim.edge_flow)
        return net.to(sim.device)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "observation_size": self.observation_size, "n_edges": self.n_edges,
                "n_positions": self.n_positions, "hidden": list(self.hidden), "signature": self.signature}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NetworkMLP:
        return cls(config["observation_size"], config["n_edges"], config["n_positions"], tuple(config["hidden"]),
                   config["signature"])

    @classmethod
    def initial(cls, scenario: NetworkScenario, device: torch.device | str = "cpu") -> NetworkMLP:
        return cls.for_simulator(NetworkSim(scenario, device))

    def for_scenario(self, scenario: NetworkScenario) -> NetworkMLP:
        """``self`` when ``scenario`` has the network it was trained on (scales and position maps are
        part of the weights)."""
        sim = NetworkSim(scenario, self.action_scale.device)
        if self.signature != network_signature(sim):
            raise PolicyMismatchError(
                "this policy was trained for a different network (nodes, links, lead times or demand means "
                "differ): train one for this scenario, or use architecture=symmetry / gnn, which act on any size"
            )
        return self

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.net(obs @ self.input_map)) * self.action_scale

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self(obs)


