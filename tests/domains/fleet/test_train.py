"""The learned fleet policy: a short PPO run (greedy imitation first) on ``uam_small`` is far above random
and near greedy on held-out days; the same weights act on a larger network; the registry round-trips it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decisionlab.core import TrainContext, configure_threads, make_generator, rebuild_policy
from decisionlab.domains.fleet.graph_policy import FleetGraphPolicy
from decisionlab.domains.fleet.metrics import episode_metrics
from decisionlab.domains.fleet.policies import GreedyPolicy, RandomLegalPolicy
from decisionlab.domains.fleet.scenario import PRESETS
from decisionlab.domains.fleet.sim import FleetSim
from decisionlab.domains.fleet.train import FleetPPOOptions, train_fleet_ppo

CPU = torch.device("cpu")
SMALL = PRESETS["uam_small"]


@pytest.fixture(scope="module")
def trained() -> FleetGraphPolicy:
    configure_threads()  # the project's default (one thread) whatever ran before: float sums differ with more
    options = FleetPPOOptions(total_env_steps=4096, num_envs=32, rollout_steps=32, eval_days=16,
                              imitation_steps=150, imitation_days=8)
    return train_fleet_ppo(SMALL, options, TrainContext(0, CPU, False)).policy


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = a - b
    return float(d.mean()), float(1.96 * d.std(ddof=1) / np.sqrt(len(d)))


def test_short_run_beats_random_and_stays_near_greedy(trained: FleetGraphPolicy) -> None:
    days, seed = 64, 12345  # days no update saw
    learned = episode_metrics(SMALL, trained, days, seed, CPU)
    greedy = episode_metrics(SMALL, GreedyPolicy(FleetSim(SMALL)), days, seed, CPU)
    random = episode_metrics(SMALL, RandomLegalPolicy(FleetSim(SMALL)), days, seed, CPU)
    over_random, half = paired(learned["daily_profit"], random["daily_profit"])
    assert over_random - half > 0, (over_random, half)
    to_greedy = learned["daily_profit"].mean() / greedy["daily_profit"].mean()
    assert to_greedy > 0.9, to_greedy
    assert learned["constraint_violations"].sum() == 0


def test_the_same_weights_act_on_a_larger_network(trained: FleetGraphPolicy) -> None:
    bigger = SMALL.model_copy(update={"n_vertiports": 5, "n_aircraft": 9})
    policy = rebuild_policy(trained.config(), trained.state_dict(), bigger, CPU)
    sim = FleetSim(bigger)
    state = sim.reset(8, make_generator(1))
    for _ in range(20):
        obs = sim.observe(state)
        action = policy.act(obs)
        assert action.shape == (8,) and bool(obs["legal"].gather(1, action[:, None]).all())
        state = sim.step(state, action, torch.zeros(8, 0)).state
    assert trained.for_scenario(SMALL).net.obs_dim == FleetSim(SMALL).spaces.features.shape[0]


def test_the_registry_rebuilds_the_same_actions(trained: FleetGraphPolicy) -> None:
    policy = trained.for_scenario(SMALL)
    again = rebuild_policy(policy.config(), policy.state_dict(), SMALL, CPU)
    sim = FleetSim(SMALL)
    obs = sim.observe(sim.reset(16, make_generator(2)))
    assert torch.equal(policy.act(obs), again.act(obs))
