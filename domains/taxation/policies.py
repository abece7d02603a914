"""Baselines of the one-step economy: a planner's schedule with workers that answer it exactly.

Every baseline is a joint policy: ``act`` returns ``{"planner": [B, 1, K], "workers": [B, N, 1]}``. The
planner part is a fixed schedule (``free_market``: no tax; ``us_federal``: the 2018 rates; ``saez``: the
closed form at each cut-off; ``optimal``: the exact best schedule on the rate grid); the workers
part is every worker's exact best response to the rates it sees, as a share of its no-tax income.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from decisionlab.domains.taxation.economy import Economy, best_response
from decisionlab.domains.taxation.optimal import Schedule, best_schedule
from decisionlab.domains.taxation.saez import one_step_saez_rates
from decisionlab.domains.taxation.scenario import US_FEDERAL_RATES, OneStepScenario
from decisionlab.domains.taxation.sim import PLANNER, WORKERS


def best_response_shares(economy: Economy, obs: dict[str, dict[str, torch.Tensor]]) -> torch.Tensor:
    """``[B, N, 1]`` each worker's exact best response to the rates it sees, as a share of its no-tax income."""
    skills = obs[WORKERS]["skill"]
    rates = obs[WORKERS]["rates"][:, 0, :]
    income = best_response(skills, rates, economy.cutoffs, economy.c, economy.delta)
    return (income / economy.untaxed_of(skills)).clamp(0.0, 1.0).to(torch.get_default_dtype())[..., None]


class ScheduleBaseline:
    """A fixed schedule ``rates [K]`` for the planner; exact best responses for the workers."""

    def __init__(self, scenario: OneStepScenario, rates: Sequence[float], name: str,
                 device: torch.device | str = "cpu") -> None:
        if len(rates) != scenario.n_brackets:
            raise ValueError(f"{name}: {len(rates)} rates for {scenario.n_brackets} brackets")
        self.economy, self.name = Economy(scenario, device), name
        self.rates = torch.tensor(list(rates), dtype=torch.float64, device=self.economy.device)

    def act(self, obs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        batch = obs[PLANNER]["features"].shape[0]
        planner = self.rates.to(torch.get_default_dtype()).expand(batch, 1, -1)
        return {PLANNER: planner, WORKERS: best_response_shares(self.economy, obs)}


def free_market(scenario: OneStepScenario, device: Any = "cpu") -> ScheduleBaseline:
    return ScheduleBaseline(scenario, [0.0] * scenario.n_brackets, "free_market", device)


def us_federal(scenario: OneStepScenario, device: Any = "cpu") -> ScheduleBaseline:
    return ScheduleBaseline(scenario, US_FEDERAL_RATES, "us_federal", device)


def us_federal_problem(scenario: OneStepScenario) -> str | None:
    if scenario.n_brackets != len(US_FEDERAL_RATES):
        return f"the US federal schedule has {len(US_FEDERAL_RATES)} brackets, the scenario {scenario.n_brackets}"
    return None


def saez(scenario: OneStepScenario, device: Any = "cpu") -> ScheduleBaseline:
    return ScheduleBaseline(scenario, one_step_saez_rates(scenario), "saez", device)


class OptimalBaseline(ScheduleBaseline):
    """The exact best schedule of the scenario's objective on its rate grid (:func:`best_schedule`)."""

    def __init__(self, scenario: OneStepScenario, device: Any = "cpu") -> None:
        self.schedule: Schedule = best_schedule(scenario)
        super().__init__(scenario, self.schedule.rates, "optimal", device)


OPTIMAL_MAX_AGENTS = 2_000
"""Most workers the exact search takes on request (about 30 s at 1,000 on one core)."""


def optimal_problem(scenario: OneStepScenario) -> str | None:
    if scenario.n_agents > OPTIMAL_MAX_AGENTS:
        return f"the exact search takes up to {OPTIMAL_MAX_AGENTS:,} workers, the scenario has {scenario.n_agents:,}"
    if len(scenario.rate_grid) ** scenario.n_brackets > 21 ** 8:
        return (f"the exact search takes up to 21^8 schedules: {len(scenario.rate_grid)} rates ^ "
                f"{scenario.n_brackets} brackets is more")
    return None
