"""Fleet baselines that read only what the operator sees now.

- ``random``: a uniformly random legal choice, drawn from a hash of the state (the same state gets the
  same choice, so paired evaluations and the API are reproducible; the floor);
- ``greedy``: the legal destination with the highest immediate profit (the passengers waiting for it,
  up to the seats, times the fare, minus its energy and operating cost); stay when no flight pays.
"""

from __future__ import annotations

import torch

from decisionlab.domains.fleet.sim import FleetSim, table_at


class GreedyPolicy:
    """Highest immediate profit among the legal destinations, else stay (module docstring)."""

    name = "greedy"

    def __init__(self, sim: FleetSim) -> None:
        self.sim = sim

    def profits(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, V]`` immediate profit of flying to each vertiport (``-inf`` where not legal)."""
        s = self.sim.scenario
        here = obs["actor_location"]
        seats = obs["waiting_from_here"].floor().clamp(max=float(s.seats))
        profit = seats * table_at(self.sim.fare_per_seat, here) - table_at(self.sim.flight_cost, here)
        return torch.where(obs["legal"][:, :-1], profit, -torch.inf)

    def act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        best, where = self.profits(obs).max(1)
        return torch.where(best > 0, where, self.sim.scenario.n_vertiports)


class RandomLegalPolicy:
    """A uniformly random legal choice, the draw a hash of the clock, the actor and its battery."""

    name = "random"

    def __init__(self, sim: FleetSim) -> None:
        self.sim = sim

    def act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        legal = obs["legal"]
        key = ((obs["time_h"] * 3_600.0).round().long() * 1_000_003 + obs["actor"] * 7_919
               + (obs["actor_battery_kwh"] * 10.0).round().long())
        rank = torch.arange(legal.shape[1], device=legal.device) * 2_654_435_761 + key[:, None] * 40_503
        noise = (rank % 999_983).float()
        return torch.where(legal, noise, -1.0).argmax(1)
