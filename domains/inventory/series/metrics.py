"""``real_series`` KPIs: the held-out backtest (the core rollout over the replayed history, see
:func:`~.sim.backtest`), one "episode" per series, into the inventory KPIs of :mod:`..kpis`."""

from __future__ import annotations

import numpy as np
import torch

from decisionlab.core import Policy
from decisionlab.domains.inventory import kpis
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario
from decisionlab.domains.inventory.series.sim import SeriesSim, backtest, heldout_span

METRICS = kpis.metrics(("cost_per_period", "holding_cost_per_period", "shortage_cost_per_period", "fill_rate",
                        "mean_on_hand"))


def summarise(sums: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Per-row KPIs from :func:`~.sim.backtest` sums."""
    return kpis.per_period(sums, sums["periods"])


def episode_metrics(
    scenario: RealSeriesScenario, policy: Policy, episodes: int, seed: int, device: torch.device, start: int = 0
) -> dict[str, np.ndarray]:
    """Held-out KPIs per series (``{metric: [n]}``, one "episode" per series): series ``start`` to
    ``start + episodes`` in data order (fewer at the end of the data).

    The demand is the data itself, so ``seed`` plays no part (every policy faces the same history:
    paired by construction)."""
    sim = SeriesSim(scenario, device, split="all")
    stop = min(start + max(1, int(episodes)), sim.data.n_series)
    if stop <= start:  # past the last series
        return {name: np.zeros(0) for name in METRICS}
    first, periods, warmup = heldout_span(sim)
    return summarise(backtest(sim, policy, torch.arange(start, stop), first, periods, warmup))
