"""The ride-hailing dashboard page: its four tabs (the policy comparison itself comes from the core).

One module per tab, each with its pure helpers (polars frames and plotly figures, no Streamlit) and
the tab that draws them:

- ``value_view``: a learned ``V(cell, hour)`` on the grid and over the day (:func:`value_tab`);
- ``supply_view``: expected orders against idle drivers per cell, and the fleet over the horizon
  (:func:`supply_demand_tab`);
- ``income_view``: per-driver incomes (with Gini) and the report's KPI CIs (:func:`income_tab`);
- ``window_view``: one dispatch window replayed under every policy, with its latency (:func:`window_tab`);

and what they share: ``day.py`` (every compared policy on the same simulated day, kept in the
comparison's ``cache``) and ``view_common.py`` (clock labels, the grid drawn as pointy-top hexagon
markers at the cell centres in km, equal axis scale, no map tiles).

This module re-exports the tabs and the public helpers, so the ``decisionlab.domains.ride_hailing.view:…``
paths and ``view.simulate_day``-style calls keep working.
"""

from __future__ import annotations

from decisionlab.domains.ride_hailing.day import (
    DAY_KEY,
    MAX_SNAPSHOTS,
    MAX_TIMELINE_POINTS,
    DayRecord,
    observation_rows,
    simulate_day,
    snapshot_windows,
)
from decisionlab.domains.ride_hailing.income_view import income_figure, income_frame, income_tab, kpi_figure, kpi_frame
from decisionlab.domains.ride_hailing.supply_view import (
    clock_ticks,
    hour_label,
    orders_per_hour,
    supply_demand_tab,
    supply_frame,
    timeline_figure,
)
from decisionlab.domains.ride_hailing.value_view import (
    TRAIN_HINT,
    VALUE_KIND,
    grid_of,
    load_value,
    registered_values,
    value_by_hour,
    value_day_figure,
    value_frame,
    value_map_figure,
    value_policies,
    value_tab,
)
from decisionlab.domains.ride_hailing.view_common import (
    HOURS,
    MAP_PX,
    NICE_MINUTES,
    MapFrame,
    cell_frame,
    hex_map_figure,
    hour_of_day,
    map_frame,
    nice_minutes,
)
from decisionlab.domains.ride_hailing.window_view import (
    LATENCY_REPEATS,
    MIN_REPLAY_ORDERS,
    WindowReplay,
    replay_choices,
    window_figure,
    window_replay,
    window_tab,
)

__all__ = [
    # the tabs
    "value_tab", "supply_demand_tab", "income_tab", "window_tab",
    # the simulated day
    "DAY_KEY", "MAX_SNAPSHOTS", "MAX_TIMELINE_POINTS", "DayRecord", "observation_rows", "simulate_day",
    "snapshot_windows",
    # value map
    "TRAIN_HINT", "VALUE_KIND", "grid_of", "load_value", "registered_values", "value_by_hour", "value_day_figure",
    "value_frame", "value_map_figure", "value_policies",
    # supply and demand
    "clock_ticks", "hour_label", "orders_per_hour", "supply_frame", "timeline_figure",
    # driver income
    "income_figure", "income_frame", "kpi_figure", "kpi_frame",
    # dispatch window
    "LATENCY_REPEATS", "MIN_REPLAY_ORDERS", "WindowReplay", "replay_choices", "window_figure", "window_replay",
    # shared
    "HOURS", "MAP_PX", "NICE_MINUTES", "MapFrame", "cell_frame", "hex_map_figure", "hour_of_day", "map_frame",
    "nice_minutes",
]
