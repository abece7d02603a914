"""Discrete-action views of the execution simulator, for value-based agents.

- :class:`GridActionSim`: the batched simulator with integer actions (an index into an
  :class:`~decisionlab.domains.execution.policies.ActionGrid`, its action space ``Discrete(levels)``);
  what the batched Double-DQN trainer steps, and, through ``decisionlab.core.make_env`` /
  ``make_vec_env``, what Stable-Baselines3's DQN sees (the same rewards and the same terminations);
- :class:`DiscreteActionWrapper`: a gymnasium wrapper giving the plain ``ExecutionSim``'s adapter a
  ``Discrete(K)`` action space (the grid index becomes shares).

Rewards are the simulator's: minus (step shortfall + λσ²x²) in bps of the arrival notional, whose sum has
expectation −(E + λV) for a static schedule, so maximising the return targets the mean-variance objective.
``GridActionSim`` can reshape them without changing any policy's expected return (see its docstring).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from decisionlab.core import Discrete, Spaces, StepResult, to_normalized_action
from decisionlab.domains.execution.policies import ActionGrid
from decisionlab.domains.execution.sim import ExecutionSim, ExecutionState

if TYPE_CHECKING:
    from decisionlab.core import SimulatorEnv


class GridActionSim:
    """``ExecutionSim`` whose actions are grid indices ``[B]``; everything else is delegated.

    ``terminated`` marks the step that completes the order (the forced last step, or an earlier one that
    trades everything left) and every later one: the episode is over, so a value learner must not bootstrap
    past it.

    Reward options (both keep every policy's *expected* return, −(E[IS] + λ·E[Σσ²x²]), so the optimal
    policies are unchanged; they only take noise out of what a value learner has to average):

    - ``mark_to_market=True`` adds the potential-based shaping term ``Φ(s') − Φ(s)`` with ``Φ = s·x·(S − S₀)``
      (the holdings' mark-to-market gain vs arrival, in bps). The step reward becomes
      ``−(n·slippage + γ n x + λσ²x²) + s·σξ·x`` (x: holdings after the step), whose conditional mean no
      longer depends on the price path. ``Φ`` is 0 at arrival and once the order is complete, so each
      episode's summed reward is unchanged path by path (Ng, Harada & Russell 1999, with γ = 1).
    - ``price_noise=False`` (needs ``mark_to_market``) also drops ``s·σξ·x``: a martingale difference
      (ξ is drawn after x is chosen), i.e. a control variate — the summed reward then equals −(IS + λΣσ²x²)
      only in expectation, for every policy.

    Its action space is ``Discrete(levels)``: the index of a fraction of the grid.
    """

    differentiable = False

    def __init__(self, sim: ExecutionSim, grid: ActionGrid | None = None, *, mark_to_market: bool = False,
                 price_noise: bool = True) -> None:
        if not price_noise and not mark_to_market:
            raise ValueError("price_noise=False needs mark_to_market=True")
        self.sim, self.grid = sim, grid or ActionGrid()
        self.mark_to_market, self.price_noise = bool(mark_to_market), bool(price_noise)
        self.device = sim.device
        self.num_actions = self.grid.levels
        self.spaces = Spaces(observation=sim.spaces.observation,
                             action=Discrete(self.grid.levels, description="index of a fraction of the grid"))
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
        """Shares traded by action ``index [B]`` (long, or float rounded to the nearest index) in ``state``."""
        index = index.reshape(-1)
        if index.is_floating_point():
            index = index.round().clamp(0, self.grid.levels - 1)
        fraction = self.grid.fractions(self.sim.observe(state)).gather(1, index.long().reshape(-1, 1)).squeeze(1)
        return fraction * state.remaining  # exact: the top fraction (1) completes the order

    def potential(self, state: ExecutionState) -> torch.Tensor:
        """``Φ = s·x·(S − S₀)`` in bps of the arrival notional ``[B]`` (mark-to-market gain of the holdings)."""
        return self.sim.sign * state.remaining * state.price_move * self.sim.reward_scale

    def step(self, state: ExecutionState, index: torch.Tensor, exogenous: torch.Tensor) -> StepResult[ExecutionState]:
        """One step with action indices ``index [B]``; ``terminated`` from the step that completes the order on."""
        result = self.sim.step(state, self.shares(state, index), exogenous)
        new = result.state
        result.terminated = (new.steps_done >= self.horizon) | (new.remaining <= 0)
        if not self.mark_to_market:
            return result
        reward = result.reward + self.potential(new) - self.potential(state)
        if not self.price_noise:
            active = (state.steps_done < self.horizon).to(reward.dtype)
            noise = self.sim.sign * self.sim.sigma * exogenous[:, 0] * new.remaining * self.sim.reward_scale
            reward = reward - active * noise
        return StepResult(new, reward, result.info, terminated=result.terminated)


class DiscreteActionWrapper(gym.ActionWrapper):
    """The adapter of a plain ``ExecutionSim`` (``make_env(ExecutionSim(...))``) with ``Discrete(grid.levels)``
    actions: the index becomes shares with ``grid`` (for a ``GridActionSim``, the adapter is discrete already)."""

    def __init__(self, env: SimulatorEnv, grid: ActionGrid | None = None) -> None:
        super().__init__(env)
        if not isinstance(env.sim, ExecutionSim):
            raise ValueError("DiscreteActionWrapper wraps the adapter of an ExecutionSim (a GridActionSim's adapter "
                             "is discrete already)")
        self._sim: ExecutionSim = env.sim
        self.grid = grid or ActionGrid()
        self.action_space = gym.spaces.Discrete(self.grid.levels)
        self._obs: np.ndarray | None = None

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
