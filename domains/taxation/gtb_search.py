"""The best schedules a search finds for the scripted workers: baselines that know what the planner knows
(the economy's rules, not the held-out economies).

- ``searched``: one schedule for every tax period.
- ``searched_by_period``: a schedule per tax period (rates ``[P, K]``), what a planner that reads only the
  clock can do; the learned planner also reads the economy's state.

Coordinate ascent on the rate grid (``step``): coordinate by coordinate (a bracket, or a bracket in one
period), every rate of the grid for it, the others held, all candidates simulated at once on the same
``economies`` economies (maps, skills and draws), so the choice between them is paired; ``passes`` rounds
over the coordinates, stopping early when a round changes nothing. ``searched_by_period`` starts from
``searched``'s schedule in every period. The objective is the mean equality × productivity at the
episode's end. The economies come from their own seed, apart from any evaluation's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from decisionlab.core import make_generator
from decisionlab.domains.taxation.gtb import PLANNER, GatherTradeBuildSim
from decisionlab.domains.taxation.gtb_observe import period_of
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


class RowSchedules:
    """A planner that sets, in row ``r`` of the batch, the rates ``rates[r, p]`` in tax period ``p``
    (``rates [R, P, K]``); the period is read from the planner's clock."""

    def __init__(self, scenario: GatherTradeBuildScenario, rates: torch.Tensor) -> None:
        self.scenario, self.rates = scenario, rates

    def act(self, obs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        period = period_of(self.scenario, obs[PLANNER]["features"], self.rates.shape[1])
        rows = torch.arange(self.rates.shape[0], device=self.rates.device)
        return {PLANNER: self.rates[rows, period][:, None, :]}


def objective_of(scenario: GatherTradeBuildScenario, schedules: torch.Tensor, economies: int, seed: int,
                 device: Any = "cpu") -> torch.Tensor:
    """``[C]`` mean equality × productivity at the episode's end of each schedule, ``[C, K]`` (every period)
    or ``[C, P, K]`` (per period), every one on the same ``economies`` economies of ``seed``, the scripted
    workers answering."""
    sim = GatherTradeBuildSim(scenario, device)
    generator = make_generator(seed, device)
    start = sim.reset(economies, generator)
    paths = sim.sample_exogenous(economies, sim.horizon, generator)
    count = schedules.shape[0]
    if schedules.dim() == 2:
        schedules = schedules[:, None, :]
    state = tiled(start, count)
    draws = paths.repeat(count, 1, 1)
    rates = schedules.to(device=sim.device, dtype=torch.get_default_dtype()).repeat_interleave(economies, 0)
    planner, workers = RowSchedules(scenario, rates), GatherBuildWorkers(scenario, device)
    with torch.no_grad():
        for t in range(sim.horizon):
            obs = sim.observe(state)
            state = sim.step(state, {**workers.act(obs), **planner.act(obs)}, draws[:, t]).state
    return state.welfare.reshape(count, economies).mean(1)


def coordinate_ascent(scenario: GatherTradeBuildScenario, rates: torch.Tensor, economies: int, step: float,
                      passes: int, seed: int, device: Any) -> SearchedSchedule:
    """Coordinate ascent from ``rates`` (``[K]`` or ``[P, K]``) over the rate grid (module docstring)."""
    grid = torch.linspace(0.0, 1.0, round(1.0 / step) + 1, dtype=torch.float64)
    rates = rates.clone()
    best = float(objective_of(scenario, rates[None], economies, seed, device)[0])
    evaluations = 1
    for _ in range(passes):
        changed = False
        for index in range(rates.numel()):
            candidates = rates.repeat(len(grid), *([1] * rates.dim()))
            candidates.view(len(grid), -1)[:, index] = grid
            values = objective_of(scenario, candidates, economies, seed, device)
            evaluations += len(grid)
            i = int(values.argmax())
            if float(values[i]) > best + 1e-9:
                best, rates, changed = float(values[i]), candidates[i].clone(), True
        if not changed:
            break
    return SearchedSchedule(tuple(rates.flatten().tolist()), best, evaluations)


def search_schedule(scenario: GatherTradeBuildScenario, economies: int = 32, step: float = 0.1, passes: int = 3,
                    seed: int = SEARCH_SEED, device: Any = "cpu") -> SearchedSchedule:
    """The best single schedule ``[K]`` coordinate ascent finds from no tax (module docstring)."""
    start = torch.zeros(scenario.n_brackets, dtype=torch.float64)
    return coordinate_ascent(scenario, start, economies, step, passes, seed, device)


def search_schedule_by_period(scenario: GatherTradeBuildScenario, economies: int = 32, step: float = 0.1,
                              passes: int = 2, seed: int = SEARCH_SEED, device: Any = "cpu") -> SearchedSchedule:
    """The best schedule per period (``rates`` flattened ``[P·K]``) coordinate ascent finds from
    :func:`searched_schedule`'s in every period (module docstring)."""
    periods = -(-scenario.episode_steps // scenario.tax_period_steps)
    start = torch.tensor(searched_schedule(scenario).rates, dtype=torch.float64).repeat(periods, 1)
    return coordinate_ascent(scenario, start, economies, step, passes, seed, device)


@lru_cache(maxsize=8)
def _cached(scenario_json: str) -> SearchedSchedule:
    return search_schedule(GatherTradeBuildScenario.model_validate_json(scenario_json))


def searched_schedule(scenario: GatherTradeBuildScenario) -> SearchedSchedule:
    """:func:`search_schedule` with its defaults, once per scenario."""
    return _cached(scenario.model_dump_json())


@lru_cache(maxsize=8)
def _cached_by_period(scenario_json: str) -> SearchedSchedule:
    return search_schedule_by_period(GatherTradeBuildScenario.model_validate_json(scenario_json))


def searched_schedule_by_period(scenario: GatherTradeBuildScenario) -> SearchedSchedule:
    """:func:`search_schedule_by_period` with its defaults, once per scenario."""
    return _cached_by_period(scenario.model_dump_json())
