"""Daily KPIs of a fleet policy from the core rollout engine: one operating day per episode.

``decision_ms`` is a wall-clock measurement (``MetricSpec.measured``), not a function of the seed: the
time the policy takes per decision, its planning included for clairvoyant planners (the GA plans the
whole day before its first decision), averaged over the batch's decisions and reported for every day.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from decisionlab.core import MetricSpec, Policy, Step, Sum, make_generator, run
from decisionlab.domains.fleet.checks import violations
from decisionlab.domains.fleet.schedule import Planner
from decisionlab.domains.fleet.sim import FleetSim, FleetState

METRICS = {
    "daily_profit": MetricSpec("daily_profit", "fares minus energy and operating costs over the day", "higher", "$"),
    "demand_served_share": MetricSpec("demand_served_share", "passengers flown / passengers who arrived in the day",
                                      "higher"),
    "utilisation": MetricSpec("utilisation", "share of the fleet's day spent flying (take-off delays included; "
                              "a flight that lands after the day's end counts up to the end)",
                              "higher"),
    "constraint_violations": MetricSpec("constraint_violations", "operating rules broken in the day (checks.py: "
                                        "pads, battery, closures, downtime); 0 by construction", "lower"),
    "decision_ms": MetricSpec("decision_ms", "wall time per decision, a planner's planning included",
                              "lower", "ms", measured=True),
    "flights": MetricSpec("flights", "flights in the day", "higher", "flights"),
    "spilled": MetricSpec("spilled", "passengers who gave up waiting", "lower", "passengers"),
}


class TimedPolicy:
    """``policy`` with the wall time of its ``act`` calls added up (synchronised on CUDA)."""

    def __init__(self, policy: Policy, device: torch.device) -> None:
        self.policy, self.device, self.seconds = policy, device, 0.0
        self.name = getattr(policy, "name", "policy")

    def act(self, obs: Any) -> Any:
        start = time.perf_counter()
        action = self.policy.act(obs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        return action


def alive(step: Step) -> torch.Tensor:
    """``[B]`` bool: the day had not ended before this decision (the engine gives None before any day ends)."""
    return torch.ones_like(step.obs["time_h"], dtype=torch.bool) if step.alive is None else step.alive


def broken_rules(sim: FleetSim) -> Any:
    """A reducer input: the rules each decision broke, per day."""

    def read(step: Step) -> torch.Tensor:
        counts = violations(sim, step.state, step.action, step.result.state)
        return torch.stack(list(counts.values())).sum(0).to(torch.float64)

    return read


def simulate_days(sim: FleetSim, policy: Policy, state: FleetState) -> dict[str, torch.Tensor]:
    """Totals ``{name: [B]}`` of the days of ``state`` under ``policy``; a :class:`Planner` plans them first.
    ``decision_ms`` is the batch's wall time per decision (the same for every day)."""
    planning = 0.0
    if isinstance(policy, Planner):
        start = time.perf_counter()
        policy.plan(sim, state)
        planning = time.perf_counter() - start
    timed = TimedPolicy(policy, sim.device)
    done = run(sim, timed, state=state, reducers={
        "daily_profit": Sum("profit"), "boarded": Sum("boarded"), "flight_hours": Sum("flight_hours"),
        "flight_hours_in_day": Sum("flight_hours_in_day"),
        "flights": Sum("flights"), "spilled": Sum("spilled"), "decisions": Sum(lambda step: torch.ones_like(
            step.info["profit"])), "constraint_violations": Sum(broken_rules(sim)),
    })
    totals = dict(done.totals)
    s = sim.scenario
    arrived = state.day.arrivals.sum((1, 2, 3)).to(torch.float64)
    totals["demand_served_share"] = totals["boarded"] / arrived.clamp_min(1.0)
    totals["utilisation"] = totals["flight_hours_in_day"] / (s.n_aircraft * (s.day_end_h - s.day_start_h))
    per_decision = (planning + timed.seconds) * 1000.0 / float(totals["decisions"].sum().clamp_min(1.0))
    totals["decision_ms"] = torch.full_like(totals["daily_profit"], per_decision)
    return totals


def episode_metrics(scenario: Any, policy: Policy, episodes: int, seed: int, device: torch.device,
                    start: int = 0) -> dict[str, np.ndarray]:
    sim = FleetSim(scenario, device)
    state = sim.reset(episodes, make_generator(seed, device))
    totals = simulate_days(sim, policy, state)
    return {name: totals[name].cpu().numpy() for name in METRICS}
