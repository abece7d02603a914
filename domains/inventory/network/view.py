"""Network view of the inventory page: the network drawn as a graph and the stock at every node.

Pure helpers return polars frames (:func:`node_layout`, :func:`edge_frame`, :func:`node_inventories`,
:func:`node_summary`); figure builders (:func:`network_figure`, :func:`inventory_figure`) turn them
into plotly figures. Nodes are laid out left to right by echelon depth (the longest chain of supply
links from a supplier), so suppliers sit left of warehouses/centres, which sit left of stores.

The page's default network policies are the domain's search-free baselines (:data:`QUICK_POLICIES`:
order-up-to levels at the newsvendor-style point the level searches start from), so it answers in
a second before any search is run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
import polars as pl
import torch

from decisionlab.core import Policy, palette
from decisionlab.domains.inventory.network.scenario import NetworkScenario
from decisionlab.domains.inventory.network.topology import Topology

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core import ViewContext
    from decisionlab.domains.inventory.network.policies import LevelPolicy

INVENTORY_PERIODS = 80
INVENTORY_WARMUP = 100
MAX_NODE_LABELS = 24  # above this many nodes the names show on hover only
KIND_SYMBOLS = {"supplier": "square", "warehouse": "diamond", "centre": "triangle-right", "store": "circle"}

QUICK_POLICIES = ("newsvendor_echelon", "newsvendor_local")  # search-free: the network page's defaults


def quick_policy(name: str, scenario: NetworkScenario, device: torch.device | str = "cpu") -> LevelPolicy:
    """The search-free network baseline ``name`` (one of :data:`QUICK_POLICIES`) for ``scenario``."""
    from decisionlab.domains.inventory.network.policies import newsvendor_levels

    if name not in QUICK_POLICIES:
        raise ValueError(f"{name!r} is not a search-free network baseline")
    return newsvendor_levels(scenario, name.removeprefix("newsvendor_"), device)


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def echelon_depth(topology: Topology) -> list[int]:
    """Per node, the largest number of supply links on a path from a supplier (suppliers: 0)."""
    depth = [0] * topology.n_nodes
    changed = True
    while changed:  # the graph is acyclic: at most n_nodes sweeps
        changed = False
        for edge in topology.edges:
            if depth[edge.dst] < depth[edge.src] + 1:
                depth[edge.dst] = depth[edge.src] + 1
                changed = True
    return depth


def node_layout(topology: Topology) -> pl.DataFrame:
    """One row per node: node (index), name, kind, depth, x (= depth), y (nodes of one depth spread
    evenly top to bottom around 0, in node order), holding_cost, underage_cost."""
    depth = echelon_depth(topology)
    y = [0.0] * topology.n_nodes
    for level in set(depth):
        members = [j for j in range(topology.n_nodes) if depth[j] == level]
        for rank, j in enumerate(members):
            y[j] = (len(members) - 1) / 2.0 - rank
    nodes = topology.nodes
    return pl.DataFrame(
        {
            "node": list(range(topology.n_nodes)),
            "name": [n.name for n in nodes],
            "kind": [n.kind for n in nodes],
            "depth": depth,
            "x": [float(d) for d in depth],
            "y": y,
            "holding_cost": [float(n.holding_cost) for n in nodes],
            "underage_cost": [float(n.underage_cost) for n in nodes],
        }
    )


def edge_frame(topology: Topology, layout: pl.DataFrame) -> pl.DataFrame:
    """One row per supply link: edge, src, dst, lead_time and the end points x0, y0 → x1, y1."""
    x, y = layout["x"].to_list(), layout["y"].to_list()
    edges = topology.edges
    return pl.DataFrame(
        {
            "edge": list(range(len(edges))),
            "src": [e.src for e in edges],
            "dst": [e.dst for e in edges],
            "lead_time": [e.lead_time for e in edges],
            "x0": [x[e.src] for e in edges],
            "y0": [y[e.src] for e in edges],
            "x1": [x[e.dst] for e in edges],
            "y1": [y[e.dst] for e in edges],
        }
    )


@torch.no_grad()
def node_inventories(
    scenario: NetworkScenario,
    policies: Sequence[tuple[str, Policy]],
    *,
    periods: int = INVENTORY_PERIODS,
    warmup: int = INVENTORY_WARMUP,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> pl.DataFrame:
    """Every policy on one shared demand path from an empty network: ``warmup`` periods not kept,
    then ``periods`` periods recorded.

    Long frame, one row per (policy, period, node): policy, period (1..periods), node, name, kind,
    on_hand (stock at the end of the period, ≥ 0) and backlog (units owed at a backlogging store).
    """
    from decisionlab.core import make_generator, rollout
    from decisionlab.domains.inventory.network.sim import NetworkSim

    sim = NetworkSim(scenario, device)
    demand = sim.sample_exogenous(1, warmup + periods, make_generator(seed, sim.device))
    nodes = sim.topology.nodes
    n = sim.n_nodes
    frames = []
    for label, policy in policies:
        traj = rollout(sim, policy, demand, record=("on_hand",))
        stock = traj.info["on_hand"][0, warmup:].double().cpu().numpy()  # [periods, n_nodes], net stock
        frames.append(
            pl.DataFrame(
                {
                    "policy": [label] * (periods * n),
                    "period": np.repeat(np.arange(1, periods + 1), n),
                    "node": np.tile(np.arange(n), periods),
                    "name": [node.name for node in nodes] * periods,
                    "kind": [node.kind for node in nodes] * periods,
                    "on_hand": np.maximum(stock, 0.0).reshape(-1),
                    "backlog": np.maximum(-stock, 0.0).reshape(-1),
                }
            )
        )
    if not frames:
        return pl.DataFrame(schema={"policy": pl.String, "period": pl.Int64, "node": pl.Int64, "name": pl.String,
                                    "kind": pl.String, "on_hand": pl.Float64, "backlog": pl.Float64})
    return pl.concat(frames)


def node_summary(inventories: pl.DataFrame, policy: str, period: int | None = None) -> pl.DataFrame:
    """Per node (in node order) for ``policy``: on_hand and backlog averaged over the path, or at
    ``period`` when given."""
    part = inventories.filter(pl.col("policy") == policy)
    if period is not None:
        part = part.filter(pl.col("period") == period)
    return (
        part.group_by("node", maintain_order=True)
        .agg(pl.col("name").first(), pl.col("kind").first(), pl.col("on_hand").mean(), pl.col("backlog").mean())
        .sort("node")
    )


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def network_figure(
    layout: pl.DataFrame, edges: pl.DataFrame, summary: pl.DataFrame | None = None, title: str | None = None
) -> go.Figure:
    """The network: links as grey lines labelled with their lead time, nodes placed by
    :func:`node_layout` with a symbol per kind; with ``summary`` (:func:`node_summary`) the colour
    and size of warehouses and stores follow their on-hand stock."""
    import plotly.graph_objects as go

    fig = go.Figure()
    xs: list[float | None] = []
    ys: list[float | None] = []
    for row in edges.iter_rows(named=True):
        xs += [row["x0"], row["x1"], None]
        ys += [row["y0"], row["y1"], None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#999", "width": 1.5}, hoverinfo="skip",
                             showlegend=False, name="links"))
    fig.add_trace(go.Scatter(
        x=[(r["x0"] + r["x1"]) / 2 for r in edges.iter_rows(named=True)],
        y=[(r["y0"] + r["y1"]) / 2 for r in edges.iter_rows(named=True)],
        mode="text", text=[f"L={lead}" for lead in edges["lead_time"]], textfont={"size": 11, "color": "#555"},
        hoverinfo="skip", showlegend=False, name="lead times",
    ))
    stock = np.zeros(layout.height)
    backlog = np.zeros(layout.height)
    if summary is not None and summary.height:
        stock[summary["node"].to_numpy()] = summary["on_hand"].to_numpy()
        backlog[summary["node"].to_numpy()] = summary["backlog"].to_numpy()
    holds = np.isin(layout["kind"].to_numpy(), ["warehouse", "store"])
    top = float(stock[holds].max()) if holds.any() and stock[holds].max() > 0 else 1.0
    size = np.where(holds, 14.0 + 30.0 * stock / top, 16.0)
    show_names = layout.height <= MAX_NODE_LABELS
    hover = [
        f"{r['name']} ({r['kind']})<br>h={r['holding_cost']:g}"
        + (f", p={r['underage_cost']:g}" if r["kind"] == "store" else "")
        + (f"<br>on hand {stock[i]:.2f}" + (f", backlog {backlog[i]:.2f}" if backlog[i] > 0 else "")
           if summary is not None else "")
        for i, r in enumerate(layout.iter_rows(named=True))
    ]
    marker: dict[str, object] = {"size": size.tolist(), "symbol": [KIND_SYMBOLS[k] for k in layout["kind"]],
                                 "line": {"width": 1, "color": "#333"}}
    if summary is not None:
        marker.update(color=stock.tolist(), colorscale="Viridis", cmin=0.0, cmax=top, showscale=True,
                      colorbar={"title": {"text": "on hand"}})
    else:
        palette = {"supplier": "#888", "warehouse": "#4C78A8", "centre": "#F58518", "store": "#54A24B"}
        marker.update(color=[palette[k] for k in layout["kind"]])
    fig.add_trace(go.Scatter(
        x=layout["x"].to_list(), y=layout["y"].to_list(), mode="markers+text" if show_names else "markers",
        text=layout["name"].to_list() if show_names else None, textposition="top center", hovertext=hover,
        hoverinfo="text", marker=marker, showlegend=False, name="nodes",
    ))
    depth = int(layout["depth"].max()) if layout.height else 0
    fig.update_xaxes(visible=False, range=[-0.5, depth + 0.5])
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title or "Network (left → right: supplier to stores; links labelled with lead time)",
                      height=min(900, max(320, 60 + 40 * int(layout["depth"].value_counts()["count"].max()))),
                      margin={"t": 50, "b": 20, "l": 20, "r": 20}, plot_bgcolor="white")
    return fig


def inventory_figure(inventories: pl.DataFrame, policy: str) -> go.Figure:
    """On-hand stock over time at every warehouse and store for ``policy`` (backlog drawn below 0)."""
    import plotly.graph_objects as go

    part = inventories.filter((pl.col("policy") == policy) & pl.col("kind").is_in(["warehouse", "store"]))
    fig = go.Figure()
    colors = palette()
    for i, name in enumerate(part["name"].unique(maintain_order=True).to_list()):
        node = part.filter(pl.col("name") == name)
        fig.add_trace(go.Scatter(x=node["period"].to_list(), y=(node["on_hand"] - node["backlog"]).to_list(),
                                 name=name, mode="lines", line={"color": colors[i % len(colors)], "shape": "hv"}))
    fig.update_layout(title=f"{policy}: stock at each node over one demand path (below 0 = backlog)",
                      xaxis_title="period", yaxis_title="units", height=420, margin={"t": 50, "b": 40})
    return fig


# --------------------------------------------------------------------------------------------
# The tab
# --------------------------------------------------------------------------------------------


def network_tab(ctx: ViewContext) -> None:
    """The network as a graph; after Run, coloured by the stock each policy keeps at every node."""
    import streamlit as st

    result = ctx.result
    if result is None:
        scenario = cast(NetworkScenario, ctx.scenario)
        topology = scenario.topology()
        st.caption("Press **Run** to colour the nodes by the stock each policy keeps there.")
        layout = node_layout(topology)
        st.plotly_chart(network_figure(layout, edge_frame(topology, layout)), key=ctx.key("network_chart"))
        return
    scenario = cast(NetworkScenario, result.scenario)
    if "inventories" not in result.cache:
        result.cache["inventories"] = node_inventories(scenario, result.policies, seed=result.request["seed"],
                                                       device=ctx.device)
    inventories = result.cache["inventories"]
    topology = scenario.topology()
    layout = node_layout(topology)
    labels = [label for label, _ in result.policies]
    if st.session_state.get(ctx.key("graph_policy")) not in labels:
        st.session_state.pop(ctx.key("graph_policy"), None)
    left, right = st.columns([2, 3])
    policy = left.selectbox("Policy drawn", labels, key=ctx.key("graph_policy"))
    period = right.slider("Period (0 = average over the path)", 0, INVENTORY_PERIODS, 0, key=ctx.key("graph_period"))
    summary = node_summary(inventories, policy, period or None)
    when = f"period {period}" if period else f"average over {INVENTORY_PERIODS} periods"
    st.caption(f"One demand path shared by every policy, after a {INVENTORY_WARMUP}-period warm-up from an empty "
               "network; node size and colour = stock on hand.")
    st.plotly_chart(network_figure(layout, edge_frame(topology, layout), summary,
                                   title=f"{policy}: stock on hand ({when})"), key=ctx.key("network_chart"))
    st.plotly_chart(inventory_figure(inventories, policy), key=ctx.key("inventory_chart"))
