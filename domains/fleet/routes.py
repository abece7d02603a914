"""The fleet domain's named HTTP route, mounted under ``/v1/fleet`` next to the core's ``/act``, ``/schema``
and ``/policies``: a thin wrapper over the core serving path.

- ``POST /assign``: the vertiports' and aircraft's state now (and optionally the demand forecast) → a
  destination (or a stay) for every free aircraft, decided one after another, with the decision time.

``greedy``, ``random`` or a registered ``fleet_graph`` policy (``fleet/name@version``) answers; the
clairvoyant references (``ga``, ``exact``) see the future and are never served. Client errors are 422s
naming the field (``aircraft[3].vertiport``: unknown vertiport; ``aircraft[0].battery_kwh``: negative or
over capacity; ``aircraft``: more aircraft on a vertiport's pads than it has).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from fastapi import APIRouter, Depends
from pydantic import ConfigDict, Field

from decisionlab.core import Answered, PolicyCache, act_one, device_of, envelope, policies_of, serve_request
from decisionlab.domains.fleet import SPEC
from decisionlab.domains.fleet.serve import SERVING, Assignment, FleetSnapshot

FleetEnvelope = envelope(SPEC, policy="greedy", scenario="uam_8x40")


class AssignRequest(FleetEnvelope, FleetSnapshot):  # type: ignore[misc, valid-type]
    """The envelope and one snapshot of the fleet: the request *is* the state the policy answers."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "scenario": "uam_small", "policy": "greedy", "time_h": 7.0,
        "aircraft": [{"id": 11, "vertiport": 0, "battery_kwh": 110.0}, {"id": 12, "vertiport": 1, "battery_kwh": 95.0},
                     {"id": 13, "vertiport": 2, "battery_kwh": 60.0, "free_in_h": 0.2},
                     {"id": 14, "vertiport": 0, "battery_kwh": 110.0, "charging": True, "free_in_h": 0.1}],
        "waiting": [{"origin": 0, "destination": 2, "passengers": 4.0}, {"origin": 1, "destination": 0,
                                                                         "passengers": 2.0}],
        "closed_routes": [[1, 2]]}]})


class AssignResponse(Answered):
    assignments: list[Assignment] = Field(description="one per free aircraft, in the order they decided")
    decision_ms: float = Field(description="server time to decide them all (milliseconds)")


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/assign", response_model=AssignResponse)
    async def assign_route(request: AssignRequest, policies: PolicyCache = Depends(policies_of),
                           device: torch.device = Depends(device_of)) -> AssignResponse:
        """A destination (or a stay) for every free aircraft of the snapshot.

        Errors: 404 unknown policy or scenario; 422 invalid parameters or states (names the field), or a
        clairvoyant reference (``ga``, ``exact``) asked to serve."""

        def work() -> tuple[dict[str, Any], dict[str, Any], float]:
            start = time.perf_counter()
            head, decision = act_one(SPEC, request, request, policies, device)
            return head, decision, (time.perf_counter() - start) * 1000.0

        head, decision, elapsed_ms = await serve_request(work, SERVING.request_cost([request]))
        return AssignResponse(**head, **decision, decision_ms=elapsed_ms)

    return router
