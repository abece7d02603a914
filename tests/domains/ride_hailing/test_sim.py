"""The city simulator's invariants: conservation of orders, one place per driver, income that
matches the trip log, determinism by seed, the demand it promises, and replayed records."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from decisionlab.core.seeding import make_generator
from decisionlab.domains.ride_hailing.baselines import baseline
from decisionlab.domains.ride_hailing.city import cancel_probability, city_of, fare
from decisionlab.domains.ride_hailing.metrics import episode_metrics, run_episodes
from decisionlab.domains.ride_hailing.scenario import MAX_WINDOWS, PRESETS, CityScenario
from decisionlab.domains.ride_hailing.sim import IDLE, OFFLINE, ON_TRIP, REPOSITIONING, CitySim, city_action, in_shift
from decisionlab.domains.ride_hailing.triplog import TripLog
from decisionlab.domains.ride_hailing.trips import read_trip_records, synthetic_trip_records

SMALL = PRESETS["city_small"].model_copy(update={"horizon_hours": 0.5, "start_hour": 7.5})


class RandomActions:
    """Garbage actions (any index, any cell): the simulator must keep its invariants anyway."""

    name = "random"

    def __init__(self, sim: CitySim, seed: int = 0) -> None:
        self.sim, self.generator = sim, torch.Generator().manual_seed(seed)

    def act(self, obs):  # noqa: ANN001, ANN201
        batch, (n, q) = obs.driver_cell.shape[0], (self.sim.n_drivers, self.sim.queue)
        return city_action(torch.randint(-3, n + 3, (batch, q), generator=self.generator),
                           torch.randint(-3, self.sim.grid.n_cells + 3, (batch, n), generator=self.generator))


def logged_run(scenario: CityScenario, policy_name: str, episodes: int = 3, seed: int = 0):  # noqa: ANN201
    sim = CitySim(scenario)
    policy = RandomActions(sim) if policy_name == "random" else baseline(policy_name, scenario)
    log = TripLog()
    checks: list[str] = []

    def hook(state, info) -> None:  # noqa: ANN001
        log(state, info)
        # A driver serves at most one order per window.
        for row in range(info["ev_kind"].shape[0]):
            matched = info["ev_driver"][row][(info["ev_kind"][row] == 1) | (info["ev_kind"][row] == 2)]
            if len(matched) != len(torch.unique(matched)):
                checks.append(f"window {state.step}: a driver got two orders")

    totals = run_episodes(sim, policy, episodes, make_generator(seed), on_step=hook)
    log.finish(totals.finish)
    assert not checks, checks[:3]
    return sim, totals, log


@pytest.mark.parametrize("policy", ["nearest", "fare_matching+reposition", "random"])
def test_every_order_ends_exactly_once_and_income_matches_the_log(policy: str) -> None:
    sim, totals, log = logged_run(SMALL, policy)
    orders = log.orders()
    arrived = totals.sums["arrived"].numpy()
    assert arrived.sum() > 100
    per_city = orders.group_by("city").agg(pl.len().alias("n"), pl.col("order_id").n_unique().alias("ids"),
                                           pl.col("order_id").max().alias("last")).sort("city")
    # Every order id 0..arrived-1 of every city appears exactly once, with one final status.
    assert per_city["n"].to_list() == arrived.astype(int).tolist()
    assert per_city["ids"].to_list() == per_city["n"].to_list()
    assert per_city["last"].to_list() == (arrived - 1).astype(int).tolist()
    for status, key in (("served", "served"), ("cancelled", "cancelled"), ("expired", "expired")):
        counted = orders.filter(pl.col("status") == status).group_by("city").len().sort("city")
        expected = dict(enumerate(totals.sums[key].numpy().astype(int).tolist()))
        assert dict(zip(counted["city"].to_list(), counted["len"].to_list(), strict=True)) == \
            {c: n for c, n in expected.items() if n}
    # Income: the fares of served orders, per driver, are what the drivers earned.
    served = orders.filter(pl.col("status") == "served").group_by("city", "driver").agg(pl.col("fare").sum())
    income = totals.final_state.driver_income.numpy()
    for city, driver, paid in served.iter_rows():
        assert paid == pytest.approx(income[city, driver], rel=1e-5)
    assert income.sum() == pytest.approx(float(served["fare"].sum()), rel=1e-6)
    assert np.allclose(totals.sums["income"].numpy(), income.sum(1))
    # Expired orders never had a driver; served and cancelled ones did, within the pickup radius.
    assert (orders.filter(pl.col("status") == "expired")["driver"] == -1).all()
    matched = orders.filter(pl.col("status") != "expired")
    assert (matched["driver"] >= 0).all() and (matched["pickup_km"] <= SMALL.max_pickup_km + 1e-4).all()


def test_drivers_are_in_one_place_and_follow_their_shifts() -> None:
    scenario = SMALL.model_copy(update={"horizon_hours": 2.0, "start_hour": 13.0})
    sim = CitySim(scenario)
    policy = baseline("nearest+reposition", scenario)
    generator = make_generator(3)
    state = sim.reset(2, generator)
    noise = sim.sample_exogenous(2, scenario.windows, generator)
    for t in range(scenario.windows):
        state = sim.step(state, policy.act(sim.observe(state)), noise[:, t]).state
        mode = state.driver_mode
        assert set(torch.unique(mode).tolist()) <= {OFFLINE, IDLE, ON_TRIP, REPOSITIONING}
        assert bool(((state.driver_cell >= 0) & (state.driver_cell < sim.grid.n_cells)).all())
        # Idle drivers are within their shift; busy ones are never "free" before their time.
        on = in_shift(state.time_s, state.shift_start_s, scenario.shift_hours)
        assert bool((on | (mode != IDLE)).all())
        assert bool(((mode != ON_TRIP) | (state.driver_free_at > state.time_s)).all())
    assert int((state.driver_mode == OFFLINE).sum()) > 0 and int((state.driver_mode == ON_TRIP).sum()) > 0


def test_same_seed_same_day_other_seed_other_day() -> None:
    policy = baseline("fare_matching", SMALL)
    first = episode_metrics(SMALL, policy, 2, seed=11)
    again = episode_metrics(SMALL, policy, 2, seed=11)
    other = episode_metrics(SMALL, policy, 2, seed=12)
    for name in first:
        assert np.array_equal(first[name], again[name])
    assert not np.array_equal(first["total_income"], other["total_income"])


def test_demand_is_what_the_scenario_promises() -> None:
    """Orders over a day ~ Poisson(orders_per_day): the count is within 4 standard errors."""
    scenario = PRESETS["city_small"].model_copy(update={"horizon_hours": 24.0, "window_seconds": 30.0,
                                                        "n_drivers": 5})
    sim = CitySim(scenario)
    totals = run_episodes(sim, baseline("nearest", scenario), 4, make_generator(0))
    arrived = totals.sums["arrived"].numpy()
    expected = scenario.orders_per_day
    assert abs(arrived.mean() - expected) < 4 * math.sqrt(expected / 4)


def test_cancellations_rise_in_200m_buckets_and_fares_follow_the_tariff() -> None:
    s = SMALL
    km = torch.tensor([0.0, 0.19, 0.2, 0.39, 1.0, 5.0, 50.0])
    p = cancel_probability(km, s)
    assert p[0] == 0 and p[1] == 0 and p[2] == p[3] > 0
    assert bool((p[1:] >= p[:-1]).all()) and float(p[-1]) == pytest.approx(s.cancel_max, rel=1e-3)
    assert float(fare(torch.tensor(2.0), torch.tensor(300.0), s)) == pytest.approx(
        s.fare_base + 2 * s.fare_per_km + 5 * s.fare_per_minute)


def test_demand_peaks_and_hot_spots_move_over_the_day() -> None:
    city = city_of(PRESETS["city_grid"])
    rate = city.rate_per_minute.numpy()
    assert rate[8 * 60 + 30] > 2 * rate[3 * 60] and rate[18 * 60] > 2 * rate[3 * 60]
    assert rate.sum() * 60 == pytest.approx(PRESETS["city_grid"].orders_per_day, rel=1e-9)
    morning, evening = city.origin_weight[8], city.origin_weight[18]
    assert int(morning.argmax()) != int(evening.argmax())  # where trips start moves with the hour


def test_city_metro_is_a_valid_city_scale_day_of_bounded_work() -> None:
    """The calibrated metro validates, is a whole day of 10,000 drivers within the work limits, and a
    few of its peak windows run (no 24-hour simulation here: its figures are in the scenario docstring)."""
    metro = PRESETS["city_metro"]
    assert CityScenario.model_validate(metro.model_dump()) == metro
    assert metro.n_drivers == 10_000 and 20 <= metro.grid_size <= 64 and metro.cell_km == 1.0
    assert metro.horizon_hours == 24.0 and metro.windows == 43_200 <= MAX_WINDOWS
    assert city_of(metro).rate_per_minute.sum().item() * 60 == pytest.approx(metro.orders_per_day, rel=1e-9)
    peak = metro.model_copy(update={"horizon_hours": 0.02, "start_hour": 8.0})
    totals = run_episodes(CitySim(peak), baseline("nearest", peak), 1, make_generator(0))
    s = {k: float(v.sum()) for k, v in totals.sums.items()}
    assert s["arrived"] > 0 and s["served"] > 0
    assert s["arrived"] == s["served"] + s["cancelled"] + s["expired"]


def test_replayed_records_arrive_in_their_windows(tmp_path: Path) -> None:
    path = synthetic_trip_records(tmp_path / "trips.csv", 600, seed=1, variant="yellow_latlon")
    scenario = SMALL.model_copy(update={"trips_path": str(path), "start_hour": 0.0, "horizon_hours": 24.0,
                                        "window_seconds": 60.0, "n_drivers": 40})
    sim = CitySim(scenario)
    records = read_trip_records(path, sim.grid)
    totals = run_episodes(sim, baseline("nearest", scenario), 2, make_generator(0))
    per_day = records.frame.group_by("day").len().sort("day")["len"].to_list()
    days = totals.final_state.replay_day.tolist()
    assert totals.sums["arrived"].numpy().astype(int).tolist() == [per_day[d] for d in days]
