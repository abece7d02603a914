"""Fleet baselines that read only what the operator sees now.

- ``random``: a uniformly random legal choice (the core's ``RandomPolicy``; the floor);
- ``greedy``: the legal destination with the highest immediate profit (the passengers waiting for it,
  up to the seats, times the fare, minus its energy and operating cost); stay when no flight pays.
"""

from __future__ import annotations

import torch

from decisionlab.domains.fleet.sim import FleetSim


class GreedyPolicy:
    """Highest immediate profit among the legal destinations, else stay (module docstring)."""

    name = "greedy"

    def __init__(self, sim: FleetSim) -> None:
        self.sim = sim
        s = sim.scenario
        self.fare_per_seat = s.fare_per_mile * sim.distance_miles  # [V, V]
        self.flight_cost = sim.energy_kwh * s.energy_price + sim.flight_h * s.operating_cost_per_hour

    def profits(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, V]`` immediate profit of flying to each vertiport (``-inf`` where not legal)."""
        s = self.sim.scenario
        here = obs["actor_location"]
        seats = obs["waiting_from_here"].floor().clamp(max=float(s.seats))
        profit = seats * self.fare_per_seat[here] - self.flight_cost[here]
        return torch.where(obs["legal"][:, :-1], profit, -torch.inf)

    def act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        best, where = self.profits(obs).max(1)
        return torch.where(best > 0, where, self.sim.scenario.n_vertiports)
