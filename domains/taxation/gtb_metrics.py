"""Per-episode metrics of a Gather-Trade-Build policy: the social objective at the episode's end and what
the workers did on the way."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from decisionlab.core import MetricSpec, Policy, Sum, make_generator, run
from decisionlab.domains.taxation.gtb import GatherTradeBuildSim

METRICS = {
    "equality_times_productivity": MetricSpec("equality_times_productivity", "equality × productivity of the "
                                              "workers' coin at the episode's end, the AI Economist's objective",
                                              "higher"),
    "productivity": MetricSpec("productivity", "total coin at the episode's end (earned; taxes are rebated)",
                               "higher"),
    "equality": MetricSpec("equality", "1 − Gini of the coin at the episode's end (N/(N − 1) corrected)", "higher"),
    "utility": MetricSpec("utility", "the workers' mean utility: isoelastic utility of coin minus the energy "
                          "cost of their labour", "higher"),
    "revenue": MetricSpec("revenue", "tax collected over the episode (all rebated)", "higher"),
    "houses_built": MetricSpec("houses_built", "houses built over the episode", "higher"),
    "trades": MetricSpec("trades", "trades in the double auction over the episode", "higher"),
    "labour": MetricSpec("labour", "the workers' labour over the episode", "lower"),
}
SUMMED = {"revenue": "tax_collected", "houses_built": "houses_built", "trades": "trades", "labour": "labour"}


def episode_metrics(scenario: Any, policy: Policy, episodes: int, seed: int, device: torch.device,
                    start: int = 0) -> dict[str, np.ndarray]:
    sim = GatherTradeBuildSim(scenario, device)
    generator = make_generator(seed, device)  # the maps and skills, then every step's draws
    state = sim.reset(episodes, generator)
    done = run(sim, policy, state=state, generator=generator,
               reducers={name: Sum(read) for name, read in SUMMED.items()})
    final = done.final_state
    coin = final.coin + final.held.coin
    equality, productivity = sim.social(coin)
    values = {"equality_times_productivity": equality * productivity, "productivity": productivity,
              "equality": equality, "utility": final.utility.mean(-1),
              **{name: done.totals[name] for name in SUMMED}}
    return {name: value.double().cpu().numpy() for name, value in values.items()}
