"""Baselines of the Gather-Trade-Build economy: a fixed schedule for the planner, scripted workers that answer it.

``free_market`` (no tax), ``us_federal`` (the 2018 rates on the scaled cut-offs) and ``saez`` (the Saez
formula with e, a(z) and G(z) estimated from the scripted workers' simulated incomes, ``gtb_saez.py``);
``searched`` (the best fixed schedule a coordinate search on the rate grid finds for these workers on
economies of its own, ``gtb_search.py``) and ``searched_by_period`` (the same search with a schedule per
tax period); every one with
:class:`~decisionlab.domains.taxation.gtb_workers.GatherBuildWorkers`, which work less when a house keeps
less after tax.
"""

from __future__ import annotations

from typing import Any

from decisionlab.domains.taxation.gtb_saez import saez_estimate
from decisionlab.domains.taxation.gtb_search import searched_schedule, searched_schedule_by_period
from decisionlab.domains.taxation.gtb_workers import GtbSchedule
from decisionlab.domains.taxation.scenario import US_FEDERAL_RATES, GatherTradeBuildScenario


def gtb_free_market(scenario: GatherTradeBuildScenario, device: Any = "cpu") -> GtbSchedule:
    return GtbSchedule(scenario, [0.0] * scenario.n_brackets, "free_market", device)


def gtb_us_federal(scenario: GatherTradeBuildScenario, device: Any = "cpu") -> GtbSchedule:
    return GtbSchedule(scenario, list(US_FEDERAL_RATES), "us_federal", device)


def gtb_saez(scenario: GatherTradeBuildScenario, device: Any = "cpu") -> GtbSchedule:
    return GtbSchedule(scenario, list(saez_estimate(scenario).rates), "saez", device)


def gtb_searched(scenario: GatherTradeBuildScenario, device: Any = "cpu") -> GtbSchedule:
    return GtbSchedule(scenario, list(searched_schedule(scenario).rates), "searched", device)


def gtb_searched_by_period(scenario: GatherTradeBuildScenario, device: Any = "cpu") -> GtbSchedule:
    periods = -(-scenario.episode_steps // scenario.tax_period_steps)
    flat = searched_schedule_by_period(scenario).rates
    k = scenario.n_brackets
    return GtbSchedule(scenario, [list(flat[p * k:(p + 1) * k]) for p in range(periods)], "searched_by_period", device)
