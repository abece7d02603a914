"""A Stable-Baselines3 ``VecEnv`` backed by one batched simulator (conventions: :mod:`decisionlab.core.gym`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from decisionlab.core.gym import BatchedEnvs, _index, _Layout, _numpy, _simulator
from decisionlab.core.sim import BatchedSimulator


class SimulatorVecEnv(VecEnv):
    """``num_envs`` environments of ONE batched simulator as a Stable-Baselines3 ``VecEnv``: a step is one
    tensor step of the whole batch. Ended environments reset automatically (SB3's convention: the
    returned observation starts the next episode; ``infos[i]["terminal_observation"]`` is the final one)."""

    def __init__(self, sim: BatchedSimulator[Any], num_envs: int, max_episode_steps: int | None = None, *,
                 observation: str = "features", normalize_actions: bool = True, seed: int = 0) -> None:
        self.sim = sim
        self.layout = _Layout(sim.spaces, observation, normalize_actions)
        self.batch = BatchedEnvs(sim, num_envs, max_episode_steps, seed)
        super().__init__(num_envs, self.layout.observation_space, self.layout.action_space)
        self._actions: Any = None
        self._obs: Any = None
        self._returns = np.zeros(num_envs)
        self._lengths = np.zeros(num_envs, dtype=np.int64)

    def reset(self):
        seed = self._seeds[0] if getattr(self, "_seeds", None) and self._seeds[0] is not None else None
        if seed is not None:
            self.batch.seed(int(seed))
        self._seeds = [None] * self.num_envs
        self._obs = self.batch.reset()
        self._returns[:], self._lengths[:] = 0.0, 0
        return self.layout.observation(self.sim, self._obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        if self._obs is None:
            self.reset()
        action = self.layout.to_sim(self._actions, self.num_envs, self.sim.device)
        obs, reward, terminated, truncated, elapsed, _ = self.batch.step(action)
        rewards = self.layout.reward(reward).astype(np.float32)
        done = terminated | truncated
        self._returns += rewards
        self._lengths += 1
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if elapsed is not None:
            for i, value in enumerate(_numpy(elapsed).tolist()):
                infos[i]["elapsed"] = value
        observation = self.layout.observation(self.sim, obs)
        if done.any():
            for i in np.flatnonzero(done):
                infos[i]["terminal_observation"] = _index(observation, i)
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
                infos[i]["episode"] = {"r": float(self._returns[i]), "l": int(self._lengths[i])}
            self._returns[done], self._lengths[done] = 0.0, 0
            obs = self.batch.reset_rows(done)
            observation = self.layout.observation(self.sim, obs)
        self._obs = obs
        return observation, rewards, done, infos

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in self._indices(indices)]
        return [getattr(self, method_name)(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def has_attr(self, attr_name: str) -> bool:
        return attr_name == "action_masks" or hasattr(self, attr_name)

    def _indices(self, indices: Any) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)

    def action_masks(self) -> np.ndarray:
        """``[num_envs, Σ n]`` legal choices now (all True for an unmasked simulator)."""
        if self._obs is None:
            self.reset()
        masks = self.layout.masks(self.sim, self._obs)
        if masks is None:
            size = int(np.sum(getattr(self.action_space, "nvec", [getattr(self.action_space, "n", 1)])))
            return np.ones((self.num_envs, size), dtype=bool)
        return masks


def make_vec_env(domain: str | BatchedSimulator[Any], scenario: str | None = None, *, num_envs: int = 64,
                 max_episode_steps: int | None = None, device: str = "cpu", observation: str = "features",
                 normalize_actions: bool = True, seed: int = 0, **parameters: Any) -> SimulatorVecEnv:
    """An SB3 ``VecEnv`` of ``num_envs`` environments backed by one batched simulator of a registered
    domain's scenario (or a given simulator)."""
    sim = _simulator(domain, scenario, parameters, device)
    return SimulatorVecEnv(sim, num_envs, max_episode_steps, observation=observation,
                           normalize_actions=normalize_actions, seed=seed)
