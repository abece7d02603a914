"""Inventory networks over HTTP: request/response models and the conversion between named,
per-node states and the flat tensors of :class:`~decisionlab.domains.inventory.network.sim.NetworkSim`.

Nodes and links are named by the topology's node names (``supplier``, ``warehouse``,
``warehouse0``, ``centre``, ``echelon2``, ``store``, ``store0``, ...; see
:mod:`~decisionlab.domains.inventory.network.topology`); a link is named by its two ends.
``GET /v1/inventory/network`` (:func:`describe_network`) returns the resolved network, so a client
knows what to send. One network's state (:class:`NetworkInventory`)::

    {"on_hand":    {"warehouse": 30, "store0": 4, "store1": -2},      # every warehouse and store
     "in_transit": {"warehouse": {"supplier": [10, 10, 10]},         # per receiving node, per
                    "store0": {"warehouse": [5, 5]}, ...}}            # upstream node: oldest first

and its orders (:class:`NetworkOrders`): ``{"orders": {"warehouse": {"supplier": 12.0}, "store0":
{"warehouse": 3.0}, ...}}``: for every node that is supplied, the quantity it requests on each
inbound link (what a short warehouse then ships is the simulator's allocation, not part of the
answer).

The flat observation is never laid out here: the named state fills a
:class:`~decisionlab.domains.inventory.network.sim.NetworkState` (``on_hand [B, n_nodes]``,
``pipeline [B, n_edges, max_lead]``) and :meth:`NetworkSim.observe` builds what the policies read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from decisionlab.core import FieldProblem, PolicyOutputError, ServingSpec, StateError
from decisionlab.domains.inventory.network.scenario import NetworkScenario
from decisionlab.domains.inventory.network.sim import NetworkSim, NetworkState

MAX_QUANTITY = 1e9
MAX_NODES = 1_000  # more than any valid scenario has (200 stores + 50 warehouses + a supplier)
MAX_LEAD = 64  # longer than any valid lead time; the exact length is checked against the link
MAX_PROBLEMS = 20  # validation problems reported per request

NodeName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Quantity = Annotated[float, Field(ge=0, le=MAX_QUANTITY, allow_inf_nan=False, strict=True)]
NetStock = Annotated[float, Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY, allow_inf_nan=False, strict=True)]
Pipeline = Annotated[list[Quantity], Field(max_length=MAX_LEAD)]
Loc = tuple[str | int, ...]


# --- models -------------------------------------------------------------------------------------


class NetworkInventory(BaseModel):
    """The state of one network at the moment of ordering, by node name."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"on_hand": {"store": -3.0}, "in_transit": {"store": {"supplier": [5, 5, 4, 6]}}},
            ]
        },
    )

    on_hand: dict[NodeName, NetStock] = Field(
        max_length=MAX_NODES,
        description="stock on hand (units) of every warehouse and store, by node name; negative only at a "
        "backlogging store (= its backlog)",
    )
    in_transit: dict[NodeName, dict[NodeName, Pipeline]] = Field(
        default_factory=dict,
        max_length=MAX_NODES,
        description="per receiving node, per upstream node: the shipments in transit on that link, oldest "
        "(arriving next period) first, exactly lead_time values (links with lead_time 0 may be left out)",
    )


class NetworkOrders(BaseModel):
    """The orders of one network: per node, the quantity requested from each upstream node."""

    orders: dict[str, dict[str, float]] = Field(
        description="{node: {upstream node: units >= 0}} for every node with a supply link, in node order"
    )


class NetworkOrdersResponse(BaseModel):
    """One :class:`NetworkOrders` per requested network, in the same order."""

    policy: str = Field(description="the policy that decided: a baseline name or a full registry reference")
    scenario: dict[str, Any] = Field(description="all resolved scenario parameters")
    networks: list[NetworkOrders]


class NodeInfo(BaseModel):
    name: str
    kind: str = Field(description="supplier, warehouse, centre (holds nothing) or store")
    holding_cost: float = Field(description="per unit on hand at the end of a period")
    underage_cost: float = Field(description="stores: per unit lost or backlogged")
    holds_stock: bool = Field(description="whether the node's on_hand is part of the state")
    may_be_negative: bool = Field(description="whether on_hand may be negative (a backlogging store)")


class LinkInfo(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    source: str = Field(alias="from", description="upstream node")
    target: str = Field(alias="to", description="receiving node")
    lead_time: int = Field(description="periods from shipping to arrival = values of in_transit on this link")


class NetworkDescription(BaseModel):
    """What ``GET /v1/inventory/network`` returns: the network a state must describe."""

    scenario: dict[str, Any] = Field(description="all resolved scenario parameters")
    lost_sales: bool = Field(description="stores lose unmet demand (else they backlog it)")
    nodes: list[NodeInfo]
    links: list[LinkInfo]
    example: NetworkInventory = Field(description="an empty network in the request's format")


# --- the layout of one scenario's network ------------------------------------------------------


@dataclass(frozen=True)
class NetworkLayout:
    """Names of a simulator's nodes and links.

    ``names``: node names in node order; ``index``: name -> node index; ``held``: indices of the
    nodes whose on hand is state (warehouses, stores); ``inbound``: receiving node name ->
    {upstream node name: link index}.
    """

    sim: NetworkSim
    names: tuple[str, ...]
    index: dict[str, int]
    held: tuple[int, ...]
    inbound: dict[str, dict[str, int]]

    @classmethod
    def of(cls, sim: NetworkSim) -> NetworkLayout:
        topo = sim.topology
        names = tuple(node.name for node in topo.nodes)
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique to be served, got {names}")
        inbound: dict[str, dict[str, int]] = {}
        for j in range(topo.n_nodes):  # node order, then link order
            links = {names[topo.edges[k].src]: k for k in topo.inbound(j)}
            if len(links) != len(topo.inbound(j)):
                raise ValueError(f"node {names[j]} has two links from one node: links must be unique to be served")
            if links:
                inbound[names[j]] = links
        return cls(sim, names, {name: j for j, name in enumerate(names)}, topo.held_nodes, inbound)

    def lead_time(self, link: int) -> int:
        return self.sim.topology.edges[link].lead_time

    def may_be_negative(self, node: int) -> bool:
        return self.sim.topology.nodes[node].kind == "store" and not self.sim.topology.lost_sales

    def held_names(self) -> list[str]:
        return [self.names[j] for j in self.held]


@lru_cache(maxsize=32)
def network_layout(scenario: NetworkScenario, device: torch.device) -> NetworkLayout:
    """The (cached) simulator and names of ``scenario``'s network on ``device``."""
    return NetworkLayout.of(NetworkSim(scenario, device))


def describe_network(scenario: NetworkScenario, device: torch.device) -> NetworkDescription:
    """Nodes (name, kind, costs), links (from, to, lead time) and an empty example state."""
    return describe_layout(network_layout(scenario, device))


def describe_layout(layout: NetworkLayout) -> NetworkDescription:
    """:func:`describe_network` of a layout."""
    scenario = layout.sim.scenario
    topo = layout.sim.topology
    nodes = [
        NodeInfo(name=node.name, kind=node.kind, holding_cost=node.holding_cost, underage_cost=node.underage_cost,
                 holds_stock=node.can_hold, may_be_negative=layout.may_be_negative(j))
        for j, node in enumerate(topo.nodes)
    ]
    links = [LinkInfo(source=layout.names[e.src], target=layout.names[e.dst], lead_time=e.lead_time)
             for e in topo.edges]
    return NetworkDescription(scenario=scenario.describe(), lost_sales=topo.lost_sales, nodes=nodes, links=links,
                              example=NetworkInventory.model_validate(example(layout)))


# --- named states -> observation ---------------------------------------------------------------


def _problem(loc: Loc, kind: str, msg: str, value: Any = None) -> FieldProblem:
    return FieldProblem(tuple(loc), kind, msg, value)


def network_problems(layout: NetworkLayout, network: NetworkInventory, loc: Loc) -> list[FieldProblem]:
    """Everything wrong with one network's state (``loc`` is where it sits in the list of states,
    e.g. ``(3,)``): unknown or stock-less nodes, missing nodes, negative stock where it cannot be,
    unknown links, missing links, pipelines of the wrong length."""
    problems: list[FieldProblem] = []
    held = set(layout.held)
    for name, value in network.on_hand.items():
        node = layout.index.get(name)
        if node is None:
            problems.append(_problem((*loc, "on_hand", name), "unknown_node",
                                     f"unknown node; nodes holding stock: {', '.join(layout.held_names())}"))
        elif node not in held:
            kind = layout.sim.topology.nodes[node].kind
            problems.append(_problem((*loc, "on_hand", name), "holds_no_stock",
                                     f"'{name}' is a {kind}: it holds no stock, leave it out of on_hand", value))
        elif value < 0 and not layout.may_be_negative(node):
            where = "a lost-sales store" if layout.sim.topology.nodes[node].kind == "store" else "a warehouse"
            problems.append(_problem((*loc, "on_hand", name), "negative_on_hand",
                                     f"on hand at {where} must be >= 0 (only backlogging stores go negative)", value))
    missing = [name for name in layout.held_names() if name not in network.on_hand]
    if missing:
        problems.append(_problem((*loc, "on_hand"), "missing_node",
                                 f"missing node(s) {', '.join(missing)}: every warehouse and store needs its on hand"))
    for target, by_source in network.in_transit.items():
        links = layout.inbound.get(target)
        if links is None:
            known = target in layout.index
            message = (f"'{target}' has no supply link" if known else "unknown node") + (
                f"; nodes with supply links: {', '.join(layout.inbound)}")
            problems.append(_problem((*loc, "in_transit", target), "unknown_link", message))
            continue
        for source, values in by_source.items():
            link = links.get(source)
            if link is None:
                problems.append(_problem((*loc, "in_transit", target, source), "unknown_link",
                                         f"no supply link {source} -> {target}; {target} is supplied by: "
                                         f"{', '.join(links)}"))
                continue
            lead = layout.lead_time(link)
            if len(values) != lead:
                problems.append(_problem((*loc, "in_transit", target, source), "pipeline_length",
                                         f"expected {lead} value(s) (one per period of lead_time={lead} of link "
                                         f"{source} -> {target}, oldest first), got {len(values)}", values))
    absent = [f"{source} -> {target}" for target, links in layout.inbound.items() for source, k in links.items()
              if layout.lead_time(k) > 0 and source not in network.in_transit.get(target, {})]
    if absent:
        problems.append(_problem((*loc, "in_transit"), "missing_link",
                                 f"missing link(s) {', '.join(absent)}: give each link's shipments in transit "
                                 "(lead_time values, oldest first; zeros if none)"))
    return problems


def check_networks(layout: NetworkLayout, networks: Sequence[NetworkInventory]) -> None:
    """A :class:`StateError` naming ``[i]....`` for every problem of the named states (up to
    :data:`MAX_PROBLEMS`)."""
    problems: list[FieldProblem] = []
    for i, network in enumerate(networks):
        problems += network_problems(layout, network, (i,))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise StateError(problems[:MAX_PROBLEMS])


def network_observations(
    layout: NetworkLayout, networks: Sequence[NetworkInventory], policy: Any = None
) -> torch.Tensor:
    """The flat observation ``[B, observation_size]`` of ``B`` named states, via
    :meth:`NetworkSim.observe` (checked with :func:`check_networks`)."""
    check_networks(layout, networks)
    sim = layout.sim
    on_hand = [[0.0] * sim.n_nodes for _ in networks]
    pipeline = [[[0.0] * sim.max_lead for _ in range(sim.n_edges)] for _ in networks]
    for b, network in enumerate(networks):
        for name, value in network.on_hand.items():
            on_hand[b][layout.index[name]] = value
        for target, by_source in network.in_transit.items():
            for source, values in by_source.items():
                pipeline[b][layout.inbound[target][source]][: len(values)] = values
    state = NetworkState(
        torch.tensor(on_hand, dtype=torch.float32, device=sim.device),
        torch.tensor(pipeline, dtype=torch.float32, device=sim.device).reshape(len(networks), sim.n_edges,
                                                                                 sim.max_lead),
    )
    return sim.observe(state)


def network_orders(layout: NetworkLayout, orders: torch.Tensor, networks: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Per-link orders ``[B, n_edges]`` (negative read as 0, as the simulator does) as named
    ``{"orders": {node: {upstream node: units}}}`` per network."""
    if orders.dim() == 1:
        orders = orders.unsqueeze(1)
    if tuple(orders.shape[1:]) != (layout.sim.n_edges,):
        raise PolicyOutputError(f"network policy returned orders {tuple(orders.shape)}, expected [B, "
                                f"{layout.sim.n_edges}]")
    rows = orders.clamp_min(0.0).double().cpu().tolist()
    return [
        {"orders": {target: {source: row[k] for source, k in links.items()}
                    for target, links in layout.inbound.items()}}
        for row in rows
    ]


def example(layout: NetworkLayout) -> dict[str, Any]:
    """An empty network (nothing on hand, nothing in transit) in the request format."""
    return {
        "on_hand": {name: 0.0 for name in layout.held_names()},
        "in_transit": {dst: {src: [0.0] * layout.lead_time(k) for src, k in links_in.items()}
                       for dst, links_in in layout.inbound.items()},
    }


SERVING = ServingSpec(
    state_model=NetworkInventory,
    action_model=NetworkOrders,
    prepare=network_layout,
    check=check_networks,
    observe=network_observations,
    respond=network_orders,
    example=example,
    describe=lambda layout: describe_layout(layout).model_dump(by_alias=True, exclude={"example"}),
)
