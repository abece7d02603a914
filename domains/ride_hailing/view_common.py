"""Helpers shared by the ride-hailing dashboard tabs (``value_view``, ``supply_view``, ``income_view``,
``window_view``) and by the simulated day behind three of them (``day.py``); no Streamlit at import.

- the clock: :func:`hour_of_day`, the ``HH:MM`` labels :func:`clock` and :func:`clock_range`, and
  :func:`nice_minutes` (the round spacing of the replayable windows, timeline buckets and clock ticks);
- the grid as a map (the cell centres in km, equal axis scale, no map tiles): :func:`cell_frame`,
  :func:`map_frame` (a plot area whose pointy-top hexagon markers tile the grid), :func:`blank_map_figure`
  and :func:`hex_map_figure` (one value per cell as coloured hexagons);
- :func:`forget_stale`: drop a widget's kept choice that a new comparison no longer offers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from decisionlab.domains.ride_hailing.grid import HexGrid
from decisionlab.domains.ride_hailing.scenario import SECONDS_PER_DAY

if TYPE_CHECKING:
    import plotly.graph_objects as go

HOURS = 24
NICE_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 240)  # spacings of the replayable windows and timeline bins
MAP_PX = 520  # the longer side of a map's plot area (px)


def hour_of_day(time_s: float) -> int:
    """The clock hour (0–23) of ``time_s`` seconds since midnight of day 0."""
    return int((time_s % SECONDS_PER_DAY) // 3600.0) % HOURS


def cell_frame(grid: HexGrid) -> pl.DataFrame:
    """One row per cell: ``cell``, ``x_km``, ``y_km`` (its centre)."""
    xy = grid.centres_km.double().cpu().numpy()
    return pl.DataFrame({"cell": np.arange(grid.n_cells), "x_km": xy[:, 0], "y_km": xy[:, 1]})


def nice_minutes(minutes: float, most: int) -> int:
    """The finest of :data:`NICE_MINUTES` that cuts ``minutes`` into at most ``most`` parts."""
    return next((m for m in NICE_MINUTES if minutes / m <= most), NICE_MINUTES[-1])


def clock(hour: float) -> str:
    """``HH:MM`` of ``hour`` hours since midnight (wrapped to the day, rounded to the minute)."""
    minutes = round((hour % 24) * 60)
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def clock_range(begin: float, end: float) -> str:
    """``HH:MM–HH:MM`` from hour ``begin`` to hour ``end``."""
    return f"{clock(begin)}–{clock(end)}"


@dataclass(frozen=True)
class MapFrame:
    """Axis ranges (km), figure size (px) and the hexagon marker size that tiles the grid at equal scale."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    width: int
    height: int
    hexagon_px: float
    margin: dict[str, int]


def map_frame(grid: HexGrid, longest_px: int = MAP_PX, colorbar: bool = True) -> MapFrame:
    """The plot area is sized to the grid's extent so one km is as many pixels on both axes (the
    hexagons then tile: a pointy-top marker of size ``s`` is ``s·√3/2`` px wide)."""
    xy = grid.centres_km.double().cpu().numpy()
    pad_x, pad_y = 0.6 * grid.cell_km, 0.65 * grid.cell_km
    x_range = (float(xy[:, 0].min()) - pad_x, float(xy[:, 0].max()) + pad_x)
    y_range = (float(xy[:, 1].min()) - pad_y, float(xy[:, 1].max()) + pad_y)
    span_x, span_y = x_range[1] - x_range[0], y_range[1] - y_range[0]
    px_per_km = longest_px / max(span_x, span_y)
    margin = {"l": 40, "r": 90 if colorbar else 20, "t": 50, "b": 40}
    width = round(span_x * px_per_km) + margin["l"] + margin["r"]
    height = round(span_y * px_per_km) + margin["t"] + margin["b"]
    return MapFrame(x_range, y_range, width, height, 2.0 * grid.cell_km * px_per_km / math.sqrt(3.0) * 1.02, margin)


def blank_map_figure(frame: MapFrame, title: str) -> go.Figure:
    """An empty figure of ``frame``'s size with its km axes at one scale (north up), for traces on the grid."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(title=title, width=frame.width, height=frame.height, margin=frame.margin,
                      plot_bgcolor="white", modebar={"orientation": "v"})
    fig.update_xaxes(range=list(frame.x_range), title_text="km east", showgrid=False, zeroline=False,
                     constrain="domain")
    fig.update_yaxes(range=list(frame.y_range), title_text="km north", showgrid=False, zeroline=False,
                     scaleanchor="x", scaleratio=1, constrain="domain")
    return fig


def hex_map_figure(cells: pl.DataFrame, column: str, grid: HexGrid, title: str, colorbar_title: str,
                   colorscale: str = "Viridis", longest_px: int = MAP_PX) -> go.Figure:
    """``cells[column]`` as coloured hexagons at the cell centres (``cells``: one row per cell with
    ``cell, x_km, y_km``)."""
    import plotly.graph_objects as go

    frame = map_frame(grid, longest_px)
    fig = blank_map_figure(frame, title)
    fig.add_trace(go.Scatter(
        x=cells["x_km"].to_list(), y=cells["y_km"].to_list(), mode="markers", customdata=cells["cell"].to_list(),
        marker={"symbol": "hexagon", "size": frame.hexagon_px, "color": cells[column].to_list(),
                "colorscale": colorscale, "line": {"width": 0.5, "color": "white"},
                "colorbar": {"title": {"text": colorbar_title}, "thickness": 14}},
        hovertemplate=f"cell %{{customdata}}<br>{colorbar_title} %{{marker.color:.3g}}<extra></extra>",
        showlegend=False,
    ))
    return fig


def forget_stale(key: str, options: Sequence[Any], many: bool = False) -> None:
    """Drop a widget's kept value that a new comparison no longer offers (a policy, hour or window of
    the previous one), so the widget falls back to its default instead of failing."""
    import streamlit as st

    if key not in st.session_state:
        return
    kept = st.session_state[key]
    if any(v not in options for v in kept) if many else kept not in options:
        del st.session_state[key]
