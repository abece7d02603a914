"""Pathwise policy optimisation (HDPO): differentiate the hindsight cost through the simulator.

The trainer knows nothing about any domain. It is given

- ``train_paths``: either pre-sampled exogenous paths ``[N, T, ...]`` (demand, prices...) from
  which minibatches of ``batch_size`` rows are drawn, or a callable ``sample(step) -> batch``
  that produces a fresh minibatch every step (streaming: no fixed training set, so no
  over-fitting to it, and the domain can carry simulator states over between steps);
- ``objective(policy, batch) -> loss``: a differentiable scalar (usually the mean cost of a
  rollout of ``policy`` over the batch through a differentiable simulator), and
- ``evaluate(policy) -> float``: a held-out score, lower is better (best evaluated on fixed
  paths: common random numbers make successive scores comparable),

and it runs minibatch Adam with gradient-norm clipping and a linear-warm-up + cosine learning
rate schedule, evaluates every ``eval_every`` steps, keeps the best weights, optionally stops
early when the held-out score stops improving (``patience``) or reaches ``target``, and returns
the best policy.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core.progress import Progress


class PathwiseConfig(BaseModel):
    """Hyper-parameters of the pathwise trainer."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int = Field(2000, ge=1, description="gradient steps at most")
    batch_size: int = Field(1024, ge=1, description="paths per minibatch")
    learning_rate: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(0, ge=0, description="linear learning-rate warm-up from ~0")
    final_learning_rate_fraction: float = Field(
        0.05, gt=0, le=1, description="cosine decay of the learning rate down to this fraction"
    )
    grad_clip_norm: float = Field(1.0, gt=0)
    eval_every: int = Field(50, ge=1, description="steps between held-out evaluations")
    eval_from: float = Field(
        0.0, ge=0, le=1, description="skip evaluations before this fraction of max_steps (saves time)"
    )
    patience: int | None = Field(
        8, ge=1, description="evaluations without improvement before stopping (None: run the whole schedule)"
    )
    min_improvement: float = Field(1e-4, ge=0, description="relative improvement that counts")
    target: float | None = Field(None, description="stop as soon as the held-out score is <= this")
    max_seconds: float | None = Field(None, gt=0, description="safety stop on wall time (makes runs machine-dependent)")


@dataclass
class PathwiseResult:
    policy: torch.nn.Module
    best_score: float
    steps: int
    seconds: float
    history: pl.DataFrame = field(default_factory=pl.DataFrame)


def learning_rate_factor(step: int, config: PathwiseConfig) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): linear warm-up, then cosine."""
    warm = min(config.warmup_steps, config.max_steps - 1)
    if step < warm:
        return (step + 1) / warm
    floor = config.final_learning_rate_fraction
    progress = (step - warm) / max(1, config.max_steps - warm)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train_pathwise(
    policy: torch.nn.Module,
    objective: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
    train_paths: torch.Tensor | Callable[[int], torch.Tensor],
    evaluate: Callable[[torch.nn.Module], float],
    config: PathwiseConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    progress: bool = True,
    description: str = "HDPO",
) -> PathwiseResult:
    """Train ``policy`` in place and return it with the best held-out weights loaded.

    ``train_paths``: a tensor ``[N, ...]`` to draw minibatches from (with ``generator``), or a
    callable ``sample(step)`` returning the minibatch of gradient step ``step`` (1-based).
    """
    config = config or PathwiseConfig()
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: learning_rate_factor(s, config))
    if callable(train_paths):
        sample = train_paths
    else:
        paths = train_paths
        n_paths = paths.shape[0]
        batch = min(config.batch_size, n_paths)

        def sample(step: int) -> torch.Tensor:
            index = torch.randint(n_paths, (batch,), generator=generator, device="cpu")
            return paths[index.to(paths.device)]

    start = time.perf_counter()
    best_score = evaluate(policy)
    best_state = copy.deepcopy(policy.state_dict())
    rows = [{"step": 0, "train_loss": float("nan"), "eval_score": best_score, "seconds": 0.0}]
    stale = 0
    running_loss = float("nan")
    first_eval = int(config.eval_from * config.max_steps)
    bar = Progress(config.max_steps, description, enabled=progress, unit="step")
    step = 0
    for step in range(1, config.max_steps + 1):
        loss = objective(policy, sample(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        running_loss = value if math.isnan(running_loss) else 0.9 * running_loss + 0.1 * value
        bar.update(1)
        out_of_time = config.max_seconds is not None and time.perf_counter() - start > config.max_seconds
        last = step == config.max_steps or out_of_time
        if not last and (step % config.eval_every or step < first_eval):
            continue
        score = evaluate(policy)
        rows.append(
            {"step": step, "train_loss": running_loss, "eval_score": score,
             "seconds": time.perf_counter() - start}
        )
        bar.show(eval=score, best=min(score, best_score))
        improved_enough = score < best_score - config.min_improvement * abs(best_score)
        if score < best_score:
            best_score = score
            best_state = copy.deepcopy(policy.state_dict())
        stale = 0 if improved_enough else stale + 1
        if config.target is not None and best_score <= config.target:
            bar.stop_early(f"reached the target score {config.target:.4g} (best {best_score:.4g})")
            break
        if config.patience is not None and stale >= config.patience and step < config.max_steps:
            bar.stop_early(f"the held-out score has not improved enough in {stale} evaluations (best {best_score:.4g})")
            break
        if out_of_time and step < config.max_steps:
            bar.stop_early(f"reached the time limit of {config.max_seconds:g} s (max_seconds)")
            break
    bar.close()
    policy.load_state_dict(best_state)
    return PathwiseResult(
        policy=policy,
        best_score=best_score,
        steps=step,
        seconds=time.perf_counter() - start,
        history=pl.DataFrame(rows),
    )
