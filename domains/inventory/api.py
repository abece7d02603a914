"""HTTP routes of the inventory domain, mounted by the API server under ``/v1/inventory``.

``POST /orders`` turns a batch of states into orders with a baseline policy (``optimal``,
``base_stock``, ``echelon_stock``, ``newsvendor_quantile``, ...) or a registered network
(``inventory/hdpo@2``, ``hdpo``), for every inventory setting; the scenario decides the state:

- ``lost_sales`` (single store): ``states: [{on_hand, pipeline}]`` -> ``orders: [float]``;
- ``real_series``: ``states`` of one store-item each (on hand, pipeline, the demand window, the
  promotions, the date, which series; :mod:`.api_series`) -> ``orders: [float]``;
- networks (``backlog``, ``serial``, ``one_warehouse``, ``transshipment``, ``multi_warehouse``):
  ``networks: [{on_hand: {node: units}, in_transit: {node: {upstream: [units]}}}]`` ->
  ``networks: [{orders: {node: {upstream: units}}}]`` (:mod:`.api_network`).

``GET /network`` describes a network scenario's nodes and links (what a network state names);
``GET /series`` describes a ``real_series`` scenario's state (sizes, calendar, series);
``GET /policies`` lists baselines and registered networks. The router reads the policy registry
and the device from ``request.app.state`` (set by :func:`decisionlab.apps.api.create_app`) and
falls back to ``$DECISIONLAB_HOME`` and :func:`~decisionlab.core.device.get_device` when mounted
elsewhere.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, TypeVar

import torch
from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, WithJsonSchema

from decisionlab.core.errors import DecisionlabError, ScenarioError
from decisionlab.core.policy import Policy
from decisionlab.core.scenario import Scenario
from decisionlab.core.serving import device_of, policy_listing, registry_of, request_scenario, serving_policy
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory import SPEC
from decisionlab.domains.inventory.api_network import (
    NetworkDescription,
    NetworkInventory,
    NetworkOrdersResponse,
    describe_network,
    network_layout,
    network_observations,
    network_orders,
)
from decisionlab.domains.inventory.api_series import (
    SeriesStoreState,
    describe_series,
    series_catalog,
    series_observation,
    series_orders,
)
from decisionlab.domains.inventory.network.scenario import NetworkScenario
from decisionlab.domains.inventory.scenario import LostSalesScenario
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario

M = TypeVar("M", bound=BaseModel)

MAX_BATCH = 10_000
MAX_QUERY_PARAMETERS = 10_000  # characters of the JSON parameters of a GET
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


class OrdersRequest(BaseModel):
    """A batch of states to decide orders for, under one policy and one scenario.

    ``states`` serves the single-store scenarios (``lost_sales``: :class:`InventoryState`;
    ``real_series``: :class:`~.api_series.SeriesStoreState`; each is checked against the
    scenario's model once the scenario is known), ``networks`` the network scenarios
    (:class:`~.api_network.NetworkInventory`). Send exactly the one the scenario takes.
    """

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [LOST_SALES_EXAMPLE, NETWORK_EXAMPLE, SERIES_EXAMPLE]}
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
    states: list[StoreStateJSON] | None = Field(
        None, min_length=1, max_length=MAX_BATCH,
        description=f"lost_sales and real_series: 1 to {MAX_BATCH:,} store states",
    )
    networks: list[NetworkInventory] | None = Field(
        None, min_length=1, max_length=MAX_BATCH,
        description=f"network scenarios: 1 to {MAX_BATCH:,} network states (see GET /v1/inventory/network)",
    )


class OrdersResponse(BaseModel):
    """One order per requested state, in the same order (``lost_sales`` and ``real_series``)."""

    policy: str = Field(description="the policy that decided: a baseline name or a full registry reference")
    scenario: dict[str, Any] = Field(description="all resolved scenario parameters")
    orders: list[float] = Field(description="order quantity per state (units), >= 0")


class PolicyError(DecisionlabError):
    """A policy that cannot serve the request's scenario (or must not be served at all)."""

    http_status = 422


# --- the work ---------------------------------------------------------------------------------


SERVED = (LostSalesScenario, RealSeriesScenario, NetworkScenario)


def resolve_scenario(request: OrdersRequest) -> Scenario:
    """The preset with the request's overrides; errors name ``parameters.<field>``."""
    scenario = request_scenario(SPEC, request.scenario, request.parameters)
    if not isinstance(scenario, SERVED):
        raise ScenarioError(f"scenario: '{request.scenario}' ({type(scenario).__name__}) is not served by /orders")
    return scenario


def scenario_names(kind: type[Scenario]) -> str:
    return ", ".join(name for name, preset in SPEC.scenarios.items() if isinstance(preset, kind))


def check_admissible(name: str) -> None:
    """A 422 naming ``policy`` for a non-admissible baseline (one that reads the future)."""
    spec = SPEC.policies.get(name)
    if spec is not None and not spec.admissible:
        raise PolicyError(
            f"policy: '{name}' is not admissible ({spec.description}): it is a bound for evaluations, not a policy "
            "to act on; choose an admissible one (GET /v1/inventory/policies)"
        )


def serving(name: str, scenario: Scenario, device: torch.device, registry: PolicyRegistry) -> tuple[str, Policy]:
    """``(label, policy)`` via :func:`~decisionlab.core.serving.serving_policy`. A non-admissible
    baseline (:func:`check_admissible`) and a policy that does not fit the scenario (a builder's or
    ``load_policy``'s plain :class:`DecisionlabError`) are a 422 naming ``policy``."""
    check_admissible(name)
    try:
        return serving_policy(SPEC, name, scenario, device, registry)
    except DecisionlabError as err:
        if type(err) is not DecisionlabError:
            raise
        raise PolicyError(f"policy: '{name}' cannot serve this scenario: {err}") from None


def missing(field: str, why: str) -> RequestValidationError:
    return RequestValidationError([{"type": "missing", "loc": ("body", field), "msg": f"Field required: {why}",
                                    "input": None}])


def not_taken(field: str, why: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError([{"type": "extra_forbidden", "loc": ("body", field), "msg": why, "input": value}])


@lru_cache(maxsize=4)
def _adapter(model: type[BaseModel]) -> TypeAdapter:
    return TypeAdapter(list[model])


def parse_states(
    model: type[M], raw: list[dict[str, Any]], hints: dict[str, str] | None = None, limit: int = 20
) -> list[M]:
    """``states`` checked against ``model`` (the scenario's state model); a 422 names
    ``states[i].<field>`` for every problem (up to ``limit``). ``hints``: the message of a
    missing top-level field, by field name."""
    try:
        return _adapter(model).validate_python(raw)
    except ValidationError as err:
        problems = []
        for problem in err.errors(include_url=False)[:limit]:
            loc = problem["loc"]
            if hints and problem["type"] == "missing" and len(loc) == 2 and loc[1] in hints:
                problem = {**problem, "msg": f"Field required: {hints[loc[1]]}"}
            problems.append({**problem, "loc": ("body", "states", *loc)})
        raise RequestValidationError(problems) from None


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


@torch.no_grad()
def decide_network(policy: Policy, obs: torch.Tensor, n_edges: int) -> torch.Tensor:
    """Orders ``[B, n_edges]`` for flat network observations ``obs [B, observation_size]``."""
    orders = policy.act(obs)
    if tuple(orders.shape) != (obs.shape[0], n_edges) or not bool(torch.isfinite(orders).all()):
        raise RuntimeError(f"policy {getattr(policy, 'name', policy)!r} returned invalid orders {tuple(orders.shape)}")
    return orders


def serve_lost_sales(
    request: OrdersRequest, scenario: LostSalesScenario, registry: PolicyRegistry, device: torch.device
) -> OrdersResponse:
    if request.networks is not None:
        raise not_taken("networks", f"scenario '{request.scenario}' is a single store: send states, not networks "
                        f"(network scenarios: {scenario_names(NetworkScenario)})")
    if request.states is None:
        raise missing("states", "the store states to decide orders for")
    states = parse_states(InventoryState, request.states)
    check_pipelines(states, scenario.lead_time)
    label, policy = serving(request.policy, scenario, device, registry)
    orders = decide(policy, observations(states, device))
    return OrdersResponse(policy=label, scenario=scenario.describe(), orders=orders)


def serve_series(
    request: OrdersRequest, scenario: RealSeriesScenario, registry: PolicyRegistry, device: torch.device
) -> OrdersResponse:
    if request.networks is not None:
        raise not_taken("networks", f"scenario '{request.scenario}' is a real_series scenario: send states "
                        "(one store-item each), not networks")
    if request.states is None:
        raise missing("states", "the store-item states to decide orders for (see GET /v1/inventory/series)")
    window = (f"the demand of the last window_periods={scenario.window_periods} periods, oldest first (on_hand and "
              "pipeline alone are the lost_sales state: real_series policies read the recent demand)")
    states = parse_states(SeriesStoreState, request.states, hints={"demand_window": window})
    catalog = series_catalog(scenario)
    label, policy = serving(request.policy, scenario, device, registry)
    obs = series_observation(catalog, states, policy, device)
    return OrdersResponse(policy=label, scenario=scenario.describe(), orders=series_orders(policy, obs))


def serve_network(
    request: OrdersRequest, scenario: NetworkScenario, registry: PolicyRegistry, device: torch.device
) -> NetworkOrdersResponse:
    if request.states is not None:
        raise not_taken("states", f"scenario '{request.scenario}' is a network: send networks (per-node on_hand and "
                        "in_transit by node name, see GET /v1/inventory/network), not states")
    if request.networks is None:
        raise missing("networks", "the network states to decide orders for (see GET /v1/inventory/network)")
    layout = network_layout(scenario, device)
    obs = network_observations(layout, request.networks)
    label, policy = serving(request.policy, scenario, device, registry)
    orders = decide_network(policy, obs, layout.sim.n_edges)
    return NetworkOrdersResponse(policy=label, scenario=scenario.describe(), networks=network_orders(layout, orders))


def query_parameters(text: str) -> dict[str, Any]:
    """The ``parameters`` query value: a JSON object of scenario overrides (422 naming it otherwise)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise RequestValidationError([{"type": "json_object", "loc": ("query", "parameters"),
                                       "msg": f"must be a JSON object of scenario parameters: {err}",
                                       "input": text}]) from None
    if not isinstance(value, dict):
        raise RequestValidationError([{"type": "json_object", "loc": ("query", "parameters"),
                                       "msg": "must be a JSON object of scenario parameters, e.g. {\"n_stores\": 3}",
                                       "input": text}])
    return value


# --- routes -----------------------------------------------------------------------------------


def build_router() -> APIRouter:
    """The inventory routes (mounted under ``/v1/inventory`` by the server)."""
    router = APIRouter()

    @router.post("/orders", response_model=OrdersResponse | NetworkOrdersResponse)
    def orders(
        request: OrdersRequest,
        registry: PolicyRegistry = Depends(registry_of),
        device: torch.device = Depends(device_of),
    ) -> OrdersResponse | NetworkOrdersResponse:
        """Orders for a batch of states (``lost_sales``, ``real_series``) or networks.

        Errors: 404 unknown policy or scenario (lists the choices); 422 invalid parameters, states,
        networks (unknown or missing node, wrong pipeline length for a link, ...; names the field),
        a policy that cannot serve this scenario or is not admissible (names ``policy``).
        """
        scenario = resolve_scenario(request)
        check_admissible(request.policy)
        if isinstance(scenario, NetworkScenario):
            return serve_network(request, scenario, registry, device)
        if isinstance(scenario, RealSeriesScenario):
            return serve_series(request, scenario, registry, device)
        return serve_lost_sales(request, scenario, registry, device)

    @router.get("/network", response_model=NetworkDescription)
    def network(
        scenario: str = Query(description="a network scenario preset: " + scenario_names(NetworkScenario),
                              min_length=1, max_length=100),
        parameters: str = Query("{}", max_length=MAX_QUERY_PARAMETERS,
                                description="scenario parameter overrides as a JSON object, e.g. {\"n_stores\": 3}"),
        device: torch.device = Depends(device_of),
    ) -> NetworkDescription:
        """The resolved network: nodes (name, kind, costs), links (from, to, lead time) and an
        empty example state in the format ``POST /orders`` takes in ``networks``."""
        resolved = request_scenario(SPEC, scenario, query_parameters(parameters))
        if not isinstance(resolved, NetworkScenario):
            raise ScenarioError(
                f"scenario: '{scenario}' is not a network scenario; network scenarios are: "
                + scenario_names(NetworkScenario)
            )
        return describe_network(resolved, device)

    @router.get("/series")
    def series(
        scenario: str = Query("real_series", min_length=1, max_length=100, description="a real_series preset"),
        parameters: str = Query("{}", max_length=MAX_QUERY_PARAMETERS,
                                description="scenario parameter overrides as a JSON object"),
    ) -> dict[str, Any]:
        """A ``real_series`` scenario's state: lead time, window, season, calendar, the series of its
        data (item, store, scale, penalty) and an example state for ``POST /orders``."""
        resolved = request_scenario(SPEC, scenario, query_parameters(parameters))
        if not isinstance(resolved, RealSeriesScenario):
            raise ScenarioError(
                f"scenario: '{scenario}' is not a real_series scenario; those are: "
                + scenario_names(RealSeriesScenario)
            )
        return describe_series(resolved)

    @router.get("/policies")
    def policies(registry: PolicyRegistry = Depends(registry_of)) -> dict[str, Any]:
        """Baselines (by name) and registered inventory networks (by reference)."""
        return policy_listing(SPEC, registry)

    return router
