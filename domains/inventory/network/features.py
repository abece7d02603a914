"""Size-independent node and link features of an inventory network, for policies that share weights
across nodes (:mod:`.graph_policies`).

Every dynamic feature is a fixed linear map of the simulator's flat observation, so one matrix
product gives all of them for the whole batch and gradients flow through it unchanged (HDPO
differentiates through the state). Quantities are divided by the node's (or link's) mean demand
flow, so a warehouse serving 20 stores sees the same numbers as one serving 5 when each store is
equally covered: that is what lets a policy trained on one network act on another.

Node features ``[B, n_nodes, NODE_FEATURES(slots)]``:

- dynamic (in periods of the node's mean flow): on hand, inbound pipeline per slot ``0..slots−1``
  (shipments further out are folded into the last slot), local inventory position (on hand +
  everything inbound), echelon inventory position (local + every successor's, split-weighted);
- static: kind one-hot (supplier, warehouse, centre, store), holding cost, underage cost,
  critical ratio ``p/(p+h)`` (stores), demand coefficient of variation (stores), mean inbound lead
  time / ``slots``.

Link features ``[B, n_edges, EDGE_FEATURES]``: units in transit on the link (in periods of the
link's mean flow), lead time / ``slots``, the link's share of its destination's supply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from decisionlab.domains.inventory.network.sim import NetworkSim
from decisionlab.domains.inventory.network.topology import KINDS

STATIC_NODE_FEATURES = (*(f"is_{k}" for k in KINDS), "holding_cost", "underage_cost", "critical_ratio",
                        "demand_cv", "inbound_lead_time")
EDGE_FEATURES = ("in_transit", "lead_time", "supply_share")


def node_feature_names(slots: int) -> tuple[str, ...]:
    """Names of the node features for ``slots`` pipeline slots, in column order."""
    dynamic = ("on_hand", *(f"inbound_slot{k}" for k in range(slots)), "local_position", "echelon_position")
    return dynamic + STATIC_NODE_FEATURES


@dataclass(frozen=True)
class GraphFeatures:
    """Feature maps of one network (build with :meth:`for_simulator`); tensors on the sim's device.

    ``node_map [obs_dim, n_nodes · n_dynamic]`` and ``edge_map [obs_dim, n_edges]`` turn a flat
    observation into the dynamic features; ``node_static [n_nodes, n_static]`` and
    ``edge_static [n_edges, 2]`` are appended as they are.
    """

    slots: int
    n_nodes: int
    n_edges: int
    node_map: torch.Tensor
    node_static: torch.Tensor
    edge_map: torch.Tensor
    edge_static: torch.Tensor
    edge_index: torch.Tensor  # [2, n_edges] supplier-side row first
    edge_flow: torch.Tensor  # [n_edges] mean units per period (order scale)
    kind_index: torch.Tensor  # [n_nodes] index into KINDS

    @property
    def node_dim(self) -> int:
        return self.node_map.shape[1] // self.n_nodes + self.node_static.shape[1]

    @classmethod
    def for_simulator(cls, sim: NetworkSim, slots: int) -> GraphFeatures:
        """The maps of ``sim``'s network with ``slots`` pipeline slots per node (≥ 1)."""
        if slots < 1:
            raise ValueError("slots must be >= 1")
        topo, dev = sim.topology, sim.device
        n, e, obs_dim = sim.n_nodes, sim.n_edges, sim.observation_size
        flow = sim.node_flow.cpu().numpy().astype(np.float64)
        edge_flow = sim.edge_flow.cpu().numpy().astype(np.float64)
        held = sim.held_nodes.tolist()
        flat_slots = sim.pipeline_flat_index.tolist()  # observation column -> flat (edge, slot) index
        n_dynamic = 1 + slots + 2
        node_map = np.zeros((obs_dim, n, n_dynamic))
        edge_map = np.zeros((obs_dim, e))
        for col, node in enumerate(held):
            node_map[col, node, 0] = 1.0 / flow[node]
        for offset, flat in enumerate(flat_slots):
            col = len(held) + offset
            edge, slot = divmod(flat, sim.max_lead)
            dst = topo.edges[edge].dst
            node_map[col, dst, 1 + min(slot, slots - 1)] = 1.0 / flow[dst]
            edge_map[col, edge] = 1.0 / edge_flow[edge]
        local = sim.position_matrix("local").cpu().numpy().astype(np.float64)  # [obs_dim, n]
        echelon = sim.position_matrix("echelon").cpu().numpy().astype(np.float64)
        node_map[:, :, 1 + slots] = local / flow
        node_map[:, :, 2 + slots] = echelon / flow

        split = topo.default_split()
        lead_in = topo.inbound_lead_times()
        stds = np.zeros(n)
        means = np.ones(n)
        for col, node in enumerate(topo.stores):
            stds[node], means[node] = sim.demand_model.stds[col], sim.demand_model.means[col]
        static = []
        for j, node in enumerate(topo.nodes):
            kinds = [float(node.kind == kind) for kind in KINDS]
            ratio = node.underage_cost / (node.underage_cost + node.holding_cost) if node.kind == "store" else 0.0
            static.append([*kinds, node.holding_cost, node.underage_cost / 10.0, ratio, stds[j] / means[j],
                           lead_in[j] / slots])
        edge_static = [[edge.lead_time / slots, split[k]] for k, edge in enumerate(topo.edges)]
        f32 = {"dtype": torch.float32, "device": dev}
        return cls(
            slots=slots, n_nodes=n, n_edges=e,
            node_map=torch.tensor(node_map.reshape(obs_dim, n * n_dynamic), **f32),
            node_static=torch.tensor(static, **f32),
            edge_map=torch.tensor(edge_map, **f32),
            edge_static=torch.tensor(edge_static, **f32),
            edge_index=sim.edge_index.clone(),
            edge_flow=sim.edge_flow.clone(),
            kind_index=torch.tensor([KINDS.index(node.kind) for node in topo.nodes], dtype=torch.long, device=dev),
        )

    def nodes(self, obs: torch.Tensor) -> torch.Tensor:
        """Node features ``[B, n_nodes, node_dim]`` of flat observations ``obs [B, obs_dim]``."""
        batch = obs.shape[0]
        dynamic = (obs @ self.node_map).view(batch, self.n_nodes, -1)
        return torch.cat([dynamic, self.node_static.expand(batch, -1, -1)], dim=2)

    def edges(self, obs: torch.Tensor) -> torch.Tensor:
        """Link features ``[B, n_edges, 3]`` of flat observations ``obs [B, obs_dim]``."""
        batch = obs.shape[0]
        in_transit = (obs @ self.edge_map).unsqueeze(2)
        return torch.cat([in_transit, self.edge_static.expand(batch, -1, -1)], dim=2)
