"""Network KPIs per episode, accumulated period by period (no [B, T] history kept)."""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import torch

from decisionlab.core.policy import Policy
from decisionlab.core.rollout import period_sums
from decisionlab.core.seeding import make_generator
from decisionlab.core.spec import MetricSpec
from decisionlab.domains.inventory.network.scenario import NetworkScenario
from decisionlab.domains.inventory.network.sim import NetworkSim

NETWORK_METRICS = {
    "cost_per_period": MetricSpec("cost_per_period", "average holding + shortage cost per period (whole network)",
                                  "lower"),
    "holding_cost_per_period": MetricSpec("holding_cost_per_period", "average holding cost per period", "lower"),
    "shortage_cost_per_period": MetricSpec("shortage_cost_per_period", "average lost-sales penalty per period",
                                           "lower"),
    "backlog_cost_per_period": MetricSpec("backlog_cost_per_period", "average backlog penalty per period", "lower"),
    "fill_rate": MetricSpec("fill_rate", "share of demand served from stock in the period it occurs", "higher"),
    "mean_on_hand": MetricSpec("mean_on_hand", "average stock on hand at the end of a period, all nodes", "lower",
                               "units"),
}

CHUNK_PERIODS = 1000  # demand is drawn in chunks so long horizons never hold [B, T, S] at once
_SUMMED = ("cost", "holding_cost", "shortage_cost", "backlog_cost", "sales", "demand")


@torch.no_grad()
def network_episode_metrics(
    scenario: NetworkScenario, policy: Policy, episodes: int, seed: int, device: torch.device
) -> dict[str, np.ndarray]:
    """Run ``episodes`` episodes of ``scenario.horizon_periods`` from an empty network with demand
    drawn from ``seed`` (common random numbers across policies); metrics average the periods
    after ``warmup_periods``. Returns ``{metric: [episodes]}``."""
    sim = NetworkSim(scenario, device)
    quantities = {key: itemgetter(key) for key in _SUMMED}
    quantities["on_hand"] = lambda info: torch.relu(info["on_hand"]).sum(1)  # stock held anywhere
    sums = period_sums(sim, policy, episodes, scenario.horizon_periods, scenario.warmup_periods,
                       make_generator(seed, device), quantities, CHUNK_PERIODS)
    counted = scenario.horizon_periods - scenario.warmup_periods
    out = {
        "cost_per_period": sums["cost"] / counted,
        "holding_cost_per_period": sums["holding_cost"] / counted,
        "shortage_cost_per_period": sums["shortage_cost"] / counted,
        "backlog_cost_per_period": sums["backlog_cost"] / counted,
        "fill_rate": sums["sales"] / sums["demand"].clamp_min(1e-12),
        "mean_on_hand": sums["on_hand"] / counted,
    }
    return {k: v.cpu().numpy() for k, v in out.items()}
