"""Serving the Gather-Trade-Build planner: an economy's state at a tax period's start → the period's rates.

A request state is what the planner sees: each worker's coin and goods (escrow included), its income so
far this period, the rates in force and the step. The answer is the rates the policy's planner sets
(a fixed schedule's are its own). Client mistakes are 422s naming the field: a list whose length is not
the scenario's ``n_agents``, negative coin or goods, a rate outside [0, 1] or not one per bracket, a step
past the episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core import Policy, ServingSpec, StateError, make_generator, problem
from decisionlab.domains.taxation.gtb import PLANNER, GatherTradeBuildSim
from decisionlab.domains.taxation.gtb_observe import planner_view
from decisionlab.domains.taxation.scenario import US_FEDERAL_RATES

Rate = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Coin = Annotated[float, Field(ge=0.0, le=1e9, allow_inf_nan=False)]
Income = Annotated[float, Field(ge=-1e9, le=1e9, allow_inf_nan=False)]
Units = Annotated[int, Field(ge=0, le=1_000_000)]
MAX_STATES = 16
MAX_WORKERS = 400


class EconomySnapshot(BaseModel):
    """What the planner sees at a tax period's start (lists in worker order, one entry per worker)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"coin": [12.0, 40.0, 3.5, 0.0], "wood": [1, 0, 2, 0], "stone": [0, 1, 0, 0],
         "period_income": [0.0, 0.0, 0.0, 0.0], "rates": list(US_FEDERAL_RATES), "step": 100}]})

    coin: list[Coin] = Field(min_length=1, max_length=MAX_WORKERS, description="each worker's coin, escrow included")
    wood: list[Units] = Field(min_length=1, max_length=MAX_WORKERS, description="each worker's wood, escrow included")
    stone: list[Units] = Field(min_length=1, max_length=MAX_WORKERS, description="each worker's stone, escrow "
                               "included")
    period_income: list[Income] = Field(min_length=1, max_length=MAX_WORKERS, description="each worker's coin "
                                        "earned so far this tax period (0 at its start)")
    rates: list[Rate] = Field(min_length=1, max_length=12, description="the marginal rates in force, one per bracket")
    step: int = Field(0, ge=0, le=100_000, description="steps taken in the episode")


class RatesAnswer(BaseModel):
    rates: list[float] = Field(description="the marginal rate of each bracket for the period")


def check(sim: GatherTradeBuildSim, states: Sequence[EconomySnapshot]) -> None:
    s = sim.scenario
    problems = []
    for i, state in enumerate(states):
        for name in ("coin", "wood", "stone", "period_income"):
            if len(getattr(state, name)) != s.n_agents:
                problems.append(problem((i, name), "length", f"one entry per worker: the scenario has {s.n_agents}"))
        if len(state.rates) != s.n_brackets:
            problems.append(problem((i, "rates"), "length", f"one rate per bracket: the scenario has {s.n_brackets}"))
        if state.step >= s.episode_steps:
            problems.append(problem((i, "step"), "range", f"the episode has {s.episode_steps} steps (0 to "
                                    f"{s.episode_steps - 1})", state.step))
    if problems:
        raise StateError(problems)


def observe(sim: GatherTradeBuildSim, states: Sequence[EconomySnapshot], policy: Policy
            ) -> dict[str, dict[str, torch.Tensor]]:
    """The planner's features from the states; the workers' part from a fresh map (the answer is the
    planner's)."""
    dev = sim.device
    obs = sim.observe(sim.reset(len(states), make_generator(0, dev)))

    def column(name: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return torch.tensor([getattr(state, name) for state in states], dtype=dtype, device=dev)

    goods = torch.stack([column("wood"), column("stone")], -1)
    step = torch.tensor([state.step for state in states], dtype=torch.long, device=dev)
    features = planner_view(sim.scenario, column("coin"), goods, column("period_income"), column("rates"), step)
    return {**obs, PLANNER: {"features": features}}


def respond(sim: GatherTradeBuildSim, actions: Any, states: Sequence[EconomySnapshot]) -> list[dict[str, Any]]:
    if not isinstance(actions, dict) or PLANNER not in actions:
        raise StateError([problem((i, "rates"), "policy", "this policy sets no rates (a workers-only member)")
                          for i in range(len(states))])
    rates = actions[PLANNER].reshape(len(states), -1).clamp(0.0, 1.0).cpu().tolist()
    return [{"rates": [round(r, 10) for r in row]} for row in rates]


def example(sim: GatherTradeBuildSim) -> dict[str, Any]:
    s = sim.scenario
    k = s.n_brackets
    return {"coin": [10.0 * (i + 1) for i in range(s.n_agents)], "wood": [1] * s.n_agents, "stone": [0] * s.n_agents,
            "period_income": [0.0] * s.n_agents,
            "rates": list(US_FEDERAL_RATES) if k == len(US_FEDERAL_RATES) else [0.2] * k,
            "step": min(s.tax_period_steps, s.episode_steps - 1)}


SERVING = ServingSpec(state_model=EconomySnapshot, action_model=RatesAnswer,
                      prepare=lambda sc, d: GatherTradeBuildSim(sc, d), check=check, observe=observe,
                      respond=respond, example=example, max_batch=MAX_STATES,
                      describe=lambda sim: {"workers": sim.scenario.n_agents,
                                            "bracket_cutoffs": list(sim.scenario.bracket_cutoffs),
                                            "tax_period_steps": sim.scenario.tax_period_steps,
                                            "episode_steps": sim.scenario.episode_steps})
