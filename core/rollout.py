"""Rolling a policy through a batched simulator over pre-sampled exogenous paths."""

from __future__ import annotations

from collections.abc import Callable
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


@torch.no_grad()
def period_sums(
    sim: BatchedSimulator[Any],
    policy: Policy,
    episodes: int,
    horizon_periods: int,
    warmup_periods: int,
    generator: torch.Generator | None,
    quantities: dict[str, Callable[[dict[str, torch.Tensor]], torch.Tensor]],
    chunk_periods: int = 1000,
) -> dict[str, torch.Tensor]:
    """Sums over the periods after ``warmup_periods`` of per-period quantities, ``{name: [episodes]}``
    (float64), for ``episodes`` episodes from ``sim.reset``. Exogenous paths are drawn in chunks of
    ``chunk_periods`` from ``generator`` and nothing per period is kept, so horizons of millions of
    periods run in constant memory. ``quantities[name](info) -> [episodes]`` reads a step's info."""
    state = sim.reset(episodes)
    sums = {name: torch.zeros(episodes, dtype=torch.float64, device=sim.device) for name in quantities}
    period = 0
    while period < horizon_periods:
        length = min(chunk_periods, horizon_periods - period)
        exogenous = sim.sample_exogenous(episodes, length, generator)
        for t in range(length):
            result = sim.step(state, policy.act(sim.observe(state)), exogenous[:, t])
            state = result.state
            if period + t >= warmup_periods:
                for name, read in quantities.items():
                    sums[name] += read(result.info)
        period += length
    return sums
