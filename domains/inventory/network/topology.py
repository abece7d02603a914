"""Inventory networks as data: nodes, supply links (edges) with lead times, costs, and demand.

A :class:`Topology` is the graph the batched :class:`~decisionlab.domains.inventory.network.sim.NetworkSim`
steps: node ``0..n_nodes-1`` are suppliers (unlimited stock, no cost), warehouses (hold stock,
ship to their successors), centres (receive and pass everything on in the same period: they hold
nothing) and stores (face demand). An edge ``src -> dst`` is a supply link with a lead time in
periods; the policy orders one quantity per edge. Builders for the settings of the HDPO paper sit
at the bottom; they are called by the scenario models.

Conventions:

- Holding costs are *installation* costs: ``holding_cost[j]`` per unit on hand at node ``j`` at the
  end of a period. Stock in transit is not charged (with installation costs it would add
  ``Σ_e h[src(e)]·L_e·(mean flow)``, a constant in steady state). In a serial chain these are
  equivalent to echelon holding costs ``h_j − h_{j+1}`` up to that constant.
- ``underage_cost[j]`` (stores only) is charged per unit of lost demand (``lost_sales``) or per
  unit of backlog at the end of a period (backlog).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

NodeKind = Literal["supplier", "warehouse", "centre", "store"]
KINDS: tuple[NodeKind, ...] = ("supplier", "warehouse", "centre", "store")


@dataclass(frozen=True)
class Node:
    """One location. ``holding_cost``: per unit on hand at the end of a period; ``underage_cost``:
    per unit short at a store (lost or backlogged)."""

    name: str
    kind: NodeKind
    holding_cost: float = 0.0
    underage_cost: float = 0.0

    @property
    def can_hold(self) -> bool:
        """Whether stock can stay at this node from one period to the next."""
        return self.kind in ("warehouse", "store")


@dataclass(frozen=True)
class Edge:
    """A supply link: what ``src`` ships to ``dst`` in period t arrives at the start of t + ``lead_time``."""

    src: int
    dst: int
    lead_time: int


@dataclass(frozen=True)
class Topology:
    """A validated inventory network (see the module docstring for the conventions).

    Validation: supplier nodes have no inbound links; stores ship nothing; every other node has at
    least one inbound link; the graph is acyclic; links into a centre take at least one period
    (a centre ships from what arrived at the start of the period, so an instant arrival would
    have to be held).
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    lost_sales: bool
    _order: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.nodes)
        if not self.edges:
            raise ValueError("a network needs at least one supply link")
        for node in self.nodes:
            if node.kind not in KINDS:
                raise ValueError(f"node {node.name}: unknown kind {node.kind!r}")
        for edge in self.edges:
            if not (0 <= edge.src < n and 0 <= edge.dst < n) or edge.src == edge.dst:
                raise ValueError(f"edge {edge}: endpoints must be two distinct nodes in 0..{n - 1}")
            if edge.lead_time < 0:
                raise ValueError(f"edge {edge}: lead_time must be >= 0")
            if self.nodes[edge.dst].kind == "supplier":
                raise ValueError(f"edge {edge}: a supplier receives nothing")
            if self.nodes[edge.src].kind == "store":
                raise ValueError(f"edge {edge}: a store ships nothing")
            if self.nodes[edge.dst].kind == "centre" and edge.lead_time < 1:
                raise ValueError(f"edge {edge}: links into a centre need lead_time >= 1")
        inbound = {e.dst for e in self.edges}
        for j, node in enumerate(self.nodes):
            if node.kind != "supplier" and j not in inbound:
                raise ValueError(f"node {node.name} has no supply link")
        if not any(node.kind == "store" for node in self.nodes):
            raise ValueError("a network needs at least one store")
        object.__setattr__(self, "_order", self._topological_order())

    def _topological_order(self) -> tuple[int, ...]:
        indegree = [0] * len(self.nodes)
        for e in self.edges:
            indegree[e.dst] += 1
        ready = [j for j, d in enumerate(indegree) if d == 0]
        order: list[int] = []
        while ready:
            j = ready.pop()
            order.append(j)
            for e in self.edges:
                if e.src == j:
                    indegree[e.dst] -= 1
                    if indegree[e.dst] == 0:
                        ready.append(e.dst)
        if len(order) != len(self.nodes):
            raise ValueError("the supply links form a cycle")
        return tuple(order)

    # ---- sizes and index sets -------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    @property
    def stores(self) -> tuple[int, ...]:
        """Node indices of the stores, in node order (the demand columns follow this order)."""
        return tuple(j for j, node in enumerate(self.nodes) if node.kind == "store")

    @property
    def held_nodes(self) -> tuple[int, ...]:
        """Nodes whose on-hand stock is part of the state (warehouses and stores)."""
        return tuple(j for j, node in enumerate(self.nodes) if node.can_hold)

    @property
    def lead_times(self) -> tuple[int, ...]:
        return tuple(e.lead_time for e in self.edges)

    @property
    def max_lead_time(self) -> int:
        return max(self.lead_times)

    @property
    def edge_index(self) -> np.ndarray:
        """``[2, n_edges]`` (source row, destination row), torch-geometric style."""
        return np.array([[e.src for e in self.edges], [e.dst for e in self.edges]], dtype=np.int64)

    def longest_lead_path(self) -> int:
        """The largest sum of lead times along a path from a supplier to a store (periods)."""
        reach = [0] * self.n_nodes
        for j in self._order:
            for k in self.outbound(j):
                edge = self.edges[k]
                reach[edge.dst] = max(reach[edge.dst], reach[j] + edge.lead_time)
        return max(reach[j] for j in self.stores)

    def inbound(self, node: int) -> tuple[int, ...]:
        """Edge indices into ``node``."""
        return tuple(k for k, e in enumerate(self.edges) if e.dst == node)

    def outbound(self, node: int) -> tuple[int, ...]:
        """Edge indices out of ``node``."""
        return tuple(k for k, e in enumerate(self.edges) if e.src == node)

    def downstream_weights(self, split: np.ndarray | None = None) -> np.ndarray:
        """``W [n_nodes, n_nodes]``: ``W[j, k]`` = share of node ``k``'s stock that counts in node
        ``j``'s echelon (1 on the diagonal). ``split [n_edges]`` gives, for a node with several
        suppliers, the share of its needs ordered over each inbound link (default: equal shares),
        so in a tree ``W`` is the 0/1 "k is j or downstream of j" matrix."""
        n = self.n_nodes
        split = self.default_split() if split is None else np.asarray(split, dtype=np.float64)
        weights = np.eye(n)
        for j in reversed(self._order):  # successors first
            for k in self.outbound(j):
                weights[j] += split[k] * weights[self.edges[k].dst]
        return weights

    def default_split(self) -> np.ndarray:
        """``[n_edges]``: each node splits its orders equally over its inbound links."""
        split = np.zeros(self.n_edges)
        for j in range(self.n_nodes):
            links = self.inbound(j)
            for k in links:
                split[k] = 1.0 / len(links)
        return split

    def inbound_lead_times(self) -> np.ndarray:
        """``[n_nodes]``: each node's lead time, averaged over its inbound links with the default
        split (0 for suppliers)."""
        split = self.default_split()
        lead_in = np.zeros(self.n_nodes)
        for k, edge in enumerate(self.edges):
            lead_in[edge.dst] += split[k] * edge.lead_time
        return lead_in

    def describe(self) -> dict[str, object]:
        """JSON summary (for the API / dashboard)."""
        return {
            "nodes": [{"name": n.name, "kind": n.kind, "holding_cost": n.holding_cost,
                       "underage_cost": n.underage_cost} for n in self.nodes],
            "edges": [{"src": e.src, "dst": e.dst, "lead_time": e.lead_time} for e in self.edges],
            "lost_sales": self.lost_sales,
        }


@dataclass(frozen=True)
class DemandModel:
    """I.i.d.-over-time store demand, possibly correlated across stores.

    ``normal``: ``D_i = μ_i + σ_i·(√ρ·Z_0 + √(1−ρ)·Z_i)`` (equicorrelated Gaussian with pairwise
    correlation ρ ≥ 0), clipped at 0 unless ``allow_negative`` (negative demand = returns; used by
    closed-form oracles that assume an untruncated normal). ``poisson``: independent Poisson(μ_i)
    (``stds`` must be √μ and ρ = 0).
    """

    means: tuple[float, ...]
    stds: tuple[float, ...]
    distribution: Literal["normal", "poisson"] = "normal"
    correlation: float = 0.0
    allow_negative: bool = False

    def __post_init__(self) -> None:
        if len(self.means) != len(self.stds) or not self.means:
            raise ValueError("demand: one mean and one std per store")
        if not 0.0 <= self.correlation < 1.0:
            raise ValueError("demand: correlation must be in [0, 1)")
        if self.distribution == "poisson" and self.correlation:
            raise ValueError("demand: poisson demand is independent across stores (correlation 0)")

    @property
    def n_stores(self) -> int:
        return len(self.means)

    def sample(
        self, batch: int, periods: int, generator: torch.Generator | None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """Demand paths ``[batch, periods, n_stores]`` (float32)."""
        mean = torch.tensor(self.means, dtype=torch.float32, device=device)
        shape = (batch, periods, self.n_stores)
        if self.distribution == "poisson":
            return torch.poisson(mean.expand(shape).contiguous(), generator=generator)
        std = torch.tensor(self.stds, dtype=torch.float32, device=device)
        noise = torch.randn(shape, generator=generator, device=device)
        if self.correlation > 0.0:
            common = torch.randn(batch, periods, 1, generator=generator, device=device)
            noise = self.correlation**0.5 * common + (1.0 - self.correlation) ** 0.5 * noise
        demand = mean + std * noise
        return demand if self.allow_negative else demand.clamp_min(0.0)


# ---- builders for the settings of the HDPO paper --------------------------------------------

def single_store(lead_time: int, holding_cost: float, underage_cost: float, lost_sales: bool) -> Topology:
    """supplier -> store."""
    nodes = (Node("supplier", "supplier"), Node("store", "store", holding_cost, underage_cost))
    return Topology(nodes, (Edge(0, 1, lead_time),), lost_sales)


def serial(lead_times: tuple[int, ...], holding_costs: tuple[float, ...], underage_cost: float) -> Topology:
    """A chain supplier -> echelon K -> ... -> echelon 1 (the store), backlog at the store.

    ``lead_times[k]`` / ``holding_costs[k]`` are listed upstream first: entry 0 is the link from the
    supplier into the top echelon and that echelon's installation holding cost; the last entry is
    the store's.
    """
    if len(lead_times) != len(holding_costs) or not lead_times:
        raise ValueError("serial: give one lead time and one holding cost per echelon")
    k = len(lead_times)
    nodes = [Node("supplier", "supplier")]
    for i in range(k - 1):
        nodes.append(Node(f"echelon{k - i}", "warehouse", holding_costs[i]))
    nodes.append(Node("store", "store", holding_costs[-1], underage_cost))
    edges = tuple(Edge(i, i + 1, lead_times[i]) for i in range(k))
    return Topology(tuple(nodes), edges, lost_sales=False)


def one_warehouse(
    warehouse_lead_time: int,
    warehouse_holding_cost: float,
    store_lead_times: tuple[int, ...],
    store_holding_costs: tuple[float, ...],
    store_underage_costs: tuple[float, ...],
    lost_sales: bool,
    hub: Literal["warehouse", "centre"] = "warehouse",
) -> Topology:
    """supplier -> hub -> N stores. ``hub="centre"`` gives the transshipment set-up (the hub holds
    nothing)."""
    nodes = [Node("supplier", "supplier"), Node(hub, hub, warehouse_holding_cost if hub == "warehouse" else 0.0)]
    edges = [Edge(0, 1, warehouse_lead_time)]
    for i, (lead, h, p) in enumerate(zip(store_lead_times, store_holding_costs, store_underage_costs, strict=True)):
        nodes.append(Node(f"store{i}", "store", h, p))
        edges.append(Edge(1, 2 + i, lead))
    return Topology(tuple(nodes), tuple(edges), lost_sales)


def multi_warehouse(
    adjacency: np.ndarray,
    warehouse_lead_times: tuple[int, ...],
    warehouse_holding_costs: tuple[float, ...],
    edge_lead_times: tuple[int, ...],
    store_holding_costs: tuple[float, ...],
    store_underage_costs: tuple[float, ...],
    lost_sales: bool,
) -> Topology:
    """supplier -> W warehouses -> N stores, a link wherever ``adjacency[w, i]`` is true.

    ``edge_lead_times`` lists the warehouse -> store links in row-major order of ``adjacency``.
    Node order: supplier, warehouses, stores.
    """
    adjacency = np.asarray(adjacency, dtype=bool)
    n_w, n_s = adjacency.shape
    if not adjacency.any(axis=0).all():
        raise ValueError("multi_warehouse: every store needs at least one adjacent warehouse")
    nodes = [Node("supplier", "supplier")]
    nodes += [Node(f"warehouse{w}", "warehouse", warehouse_holding_costs[w]) for w in range(n_w)]
    nodes += [Node(f"store{i}", "store", store_holding_costs[i], store_underage_costs[i]) for i in range(n_s)]
    edges = [Edge(0, 1 + w, warehouse_lead_times[w]) for w in range(n_w)]
    links = [(w, i) for w in range(n_w) for i in range(n_s) if adjacency[w, i]]
    if len(links) != len(edge_lead_times):
        raise ValueError(f"multi_warehouse: {len(links)} links but {len(edge_lead_times)} lead times")
    edges += [Edge(1 + w, 1 + n_w + i, lead) for (w, i), lead in zip(links, edge_lead_times, strict=True)]
    return Topology(tuple(nodes), tuple(edges), lost_sales)
