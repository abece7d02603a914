"""The dispatch-window tab: one dispatch window of the first policy's simulated day
(:mod:`~decisionlab.domains.ride_hailing.day` keeps the busiest window of each interval), its free
drivers and pending orders, and what every compared policy assigns on that same observation, with its
measured latency.

Pure helpers (no Streamlit): :func:`replay_choices` (the windows worth replaying), :func:`window_replay`
(a :class:`WindowReplay` of polars frames) and :func:`window_figure`; the tab :func:`window_tab`, which
keeps each replay in the comparison's ``cache``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import polars as pl
import torch

from decisionlab.core import Policy, legend_layout, palette, short_label
from decisionlab.domains.ride_hailing.day import comparison_day
from decisionlab.domains.ride_hailing.grid import HexGrid
from decisionlab.domains.ride_hailing.scenario import CityScenario
from decisionlab.domains.ride_hailing.sim import DISPATCH, CityObservation, CitySim
from decisionlab.domains.ride_hailing.view_common import (
    blank_map_figure,
    cell_frame,
    clock,
    clock_range,
    forget_stale,
    map_frame,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core import ViewContext

LATENCY_REPEATS = 3
MIN_REPLAY_ORDERS = 2  # windows offered for replay hold at least this many pending orders (a choice to make)


def replay_choices(pending: Mapping[int, int], least: int = MIN_REPLAY_ORDERS) -> tuple[list[int], int]:
    """The kept windows worth replaying, in time order: those with at least ``least`` pending orders
    (the busiest ones when none has that many), and the busiest of all (the earliest of ties), the
    default: a window with one order or none shows no dispatch decision."""
    if not pending:
        raise ValueError("no window was kept")
    bar = min(least, max(pending.values()))
    choices = sorted(w for w, n in pending.items() if n >= bar)
    return choices, min(choices, key=lambda w: (-pending[w], w))


@dataclass
class WindowReplay:
    """One dispatch window and every policy's assignments on it.

    ``drivers``: the free drivers ``driver, cell, x_km, y_km, idle_min``; ``orders``: the pending
    orders ``slot, origin, dest, x_km, y_km, fare, wait_s``; ``assignments``: ``policy, slot, driver,
    driver_cell, origin, pickup_km, fare, x0, y0, x1, y1`` (driver's position → the order's origin);
    ``summary``: ``policy, assigned, total_fare, mean_pickup_km, latency_ms``."""

    time_s: float
    drivers: pl.DataFrame
    orders: pl.DataFrame
    assignments: pl.DataFrame
    summary: pl.DataFrame


def _spread(ids: np.ndarray, cell_km: float) -> np.ndarray:
    """``[n, 2]`` small offsets (km) by id, so drivers and orders in one cell do not hide each other."""
    angle = ids * 2.399963  # the golden angle: neighbours by id land far apart
    radius = 0.12 * cell_km + 0.18 * cell_km * ((ids * 0.618034) % 1.0)
    return np.stack((radius * np.cos(angle), radius * np.sin(angle)), 1)


def window_replay(obs: CityObservation, policies: Sequence[tuple[str, Policy]], grid: HexGrid,
                  repeats: int = LATENCY_REPEATS) -> WindowReplay:
    """What each policy assigns on ``obs`` (``B = 1``); ``latency_ms`` is the median wall clock of
    ``repeats`` calls of ``policy.act(obs)`` (shown, not asserted: it depends on the machine)."""
    centres = grid.centres_km.double().cpu().numpy()
    intra = grid.intra_km
    free = obs.driver_free[0].cpu().numpy()
    cell = obs.driver_cell[0].cpu().numpy()
    driver_ids = np.flatnonzero(free)
    driver_xy = centres[cell] + _spread(np.arange(cell.size), grid.cell_km)  # [N, 2]
    drivers = pl.DataFrame({"driver": driver_ids, "cell": cell[driver_ids], "x_km": driver_xy[driver_ids, 0],
                            "y_km": driver_xy[driver_ids, 1],
                            "idle_min": obs.driver_idle_s[0].double().cpu().numpy()[driver_ids] / 60.0})
    valid = obs.order_valid[0].cpu().numpy()
    origin, dest = obs.order_origin[0].cpu().numpy(), obs.order_dest[0].cpu().numpy()
    fares = obs.order_fare[0].double().cpu().numpy()
    slots = np.flatnonzero(valid)
    order_xy = centres[origin] - _spread(np.arange(origin.size) + 0.5, grid.cell_km)
    orders = pl.DataFrame({"slot": slots, "origin": origin[slots], "dest": dest[slots], "x_km": order_xy[slots, 0],
                           "y_km": order_xy[slots, 1], "fare": fares[slots],
                           "wait_s": obs.order_wait_s[0].double().cpu().numpy()[slots]})
    parts, summary = [], []
    for label, policy in policies:
        times = []
        for _ in range(max(1, repeats)):
            began = time.perf_counter()
            action = policy.act(obs)
            if action[DISPATCH].is_cuda:  # kernels run asynchronously: the dispatch is done when they are
                torch.cuda.synchronize(action[DISPATCH].device)
            times.append((time.perf_counter() - began) * 1000.0)
        assigned = action[DISPATCH][0].cpu().numpy()
        chosen = np.flatnonzero(assigned >= 0)
        who = assigned[chosen]
        pickup = grid.distance_km(torch.as_tensor(cell[who], device=grid.device),
                                  torch.as_tensor(origin[chosen], device=grid.device)).clamp_min(intra)
        pickup_km = pickup.double().cpu().numpy()
        parts.append(pl.DataFrame({
            "policy": pl.Series([label] * chosen.size, dtype=pl.String), "slot": chosen, "driver": who,
            "driver_cell": cell[who], "origin": origin[chosen], "pickup_km": pickup_km, "fare": fares[chosen],
            "x0": driver_xy[who, 0], "y0": driver_xy[who, 1], "x1": order_xy[chosen, 0], "y1": order_xy[chosen, 1],
        }, schema_overrides={"slot": pl.Int64, "driver": pl.Int64, "driver_cell": pl.Int64, "origin": pl.Int64}))
        summary.append({"policy": label, "assigned": int(chosen.size), "total_fare": float(fares[chosen].sum()),
                        "mean_pickup_km": float(pickup_km.mean()) if chosen.size else float("nan"),
                        "latency_ms": statistics.median(times)})
    return WindowReplay(float(obs.time_s[0]), drivers, orders, pl.concat(parts, how="vertical_relaxed"),
                        pl.DataFrame(summary))


def window_figure(replay: WindowReplay, grid: HexGrid, shown: Sequence[str], domain: str | None = None) -> go.Figure:
    """The grid (grey hexagons), free drivers (dots), pending orders (crosses) and the assignments of
    the ``shown`` policies (driver → order origin, one trace each: click the legend to hide one)."""
    import plotly.graph_objects as go

    frame = map_frame(grid, colorbar=False)
    fig = blank_map_figure(frame, f"Dispatch window at {clock(replay.time_s / 3600.0)}")
    # The legend (one entry per shown policy, then drivers and orders) under the map, which keeps its size.
    below = legend_layout(len(shown) + 2, frame.height - frame.margin["t"] - frame.margin["b"], per_row=2,
                          top=frame.margin["t"], axis_px=frame.margin["b"] + 10)
    fig.update_layout(height=below["height"], margin={**frame.margin, "b": below["margin"]["b"]},
                      legend=below["legend"])
    cells = cell_frame(grid)
    fig.add_trace(go.Scatter(x=cells["x_km"].to_list(), y=cells["y_km"].to_list(), mode="markers",
                             marker={"symbol": "hexagon", "size": frame.hexagon_px, "color": "#eef0f3",
                                     "line": {"width": 1, "color": "white"}},
                             hoverinfo="skip", showlegend=False))
    colors = palette()
    labels = replay.summary["policy"].to_list()
    for k, label in enumerate(shown):
        part = replay.assignments.filter(pl.col("policy") == label)
        # Each policy's lines a little to the side, so equal assignments stay visible side by side.
        shift = (k - (len(shown) - 1) / 2) * 0.05 * grid.cell_km
        xs: list[float | None] = []
        ys: list[float | None] = []
        for x0, y0, x1, y1 in part.select("x0", "y0", "x1", "y1").iter_rows():
            length = math.hypot(x1 - x0, y1 - y0) or 1.0
            dx, dy = -(y1 - y0) / length * shift, (x1 - x0) / length * shift
            xs += [x0 + dx, x1 + dx, None]
            ys += [y0 + dy, y1 + dy, None]
        color = colors[labels.index(label) % len(colors)] if label in labels else "#444"
        name = f"{short_label(label, domain)} ({part.height} assigned)"
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name,
                                 line={"color": color, "width": 2}, opacity=0.8, hoverinfo="skip"))
    drivers, orders = replay.drivers, replay.orders
    fig.add_trace(go.Scatter(
        x=drivers["x_km"].to_list(), y=drivers["y_km"].to_list(), mode="markers", name="free drivers",
        marker={"symbol": "circle", "size": 6, "color": "#333"},
        customdata=np.stack([drivers["driver"].to_numpy(), drivers["idle_min"].to_numpy()], 1) if drivers.height
        else None,
        hovertemplate="driver %{customdata[0]}<br>idle %{customdata[1]:.1f} min<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=orders["x_km"].to_list(), y=orders["y_km"].to_list(), mode="markers", name="pending orders",
        marker={"symbol": "x", "size": 9, "color": "#d62728"},
        customdata=np.stack([orders["slot"].to_numpy(), orders["fare"].to_numpy(), orders["wait_s"].to_numpy()], 1)
        if orders.height else None,
        hovertemplate="order slot %{customdata[0]}<br>fare %{customdata[1]:.2f}<br>waiting %{customdata[2]:.0f} s"
                      "<extra></extra>"))
    return fig


def window_tab(ctx: ViewContext) -> None:
    """One dispatch window of the first policy's day, and what every policy assigns on it."""
    import streamlit as st

    day = comparison_day(ctx)
    if day is None or ctx.result is None:
        st.info("Press **Run** to replay a dispatch window.")
        return
    scenario = cast(CityScenario, ctx.result.scenario)
    # Days kept before the pending counts were recorded count as equally busy.
    pending = day.snapshot_orders or dict.fromkeys(day.snapshots, 0)
    windows, busiest = replay_choices(pending)
    hours_in = {w: w * scenario.window_seconds / 3600.0 for w in windows}

    def when(w: int) -> str:
        return f"{clock(scenario.start_hour + hours_in[w])} (+{hours_in[w]:.2f} h)"

    def describe(w: int) -> str:
        return f"{when(w)}, {pending[w]} orders"

    forget_stale(ctx.key("window_time"), windows)
    if len(windows) > 1:
        least = min(MIN_REPLAY_ORDERS, pending[busiest])
        chosen = st.select_slider("Window", windows, value=busiest, format_func=describe, key=ctx.key("window_time"),
                                  help=f"the busiest window of each interval of the period, those with at least "
                                  f"{least} pending orders; the busiest of all by default")
    else:
        chosen = windows[0]
    which = "the busiest window of the simulated period" if chosen == busiest else "a window"
    cache_key = f"ride_hailing:window:{chosen}"
    if cache_key not in ctx.result.cache:
        grid = cast(CitySim, ctx.setting.make_simulator(scenario, ctx.device)).grid
        ctx.result.cache[cache_key] = (window_replay(day.snapshots[chosen], ctx.result.policies, grid), grid)
    replay, grid = ctx.result.cache[cache_key]
    labels = replay.summary["policy"].to_list()
    forget_stale(ctx.key("window_policies"), labels, many=True)
    shown = st.multiselect("Assignments of", labels, default=labels, key=ctx.key("window_policies"))
    st.caption(f"Replaying {which}, {when(chosen)}, of {day.labels[0]}'s "
               f"{clock_range(scenario.start_hour, scenario.start_hour + scenario.horizon_hours)}: "
               f"{replay.drivers.height} free drivers, {replay.orders.height} pending orders; every policy dispatches "
               "this same observation. Latency: the "
               "median wall clock of a policy's act on it (this machine, shown not asserted).")
    st.plotly_chart(window_figure(replay, grid, shown, ctx.domain.name), width="content", key=ctx.key("window_map"))
    st.dataframe(replay.summary.with_columns(pl.col(pl.Float64).round(3)), hide_index=True,
                 key=ctx.key("window_table"))
