"""The batched simulator contract (gymnax-style, on torch).

A simulator object holds a scenario's parameters as tensors on one device. ``step`` is a pure
function of ``(state, action, exogenous)``: it returns a new state and never mutates its input, so
the same start state can be rolled forward under several policies and, where the dynamics are
differentiable, the autograd graph runs through the whole rollout (pathwise / HDPO training).

Exogenous randomness (demand, prices, arrivals) is pre-sampled by ``sample_exogenous`` from an
explicit ``torch.Generator``: two policies given the same generator seed face the same paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import torch

StateT = TypeVar("StateT")


@dataclass
class StepResult(Generic[StateT]):
    """What ``step`` returns: the next state, the reward ``[B]`` and named per-env diagnostics ``[B]``."""

    state: StateT
    reward: torch.Tensor
    info: dict[str, torch.Tensor] = field(default_factory=dict)


@runtime_checkable
class BatchedSimulator(Protocol[StateT]):
    """A batch of ``B`` independent environments stepped together on ``device``.

    Attributes used by generic code (rollouts, the gymnasium adapter):

    - ``device``: where every tensor of a rollout lives.
    - ``differentiable``: whether ``step`` keeps gradients from action to reward.
    - ``observation_size`` / ``action_size``: widths of the flat vectors the gymnasium adapter sees.
    - ``action_low`` / ``action_high``: per-component action bounds for that adapter.
    """

    device: torch.device
    differentiable: bool
    observation_size: int
    action_size: int
    action_low: float
    action_high: float

    def sample_exogenous(
        self, batch: int, periods: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Pre-sampled randomness ``[B, periods, ...]`` for a rollout."""
        ...

    def reset(self, batch: int, generator: torch.Generator | None = None) -> StateT:
        """Initial state for ``batch`` environments."""
        ...

    def observe(self, state: StateT) -> Any:
        """The policy's observation of ``state`` (a tensor ``[B, observation_size]`` or richer)."""
        ...

    def step(self, state: StateT, action: torch.Tensor, exogenous: torch.Tensor) -> StepResult[StateT]:
        """Advance one period with ``action [B, ...]`` and this period's ``exogenous [B, ...]``."""
        ...

    def flat_observation(self, obs: Any) -> torch.Tensor:
        """``obs`` as ``[B, observation_size]`` float tensor (what generic RL libraries see)."""
        ...
