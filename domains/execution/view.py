"""The execution setting's own dashboard tabs (the policy comparison itself comes from the core).

Pure helpers (no Streamlit) compute polars frames: :func:`frontier_frame` (the static efficient frontier,
E vs V over λ) and :func:`paths_frames` (every compared policy on the same paths: shortfall samples,
holdings trajectories, one liquidity path with every policy's child orders). Figure builders turn frames
into plotly figures; :func:`frontier_tab`, :func:`holdings_tab` and :func:`liquidity_tab` draw the tabs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import polars as pl
import torch

from decisionlab.core import Policy, palette
from decisionlab.domains.execution import oracles
from decisionlab.domains.execution.metrics import simulate, summarize
from decisionlab.domains.execution.scenario import ExecutionScenario

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core import ViewContext

MAX_SHOWN_SAMPLES = 4000  # shortfalls per policy kept for the histogram
MAX_PATH_EPISODES = 4000  # episodes simulated for the path views


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def frontier_frame(scenario: ExecutionScenario, points: int = 41, decades: float = 3.0) -> pl.DataFrame:
    """Best static schedules for λ from 0 and log-spaced over ``λ·10^±decades``: risk_aversion, expected,
    variance, std, objective (the objective at each row's own λ)."""
    base = scenario.risk_aversion if scenario.risk_aversion > 0 else 1e-6
    grid = np.concatenate([[0.0], base * np.logspace(-decades, decades, points)])
    return pl.DataFrame(oracles.efficient_frontier(scenario, grid))


def trajectories_frame(label: str, remaining: np.ndarray, shares: float) -> pl.DataFrame:
    """Mean and 10–90% band of the fraction of X left after each step (step 0 = arrival)."""
    left = np.concatenate([np.ones((remaining.shape[0], 1)), remaining / shares], axis=1)
    steps = left.shape[1]
    return pl.DataFrame({
        "policy": [label] * steps,
        "step": list(range(steps)),
        "mean": left.mean(axis=0),
        "p10": np.quantile(left, 0.1, axis=0),
        "p90": np.quantile(left, 0.9, axis=0),
    })


def liquidity_frame(
    scenario: ExecutionScenario, trades: Mapping[str, np.ndarray], impact: np.ndarray, regime: np.ndarray,
    paths: int = 3,
) -> pl.DataFrame:
    """Long frame over the first ``paths`` paths: step (1..N), path, impact η_k/η, regime and the child
    order of every policy as a fraction of X (column ``trade:<policy>``)."""
    n = scenario.horizon_steps
    paths = min(paths, impact.shape[0])
    data: dict[str, Any] = {
        "step": np.tile(np.arange(1, n + 1), paths),
        "path": np.repeat(np.arange(paths), n),
        "impact": impact[:paths].reshape(-1),
        "regime": regime[:paths].reshape(-1),
    }
    for label, values in trades.items():
        data[f"trade:{label}"] = values[:paths].reshape(-1) / scenario.shares
    return pl.DataFrame(data)


@dataclass
class PathFrames:
    """What the path tabs show: per-policy summary points (mean and std of the shortfall), a sample of
    shortfalls, holdings trajectories and the first liquidity paths with every policy's child orders."""

    points: pl.DataFrame  # policy, mean_shortfall, std_shortfall
    shortfalls: pl.DataFrame  # policy, shortfall
    trajectories: pl.DataFrame  # policy, step, mean, p10, p90
    liquidity: pl.DataFrame


def paths_frames(
    scenario: ExecutionScenario, policies: Sequence[tuple[str, Policy]], episodes: int, seed: int,
    device: torch.device | str = "cpu",
) -> PathFrames:
    """Simulate every policy on the same ``min(episodes, MAX_PATH_EPISODES)`` paths of ``seed``."""
    episodes = max(2, min(int(episodes), MAX_PATH_EPISODES))
    points, shown, trajectories, trades = [], [], [], {}
    impact = regime = np.zeros((0, scenario.horizon_steps))
    for label, policy in policies:
        shortfall, traj = simulate(scenario, policy, episodes, seed, device, record=("remaining", "trade", "eta",
                                                                                      "regime"))
        stats = summarize(shortfall, scenario.risk_aversion)
        points.append({"policy": label, "mean_shortfall": stats["mean_shortfall"],
                       "std_shortfall": stats["std_shortfall"]})
        shown.append(pl.DataFrame({"policy": [label] * min(shortfall.size, MAX_SHOWN_SAMPLES),
                                   "shortfall": shortfall[:MAX_SHOWN_SAMPLES]}))
        trajectories.append(trajectories_frame(label, traj.info["remaining"].double().cpu().numpy(), scenario.shares))
        trades[label] = traj.info["trade"][:3].double().cpu().numpy()
        impact = traj.info["eta"][:3].double().cpu().numpy() / scenario.eta
        regime = traj.info["regime"][:3].cpu().numpy()
    return PathFrames(pl.DataFrame(points), pl.concat(shown), pl.concat(trajectories),
                      liquidity_frame(scenario, trades, impact, regime))


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def frontier_figure(frontier: pl.DataFrame, points: pl.DataFrame | None = None,
                    risk_aversion: float | None = None) -> go.Figure:
    """Static efficient frontier (std vs E over λ) with the simulated policies as points."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(
        x=np.sqrt(frontier["variance"].to_numpy()), y=frontier["expected"].to_list(), mode="lines",
        name="static frontier", line={"color": "#888"},
        customdata=frontier["risk_aversion"].to_list(),
        hovertemplate="λ=%{customdata:.3g}<br>√V=%{x:.4g}<br>E=%{y:.4g}",
    ))
    if risk_aversion is not None and frontier.height:
        lam = frontier["risk_aversion"].to_numpy()
        here = frontier[int(np.argmin(np.abs(lam - risk_aversion)))]
        fig.add_trace(go.Scatter(x=np.sqrt(here["variance"].to_numpy()), y=here["expected"].to_list(),
                                 mode="markers", name=f"static optimum at λ={risk_aversion:g}",
                                 marker={"symbol": "star", "size": 14, "color": "#222"}))
    if points is not None:
        colors = palette()
        for i, row in enumerate(points.iter_rows(named=True)):
            fig.add_trace(go.Scatter(x=[row["std_shortfall"]], y=[row["mean_shortfall"]], mode="markers",
                                     name=row["policy"], marker={"size": 11, "color": colors[i % len(colors)]}))
    fig.update_layout(title="Efficient frontier: expected shortfall vs its std (static optimum over λ)",
                      xaxis_title="std of shortfall √V (currency)", yaxis_title="expected shortfall E (currency)",
                      height=420, margin={"t": 50, "b": 40})
    return fig


def trajectory_figure(trajectories: pl.DataFrame) -> go.Figure:
    """Fraction of the order left after each step: mean per policy with a 10–90% band."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = palette()
    for i, label in enumerate(trajectories["policy"].unique(maintain_order=True).to_list()):
        part = trajectories.filter(pl.col("policy") == label)
        color = colors[i % len(colors)]
        steps = part["step"].to_list()
        fig.add_trace(go.Scatter(x=steps + steps[::-1], y=part["p90"].to_list() + part["p10"].to_list()[::-1],
                                 fill="toself", line={"width": 0}, fillcolor=color, opacity=0.15,
                                 showlegend=False, hoverinfo="skip", legendgroup=label))
        fig.add_trace(go.Scatter(x=steps, y=part["mean"].to_list(), name=label, legendgroup=label,
                                 mode="lines+markers", line={"color": color}))
    fig.update_layout(title="Holdings: fraction of the order left (mean, 10–90% band)", xaxis_title="step",
                      yaxis_title="fraction of X left", height=420, margin={"t": 50, "b": 40})
    return fig


def shortfall_figure(shortfalls: pl.DataFrame) -> go.Figure:
    """Overlaid histograms of the implementation shortfall per policy."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = palette()
    for i, label in enumerate(shortfalls["policy"].unique(maintain_order=True).to_list()):
        values = shortfalls.filter(pl.col("policy") == label)["shortfall"].to_list()
        fig.add_trace(go.Histogram(x=values, name=label, opacity=0.5, nbinsx=80,
                                   marker_color=colors[i % len(colors)], histnorm="probability density"))
    fig.update_layout(barmode="overlay", title="Shortfall distribution (same price and liquidity paths)",
                      xaxis_title="implementation shortfall (currency)", yaxis_title="density", height=420,
                      margin={"t": 50, "b": 40})
    return fig


def liquidity_figure(liquidity: pl.DataFrame, path: int = 0) -> go.Figure:
    """One path: latent impact η_k/η (stressed steps marked) above, each policy's child orders below."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    part = liquidity.filter(pl.col("path") == path)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("Latent temporary impact η_k/η (× = stressed regime)",
                                        "Child orders (fraction of X)"))
    steps = part["step"].to_list()
    fig.add_trace(go.Scatter(x=steps, y=part["impact"].to_list(), name="η_k/η", mode="lines+markers",
                             line={"color": "#444", "shape": "hv"}), row=1, col=1)
    stressed = part.filter(pl.col("regime") > 0.5)
    if stressed.height:
        fig.add_trace(go.Scatter(x=stressed["step"].to_list(), y=stressed["impact"].to_list(), mode="markers",
                                 name="stressed", marker={"symbol": "x", "size": 11, "color": "#E45756"}),
                      row=1, col=1)
    colors = palette()
    for i, column in enumerate(c for c in part.columns if c.startswith("trade:")):
        fig.add_trace(go.Bar(x=steps, y=part[column].to_list(), name=column.removeprefix("trade:"),
                             marker_color=colors[i % len(colors)]), row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(barmode="group", height=520, margin={"t": 60, "b": 40}, legend={"orientation": "h", "y": -0.15})
    return fig


# --------------------------------------------------------------------------------------------
# Tabs
# --------------------------------------------------------------------------------------------


def _frames(ctx: ViewContext) -> PathFrames | None:
    """The path frames of the kept comparison (computed once, kept with it)."""
    result = ctx.result
    if result is None:
        return None
    if "paths" not in result.cache:
        scenario = cast(ExecutionScenario, result.scenario)
        result.cache["paths"] = paths_frames(scenario, result.policies, result.request["episodes"],
                                             result.request["seed"], ctx.device)
    return result.cache["paths"]


def frontier_tab(ctx: ViewContext) -> None:
    """The static efficient frontier of the scenario, with the compared policies once run."""
    import streamlit as st

    scenario = cast(ExecutionScenario, ctx.result.scenario if ctx.result is not None else ctx.scenario)
    frames = _frames(ctx)
    st.caption("Best static schedules over the risk aversion λ (closed form); the compared policies as points "
               "(mean and std of their simulated shortfall).")
    st.plotly_chart(frontier_figure(frontier_frame(scenario), frames.points if frames else None,
                                    scenario.risk_aversion), key=ctx.key("frontier"))


def holdings_tab(ctx: ViewContext) -> None:
    """Holdings over the horizon and the shortfall distribution of every compared policy."""
    import streamlit as st

    frames = _frames(ctx)
    if frames is None:
        st.info("Press **Run** to see the holdings and shortfalls of the chosen policies.")
        return
    left, right = st.columns(2)
    with left:
        st.plotly_chart(trajectory_figure(frames.trajectories), key=ctx.key("trajectories"))
    with right:
        st.plotly_chart(shortfall_figure(frames.shortfalls), key=ctx.key("shortfalls"))


def liquidity_tab(ctx: ViewContext) -> None:
    """One liquidity path (latent impact and regime) with every policy's child orders on it."""
    import streamlit as st

    frames = _frames(ctx)
    if frames is None:
        st.info("Press **Run** to see how each policy trades along a liquidity path.")
        return
    st.plotly_chart(liquidity_figure(frames.liquidity), key=ctx.key("liquidity"))
