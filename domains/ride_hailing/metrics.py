"""Ride-hailing KPIs per simulated episode (a day, or the scenario's horizon).

``run_episodes`` rolls a policy through ``B`` cities at once and returns the window counts summed
over the horizon plus the final state (drivers' incomes and online time); ``episode_metrics`` turns
them into the KPIs. Ratios are per episode (answered orders of that day / orders of that day), so
the evaluation's CIs over episodes and its paired differences are over days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from decisionlab.core import Hook, MetricSpec, Policy, Progress, Sum, make_generator, run
from decisionlab.domains.ride_hailing.scenario import CityScenario
from decisionlab.domains.ride_hailing.sim import CitySim, CityState

COUNTS = ("income", "arrived", "matched", "served", "cancelled", "expired", "pickup_km", "pickup_minutes",
          "idle_drivers", "online_drivers")
CHUNK_WINDOWS = 256  # exogenous uniforms drawn this many windows at a time (bounded memory)

METRICS = {
    "total_income": MetricSpec("total_income", "fares paid to all drivers over the horizon", "higher", "currency"),
    "answer_rate": MetricSpec("answer_rate", "orders given a driver / orders", "higher"),
    "completion_rate": MetricSpec("completion_rate", "orders served (not cancelled) / orders", "higher"),
    "cancellation_rate": MetricSpec("cancellation_rate", "matched orders the passenger cancelled / matched orders",
                                    "lower"),
    "mean_pickup_distance": MetricSpec("mean_pickup_distance", "road distance from driver to passenger per match",
                                       "lower", "km"),
    "mean_pickup_eta": MetricSpec("mean_pickup_eta", "driving time from driver to passenger per match", "lower",
                                  "minutes"),
    "idle_share": MetricSpec("idle_share", "share of drivers' online time spent idle", "lower"),
    "income_per_online_hour": MetricSpec("income_per_online_hour", "total income / drivers' online hours", "higher",
                                         "currency per hour"),
    "income_gini": MetricSpec("income_gini", "Gini coefficient of income across the drivers who worked", "lower"),
}

StepHook = Callable[[CityState, dict[str, torch.Tensor]], None]


@dataclass
class EpisodeTotals:
    """Window counts summed over the horizon ``{name: [B]}`` (float64) and the final state."""

    sums: dict[str, torch.Tensor]
    final_state: CityState
    finish: dict[str, torch.Tensor]


def run_episodes(sim: CitySim, policy: Policy, episodes: int, generator: torch.Generator,
                 on_step: StepHook | None = None, progress: str | None = None) -> EpisodeTotals:
    """``policy`` over the scenario's horizon in ``episodes`` cities at once; ``on_step(state, info)``
    sees every window (trip logs, TD updates); ``progress`` (a description) shows a bar of simulated minutes.
    A policy with ``start_online`` (one that learns while it acts) is started for these days and
    shown every window after it acts."""
    windows = sim.scenario.windows
    hooks: list[Hook] = []
    start_online = getattr(policy, "start_online", None)
    if start_online is not None:  # a value that learns from each day's trips gets a private copy per day
        learner = start_online(episodes)
        policy = learner
        hooks.append(lambda step: learner.observe(step.state, step.info))
    if on_step is not None:
        hooks.append(lambda step: on_step(step.state, step.info))
    with Progress(round(windows * sim.window_s / 60.0), progress or "", unit="sim minute",
                  enabled=progress is not None) as bar:
        hooks.append(lambda step: bar.update(round((step.t + 1) * sim.window_s / 60.0) - bar.done))
        done = run(sim, policy, batch=episodes, generator=generator, steps=windows, chunk=CHUNK_WINDOWS,
                   reducers={name: Sum(name) for name in COUNTS}, hooks=hooks)
    sums, state = done.totals, done.final_state
    finish = sim.finish(state)
    sums["expired"] = sums["expired"] + finish["expired"]
    return EpisodeTotals(sums, state, finish)


def run_days(sim: CitySim, policy: Policy, days: int, cities: int, generator: torch.Generator,
             on_step: StepHook | None = None, on_batch: Callable[[EpisodeTotals], None] | None = None,
             label: str | None = None) -> None:
    """:func:`run_episodes` over ``days`` horizons, ``cities`` at a time (the last batch smaller);
    ``on_batch`` sees each batch's totals, ``label`` names the progress bars (none when ``None``)."""
    done = 0
    while done < days:
        batch = min(cities, days - done)
        progress = f"{label} days {done + 1}-{done + batch} of {days}" if label is not None else None
        totals = run_episodes(sim, policy, batch, generator, on_step=on_step, progress=progress)
        if on_batch is not None:
            on_batch(totals)
        done += batch


def gini(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Gini coefficient per row of ``values [B, N]`` over the entries where ``weights > 0``."""
    out = []
    for row, keep in zip(values, weights > 0, strict=True):
        x = torch.sort(row[keep].double()).values
        n = x.numel()
        if n == 0 or float(x.sum()) <= 0:
            out.append(0.0)
            continue
        rank = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)
        out.append(float((2 * (rank * x).sum() / (n * x.sum()) - (n + 1) / n).item()))
    return torch.tensor(out, dtype=torch.float64)


def kpis(totals: EpisodeTotals, window_seconds: float) -> dict[str, np.ndarray]:
    """The :data:`METRICS` of each episode from its totals."""
    s = {k: v.cpu() for k, v in totals.sums.items()}
    state = totals.final_state

    def ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(b > 0, a / b.clamp_min(1e-12), 0.0)

    online_hours = state.driver_online_s.sum(1).cpu() / 3600.0
    values = {
        "total_income": s["income"],
        "answer_rate": ratio(s["matched"], s["arrived"]),
        "completion_rate": ratio(s["served"], s["arrived"]),
        "cancellation_rate": ratio(s["cancelled"], s["matched"]),
        "mean_pickup_distance": ratio(s["pickup_km"], s["matched"]),
        "mean_pickup_eta": ratio(s["pickup_minutes"], s["matched"]),
        "idle_share": ratio(s["idle_drivers"], s["online_drivers"]),
        "income_per_online_hour": ratio(s["income"], online_hours),
        "income_gini": gini(state.driver_income.cpu(), state.driver_online_s.cpu()),
    }
    return {name: v.numpy().astype(np.float64) for name, v in values.items()}


def episode_metrics(scenario: CityScenario, policy: Policy, episodes: int, seed: int,
                    device: torch.device | str = "cpu", start: int = 0) -> dict[str, np.ndarray]:
    """KPIs of ``episodes`` simulated horizons, all randomness from ``seed`` (see core.spec.EpisodeMetrics)."""
    sim = CitySim(scenario, device)
    totals = run_episodes(sim, policy, episodes, make_generator(seed, sim.device))
    return kpis(totals, scenario.window_seconds)
