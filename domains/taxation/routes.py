"""The taxation domain's named HTTP routes, mounted under ``/v1/taxation`` next to the core's ``/act``,
``/schema`` and ``/policies``.

- ``POST /schedule``: a population (the scenario's parameters) and an objective → the bracket rates of a
  policy (default ``saez``; ``optimal``: the exact best schedule on the rate grid), with their metrics under the
  workers' exact best responses and, for ``optimal``, which brackets' rates are free (any value on the
  grid gives the same outcome).
- ``POST /evaluate``: a schedule → its metrics, every worker's response and the effective tax rate per
  income decile.

Client mistakes are 422s naming the field: a rate below 0 or above 1 (``rates[2]``), not one rate per
bracket (``rates``), cut-offs not starting at 0 or not increasing (``parameters``: ``bracket_cutoffs``),
no workers (``parameters``: ``n_agents``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core import (
    Answered,
    PolicyCache,
    StateError,
    act_one,
    device_of,
    envelope,
    policies_of,
    problem,
    request_scenario,
    serve_request,
)
from decisionlab.domains.taxation import SPEC
from decisionlab.domains.taxation.economy import Economy
from decisionlab.domains.taxation.scenario import Objective, OneStepScenario
from decisionlab.domains.taxation.serve import Rate, TaxState

# The default policy is the closed form, which answers at once; `optimal` searches once per scenario (up to
# seconds, then cached) and answers 503 with Retry-After while it does.
TaxEnvelope = envelope(SPEC, policy="saez", scenario="one_step")


class ScheduleRequest(TaxEnvelope):  # type: ignore[misc, valid-type]
    """The population (scenario and parameters), the objective and the policy that sets the rates."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "scenario": "one_step", "parameters": {"n_agents": 100, "skill_pareto_alpha": 2.5}, "policy": "saez",
        "objective": "welfare"}]})

    objective: Objective | None = Field(None, description="the social objective (default: the scenario's)")


class ScheduleResponse(Answered):
    rates: list[float] = Field(description="the marginal rate of each bracket")
    free: list[bool] | None = Field(description="brackets whose rate could be any value on the grid without "
                                    "changing any worker's outcome (the exact search only; null otherwise)")
    metrics: dict[str, float] = Field(description="the schedule's metrics under the workers' exact best responses")
    decision_ms: float = Field(description="server time to answer (milliseconds)")


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "scenario": "one_step", "parameters": {"n_agents": 10}, "rates": [0.1, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37]}]})

    scenario: str = Field("one_step", min_length=1, max_length=100, description="scenario preset")
    parameters: dict[str, Any] = Field(default_factory=dict, description="scenario parameter overrides")
    rates: list[Rate] = Field(min_length=1, max_length=12, description="marginal rate of each bracket, 0 to 1")


class WorkerResponse(BaseModel):
    skill: float
    income: float = Field(description="the income it chooses (its exact best response)")
    tax: float
    net_income: float = Field(description="income − tax + rebate")
    utility: float
    bracket: int = Field(description="the bracket its income falls in (0-based; a cut-off counts to the lower)")


class DecileRate(BaseModel):
    decile: int = Field(description="1 (lowest incomes) to 10")
    workers: int
    mean_income: float
    effective_rate: float = Field(description="tax / income of the decile's workers together (0 where no income)")


class EvaluateResponse(BaseModel):
    scenario: dict[str, Any]
    scenario_hash: str
    rates: list[float]
    metrics: dict[str, float]
    rebate: float = Field(description="what every worker gets back")
    workers: list[WorkerResponse] = Field(description="in ascending skill")
    deciles: list[DecileRate]


def scenario_of(name: str, parameters: dict[str, Any]) -> OneStepScenario:
    scenario = request_scenario(SPEC, name, parameters)
    if not isinstance(scenario, OneStepScenario):
        raise StateError([problem(("scenario",), "setting", "a one-step economy is needed", name)])
    return scenario


def evaluate_schedule(scenario: OneStepScenario, rates: list[float]) -> dict[str, Any]:
    """The body of ``POST /evaluate``."""
    if len(rates) != scenario.n_brackets:
        raise StateError([problem(("rates",), "length", f"one rate per bracket: the scenario has "
                                  f"{scenario.n_brackets} brackets", len(rates))])
    economy = Economy(scenario)
    table = torch.tensor([rates], dtype=torch.float64)
    result = economy.outcome(table)
    metrics = {name: float(value[0]) for name, value in economy.metrics(table, result.income).items()}
    income = result.income[0]
    bracket = (torch.searchsorted(economy.cutoffs, income, right=False) - 1).clamp_min(0)
    workers = [{"skill": w, "income": z, "tax": t, "net_income": x, "utility": u, "bracket": k}
               for w, z, t, x, u, k in zip(economy.skills.tolist(), income.tolist(), result.tax[0].tolist(),
                                           result.net_income[0].tolist(), result.utility[0].tolist(),
                                           bracket.tolist(), strict=True)]
    order = income.argsort(stable=True)
    deciles = []
    n = scenario.n_agents
    for d in range(10):
        members = order[math.floor(d * n / 10):math.floor((d + 1) * n / 10)]
        earned, paid = float(income[members].sum()), float(result.tax[0][members].sum())
        deciles.append({"decile": d + 1, "workers": len(members),
                        "mean_income": earned / len(members) if len(members) else 0.0,
                        "effective_rate": paid / earned if earned > 0 else 0.0})
    return {"scenario": scenario.describe(), "scenario_hash": scenario.fingerprint(), "rates": list(rates),
            "metrics": metrics, "rebate": float(result.rebate[0]), "workers": workers, "deciles": deciles}


def work_units(parameters: dict[str, Any]) -> float:
    """A request's cost: one unit per 256 workers (at least one)."""
    n = parameters.get("n_agents", 10)
    return 1.0 + (n / 256.0 if isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 10_000 else 0.0)


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/schedule", response_model=ScheduleResponse)
    async def schedule_route(request: ScheduleRequest, policies: PolicyCache = Depends(policies_of),
                             device: torch.device = Depends(device_of)) -> ScheduleResponse:
        """The rates a policy sets for a population and objective, with their metrics.

        Errors: 404 unknown policy or scenario; 422 invalid parameters (names the field); 503 while an
        expensive baseline (``optimal`` on a large population) is being built."""
        parameters = dict(request.parameters)
        if request.objective is not None:
            parameters["objective"] = request.objective
        asked = request.model_copy(update={"parameters": parameters})

        def work() -> tuple[dict[str, Any], dict[str, Any], float, list[bool] | None, dict[str, float]]:
            start = time.perf_counter()
            scenario = scenario_of(asked.scenario, parameters)  # first: a dynamic economy is refused by name
            head, decision = act_one(SPEC, asked, TaxState(rates=None), policies, device)
            answerer = policies.answerer(SPEC, asked.policy, scenario, device)
            schedule = getattr(answerer.policy, "schedule", None)
            free = list(schedule.free) if schedule is not None else None
            metrics = evaluate_schedule(scenario, decision["rates"])["metrics"]
            return head, decision, (time.perf_counter() - start) * 1000.0, free, metrics

        head, decision, elapsed_ms, free, metrics = await serve_request(work, work_units(parameters))
        return ScheduleResponse(**head, rates=decision["rates"], free=free, metrics=metrics, decision_ms=elapsed_ms)

    @router.post("/evaluate", response_model=EvaluateResponse)
    async def evaluate_route(request: EvaluateRequest) -> EvaluateResponse:
        """A schedule's metrics, the workers' exact responses and the effective rate per income decile.

        Errors: 404 unknown scenario; 422 invalid parameters or rates (names the field)."""

        def work() -> dict[str, Any]:
            return evaluate_schedule(scenario_of(request.scenario, request.parameters), list(request.rates))

        return EvaluateResponse(**await serve_request(work, work_units(request.parameters)))

    return router
