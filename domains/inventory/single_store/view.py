"""Single-store (``lost_sales``) view of the inventory page: stock and orders over one shared
demand path, and each policy's order as a function of the inventory position.

Pure helpers return polars frames (:func:`simulate_paths`, :func:`order_vs_position`); figure builders
(:func:`trajectory_figure`, :func:`order_curve_figure`) turn them into plotly figures;
:func:`paths_tab` draws the tab.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import polars as pl
import torch

from decisionlab.core import Policy, palette
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core import ViewContext

TRAJECTORY_PERIODS = 60
TRAJECTORY_WARMUP = 50


def simulate_paths(
    scenario: LostSalesScenario,
    policies: Sequence[tuple[str, Policy]],
    *,
    periods: int = TRAJECTORY_PERIODS,
    warmup: int = TRAJECTORY_WARMUP,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> pl.DataFrame:
    """Each policy on one shared demand path: ``warmup`` periods from an empty store (not shown),
    then ``periods`` periods recorded.

    Columns: policy, period (1..periods), on_hand (stock left after demand), order, demand.
    """
    from decisionlab.core import make_generator, rollout
    from decisionlab.domains.inventory.single_store.sim import SingleStoreSim

    sim = SingleStoreSim(scenario, device)
    demand = sim.sample_exogenous(1, warmup + periods, make_generator(seed, sim.device))
    frames = []
    for label, policy in policies:
        traj = rollout(sim, policy, demand, record=("on_hand", "order", "demand"))
        shown = {name: values[0, warmup:].detach().float().cpu().numpy() for name, values in traj.info.items()}
        frames.append(
            pl.DataFrame(
                {
                    "policy": [label] * periods,
                    "period": list(range(1, periods + 1)),
                    "on_hand": shown["on_hand"],
                    "order": shown["order"],
                    "demand": shown["demand"],
                }
            )
        )
    if frames:
        return pl.concat(frames)
    return pl.DataFrame(schema={"policy": pl.String, "period": pl.Int64, "on_hand": pl.Float32, "order": pl.Float32,
                                "demand": pl.Float32})


def on_hand_grid(scenario: LostSalesScenario, max_points: int = 121) -> torch.Tensor:
    """On-hand levels from 0 to 3 × mean demand: whole units for Poisson demand (when that gives
    at most ``max_points`` points), otherwise ``max_points`` evenly spaced values."""
    top = 3.0 * scenario.demand_mean
    if scenario.demand_distribution == "poisson" and int(top) + 1 <= max_points:
        return torch.arange(0.0, float(int(top)) + 1.0)
    return torch.linspace(0.0, top, max_points)


def order_vs_position(
    scenario: LostSalesScenario,
    policies: Sequence[tuple[str, Policy]],
    *,
    device: torch.device | str = "cpu",
    max_points: int = 121,
) -> pl.DataFrame:
    """Each policy's order on a grid of states: on hand varied over :func:`on_hand_grid`, every
    pipeline slot holding one period's mean demand.

    Columns: policy, on_hand, inventory_position (on hand + on order), order (clipped at 0 as the
    simulator does).
    """
    on_hand = on_hand_grid(scenario, max_points)
    pipeline = torch.full((on_hand.numel(), scenario.lead_time), float(scenario.demand_mean))
    obs = torch.cat([on_hand[:, None], pipeline], dim=1).to(device)
    position = obs.sum(dim=1).cpu().numpy()
    frames = []
    with torch.no_grad():
        for label, policy in policies:
            orders = policy.act(obs).reshape(-1).clamp_min(0.0).detach().float().cpu().numpy()
            frames.append(
                pl.DataFrame(
                    {
                        "policy": [label] * on_hand.numel(),
                        "on_hand": on_hand.numpy(),
                        "inventory_position": position,
                        "order": orders,
                    }
                )
            )
    if not frames:
        return pl.DataFrame(
            schema={"policy": pl.String, "on_hand": pl.Float32, "inventory_position": pl.Float32,
                    "order": pl.Float32}
        )
    return pl.concat(frames)


def trajectory_figure(paths: pl.DataFrame) -> go.Figure:
    """On-hand stock (top) and orders (bottom) over time per policy, demand drawn in grey."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("On hand at the end of the period", "Orders placed"))
    colors = palette()
    for i, label in enumerate(paths["policy"].unique(maintain_order=True).to_list()):
        part = paths.filter(pl.col("policy") == label)
        color = colors[i % len(colors)]
        period = part["period"].to_list()
        fig.add_trace(go.Scatter(x=period, y=part["on_hand"].to_list(), name=label, legendgroup=label,
                                 line={"color": color, "shape": "hv"}), row=1, col=1)
        fig.add_trace(go.Scatter(x=period, y=part["order"].to_list(), name=label, legendgroup=label,
                                 showlegend=False, line={"color": color, "shape": "hv"}), row=2, col=1)
    if paths.height:
        first = paths.filter(pl.col("policy") == paths["policy"][0])
        fig.add_trace(go.Bar(x=first["period"].to_list(), y=first["demand"].to_list(), name="demand",
                             marker_color="rgba(128,128,128,0.35)"), row=2, col=1)
    fig.update_yaxes(title_text="units", row=1, col=1)
    fig.update_yaxes(title_text="units", row=2, col=1)
    fig.update_xaxes(title_text="period", row=2, col=1)
    fig.update_layout(height=560, margin={"t": 60, "b": 40}, legend={"orientation": "h", "y": -0.12})
    return fig


def order_curve_figure(orders: pl.DataFrame, lead_time: int, demand_mean: float) -> go.Figure:
    """Order quantity against inventory position, one line per policy."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = palette()
    for i, label in enumerate(orders["policy"].unique(maintain_order=True).to_list()):
        part = orders.filter(pl.col("policy") == label)
        fig.add_trace(go.Scatter(x=part["inventory_position"].to_list(), y=part["order"].to_list(), name=label,
                                 mode="lines+markers", marker={"size": 4},
                                 line={"color": colors[i % len(colors)]}))
    fig.update_layout(
        title=f"Order vs inventory position (each of the {lead_time} pipeline slots = {demand_mean:g})",
        xaxis_title="inventory position (on hand + on order)", yaxis_title="order quantity",
        height=420, margin={"t": 50, "b": 40},
    )
    return fig


def paths_tab(ctx: ViewContext) -> None:
    """Stock and orders over one shared demand path, and each policy's order against the inventory
    position (after Run)."""
    import streamlit as st

    result = ctx.result
    if result is None:
        st.info("Press **Run** to see stock and orders over time.")
        return
    scenario = cast(LostSalesScenario, result.scenario)
    if "paths" not in result.cache:
        seed = result.request["seed"]
        result.cache["paths"] = simulate_paths(scenario, result.policies, seed=seed, device=ctx.device)
        result.cache["orders"] = order_vs_position(scenario, result.policies, device=ctx.device)
    st.subheader("Inventory over time")
    st.caption(f"All policies on one shared demand path, {TRAJECTORY_PERIODS} periods after a "
               f"{TRAJECTORY_WARMUP}-period warm-up from an empty store.")
    st.plotly_chart(trajectory_figure(result.cache["paths"]), key=ctx.key("trajectory_chart"))
    st.subheader("Order-up-to behaviour")
    st.caption(
        "Order placed as a function of the inventory position, with on hand varied from 0 to 3× mean "
        "demand and every pipeline slot holding the mean demand. A base-stock policy is the line "
        "max(S − x, 0); the optimal lost-sales policy orders less steeply (Zipkin 2008)."
    )
    st.plotly_chart(order_curve_figure(result.cache["orders"], scenario.lead_time, scenario.demand_mean),
                    key=ctx.key("order_chart"))
