"""The routes the API generates for every registered domain, from its settings' serving specs.

- ``POST /v1/<domain>/act``: scenario, parameters, policy and states -> one action per state, with
  the exact policy (and version) that answered;
- ``GET /v1/<domain>/schema?scenario=...``: the state a client must send for that scenario (JSON
  schemas of one state and one action, an example state, the setting's own description);
- ``GET /v1/<domain>/policies``: the baselines (with the settings they serve) and registered policies.

Request and response models are built per domain, so the OpenAPI document shows each domain's
presets, default scenario and state schemas.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' parameter annotations (Query,
# Depends) when they are defined, inside domain_router.
import json
from collections.abc import Callable
from typing import Annotated, Any

import torch
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, create_model

from decisionlab.core.policy_cache import PolicyCache
from decisionlab.core.serving import (
    act,
    device_of,
    policies_of,
    policy_listing,
    query_parameters,
    registry_of,
    request_cost,
    schema,
    serve_request,
)
from decisionlab.core.serving_spec import MAX_BATCH, Answered, envelope
from decisionlab.core.spec import DomainSpec
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.core.workpool import work_pool

MAX_QUERY_PARAMETERS = 10_000  # characters of the JSON parameters of a GET
# A body up to this size is parsed and validated on the event loop (tens of microseconds); a larger one
# is parsed, validated, served and serialized in the serving pool, so a big request holds the loop for
# no more than reading its bytes.
INLINE_BODY_BYTES = 2048


class ActResponse(Answered):
    """The actions of a batch of states and what produced them."""

    domain: str
    setting: str = Field(description="the setting of the scenario (its state and action schemas)")
    scenario_name: str
    actions: list[dict[str, Any]] = Field(description="one action per state, in order (schema: GET .../schema)")


def inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``#/$defs/...`` references replaced by the definitions (so it can sit
    inside the OpenAPI document, where those references would point nowhere)."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def act_request_model(domain: DomainSpec) -> type[BaseModel]:
    """The ``POST /act`` body of ``domain``: its presets, default scenario and state schemas."""
    state_schema = {"anyOf": [inlined(s.serving.state_model.model_json_schema()) for s in domain.settings]}
    first = domain.setting_of_preset(domain.default_scenario)
    example = {"scenario": domain.default_scenario, "parameters": {},
               "policy": (list(first.default_policies) or list(first.policies))[0],
               "states": [first.serving.state_model.model_json_schema().get("examples", [{}])[0]]}
    States = Annotated[dict[str, Any], WithJsonSchema(state_schema)]

    class Base(envelope(domain)):  # type: ignore[misc, valid-type]
        model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [example]})

    return create_model(
        f"{domain.name.title().replace('_', '')}ActRequest",
        __base__=Base,
        states=(list[States], Field(min_length=1, max_length=MAX_BATCH,
                                    description=f"1 to {MAX_BATCH:,} states of the scenario's setting (GET "
                                    f"{domain.url_path}/schema?scenario=... gives their schema and an example)")),
    )


def request_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads its body itself (``model``'s schema, inlined)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": inlined(model.model_json_schema()) | {"title": model.__name__}}}}}


def validated(model: type[BaseModel], body: bytes) -> Any:
    """``body`` (JSON bytes) as ``model``, or FastAPI's own 422 (errors located under ``body``)."""
    if not body:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        data = json.loads(body)
    except RecursionError:  # nested deeper than the parser's stack: not a request any client means to send
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error",
                                       "input": {}, "ctx": {"error": "nested too deeply"}}]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        position = getattr(err, "pos", getattr(err, "start", 0))
        reason = getattr(err, "msg", None) or getattr(err, "reason", "invalid JSON")
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error",
                                       "input": {}, "ctx": {"error": reason}}]) from None
    try:
        return model.model_validate(data, from_attributes=True)
    except ValidationError as err:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in err.errors()]) from None


def json_response(result: dict[str, Any]) -> Response:
    """``result`` checked against :class:`ActResponse` and serialized (where it is computed: off the loop
    for big answers)."""
    return Response(ActResponse.model_validate(result).model_dump_json(), media_type="application/json")


def domain_router(domain: DomainSpec) -> APIRouter:
    """The generated routes of ``domain`` (mounted under ``/v1/<domain>``)."""
    router = APIRouter()
    ActRequest = act_request_model(domain)

    @router.post("/act", response_model=ActResponse, openapi_extra=request_body_schema(ActRequest))
    async def act_route(
        http: Request,
        policies: PolicyCache = Depends(policies_of),
        device: torch.device = Depends(device_of),
    ) -> Response:
        """Actions for a batch of states from a baseline or a registered policy.

        Errors: 404 unknown scenario or policy (lists the choices); 422 invalid parameters or states
        (names the field: ``states[i].<field>``), a policy that cannot serve the scenario or is not
        admissible (names ``policy``); 413 a request over the work limit; 503 a saturated server.
        """
        body = await http.body()

        def answer(request: Any) -> Callable[[], Response]:
            return lambda: json_response(act(domain, request.scenario, request.parameters, request.policy,
                                             request.states, policies, device,
                                             allow_extrapolation=request.allow_extrapolation))

        def cost_of(request: Any) -> float:
            return request_cost(domain, request.scenario, request.parameters, request.states)

        if len(body) > INLINE_BODY_BYTES:
            def whole() -> Response:  # in a pool thread: parse, validate, check the cost, serve, serialize
                request = validated(ActRequest, body)
                work_pool().check_cost(cost_of(request))
                return answer(request)()
            return await work_pool().run(whole)
        request = validated(ActRequest, body)
        return await serve_request(answer(request), cost_of(request))

    @router.get("/schema")
    def schema_route(
        scenario: str = Query(domain.default_scenario, min_length=1, max_length=100,
                              description=f"scenario preset: {', '.join(domain.scenarios)}"),
        parameters: str = Query("{}", max_length=MAX_QUERY_PARAMETERS,
                                description="scenario parameter overrides as a JSON object"),
        device: torch.device = Depends(device_of),
    ) -> dict[str, Any]:
        """What ``POST /act`` takes for a scenario: its setting, the JSON schemas of one state and one
        action, an example state and the baselines that serve it."""
        return schema(domain, scenario, query_parameters(parameters), device)

    @router.get("/policies")
    def policies_route(registry: PolicyRegistry = Depends(registry_of)) -> dict[str, Any]:
        """Baselines (by name, with the settings they serve) and registered policies (by reference)."""
        return policy_listing(domain, registry)

    return router
