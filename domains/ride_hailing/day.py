"""The simulated day that the supply, income and window tabs share (pure: no Streamlit).

:func:`simulate_day` runs every compared policy on *the same* simulated horizon (one city drawn from
the seed and repeated once per policy, so all rows face the same shifts, orders and draws), recording
the idle drivers per cell and hour, the fleet over time, each driver's income, and the first policy's
observations at a few dispatch windows (:class:`DayRecord`). :func:`comparison_day` computes it once
per comparison and keeps it in the comparison's ``cache`` under :data:`DAY_KEY`.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import polars as pl
import torch

from decisionlab.core import Policy, make_generator
from decisionlab.domains.ride_hailing.metrics import EpisodeTotals, run_episodes
from decisionlab.domains.ride_hailing.scenario import CityScenario
from decisionlab.domains.ride_hailing.sim import (
    DISPATCH,
    IDLE,
    REPOSITION,
    CityObservation,
    CitySim,
    CityState,
    city_action,
)
from decisionlab.domains.ride_hailing.view_common import HOURS, hour_of_day, nice_minutes

if TYPE_CHECKING:
    from decisionlab.core import ViewContext

MAX_SNAPSHOTS = 48
MAX_TIMELINE_POINTS = 48
DAY_KEY = "ride_hailing:day"  # the simulated day the supply, income and window tabs share


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
    """:attr:`DayRecord.idle` from the idle driver-windows ``[rows, 24·C]`` and the windows per hour ``[24]``."""
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
    """:attr:`DayRecord.income`: each row's drivers at the end of the horizon."""
    income = state.driver_income.double().cpu().numpy()
    online = state.driver_online_s.double().cpu().numpy() / 3600.0
    n = income.shape[1]
    return pl.concat([pl.DataFrame({"policy": [label] * n, "driver": np.arange(n), "income": income[i],
                                    "online_hours": online[i], "worked": online[i] > 0})
                      for i, label in enumerate(labels)])


def comparison_day(ctx: ViewContext) -> DayRecord | None:
    """The comparison's simulated day, computed once and kept in its cache."""
    result = ctx.result
    if result is None:
        return None
    if DAY_KEY not in result.cache:
        scenario = cast(CityScenario, result.scenario)
        sim = cast(CitySim, ctx.setting.make_simulator(scenario, ctx.device))
        result.cache[DAY_KEY] = simulate_day(scenario, result.policies, int(result.request["seed"]), ctx.device, sim)
    return result.cache[DAY_KEY]
