"""Gymnasium adapters for any registered batched simulator.

:class:`SimulatorEnv` is one environment (a batch of one) for libraries such as
Stable-Baselines3; :class:`SimulatorVectorEnv` exposes a whole batch as a gymnasium
``VectorEnv``. Both draw exogenous randomness from a torch generator seeded at ``reset`` and
expose actions normalised to [-1, 1] (mapped linearly onto the simulator's action bounds). They
end an episode by truncation after ``horizon`` steps (these are continuing tasks: truncation,
not termination, so value bootstraps stay correct).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from decisionlab.core.seeding import make_generator
from decisionlab.core.sim import BatchedSimulator
from decisionlab.core.spec import get_domain


def make_simulator(
    domain: str, scenario: str | None = None, overrides: Mapping[str, Any] | None = None, device: str = "cpu"
) -> BatchedSimulator[Any]:
    """The batched simulator of a registered domain's scenario preset (with overrides)."""
    spec = get_domain(domain)
    resolved = spec.scenario(scenario or spec.default_scenario, overrides)
    return spec.setting_of(resolved).make_simulator(resolved, torch.device(device))


def _spaces(sim: BatchedSimulator[Any]) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """Observations as the simulator gives them; actions normalised to [-1, 1] (what SB3 expects)."""
    obs = gym.spaces.Box(-np.inf, np.inf, (sim.observation_size,), np.float32)
    act = gym.spaces.Box(-1.0, 1.0, (sim.action_size,), np.float32)
    return obs, act


def to_simulator_action(sim: BatchedSimulator[Any], normalized: torch.Tensor) -> torch.Tensor:
    """Map actions in [-1, 1] linearly onto ``[action_low, action_high]``."""
    unit = (normalized.clamp(-1.0, 1.0) + 1.0) / 2.0
    return sim.action_low + unit * (sim.action_high - sim.action_low)


def to_normalized_action(sim: BatchedSimulator[Any], action: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_simulator_action` (for replaying a simulator-scale policy)."""
    return 2.0 * (action - sim.action_low) / (sim.action_high - sim.action_low) - 1.0


class SimulatorVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` environments stepped as one batch of the simulator (all start and end together)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, sim: BatchedSimulator[Any], num_envs: int, horizon: int = 100) -> None:
        self.sim, self.num_envs, self.horizon = sim, int(num_envs), int(horizon)
        self.single_observation_space, self.single_action_space = _spaces(sim)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._generator = make_generator(0, sim.device)
        self._state: Any = None
        self._exogenous: torch.Tensor | None = None
        self._t = 0

    def _obs(self) -> np.ndarray:
        flat = self.sim.flat_observation(self.sim.observe(self._state))
        return flat.detach().to("cpu", torch.float32).numpy()

    def _start(self) -> None:
        self._state = self.sim.reset(self.num_envs, self._generator)
        self._exogenous = self.sim.sample_exogenous(self.num_envs, self.horizon, self._generator)
        self._t = 0

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            first = seed[0] if isinstance(seed, list) else seed
            self._generator = make_generator(int(first), self.sim.device)
        self._start()
        return self._obs(), {}

    def step(self, actions: np.ndarray):
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        action = torch.as_tensor(np.asarray(actions), dtype=torch.float32, device=self.sim.device)
        action = to_simulator_action(self.sim, action.reshape(self.num_envs, self.sim.action_size))
        with torch.no_grad():
            result = self.sim.step(self._state, action.squeeze(1) if self.sim.action_size == 1 else action,
                                   self._exogenous[:, self._t])
        self._state, self._t = result.state, self._t + 1
        rewards = result.reward.detach().to("cpu", torch.float64).numpy()
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.full(self.num_envs, self._t >= self.horizon)
        infos: dict[str, Any] = {}
        if truncated.all():
            infos["final_obs"] = self._obs()
            self._start()  # same-step autoreset: the returned observation starts the next episode
        return self._obs(), rewards, terminated, truncated, infos


class SimulatorEnv(gym.Env):
    """One environment of a batched simulator (what single-env RL libraries expect)."""

    metadata = {"render_modes": []}

    def __init__(self, sim: BatchedSimulator[Any], horizon: int = 100) -> None:
        self._vec = SimulatorVectorEnv(sim, 1, horizon)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self.horizon = horizon

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2**31 - 1))
        obs, _ = self._vec.reset(seed=seed)
        return obs[0], {}

    def step(self, action: np.ndarray):
        if self._vec._state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        vec = self._vec
        action_t = torch.as_tensor(np.asarray(action), dtype=torch.float32).reshape(1, -1)
        obs, reward, terminated, truncated, infos = vec.step(action_t.numpy())
        if truncated[0]:
            # A single env does not autoreset: show the final observation; the caller resets.
            return infos["final_obs"][0], float(reward[0]), False, True, {}
        return obs[0], float(reward[0]), False, False, {}
