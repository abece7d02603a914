"""One batched simulator for every inventory network (single store, serial, one warehouse,
transshipment, many warehouses), differentiable in the orders.

State: on-hand stock per node ``[B, n_nodes]`` (net stock at backlogging stores, so it can be
negative there; always 0 at suppliers and centres) and, per supply link, the shipments in transit
as one padded tensor ``[B, n_edges, max_lead]``: slot ``k`` of link ``e`` arrives ``k`` periods
after the next one starts (slot 0 arrives in the next period); slots ``k ≥ L_e`` stay 0. A
shipment on link ``e`` enters slot ``L_e − 1`` (the link's arrival index), so mixed lead times
need no loop.

A period, for the whole batch at once:

1. the policy sees the state and requests ``q [B, n_edges]`` on every link (negative = 0);
2. slot 0 of every pipeline arrives at its destination;
3. every node ships from the stock it now has: a supplier ships every request in full; a
   warehouse that cannot fill all requests gives each link ``q_e · min(1, stock / Σ q)``
   (proportional allocation; what is not shipped is not owed); a centre ships everything it
   holds, split in proportion to the requests (by mean demand when nobody asks);
4. shipments enter their link's pipeline; links with lead time 0 deliver at once (after step 3:
   such goods are not shipped on again in the same period);
5. stores serve demand ``d [B, n_stores]``: lost sales clip stock at 0, backlog lets net stock
   go negative;
6. cost = Σ holding ``h_j · (end stock_j)⁺`` + Σ stores ``p_i · lost_i`` (lost sales) or
   ``p_i · (end net stock_i)⁻`` (backlog); reward = −cost.

Everything is element-wise or a small matrix product over the batch; the only loop a rollout
needs is over periods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from decisionlab.core import Box, Spaces, StepResult
from decisionlab.domains.inventory.network.scenario import NetworkScenario
from decisionlab.domains.inventory.network.topology import KINDS, DemandModel, Topology

TINY = 1e-9
NODE_FEATURES_STATIC = ("is_supplier", "is_warehouse", "is_centre", "is_store", "holding_cost", "underage_cost",
                        "mean_demand_flow")


@dataclass(frozen=True)
class NetworkState:
    """``on_hand [B, n_nodes]`` and ``pipeline [B, n_edges, max_lead]`` (see the module docstring)."""

    on_hand: torch.Tensor
    pipeline: torch.Tensor

    def detach(self) -> NetworkState:
        return NetworkState(self.on_hand.detach(), self.pipeline.detach())

    @property
    def batch(self) -> int:
        return self.on_hand.shape[0]


class NetworkSim:
    """Batched simulator of an inventory network (see the module docstring for the dynamics).

    Build it from a scenario (``NetworkSim(scenario, device)``) or from parts
    (:meth:`from_parts`). Observation: a flat tensor ``[B, observation_size]`` = on hand of every
    warehouse and store (node order), then every link's pipeline slots ``0..L_e−1`` (link order);
    :meth:`observe_nodes` gives per-node features ``[B, n_nodes, F]`` with :attr:`edge_index` for
    graph networks.
    """

    differentiable = True
    diagnostics = True  # set False to skip the info entries costs do not need (faster training)

    def __init__(self, scenario: NetworkScenario, device: torch.device | str = "cpu") -> None:
        self.scenario = scenario
        self._build(scenario.topology(), scenario.demand(), torch.device(device))

    @classmethod
    def from_parts(cls, topology: Topology, demand: DemandModel, device: torch.device | str = "cpu") -> NetworkSim:
        """A simulator without a scenario model (tests, custom networks)."""
        sim = cls.__new__(cls)
        sim.scenario = None
        sim._build(topology, demand, torch.device(device))
        return sim

    # ---- construction ----------------------------------------------------------------------
    def _build(self, topology: Topology, demand: DemandModel, device: torch.device) -> None:
        if demand.n_stores != len(topology.stores):
            raise ValueError(f"demand has {demand.n_stores} stores, the network {len(topology.stores)}")
        self.topology, self.demand_model, self.device = topology, demand, device
        n, e = topology.n_nodes, topology.n_edges
        lead = np.array(topology.lead_times)
        self.n_nodes, self.n_edges, self.n_stores = n, e, len(topology.stores)
        self.max_lead = int(lead.max())
        f32 = {"dtype": torch.float32, "device": device}
        kinds = [node.kind for node in topology.nodes]
        self.edge_src = torch.tensor([x.src for x in topology.edges], dtype=torch.long, device=device)
        self.edge_dst = torch.tensor([x.dst for x in topology.edges], dtype=torch.long, device=device)
        self.edge_index = torch.stack([self.edge_src, self.edge_dst])  # [2, n_edges]
        self.lead_times = torch.tensor(lead, dtype=torch.long, device=device)  # [n_edges]
        self.arrival_index = (self.lead_times - 1).clamp_min(0)  # slot a new shipment enters
        slot = torch.arange(self.max_lead, device=device)
        self.slot_in = (slot[None, :] == (self.lead_times - 1)[:, None]).float()  # [E, max_lead] one-hot
        self.instant = (self.lead_times == 0).float()  # [E]
        self.has_instant = bool(self.instant.any())
        self.has_internal_links = any(topology.nodes[x.src].kind != "supplier" for x in topology.edges)
        self.has_centre = any(kind == "centre" for kind in kinds)
        self.valid_slots = slot[None, :] < self.lead_times[:, None]  # [E, max_lead] bool
        self.in_incidence = torch.zeros(e, n, **f32).index_put_(
            (torch.arange(e, device=device), self.edge_dst), torch.ones(e, **f32))  # [E, N]
        self.out_incidence = torch.zeros(e, n, **f32).index_put_(
            (torch.arange(e, device=device), self.edge_src), torch.ones(e, **f32))  # [E, N]
        self.is_supplier = torch.tensor([k == "supplier" for k in kinds], device=device)
        self.is_centre = torch.tensor([k == "centre" for k in kinds], device=device)
        self.is_store = torch.tensor([k == "store" for k in kinds], device=device)
        self.can_hold = torch.tensor([node.can_hold for node in topology.nodes], **f32)  # [N]
        self.supplier_stock = self.is_supplier.float() * 1e12  # [N] "unlimited" stock to allocate from
        self.stores = torch.tensor(topology.stores, dtype=torch.long, device=device)  # [S]
        self.holding_cost = torch.tensor([node.holding_cost for node in topology.nodes], **f32)  # [N]
        self.underage_cost = torch.tensor([topology.nodes[j].underage_cost for j in topology.stores], **f32)  # [S]
        self.lost_sales = topology.lost_sales
        # Mean flow through each node and link (units per period) with the default split: scales.
        weights = topology.downstream_weights()
        flow = weights[:, list(topology.stores)] @ np.array(demand.means)
        self.node_flow = torch.tensor(flow, **f32).clamp_min(TINY)  # [N]
        split = topology.default_split()
        self.edge_flow = torch.tensor(split * flow[[x.dst for x in topology.edges]], **f32).clamp_min(TINY)  # [E]
        # A centre splits what it ships in proportion to requests + a tiny share of the mean flow
        # (so it ships everything, by mean demand, even when nobody asks).
        self.centre_epsilon = 1e-6 * self.edge_flow * self.is_centre[self.edge_src].float()  # [E]
        self.centre_epsilon_node = self.centre_epsilon @ self.out_incidence  # [N]
        # Flat observation layout.
        self.held_nodes = torch.tensor(topology.held_nodes, dtype=torch.long, device=device)
        self.pipeline_flat_index = torch.nonzero(self.valid_slots.reshape(-1)).squeeze(1)
        self.observation_size = len(topology.held_nodes) + int(lead.sum())
        self.action_size = e
        high = float(4.0 * self.edge_flow.max() + 6.0 * max(demand.stds) * self.n_stores)
        self.spaces = Spaces(
            observation=Box((self.observation_size,), unit="units", description="on hand of every held node, then "
                            "every link's pipeline slots oldest first"),
            action=Box((e,), 0.0, unit="units", span=(0.0, high), description="order (or request) on every link"),
        )
        self.feature_scale = torch.cat(
            [self.node_flow[self.held_nodes], self.edge_flow[:, None].expand(e, self.max_lead).reshape(-1)
             [self.pipeline_flat_index]])  # [observation_size]
        column_node = list(topology.held_nodes) + [
            topology.edges[flat // self.max_lead].dst for flat in self.pipeline_flat_index.tolist()]
        # The node whose local inventory position each observation column belongs to.
        self.observation_nodes = torch.tensor(column_node, dtype=torch.long, device=device)  # [obs_dim]
        local = np.zeros((self.observation_size, n), dtype=np.float32)
        local[np.arange(self.observation_size), column_node] = 1.0
        self._local_position = local
        self._weights = weights

    # ---- positions (linear maps of the flat observation) -------------------------------------
    def position_matrix(self, kind: str = "local", split: np.ndarray | None = None) -> torch.Tensor:
        """``M [observation_size, n_nodes]`` so that ``obs @ M`` is each node's inventory position.

        ``local``: on hand + inbound pipeline. ``echelon``: the node's local position plus its
        successors' echelon positions (weighted by ``split`` where a node has several suppliers;
        in a tree, everything at or downstream of the node, in transit included)."""
        local = self._local_position
        if kind == "local":
            matrix = local
        elif kind == "echelon":
            weights = self._weights if split is None else self.topology.downstream_weights(split)
            matrix = local @ weights.T.astype(np.float32)
        else:
            raise ValueError(f"unknown position kind {kind!r}: use 'local' or 'echelon'")
        return torch.tensor(matrix, dtype=torch.float32, device=self.device)

    def typical_position(self, kind: str = "local") -> torch.Tensor:
        """``[n_nodes]``: mean demand a node's ``kind`` position covers (its inbound lead time(s)
        plus one period, summed over the stores it serves, split-weighted): the scale of a
        sensible order-up-to level, in units."""
        lead_in = self.topology.inbound_lead_times()
        flow = self.node_flow.cpu().numpy().astype(np.float64)
        weights = self._weights if kind == "echelon" else np.eye(self.n_nodes)
        return torch.tensor(weights @ (flow * lead_in) + flow, dtype=torch.float32, device=self.device)

    # ---- the BatchedSimulator protocol ------------------------------------------------------
    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Demand paths ``[B, periods, n_stores]``."""
        return self.demand_model.sample(batch, periods, generator, self.device)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> NetworkState:
        """Empty network: no stock anywhere, nothing in transit (warm-up washes the start out)."""
        return NetworkState(
            torch.zeros(batch, self.n_nodes, device=self.device),
            torch.zeros(batch, self.n_edges, self.max_lead, device=self.device),
        )

    def random_state(self, batch: int, generator: torch.Generator | None, spread: float = 2.0) -> NetworkState:
        """Spread-out start states: on hand ~ U[0, spread·flow] at warehouses and stores, each
        pipeline slot ~ U[0, spread·link flow] (for training windows; warm-up washes them out)."""
        on_hand = torch.rand(batch, self.n_nodes, generator=generator, device=self.device)
        on_hand = on_hand * spread * self.node_flow * self.can_hold
        pipeline = torch.rand(batch, self.n_edges, self.max_lead, generator=generator, device=self.device)
        pipeline = pipeline * spread * self.edge_flow[:, None] * self.valid_slots
        return NetworkState(on_hand, pipeline)

    def observe(self, state: NetworkState) -> torch.Tensor:
        """Flat observation ``[B, observation_size]`` (layout in the class docstring)."""
        pipeline = state.pipeline.reshape(state.batch, -1).index_select(1, self.pipeline_flat_index)
        return torch.cat([state.on_hand.index_select(1, self.held_nodes), pipeline], dim=1)

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def state_from_observation(self, obs: torch.Tensor) -> NetworkState:
        """Inverse of :meth:`observe`."""
        batch, held = obs.shape[0], self.held_nodes.numel()
        on_hand = torch.zeros(batch, self.n_nodes, dtype=obs.dtype, device=obs.device)
        on_hand = on_hand.index_copy(1, self.held_nodes, obs[:, :held])
        pipeline = torch.zeros(batch, self.n_edges * self.max_lead, dtype=obs.dtype, device=obs.device)
        pipeline = pipeline.index_copy(1, self.pipeline_flat_index, obs[:, held:])
        return NetworkState(on_hand, pipeline.view(batch, self.n_edges, self.max_lead))

    def observe_nodes(self, state: NetworkState, scaled: bool = True) -> torch.Tensor:
        """Per-node features ``[B, n_nodes, 1 + max_lead + 7]``: on hand, inbound pipeline per slot
        (summed over inbound links), then static features :data:`NODE_FEATURES_STATIC`. With
        ``scaled`` the quantities are divided by the node's mean demand flow."""
        batch = state.batch
        inbound = torch.einsum("bek,en->bnk", state.pipeline, self.in_incidence)  # [B, N, max_lead]
        dynamic = torch.cat([state.on_hand.unsqueeze(2), inbound], dim=2)
        if scaled:
            dynamic = dynamic / self.node_flow[None, :, None]
        return torch.cat([dynamic, self.static_node_features().expand(batch, -1, -1)], dim=2)

    def observe_edges(self, state: NetworkState, scaled: bool = True) -> torch.Tensor:
        """Per-link features ``[B, n_edges, max_lead + 2]``: the pipeline slots (oldest first, 0
        past the link's lead time), then the lead time and the link's mean flow. With ``scaled``
        the pipeline is divided by the link's mean flow. Pair with :attr:`edge_index` ``[2, E]``."""
        pipeline = state.pipeline / self.edge_flow[None, :, None] if scaled else state.pipeline
        static = torch.stack([self.lead_times.float(), self.edge_flow], dim=1)  # [E, 2]
        return torch.cat([pipeline, static.expand(state.batch, -1, -1)], dim=2)

    def static_node_features(self) -> torch.Tensor:
        """``[1, n_nodes, 7]``: kind one-hot, holding cost, underage cost, mean demand flow."""
        kinds = torch.tensor([[float(node.kind == k) for k in KINDS] for node in self.topology.nodes],
                             device=self.device)
        underage = torch.zeros(self.n_nodes, device=self.device).index_copy(0, self.stores, self.underage_cost)
        return torch.cat([kinds, self.holding_cost[:, None], underage[:, None], self.node_flow[:, None]], 1)[None]

    # ---- dynamics -----------------------------------------------------------------------------
    def _requests(self, action: torch.Tensor, batch: int) -> torch.Tensor:
        return torch.relu(action.reshape(batch, self.n_edges))

    def _ship(self, state: NetworkState, action: torch.Tensor) -> tuple[NetworkState, torch.Tensor]:
        """Steps 2–4: arrivals, allocation, shipping. Returns the post-decision state and the
        shipped quantities ``[B, n_edges]``. (Branches are on the topology only, never on data.)"""
        requests = self._requests(action, state.batch)
        if self.max_lead:
            arriving = state.pipeline[:, :, 0]
            shifted = torch.nn.functional.pad(state.pipeline[:, :, 1:], (0, 1))
            stock = state.on_hand.index_add(1, self.edge_dst, arriving)  # [B, N]
        else:
            shifted, stock = state.pipeline, state.on_hand
        if self.has_internal_links:
            asked = torch.zeros_like(stock).index_add_(1, self.edge_src, requests)  # [B, N] requested from each node
            available = torch.relu(stock) + self.supplier_stock  # suppliers: unlimited
            fill = available / torch.maximum(asked, available).clamp_min(TINY)  # min(1, stock / asked)
            if self.has_centre:
                requests = requests + self.centre_epsilon
                fill_centre = available / (asked + self.centre_epsilon_node).clamp_min(TINY)
                fill = torch.where(self.is_centre, fill_centre, fill)
            shipped = requests * fill.index_select(1, self.edge_src)  # [B, E]
            stock = stock.index_add(1, self.edge_src, shipped, alpha=-1.0) * self.can_hold  # suppliers, centres: 0
        else:
            shipped = requests
        if self.has_instant:
            stock = stock.index_add(1, self.edge_dst, shipped * self.instant)
        pipeline = shifted + shipped.unsqueeze(2) * self.slot_in if self.max_lead else shifted
        return NetworkState(stock, pipeline), shipped

    def post_decision(self, state: NetworkState, action: torch.Tensor) -> NetworkState:
        """The state after this period's arrivals and shipments, before demand (steps 2–4):
        ``on_hand`` is the stock the stores serve demand from."""
        return self._ship(state, action)[0]

    def step(self, state: NetworkState, action: torch.Tensor, demand: torch.Tensor) -> StepResult[NetworkState]:
        """One period. ``action``: requests ``[B, n_edges]`` (``[B]`` when there is one link);
        ``demand``: ``[B, n_stores]``. Returns the next state, reward ``[B]`` (−cost) and info:
        ``cost``, ``holding_cost``, ``shortage_cost`` (lost sales), ``backlog_cost`` — all ``[B]`` —
        and ``on_hand`` ``[B, n_nodes]`` (end of period); with :attr:`diagnostics` also ``demand``,
        ``sales`` (demand met from stock in its period), ``order`` (requested) and ``shipped`` ``[B]``."""
        batch = state.batch
        demand = demand.reshape(batch, self.n_stores)
        after, shipped = self._ship(state, action)
        stock_at_store = after.on_hand.index_select(1, self.stores)  # [B, S]
        end = stock_at_store - demand
        short = torch.relu(-end)  # lost (lost sales) or backlogged (backlog) units
        if self.lost_sales:
            end = torch.relu(end)
        on_hand = after.on_hand.index_copy(1, self.stores, end)
        holding = torch.relu(on_hand) @ self.holding_cost
        shortage = short @ self.underage_cost
        zero = torch.zeros_like(shortage)
        cost = holding + shortage
        info = {
            "cost": cost,
            "holding_cost": holding,
            "shortage_cost": shortage if self.lost_sales else zero,
            "backlog_cost": zero if self.lost_sales else shortage,
            "on_hand": on_hand,
        }
        if self.diagnostics:
            info["demand"] = demand.sum(1)
            info["sales"] = torch.minimum(torch.relu(stock_at_store), demand).sum(1)
            info["order"] = self._requests(action, batch).sum(1)
            info["shipped"] = shipped.sum(1)
        return StepResult(NetworkState(on_hand, after.pipeline), -cost, info)
