"""The execution domain's named HTTP routes, mounted under ``/v1/execution`` next to the core's
``/act``, ``/schema`` and ``/policies``.

- ``POST /schedule``: an order, a horizon and model parameters → the child-order schedule of a static
  policy (``static_expected``, ``static_best``, ``ac_optimal``, ``twap``, ``vwap``) with its expected
  shortfall E and variance V (closed forms: no simulation).
- ``POST /next-trade``: live states of orders in flight → the next child order of each, from a baseline or
  a registered network: the core serving path (``/act``) with the order shortcuts ``shares``, ``side`` and
  ``horizon_steps`` and the response fields ``trades`` and ``remaining_after``.

Every client error is a 4xx naming the field (``states[2].remaining_shares``, ``parameters: ...``).
"""

from __future__ import annotations

from typing import Any, Literal, cast

import torch
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core import (
    Answered,
    PolicyCache,
    StateError,
    WholeNumber,
    act,
    answered,
    device_of,
    envelope,
    policies_of,
    problem,
    request_scenario,
    serve_request,
)
from decisionlab.domains.execution import SPEC, oracles
from decisionlab.domains.execution.policies import SchedulePolicy
from decisionlab.domains.execution.scenario import ExecutionScenario
from decisionlab.domains.execution.serve import LiveState

MAX_BATCH = 10_000
STATIC_POLICIES = ("static_expected", "static_best", "ac_optimal", "twap", "vwap")


class OrderFields(envelope(SPEC, policy="static_expected", scenario="almgren_chriss")):  # type: ignore[misc]
    """The envelope of both requests; ``shares``/``side``/``horizon_steps`` are shortcuts for the parameters
    of the same names."""

    model_config = ConfigDict(extra="forbid", strict=True)

    shares: float | None = Field(None, ge=1, le=1e12, allow_inf_nan=False, strict=True,
                                 description="parent order size X")
    side: Literal["sell", "buy"] | None = Field(None, description="'sell' or 'buy'")
    horizon_steps: WholeNumber | None = Field(None, ge=1, le=1000, description="number of child orders N")

    def overrides(self) -> dict[str, Any]:
        """``parameters`` with the order shortcuts applied; a shortcut given twice is a 422 naming it."""
        overrides = dict(self.parameters)
        for name in ("shares", "side", "horizon_steps"):
            value = getattr(self, name)
            if value is None:
                continue
            if name in overrides and overrides[name] != value:
                raise StateError([problem((name,), "conflict",
                                          f"given as {value!r} and as parameters.{name}={overrides[name]!r}: give it "
                                          "once", value)])
            overrides[name] = value
        return overrides


class ScheduleRequest(OrderFields):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"scenario": "almgren_chriss", "shares": 1e6, "horizon_steps": 5,
                                         "parameters": {"risk_aversion": 1e-6}, "policy": "ac_optimal"}]},
    )

    policy: Literal["static_expected", "static_best", "ac_optimal", "twap", "vwap"] = Field(
        "static_expected", description="static policy whose schedule to return"
    )


class ScheduleResponse(BaseModel):
    policy: str
    scenario: dict[str, Any] = Field(description="all resolved scenario parameters")
    holdings: list[float] = Field(description="shares left after each step, x_0 = X … x_N = 0 (N + 1 values)")
    trades: list[float] = Field(description="child order of each step (N values, shares)")
    expected_shortfall: float = Field(description="E, expected implementation shortfall (currency)")
    variance: float = Field(description="V, variance of the shortfall (currency²; impact variance included)")
    std_shortfall: float = Field(description="√V (currency)")
    mean_variance_objective: float = Field(description="E + λ·V")
    expected_shortfall_bps: float = Field(description="E in basis points of the arrival value X·S0")


class NextTradeRequest(OrderFields):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{
            "policy": "static_expected", "scenario": "latent_liquidity",
            "states": [{"steps_done": 2, "remaining_shares": 6.5e5, "price": 49.8, "previous_price": 49.9,
                        "last_fill": {"shares": 1.8e5, "price": 49.2, "mid_before": 49.9}}],
        }]},
    )

    states: list[LiveState] = Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH:,} live states")


class NextTradeResponse(Answered):
    """The next child order of each live state, in order, and what decided it."""

    trades: list[float] = Field(description="next child order per state (shares, in the order's direction)")
    remaining_after: list[float] = Field(description="shares left after that child order")


def schedule(policy: str, scenario: ExecutionScenario) -> ScheduleResponse:
    """The static schedule of ``policy`` with its E and V under ``scenario``."""
    built = cast(SchedulePolicy, SPEC.policy(policy).build(scenario, torch.device("cpu")))
    moments = oracles.moments(scenario, built.holdings)
    return ScheduleResponse(
        policy=policy,
        scenario=scenario.describe(),
        holdings=built.holdings.tolist(),
        trades=built.trades.tolist(),
        expected_shortfall=moments.expected,
        variance=moments.variance,
        std_shortfall=moments.std,
        mean_variance_objective=moments.objective(scenario.risk_aversion),
        expected_shortfall_bps=moments.expected / scenario.notional * 1e4,
    )


def build_router() -> APIRouter:
    """The execution routes (mounted under ``/v1/execution`` by the server)."""
    router = APIRouter()

    @router.post("/schedule", response_model=ScheduleResponse)
    def schedule_route(request: ScheduleRequest) -> ScheduleResponse:
        """Child-order schedule of a static policy with its expected shortfall E and variance V.

        Errors: 404 unknown scenario; 422 invalid parameters or order fields (names the field).
        """
        scenario = cast(ExecutionScenario, request_scenario(SPEC, request.scenario, request.overrides()))
        return schedule(request.policy, scenario)

    @router.post("/next-trade", response_model=NextTradeResponse)
    async def next_trade_route(
        request: NextTradeRequest,
        policies: PolicyCache = Depends(policies_of),
        device: torch.device = Depends(device_of),
    ) -> NextTradeResponse:
        """The next child order for each live state, from a baseline or a registered network.

        Errors: 404 unknown policy or scenario; 422 invalid parameters or states (names the field), or a
        policy that cannot serve the scenario (a registered network trained for another horizon).
        """
        body = await serve_request(
            lambda: act(SPEC, request.scenario, request.overrides(), request.policy, request.states, policies,
                        device, allow_extrapolation=request.allow_extrapolation), float(len(request.states)))
        return NextTradeResponse(
            **answered(body),
            trades=[a["trade"] for a in body["actions"]],
            remaining_after=[a["remaining_after"] for a in body["actions"]],
        )

    return router
