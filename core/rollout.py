"""Rolling a policy through a batched simulator over pre-sampled exogenous paths."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from decisionlab.core.policy import Policy
from decisionlab.core.sim import BatchedSimulator


@dataclass
class Trajectory:
    """Rewards ``[B, T]``, selected per-period diagnostics ``[B, T]`` and the final state."""

    rewards: torch.Tensor
    info: dict[str, torch.Tensor] = field(default_factory=dict)
    final_state: Any = None


def rollout(
    sim: BatchedSimulator[Any],
    policy: Policy,
    exogenous: torch.Tensor,
    state: Any | None = None,
    *,
    record: tuple[str, ...] = (),
    grad: bool = False,
) -> Trajectory:
    """Run ``policy`` for ``exogenous.shape[1]`` periods.

    Args:
        exogenous: ``[B, T, ...]`` paths from ``sim.sample_exogenous``.
        state: start state (``sim.reset(B)`` when omitted).
        record: names of ``info`` entries to keep per period (others are dropped to save memory).
        grad: keep the autograd graph (pathwise training); evaluation leaves it off.
    """
    batch, periods = exogenous.shape[0], exogenous.shape[1]
    if state is None:
        state = sim.reset(batch)
    rewards: list[torch.Tensor] = []
    kept: dict[str, list[torch.Tensor]] = {name: [] for name in record}
    with nullcontext() if grad else torch.no_grad():
        for t in range(periods):
            action = policy.act(sim.observe(state))
            result = sim.step(state, action, exogenous[:, t])
            state = result.state
            rewards.append(result.reward)
            for name in record:
                kept[name].append(result.info[name])
    return Trajectory(
        rewards=torch.stack(rewards, dim=1),
        info={name: torch.stack(values, dim=1) for name, values in kept.items()},
        final_state=state,
    )
