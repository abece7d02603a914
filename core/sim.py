"""The batched simulator contract (gymnax-style, on torch), version 3.

A simulator object holds a scenario's parameters as tensors on one device. ``step`` is a pure
function of ``(state, action, exogenous)``: it returns a new state and never mutates its input, so
the same start state can be rolled forward under several policies and, where the dynamics are
differentiable, the autograd graph runs through the whole rollout (pathwise / HDPO training).

Exogenous randomness (demand, prices, arrivals) is pre-sampled by ``sample_exogenous`` from an
explicit ``torch.Generator``: two policies given the same generator seed face the same paths.

The simulator declares what it shows and takes as :class:`~decisionlab.core.spaces.Spaces`
(``sim.spaces``); everything generic (the rollout engine, the trainers, the adapters, serving, the
conformance suite) reads that declaration instead of per-domain hooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import torch

from decisionlab.core.spaces import Spaces

StateT = TypeVar("StateT")


@dataclass
class StepResult(Generic[StateT]):
    """What ``step`` returns.

    Attributes:
        state: the next state.
        reward: ``[B]``; with agent groups ``{group: [B, count]}``.
        info: named per-row diagnostics ``[B, ...]`` (what metrics and logs read).
        terminated: ``[B]`` bool, the step reached a true terminal state (no value after it: learners
            do not bootstrap). ``None``: the simulator never terminates.
        truncated: ``[B]`` bool, the episode was cut by a time limit of the simulator's own (learners
            bootstrap from the state reached). ``None``: only the caller's horizon cuts episodes.
        elapsed: ``[B]`` time from the previous decision to this one's outcome, in
            ``spaces.time_unit`` (event-timed simulators; discounting is γ^elapsed). ``None``: one period.
    """

    state: StateT
    reward: Any
    info: dict[str, torch.Tensor] = field(default_factory=dict)
    terminated: torch.Tensor | None = None
    truncated: torch.Tensor | None = None
    elapsed: torch.Tensor | None = None


@runtime_checkable
class BatchedSimulator(Protocol[StateT]):
    """A batch of ``B`` independent environments stepped together on ``device``.

    - ``device``: where every tensor of a rollout lives.
    - ``differentiable``: whether ``step`` keeps gradients from action to reward.
    - ``spaces``: the declaration of observation, action, features, agent groups and event time.
    - ``horizon`` (optional attribute): decisions per episode, where the scenario fixes it.
    - ``action_mask(obs)`` (only when an action space is ``masked``): the legal choices now.
    """

    device: torch.device
    differentiable: bool
    spaces: Spaces

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None) -> torch.Tensor:
        """Pre-sampled randomness ``[B, periods, ...]`` for a rollout."""
        ...

    def reset(self, batch: int, generator: torch.Generator | None = None) -> StateT:
        """Initial state for ``batch`` environments."""
        ...

    def observe(self, state: StateT) -> Any:
        """The policy's observation of ``state`` (the declared ``spaces.observation``, batched)."""
        ...

    def step(self, state: StateT, action: Any, exogenous: torch.Tensor) -> StepResult[StateT]:
        """Advance one decision with ``action`` (batched, in ``spaces.action``) and this step's
        ``exogenous [B, ...]``."""
        ...

    def flat_observation(self, obs: Any) -> Any:
        """``obs`` as the float features ``[B, F]`` of ``spaces.features`` (``{group: [B, count, F]}``
        with agent groups): what generic learners read."""
        ...


def horizon_of(sim: Any, horizon: int | None = None) -> int:
    """``horizon`` when given, else the simulator's own ``horizon`` attribute (a clear error when
    neither says how many decisions an episode has)."""
    if horizon is None:
        horizon = getattr(sim, "horizon", None)
    if horizon is None:
        raise ValueError(f"{type(sim).__name__} has no horizon attribute: give the decisions per episode")
    horizon = int(horizon)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    return horizon


def action_mask(sim: Any, obs: Any) -> Any:
    """The simulator's legal choices for ``obs`` when its action space is masked, else ``None``."""
    return sim.action_mask(obs) if sim.spaces.masked else None


class Reshaped:
    """``sim`` whose reward is ``shaping(result)`` (a learner's reward, e.g. a risk-adjusted P&L); the
    simulator's own reward stays in ``info["env_reward"]``, which training logs read. Everything else
    is ``sim``'s (its spaces, horizon, masks...)."""

    def __init__(self, sim: Any, shaping: Any) -> None:
        self.sim, self.shaping = sim, shaping

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    def step(self, state: Any, action: Any, exogenous: torch.Tensor) -> StepResult[Any]:
        result = self.sim.step(state, action, exogenous)
        info = {**result.info, "env_reward": result.reward}
        return StepResult(result.state, self.shaping(result), info, result.terminated, result.truncated,
                          result.elapsed)
