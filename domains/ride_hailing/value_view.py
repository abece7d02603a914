"""The value-map tab: a learned ``V(cell, hour)`` (of a compared value-based policy, else of a
registered ``ride_value`` policy) on the grid at one hour, and its spread over the cells through the day.

Pure helpers (no Streamlit): :func:`value_frame` / :func:`value_by_hour` (polars frames),
:func:`grid_of`, :func:`load_value`, :func:`registered_values`, :func:`value_policies`; the figures
:func:`value_map_figure` and :func:`value_day_figure`; the tab :func:`value_tab`, which keeps the
frames it computes in the comparison's ``cache``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import polars as pl
import torch

from decisionlab.core import Policy, palette, value_table
from decisionlab.domains.ride_hailing.grid import HexGrid
from decisionlab.domains.ride_hailing.scenario import SECONDS_PER_DAY, CityScenario
from decisionlab.domains.ride_hailing.view_common import (
    HOURS,
    cell_frame,
    clock_range,
    forget_stale,
    hex_map_figure,
    hour_of_day,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from torch import nn

    from decisionlab.core import PolicyRegistry, ViewContext

VALUE_KIND = "ride_value"
TRAIN_HINT = "`decisionlab train ride_hailing --algo v1d3`"


def grid_of(n_cells: int, scenario: CityScenario | None = None, described: dict[str, Any] | None = None) -> HexGrid:
    """The grid a value function of ``n_cells`` locations was learned on: the scenario's when it has
    that many cells, else the one its card describes, else a square grid of 1 km cells."""
    for source in (scenario.model_dump() if scenario is not None else None, described):
        if source and int(source.get("grid_size", 0)) ** 2 == n_cells:
            return HexGrid(int(source["grid_size"]), float(source.get("cell_km", 1.0)),
                           float(source.get("road_detour", 1.3)))
    size = math.isqrt(n_cells)
    if size * size != n_cells:
        raise ValueError(f"a value function over {n_cells} locations is not a square hex grid")
    return HexGrid(size, 1.0)


@torch.no_grad()
def value_frame(value: nn.Module, grid: HexGrid) -> pl.DataFrame:
    """``V`` at the centre of every hour of the day and every cell: ``hour, cell, x_km, y_km, value``
    (``24·C`` rows, hour slowest)."""
    table = value_table(value, grid.n_cells, HOURS, SECONDS_PER_DAY).double().cpu().numpy()  # [24, C]
    cells = cell_frame(grid)
    return pl.DataFrame({
        "hour": np.repeat(np.arange(HOURS), grid.n_cells),
        "cell": np.tile(cells["cell"].to_numpy(), HOURS),
        "x_km": np.tile(cells["x_km"].to_numpy(), HOURS),
        "y_km": np.tile(cells["y_km"].to_numpy(), HOURS),
        "value": table.reshape(-1),
    })


def value_by_hour(values: pl.DataFrame) -> pl.DataFrame:
    """``hour, mean, low, high``: the mean, 10% and 90% quantile of ``V`` over the cells, per hour."""
    return values.group_by("hour", maintain_order=True).agg(
        pl.col("value").mean().alias("mean"), pl.col("value").quantile(0.1).alias("low"),
        pl.col("value").quantile(0.9).alias("high"))


def value_policies(policies: Sequence[tuple[str, Policy]]) -> list[tuple[str, Policy]]:
    """The compared policies that act by a value function (a :class:`CityPolicy` with a ``value``)."""
    return [(label, p) for label, p in policies if getattr(p, "value", None) is not None]


def registered_values(registry: PolicyRegistry, domain: str) -> list[str]:
    """References of the registered ``ride_value`` policies of ``domain`` (oldest first)."""
    from decisionlab.core import record_kind

    return [str(r.ref) for r in registry.list(domain) if record_kind(r) == VALUE_KIND]


def load_value(registry: PolicyRegistry, ref: str, domain: str,
               scenario: CityScenario | None = None) -> tuple[nn.Module, HexGrid]:
    """The value function of a registered ``ride_value`` policy and the grid it was learned on (the
    map needs no scenario it can serve, so no ``for_scenario``)."""
    from decisionlab.core import policy_class

    record = registry.find(ref, domain)
    config = dict(record.card.get("policy_config") or {})
    module = policy_class(VALUE_KIND).from_config(config)
    module.load_state_dict(registry.load_weights(record))
    value = module.value.eval()
    return value, grid_of(int(value.n_locations), scenario, record.card.get("scenario"))


def value_map_figure(values: pl.DataFrame, hour: int, grid: HexGrid, label: str) -> go.Figure:
    """``V(cell, hour)`` of ``label`` on the grid (``values``: :func:`value_frame`)."""
    return hex_map_figure(values.filter(pl.col("hour") == hour), "value", grid,
                          f"{label}: V(cell, {hour:02d}:00–{(hour + 1) % 24:02d}:00)", "value")


def value_day_figure(values: pl.DataFrame, hour: int, label: str) -> go.Figure:
    """Mean ``V`` over the cells through the day, with its 10–90% band across cells."""
    import plotly.graph_objects as go

    daily = value_by_hour(values)
    hours = (daily["hour"] + 0.5).to_list()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=hours + hours[::-1], y=daily["high"].to_list() + daily["low"].to_list()[::-1],
                             fill="toself", line={"width": 0}, fillcolor=palette()[0], opacity=0.2,
                             name="10–90% of cells", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=hours, y=daily["mean"].to_list(), mode="lines+markers", name="mean over cells",
                             line={"color": palette()[0]}))
    fig.add_vrect(x0=hour, x1=hour + 1, fillcolor="#888", opacity=0.15, line_width=0)
    fig.update_layout(title=f"{label}: value over the day", xaxis_title="hour of the day", yaxis_title="V",
                      xaxis={"range": [0, 24], "dtick": 3}, height=320, margin={"t": 50, "b": 40})
    return fig


def value_tab(ctx: ViewContext) -> None:
    """``V(cell, hour)`` of a value-based policy (compared, else registered) on the grid, over the day."""
    import streamlit as st

    compared = value_policies(ctx.result.policies) if ctx.result is not None else []
    labels = [label for label, _ in compared]
    registered = [ref for ref in registered_values(ctx.registry, ctx.domain.name) if ref not in labels]
    choices = labels + registered
    if not choices:
        st.info(f"No value-based policy yet: train one with {TRAIN_HINT} (or `--algo td_online`, "
                "`--algo offline_value`), then pick it among the policies and press **Run**.")
        return
    forget_stale(ctx.key("value_policy"), choices)
    label = st.selectbox("Value function of", choices, key=ctx.key("value_policy"),
                         help="compared value-based policies first, then the registered ride_value policies")
    scenario = cast(CityScenario, ctx.result.scenario if ctx.result is not None else ctx.scenario)
    cache: dict[str, Any] = ctx.result.cache if ctx.result is not None else {}
    cache_key = f"ride_hailing:value:{label}"
    if cache_key not in cache:
        if label in labels:
            policy = dict(compared)[label]
            value, grid = cast(Any, policy).value, cast(Any, policy).grid
        else:
            value, grid = load_value(ctx.registry, label, ctx.domain.name, scenario)
        cache[cache_key] = (value_frame(value, grid), grid)
    values, grid = cache[cache_key]
    simulated = clock_range(scenario.start_hour, scenario.start_hour + scenario.horizon_hours)
    hour = st.select_slider("Hour of the day", list(range(HOURS)), value=hour_of_day(scenario.start_seconds),
                            format_func=lambda h: clock_range(h, h + 1), key=ctx.key("value_hour"),
                            help=f"V covers the whole day; the scenario simulates {simulated}")
    st.caption("V(cell, t): the expected discounted income ahead of a driver who is free in that cell at that hour "
               "(γ per 10 minutes). Value matching dispatches on fare + γ^Δt·V(destination) − V(driver's cell); "
               "value repositioning sends idle drivers uphill.")
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(value_map_figure(values, hour, grid, label), width="content", key=ctx.key("value_map"))
    with right:
        st.plotly_chart(value_day_figure(values, hour, label), key=ctx.key("value_day"))
