"""The value-learning algorithms on a short horizon: transitions built from the simulator's records,
online TD touching the entries trips start in, offline training from a written trip log and from
trip records, and V1D3's periodic blend."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from decisionlab.core.algos.td import discount_for
from decisionlab.core.nets.value import NeuralValue, TabularValue, value_table
from decisionlab.core.options import TrainContext
from decisionlab.core.seeding import make_generator
from decisionlab.domains.ride_hailing.baselines import baseline
from decisionlab.domains.ride_hailing.metrics import run_episodes
from decisionlab.domains.ride_hailing.policies import ValuePolicy
from decisionlab.domains.ride_hailing.scenario import PRESETS
from decisionlab.domains.ride_hailing.sim import TERMINAL, TRIP, CitySim
from decisionlab.domains.ride_hailing.train import (
    OfflineValueOptions,
    TDOnlineOptions,
    V1D3Options,
    ValueSettings,
    online_td,
    step_transitions,
    train_offline_value,
    train_td_online,
    train_v1d3,
)
from decisionlab.domains.ride_hailing.triplog import TripLog, read_transitions
from decisionlab.domains.ride_hailing.trips import synthetic_trip_records

SHORT = PRESETS["city_small"].model_copy(update={"horizon_hours": 0.3, "start_hour": 7.5})
CTX = TrainContext(seed=0, device=torch.device("cpu"), progress=False)
FAST = {"online_days": 1, "cities": 2, "history_days": 2, "iterations": 50, "batch_size": 128, "eval_episodes": 1}


def test_trip_transitions_discount_the_fare_to_the_match_and_stop_at_the_end_of_shifts() -> None:
    sim = CitySim(SHORT.model_copy(update={"horizon_hours": 1.0, "start_hour": 14.5}))
    policy = baseline("nearest", sim.scenario)
    seen = []
    run_episodes(sim, policy, 2, make_generator(0), on_step=lambda state, info: seen.append(
        ({k: v.clone() for k, v in info.items() if k.startswith("tr_")}, step_transitions(info, 0.9, 600.0))))
    kinds = torch.cat([info["tr_kind"][info["tr_kind"] > 0] for info, _ in seen])
    assert int((kinds == TRIP).sum()) > 0 and int((kinds == TERMINAL).sum()) > 0  # shifts end around 15:30
    for info, batch in seen:
        mask = info["tr_kind"] > 0
        assert len(batch) == int(mask.sum())
        kind = info["tr_kind"][mask]
        fare = info["tr_reward"][mask]
        wait = info["tr_reward_s"][mask] - info["tr_from_s"][mask]
        expected = fare * discount_for(wait, 0.9, 600.0)
        assert torch.allclose(batch.reward.double(), expected, rtol=1e-5)
        assert bool((batch.discount[kind == TERMINAL] == 0).all())
        trip = kind == TRIP
        span = info["tr_to_s"][mask][trip] - info["tr_from_s"][mask][trip]
        assert torch.allclose(batch.discount[trip].double(), 0.9 ** (span / 600.0), rtol=1e-5)


def test_td_online_learns_where_trips_start() -> None:
    outcome = train_td_online(SHORT, TDOnlineOptions(**{k: v for k, v in FAST.items()
                                                        if k in TDOnlineOptions.model_fields}), CTX)
    policy = outcome.policy
    assert isinstance(policy, ValuePolicy) and isinstance(policy.value, TabularValue)
    table = policy.value.table.detach()
    assert outcome.metrics["transitions"] > 50 and float(table.max()) > 0
    touched = (table != 0).sum()
    assert 0 < int(touched) < table.numel()  # the hours the horizon covers, not the others
    assert 0 <= outcome.metrics["answer_rate"] <= 1


def test_offline_value_from_a_written_trip_log(tmp_path: Path) -> None:
    log = TripLog()
    sim = CitySim(SHORT)
    totals = run_episodes(sim, baseline("nearest", SHORT), 2, make_generator(4), on_step=log)
    log.finish(totals.finish)
    log.write(tmp_path)
    data = read_transitions(tmp_path, 0.9, 600.0)
    assert len(data) == len(log.transitions())
    options = OfflineValueOptions(**{k: v for k, v in FAST.items() if k in OfflineValueOptions.model_fields},
                                  history_log=str(tmp_path))
    outcome = train_offline_value(SHORT, options, CTX)
    assert isinstance(outcome.policy.value, NeuralValue)
    assert outcome.metrics["transitions"] == len(data)
    with pytest.raises(Exception, match="transitions.parquet"):
        train_offline_value(SHORT, OfflineValueOptions(history_log=str(tmp_path / "missing")), CTX)


def test_offline_value_from_trip_records(tmp_path: Path) -> None:
    path = synthetic_trip_records(tmp_path / "trips.csv", 300, seed=2, variant="yellow_latlon")
    scenario = SHORT.model_copy(update={"trips_path": str(path)})
    outcome = train_offline_value(scenario, OfflineValueOptions(iterations=30, eval_episodes=1), CTX)
    assert outcome.metrics["transitions"] == pytest.approx(300, rel=0.05)  # a few records may be dropped


def test_v1d3_blends_toward_the_offline_value() -> None:
    """With online weight 0 every blend resets the table to the offline value: what is left is exactly it."""
    settings = ValueSettings(**{**FAST, "ensemble_every_hours": 0.05, "ensemble_weight_online": 0.0})
    offline = NeuralValue(SHORT.grid_size ** 2, 24, v_min=0, v_max=20)
    table = TabularValue(SHORT.grid_size ** 2, 24)
    target = value_table(offline, table.n_locations, table.n_time_bins, table.period_s)
    with torch.no_grad():
        online_td(SHORT, settings, CTX, table, anchor=offline)
    assert SHORT.windows % round(0.05 * 3600 / SHORT.window_seconds) == 0  # the last window blends
    assert torch.allclose(table.table, target)
    outcome = train_v1d3(SHORT, V1D3Options(**FAST), CTX)
    assert isinstance(outcome.policy.value, TabularValue) and outcome.metrics["transitions"] > 0
