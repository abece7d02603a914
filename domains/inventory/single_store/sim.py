"""Batched single-store inventory simulator (lost sales), differentiable in the order quantities.

Order of events in a period: the policy sees ``(on_hand, pipeline)``, orders ``q``; the oldest
pipeline order arrives (with L = 0 the new order itself arrives); demand ``d`` is served from
on-hand stock; unmet demand is lost. Cost ``h·(y − d)⁺ + p·(d − y)⁺`` on ``y`` = stock after the
arrival (the shared store-period of :mod:`decisionlab.domains.inventory.dynamics`). Everything is
element-wise over the batch: no Python loop over environments.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from decisionlab.core import Box, Spaces, StepResult
from decisionlab.domains.inventory.dynamics import receive, serve
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario


@dataclass(frozen=True)
class StoreState:
    """``on_hand [B]``: stock left after last period's demand; ``pipeline [B, L]``: orders in
    transit, oldest first (``pipeline[:, 0]`` arrives next period)."""

    on_hand: torch.Tensor
    pipeline: torch.Tensor

    def inventory_position(self) -> torch.Tensor:
        """On hand plus on order ``[B]``."""
        return self.on_hand + self.pipeline.sum(dim=1)

    def detach(self) -> StoreState:
        return StoreState(self.on_hand.detach(), self.pipeline.detach())


def state_from_observation(obs: torch.Tensor) -> StoreState:
    """Inverse of :meth:`SingleStoreSim.observe`: ``[B, 1 + L]`` -> state."""
    return StoreState(on_hand=obs[:, 0], pipeline=obs[:, 1:])


class SingleStoreSim:
    """Single-store lost-sales inventory system; see the module docstring for the dynamics."""

    differentiable = True

    def __init__(self, scenario: LostSalesScenario, device: torch.device | str = "cpu") -> None:
        self.scenario = scenario
        self.device = torch.device(device)
        self.lead_time = scenario.lead_time
        self.holding_cost = float(scenario.holding_cost)
        self.underage_cost = float(scenario.underage_cost)
        # Learners and adapters need a finite range for the order: well above any sensible order
        # (the DP's largest optimal orders stay below mean + 5 std), not so wide that a random
        # initial policy drowns in stock. The simulator itself takes any order.
        high = float(scenario.demand_mean + 5 * scenario.demand_std + 1)
        self.spaces = Spaces(
            observation=Box((1 + scenario.lead_time,), 0.0, unit="units",
                            description="on hand, then the pipeline oldest first"),
            action=Box((), 0.0, unit="units", span=(0.0, high), description="order quantity"),
        )

    def sample_exogenous(
        self, batch: int, periods: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Demand paths ``[B, periods]`` (float)."""
        s = self.scenario
        shape = (batch, periods)
        if s.demand_distribution == "poisson":
            rate = torch.full(shape, s.demand_mean, device=self.device)
            return torch.poisson(rate, generator=generator)
        noise = torch.randn(shape, generator=generator, device=self.device)
        return (s.demand_mean + s.demand_std * noise).clamp_min(0.0)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> StoreState:
        """Empty store, empty pipeline (warm-up periods wash this start out)."""
        return StoreState(
            on_hand=torch.zeros(batch, device=self.device),
            pipeline=torch.zeros(batch, self.lead_time, device=self.device),
        )

    def observe(self, state: StoreState) -> torch.Tensor:
        """``[B, 1 + L]``: on hand, then the pipeline oldest first."""
        return torch.cat([state.on_hand.unsqueeze(1), state.pipeline], dim=1)

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def step(self, state: StoreState, action: torch.Tensor, demand: torch.Tensor) -> StepResult[StoreState]:
        """One period (:mod:`..dynamics`). ``action``: order quantities ``[B]`` or ``[B, 1]`` (negative
        is read as 0); ``demand``: ``[B]``. Reward is minus the period's cost."""
        order = action.reshape(-1).clamp_min(0.0)
        arriving, pipeline = receive(state.pipeline, order)
        on_hand, info = serve(state.on_hand, arriving, demand, self.holding_cost, self.underage_cost)
        info["order"] = order
        return StepResult(StoreState(on_hand, pipeline), -info["cost"], info)
