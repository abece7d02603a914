"""The Gather-Trade-Build setting: scripted workers that answer the taxes, the Saez estimate's ingredients
against known answers, the planner's period view against the economy it wraps, and serving."""

from __future__ import annotations

import math

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from decisionlab.apps.api import add_error_handlers
from decisionlab.apps.routes import domain_router
from decisionlab.core import make_generator, run
from decisionlab.domains.taxation import SPEC
from decisionlab.domains.taxation.gtb import BUILD, NOOP, PLANNER, WORKERS, GatherTradeBuildSim
from decisionlab.domains.taxation.gtb_saez import elasticity, tail_and_weights
from decisionlab.domains.taxation.gtb_train import PeriodSim
from decisionlab.domains.taxation.gtb_workers import DOWN, RIGHT, GatherBuildWorkers, GtbSchedule
from decisionlab.domains.taxation.saez import saez_rate
from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario
from tests.domains.taxation.test_gtb import small, start

ZERO = [0.0] * 7


def choices(sim: GatherTradeBuildSim, state, rates: list[float] = ZERO) -> list[int]:
    state = state.__class__(**{**state.__dict__, "rates": torch.tensor([rates], dtype=torch.float64)})
    return GatherBuildWorkers(sim.scenario).act(sim.observe(state))[WORKERS][0].tolist()


def test_a_worker_builds_when_it_can_and_walks_to_the_resource_it_lacks() -> None:
    sim = small()
    # worker 0 holds both goods on a free tile: it builds; worker 1 has stone and sees wood two tiles right
    state = start(sim, [(0, 0), (5, 2)], wood=((5, 4),), stone=((0, 6),), goods=[[1, 1], [0, 1]])
    assert choices(sim, state) == [BUILD, RIGHT]
    # wood below instead: it goes down
    state = start(sim, [(0, 0), (3, 2)], wood=((5, 2),), stone=((0, 6),), goods=[[1, 1], [0, 1]])
    assert choices(sim, state)[1] == DOWN


def test_a_worker_rests_when_the_tax_takes_what_a_house_pays() -> None:
    sim = small()
    state = start(sim, [(0, 0), (5, 2)], wood=((5, 4),), stone=((0, 6),), goods=[[1, 1], [0, 1]])
    assert choices(sim, state, [1.0] * 7) == [NOOP, NOOP]
    # and a rich worker stops before a poor one: the same house is worth less utility to it
    rich = start(sim, [(0, 0), (5, 2)], wood=((5, 4),), stone=((0, 6),), goods=[[1, 1], [1, 1]],
                 coin=[10_000.0, 0.0])
    assert choices(sim, rich) == [NOOP, BUILD]


def test_scripted_workers_work_less_under_higher_flat_taxes() -> None:
    scenario = GatherTradeBuildScenario(episode_steps=300, tax_period_steps=100)
    sim = GatherTradeBuildSim(scenario)
    labour = []
    for rate in (0.0, 0.3, 0.6):
        generator = make_generator(3, "cpu")
        done = run(sim, GtbSchedule(scenario, [rate] * 7, "flat"), state=sim.reset(16, generator),
                   generator=generator)
        labour.append(float(done.final_state.labour.sum()))
    assert labour[0] > labour[1] > labour[2]


def test_the_elasticity_regression_recovers_a_known_response() -> None:
    no_tax = torch.rand(50, 10, 4, generator=make_generator(0, "cpu")) * 30 + 1
    taxed = {rate: no_tax * (1 - rate) ** 0.7 for rate in (0.1, 0.2, 0.4)}
    e, schedules = elasticity(no_tax, taxed)
    assert e == pytest.approx(0.7) and schedules == 3
    # lumpy incomes: each worker-period earns all or nothing, with the share earning falling as (1 − τ)^e;
    # the totals still give e, where a per-unit regression of logs would see no response at all
    draws = torch.rand(400_000, generator=make_generator(1, "cpu"), dtype=torch.float64)
    lumpy = {rate: 10.0 * (draws < 0.8 * (1 - rate) ** 1.5).double() for rate in (0.0, 0.1, 0.2, 0.4)}
    no = lumpy.pop(0.0)
    assert elasticity(no, lumpy)[0] == pytest.approx(1.5, rel=0.01)
    lumpy[0.2] = torch.zeros_like(no)  # no income under a tax: left out, not log(0)
    assert elasticity(no, lumpy) == (pytest.approx(1.5, rel=0.01), 2)


def test_the_tail_estimate_of_pareto_incomes_is_their_shape_and_g_falls_with_income() -> None:
    u = torch.rand(200_000, generator=make_generator(1, "cpu"), dtype=torch.float64)
    incomes = 5.0 * (1 - u) ** (-1 / 2.5)  # Pareto(2.5) above 5
    tails, shares = tail_and_weights(incomes, (0.0, 10.0, 40.0, 1e9))
    assert tails[0] == 0.0 and tails[1] == pytest.approx(2.5, rel=0.03) and tails[2] == pytest.approx(2.5, rel=0.1)
    assert tails[3] == tails[2]  # nobody above: the highest estimated tail
    assert shares[0] == pytest.approx(1.0) and shares[0] > shares[1] > shares[2]
    # G(z) of inverse-income weights for a Pareto(a) tail: E[1/z | z ≥ c] / E[1/z] = (5/c)
    assert shares[1] == pytest.approx(0.5, rel=0.02)
    assert saez_rate(0.0, 2.0, 0.5) == pytest.approx(0.5)


def test_the_period_view_adds_up_the_economys_planner_rewards() -> None:
    scenario = GatherTradeBuildScenario(n_agents=3, map_size=10, observation_range=2, episode_steps=40,
                                        tax_period_steps=10)
    base = GatherTradeBuildSim(scenario)
    workers = GatherBuildWorkers(scenario)
    periods = PeriodSim(base, workers, max_rate=0.5)
    rates = torch.tensor([[[0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0]]])
    generator = make_generator(5, "cpu")
    state = periods.reset(2, generator)
    paths = periods.sample_exogenous(2, periods.horizon, generator)
    total = torch.zeros(2)
    for t in range(periods.horizon):
        result = periods.step(state, {PLANNER: rates.expand(2, 1, -1)}, paths[:, t])
        total, state = total + result.reward[PLANNER][:, 0], result.state
    assert bool(result.terminated.all())
    # the same draws, a step at a time in the economy, with the rates capped at 0.5
    flat = paths.reshape(2, base.horizon, -1)
    done = run(base, _Joint(workers, rates * 0.5), state=base.reset(2, make_generator(5, "cpu")), exogenous=flat,
               until_done=False)
    assert torch.equal(done.final_state.coin, state.coin)
    assert total.tolist() == pytest.approx(state.welfare.tolist())


def test_the_paired_period_view_subtracts_a_no_tax_twin_on_the_same_draws() -> None:
    scenario = GatherTradeBuildScenario(n_agents=3, map_size=10, observation_range=2, episode_steps=40,
                                        tax_period_steps=10)
    base, workers = GatherTradeBuildSim(scenario), GatherBuildWorkers(scenario)
    rates = torch.full((2, 1, 7), 0.6)
    results = {}
    for paired in (False, True):
        periods = PeriodSim(base, workers, paired=paired)
        generator = make_generator(9, "cpu")
        state = periods.reset(2, generator)
        paths = periods.sample_exogenous(2, periods.horizon, generator)
        rewards = []
        for t in range(periods.horizon):
            result = periods.step(state, {PLANNER: rates}, paths[:, t])
            rewards.append(result.reward[PLANNER][:, 0])
            state = result.state
        results[paired] = (torch.stack(rewards), state)
    alone, (twin_rewards, twin_state) = results[False][0], results[True]
    assert twin_state.coin.shape[0] == 4 and periods.observe(twin_state)[PLANNER]["features"].shape[0] == 2
    assert bool((twin_state.rates[2:] == 0).all()) and twin_state.rates[:2].tolist() == [[pytest.approx(0.6)] * 7] * 2
    assert twin_rewards.sum(0).tolist() == pytest.approx((twin_state.welfare[:2] - twin_state.welfare[2:]).tolist())
    assert alone.sum(0).tolist() == pytest.approx(twin_state.welfare[:2].tolist())


class _Joint:
    def __init__(self, workers: GatherBuildWorkers, rates: torch.Tensor) -> None:
        self.workers, self.rates = workers, rates

    def act(self, obs):
        return {**self.workers.act(obs), PLANNER: self.rates.expand(obs[PLANNER]["features"].shape[0], 1, -1)}


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(domain_router(SPEC), prefix=SPEC.url_path)
    return TestClient(app)


SNAPSHOT = {"coin": [5.0, 50.0, 0.0, 12.0], "wood": [0, 1, 2, 0], "stone": [1, 0, 0, 0],
            "period_income": [0.0] * 4, "rates": ZERO, "step": 100}


def test_the_planner_is_served_from_a_snapshot_and_bad_snapshots_are_422s(client: TestClient) -> None:
    answer = client.post("/v1/taxation/act", json={"scenario": "gather_trade_build", "policy": "us_federal",
                                                    "states": [SNAPSHOT]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["actions"][0]["rates"] == pytest.approx([0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37])
    for field, value in (("coin", [1.0, 2.0]), ("wood", [0, 0, 0, -1]), ("rates", [0.1] * 6),
                         ("rates", [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 1.5]), ("step", 1000)):
        bad = client.post("/v1/taxation/act", json={"scenario": "gather_trade_build", "policy": "us_federal",
                                                     "states": [{**SNAPSHOT, field: value}]})
        assert bad.status_code == 422 and f"states[0].{field}" in bad.text, (field, bad.text)
    assert not math.isnan(answer.json()["actions"][0]["rates"][0])


def test_the_period_trace_ends_where_the_episode_metrics_do() -> None:
    from decisionlab.domains.taxation.gtb_metrics import episode_metrics
    from decisionlab.domains.taxation.gtb_view import period_trace

    scenario = GatherTradeBuildScenario(n_agents=3, map_size=10, observation_range=2, episode_steps=40,
                                        tax_period_steps=10)
    policy = GtbSchedule(scenario, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "rising")
    periods, rates = period_trace(scenario, policy, economies=4, seed=2)
    metrics = episode_metrics(scenario, policy, 4, 2, torch.device("cpu"))
    assert periods["period"].to_list() == [1, 2, 3, 4]
    final = float(metrics["equality_times_productivity"].mean())
    assert periods["equality_times_productivity"][-1] == pytest.approx(final)
    assert float(periods["tax_collected"].sum()) == pytest.approx(float(metrics["revenue"].mean()))
    assert rates.filter(rates["period"] == 2)["rate"].to_list() == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])


def test_the_search_scores_all_candidates_on_the_same_economies_and_keeps_its_best() -> None:
    from decisionlab.domains.taxation.gtb_metrics import episode_metrics
    from decisionlab.domains.taxation.gtb_search import objective_of, search_schedule

    scenario = GatherTradeBuildScenario(n_agents=3, map_size=10, observation_range=2, episode_steps=30,
                                        tax_period_steps=10, bracket_cutoffs=(0.0, 10.0))
    candidates = torch.tensor([[0.0, 0.0], [0.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    batched = objective_of(scenario, candidates, economies=4, seed=11)
    for rates, value in zip(candidates.tolist(), batched.tolist(), strict=True):  # one at a time, the same economies
        alone = episode_metrics(scenario, GtbSchedule(scenario, rates, "one"), 4, 11, torch.device("cpu"))
        assert value == pytest.approx(float(alone["equality_times_productivity"].mean()))
    found = search_schedule(scenario, economies=4, step=0.5, passes=2, seed=11)
    grid = torch.tensor([[a, b] for a in (0.0, 0.5, 1.0) for b in (0.0, 0.5, 1.0)], dtype=torch.float64)
    every = objective_of(scenario, grid, economies=4, seed=11)
    assert found.value == pytest.approx(float(objective_of(scenario, torch.tensor([found.rates]), 4, 11)[0]))
    assert found.value >= float(every[0]) - 1e-9  # never below no tax, where it starts
    assert found.value <= float(every.max()) + 1e-9


def test_imitation_fits_the_scripted_choices_on_the_learners_own_states() -> None:
    from decisionlab.domains.taxation.gtb_imitation import imitate
    from decisionlab.domains.taxation.gtb_train import GtbWorkers

    scenario = GatherTradeBuildScenario(n_agents=2, map_size=9, observation_range=2, episode_steps=40,
                                        tax_period_steps=10)
    torch.manual_seed(0)
    member = GtbWorkers.initial(scenario, "cpu", 32)
    before = [p.detach().clone() for p in member.net.parameters()]
    losses = imitate(member, scenario, 300, 16, make_generator(2, "cpu"), horizon=40)
    # the weighted cross-entropy of the scripted choices (DAgger: on states the learner's own choices reach)
    assert losses[0] > 3.0 and losses[-1] < 0.5 * losses[0], losses
    assert any(not torch.equal(a, b) for a, b in zip(before, member.net.parameters(), strict=True))


def test_a_schedule_per_period_sets_each_periods_rates_at_its_start() -> None:
    from decisionlab.domains.taxation.gtb_search import objective_of
    from decisionlab.domains.taxation.gtb_view import period_trace

    scenario = GatherTradeBuildScenario(n_agents=3, map_size=10, observation_range=2, episode_steps=30,
                                        tax_period_steps=10, bracket_cutoffs=(0.0, 10.0))
    table = [[0.0, 0.1], [0.5, 0.6], [0.9, 1.0]]
    policy = GtbSchedule(scenario, table, "by period")
    _, rates = period_trace(scenario, policy, economies=2, seed=4)
    assert rates["rate"].to_list() == pytest.approx([r for row in table for r in row])
    # the same schedule in every period scores as the single schedule; a batch of per-period candidates too
    flat = objective_of(scenario, torch.tensor([[0.2, 0.4]], dtype=torch.float64), 3, 5)
    repeated = objective_of(scenario, torch.tensor([[[0.2, 0.4]] * 3, table], dtype=torch.float64), 3, 5)
    assert float(repeated[0]) == pytest.approx(float(flat[0]))
    alone = episode_metrics_of(scenario, GtbSchedule(scenario, table, "t"), 3, 5)
    assert float(repeated[1]) == pytest.approx(alone)


def episode_metrics_of(scenario: GatherTradeBuildScenario, policy: GtbSchedule, economies: int, seed: int) -> float:
    from decisionlab.domains.taxation.gtb_metrics import episode_metrics

    return float(episode_metrics(scenario, policy, economies, seed, torch.device("cpu"))[
        "equality_times_productivity"].mean())


def test_learned_workers_draw_their_choices_from_the_observation_and_only_legal_ones() -> None:
    from decisionlab.domains.taxation.gtb_train import GtbWorkers

    scenario = GatherTradeBuildScenario(n_agents=2, map_size=9, observation_range=2, episode_steps=40,
                                        tax_period_steps=10)
    torch.manual_seed(0)
    member = GtbWorkers.initial(scenario, "cpu", 32)
    sim = GatherTradeBuildSim(scenario)
    obs = sim.observe(sim.reset(512, make_generator(3, "cpu")))
    first = member.for_scenario(scenario).act(obs)[WORKERS]
    again = member.for_scenario(scenario).act(obs)[WORKERS]
    assert torch.equal(first, again)  # the draw is a function of the observation
    reader = member.reader
    assert reader is not None
    with torch.no_grad():
        distribution = member.net.distribution(reader.features(sim, obs), reader.mask(sim, obs))
    chosen = reader.rows({WORKERS: first})
    probs = distribution.log_probs.exp()
    assert bool((probs.gather(-1, chosen[..., None]) > 0).all())  # every draw is a legal choice
    argmax = distribution.mode()
    # an untrained network spreads its mass: a draw differs from the most probable choice about as often as
    # the distribution says it should (1 − the mean top probability), far from never
    expected = float(1 - probs.max(-1).values.mean())
    assert expected > 0.5
    assert float((chosen != argmax).float().mean()) == pytest.approx(expected, abs=0.05)


def test_workers_adapt_to_a_fixed_schedule_in_a_copy() -> None:
    from decisionlab.domains.taxation.gtb_train import GtbTwoLevelOptions, GtbWorkers, UnderSchedule, adapt_workers

    scenario = GatherTradeBuildScenario(n_agents=2, map_size=9, observation_range=2, episode_steps=20,
                                        tax_period_steps=10, bracket_cutoffs=(0.0, 10.0))
    schedule = GtbSchedule(scenario, [[0.3, 0.6], [0.9, 0.1]], "by period")
    sim = UnderSchedule(GatherTradeBuildSim(scenario), schedule)
    state = sim.reset(3, make_generator(0, "cpu"))
    draws = sim.sample_exogenous(3, 20, make_generator(1, "cpu"))
    seen = []
    for t in range(20):  # whatever the planner's action, the schedule's period row is what is applied
        noop = torch.full((3, 2), NOOP, dtype=torch.long)
        state = sim.step(state, {WORKERS: noop, PLANNER: torch.ones(3, 1, 2)}, draws[:, t]).state
        seen.append(state.rates[0].tolist())
    assert seen[0] == pytest.approx([0.3, 0.6]) and seen[-1] == pytest.approx([0.9, 0.1])
    torch.manual_seed(0)
    member = GtbWorkers.initial(scenario, "cpu", 16)
    before = {k: v.clone() for k, v in member.net.state_dict().items()}
    options = GtbTwoLevelOptions(num_envs=4, rollout_steps=10)
    adapted = adapt_workers(member, schedule, 80, make_generator(2, "cpu"), options)
    assert all(torch.equal(before[k], v) for k, v in member.net.state_dict().items())  # the original is untouched
    assert any(not torch.equal(before[k], v) for k, v in adapted.net.state_dict().items())
    assert adapted.reader is not None  # bound: it acts at once


def test_saez_from_given_workers_matches_the_scripted_default_when_they_are_the_scripted_ones() -> None:
    from decisionlab.domains.taxation.gtb_saez import estimate_saez

    scenario = GatherTradeBuildScenario(n_agents=3, map_size=10, observation_range=2, episode_steps=40,
                                        tax_period_steps=10)
    default = estimate_saez(scenario, economies=4, seed=3)
    given = estimate_saez(scenario, economies=4, seed=3, workers=GatherBuildWorkers(scenario))
    assert given == default
    assert default.incomes == 4 * 4 * 3  # economies × periods × workers
