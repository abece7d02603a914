"""The best fixed schedule a search finds for the scripted workers: the strongest baseline that knows what the
planner knows (the economy's rules, not the held-out economies).

Coordinate ascent on the rate grid (``step``): bracket by bracket, every rate of the grid for that bracket,
the others held, all candidates simulated at once on the same ``economies`` economies (maps, skills and
draws), so the choice between them is paired; ``passes`` rounds over the brackets, stopping early when a
round changes nothing. The objective is the mean equality × productivity at the episode's end. The
economies come from their own seed, apart from any evaluation's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from decisionlab.core import make_generator
from decisionlab.domains.taxation.gtb import PLANNER, GatherTradeBuildSim
from decisionlab.domains.taxation.gtb_train import tiled
from decisionlab.domains.taxation.gtb_workers import GatherBuildWorkers
from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario

SEARCH_SEED = 7_919


@dataclass(frozen=True)
class SearchedSchedule:
    """The rates found, their objective on the search's economies, and the candidates simulated."""

    rates: tuple[float, ...]
    value: float
    evaluations: int


def objective_of(scenario: GatherTradeBuildScenario, schedules: torch.Tensor, economies: int, seed: int,
                 device: Any = "cpu") -> torch.Tensor:
    """``[C]`` mean equality × productivity at the episode's end of each schedule ``[C, K]``, every one on the
    same ``economies`` economies of ``seed``, the scripted workers answering."""
    sim = GatherTradeBuildSim(scenario, device)
    generator = make_generator(seed, device)
    start = sim.reset(economies, generator)
    paths = sim.sample_exogenous(economies, sim.horizon, generator)
    count = schedules.shape[0]
    state = tiled(start, count)
    draws = paths.repeat(count, 1, 1)
    rates = schedules.to(device=sim.device, dtype=torch.get_default_dtype()).repeat_interleave(economies, 0)[:, None]
    workers = GatherBuildWorkers(scenario, device)
    with torch.no_grad():
        for t in range(sim.horizon):
            action = {**workers.act(sim.observe(state)), PLANNER: rates}
            state = sim.step(state, action, draws[:, t]).state
    return state.welfare.reshape(count, economies).mean(1)


def search_schedule(scenario: GatherTradeBuildScenario, economies: int = 32, step: float = 0.1, passes: int = 3,
                    seed: int = SEARCH_SEED, device: Any = "cpu") -> SearchedSchedule:
    """Coordinate ascent over the rate grid from no tax (module docstring)."""
    grid = torch.linspace(0.0, 1.0, round(1.0 / step) + 1, dtype=torch.float64)
    rates = torch.zeros(scenario.n_brackets, dtype=torch.float64)
    best = float(objective_of(scenario, rates[None], economies, seed, device)[0])
    evaluations = 1
    for _ in range(passes):
        changed = False
        for k in range(scenario.n_brackets):
            candidates = rates.repeat(len(grid), 1)
            candidates[:, k] = grid
            values = objective_of(scenario, candidates, economies, seed, device)
            evaluations += len(grid)
            i = int(values.argmax())
            if float(values[i]) > best + 1e-9:
                best, rates, changed = float(values[i]), candidates[i].clone(), True
        if not changed:
            break
    return SearchedSchedule(tuple(rates.tolist()), best, evaluations)


@lru_cache(maxsize=8)
def _cached(scenario_json: str) -> SearchedSchedule:
    return search_schedule(GatherTradeBuildScenario.model_validate_json(scenario_json))


def searched_schedule(scenario: GatherTradeBuildScenario) -> SearchedSchedule:
    """:func:`search_schedule` with its defaults, once per scenario."""
    return _cached(scenario.model_dump_json())
