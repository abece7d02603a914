"""The planner on the rate grid: one agent per bracket whose choice is a grid rate, masked above the cap; its
member acts in the plain simulator's form, so it serves and pairs as the Gaussian planner does."""

from __future__ import annotations

import pytest
import torch

from decisionlab.core import Discrete
from decisionlab.domains.taxation.grid_planner import GridPlannerSim, TaxationGridPlanner
from decisionlab.domains.taxation.scenario import OneStepScenario
from decisionlab.domains.taxation.serve import TaxState, decide_both
from decisionlab.domains.taxation.sim import PLANNER, WORKERS, OneStepSim
from decisionlab.domains.taxation.train import TaxationPair, joint_objective, planner_rates


def test_a_grid_choice_steps_the_economy_as_its_rates_do() -> None:
    scenario = OneStepScenario(n_agents=6)
    for max_rate in (1.0, 0.5):
        plain = OneStepSim(scenario, max_rate=max_rate)
        grid = GridPlannerSim(OneStepSim(scenario, max_rate=max_rate))
        planner = grid.spaces.agents[PLANNER]
        assert planner.count == 7
        assert planner.action == Discrete(21, masked=True, description=planner.action.description)
        index = torch.tensor([[0, 2, 5, 9, 0, 7, 10], [10, 10, 10, 0, 1, 3, 4]])
        rates = index.double() * 0.05
        shares = torch.full((2, 6, 1), 0.8)
        start = grid.reset(2)
        planned = grid.step(start, {PLANNER: index, WORKERS: shares}, torch.zeros(2, 0)).state
        assert torch.allclose(planned.rates, rates)
        settled = grid.step(planned, {PLANNER: index, WORKERS: shares}, torch.zeros(2, 0))
        reference = plain.step(planned, {PLANNER: torch.zeros(2, 1, 7), WORKERS: shares}, torch.zeros(2, 0))
        assert settled.reward[PLANNER].shape == (2, 7)  # each bracket's agent gets the period's objective
        assert torch.equal(settled.reward[PLANNER], reference.reward[PLANNER].expand(-1, 7))
        assert torch.equal(settled.reward[WORKERS], reference.reward[WORKERS])
        mask = grid.action_mask(grid.observe(start))[PLANNER]
        assert mask.shape == (2, 7, 21)
        assert int(mask[0, 0].sum()) == round(max_rate / 0.05) + 1  # 0, 5%, ... up to the cap


def test_the_features_name_the_bracket() -> None:
    scenario = OneStepScenario(n_agents=4)
    grid = GridPlannerSim(OneStepSim(scenario))
    features = grid.flat_observation(grid.observe(grid.reset(3)))[PLANNER]
    assert features.shape == (3, 7, grid.spaces.agents[PLANNER].features.shape[0])
    assert torch.equal(features[..., -7:], torch.eye(7).expand(3, 7, 7))
    assert torch.equal(features[:, :1, :-7].expand(3, 7, -1), features[..., :-7])


def test_a_grid_planner_serves_and_pairs_in_the_plain_simulator() -> None:
    scenario = OneStepScenario(n_agents=5)
    torch.manual_seed(0)
    pair = TaxationPair.initial(scenario, "cpu", hidden=8, planner="grid")
    planner = pair.members[PLANNER]
    assert isinstance(planner, TaxationGridPlanner)
    with torch.no_grad():  # a head that prefers the 25% rate (index 5) in every bracket, less so the further off
        head = planner.net.actor[-1]
        head.weight.zero_()
        head.bias.copy_(-(torch.arange(21.0) - 5).abs())
    assert planner_rates(pair, scenario) == [0.25] * 7
    capped = OneStepSim(scenario, max_rate=0.2)  # above the cap the most probable legal choice is the cap
    assert planner_rates(pair, scenario, capped) == pytest.approx([0.2] * 7, abs=1e-6)
    sim = OneStepSim(scenario)
    answer = decide_both(sim, [TaxState(rates=None), TaxState(rates=[0.1] * 7)], pair.for_scenario(scenario))
    assert torch.allclose(answer["rates"], torch.tensor([[0.25] * 7, [0.1] * 7], dtype=torch.float64), atol=1e-6)
    assert answer["incomes"].shape == (2, 5)
    assert joint_objective(scenario, pair, 2, torch.device("cpu")) == joint_objective(scenario, pair, 2,
                                                                                         torch.device("cpu"))
