"""A PettingZoo ``ParallelEnv`` of a batched simulator's agent groups (conventions: :mod:`decisionlab.core.gym`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv

from decisionlab.core.gym import BatchedEnvs, _gym_action, _numpy, _simulator, _torch_action
from decisionlab.core.sim import BatchedSimulator, action_mask
from decisionlab.core.spaces import SINGLE


class SimulatorParallelEnv(ParallelEnv):
    """A PettingZoo ``ParallelEnv``: agent ``"{group}_{i}"`` for each member of each agent group (``"agent"``
    for a single-agent simulator). An agent's observation is its features, with the PettingZoo masking
    convention ``{"observation": ..., "action_mask": ...}`` when its group's action is masked; its reward
    is its own; an episode ends for all agents together."""

    metadata = {"name": "decisionlab", "render_modes": []}

    def __init__(self, sim: BatchedSimulator[Any], max_episode_steps: int | None = None, *,
                 normalize_actions: bool = True) -> None:
        self.sim = sim
        self.spaces = sim.spaces
        self.batch = BatchedEnvs(sim, 1, max_episode_steps)
        self.normalize = normalize_actions
        self.groups = self.spaces.groups()
        self.members = {name: [name if not self.spaces.multi_agent else f"{name}_{i}" for i in range(g.count)]
                        for name, g in self.groups.items()}
        self.possible_agents = [agent for names in self.members.values() for agent in names]
        self.agents: list[str] = []
        self._group_of = {agent: name for name, names in self.members.items() for agent in names}
        self._obs: Any = None
        self._observation_spaces = {agent: self._agent_observation_space(self._group_of[agent])
                                    for agent in self.possible_agents}
        self._action_spaces = {agent: _gym_action(self.groups[self._group_of[agent]].action, normalize_actions)
                               for agent in self.possible_agents}

    def _agent_observation_space(self, name: str) -> gym.spaces.Space:
        group = self.groups[name]
        if group.features is None:
            raise ValueError(f"agent group {name!r} declares no features")
        features = gym.spaces.Box(-np.inf, np.inf, (group.features.size,), np.float32)
        if not getattr(group.action, "masked", False):
            return features
        return gym.spaces.Dict({"observation": features, "action_mask": gym.spaces.MultiBinary(group.action.n)})

    def observation_space(self, agent: str) -> gym.spaces.Space:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> gym.spaces.Space:
        return self._action_spaces[agent]

    def _agent_values(self, value: Any, name: str) -> np.ndarray:
        """Group ``name``'s part of a batch-of-one value, one row per agent."""
        part = value[name] if self.spaces.multi_agent else value
        array = _numpy(part)
        return array.reshape(self.groups[name].count, -1) if self.spaces.multi_agent else array.reshape(1, -1)

    def _observations(self) -> dict[str, Any]:
        flat = self.sim.flat_observation(self._obs)
        mask = action_mask(self.sim, self._obs)
        out = {}
        for name, agents in self.members.items():
            features = self._agent_values(flat, name).astype(np.float32)
            masked = getattr(self.groups[name].action, "masked", False)
            legal = self._agent_values(mask, name).astype(np.int8) if masked else None
            for i, agent in enumerate(agents):
                out[agent] = features[i] if legal is None else {"observation": features[i], "action_mask": legal[i]}
        return out

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.batch.seed(seed)
        self._obs = self.batch.reset()
        self.agents = list(self.possible_agents)
        return self._observations(), {agent: {} for agent in self.agents}

    def step(self, actions: Mapping[str, Any]):
        if not self.agents:
            raise gym.error.ResetNeeded("the episode has ended: call reset() before step()")
        parts = {}
        for name, agents in self.members.items():
            space = self.groups[name].action
            values = np.stack([np.asarray(actions[agent]) for agent in agents])
            lead = (1, len(agents)) if self.spaces.multi_agent else (1,)
            parts[name] = _torch_action(space, values, lead, self.normalize, self.sim.device)
        action = parts if self.spaces.multi_agent else parts[SINGLE]
        obs, reward, terminated, truncated, elapsed, _ = self.batch.step(action)
        self._obs = obs
        observations = self._observations()
        rewards = {}
        for name, agents in self.members.items():
            values = self._agent_values(reward, name).reshape(-1)
            rewards.update({agent: float(values[i]) for i, agent in enumerate(agents)})
        ended, cut = bool(terminated[0]), bool(truncated[0])
        info = {"elapsed": float(elapsed[0])} if elapsed is not None else {}
        terminations = {agent: ended for agent in self.agents}
        truncations = {agent: cut for agent in self.agents}
        infos = {agent: dict(info) for agent in self.agents}
        if ended or cut:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def close(self) -> None:
        return None


def make_parallel_env(domain: str | BatchedSimulator[Any], scenario: str | None = None, *,
                      max_episode_steps: int | None = None, device: str = "cpu", normalize_actions: bool = True,
                      **parameters: Any) -> SimulatorParallelEnv:
    """A PettingZoo ``ParallelEnv`` of a registered domain's scenario (or a given simulator): one agent per
    member of each agent group."""
    sim = _simulator(domain, scenario, parameters, device)
    return SimulatorParallelEnv(sim, max_episode_steps, normalize_actions=normalize_actions)
