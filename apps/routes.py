"""The routes the API generates for every registered domain, from its settings' serving specs.

- ``POST /v1/<domain>/act``: scenario, parameters, policy and states -> one action per state, with
  the exact policy (and version) that answered;
- ``GET /v1/<domain>/schema?scenario=...``: the state a client must send for that scenario (JSON
  schemas of one state and one action, an example state, the setting's own description);
- ``GET /v1/<domain>/policies``: the baselines (with the settings they serve) and registered policies.

Request and response models are built per domain, so the OpenAPI document shows each domain's
presets, default scenario and state schemas.
"""

# No ``from __future__ import annotations``: FastAPI must see the per-domain request model, a local
# of domain_router, as a real annotation.
from typing import Annotated, Any

import torch
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

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

MAX_QUERY_PARAMETERS = 10_000  # characters of the JSON parameters of a GET


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


def domain_router(domain: DomainSpec) -> APIRouter:
    """The generated routes of ``domain`` (mounted under ``/v1/<domain>``)."""
    router = APIRouter()
    ActRequest = act_request_model(domain)

    @router.post("/act", response_model=ActResponse)
    async def act_route(
        request: ActRequest,  # type: ignore[valid-type]
        policies: PolicyCache = Depends(policies_of),
        device: torch.device = Depends(device_of),
    ) -> dict[str, Any]:
        """Actions for a batch of states from a baseline or a registered policy.

        Errors: 404 unknown scenario or policy (lists the choices); 422 invalid parameters or states
        (names the field: ``states[i].<field>``), a policy that cannot serve the scenario or is not
        admissible (names ``policy``).
        """
        cost = request_cost(domain, request.scenario, request.parameters, request.states)
        return await serve_request(lambda: act(domain, request.scenario, request.parameters, request.policy,
                                               request.states, policies, device,
                                               allow_extrapolation=request.allow_extrapolation), cost)

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
