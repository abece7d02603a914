"""Rolling a policy through a batched simulator: the one rollout every setting's metrics come from.

- :func:`rollout`: a policy over pre-sampled exogenous paths ``[B, T, ...]``, keeping the rewards
  and chosen diagnostics per period (training, short evaluations, plots);
- :func:`accumulate`: sums of per-period quantities after a warm-up, exogenous paths produced chunk
  by chunk (drawn from a generator, or cut from data), nothing per period kept: horizons of
  millions of periods run in constant memory (long-run KPIs, backtests);
- :func:`period_sums`: :func:`accumulate` from ``sim.reset`` with paths drawn from a generator.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from decisionlab.core.policy import Policy
from decisionlab.core.sim import BatchedSimulator

Quantities = dict[str, Callable[[dict[str, torch.Tensor]], torch.Tensor]]
"""``{name: read}``: ``read(info) -> [B]`` picks a per-period quantity out of a step's info."""


@dataclass
class Trajectory:
    """Rewards ``[B, T]``, selected per-period diagnostics ``[B, T, ...]`` and the final state."""

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
def accumulate(
    sim: BatchedSimulator[Any],
    policy: Policy,
    state: Any,
    exogenous: Callable[[int, int], torch.Tensor],
    periods: int,
    warmup: int,
    quantities: Quantities,
    chunk_periods: int = 1000,
) -> dict[str, torch.Tensor]:
    """Sums over the periods after ``warmup`` of per-period quantities, ``{name: [B]}`` (float64),
    from ``state`` over ``periods`` periods. ``exogenous(start, length) -> [B, length, ...]`` gives
    the paths of periods ``start..start+length-1``, asked for in chunks of ``chunk_periods``."""
    sums: dict[str, torch.Tensor] = {}
    period = 0
    while period < periods:
        length = min(chunk_periods, periods - period)
        paths = exogenous(period, length)
        for t in range(length):
            result = sim.step(state, policy.act(sim.observe(state)), paths[:, t])
            state = result.state
            if period + t >= warmup:
                for name, read in quantities.items():
                    value = read(result.info)
                    if name in sums:
                        sums[name] += value
                    else:
                        sums[name] = value.to(torch.float64).clone()
        period += length
    if not sums:  # every period was warm-up: zeros of the batch size
        size = paths.shape[0]
        sums = {name: torch.zeros(size, dtype=torch.float64, device=sim.device) for name in quantities}
    return sums


@torch.no_grad()
def period_sums(
    sim: BatchedSimulator[Any],
    policy: Policy,
    episodes: int,
    horizon_periods: int,
    warmup_periods: int,
    generator: torch.Generator | None,
    quantities: Quantities,
    chunk_periods: int = 1000,
) -> dict[str, torch.Tensor]:
    """:func:`accumulate` over ``episodes`` episodes of ``horizon_periods`` from ``sim.reset``, with
    exogenous paths drawn from ``generator`` chunk by chunk."""
    return accumulate(
        sim, policy, sim.reset(episodes),
        lambda start, length: sim.sample_exogenous(episodes, length, generator),
        horizon_periods, warmup_periods, quantities, chunk_periods,
    )
