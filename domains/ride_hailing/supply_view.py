"""The supply-and-demand tab: expected orders against one policy's idle drivers per cell at an hour of
the simulated day (:mod:`~decisionlab.domains.ride_hailing.day`), and orders and drivers over the horizon
on a clock axis.

Pure helpers (no Streamlit): :func:`orders_per_hour`, :func:`supply_frame`, the clock labels of the
simulated period (:func:`hour_label`, :func:`clock_ticks`) and :func:`timeline_figure`; the tab
:func:`supply_demand_tab`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import numpy as np
import polars as pl

from decisionlab.core import legend_below, palette
from decisionlab.domains.ride_hailing.city import City
from decisionlab.domains.ride_hailing.day import DayRecord, comparison_day
from decisionlab.domains.ride_hailing.scenario import CityScenario
from decisionlab.domains.ride_hailing.sim import CitySim
from decisionlab.domains.ride_hailing.view_common import (
    HOURS,
    cell_frame,
    clock,
    clock_range,
    forget_stale,
    hex_map_figure,
    nice_minutes,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core import ViewContext


def hour_label(hour: int, start_hour: float, horizon_hours: float) -> str:
    """The part of clock hour ``hour`` the simulated period ``[start, start + horizon)`` covers, e.g.
    ``07:30–08:00`` for hour 7 of a run from 07:30 (pieces on several days joined by commas, the
    whole hour when every day covers it); the plain hour when the period misses it."""
    end = start_hour + horizon_hours
    pieces = []
    for day in range(math.floor(start_hour / 24), math.floor(end / 24) + 1):
        begin, stop = max(start_hour, 24.0 * day + hour), min(end, 24.0 * day + hour + 1)
        if stop - begin > 1e-9:
            pieces.append((begin, stop))
    if not pieces:
        return clock_range(hour, hour + 1)
    labels = list(dict.fromkeys(clock_range(a, b) for a, b in pieces))
    return clock_range(hour, hour + 1) if clock_range(hour, hour + 1) in labels else ", ".join(labels)


def clock_ticks(start_hour: float, horizon_hours: float, most: int = 8) -> tuple[list[float], list[str]]:
    """Tick positions (hours since midnight of day 0, not wrapped) and their clock labels across the
    simulated period, every 1, 2, 5, ... minutes (at most ``most`` ticks, the period's ends included
    when they are not on the spacing)."""
    step = nice_minutes(horizon_hours * 60.0, most) / 60.0
    first = math.ceil(start_hour / step - 1e-9) * step
    count = int(math.floor((start_hour + horizon_hours - first) / step + 1e-9)) + 1
    values = [first + k * step for k in range(max(0, count))]
    return values, [clock(v) for v in values]


def orders_per_hour(city: City) -> np.ndarray:
    """``[24]`` expected orders in each hour of the day (``rate_per_minute`` is per second)."""
    rate = city.rate_per_minute.double().cpu().numpy()
    return rate.reshape(HOURS, -1).sum(1) * 60.0


def supply_frame(city: City, day: DayRecord, label: str, hour: int) -> pl.DataFrame:
    """One row per cell at ``hour``: ``cell, x_km, y_km, expected_orders`` (origin weight × the hour's
    expected orders) and ``mean_idle`` (``label``'s mean idle drivers there over the hour's windows)."""
    weights = city.origin_weight[hour].double().cpu().numpy()
    idle = day.idle.filter((pl.col("policy") == label) & (pl.col("hour") == hour)).sort("cell")
    return cell_frame(city.grid).with_columns(
        pl.Series("expected_orders", weights * orders_per_hour(city)[hour]),
        pl.Series("mean_idle", idle["mean_idle"].to_numpy() if idle.height else np.zeros(city.grid.n_cells)),
    )


def timeline_figure(timeline: pl.DataFrame, label: str, start_hour: float, expected: np.ndarray | None = None,
                    horizon_hours: float | None = None) -> go.Figure:
    """Orders arriving per minute (right axis) against ``label``'s drivers online and idle (left), on
    a clock axis spanning the simulated period (from ``start_hour``, ``horizon_hours`` long)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    part = timeline.filter(pl.col("policy") == label)
    clock = (start_hour + part["minutes"] / 60.0).to_list()  # not wrapped: a period may cross midnight
    span = horizon_hours if horizon_hours is not None else float(part["minutes"].max() or 0.0) / 60.0
    colors = palette()
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=clock, y=part["online"].to_list(), name="drivers online", line={"color": colors[0]}))
    fig.add_trace(go.Scatter(x=clock, y=part["idle"].to_list(), name="drivers idle", line={"color": colors[2]}))
    fig.add_trace(go.Scatter(x=clock, y=part["arrived_per_min"].to_list(), name="orders arriving / min",
                             line={"color": colors[1]}), secondary_y=True)
    if expected is not None:
        fig.add_trace(go.Scatter(x=clock, y=list(expected), name="expected orders / min",
                                 line={"color": colors[1], "dash": "dot"}), secondary_y=True)
    ticks, texts = clock_ticks(start_hour, span)
    fig.update_xaxes(title_text="time of day", tickvals=ticks, ticktext=texts, range=[start_hour, start_hour + span])
    fig.update_yaxes(title_text="drivers", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="orders per minute", secondary_y=True, rangemode="tozero", showgrid=False,
                     tickmode="auto")
    fig.update_layout(title=f"Demand and supply over the horizon ({label})")
    return legend_below(fig, plot_height=280, per_row=4)


def supply_demand_tab(ctx: ViewContext) -> None:
    """Expected orders against idle drivers per cell at an hour; orders and drivers over the horizon."""
    import streamlit as st

    day = comparison_day(ctx)
    if day is None or ctx.result is None:
        st.info("Press **Run** to see where the orders are and where the idle drivers wait.")
        return
    scenario = cast(CityScenario, ctx.result.scenario)
    city = cast(CitySim, ctx.setting.make_simulator(scenario, ctx.device)).city
    forget_stale(ctx.key("supply_policy"), day.labels)
    forget_stale(ctx.key("supply_hour"), day.hours)

    def span(h: int) -> str:
        return hour_label(h, scenario.start_hour, scenario.horizon_hours)

    label = st.selectbox("Drivers of", day.labels, key=ctx.key("supply_policy"))
    if len(day.hours) > 1:
        hour = st.select_slider("Hour (the part of it simulated)", day.hours, format_func=span,
                                key=ctx.key("supply_hour"))
    else:
        hour = day.hours[0]
    cells = supply_frame(city, day, label, hour)
    st.caption(f"One simulated horizon of seed {ctx.result.request['seed']}, "
               f"{clock_range(scenario.start_hour, scenario.start_hour + scenario.horizon_hours)} "
               f"({day.seconds:.1f} s for all policies, "
               "on the same orders). Expected orders: the hour's origin weights × its expected orders"
               + (" (the generated demand model, not the replayed records)" if scenario.trips_path else "")
               + "; idle drivers: the mean over the hour's windows.")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(hex_map_figure(cells, "expected_orders", city.grid, f"Expected orders, {span(hour)}",
                                       "orders / h", "YlOrRd", longest_px=330), width="content",
                        key=ctx.key("demand_map"))
    with right:
        st.plotly_chart(hex_map_figure(cells, "mean_idle", city.grid, f"Idle drivers ({label}), {span(hour)}",
                                       "drivers", "Blues", longest_px=330), width="content",
                        key=ctx.key("idle_map"))
    part = day.timeline.filter(pl.col("policy") == label)
    rate = city.rate_per_minute.double().cpu().numpy() * 60.0
    minute_of_day = ((scenario.start_seconds / 60.0 + part["minutes"].to_numpy()) % 1440).astype(int)
    st.plotly_chart(timeline_figure(day.timeline, label, scenario.start_hour, rate[minute_of_day],
                                    scenario.horizon_hours),
                    key=ctx.key("supply_timeline"))
