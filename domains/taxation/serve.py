"""Serving the one-step economy: a state is the schedule the workers face (or none: the planner sets it).

A request state ``{"rates": [...]}`` asks the workers' part of the policy how they respond to those rates;
``{"rates": null}`` (or no field) asks its planner for the rates first, then the workers. The answer
gives the rates and every worker's income, in ascending skill. The population is the scenario's
(``n_agents``, ``skill_pareto_alpha``, ``skill_min``, ``labour_cost``, ``labour_exponent``). Client
mistakes are 422s naming the field: a rate below 0 or above 1, not one rate per bracket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core import Policy, ServingSpec, StateError, decide, problem
from decisionlab.domains.taxation.scenario import US_FEDERAL_RATES
from decisionlab.domains.taxation.sim import MAX_SHARE, PLANNER, WORKERS, EconomyState, OneStepSim

Rate = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
MAX_STATES = 16


class TaxState(BaseModel):
    """The schedule the workers face this period (null: the policy's planner sets it)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"rates": list(US_FEDERAL_RATES)}, {"rates": None}]})

    rates: list[Rate] | None = Field(None, min_length=1, max_length=12,
                                     description="marginal rate of each bracket, 0 to 1 (null: the planner sets them)")


class TaxAnswer(BaseModel):
    rates: list[float] = Field(description="the marginal rate of each bracket")
    incomes: list[float] = Field(description="each worker's income under the rates, in ascending skill")


def check(sim: OneStepSim, states: Sequence[TaxState]) -> None:
    k = sim.scenario.n_brackets
    problems = [problem((i, "rates"), "length", f"one rate per bracket: the scenario has {k} brackets")
                for i, state in enumerate(states) if state.rates is not None and len(state.rates) != k]
    if problems:
        raise StateError(problems)


def decide_both(sim: OneStepSim, states: Sequence[TaxState], policy: Policy) -> dict[str, torch.Tensor]:
    """``{"rates": [B, K], "incomes": [B, N]}``: the planner decides where a state gives no rates, then
    every worker responds to the rates in force."""
    b = len(states)
    start = sim.reset(b)
    first = decide(policy, sim.observe(start), b)
    given = torch.tensor([s.rates if s.rates is not None else [0.0] * sim.scenario.n_brackets for s in states],
                         dtype=torch.float64, device=sim.device)
    has = torch.tensor([s.rates is not None for s in states], device=sim.device)
    if PLANNER in first:
        planned = first[PLANNER].reshape(b, -1).to(given).clamp(0.0, 1.0)
        rates = torch.where(has[:, None], given, planned)
    elif bool(has.all()):
        rates = given
    else:  # a workers-only member: it answers rates, it does not set them
        raise StateError([problem((i, "rates"), "missing", "this policy has no planner: give the rates the workers "
                                  "face") for i, state in enumerate(states) if state.rates is None])
    facing = EconomyState(rates, torch.ones_like(start.phase), start.period, start.skills)
    answer = decide(policy, sim.observe(facing), b)
    if WORKERS in answer:
        shares = answer[WORKERS].reshape(b, -1).to(rates).clamp(0.0, MAX_SHARE)
        incomes = shares * sim.economy.untaxed_of(facing.skills)
    else:  # a planner-only member: the workers answer its rates exactly
        incomes = sim.economy.respond(rates)
    return {"rates": rates, "incomes": incomes}


def respond(sim: OneStepSim, actions: dict[str, torch.Tensor], states: Sequence[TaxState]) -> list[dict[str, Any]]:
    rates, incomes = actions["rates"].cpu().tolist(), actions["incomes"].cpu().tolist()
    return [{"rates": [round(r, 10) for r in row], "incomes": inc} for row, inc in zip(rates, incomes, strict=True)]


def example(sim: OneStepSim) -> dict[str, Any]:
    k = sim.scenario.n_brackets
    rates = list(US_FEDERAL_RATES) if k == len(US_FEDERAL_RATES) else [0.2] * k
    return {"rates": rates}


SERVING = ServingSpec(state_model=TaxState, action_model=TaxAnswer, prepare=lambda sc, d: OneStepSim(sc, d),
                      check=check, observe=lambda sim, states, policy: sim.observe(sim.reset(len(states))),
                      decide=decide_both, respond=respond, example=example, max_batch=MAX_STATES,
                      describe=lambda sim: {"workers": sim.scenario.n_agents,
                                            "bracket_cutoffs": list(sim.scenario.bracket_cutoffs),
                                            "skills": sim.economy.skills.cpu().tolist()})
