"""Temporal-difference learning of spatio-temporal values ``V(location, time)``.

Semi-Markov transitions: from ``(location, time_s)`` a reward is earned and ``elapsed`` seconds
later the process is at ``(next_location, next_time_s)``; the bootstrap is discounted by
``γ^(elapsed / gamma_period_s)`` (:func:`discount_for`), or 0 where the next state is terminal.

- :func:`td0_update`: online TD(0) on a table, a batch of simultaneous transitions at a time.
- :func:`fitted_td`: offline fitted TD on logged transitions (minibatch Adam against a frozen
  target copy), for a :class:`~decisionlab.core.nets.value.TabularValue` or a
  :class:`~decisionlab.core.nets.value.NeuralValue`.
- :func:`blend`: the periodic ensemble of the online table and the offline value.

Together they are the online + offline scheme of Tang et al. 2021 ("Value Function is All You
Need", V1D3). Nothing here knows any domain.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields

import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from decisionlab.core.nets.value import TabularValue, value_table
from decisionlab.core.progress import Progress


@dataclass
class Transitions:
    """A batch of ``N`` transitions; every field is ``[N]``."""

    location: torch.Tensor  # long
    time_s: torch.Tensor
    reward: torch.Tensor
    next_location: torch.Tensor  # long; any valid index where discount is 0
    next_time_s: torch.Tensor
    discount: torch.Tensor  # γ^(elapsed / gamma_period_s); 0 where the next state is terminal

    def __post_init__(self) -> None:
        shapes = {f.name: tuple(getattr(self, f.name).shape) for f in fields(self)}
        if len(set(shapes.values())) != 1 or len(shapes["location"]) != 1:
            raise ValueError(f"Transitions fields must all be [N], got {shapes}")

    def __len__(self) -> int:
        return self.location.shape[0]

    def to(self, device: torch.device | str) -> Transitions:
        return Transitions(*(getattr(self, f.name).to(device) for f in fields(self)))

    def select(self, index: torch.Tensor | slice) -> Transitions:
        """The rows picked by a bool mask ``[N]``, a long index ``[M]`` (repeats allowed) or a slice."""
        return Transitions(*(getattr(self, f.name)[index] for f in fields(self)))

    @classmethod
    def cat(cls, parts: Sequence[Transitions]) -> Transitions:
        if not parts:
            raise ValueError("Transitions.cat needs at least one batch")
        return cls(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(cls)))


def discount_for(elapsed_s: torch.Tensor | float, gamma: float, gamma_period_s: float) -> torch.Tensor:
    """``γ^(elapsed_s / gamma_period_s)``: ``gamma`` is the discount per ``gamma_period_s`` seconds
    (e.g. 0.9 per 600 s), so transitions of any duration discount consistently."""
    if not 0 <= gamma <= 1:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not gamma_period_s > 0:
        raise ValueError(f"gamma_period_s must be > 0, got {gamma_period_s}")
    elapsed = torch.as_tensor(elapsed_s)
    if not elapsed.is_floating_point():  # integer seconds; a float64 input stays float64
        elapsed = elapsed.to(torch.get_default_dtype())
    return torch.pow(torch.as_tensor(gamma, dtype=elapsed.dtype, device=elapsed.device), elapsed / gamma_period_s)


@torch.no_grad()
def td0_update(table: TabularValue, batch: Transitions, alpha: float) -> torch.Tensor:
    """One TD(0) step of ``table`` on ``N`` simultaneous transitions; returns the TD errors ``δ [N]``.

    ``δ = r + discount · V(next) − V(s)``, all from the table before the update. Each entry moves
    by ``alpha · mean(δ)`` over the transitions that start in it: a batch of one is textbook TD(0),
    and many transitions from one entry at once average rather than add up (no overshoot).
    """
    flat = table.flat_index(batch.location, batch.time_s)  # [N]
    values = table.table.view(-1)
    bootstrap = batch.discount.to(values.dtype) * table(batch.next_location, batch.next_time_s)
    delta = batch.reward.to(values.dtype) + bootstrap - values[flat]
    size = values.shape[0]
    sums = torch.zeros(size, dtype=values.dtype, device=values.device).index_add_(0, flat, delta)
    counts = torch.bincount(flat, minlength=size).clamp_min_(1)  # entries nobody starts in: 0 / 1
    values.add_(alpha * sums / counts)
    return delta


class FittedTDConfig(BaseModel):
    """Hyper-parameters of offline fitted TD."""

    model_config = ConfigDict(extra="forbid")

    iterations: int = Field(5000, ge=1, description="gradient steps")
    batch_size: int = Field(
        512, ge=1, description="transitions per minibatch (shuffled epochs; >= the data: full batch)"
    )
    learning_rate: float = Field(3e-3, gt=0, description="Adam learning rate")
    target_update_every: int = Field(
        100, ge=1, description="gradient steps between copies of the value into the frozen target (and loss rows)"
    )
    final_learning_rate_fraction: float = Field(
        0.05, gt=0, le=1, description="cosine decay of the learning rate down to this fraction (1: constant)"
    )
    weight_decay: float = Field(0.0, ge=0, description="Adam (L2) weight decay")
    grad_clip: float | None = Field(10.0, gt=0, description="max global gradient norm (None: no clipping)")


@dataclass
class FittedTDResult:
    value: nn.Module  # the module passed in, trained in place
    steps: int
    seconds: float
    history: pl.DataFrame = field(default_factory=pl.DataFrame)  # step, loss (mean since last row), seconds


def epoch_batches(
    n: int, batch_size: int, generator: torch.Generator | None, device: torch.device
) -> Iterator[torch.Tensor]:
    """Endless minibatch indices ``long [batch_size]`` on ``device``: each epoch is a fresh permutation
    of ``range(n)`` (drawn on the generator's device) cut into ``n // batch_size`` batches; the
    remainder rows are skipped for that epoch only."""
    draw_device = generator.device if generator is not None else torch.device("cpu")
    while True:
        order = torch.randperm(n, generator=generator, device=draw_device).to(device)
        yield from order[: n - n % batch_size].view(-1, batch_size)


def cosine_factor(step: int, config: FittedTDConfig) -> float:
    """Multiplier of the learning rate at ``step`` (0-based): cosine from 1 to ``final_learning_rate_fraction``."""
    floor = config.final_learning_rate_fraction
    progress = min(1.0, step / max(1, config.iterations - 1))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def fitted_td(
    value: nn.Module,
    data: Transitions,
    config: FittedTDConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
    description: str = "fitted TD",
) -> FittedTDResult:
    """Fit ``value`` to ``data`` by fitted TD: minimise ``value.loss(s, r + discount · V_target(next))``.

    ``V_target`` is a frozen copy of ``value`` refreshed every ``target_update_every`` steps, so each
    stretch regresses on fixed targets (a fitted Bellman iteration). Adam's step size follows a cosine
    decay: with a constant one, minibatch noise keeps every estimate jittering around the fixed
    point by about the step size (~0.2 on returns of ~10 at lr 0.05). Minibatches cut shuffled
    epochs (:func:`epoch_batches`, so every logged transition counts equally and a batch as large
    as the data is full-batch), shuffled with ``generator`` (on its device; torch's global
    generator when None): same seed, same weights.
    ``value`` needs ``loss(location, time_s, target)`` (both value modules have one).
    """
    config = config or FittedTDConfig()
    if len(data) == 0:
        raise ValueError("fitted_td needs at least one transition")
    device = next(value.parameters()).device
    data = data.to(device)
    target = copy.deepcopy(value).requires_grad_(False)
    optimizer = torch.optim.Adam(value.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_factor(s, config))
    batches = epoch_batches(len(data), min(config.batch_size, len(data)), generator, device)

    start = time.perf_counter()
    rows: list[dict[str, float]] = []
    loss_sum, loss_count = torch.zeros((), device=device), 0  # summed on device: one host sync per row
    bar = Progress(config.iterations, description, enabled=progress, unit="step")
    for step in range(1, config.iterations + 1):
        batch = data.select(next(batches))
        with torch.no_grad():
            y = batch.reward + batch.discount * target(batch.next_location, batch.next_time_s)
        loss = value.loss(batch.location, batch.time_s, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(value.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach()
        loss_count += 1
        bar.update(1)
        if step % config.target_update_every == 0 or step == config.iterations:
            target.load_state_dict(value.state_dict())
            mean_loss = float(loss_sum) / loss_count if loss_count else math.nan
            rows.append({"step": step, "loss": mean_loss, "seconds": time.perf_counter() - start})
            bar.show(loss=mean_loss)
            loss_sum, loss_count = torch.zeros((), device=device), 0
    bar.close()
    return FittedTDResult(
        value=value, steps=config.iterations, seconds=time.perf_counter() - start, history=pl.DataFrame(rows)
    )


@torch.no_grad()
def blend(online: TabularValue, offline: nn.Module, weight_online: float) -> TabularValue:
    """A new table ``weight_online · online + (1 − weight_online) · value_table(offline)`` on the
    online table's grid (the periodic ensemble step); neither input is changed."""
    if not 0.0 <= weight_online <= 1.0:  # also rejects NaN
        raise ValueError(f"weight_online must be in [0, 1], got {weight_online}")
    out = TabularValue(online.n_locations, online.n_time_bins, online.period_s, online.init).to(online.table)
    offline_table = value_table(offline, online.n_locations, online.n_time_bins, online.period_s).to(online.table)
    with torch.no_grad():
        out.table.copy_(online.table)
    blend_(out, offline_table, weight_online)
    return out


@torch.no_grad()
def blend_(table: TabularValue, anchor: torch.Tensor, weight_online: float) -> TabularValue:
    """In place: ``table ← weight_online · table + (1 − weight_online) · anchor`` (``anchor`` a table of the
    same ``[T, L]`` grid); the ensemble step of a value that keeps learning. Returns ``table``."""
    if not 0.0 <= weight_online <= 1.0:  # also rejects NaN
        raise ValueError(f"weight_online must be in [0, 1], got {weight_online}")
    table.table.mul_(weight_online).add_((1.0 - weight_online) * anchor)
    return table
