"""Inventory KPIs per episode, accumulated period by period (no [B, T] history kept)."""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import torch

from decisionlab.core.policy import Policy
from decisionlab.core.rollout import period_sums
from decisionlab.core.seeding import make_generator
from decisionlab.core.spec import MetricSpec
from decisionlab.domains.inventory.scenario import LostSalesScenario
from decisionlab.domains.inventory.sim import SingleStoreSim

METRICS = {
    "cost_per_period": MetricSpec("cost_per_period", "average holding + lost-sales cost per period", "lower"),
    "holding_cost_per_period": MetricSpec("holding_cost_per_period", "average holding cost per period", "lower"),
    "shortage_cost_per_period": MetricSpec("shortage_cost_per_period", "average lost-sales penalty", "lower"),
    "fill_rate": MetricSpec("fill_rate", "share of demand served from stock", "higher"),
    "mean_on_hand": MetricSpec("mean_on_hand", "average stock left at the end of a period", "lower", "units"),
}

CHUNK_PERIODS = 1000  # demand is drawn in chunks so long horizons do not hold [B, T] at once


@torch.no_grad()
def episode_metrics(
    scenario: LostSalesScenario, policy: Policy, episodes: int, seed: int, device: torch.device
) -> dict[str, np.ndarray]:
    """Run ``episodes`` episodes of ``scenario.horizon_periods`` with demand drawn from ``seed``;
    metrics average the periods after ``warmup_periods``. Returns ``{metric: [episodes]}``."""
    sim = SingleStoreSim(scenario, device)
    keys = ("cost", "holding_cost", "shortage_cost", "sales", "demand", "on_hand")
    sums = period_sums(sim, policy, episodes, scenario.horizon_periods, scenario.warmup_periods,
                       make_generator(seed, device), {key: itemgetter(key) for key in keys}, CHUNK_PERIODS)
    counted = scenario.horizon_periods - scenario.warmup_periods
    demand_total = sums["demand"].clamp_min(1e-12)
    out = {
        "cost_per_period": sums["cost"] / counted,
        "holding_cost_per_period": sums["holding_cost"] / counted,
        "shortage_cost_per_period": sums["shortage_cost"] / counted,
        "fill_rate": sums["sales"] / demand_total,
        "mean_on_hand": sums["on_hand"] / counted,
    }
    return {k: v.cpu().numpy() for k, v in out.items()}
