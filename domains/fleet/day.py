"""One simulated day per policy, as tables the dashboard and the notebook draw.

:func:`simulate_day` runs every policy on the same sampled day (a clairvoyant planner plans it first) and
records each decision: the hour, the aircraft, where it was and where it went, the passengers it
boarded and those who gave up, the charging pads in use. :func:`flows`, :func:`hourly` and
:func:`charging` aggregate those records; :func:`disruptions` lists the day's closures and downtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import torch

from decisionlab.core import Policy, make_generator, run
from decisionlab.domains.fleet.metrics import alive
from decisionlab.domains.fleet.scenario import FleetScenario
from decisionlab.domains.fleet.schedule import Planner
from decisionlab.domains.fleet.sim import FleetSim, FleetState


@dataclass(frozen=True)
class Day:
    """``decisions``: one row per decision and policy; ``charging``: pads in use per vertiport after each
    decision; ``start``: the day's start state (its ``day`` holds the disruptions)."""

    decisions: pl.DataFrame
    charging: pl.DataFrame
    start: FleetState
    labels: list[str]


def simulate_day(scenario: FleetScenario, policies: Sequence[tuple[str, Policy]], seed: int,
                 device: torch.device) -> Day:
    sim = FleetSim(scenario, device)
    start = sim.reset(1, make_generator(seed, device))
    frames, pads = [], []
    for label, policy in policies:
        if isinstance(policy, Planner):
            policy.plan(sim, start)
        done = run(sim, policy, state=start, record={
            "time_h": lambda step: step.obs["time_h"], "aircraft": lambda step: step.obs["actor"],
            "origin": lambda step: step.obs["actor_location"],
            "destination": lambda step: step.result.state.location.gather(1, step.obs["actor"][:, None])[:, 0],
            "flight": "flights", "boarded": "boarded", "spilled": "spilled", "profit": "profit",
            "alive": alive,
            "charging": lambda step: step.obs["vertiports"][:, :, 1] * max(scenario.charging_pads, 1),
        })
        records = {name: values[0].cpu() for name, values in done.records.items()}
        keep = records["alive"]
        frames.append(pl.DataFrame({
            "policy": label, "time_h": records["time_h"][keep].numpy(),
            "aircraft": records["aircraft"][keep].numpy(), "origin": records["origin"][keep].numpy(),
            "destination": records["destination"][keep].numpy(), "flight": records["flight"][keep].numpy() > 0,
            "boarded": records["boarded"][keep].numpy(), "spilled": records["spilled"][keep].numpy(),
            "profit": records["profit"][keep].numpy(),
        }))
        in_use = records["charging"][keep].round()  # [T, V]
        hours = records["time_h"][keep]
        pads.append(pl.DataFrame({
            "policy": label, "time_h": hours.repeat_interleave(scenario.n_vertiports).numpy(),
            "vertiport": torch.arange(scenario.n_vertiports).repeat(len(hours)).numpy(),
            "pads_in_use": in_use.flatten().numpy(),
        }))
    return Day(pl.concat(frames), pl.concat(pads), start, [label for label, _ in policies])


def flows(day: Day, label: str, hours: tuple[float, float]) -> pl.DataFrame:
    """Flights and passengers per route of ``label`` between ``hours``."""
    return (day.decisions.filter((pl.col("policy") == label) & pl.col("flight")
                                 & pl.col("time_h").is_between(hours[0], hours[1], closed="left"))
            .group_by("origin", "destination").agg(pl.len().alias("flights"), pl.col("boarded").sum())
            .sort("origin", "destination"))


def hourly(day: Day) -> pl.DataFrame:
    """Per policy and hour: flights, passengers boarded, passengers who gave up, profit."""
    return (day.decisions.with_columns(pl.col("time_h").floor().alias("hour"))
            .group_by("policy", "hour").agg(pl.col("flight").sum().alias("flights"), pl.col("boarded").sum(),
                                            pl.col("spilled").sum(), pl.col("profit").sum())
            .sort("policy", "hour"))


def charging(day: Day, label: str) -> pl.DataFrame:
    """Charging pads in use per vertiport and quarter hour (the most seen in it) under ``label``."""
    return (day.charging.filter(pl.col("policy") == label)
            .with_columns(((pl.col("time_h") * 4).floor() / 4).alias("slot_h"))
            .group_by("vertiport", "slot_h").agg(pl.col("pads_in_use").max()).sort("vertiport", "slot_h"))


def disruptions(day: Day, scenario: FleetScenario) -> pl.DataFrame:
    """The day's route closures (per slot) and aircraft downtime, one row each: kind, what, start, end."""
    d = day.start.day
    rows = []
    closed = d.closed[0].cpu()  # [S, V, V]
    for s, i, j in torch.nonzero(torch.triu(closed, diagonal=1)).tolist():
        begin = scenario.day_start_h + s * scenario.slot_h
        rows.append({"kind": "route closed", "what": f"{i}–{j}", "start_h": begin, "end_h": begin + scenario.slot_h})
    starts, ends = d.down_start_h[0].cpu(), d.down_end_h[0].cpu()
    for a in torch.nonzero(torch.isfinite(starts)).flatten().tolist():
        rows.append({"kind": "aircraft down", "what": f"aircraft {a}", "start_h": float(starts[a]),
                     "end_h": min(float(ends[a]), scenario.day_end_h)})
    delays = d.delay_h[0].cpu()  # [S, A]
    rows.append({"kind": "take-off delays", "what": f"{int((delays > 0).sum())} slot×aircraft, mean "
                 f"{float(delays[delays > 0].mean()) * 60 if bool((delays > 0).any()) else 0.0:.0f} min",
                 "start_h": scenario.day_start_h, "end_h": scenario.day_end_h})
    return pl.DataFrame(rows, schema={"kind": pl.String, "what": pl.String, "start_h": pl.Float64,
                                      "end_h": pl.Float64})
