"""Day plans for clairvoyant planners (the GA, the exact bound): one choice per aircraft per time slot.

A plan ``[B, A, S]`` (long) says what aircraft ``a`` does when it decides in slot ``s`` of day ``b``: fly to
vertiport ``w < V`` or ``V``: stay. :class:`ScheduleFollower` acts by it and stays where the planned
choice is not legal at that moment (so a plan made on a relaxation can still be executed, never
breaking a rule). :func:`record_schedule` turns any policy's day into a plan (the GA seeds its
population with greedy's). A policy with a ``plan(sim, state)`` method is *clairvoyant*: the fleet's
metrics call it with the start state (the whole sampled day included) before the day is simulated.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from decisionlab.core import Policy, Step, run
from decisionlab.domains.fleet.sim import FleetSim, FleetState


@runtime_checkable
class Planner(Protocol):
    """A policy that sees the day before acting (module docstring)."""

    def plan(self, sim: FleetSim, state: FleetState) -> None: ...


class ScheduleFollower:
    """Acts by ``plans [B, A, S]``; a planned choice that is not legal now becomes a stay."""

    name = "schedule"

    def __init__(self, sim: FleetSim, plans: torch.Tensor) -> None:
        self.sim, self.plans = sim, plans

    def act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        rows = torch.arange(obs["actor"].shape[0], device=self.plans.device)
        choice = self.plans[rows, obs["actor"], self.sim.slot_of(obs["time_h"])]
        legal = obs["legal"].gather(1, choice[:, None])[:, 0]
        return torch.where(legal, choice, self.sim.scenario.n_vertiports)


def record_schedule(sim: FleetSim, policy: Policy, state: FleetState) -> torch.Tensor:
    """The plan ``[B, A, S]`` of what ``policy`` does on the days of ``state``: its choice at each aircraft's
    first decision in a slot (stay where an aircraft does not decide)."""
    s = sim.scenario
    b = state.time_h.shape[0]
    plans = torch.full((b, s.n_aircraft, s.slots), s.n_vertiports, dtype=torch.long, device=sim.device)
    seen = torch.zeros_like(plans, dtype=torch.bool)
    rows = torch.arange(b, device=sim.device)

    def keep(step: Step) -> None:
        obs: dict[str, Any] = step.obs
        slot = sim.slot_of(obs["time_h"])
        first = ~seen[rows, obs["actor"], slot]
        if step.alive is not None:
            first &= step.alive
        choice = step.action.reshape(b).long()
        plans[rows, obs["actor"], slot] = torch.where(first, choice, plans[rows, obs["actor"], slot])
        seen[rows, obs["actor"], slot] |= first

    run(sim, policy, state=state, hooks=(keep,))
    return plans
