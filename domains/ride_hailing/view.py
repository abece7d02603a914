"""The ride-hailing dashboard tabs (the policy comparison itself comes from the core).

Pure helpers (no Streamlit) return polars frames:

- :func:`value_frame` / :func:`value_by_hour`: a learned ``V(cell, hour)`` on the grid, and its mean
  over the cells through the day;
- :func:`simulate_day`: every compared policy on *the same* simulated day (one city drawn from the
  seed and repeated once per policy, so all rows face the same shifts, orders and draws), recording
  the idle drivers per cell and hour, the fleet over time, each driver's income, and the first
  policy's observations at a few dispatch windows (:class:`DayRecord`);
- :func:`supply_frame`: expected orders against mean idle drivers per cell at an hour;
- :func:`income_frame`, :func:`kpi_frame`: per-driver incomes (with Gini) and the report's KPI CIs;
- :func:`window_replay`: one dispatch window's free drivers and pending orders, and what each
  policy assigns on that same observation (with its measured latency).

Figure builders draw the grid as pointy-top hexagon markers at the cell centres (km, equal axis
scale, no map tiles); the ``*_tab`` functions draw the tabs, keeping what they compute in the
comparison's ``cache``.
"""

from __future__ import annotations

import bisect
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import polars as pl
import torch

from decisionlab.core import Policy, legend_below, legend_layout, make_generator, palette, short_label, value_table
from decisionlab.domains.ride_hailing.city import City
from decisionlab.domains.ride_hailing.grid import HexGrid
from decisionlab.domains.ride_hailing.metrics import EpisodeTotals, gini, run_episodes
from decisionlab.domains.ride_hailing.scenario import SECONDS_PER_DAY, CityScenario
from decisionlab.domains.ride_hailing.sim import (
    DISPATCH,
    IDLE,
    REPOSITION,
    CityObservation,
    CitySim,
    CityState,
    city_action,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from torch import nn

    from decisionlab.core import EvaluationReport, PolicyRegistry, ViewContext

HOURS = 24
VALUE_KIND = "ride_value"
TRAIN_HINT = "`decisionlab train ride_hailing --algo v1d3`"
NICE_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 240)  # spacings of the replayable windows and timeline bins
MAX_SNAPSHOTS = 48
MAX_TIMELINE_POINTS = 48
LATENCY_REPEATS = 3
MIN_REPLAY_ORDERS = 2  # windows offered for replay hold at least this many pending orders (a choice to make)
MAP_PX = 520  # the longer side of a map's plot area (px)


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def hour_of_day(time_s: float) -> int:
    return int((time_s % SECONDS_PER_DAY) // 3600.0) % HOURS


def cell_frame(grid: HexGrid) -> pl.DataFrame:
    """One row per cell: ``cell``, ``x_km``, ``y_km`` (its centre)."""
    xy = grid.centres_km.double().cpu().numpy()
    return pl.DataFrame({"cell": np.arange(grid.n_cells), "x_km": xy[:, 0], "y_km": xy[:, 1]})


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


class _SameCity:
    """``sim`` with one city drawn from the generator and repeated on every row: each row gets the
    same shifts, homes, orders and draws (common random numbers), whatever acts on it."""

    def __init__(self, sim: CitySim) -> None:
        self.sim = sim

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> CityState:
        state = self.sim.reset(1, generator)
        tensors = {f.name: getattr(state, f.name) for f in fields(state)}
        return replace(state, **{name: v.repeat(batch, *([1] * (v.dim() - 1)))
                                 for name, v in tensors.items() if isinstance(v, torch.Tensor)})

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.sim.sample_exogenous(1, periods, generator).expand(batch, -1, -1)


def observation_rows(obs: CityObservation, start: int, stop: int) -> CityObservation:
    """Rows ``start:stop`` of a batched observation."""
    return CityObservation(**{f.name: getattr(obs, f.name)[start:stop] for f in fields(obs)})


class _RowPolicies:
    """Row ``i`` of the batch acted on by policy ``i``. Keeps row 0's observation (the first policy's
    city) at the busiest window (most pending orders, the earliest of ties) of each interval
    ``[starts[k], starts[k + 1])``: most windows of a small city have no order waiting."""

    def __init__(self, policies: Sequence[Policy], starts: Sequence[int]) -> None:
        self.policies, self.starts = list(policies), sorted(starts)
        self.step = 0
        self.kept: dict[int, CityObservation] = {}
        self.pending: dict[int, int] = {}  # kept window -> its pending orders
        self._best: dict[int, tuple[int, int]] = {}  # interval -> (pending orders, window)

    def act(self, obs: CityObservation) -> torch.Tensor:
        interval = bisect.bisect_right(self.starts, self.step) - 1
        if interval >= 0:
            pending = int(obs.order_valid[0].sum())
            best = self._best.get(interval)
            if best is None or pending > best[0]:
                if best is not None:
                    del self.kept[best[1]], self.pending[best[1]]
                first = observation_rows(obs, 0, 1)
                self.kept[self.step] = CityObservation(**{f.name: getattr(first, f.name).clone()
                                                          for f in fields(first)})
                self._best[interval] = (pending, self.step)
                self.pending[self.step] = pending
        self.step += 1
        parts = [p.act(observation_rows(obs, i, i + 1)) for i, p in enumerate(self.policies)]
        return city_action(torch.cat([a[DISPATCH] for a in parts]), torch.cat([a[REPOSITION] for a in parts]))


def nice_minutes(minutes: float, most: int) -> int:
    """The finest of :data:`NICE_MINUTES` that cuts ``minutes`` into at most ``most`` parts."""
    return next((m for m in NICE_MINUTES if minutes / m <= most), NICE_MINUTES[-1])


def replay_choices(pending: Mapping[int, int], least: int = MIN_REPLAY_ORDERS) -> tuple[list[int], int]:
    """The kept windows worth replaying, in time order: those with at least ``least`` pending orders
    (the busiest ones when none has that many), and the busiest of all (the earliest of ties), the
    default: a window with one order or none shows no dispatch decision."""
    if not pending:
        raise ValueError("no window was kept")
    bar = min(least, max(pending.values()))
    choices = sorted(w for w, n in pending.items() if n >= bar)
    return choices, min(choices, key=lambda w: (-pending[w], w))


def _clock_range(begin: float, end: float) -> str:
    return f"{_clock(begin)}–{_clock(end)}"


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
        return _clock_range(hour, hour + 1)
    labels = list(dict.fromkeys(_clock_range(a, b) for a, b in pieces))
    return _clock_range(hour, hour + 1) if _clock_range(hour, hour + 1) in labels else ", ".join(labels)


def clock_ticks(start_hour: float, horizon_hours: float, most: int = 8) -> tuple[list[float], list[str]]:
    """Tick positions (hours since midnight of day 0, not wrapped) and their clock labels across the
    simulated period, every 1, 2, 5, ... minutes (at most ``most`` ticks, the period's ends included
    when they are not on the spacing)."""
    step = nice_minutes(horizon_hours * 60.0, most) / 60.0
    first = math.ceil(start_hour / step - 1e-9) * step
    count = int(math.floor((start_hour + horizon_hours - first) / step + 1e-9)) + 1
    values = [first + k * step for k in range(max(0, count))]
    return values, [_clock(v) for v in values]


def snapshot_windows(scenario: CityScenario) -> list[int]:
    """Where the replayable intervals start: every 1, 2, 5, ... minutes (the finest spacing giving at
    most :data:`MAX_SNAPSHOTS`) from the first minute on, within the horizon (the last window when the
    horizon is shorter than a minute). Window 0 is left out: no order has arrived yet."""
    windows, window_s = scenario.windows, scenario.window_seconds
    minutes = scenario.horizon_hours * 60.0
    step = nice_minutes(minutes, MAX_SNAPSHOTS)
    chosen = sorted({round(k * step * 60.0 / window_s) for k in range(1, int(minutes // step) + 1)})
    chosen = [w for w in chosen if 1 <= w < windows]
    return chosen or [windows - 1]


@dataclass
class DayRecord:
    """Every compared policy on the same simulated horizon of the comparison's seed.

    ``idle``: ``policy, hour, cell, idle_windows, windows, mean_idle`` (one row per policy, hour and
    cell: driver-windows idle in the cell at a window's start, the hour's windows, their ratio);
    ``timeline``: ``policy, minutes, arrived_per_min, online, idle`` per time bucket (drivers at the
    windows' ends); ``income``: ``policy, driver, income, online_hours, worked``; ``snapshots``: the
    first policy's observation (``B = 1``) at the busiest window of each interval of
    :func:`snapshot_windows`, by window index, and ``snapshot_orders`` its pending orders there;
    ``totals``: the episode totals (row ``i`` is policy ``i``)."""

    labels: list[str]
    hours: list[int]
    idle: pl.DataFrame
    timeline: pl.DataFrame
    income: pl.DataFrame
    snapshots: dict[int, CityObservation]
    totals: EpisodeTotals
    seconds: float
    snapshot_orders: dict[int, int] = field(default_factory=dict)


def simulate_day(scenario: CityScenario, policies: Sequence[tuple[str, Policy]], seed: int,
                 device: torch.device | str = "cpu", sim: CitySim | None = None) -> DayRecord:
    """One horizon of ``seed`` for every policy at once (row ``i`` is policy ``i``, every row the same
    city and draws: row ``i`` is what ``run_episodes(sim, policy_i, 1, make_generator(seed))`` gives)."""
    start = time.perf_counter()
    sim = sim if sim is not None else CitySim(scenario, device)
    labels = [label for label, _ in policies]
    rows, cells = len(policies), sim.grid.n_cells
    idle = torch.zeros(rows, HOURS * cells, dtype=torch.float64, device=sim.device)
    windows = np.zeros(HOURS)
    hours: list[int] = []  # in the order the horizon meets them (it may cross midnight)
    series: dict[str, list[torch.Tensor]] = {"arrived": [], "online_drivers": [], "idle_drivers": []}

    def record(state: CityState, info: dict[str, torch.Tensor]) -> None:
        hour = hour_of_day(state.time_s)
        if windows[hour] == 0:
            hours.append(hour)
        windows[hour] += 1
        # Idle drivers per cell at the window's start (the state the policy saw), by the hour.
        idle.scatter_add_(1, state.driver_cell + hour * cells, (state.driver_mode == IDLE).double())
        for name, kept in series.items():
            kept.append(info[name])

    acting = _RowPolicies([p for _, p in policies], snapshot_windows(scenario))
    totals = run_episodes(cast(CitySim, _SameCity(sim)), acting, rows, make_generator(seed, sim.device),
                          on_step=record)
    return DayRecord(labels, hours, _idle_frame(labels, idle.cpu().numpy(), windows, hours, cells),
                     _timeline_frame(labels, series, scenario), _income_frame(labels, totals.final_state),
                     acting.kept, totals, time.perf_counter() - start, dict(acting.pending))


def _idle_frame(labels: list[str], idle: np.ndarray, windows: np.ndarray, hours: list[int], cells: int) -> pl.DataFrame:
    parts = []
    per_hour = idle.reshape(len(labels), HOURS, cells)
    for i, label in enumerate(labels):
        for h in hours:
            parts.append(pl.DataFrame({
                "policy": [label] * cells, "hour": np.full(cells, h), "cell": np.arange(cells),
                "idle_windows": per_hour[i, h], "windows": np.full(cells, windows[h]),
                "mean_idle": per_hour[i, h] / windows[h],
            }))
    return pl.concat(parts)


def _timeline_frame(labels: list[str], series: dict[str, list[torch.Tensor]], scenario: CityScenario) -> pl.DataFrame:
    """Per bucket of 1, 2, 5, ... minutes (at most :data:`MAX_TIMELINE_POINTS` buckets): orders
    arriving per minute, mean drivers online and idle."""
    window_s = scenario.window_seconds
    bucket_min = nice_minutes(scenario.horizon_hours * 60.0, MAX_TIMELINE_POINTS)
    per_bucket = max(1, round(bucket_min * 60.0 / window_s))
    stacked = {name: torch.stack(kept, 1).cpu().numpy() for name, kept in series.items()}  # [rows, windows]
    windows = next(iter(stacked.values())).shape[1]
    bucket = np.arange(windows) // per_bucket
    counts = np.bincount(bucket).astype(np.float64)
    span_min = counts * window_s / 60.0  # the last bucket may be short
    parts = []
    for i, label in enumerate(labels):
        def mean(name: str, row: int = i) -> np.ndarray:
            return np.bincount(bucket, weights=stacked[name][row]) / counts

        parts.append(pl.DataFrame({
            "policy": [label] * counts.size,
            "minutes": (np.arange(counts.size) * per_bucket * window_s + counts * window_s / 2) / 60.0,
            "arrived_per_min": np.bincount(bucket, weights=stacked["arrived"][i]) / span_min,
            "online": mean("online_drivers"), "idle": mean("idle_drivers"),
        }))
    return pl.concat(parts)


def _income_frame(labels: list[str], state: CityState) -> pl.DataFrame:
    income = state.driver_income.double().cpu().numpy()
    online = state.driver_online_s.double().cpu().numpy() / 3600.0
    n = income.shape[1]
    return pl.concat([pl.DataFrame({"policy": [label] * n, "driver": np.arange(n), "income": income[i],
                                    "online_hours": online[i], "worked": online[i] > 0})
                      for i, label in enumerate(labels)])


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


def income_frame(day: DayRecord) -> pl.DataFrame:
    """``policy, drivers, mean_income, median_income, gini``: per policy, over the drivers who worked."""
    rows = []
    for label in day.labels:
        part = day.income.filter((pl.col("policy") == label) & pl.col("worked"))
        values = torch.tensor(part["income"].to_numpy())[None]
        rows.append({"policy": label, "drivers": part.height,
                     "mean_income": float(part["income"].mean() or 0.0),
                     "median_income": float(part["income"].median() or 0.0),
                     "gini": float(gini(values, torch.ones_like(values))[0])})
    return pl.DataFrame(rows, schema={"policy": pl.String, "drivers": pl.Int64, "mean_income": pl.Float64,
                                      "median_income": pl.Float64, "gini": pl.Float64})


def kpi_frame(report: EvaluationReport, metric: str) -> pl.DataFrame:
    """``policy, mean, ci95`` of ``metric`` over the report's episodes (evaluation order)."""
    return report.table().filter(pl.col("metric") == metric).select("policy", "mean", "ci95")


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


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


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


def _map_figure(frame: MapFrame, title: str) -> go.Figure:
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
    fig = _map_figure(frame, title)
    fig.add_trace(go.Scatter(
        x=cells["x_km"].to_list(), y=cells["y_km"].to_list(), mode="markers", customdata=cells["cell"].to_list(),
        marker={"symbol": "hexagon", "size": frame.hexagon_px, "color": cells[column].to_list(),
                "colorscale": colorscale, "line": {"width": 0.5, "color": "white"},
                "colorbar": {"title": {"text": colorbar_title}, "thickness": 14}},
        hovertemplate=f"cell %{{customdata}}<br>{colorbar_title} %{{marker.color:.3g}}<extra></extra>",
        showlegend=False,
    ))
    return fig


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


def income_figure(day: DayRecord, domain: str | None = None) -> go.Figure:
    """Income per driver who worked, one violin per policy (Gini of the incomes in the legend, under
    the plot)."""
    import plotly.graph_objects as go

    summary = {row["policy"]: row for row in income_frame(day).iter_rows(named=True)}
    colors = palette()
    fig = go.Figure()
    for i, label in enumerate(day.labels):
        part = day.income.filter((pl.col("policy") == label) & pl.col("worked"))
        name = f"{short_label(label, domain)} (Gini {summary[label]['gini']:.3f})"
        fig.add_trace(go.Violin(y=part["income"].to_list(), name=name,
                                box_visible=True, meanline_visible=True, points=False, spanmode="hard",
                                line={"color": colors[i % len(colors)]}))
    fig.update_layout(title="Income per driver over the horizon (drivers who worked; one simulated day)",
                      yaxis_title="income (currency)", xaxis={"showticklabels": False})
    return legend_below(fig, plot_height=340, per_row=2, axis_px=20)


def kpi_figure(report: EvaluationReport, metric: str, unit: str = "") -> go.Figure:
    """``metric``'s mean per policy with its 95% CI over the report's episodes."""
    import plotly.graph_objects as go

    frame = kpi_frame(report, metric)
    colors = palette()
    fig = go.Figure(go.Bar(
        x=frame["policy"].to_list(), y=frame["mean"].to_list(),
        marker_color=[colors[i % len(colors)] for i in range(frame.height)],
        error_y={"type": "data", "array": frame["ci95"].to_list(), "visible": True, "thickness": 1.5},
        hovertemplate="%{x}: %{y:.4g} ± %{error_y.array:.3g}<extra></extra>",
    ))
    axis = f"{metric} ({unit})" if unit else metric
    fig.update_layout(title=f"{metric}: mean and 95% CI over {report.episodes} episodes", yaxis_title=axis,
                      height=380, margin={"t": 50, "b": 60})
    return fig


def window_figure(replay: WindowReplay, grid: HexGrid, shown: Sequence[str], domain: str | None = None) -> go.Figure:
    """The grid (grey hexagons), free drivers (dots), pending orders (crosses) and the assignments of
    the ``shown`` policies (driver → order origin, one trace each: click the legend to hide one)."""
    import plotly.graph_objects as go

    frame = map_frame(grid, colorbar=False)
    fig = _map_figure(frame, f"Dispatch window at {_clock(replay.time_s / 3600.0)}")
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


# --------------------------------------------------------------------------------------------
# Tabs
# --------------------------------------------------------------------------------------------

DAY_KEY = "ride_hailing:day"  # the simulated day the supply, income and window tabs share


def _day(ctx: ViewContext) -> DayRecord | None:
    """The comparison's simulated day, computed once and kept in its cache."""
    result = ctx.result
    if result is None:
        return None
    if DAY_KEY not in result.cache:
        scenario = cast(CityScenario, result.scenario)
        sim = cast(CitySim, ctx.setting.make_simulator(scenario, ctx.device))
        result.cache[DAY_KEY] = simulate_day(scenario, result.policies, int(result.request["seed"]), ctx.device, sim)
    return result.cache[DAY_KEY]


def _forget_stale(key: str, options: Sequence[Any], many: bool = False) -> None:
    """Drop a widget's kept value that a new comparison no longer offers (a policy, hour or window of
    the previous one), so the widget falls back to its default instead of failing."""
    import streamlit as st

    if key not in st.session_state:
        return
    kept = st.session_state[key]
    if any(v not in options for v in kept) if many else kept not in options:
        del st.session_state[key]


def _clock(hour: float) -> str:
    minutes = round((hour % 24) * 60)
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


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
    _forget_stale(ctx.key("value_policy"), choices)
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
    simulated = _clock_range(scenario.start_hour, scenario.start_hour + scenario.horizon_hours)
    hour = st.select_slider("Hour of the day", list(range(HOURS)), value=hour_of_day(scenario.start_seconds),
                            format_func=lambda h: _clock_range(h, h + 1), key=ctx.key("value_hour"),
                            help=f"V covers the whole day; the scenario simulates {simulated}")
    st.caption("V(cell, t): the expected discounted income ahead of a driver who is free in that cell at that hour "
               "(γ per 10 minutes). Value matching dispatches on fare + γ^Δt·V(destination) − V(driver's cell); "
               "value repositioning sends idle drivers uphill.")
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(value_map_figure(values, hour, grid, label), width="content", key=ctx.key("value_map"))
    with right:
        st.plotly_chart(value_day_figure(values, hour, label), key=ctx.key("value_day"))


def supply_demand_tab(ctx: ViewContext) -> None:
    """Expected orders against idle drivers per cell at an hour; orders and drivers over the horizon."""
    import streamlit as st

    day = _day(ctx)
    if day is None or ctx.result is None:
        st.info("Press **Run** to see where the orders are and where the idle drivers wait.")
        return
    scenario = cast(CityScenario, ctx.result.scenario)
    city = cast(CitySim, ctx.setting.make_simulator(scenario, ctx.device)).city
    _forget_stale(ctx.key("supply_policy"), day.labels)
    _forget_stale(ctx.key("supply_hour"), day.hours)

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
               f"{_clock_range(scenario.start_hour, scenario.start_hour + scenario.horizon_hours)} "
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


def income_tab(ctx: ViewContext) -> None:
    """Per-driver income distribution per policy (one day) and the KPIs with their 95% CIs."""
    import streamlit as st

    day = _day(ctx)
    if day is None or ctx.result is None:
        st.info("Press **Run** to compare how the policies share the income among drivers.")
        return
    st.plotly_chart(income_figure(day, ctx.domain.name), key=ctx.key("income_distribution"))
    st.dataframe(income_frame(day).with_columns(pl.col(pl.Float64).round(3)), hide_index=True,
                 key=ctx.key("income_table"))
    metrics = list(ctx.setting.metrics)
    primary = ctx.setting.primary_metric
    metric = st.selectbox("KPI", metrics, index=metrics.index(primary) if primary in metrics else 0,
                          key=ctx.key("income_metric"),
                          help="mean over the comparison's episodes with its 95% confidence interval")
    spec = ctx.setting.metrics[metric]
    st.caption(f"{spec.description}; {spec.better} is better.")
    st.plotly_chart(kpi_figure(ctx.result.report, metric, spec.unit or ""), key=ctx.key("kpi_chart"))


def window_tab(ctx: ViewContext) -> None:
    """One dispatch window of the first policy's day, and what every policy assigns on it."""
    import streamlit as st

    day = _day(ctx)
    if day is None or ctx.result is None:
        st.info("Press **Run** to replay a dispatch window.")
        return
    scenario = cast(CityScenario, ctx.result.scenario)
    # Days kept before the pending counts were recorded count as equally busy.
    pending = day.snapshot_orders or dict.fromkeys(day.snapshots, 0)
    windows, busiest = replay_choices(pending)
    hours_in = {w: w * scenario.window_seconds / 3600.0 for w in windows}

    def when(w: int) -> str:
        return f"{_clock(scenario.start_hour + hours_in[w])} (+{hours_in[w]:.2f} h)"

    def describe(w: int) -> str:
        return f"{when(w)}, {pending[w]} orders"

    _forget_stale(ctx.key("window_time"), windows)
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
    _forget_stale(ctx.key("window_policies"), labels, many=True)
    shown = st.multiselect("Assignments of", labels, default=labels, key=ctx.key("window_policies"))
    st.caption(f"Replaying {which}, {when(chosen)}, of {day.labels[0]}'s "
               f"{_clock_range(scenario.start_hour, scenario.start_hour + scenario.horizon_hours)}: "
               f"{replay.drivers.height} free drivers, {replay.orders.height} pending orders; every policy dispatches "
               "this same observation. Latency: the "
               "median wall clock of a policy's act on it (this machine, shown not asserted).")
    st.plotly_chart(window_figure(replay, grid, shown, ctx.domain.name), width="content", key=ctx.key("window_map"))
    st.dataframe(replay.summary.with_columns(pl.col(pl.Float64).round(3)), hide_index=True,
                 key=ctx.key("window_table"))
