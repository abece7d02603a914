"""The workers' search step: under a schedule that makes a worker's utility bimodal, a worker left in the
worse basin moves to its exact best response (checked against the economy's exact responder), and every
other worker ends near its own."""

from __future__ import annotations

import math

import torch

from decisionlab.core import Reshaped
from decisionlab.domains.taxation.economy import Economy
from decisionlab.domains.taxation.scenario import OneStepScenario
from decisionlab.domains.taxation.sim import PLANNER, WORKERS
from decisionlab.domains.taxation.train import TaxationPlanner, TaxationWorkers, learning_reward, training_sim
from decisionlab.domains.taxation.worker_search import improve_workers

# 95% on 85–160 and 100% on 160–205 (the optimum's band at α = 2) with 20% above 205: the top worker's best
# response is to bunch at 85, far below where it earns untaxed (~299)
RATES = (0.0, 0.0, 0.0, 0.95, 0.999, 0.2, 0.2)


def setting(seed: int) -> tuple[OneStepScenario, Reshaped, dict[str, torch.nn.Module], torch.Tensor]:
    torch.manual_seed(seed)
    scenario = OneStepScenario(skill_pareto_alpha=2.0)
    sim = Reshaped(training_sim(scenario, "cpu"), learning_reward({PLANNER: 1.0, WORKERS: 1.0}))
    planner = TaxationPlanner.initial(scenario, "cpu", log_std=-10.0).net
    last = [m for m in planner.actor.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # a planner that sets RATES (its mean, squashed; its spread negligible)
        last.weight.zero_()
        last.bias.copy_(torch.tensor([math.atanh(2 * r - 1) if r > 0 else -10.0 for r in RATES]))
    workers = TaxationWorkers.initial(scenario, "cpu", min_log_std=-3.0).net
    exact = Economy(scenario, "cpu").respond(torch.tensor([RATES], dtype=torch.float64))[0]
    return scenario, sim, {PLANNER: planner, WORKERS: workers}, exact


def responses(sim: Reshaped, nets: dict[str, torch.nn.Module]) -> torch.Tensor:
    """``[N]`` the workers' deterministic incomes under the planner's rates."""
    state = sim.reset(1)
    state = sim.step(state, {PLANNER: torch.tensor([[RATES]]), WORKERS: torch.zeros(1, 10, 1)}, torch.zeros(1, 0)).state
    features = sim.flat_observation(sim.observe(state))[WORKERS][0]
    shares = nets[WORKERS].act(features)[:, 0].double()
    return shares * sim.economy.untaxed_of(state.skills)[0]


def test_a_worker_in_the_worse_basin_moves_to_its_exact_best_response() -> None:
    for seed in (0, 1):
        scenario, sim, nets, exact = setting(seed)
        untaxed = sim.economy.untaxed
        assert abs(float(exact[-1]) - 85.0) < 1e-6 and float(untaxed[-1]) > 250  # the case: bunching is best
        before = responses(sim, nets)
        assert float(before[-1]) > 150  # the fresh network earns ~0.75 of the no-tax income: the worse basin
        moved = improve_workers(sim, nets, torch.Generator().manual_seed(seed), economies=64)
        after = responses(sim, nets)
        assert moved > 0
        assert abs(float(after[-1]) - 85.0) < 0.01 * float(untaxed[-1])
        assert torch.all((after - exact).abs() < 0.02 * untaxed), (after, exact)


def test_without_the_fit_nothing_moves() -> None:
    _, sim, nets, exact = setting(0)
    before = responses(sim, nets)
    improve_workers(sim, nets, torch.Generator().manual_seed(0), economies=64, fit_steps=0)
    assert torch.equal(responses(sim, nets), before)
    assert abs(float(before[-1]) - float(exact[-1])) > 50
