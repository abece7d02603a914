"""Network KPIs per episode: the core rollout over :class:`~.sim.NetworkSim`, summed period by period
(no ``[B, T]`` history kept), into the inventory KPIs of :mod:`..kpis` (costs of the whole network)."""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import torch

from decisionlab.core import Policy, make_generator, period_sums
from decisionlab.domains.inventory import kpis
from decisionlab.domains.inventory.network.scenario import NetworkScenario
from decisionlab.domains.inventory.network.sim import NetworkSim

NETWORK_METRICS = kpis.metrics(("cost_per_period", "holding_cost_per_period", "shortage_cost_per_period",
                                "backlog_cost_per_period", "fill_rate", "mean_on_hand"))
CHUNK_PERIODS = 1000  # demand is drawn in chunks so long horizons never hold [B, T, S] at once
_SUMMED = ("cost", "holding_cost", "shortage_cost", "backlog_cost", "sales", "demand")


@torch.no_grad()
def network_episode_metrics(
    scenario: NetworkScenario, policy: Policy, episodes: int, seed: int, device: torch.device, start: int = 0
) -> dict[str, np.ndarray]:
    """Run ``episodes`` episodes of ``scenario.horizon_periods`` from an empty network with demand
    drawn from ``seed`` (common random numbers across policies); metrics average the periods
    after ``warmup_periods``. Returns ``{metric: [episodes]}``."""
    sim = NetworkSim(scenario, device)
    quantities = {key: itemgetter(key) for key in _SUMMED}
    quantities["on_hand"] = lambda info: torch.relu(info["on_hand"]).sum(1)  # stock held anywhere
    sums = period_sums(sim, policy, episodes, scenario.horizon_periods, scenario.warmup_periods,
                       make_generator(seed, device), quantities, CHUNK_PERIODS)
    return kpis.per_period(sums, scenario.horizon_periods - scenario.warmup_periods)
