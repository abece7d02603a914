"""Avellaneda–Stoikov parameters (σ, A, k) estimated from replay data, for the closed-form baselines.

- **σ** (price units per √time unit): the realised volatility of the mid on the replay clock,
  ``σ² = mean((mid_{i+1} − mid_i)²) / dt`` over the training snapshots (not demeaned: the drift of a
  step is negligible against its noise).
- **A, k**: the fill intensity ``λ(δ) = A·exp(−k·δ)`` of a quote at depth δ from the mid. For each
  depth of a grid (``depths_ticks``, half-ticks from the mid: 0.5 is the touch when the spread is one
  tick) the replay itself (:class:`~.sim.ReplaySim`, with the scenario's queue model, quote size and
  latency) is run over the training part with both sides quoted at that constant depth and no
  inventory bound; ``λ(δ)`` is the units filled per side per time unit, divided by the quote size.
  A and k are the least-squares fit of ``log λ = log A − k·δ`` over the depths with at least
  ``min_fills`` fills. Quotes that follow the mid keep their queue place while the mid stays, as a
  baseline's would, so A reflects the queue-priority the replay grants rather than the trade rate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from decisionlab.core import ConstantPolicy, ScenarioError, Sum, run
from decisionlab.domains.market_making.replay.data import ReplayData
from decisionlab.domains.market_making.replay.scenario import ReplayScenario, replay_data, split_row, tick_of
from decisionlab.domains.market_making.replay.sim import ReplaySim

DEPTHS_TICKS = tuple(0.5 + j for j in range(8))
WINDOW_STEPS = 600
MIN_FILLS = 10


def calibrate(data: ReplayData, scenario: ReplayScenario | None = None, *,
              depths_ticks: tuple[float, ...] = DEPTHS_TICKS, window_steps: int = WINDOW_STEPS,
              min_fills: int = MIN_FILLS) -> dict[str, Any]:
    """σ, A, k of the training part of ``data`` (module docstring), in the time units of ``scenario``
    (default: the :data:`~.scenario.PRESETS` ``lob_replay`` settings: dt = step_seconds = 1 s).

    Returns ``{"sigma", "fill_intensity_a", "fill_decay_k"}`` (floats, ready for ``model_copy(update=...)``)
    and the diagnostics ``"depths"`` (price units), ``"intensity"`` (λ per time unit), ``"fills"``
    (units per depth) and ``"tick"``. Raises :class:`ScenarioError` when fewer than two depths have
    ``min_fills`` fills."""
    from decisionlab.domains.market_making.replay.scenario import PRESETS

    base = scenario or PRESETS["lob_replay"]
    dt = base.dt
    tick = tick_of(base, data)
    split = split_row(base.train_fraction, data.snapshots)
    mid = data.mid[:split]
    sigma = math.sqrt(float(np.mean(np.diff(mid) ** 2)) / dt)

    window = min(window_steps, split - 1)
    probe = base.model_copy(update={"horizon": window * dt, "max_inventory": None, "initial_inventory": 0,
                                    "flatten_at_end": False, "terminal_penalty": 0.0, "running_penalty": 0.0})
    sim = ReplaySim(probe, "cpu", "train", data=data)
    windows = sim.start_rows // window + (1 if sim.start_rows % window else 0)
    starts = torch.arange(windows) * window
    depths = torch.tensor(depths_ticks, dtype=torch.float32) * tick
    n = len(depths_ticks)
    state = sim.start_state(starts.repeat_interleave(n))  # episode e·n + d: window e at depth d
    quotes = ConstantPolicy(depths.repeat(windows).unsqueeze(1).expand(-1, 2).contiguous(), "constant_depths")
    # the rows come from the start states, not from the exogenous input (zeros)
    filled = run(sim, quotes, state=state, exogenous=torch.zeros(windows * n, window, 1),
                 reducers={"fills": Sum(lambda step: step.info["bid_fill"] + step.info["ask_fill"])}).totals["fills"]
    fills = filled.view(windows, n).sum(dim=0).numpy() / base.quote_size / 2  # per side
    time = windows * window * dt
    intensity = fills / time
    usable = fills >= min_fills
    if usable.sum() < 2:
        raise ScenarioError(f"data_path: too few fills to estimate A and k ({fills.round(1).tolist()} units per side "
                            f"at depths {list(depths_ticks)} ticks over {time:g} time units)")
    x = depths.numpy()[usable].astype(np.float64)
    slope, intercept = np.polyfit(x, np.log(intensity[usable]), 1)
    return {
        "sigma": sigma,
        "fill_intensity_a": float(math.exp(intercept)),
        "fill_decay_k": float(-slope),
        "depths": depths.numpy().astype(np.float64).tolist(),
        "intensity": intensity.tolist(),
        "fills": fills.tolist(),
        "tick": tick,
    }


def calibrated(scenario: ReplayScenario) -> ReplayScenario:
    """``scenario`` with σ, A and k re-estimated from its own data (:func:`calibrate`)."""
    fit = calibrate(replay_data(scenario), scenario)
    update = {key: fit[key] for key in ("sigma", "fill_intensity_a", "fill_decay_k")}
    return type(scenario).model_validate({**scenario.model_dump(), **update})  # validated: bounds still apply
