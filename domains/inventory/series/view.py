"""``real_series`` view of the inventory page: for one store-item, its demand, the quantile
forecast and each policy's orders and stock over the held-out periods.

:func:`forecast_vs_orders` replays the series exactly as the held-out evaluation does (from
``warmup_periods`` before the split, empty store, to the end of the data) and keeps the held-out
periods; :func:`series_figure` draws it; :func:`series_tab` draws the tab.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import torch

from decisionlab.core import Policy, palette
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core import ViewContext

FORECAST_LEVELS = (0.1, 0.5, 0.9)


def series_labels(scenario: RealSeriesScenario) -> list[str]:
    """``"item / store"`` of every series, in data order (the index :func:`forecast_vs_orders` takes)."""
    from decisionlab.domains.inventory.series.scenario import series_data

    keys = series_data(scenario).keys
    return [f"{item} / {store}" for item, store in keys.select("item_id", "store_id").iter_rows()]


@torch.no_grad()
def forecast_vs_orders(
    scenario: RealSeriesScenario,
    policies: Sequence[tuple[str, Policy]],
    series: int,
    *,
    device: torch.device | str = "cpu",
) -> pl.DataFrame:
    """One row per held-out period of series ``series``.

    Columns: period (index in the data), date, demand, promo, forecast_p10 / forecast_p50 /
    forecast_p90 (the seasonal empirical forecast of that period's demand, from the window the
    policies see), then per policy ``order:<label>`` (the order placed in the period) and
    ``on_hand:<label>`` (stock left after demand).
    """
    from decisionlab.core import rollout
    from decisionlab.domains.inventory.series.forecast import SeasonalEmpiricalForecaster
    from decisionlab.domains.inventory.series.sim import SeriesSim, heldout_span

    sim = SeriesSim(scenario, device, split="all")
    if not 0 <= series < sim.data.n_series:
        raise IndexError(f"series {series} outside 0..{sim.data.n_series - 1}")
    start, periods, warmup = heldout_span(sim)
    held = np.arange(start + warmup, start + periods)
    rows = torch.full((held.size,), series, dtype=torch.long)
    obs = sim.observe(sim.start_state(rows, torch.as_tensor(held)))
    forecaster = SeasonalEmpiricalForecaster.for_scenario(scenario, sim.device)
    today = forecaster.period_values(obs)[:, 0, :].sort(dim=1).values  # [periods, k] this period's demand
    data: dict[str, object] = {
        "period": held,
        "date": [sim.data.dates[t] for t in held],
        "demand": sim.data.demand[series, torch.as_tensor(held)].double().numpy(),
        "promo": sim.data.promo[series, torch.as_tensor(held)].numpy().astype(bool),
    }
    for level in FORECAST_LEVELS:
        quantile = forecaster.quantile_of_sorted(today, level)
        data[f"forecast_p{round(100 * level):02d}"] = quantile.double().cpu().numpy()
    one = torch.tensor([series], device=sim.device)
    demand = sim.windows(one, torch.tensor([start], device=sim.device), periods)
    for label, policy in policies:
        state = sim.start_state(one, torch.tensor([start], device=sim.device))
        traj = rollout(sim, policy, demand, state, record=("order", "on_hand"))
        data[f"order:{label}"] = traj.info["order"][0, warmup:].double().cpu().numpy()
        data[f"on_hand:{label}"] = traj.info["on_hand"][0, warmup:].double().cpu().numpy()
    return pl.DataFrame(data)


def series_figure(frame: pl.DataFrame, title: str = "") -> go.Figure:
    """Three panels over the held-out dates: demand with the forecast (median, 10–90% band,
    promotions marked), each policy's orders, each policy's stock left after demand."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("Demand and its forecast (10–90% band, median)", "Orders placed",
                                        "On hand at the end of the period"))
    dates = frame["date"].to_list()
    fig.add_trace(go.Scatter(x=dates + dates[::-1],
                             y=frame["forecast_p90"].to_list() + frame["forecast_p10"].to_list()[::-1],
                             fill="toself", fillcolor="rgba(76,120,168,0.18)", line={"width": 0},
                             name="forecast 10–90%", hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Scatter(x=dates, y=frame["forecast_p50"].to_list(), name="forecast median",
                             line={"color": "#4C78A8", "dash": "dot"}), row=1, col=1)
    fig.add_trace(go.Scatter(x=dates, y=frame["demand"].to_list(), name="demand", mode="lines",
                             line={"color": "#333", "width": 1.5}), row=1, col=1)
    promo = frame.filter(pl.col("promo"))
    if promo.height:
        fig.add_trace(go.Scatter(x=promo["date"].to_list(), y=promo["demand"].to_list(), mode="markers",
                                 name="promotion", marker={"symbol": "star", "size": 8, "color": "#E45756"}),
                      row=1, col=1)
    colors = palette()
    labels = [c.removeprefix("order:") for c in frame.columns if c.startswith("order:")]
    for i, label in enumerate(labels):
        color = colors[i % len(colors)]
        fig.add_trace(go.Scatter(x=dates, y=frame[f"order:{label}"].to_list(), name=label, legendgroup=label,
                                 line={"color": color, "shape": "hv"}), row=2, col=1)
        fig.add_trace(go.Scatter(x=dates, y=frame[f"on_hand:{label}"].to_list(), name=label, legendgroup=label,
                                 showlegend=False, line={"color": color, "shape": "hv"}), row=3, col=1)
    for row in (1, 2, 3):
        fig.update_yaxes(title_text="units", row=row, col=1)
    fig.update_layout(title=title or None, height=760, margin={"t": 70, "b": 40},
                      legend={"orientation": "h", "y": -0.08})
    return fig


def series_tab(ctx: ViewContext) -> None:
    """One chosen store-item over the held-out periods: demand, forecast and, after Run, each
    policy's orders and stock."""
    import streamlit as st

    usable = ctx.result if ctx.result is not None and ctx.result.scenario == ctx.scenario else None
    source = usable.scenario if usable is not None else ctx.scenario
    labels = series_labels(source)
    if st.session_state.get(ctx.key("series")) not in range(len(labels)):
        st.session_state.pop(ctx.key("series"), None)
    index = st.selectbox("Series (item / store)", range(len(labels)), format_func=lambda i: labels[i],
                         key=ctx.key("series"))
    if usable is None:
        st.caption("Press **Run** (with these settings) to add each policy's orders and stock.")
        frame = forecast_vs_orders(source, [], index)
    else:
        frames = usable.cache.setdefault("series_frames", {})
        if index not in frames:
            frames[index] = forecast_vs_orders(source, usable.policies, index)
        frame = frames[index]
    st.caption(
        f"Held-out periods of {labels[index]}: demand, the seasonal empirical forecast of each period's demand "
        f"(same weekday over the last {source.forecast_seasons} seasons of the window, promotion-adjusted) and, "
        "per policy, the order placed and the stock left, replayed as the held-out evaluation does."
    )
    st.plotly_chart(series_figure(frame), key=ctx.key("series_chart"))
