"""The one-step economy as a batched two-level simulator: a planner sets the rates, then the workers respond.

Each tax period takes two decisions. In the first (``phase`` 0) the planner picks the seven marginal
rates; in the second (``phase`` 1) every worker, seeing the rates, picks its income, as a fraction of
its no-tax income, up to 1.5 (no non-negative tax makes a worker earn more than its no-tax income, so no
best response is lost, and the no-tax optimum lies inside the range). At the end of the second decision
taxes are collected and rebated: each worker's reward is its utility, the planner's the social
objective of the period. Actions of the group that is not
deciding are ignored; a policy of one group alone acts with a planner that sets no tax or with workers
that respond exactly. Deterministic: there is no exogenous randomness (the exogenous tensor is empty).

Agent groups: ``planner`` (1 agent, ``Box(K)`` rates in [0, 1]) and ``workers`` (N agents, ``Box(1)`` in
[0, 1.5]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from decisionlab.core import AgentGroup, Box, Composite, Spaces, StepResult
from decisionlab.domains.taxation.economy import Economy, best_response, outcome, social_metrics
from decisionlab.domains.taxation.scenario import OneStepScenario

PLANNER, WORKERS = "planner", "workers"
MAX_SHARE = 1.5
"""The largest income a worker may choose, as a share of its no-tax income: above 1 so that the no-tax
optimum (share 1) is inside the range, where a squashed Gaussian policy can reach it."""
PLANNER_FEATURES = 8
"""phase, the period's place in the episode, the objective, N (log), the skills' log mean, spread, min, max."""


@dataclass(frozen=True)
class EconomyState:
    """``rates [B, K]`` in force (set by the planner this period), ``phase [B]`` (0: the planner decides,
    1: the workers), ``period [B]``, ``skills [B, N]`` (ascending)."""

    rates: torch.Tensor
    phase: torch.Tensor
    period: torch.Tensor
    skills: torch.Tensor


class OneStepSim:
    """Batched :class:`OneStepScenario` economies (module docstring)."""

    differentiable = False

    def __init__(self, scenario: OneStepScenario, device: torch.device | str = "cpu", max_rate: float = 1.0,
                 labour_scale: float = 1.0) -> None:
        """``max_rate`` and ``labour_scale`` are training curricula: the planner's action ``a ∈ [0, 1]``
        sets the rates ``max_rate · a``, and the workers' labour cost is multiplied by ``labour_scale``
        (1 and 1: the economy itself)."""
        self.scenario, self.device = scenario, torch.device(device)
        self.max_rate, self.labour_scale = float(max_rate), float(labour_scale)
        self.economy = Economy(scenario, self.device)
        self.horizon = 2 * scenario.tax_periods
        k, n = scenario.n_brackets, scenario.n_agents
        self.worker_features = 3 + k
        self.spaces = Spaces(agents={
            PLANNER: AgentGroup(1, Composite({"features": Box((PLANNER_FEATURES,))}),
                                Box((k,), low=0.0, high=1.0, description="marginal rate of each bracket"),
                                Box((PLANNER_FEATURES,))),
            WORKERS: AgentGroup(n, Composite({"features": Box((self.worker_features,)),
                                              "skill": Box((), low=0.0, dtype="float64"),
                                              "rates": Box((k,), low=0.0, high=1.0, dtype="float64")}),
                                Box((1,), low=0.0, high=MAX_SHARE,
                                    description="income as a share of the no-tax income"),
                                Box((self.worker_features,))),
        })

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros(batch, periods, 0, device=self.device)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> EconomyState:
        k = self.scenario.n_brackets
        zeros = torch.zeros(batch, dtype=torch.long, device=self.device)
        return EconomyState(torch.zeros(batch, k, dtype=torch.float64, device=self.device), zeros, zeros,
                            self.economy.skills.expand(batch, -1).clone())

    def observe(self, state: EconomyState) -> dict[str, dict[str, torch.Tensor]]:
        s = self.scenario
        batch, n = state.skills.shape
        dtype = torch.get_default_dtype()
        phase = state.phase.to(dtype)[:, None]
        log_skill = (state.skills / s.skill_min).log().to(dtype)
        place = (state.period.to(dtype) / s.tax_periods)[:, None]
        welfare = torch.full_like(phase, 1.0 if s.objective == "welfare" else 0.0)
        planner = torch.cat([phase, place, welfare, torch.full_like(phase, float(n)).log(),
                             log_skill.mean(1, keepdim=True), log_skill.std(1, keepdim=True, unbiased=False),
                             log_skill[:, :1], log_skill[:, -1:]], 1)[:, None, :]
        untaxed = self.economy.untaxed_of(state.skills)
        # a worker sees its skill, its no-tax income (log, relative to the top cut-off) and the rates
        scale = max(s.bracket_cutoffs[-1], 1.0)
        workers = torch.cat([phase[:, None].expand(batch, n, 1), log_skill[..., None],
                             (untaxed / scale).log().to(dtype)[..., None],
                             state.rates.to(dtype)[:, None, :].expand(batch, n, -1)], -1)
        return {PLANNER: {"features": planner}, WORKERS: {
            "features": workers, "skill": state.skills, "rates": state.rates[:, None, :].expand(batch, n, -1)}}

    def flat_observation(self, obs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {name: part["features"] for name, part in obs.items()}

    def step(self, state: EconomyState, action: dict[str, torch.Tensor], exogenous: torch.Tensor
             ) -> StepResult[EconomyState]:
        planning = state.phase == 0
        if PLANNER in action:
            chosen = self.max_rate * action[PLANNER].reshape(state.rates.shape).to(state.rates).clamp(0.0, 1.0)
        else:  # a policy of the workers alone: no tax
            chosen = torch.zeros_like(state.rates)
        rates = torch.where(planning[:, None], chosen, state.rates)
        if WORKERS in action:
            share = action[WORKERS].reshape(state.skills.shape).to(state.skills).clamp(0.0, MAX_SHARE)
            income = share * self.economy.untaxed_of(state.skills)
        else:  # a policy of the planner alone: the workers respond exactly
            income = best_response(state.skills, rates, self.economy.cutoffs, self.economy.c, self.economy.delta)
        c = self.economy.c * self.labour_scale
        result = outcome(state.skills, rates, income, self.economy.cutoffs, c, self.economy.delta)
        metrics = social_metrics(result, state.skills)
        settle = ~planning  # taxes are collected when the workers have chosen
        dtype = torch.get_default_dtype()
        objective = metrics[self.scenario.objective]
        reward = {PLANNER: torch.where(settle, objective, 0.0).to(dtype)[:, None],
                  WORKERS: torch.where(settle[:, None], result.utility, 0.0).to(dtype)}
        period = state.period + settle.long()
        info = {name: torch.where(settle, value, 0.0) for name, value in metrics.items()}
        info["settled"] = settle.to(torch.float64)
        info["rebate"] = torch.where(settle, result.rebate, 0.0)
        done = period >= self.scenario.tax_periods
        nxt = EconomyState(torch.where(settle[:, None], torch.zeros_like(rates), rates), 1 - state.phase, period,
                           state.skills)
        return StepResult(nxt, reward, info, terminated=done)
