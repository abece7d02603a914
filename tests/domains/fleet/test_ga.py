"""The fleet GA: never worse than the greedy schedule it starts from, improves on its start population, its
reported profit is what its plan earns when executed, it is deterministic for a seed, and without greedy's
help it still beats the random policy."""

from __future__ import annotations

import random
from dataclasses import dataclass

import polars as pl
import pytest
import torch

from decisionlab.core import RandomPolicy, Sum, make_generator, run, torch_threads
from decisionlab.domains.fleet.ga import GAPlan, GAPolicy, GASettings, plan_day, replicate
from decisionlab.domains.fleet.policies import GreedyPolicy
from decisionlab.domains.fleet.scenario import PRESETS, FleetScenario
from decisionlab.domains.fleet.schedule import ScheduleFollower
from decisionlab.domains.fleet.sim import FleetSim, FleetState

QUICK = GASettings(population=32, generations=10, seed=7)  # under a second a uam_small day


def profit_of(sim: FleetSim, policy: object, state: FleetState) -> torch.Tensor:
    return run(sim, policy, state=state, reducers={"profit": Sum("profit")}).totals["profit"]


@dataclass
class Planned:
    sim: FleetSim
    state: FleetState
    greedy: torch.Tensor
    ga: GAPlan


@pytest.fixture(scope="module")
def small() -> Planned:
    sim = FleetSim(PRESETS["uam_small"])
    state = sim.reset(6, make_generator(5))
    with torch_threads(1):  # module fixtures come before conftest's per-test thread setting
        return Planned(sim, state, profit_of(sim, GreedyPolicy(sim), state), plan_day(sim, state, QUICK))


def test_seeded_with_greedy_the_ga_never_loses_to_greedy_and_sometimes_beats_it(small: Planned) -> None:
    assert torch.all(small.ga.profit >= small.greedy), (small.ga.profit, small.greedy)
    assert torch.any(small.ga.profit > small.greedy + 1.0), (small.ga.profit, small.greedy)


def test_the_ga_improves_on_its_start_population_and_elitism_keeps_the_best(small: Planned) -> None:
    history = small.ga.history
    assert history.height == 6 * (QUICK.generations + 1)
    for day in range(6):
        best = history.filter(history["day"] == day).sort("generation")["best"].to_list()
        assert all(later >= earlier for earlier, later in zip(best, best[1:], strict=False)), best
        assert best[-1] == float(small.ga.profit[day])
    start = history.filter(history["generation"] == 0)["best"]
    end = history.filter(history["generation"] == QUICK.generations)["best"]
    assert (end > start + 1.0).any(), (start, end)
    assert small.ga.evaluations == history.group_by("day").agg(pl.col("evaluations").max())["evaluations"].sum()


def test_executing_the_plans_earns_exactly_the_reported_profit(small: Planned) -> None:
    assert small.ga.plans.shape == (6, small.sim.scenario.n_aircraft, small.sim.scenario.slots)
    assert torch.equal(profit_of(small.sim, ScheduleFollower(small.sim, small.ga.plans), small.state), small.ga.profit)
    assert small.ga.seconds.shape == (6,) and bool((small.ga.seconds > 0).all())


def test_the_same_seed_gives_the_same_plans_and_restores_the_global_random_state(small: Planned) -> None:
    random.seed(123)
    before = random.getstate()
    again = plan_day(small.sim, replicate(small.state, 1, 1), QUICK.model_copy(update={"generations": 5}))
    assert random.getstate() == before
    # each day's GA is seeded by its row: day 1 alone, planned twice, gives the same plan
    twice = plan_day(small.sim, replicate(small.state, 1, 1), QUICK.model_copy(update={"generations": 5}))
    assert torch.equal(again.plans, twice.plans) and torch.equal(again.profit, twice.profit)
    assert again.history.drop("seconds").equals(twice.history.drop("seconds"))


def test_the_policy_plans_then_follows_and_reports_planning_time_per_decision() -> None:
    sim = FleetSim(PRESETS["uam_small"])
    policy = GAPolicy(sim, QUICK.model_copy(update={"generations": 3}))
    state = sim.reset(2, make_generator(1))
    with pytest.raises(RuntimeError, match="before plan"):
        policy.act(sim.observe(state))
    policy.plan(sim, state)
    assert policy.last is not None and torch.equal(profit_of(sim, policy, state), policy.last.profit)
    assert policy.decisions_planned == int(policy.last.decisions.sum()) > 0
    assert 0 < policy.seconds_per_decision < policy.planning_seconds


def test_without_greedy_the_ga_still_beats_random_on_the_same_days() -> None:
    scenario = FleetScenario(n_vertiports=4, n_aircraft=6, map_miles=30.0, passengers_per_hour=60.0, day_end_h=9.0,
                             parking_pads=3, charging_pads=2)
    sim = FleetSim(scenario)
    state = sim.reset(3, make_generator(2))
    pure = QUICK.model_copy(update={"seed_with_greedy": False, "replan_prob": 0.0})  # never sees greedy
    ga = plan_day(sim, state, pure)
    randomly = profit_of(sim, RandomPolicy(sim, make_generator(3)), state)
    assert torch.all(ga.profit > randomly), (ga.profit, randomly)
