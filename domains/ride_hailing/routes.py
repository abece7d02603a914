"""The ride-hailing domain's named HTTP routes, mounted under ``/v1/ride-hailing`` next to the core's
``/act``, ``/schema`` and ``/policies``; both are thin wrappers over the core serving path.

- ``POST /dispatch``: one window's free drivers and open orders → order-to-driver assignments
  (and the repositioning the policy would do with the drivers left over);
- ``POST /reposition``: idle drivers → target cells.

A baseline (``nearest``, ``fare_matching``, ``nearest+reposition``...) or a registered value policy
(``ride_hailing/name@version``) answers. Client errors are 4xx naming the field
(``drivers[3].cell``: off the grid, duplicate ids, too much work per request).
"""

from __future__ import annotations

from typing import Any

import torch
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core.errors import StateError
from decisionlab.core.policy_cache import PolicyCache
from decisionlab.core.serving import Answered, act, answered, device_of, policies_of, serve_request
from decisionlab.domains.ride_hailing import SPEC
from decisionlab.domains.ride_hailing.serve import (
    MAX_DRIVERS,
    MAX_ORDERS,
    Assignment,
    FreeDriver,
    OpenOrder,
    Reposition,
)


class WindowRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    scenario: str = Field("city_small", min_length=1, max_length=100, description="scenario preset name")
    parameters: dict[str, Any] = Field(default_factory=dict, description="scenario parameter overrides")
    policy: str = Field("fare_matching+reposition", min_length=1, max_length=200,
                        description="a baseline (GET /v1/ride-hailing/policies) or ride_hailing/name@version")
    time_of_day_s: float = Field(ge=0, lt=86_400, allow_inf_nan=False, strict=True,
                                 description="seconds since midnight")
    drivers: list[FreeDriver] = Field(min_length=1, max_length=MAX_DRIVERS, description="free drivers")


class DispatchRequest(WindowRequest):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "scenario": "city_small", "policy": "fare_matching", "time_of_day_s": 30600.0,
        "drivers": [{"id": 7, "cell": 27, "idle_seconds": 40.0}, {"id": 9, "cell": 35}],
        "orders": [{"id": 1001, "origin_cell": 28, "dest_cell": 3, "wait_seconds": 2.0}]}]})

    orders: list[OpenOrder] = Field(max_length=MAX_ORDERS, description="open orders")


class RepositionRequest(WindowRequest):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "scenario": "city_small", "policy": "nearest+reposition", "time_of_day_s": 30600.0,
        "drivers": [{"id": 7, "cell": 27, "idle_seconds": 400.0}]}]})


class DispatchResponse(Answered):
    assignments: list[Assignment] = Field(description="order → driver; orders not listed wait or expire")
    repositions: list[Reposition] = Field(description="what the policy does with the drivers left idle")


class RepositionResponse(Answered):
    repositions: list[Reposition] = Field(description="driver → target cell; drivers not listed stay")


async def _window(request: WindowRequest, orders: list[dict[str, Any]], policies: PolicyCache,
                  device: torch.device) -> dict[str, Any]:
    state = {"time_of_day_s": request.time_of_day_s, "drivers": [d.model_dump() for d in request.drivers],
             "orders": orders}

    def run() -> dict[str, Any]:
        try:
            return act(SPEC, request.scenario, request.parameters, request.policy, [state], policies, device)
        except StateError as err:  # locations are states[0].<field>; here the fields are top-level
            raise StateError([type(p)(p.loc[2:] if p.loc[:2] == ("states", 0) else p.loc, p.kind, p.message, p.value)
                              for p in err.problems]) from None

    return await serve_request(run, len(state["drivers"]) + len(orders))


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/dispatch", response_model=DispatchResponse)
    async def dispatch_route(request: DispatchRequest, policies: PolicyCache = Depends(policies_of),
                             device: torch.device = Depends(device_of)) -> DispatchResponse:
        """Assign one window's open orders to free drivers.

        Errors: 404 unknown policy or scenario; 422 invalid parameters or states (names the field)."""
        body = await _window(request, [o.model_dump() for o in request.orders], policies, device)
        decision = body["actions"][0]
        return DispatchResponse(**answered(body), assignments=decision["assignments"],
                                repositions=decision["repositions"])

    @router.post("/reposition", response_model=RepositionResponse)
    async def reposition_route(request: RepositionRequest, policies: PolicyCache = Depends(policies_of),
                               device: torch.device = Depends(device_of)) -> RepositionResponse:
        """Target cells for idle drivers (a policy that does not reposition leaves them all where they are).

        Errors: 404 unknown policy or scenario; 422 invalid parameters or states (names the field)."""
        body = await _window(request, [], policies, device)
        return RepositionResponse(**answered(body), repositions=body["actions"][0]["repositions"])

    return router
