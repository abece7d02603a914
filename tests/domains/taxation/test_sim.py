"""The two-level simulator: the planner's rates, then the workers' incomes; rewards are the workers'
utilities and the planner's objective, and the exact baselines reproduce the economy's figures through it."""

from __future__ import annotations

import pytest
import torch

from decisionlab.core import Sum, run
from decisionlab.domains.taxation.economy import Economy
from decisionlab.domains.taxation.policies import saez
from decisionlab.domains.taxation.scenario import OneStepScenario
from decisionlab.domains.taxation.sim import PLANNER, WORKERS, OneStepSim


def test_two_decisions_per_period_and_rewards_at_settlement() -> None:
    scenario = OneStepScenario(n_agents=6, tax_periods=3, objective="welfare")
    sim = OneStepSim(scenario)
    state = sim.reset(2)
    rates = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], [0.0] * 7])
    shares = torch.tensor([[[0.5]] * 6, [[1.0]] * 6])
    action = {PLANNER: rates[:, None, :], WORKERS: torch.zeros(2, 6, 1)}
    first = sim.step(state, action, torch.zeros(2, 0))
    assert torch.equal(first.reward[PLANNER], torch.zeros(2, 1))
    assert torch.allclose(first.state.rates, rates.double())
    ignored = {PLANNER: torch.ones(2, 1, 7), WORKERS: shares}  # the planner's second action is ignored
    second = sim.step(first.state, ignored, torch.zeros(2, 0))
    economy = Economy(scenario)
    income = shares[..., 0].double() * economy.untaxed
    expected = economy.outcome(rates.double(), income)
    assert torch.allclose(second.reward[WORKERS].double(), expected.utility, rtol=1e-6)
    welfare = economy.metrics(rates.double(), income)["welfare"]
    assert torch.allclose(second.reward[PLANNER][:, 0].double(), welfare, rtol=1e-6)
    assert not bool(second.terminated.any()) and torch.equal(second.state.period, torch.ones(2, dtype=torch.long))


def test_saez_through_the_simulator_matches_the_economy_every_period() -> None:
    scenario = OneStepScenario(n_agents=10, tax_periods=4)
    sim = OneStepSim(scenario)
    done = run(sim, saez(scenario), batch=3, reducers={"product": Sum("equality_times_productivity")})
    assert done.totals["product"].tolist() == pytest.approx([4 * 451.936] * 3, abs=4 * 1e-3)


def test_a_worker_who_deviates_from_its_best_response_loses_utility() -> None:
    scenario = OneStepScenario(n_agents=8)
    sim = OneStepSim(scenario)
    policy = saez(scenario)
    state = sim.step(sim.reset(1), policy.act(sim.observe(sim.reset(1))), torch.zeros(1, 0)).state
    best = policy.act(sim.observe(state))[WORKERS]

    def private(shares: torch.Tensor) -> torch.Tensor:
        """Utility before the rebate, which a single worker's choice barely moves (its best response ignores it)."""
        result = sim.step(state, {PLANNER: torch.zeros(1, 1, 7), WORKERS: shares}, torch.zeros(1, 0))
        return result.reward[WORKERS] - result.info["revenue"][:, None] / scenario.n_agents

    base = private(best)
    for worker in range(scenario.n_agents):
        for delta in (-0.05, 0.05):
            moved = best.clone()
            moved[0, worker] = (moved[0, worker] + delta).clamp(0.0, 1.0)
            assert float(private(moved)[0, worker]) <= float(base[0, worker]) + 1e-4
