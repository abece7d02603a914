"""Per-episode social metrics of a taxation policy: the averages over an episode's tax periods."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from decisionlab.core import MetricSpec, Policy, Sum, make_generator, run
from decisionlab.domains.taxation.sim import OneStepSim

METRICS = {
    "equality_times_productivity": MetricSpec("equality_times_productivity", "equality × productivity, the "
                                              "AI Economist's social objective", "higher"),
    "productivity": MetricSpec("productivity", "total income earned Σ z", "higher"),
    "equality": MetricSpec("equality", "1 − Gini of incomes after tax and rebate", "higher"),
    "welfare": MetricSpec("welfare", "Σ ω_i U_i, weights ω ∝ 1/skill summing to 1", "higher"),
    "gini": MetricSpec("gini", "Gini of incomes after tax and rebate (with the N/(N − 1) correction)", "lower"),
    "revenue": MetricSpec("revenue", "total tax collected (all rebated)", "higher"),
}


def episode_metrics(scenario: Any, policy: Policy, episodes: int, seed: int, device: torch.device,
                    start: int = 0) -> dict[str, np.ndarray]:
    sim = OneStepSim(scenario, device)
    state = sim.reset(episodes, make_generator(seed, device))
    done = run(sim, policy, state=state, reducers={name: Sum(name) for name in METRICS})
    periods = float(scenario.tax_periods)
    return {name: (done.totals[name] / periods).cpu().numpy() for name in METRICS}
