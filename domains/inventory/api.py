"""HTTP routes of the inventory domain, mounted by the API server under ``/v1/inventory``.

``POST /orders`` turns a batch of store states into order quantities with a baseline policy
(``optimal``, ``base_stock``, ...) or a registered network (``inventory/hdpo@2``, ``hdpo``).
``GET /policies`` lists both kinds. The router reads the policy registry and the device from
``request.app.state`` (set by :func:`decisionlab.apps.api.create_app`) and falls back to
``$DECISIONLAB_HOME`` and :func:`~decisionlab.core.device.get_device` when mounted elsewhere.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core.errors import ScenarioError
from decisionlab.core.policy import Policy
from decisionlab.core.scenario import Scenario
from decisionlab.core.serving import device_of, policy_listing, registry_of, request_scenario, serving_policy
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory import SPEC
from decisionlab.domains.inventory.scenario import LostSalesScenario

MAX_BATCH = 10_000
MAX_PIPELINE = 64  # longer than any valid lead time; the exact length is checked against the scenario
MAX_QUANTITY = 1e9

Quantity = Annotated[float, Field(ge=0, le=MAX_QUANTITY, allow_inf_nan=False)]


class InventoryState(BaseModel):
    """One store at the moment of ordering."""

    model_config = ConfigDict(extra="forbid")

    on_hand: Quantity = Field(description="stock on hand (units), >= 0")
    pipeline: list[Quantity] = Field(
        default_factory=list,
        max_length=MAX_PIPELINE,
        description="orders in transit, oldest (arriving next) first; exactly lead_time values",
    )


class OrdersRequest(BaseModel):
    """A batch of states to decide orders for, under one policy and one scenario."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "policy": "optimal",
                    "scenario": "lost_sales",
                    "parameters": {"lead_time": 2, "underage_cost": 9},
                    "states": [{"on_hand": 0, "pipeline": [0, 0]}, {"on_hand": 4, "pipeline": [5, 5]}],
                }
            ]
        },
    )

    policy: str = Field(
        "optimal",
        min_length=1,
        max_length=200,
        description="a baseline (see GET /v1/inventory/policies) or a registry reference: inventory/name@version, "
        "name@version or name (latest version)",
    )
    scenario: str = Field("lost_sales", min_length=1, max_length=100, description="scenario preset name")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="scenario parameter overrides, e.g. {\"lead_time\": 2}"
    )
    states: list[InventoryState] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH:,} store states"
    )


class OrdersResponse(BaseModel):
    """One order per requested state, in the same order."""

    policy: str = Field(description="the policy that decided: a baseline name or a full registry reference")
    scenario: dict[str, Any] = Field(description="all resolved scenario parameters")
    orders: list[float] = Field(description="order quantity per state (units), >= 0")


# --- dependencies -----------------------------------------------------------------------------


# --- the work ---------------------------------------------------------------------------------


def resolve_scenario(request: OrdersRequest) -> Scenario:
    """The preset with the request's overrides; errors name ``parameters.<field>``. Only
    single-store scenarios are served here so far (their state is on hand + pipeline)."""
    scenario = request_scenario(SPEC, request.scenario, request.parameters)
    if not isinstance(scenario, LostSalesScenario):
        raise ScenarioError(
            f"scenario: '{request.scenario}' is not served by /orders yet; single-store scenarios are: "
            + ", ".join(name for name, preset in SPEC.scenarios.items() if isinstance(preset, LostSalesScenario))
        )
    return scenario


def check_pipelines(states: list[InventoryState], lead_time: int, limit: int = 10) -> None:
    """Raise a 422 naming ``states[i].pipeline`` for every state (up to ``limit``) whose pipeline
    does not hold exactly ``lead_time`` values."""
    errors = [
        {
            "type": "pipeline_length",
            "loc": ("body", "states", i, "pipeline"),
            "msg": f"expected {lead_time} value(s) (one per period of lead_time={lead_time}, oldest first), "
            f"got {len(state.pipeline)}",
            "input": state.pipeline,
        }
        for i, state in enumerate(states)
        if len(state.pipeline) != lead_time
    ]
    if errors:
        raise RequestValidationError(errors[:limit])


def observations(states: list[InventoryState], device: torch.device) -> torch.Tensor:
    """``[B, 1 + L]`` float32: on hand, then the pipeline oldest first (the simulator's layout)."""
    rows = [[state.on_hand, *state.pipeline] for state in states]
    return torch.tensor(rows, dtype=torch.float32, device=device)


@torch.no_grad()
def decide(policy: Policy, obs: torch.Tensor) -> list[float]:
    """Orders ``[B]`` for observations ``obs [B, 1 + L]`` as plain floats."""
    orders = policy.act(obs).reshape(-1)
    if orders.numel() != obs.shape[0] or not bool(torch.isfinite(orders).all()):
        raise RuntimeError(f"policy {getattr(policy, 'name', policy)!r} returned invalid orders {tuple(orders.shape)}")
    return orders.clamp_min(0.0).double().cpu().tolist()


# --- routes -----------------------------------------------------------------------------------


def build_router() -> APIRouter:
    """The inventory routes (mounted under ``/v1/inventory`` by the server)."""
    router = APIRouter()

    @router.post("/orders", response_model=OrdersResponse)
    def orders(
        request: OrdersRequest,
        registry: PolicyRegistry = Depends(registry_of),
        device: torch.device = Depends(device_of),
    ) -> OrdersResponse:
        """Order quantities for a batch of states.

        Errors: 404 unknown policy or scenario (lists the choices); 422 invalid parameters, states
        or pipeline lengths (names the field), or a policy that cannot serve this scenario.
        """
        scenario = resolve_scenario(request)
        check_pipelines(request.states, scenario.lead_time)
        label, policy = serving_policy(SPEC, request.policy, scenario, device, registry)
        return OrdersResponse(
            policy=label, scenario=scenario.describe(), orders=decide(policy, observations(request.states, device))
        )

    @router.get("/policies")
    def policies(registry: PolicyRegistry = Depends(registry_of)) -> dict[str, Any]:
        """Baselines (by name) and registered inventory networks (by reference)."""
        return policy_listing(SPEC, registry)

    return router
