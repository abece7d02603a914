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
from pydantic import ConfigDict, Field

from decisionlab.core import Answered, PolicyCache, act_one, device_of, envelope, policies_of, serve_request
from decisionlab.domains.ride_hailing import SPEC
from decisionlab.domains.ride_hailing.serve import (
    MAX_DRIVERS,
    MAX_ORDERS,
    SERVING,
    Assignment,
    DispatchWindow,
    FreeDriver,
    OpenOrder,
    Reposition,
)

RideEnvelope = envelope(SPEC, policy="fare_matching+reposition", scenario="city_small")


class DispatchRequest(RideEnvelope, DispatchWindow):  # type: ignore[misc, valid-type]
    """The envelope and one dispatch window: the request *is* the state the policy answers."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "scenario": "city_small", "policy": "fare_matching", "time_of_day_s": 30600.0,
        "drivers": [{"id": 7, "cell": 27, "idle_seconds": 40.0}, {"id": 9, "cell": 35}],
        "orders": [{"id": 1001, "origin_cell": 28, "dest_cell": 3, "wait_seconds": 2.0}]}]})

    drivers: list[FreeDriver] = Field(min_length=1, max_length=MAX_DRIVERS, description="free drivers")
    orders: list[OpenOrder] = Field(max_length=MAX_ORDERS, description="open orders")


class RepositionRequest(RideEnvelope):  # type: ignore[misc, valid-type]
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "scenario": "city_small", "policy": "nearest+reposition", "time_of_day_s": 30600.0,
        "drivers": [{"id": 7, "cell": 27, "idle_seconds": 400.0}]}]})

    time_of_day_s: float = Field(ge=0, lt=86_400, allow_inf_nan=False, strict=True,
                                 description="seconds since midnight")
    drivers: list[FreeDriver] = Field(min_length=1, max_length=MAX_DRIVERS, description="free drivers")


class DispatchResponse(Answered):
    assignments: list[Assignment] = Field(description="order → driver; orders not listed wait or expire")
    repositions: list[Reposition] = Field(description="what the policy does with the drivers left idle")


class RepositionResponse(Answered):
    repositions: list[Reposition] = Field(description="driver → target cell; drivers not listed stay")


async def _window(request: Any, window: DispatchWindow, policies: PolicyCache,
                  device: torch.device) -> tuple[dict[str, Any], dict[str, Any]]:
    return await serve_request(lambda: act_one(SPEC, request, window, policies, device),
                               SERVING.request_cost([window]))


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/dispatch", response_model=DispatchResponse)
    async def dispatch_route(request: DispatchRequest, policies: PolicyCache = Depends(policies_of),
                             device: torch.device = Depends(device_of)) -> DispatchResponse:
        """Assign one window's open orders to free drivers.

        Errors: 404 unknown policy or scenario; 422 invalid parameters or states (names the field)."""
        head, decision = await _window(request, request, policies, device)
        return DispatchResponse(**head, **decision)

    @router.post("/reposition", response_model=RepositionResponse)
    async def reposition_route(request: RepositionRequest, policies: PolicyCache = Depends(policies_of),
                               device: torch.device = Depends(device_of)) -> RepositionResponse:
        """Target cells for idle drivers (a policy that does not reposition leaves them all where they are).

        Errors: 404 unknown policy or scenario; 422 invalid parameters or states (names the field)."""
        window = DispatchWindow.model_construct(time_of_day_s=request.time_of_day_s, drivers=request.drivers,
                                                orders=[])
        head, decision = await _window(request, window, policies, device)
        return RepositionResponse(**head, repositions=decision["repositions"])

    return router
