"""The gymnasium adapter: API conformance, equivalence with the batched simulator, SB3 training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from decisionlab.core.gym_adapter import SimulatorEnv, SimulatorVectorEnv, make_simulator, to_normalized_action
from decisionlab.domains.inventory.single_store.policies import BaseStockPolicy


def test_single_env_passes_gymnasium_checker() -> None:
    env = SimulatorEnv(make_simulator("inventory", "lost_sales", {"lead_time": 2}), horizon=20)
    check_env(env, skip_render_check=True)


def test_episode_truncates_after_horizon_and_rewards_are_minus_costs() -> None:
    env = SimulatorEnv(make_simulator("inventory", "lost_sales", {"lead_time": 1}), horizon=5)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (2,) and obs.dtype == np.float32
    flags = []
    for _ in range(5):
        obs, reward, terminated, truncated, _ = env.step(np.array([0.0], dtype=np.float32))
        assert reward <= 0 and not terminated
        flags.append(truncated)
    assert flags == [False] * 4 + [True]


def test_vector_env_matches_batched_rollout_on_same_seed() -> None:
    """Stepping through the adapter gives exactly the costs of the raw simulator on the same seed."""
    sim = make_simulator("inventory", "lost_sales", {"lead_time": 2})
    vec = SimulatorVectorEnv(sim, num_envs=8, horizon=30)
    obs, _ = vec.reset(seed=11)
    policy = BaseStockPolicy(14.0)
    total = np.zeros(8)
    for _ in range(30):
        action = to_normalized_action(sim, policy.act(torch.as_tensor(obs))).numpy()[:, None]
        obs, reward, _, truncated, _ = vec.step(action)
        total += reward
    assert truncated.all()

    from decisionlab.core.rollout import rollout
    from decisionlab.core.seeding import make_generator

    gen = make_generator(11)
    state = sim.reset(8, gen)
    demand = sim.sample_exogenous(8, 30, gen)
    traj = rollout(sim, policy, demand, state)
    np.testing.assert_allclose(total, traj.rewards.sum(dim=1).numpy(), rtol=1e-5)


def test_sb3_ppo_trains_on_inventory_and_beats_ordering_nothing() -> None:
    """A few thousand PPO steps through the adapter learn to order (cost far below never ordering)."""
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.manual_seed(0)
    sim = make_simulator("inventory", "lost_sales", {"lead_time": 1, "underage_cost": 4})
    venv = VecNormalize(
        DummyVecEnv([lambda: SimulatorEnv(sim, horizon=50)] * 4), norm_obs=True, norm_reward=True, gamma=0.9
    )
    model = sb3.PPO("MlpPolicy", venv, n_steps=256, batch_size=64, learning_rate=1e-3, gamma=0.9, seed=0, verbose=0)
    model.learn(total_timesteps=4096)
    venv.training = False
    env = SimulatorEnv(sim, horizon=50)
    obs, _ = env.reset(seed=5)
    learned = 0.0
    for _ in range(50):
        action, _ = model.predict(venv.normalize_obs(obs[None]), deterministic=True)
        obs, reward, _, _, _ = env.step(action[0])
        learned += reward
    obs, _ = env.reset(seed=5)
    nothing = sum(env.step(np.array([-1.0], dtype=np.float32))[1] for _ in range(50))
    # Rewards are minus costs: the learned policy must cost well under 60% of never ordering.
    assert learned > 0.6 * nothing
