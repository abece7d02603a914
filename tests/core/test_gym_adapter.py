"""The adapters (gymnasium Env, SB3 VecEnv over one batched simulator, PettingZoo ParallelEnv): API
conformance, equivalence with the batched simulator, masks, terminations, and training through them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from decisionlab.core import make_env, make_parallel_env, make_vec_env
from decisionlab.core.engine import rollout
from decisionlab.core.gym import SimulatorEnv, make_simulator, merge_rows, to_normalized_action
from decisionlab.core.seeding import make_generator
from decisionlab.domains.inventory.single_store.policies import BaseStockPolicy


def test_single_env_passes_gymnasium_checker() -> None:
    env = make_env("inventory", "lost_sales", lead_time=2, max_episode_steps=20)
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (3,) and env.action_space.shape == (1,)


def test_episode_truncates_after_horizon_and_rewards_are_minus_costs() -> None:
    env = SimulatorEnv(make_simulator("inventory", "lost_sales", {"lead_time": 1}), 5)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (2,) and obs.dtype == np.float32
    flags = []
    for _ in range(5):
        obs, reward, terminated, truncated, _ = env.step(np.array([0.0], dtype=np.float32))
        assert reward <= 0 and not terminated
        flags.append(truncated)
    assert flags == [False] * 4 + [True]


def test_vec_env_is_one_batched_simulator_matching_the_engine_on_the_same_seed() -> None:
    """Stepping the SB3 VecEnv gives exactly the costs of the raw simulator on the same seed (one tensor step)."""
    sim = make_simulator("inventory", "lost_sales", {"lead_time": 2})
    vec = make_vec_env(sim, num_envs=8, max_episode_steps=30, seed=11)
    obs = vec.reset()
    policy = BaseStockPolicy(14.0)
    total = np.zeros(8)
    for _ in range(30):
        vec.step_async(to_normalized_action(sim, policy.act(torch.as_tensor(obs))).numpy())
        obs, reward, done, infos = vec.step_wait()
        total += reward
    assert done.all() and all(info["TimeLimit.truncated"] for info in infos)
    assert all("terminal_observation" in info for info in infos)

    gen = make_generator(11)
    state = sim.reset(8, gen)
    demand = sim.sample_exogenous(8, 30, gen)
    traj = rollout(sim, policy, demand, state)
    np.testing.assert_allclose(total, traj.rewards.sum(dim=1).numpy(), rtol=1e-5)


def test_sb3_ppo_trains_through_the_vec_env_and_beats_ordering_nothing() -> None:
    """A few thousand PPO steps through one batched simulator learn to order (cost far below never ordering)."""
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import VecNormalize

    torch.manual_seed(0)
    venv = VecNormalize(make_vec_env("inventory", "lost_sales", num_envs=4, max_episode_steps=50, lead_time=1,
                                     underage_cost=4), norm_obs=True, norm_reward=True, gamma=0.9)
    model = sb3.PPO("MlpPolicy", venv, n_steps=256, batch_size=64, learning_rate=1e-3, gamma=0.9, seed=0, verbose=0)
    model.learn(total_timesteps=4096)
    venv.training = False
    env = make_env("inventory", "lost_sales", lead_time=1, underage_cost=4, max_episode_steps=50)
    obs, _ = env.reset(seed=5)
    learned = 0.0
    for _ in range(50):
        action, _ = model.predict(venv.normalize_obs(obs[None]), deterministic=True)
        obs, reward, _, _, _ = env.step(action[0])
        learned += reward
    obs, _ = env.reset(seed=5)
    nothing = sum(env.step(np.array([-1.0], dtype=np.float32))[1] for _ in range(50))
    assert learned > 0.6 * nothing  # rewards are minus costs


def test_masks_agents_and_event_time_through_the_adapters() -> None:
    """The courier example: a MultiDiscrete of the couriers' choices, ``action_masks`` of MaskablePPO's shape,
    the elapsed time in ``info``, a PettingZoo agent per courier with the masking convention."""
    import courier_domain

    courier_domain.register()
    env = make_env("couriers")
    assert list(env.action_space.nvec) == [7, 7]
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    masks = env.action_masks()
    assert masks.shape == (14,) and masks[0] and masks[7]  # waiting is always legal
    _, _, _, _, info = env.step(np.array([1, 2]))
    assert info["elapsed"] > 0
    parallel = make_parallel_env("couriers")
    observations, _ = parallel.reset(seed=0)
    assert parallel.agents == ["couriers_0", "couriers_1"]
    assert set(observations["couriers_0"]) == {"observation", "action_mask"}


def test_partial_resets_splice_rows_and_refuse_a_shared_clock() -> None:
    take = torch.tensor([True, False])
    fresh, old = {"x": torch.tensor([1.0, 2.0]), "n": 3}, {"x": torch.tensor([5.0, 6.0]), "n": 3}
    assert merge_rows(take, fresh, old)["x"].tolist() == [1.0, 6.0]
    with pytest.raises(ValueError, match="reset together"):
        merge_rows(take, {"t": 1.0}, {"t": 2.0})


def test_maskable_ppo_beats_a_random_masked_policy_on_the_masked_example() -> None:
    """sb3-contrib's MaskablePPO trains through ``make_vec_env`` (masks read from the declaration) and
    its couriers earn more than random legal choices by more than the 95% CI (paired days)."""
    import courier_domain
    from courier_domain.policies import RandomLegal
    from sb3_contrib import MaskablePPO

    courier_domain.register()
    vec = make_vec_env("couriers", num_envs=64, seed=0)
    model = MaskablePPO("MlpPolicy", vec, n_steps=32, batch_size=512, learning_rate=1e-3, gamma=0.9, seed=0,
                        verbose=0)
    model.learn(total_timesteps=40_000)

    class Trained:
        name = "maskable_ppo"

        def act(self, obs: dict) -> dict[str, torch.Tensor]:
            features = obs["couriers"]["features"].reshape(obs["couriers"]["features"].shape[0], -1).numpy()
            masks = obs["couriers"]["legal"].reshape(features.shape[0], -1).numpy()
            action, _ = model.predict(features, action_masks=masks, deterministic=True)
            return {"couriers": torch.as_tensor(action, dtype=torch.long)}

    from courier_domain.metrics import episode_metrics

    from decisionlab.core.evaluation import mean_ci95

    scenario = courier_domain.SPEC.scenario("couriers")
    learned = episode_metrics(scenario, Trained(), 2048, 9, torch.device("cpu"))["net_value"]
    random = episode_metrics(scenario, RandomLegal(), 2048, 9, torch.device("cpu"))["net_value"]
    gain, half = mean_ci95(learned - random)
    assert gain > half > 0, (gain, half)
