"""Single-store KPIs per episode: the core rollout over :class:`~.sim.SingleStoreSim`, summed period
by period (no ``[B, T]`` history kept), into the inventory KPIs of :mod:`..kpis`."""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import torch

from decisionlab.core import Policy, make_generator, period_sums
from decisionlab.domains.inventory import kpis
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario
from decisionlab.domains.inventory.single_store.sim import SingleStoreSim

METRICS = kpis.metrics(("cost_per_period", "holding_cost_per_period", "shortage_cost_per_period", "fill_rate",
                        "mean_on_hand"))
CHUNK_PERIODS = 1000  # demand is drawn in chunks so long horizons do not hold [B, T] at once


@torch.no_grad()
def episode_metrics(
    scenario: LostSalesScenario, policy: Policy, episodes: int, seed: int, device: torch.device, start: int = 0
) -> dict[str, np.ndarray]:
    """Run ``episodes`` episodes of ``scenario.horizon_periods`` with demand drawn from ``seed``;
    metrics average the periods after ``warmup_periods``. Returns ``{metric: [episodes]}``."""
    sim = SingleStoreSim(scenario, device)
    sums = period_sums(sim, policy, episodes, scenario.horizon_periods, scenario.warmup_periods,
                       make_generator(seed, device), {key: itemgetter(key) for key in kpis.SUMMED}, CHUNK_PERIODS)
    return kpis.per_period(sums, scenario.horizon_periods - scenario.warmup_periods)
