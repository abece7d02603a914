"""V1D3 as the paper has it: demand estimated from logs, supply-aware repositioning (against a brute-force
optimum), a value that learns during each served day without touching the registered snapshot, and
the headline: a learned value beats no repositioning by more than the CI."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from decisionlab.core.nets.value import TabularValue
from decisionlab.core.options import TrainContext
from decisionlab.core.seeding import make_generator
from decisionlab.domains.ride_hailing.baselines import LOG_SEED, LOGGED_DAYS, baseline, policy_specs
from decisionlab.domains.ride_hailing.city import city_of
from decisionlab.domains.ride_hailing.demand import log_demand, logged_demand, true_demand
from decisionlab.domains.ride_hailing.metrics import episode_metrics, run_episodes
from decisionlab.domains.ride_hailing.online import EpisodeValues, step_transitions
from decisionlab.domains.ride_hailing.policies import CityPolicy, ValuePolicy
from decisionlab.domains.ride_hailing.scenario import PRESETS
from decisionlab.domains.ride_hailing.sim import CityObservation, CitySim
from decisionlab.domains.ride_hailing.train import V1D3Options, train_v1d3
from decisionlab.domains.ride_hailing.triplog import TripLog

S = PRESETS["city_small"]
SHORT = S.model_copy(update={"horizon_hours": 0.3, "start_hour": 7.5})


# --- demand -------------------------------------------------------------------------------------------


def test_logged_demand_is_an_unbiased_count_of_the_true_rates() -> None:
    true = true_demand(city_of(S)).double()
    many = logged_demand(S, 2000, seed=1).double()
    assert many.shape == true.shape == (24, S.grid_size ** 2)
    # Hourly totals: Poisson over 2000 days, so within a few standard errors of the rate.
    se = (true.sum(1) / 2000).sqrt()
    assert ((many.sum(1) - true.sum(1)).abs() <= 5 * se + 1e-6).all()
    assert float((many - true).abs().sum() / true.sum()) < 0.05
    few = logged_demand(S, 2, seed=1).double()
    assert float((few - true).abs().sum() / true.sum()) > 0.1  # two days are a noisy estimate
    assert torch.equal(logged_demand(S, 2, seed=1), few)  # seeded
    with pytest.raises(ValueError, match="days"):
        logged_demand(S, 0, seed=1)


def test_log_demand_counts_the_orders_of_a_trip_log(tmp_path: Path) -> None:
    log = TripLog()
    totals = run_episodes(CitySim(SHORT), baseline("nearest", SHORT), 3, make_generator(5), on_step=log)
    log.finish(totals.finish)
    log.write(tmp_path)
    counts = log_demand(tmp_path, S.grid_size ** 2)
    orders = log.orders()
    assert float(counts.sum()) == pytest.approx(orders.height / 3, rel=1e-5)  # per logged day
    hour = int(SHORT.start_hour)
    first = orders.filter(orders["arrival_s"] < (hour + 1) * 3600.0)
    expected = np.bincount(first["origin_cell"].to_numpy(), minlength=S.grid_size ** 2) / 3
    np.testing.assert_allclose(counts[hour].numpy(), expected, rtol=1e-5)


def test_the_estimated_heuristic_reads_logged_not_true_demand() -> None:
    assert "nearest+reposition_estimated" in policy_specs()
    policy = baseline("nearest+reposition_estimated", S)
    assert torch.equal(policy.demand, logged_demand(S, LOGGED_DAYS, LOG_SEED))
    assert not torch.allclose(policy.demand, true_demand(city_of(S)))
    assert torch.allclose(baseline("nearest+reposition", S).demand, true_demand(city_of(S)))


# --- supply-aware repositioning ----------------------------------------------------------------------


def constant_in_time(values: torch.Tensor) -> TabularValue:
    table = TabularValue(S.grid_size ** 2, 48)
    with torch.no_grad():
        table.table.copy_(values.expand_as(table.table))
    return table


def observation(cells: list[int], idle_s: list[float], time_s: float) -> CityObservation:
    n = len(cells)
    return CityObservation(
        time_s=torch.tensor([time_s], dtype=torch.float64), driver_cell=torch.tensor([cells]),
        driver_free=torch.ones(1, n, dtype=torch.bool), driver_idle_s=torch.tensor([idle_s]),
        order_valid=torch.zeros(1, 0, dtype=torch.bool), order_origin=torch.zeros(1, 0, dtype=torch.long),
        order_dest=torch.zeros(1, 0, dtype=torch.long), order_fare=torch.zeros(1, 0),
        order_trip_s=torch.zeros(1, 0), order_wait_s=torch.zeros(1, 0))


@pytest.mark.parametrize("seed", range(4))
def test_value_supply_repositioning_is_the_best_assignment_to_cell_slots(seed: int) -> None:
    """Three idle drivers in one cell, a fourth (not eligible) nearby: the policy's joint choice is worth
    as much as the best of all joint choices (brute force), each cell's n-th driver valued at
    ``γ^τ V · P(Poisson(μ) ≥ S + n)`` (scipy's Poisson, not the policy's)."""
    gen = torch.Generator().manual_seed(seed)
    values = constant_in_time(20 * torch.rand(S.grid_size ** 2, generator=gen))
    demand = 6 * torch.rand(24, S.grid_size ** 2, generator=gen)  # ~0 to 1 order per cell in 10 minutes
    time_s = 8.5 * 3600.0  # a minute boundary: value_supply decides
    home = 27
    cells, idle = [home, home, home, 28], [900.0, 600.0, 1200.0, 10.0]
    policy = CityPolicy(S, "nearest", "value_supply", value=values, demand=demand)
    targets = policy.targets(observation(cells, idle, time_s), torch.full((1, 0), -1))[0]
    assert targets[3] == -1  # idle 10 s: not eligible

    options = policy.disk[home].tolist()
    km = policy.grid.distance_km(torch.tensor(home), torch.tensor(options)).double()
    drive_s = torch.where(km > 0, km * 3600.0 / policy.city.speed_kmh(time_s), 0.0)
    reachable = [c for c, d in zip(options, km.tolist(), strict=True) if d <= S.reposition_max_km + 1e-6]
    hour = int(time_s // 3600)
    mu = (demand[hour] * 600.0 / 3600.0).double()

    def worth(chosen: tuple[int, ...]) -> float:
        total = 0.0
        for cell in set(chosen):
            i = options.index(cell)
            base = 0.9 ** (float(drive_s[i]) / 600.0) * float(values.table.detach()[0, cell])
            supply = 1 if cell == 28 else 0  # the driver idle 10 s stays where it is
            for n in range(chosen.count(cell)):
                total += base * stats.poisson.sf(supply + n, float(mu[cell])) - 0.1 * float(km[i])
        return total

    best = max(worth(c) for c in itertools.product(reachable, repeat=3) if max(c.count(x) for x in c) <= 4)
    chosen = tuple(int(t) if t >= 0 else home for t in targets[:3].tolist())
    assert worth(chosen) == pytest.approx(best, rel=1e-4, abs=1e-4)


def test_value_supply_decides_once_a_minute_and_spreads_a_crowd() -> None:
    values = constant_in_time(torch.zeros(S.grid_size ** 2))
    home, hot = 27, 28
    with torch.no_grad():
        values.table[:, hot] = 20.0
    demand = torch.zeros(24, S.grid_size ** 2)
    demand[:, hot] = 6.0  # one order expected in the next 10 minutes
    policy = CityPolicy(S, "nearest", "value_supply", value=values, demand=demand)
    crowd = observation([home] * 4, [900.0] * 4, 8.5 * 3600.0)
    targets = policy.targets(crowd, torch.full((1, 0), -1))[0]
    # P(≥1) = 0.63, P(≥2) = 0.26, ...: each extra driver is worth less; all are worth more than 0 at home.
    assert int((targets == hot).sum()) == 4
    later = observation([home] * 4, [900.0] * 4, 8.5 * 3600.0 + 2.0)
    assert (policy.targets(later, torch.full((1, 0), -1))[0] == -1).all()  # not a minute boundary
    # Staying is now worth 3 with ten orders expected at home (P(≥n) ≈ 1 for n ≤ 4), while the n-th
    # driver at hot is worth about 19·(0.63, 0.26, 0.08, 0.02): two go, two stay.
    values.table.data[:, home] = 3.0
    demand[:, home] = 60.0
    policy = CityPolicy(S, "nearest", "value_supply", value=values, demand=demand)
    targets = policy.targets(crowd, torch.full((1, 0), -1))[0]
    assert int((targets == hot).sum()) == 2 and int((targets == -1).sum()) == 2


# --- online learning ------------------------------------------------------------------------------------


def online_policy(anchor: torch.nn.Module | None = None, weight: float = 0.5) -> ValuePolicy:
    table = TabularValue(S.grid_size ** 2, 48)
    with torch.no_grad():
        table.table.fill_(5.0)
    return ValuePolicy(table, anchor=anchor, reposition="value_supply",
                       online={"alpha": 0.2, "ensemble_every_hours": 0.05, "weight_online": weight})


def test_each_served_day_learns_its_own_copy_and_the_snapshot_stays() -> None:
    policy = online_policy()
    acting = policy.for_scenario(SHORT)
    before = policy.value.table.detach().clone()
    learner = acting.start_online(2)
    assert learner is not acting and acting.episode_values is None
    totals = run_episodes(CitySim(SHORT), acting, 2, make_generator(3))
    assert totals.sums["served"].min() > 0
    assert torch.equal(policy.value.table, before)  # the registered snapshot is never trained
    # Transitions of day 0 only move day 0's copy.
    values = EpisodeValues(before, 2, 86_400.0, acting.online)
    info = {"tr_kind": torch.tensor([[1, 0], [0, 0]], dtype=torch.int8),
            "tr_from_cell": torch.tensor([[3, 0], [0, 0]]), "tr_to_cell": torch.tensor([[9, 0], [0, 0]]),
            "tr_from_s": torch.full((2, 2), 30_000.0, dtype=torch.float64),
            "tr_to_s": torch.full((2, 2), 30_600.0, dtype=torch.float64), "tr_reward": torch.full((2, 2), 12.0),
            "tr_reward_s": torch.full((2, 2), 30_000.0, dtype=torch.float64)}
    values.observe(30_000.0, info)
    table = values.table.table.detach().view(48, 2, -1)
    delta = 0.2 * (12.0 + 0.9 * 5.0 - 5.0)
    assert float(table[int(30_000 // 1800), 0, 3]) == pytest.approx(5.0 + delta)
    assert torch.equal(table[:, 1], before)
    assert int((table[:, 0] != before).sum()) == 1
    batch = step_transitions(info, 0.9, 600.0, cells_per_day=S.grid_size ** 2)
    assert batch.location.tolist() == [3]


def test_an_online_policy_blends_each_day_toward_its_anchor() -> None:
    anchor = TabularValue(S.grid_size ** 2, 48)
    with torch.no_grad():
        anchor.table.fill_(1.0)
    policy = online_policy(anchor, weight=0.0)  # every blend resets a day's copy to the anchor
    learner = policy.for_scenario(SHORT).start_online(2)
    sim = CitySim(SHORT)
    state = sim.reset(2, make_generator(4))
    values = learner.episode_values
    assert values is not None
    blends = 0
    for _ in range(SHORT.windows):
        result = sim.step(state, learner.act(sim.observe(state)), sim.sample_exogenous(2, 1, None)[:, 0])
        due = values.next_blend_s
        learner.observe(state, result.info)
        if due is not None and values.next_blend_s != due:  # blended in this window: back to the anchor
            blends += 1
            assert torch.equal(values.table.table, torch.ones_like(values.table.table))
        state = result.state
    assert blends == 5 and values.transitions > 0  # every 0.05 h over 0.3 h, after the first window
    assert not torch.equal(values.table.table, torch.ones_like(values.table.table))  # TD since the last
    frozen = policy.frozen()
    assert policy.learns_online and not frozen.learns_online
    assert frozen.for_scenario(SHORT).start_online(2).episode_values is None


# --- the headline, fast -----------------------------------------------------------------------------


def test_headline_a_learned_value_beats_no_repositioning_by_more_than_the_ci() -> None:
    """A short V1D3 training (one history day, one online day, 150 fitted-TD steps) on `city_peaks`'
    morning (6-second windows to keep it fast), scored online on 8 held-out 2-hour mornings against
    nearest-driver dispatch without repositioning: the paired 95% t-interval lies above 0. (Measured:
    +493 ± 78 and +607 ± 65 for training seeds 0 and 1 with 200 steps, on ~2,200 of income.)"""
    city = PRESETS["city_peaks"].model_copy(update={"horizon_hours": 2.0, "start_hour": 7.0, "window_seconds": 6.0})
    ctx = TrainContext(seed=0, device=torch.device("cpu"), progress=False)
    outcome = train_v1d3(city, V1D3Options(online_days=1, cities=1, history_days=1, iterations=150,
                                           batch_size=512, eval_episodes=1), ctx)
    policy = outcome.policy
    assert isinstance(policy, ValuePolicy) and policy.learns_online and policy.anchor is not None
    learned = episode_metrics(city, policy.for_scenario(city), 8, 424242)["total_income"]
    nearest = episode_metrics(city, baseline("nearest", city), 8, 424242)["total_income"]
    diff = learned - nearest
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    assert diff.mean() - half > 0, (diff.mean(), half)
    # What the registry stores brings the same policy back: value, anchor, online rule, demand.
    again = ValuePolicy.from_config(policy.config())
    again.load_state_dict(policy.state_dict())
    assert again.config() == policy.config() and policy.demand is not None and len(policy.demand) == 24
    cells = torch.arange(city.grid_size ** 2)
    times = torch.full((cells.numel(),), 30_000.0)
    assert torch.equal(again.anchor(cells, times), policy.anchor(cells, times))
