"""The taxation tabs of the one-step economy: Lorenz curves, tax schedules, the equality–productivity
trade-off and the workers' labour response (the figures are built in ``figures.py``).

Every tab draws the scenario in the sidebar at once: best responses are exact, so there is nothing to
simulate and no Run to wait for. The baselines that serve the scenario are built from their specs (closed
forms); a learned planner in the kept comparison of this scenario (a registered pair, or its planner
member) is drawn beside them with the rates it sets (and the workers' exact best responses to them);
``optimal``, an exact search: its schedule, and that of the other objective, are searched
once per scenario (``st.cache_data`` keyed by the scenario's JSON), or taken from the kept comparison
when it built ``optimal`` for this scenario. Up to :data:`AUTO_OPTIMUM_MAX_AGENTS` workers the search
runs at once; beyond, on request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast, get_args

import polars as pl
import streamlit as st
import torch

from decisionlab.domains.taxation.figures import (
    Responses,
    bunching,
    bunching_figure,
    frontier_figure,
    labour_figures,
    lorenz_figure,
    responses,
    schedule_families,
    schedule_figures,
)
from decisionlab.domains.taxation.policies import OptimalBaseline
from decisionlab.domains.taxation.scenario import Objective, OneStepScenario
from decisionlab.domains.taxation.sim import PLANNER
from decisionlab.domains.taxation.train import TaxationMember, member_rates

if TYPE_CHECKING:
    from decisionlab.core import ViewContext

AUTO_OPTIMUM_MAX_AGENTS = 100
"""Most workers whose exact optima the tabs search without asking (both objectives take ~4 s at 100)."""
OBJECTIVE_TITLES: dict[str, str] = {"equality_times_productivity": "equality × productivity", "welfare": "welfare"}
CPU = torch.device("cpu")  # the tabs only read rates and tiny [P, N] tensors
Optimum = tuple[tuple[float, ...], tuple[bool, ...]]  # (rates [K], free [K]) of an exact best schedule


@st.cache_data(max_entries=32, show_spinner="Searching the exact best schedule…")
def exact_optimum(scenario_json: str, objective: str) -> Optimum:
    """``(rates [K], free [K])`` of the ``optimal`` baseline of the scenario with ``objective`` (free: the
    bracket's rate changes no worker's outcome); searched once per scenario JSON and objective."""
    from decisionlab.domains.taxation import SPEC

    scenario = OneStepScenario.model_validate_json(scenario_json).model_copy(update={"objective": objective})
    schedule = cast(OptimalBaseline, SPEC.policy("optimal").build(scenario, CPU)).schedule
    return schedule.rates, schedule.free


@dataclass(frozen=True)
class Schedules:
    """The tabs' inputs: the ``scenario``, each baseline's ``rates [K]`` in the setting's order, the exact
    ``optima`` per objective (empty when not searched) and ``note`` saying why ``optimal`` is missing."""

    scenario: OneStepScenario
    rates: dict[str, list[float]]
    optima: dict[str, Optimum]
    note: str | None = None


def _kept_optimum(ctx: ViewContext, scenario_json: str) -> Optimum | None:
    """The schedule of ``optimal`` in the kept comparison, when it was built for this very scenario."""
    result = ctx.result
    if result is None or result.scenario.model_dump_json() != scenario_json:
        return None
    schedule = next((getattr(p, "schedule", None) for label, p in result.policies if label == "optimal"), None)
    return None if schedule is None else (schedule.rates, schedule.free)


def _optima(ctx: ViewContext, scenario: OneStepScenario, tab: str) -> tuple[dict[str, Optimum], str | None]:
    """``({objective: (rates, free)}, note)``: both objectives' exact optima when searched (at once up to
    :data:`AUTO_OPTIMUM_MAX_AGENTS` workers, else once asked), the kept comparison's ``optimal`` otherwise."""
    problem = ctx.setting.policies["optimal"].problem(scenario)
    if problem is not None:
        return {}, f"No exact optimum: {problem}."
    key = scenario.model_dump_json()
    kept = _kept_optimum(ctx, key)
    asked = ctx.key("optimum_scenario")  # the scenario whose search the user asked for (any tab's button)
    if scenario.n_agents > AUTO_OPTIMUM_MAX_AGENTS and st.session_state.get(asked) != key:
        # a callback runs before the rerun it triggers: every tab, not only those after this one, sees the request
        st.button(f"Search the exact optima ({scenario.n_agents:,} workers: up to a minute)",
                  key=ctx.key(f"{tab}_search_optimum"), on_click=st.session_state.__setitem__, args=(asked, key))
        note = (f"Over {AUTO_OPTIMUM_MAX_AGENTS} workers the exact optima are searched on request (the button "
                "above), or come from a comparison run with `optimal`.")
        return ({scenario.objective: kept} if kept else {}), note
    optima = {objective: kept if kept is not None and objective == scenario.objective
              else exact_optimum(key, objective) for objective in get_args(Objective)}
    return optima, None


def learned_planners(ctx: ViewContext, scenario: OneStepScenario) -> dict[str, list[float]]:
    """``{label: rates [K]}`` of the learned planners in the kept comparison, when it ran this very scenario:
    a registered pair (its ``planner`` member) or a planner member registered alone. Workers-only members
    set no rates and are left out."""
    result = ctx.result
    if result is None or result.scenario.model_dump_json() != scenario.model_dump_json():
        return {}
    found = {}
    for label, policy in result.policies:
        members = getattr(policy, "policies", None)  # a pair acts as the merged policy of its members
        planner = members.get(PLANNER) if isinstance(members, dict) else policy
        if isinstance(planner, TaxationMember) and planner.group == PLANNER and label not in ctx.setting.policies:
            found[label] = member_rates(planner, scenario)
    return found


def schedules(ctx: ViewContext, tab: str) -> Schedules:
    """The baselines that serve the sidebar's scenario, the learned planners of the kept comparison and the
    exact optima (``tab`` keys its button)."""
    scenario = cast(OneStepScenario, ctx.scenario)
    names = ctx.setting.available_policies(scenario)
    rates = {name: ctx.domain.policy(name).build(scenario, CPU).rates.tolist() for name in names
             if name != "optimal"}
    optima, note = _optima(ctx, scenario, tab) if "optimal" in names else ({}, None)
    if scenario.objective in optima:
        rates["optimal"] = list(optima[scenario.objective][0])
    chosen = {name: rates[name] for name in names if name in rates}
    return Schedules(scenario, {**chosen, **learned_planners(ctx, scenario)}, optima, note)


def _found(ctx: ViewContext, tab: str) -> tuple[Schedules, Responses]:
    chosen = schedules(ctx, tab)
    if chosen.note:
        st.caption(chosen.note)
    return chosen, responses(chosen.scenario, chosen.rates)


def lorenz_tab(ctx: ViewContext) -> None:
    """The Lorenz curve of net incomes under each baseline."""
    _, found = _found(ctx, "lorenz")
    st.caption("Net income = income − tax + the equal rebate of all the tax collected. The further a curve sags "
               "below the equality line, the more unequal the net incomes.")
    st.plotly_chart(lorenz_figure(found), key=ctx.key("lorenz"))


def rate_table(chosen: Schedules) -> pl.DataFrame:
    """One row per baseline, one column per bracket (``from <cut-off>``): its marginal rate in %, with
    ``·`` after the rates of ``optimal`` that are free (any rate there leaves every outcome unchanged)."""
    free = chosen.optima.get(chosen.scenario.objective, ((), ()))[1]
    columns = [f"from {b:g}" for b in chosen.scenario.bracket_cutoffs]
    rows = [{"policy": name, **{column: f"{100 * r:.1f}%" + ("·" if name == "optimal" and free[k] else "")
                                for k, (column, r) in enumerate(zip(columns, rates, strict=True))}}
            for name, rates in chosen.rates.items()]
    return pl.DataFrame(rows, schema={"policy": pl.String, **dict.fromkeys(columns, pl.String)})


def _side_by_side(ctx: ViewContext, *figures: tuple[Any, str]) -> None:
    """Two figures in two columns, each with its widget key."""
    for column, (figure, key) in zip(st.columns(len(figures)), figures, strict=True):
        with column:
            st.plotly_chart(figure, key=ctx.key(key))


def schedules_tab(ctx: ViewContext) -> None:
    """Marginal and effective rates by income under each baseline, and their rates per bracket."""
    chosen, found = _found(ctx, "schedules")
    marginal, effective = schedule_figures(found)
    _side_by_side(ctx, (marginal, "marginal_rates"), (effective, "effective_rates"))
    st.caption("Marginal rate of each bracket (· after a rate of `optimal`: a free bracket, where any rate on the "
               "grid leaves every worker's income and net income unchanged).")
    st.dataframe(rate_table(chosen), hide_index=True, key=ctx.key("rate_table"))


def frontier_tab(ctx: ViewContext) -> None:
    """Equality vs productivity of the baselines, two one-knob families of schedules and the exact optima."""
    chosen, found = _found(ctx, "frontier")
    optima = responses(chosen.scenario, {f"exact optimum of {OBJECTIVE_TITLES[objective]}": rates
                                         for objective, (rates, _) in chosen.optima.items()})
    st.caption("Grey curves: the trade-off traced by one knob, a flat tax from 0 to 100% and the Saez rates scaled "
               "by 0 to 2; they are families of schedules, not the exact Pareto frontier. Stars: the exact best "
               "schedules on the rate grid of each objective, with the level curve of equality × productivity "
               "through the best one. Dots: the baselines.")
    st.plotly_chart(frontier_figure(found, schedule_families(chosen.scenario), optima), key=ctx.key("frontier"))
    table = pl.DataFrame({"policy": found.labels, **{name: found.metrics[name] for name in (
        "equality_times_productivity", "productivity", "equality", "welfare", "revenue")}})
    st.dataframe(table.with_columns(pl.col(pl.Float64).round(3)), hide_index=True, key=ctx.key("frontier_table"))


def labour_tab(ctx: ViewContext) -> None:
    """Each worker's income and labour by skill under each baseline, and the bunching at the cut-offs."""
    _, found = _found(ctx, "labour")
    income, labour = labour_figures(found)
    _side_by_side(ctx, (income, "labour_income"), (labour, "labour_hours"))
    at_cutoffs = bunching(found.income, found.cutoffs).sum(1)
    st.caption("Workers whose best response is a cut-off exactly (a kink: the marginal rate jumps there): "
               + ", ".join(f"{label} {int(n)}" for label, n in zip(found.labels, at_cutoffs, strict=True)) + ".")
    st.plotly_chart(bunching_figure(found), key=ctx.key("bunching"))
