"""Discrete-action views of the execution simulator, for value-based agents.

- :class:`GridActionSim`: the batched simulator with integer actions (an index into an
  :class:`~decisionlab.domains.execution.policies.ActionGrid`); what a batched Double-DQN trainer steps.
- :class:`DiscreteActionWrapper`: the gymnasium adapter (``core.gym_adapter.SimulatorEnv``) with a
  ``Discrete(K)`` action space, so Stable-Baselines3's DQN trains on the same simulator.

Rewards are the simulator's: minus (step shortfall + λσ²x²) in bps of the arrival notional, whose sum has
expectation −(E + λV) for a static schedule, so maximising the return targets the mean-variance objective.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from decisionlab.core.gym_adapter import SimulatorEnv, to_normalized_action
from decisionlab.core.sim import StepResult
from decisionlab.domains.execution.policies import ActionGrid
from decisionlab.domains.execution.sim import ExecutionSim, ExecutionState


class GridActionSim:
    """``ExecutionSim`` whose actions are grid indices ``[B]`` (long); everything else is delegated."""

    differentiable = False

    def __init__(self, sim: ExecutionSim, grid: ActionGrid | None = None) -> None:
        self.sim, self.grid = sim, grid or ActionGrid()
        self.device = sim.device
        self.num_actions = self.grid.levels
        self.observation_size = sim.observation_size
        self.horizon = sim.horizon

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sim.sample_exogenous(batch, periods, generator)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> ExecutionState:
        return self.sim.reset(batch, generator)

    def observe(self, state: ExecutionState) -> torch.Tensor:
        return self.sim.observe(state)

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def shares(self, state: ExecutionState, index: torch.Tensor) -> torch.Tensor:
        """Shares traded by action ``index [B]`` in ``state``."""
        return self.grid.to_shares(self.sim.observe(state), index, self.sim.shares)

    def step(self, state: ExecutionState, index: torch.Tensor, exogenous: torch.Tensor) -> StepResult[ExecutionState]:
        """One step with action indices ``index [B]``; ``info['done']`` is 1 once the order is complete."""
        result = self.sim.step(state, self.shares(state, index), exogenous)
        result.info["done"] = (result.state.steps_done >= self.horizon).to(result.reward.dtype)
        return result


class DiscreteActionWrapper(gym.ActionWrapper):
    """``SimulatorEnv`` over ``ExecutionSim`` with ``Discrete(grid.levels)`` actions (for SB3 DQN).

    The episode is the order's horizon: use ``SimulatorEnv(sim, horizon=N)``; it ends by truncation after N
    steps, when the order is complete.
    """

    def __init__(self, env: SimulatorEnv, grid: ActionGrid | None = None) -> None:
        super().__init__(env)
        self.grid = grid or ActionGrid()
        self.action_space = gym.spaces.Discrete(self.grid.levels)
        self._obs: np.ndarray | None = None
        self._sim: ExecutionSim = env._vec.sim  # type: ignore[assignment]

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = super().step(action)
        self._obs = obs
        return obs, reward, terminated, truncated, info

    def action(self, action: Any) -> np.ndarray:
        if self._obs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        obs = torch.as_tensor(self._obs, dtype=torch.float32).reshape(1, -1)
        index = torch.as_tensor([int(action)])
        shares = self.grid.to_shares(obs, index, self._sim.shares)
        return to_normalized_action(self._sim, shares).numpy().astype(np.float32).reshape(1)
