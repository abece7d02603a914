"""The inventory domain's named HTTP routes, mounted under ``/v1/inventory`` next to the core's
``/act``, ``/schema`` and ``/policies``. Each is a thin wrapper over the core serving path.

- ``POST /orders``: a batch of states and a policy -> orders, for every inventory setting; the
  scenario decides the state: ``lost_sales`` and ``real_series`` take ``states`` (one store or
  store-item each) and answer ``orders: [float]``; the network scenarios take ``networks``
  (per-node stock and shipments in transit, by node name) and answer ``networks: [{orders}]``.
- ``GET /network``: a network scenario's nodes and links (what a network state names).
- ``GET /series``: a ``real_series`` scenario's state (sizes, calendar, series).
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from decisionlab.core import (
    MAX_BATCH,
    Answered,
    FieldProblem,
    PolicyCache,
    ScenarioError,
    StateError,
    act,
    answered,
    device_of,
    envelope,
    policies_of,
    prepared,
    query_parameters,
    request_cost,
    request_scenario,
    serve_request,
)
from decisionlab.domains.inventory import SPEC
from decisionlab.domains.inventory.network import SETTING as NETWORK
from decisionlab.domains.inventory.network.serve import (
    NetworkDescription,
    NetworkInventory,
    NetworkOrders,
    describe_layout,
)
from decisionlab.domains.inventory.series import SETTING as SERIES
from decisionlab.domains.inventory.series.serve import SeriesStoreState, describe_series
from decisionlab.domains.inventory.single_store.serve import InventoryState

MAX_QUERY_PARAMETERS = 10_000  # characters of the JSON parameters of a GET

LOST_SALES_EXAMPLE = {
    "policy": "optimal",
    "scenario": "lost_sales",
    "parameters": {"lead_time": 2, "underage_cost": 9},
    "states": [{"on_hand": 0, "pipeline": [0, 0]}, {"on_hand": 4, "pipeline": [5, 5]}],
}
NETWORK_EXAMPLE = {
    "policy": "critical_fractile",
    "scenario": "backlog",
    "parameters": {"lead_time": 2},
    "networks": [
        {"on_hand": {"store": -3}, "in_transit": {"store": {"supplier": [5, 6]}}},
        {"on_hand": {"store": 12}, "in_transit": {"store": {"supplier": [0, 4]}}},
    ],
}
SERIES_EXAMPLE = {
    "policy": "newsvendor_quantile",
    "scenario": "real_series",
    "parameters": {"lead_time": 1, "window_periods": 14},
    "states": [
        {"on_hand": 3, "pipeline": [4], "demand_window": [5, 4, 6, 3, 5, 7, 9, 4, 5, 5, 2, 6, 8, 10],
         "date": "2026-01-01", "item": "item_01", "store": "store_01"},
    ],
}
StoreStateJSON = Annotated[
    dict[str, Any],
    WithJsonSchema({"anyOf": [InventoryState.model_json_schema(), SeriesStoreState.model_json_schema()]}),
]


class OrdersRequest(envelope(SPEC, policy="optimal", scenario="lost_sales")):  # type: ignore[misc, valid-type]
    """A batch of states to decide orders for, under one policy and one scenario.

    ``states`` serves the single-store scenarios (``lost_sales``: ``InventoryState``;
    ``real_series``: ``SeriesStoreState``; each is checked against the scenario's model once the
    scenario is known), ``networks`` the network scenarios (``NetworkInventory``). Send exactly the
    one the scenario takes.
    """

    model_config = ConfigDict(
        extra="forbid", strict=True,
        json_schema_extra={"examples": [LOST_SALES_EXAMPLE, NETWORK_EXAMPLE, SERIES_EXAMPLE]},
    )

    states: list[StoreStateJSON] | None = Field(
        None, min_length=1, max_length=MAX_BATCH,
        description=f"lost_sales and real_series: 1 to {MAX_BATCH:,} store states",
    )
    networks: list[NetworkInventory] | None = Field(
        None, min_length=1, max_length=MAX_BATCH,
        description=f"network scenarios: 1 to {MAX_BATCH:,} network states (see GET /v1/inventory/network)",
    )


class OrdersResponse(Answered):
    """One order per requested state, in the same order (``lost_sales`` and ``real_series``)."""

    orders: list[float] = Field(description="order quantity per state (units), >= 0")


class NetworkOrdersResponse(Answered):
    """One :class:`NetworkOrders` per requested network, in the same order."""

    networks: list[NetworkOrders]


def misplaced(field: str, message: str) -> StateError:
    return StateError([FieldProblem((field,), "wrong_field", message)])


def network_names() -> str:
    return ", ".join(NETWORK.presets)


def orders(request: OrdersRequest, policies: PolicyCache, device: torch.device) -> BaseModel:
    """``POST /orders``: the core serving path with the state list the scenario's setting takes."""
    scenario = request_scenario(SPEC, request.scenario, request.parameters)
    network = SPEC.setting_of(scenario) is NETWORK
    if network and request.states is not None:
        raise misplaced("states", f"scenario '{request.scenario}' is a network: send networks (per-node on_hand and "
                                  "in_transit by node name, see GET /v1/inventory/network), not states")
    if not network and request.networks is not None:
        raise misplaced("networks", f"scenario '{request.scenario}' takes states (one store or store-item each), "
                                    f"not networks (network scenarios: {network_names()})")
    field, raw = ("networks", request.networks) if network else ("states", request.states)
    if raw is None:
        what = ("the network states to decide orders for (see GET /v1/inventory/network)" if network else
                "the store states to decide orders for")
        raise StateError([FieldProblem((field,), "missing", f"Field required: {what}")])
    body = act(SPEC, request.scenario, request.parameters, request.policy, raw, policies, device, field=field,
               allow_extrapolation=request.allow_extrapolation)
    head = answered(body)
    if network:
        return NetworkOrdersResponse(**head, networks=body["actions"])
    return OrdersResponse(**head, orders=[action["order"] for action in body["actions"]])


def build_router() -> APIRouter:
    """The inventory routes (mounted under ``/v1/inventory`` by the server)."""
    router = APIRouter()

    @router.post("/orders", response_model=OrdersResponse | NetworkOrdersResponse)
    async def orders_route(
        request: OrdersRequest,
        policies: PolicyCache = Depends(policies_of),
        device: torch.device = Depends(device_of),
    ) -> BaseModel:
        """Orders for a batch of states (``lost_sales``, ``real_series``) or networks.

        Errors: 404 unknown policy or scenario (lists the choices); 422 invalid parameters, states,
        networks (unknown or missing node, wrong pipeline length for a link, ...; names the field),
        a policy that cannot serve this scenario or is not admissible (names ``policy``).
        """
        cost = request_cost(SPEC, request.scenario, request.parameters, request.states or request.networks or ())
        return await serve_request(lambda: orders(request, policies, device), cost)

    @router.get("/network", response_model=NetworkDescription)
    def network(
        scenario: str = Query(description="a network scenario preset: " + network_names(),
                              min_length=1, max_length=100),
        parameters: str = Query("{}", max_length=MAX_QUERY_PARAMETERS,
                                description="scenario parameter overrides as a JSON object, e.g. {\"n_stores\": 3}"),
        device: torch.device = Depends(device_of),
    ) -> NetworkDescription:
        """The resolved network: nodes (name, kind, costs), links (from, to, lead time) and an
        empty example state in the format ``POST /orders`` takes in ``networks``."""
        resolved = request_scenario(SPEC, scenario, query_parameters(parameters))
        if SPEC.setting_of(resolved) is not NETWORK:
            raise ScenarioError(f"scenario: '{scenario}' is not a network scenario; network scenarios are: "
                                + network_names())
        return describe_layout(prepared(NETWORK, resolved, device))

    @router.get("/series")
    def series(
        scenario: str = Query("real_series", min_length=1, max_length=100, description="a real_series preset"),
        parameters: str = Query("{}", max_length=MAX_QUERY_PARAMETERS,
                                description="scenario parameter overrides as a JSON object"),
    ) -> dict[str, Any]:
        """A ``real_series`` scenario's state: lead time, window, season, calendar, the series of its
        data (item, store, scale, penalty) and an example state for ``POST /orders``."""
        resolved = request_scenario(SPEC, scenario, query_parameters(parameters))
        if SPEC.setting_of(resolved) is not SERIES:
            raise ScenarioError(f"scenario: '{scenario}' is not a real_series scenario; those are: "
                                + ", ".join(SERIES.presets))
        return describe_series(resolved)

    return router
