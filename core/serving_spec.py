"""What a setting declares to be served, and the shapes every serving request and response share.

- :class:`ServingSpec`: the pydantic model of one request state, the model of one action and the
  converters between them and the simulator's observation and action (see :mod:`decisionlab.core.serving`);
- :class:`Envelope`: the request envelope every serving route shares (scenario, parameters, policy),
  declared once; :func:`envelope` gives a domain its own (its presets, default scenario and policy);
- :class:`Answered`: the fields every serving response starts with (what answered);
- field types: :data:`WholeNumber` (strict integers) and :data:`EntityId` (a client's integer id, which
  the response must give back exactly: int64 end to end, never through floats).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

if TYPE_CHECKING:
    from decisionlab.core.policy import Policy
    from decisionlab.core.scenario import Scenario
    from decisionlab.core.spec import DomainSpec

MAX_BATCH = 10_000


@dataclass(frozen=True)
class ServingSpec:
    """How a setting's policies are served.

    Attributes:
        state_model: one request state (what a client sends per decision), with examples.
        action_model: one action of the response.
        prepare: ``(scenario, device) -> context``: what the converters need about a scenario (a
            layout, a catalogue of series...); built once per scenario and device and cached.
        check: ``(context, states) -> None``: raises ``StateError`` for states that cannot occur in
            the scenario (run before any policy is built, so state mistakes are reported first).
        observe: ``(context, states, policy) -> observation batch`` (``[B, ...]``); may raise
            ``StateError`` for what a state must hold for this particular ``policy``.
        respond: ``(context, actions, states) -> [action dict]``, one per state; ``actions`` as the policy
            gave them (a tensor ``[B, ...]`` or a mapping of them, integer choices as int64).
        describe: ``context -> dict``: what ``GET /schema`` adds about the scenario (names, sizes).
        example: ``context -> dict``: a valid state for the scenario (schema, tests, docs).
        decide: ``(context, states, policy) -> actions``, for settings where one answer is several decisions
            (an event-driven simulator in which several agents are free at the same moment decides them
            one after another, each seeing the others' choices): used instead of ``observe`` + one ``act``.
        max_batch: most states per request.
        cost: ``states -> units of work`` of a request (raw dicts or validated states; one unit is about
            one small state's work), read before anything runs: the server keeps heavy requests off its
            event loop and refuses those over its limit (:mod:`decisionlab.core.workpool`). ``None``:
            one unit per state.
    """

    state_model: type[BaseModel]
    action_model: type[BaseModel]
    prepare: Callable[[Scenario, torch.device], Any]
    observe: Callable[[Any, Sequence[Any], Policy], Any]
    respond: Callable[[Any, Any, Sequence[Any]], list[dict[str, Any]]]
    example: Callable[[Any], dict[str, Any]]
    check: Callable[[Any, Sequence[Any]], None] | None = None
    describe: Callable[[Any], dict[str, Any]] | None = None
    decide: Callable[[Any, Sequence[Any], Policy], Any] | None = None
    max_batch: int = MAX_BATCH
    cost: Callable[[Sequence[Any]], float] | None = None

    def request_cost(self, states: Sequence[Any]) -> float:
        """Units of work of serving ``states`` (see ``cost``); a malformed state counts as one unit."""
        if self.cost is None:
            return float(len(states))
        try:
            return float(self.cost(states))
        except (AttributeError, KeyError, TypeError, ValueError):
            return float(len(states))  # validation will say what is wrong


def entries(state: Any, name: str) -> int:
    """How many items a state's list field ``name`` holds, in a raw (dict) or validated state (0 if none)."""
    value = state.get(name) if isinstance(state, Mapping) else getattr(state, name, None)
    return len(value) if isinstance(value, list | tuple) else 0

def _not_text_or_boolean(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError(f"expected a whole number, got the {type(value).__name__} {value!r}"[:120])
    return value


# An integer field of a strict request model: 27 and 27.0 (JSON Schema's integers) are accepted,
# 27.5, "27" and true are not.
WholeNumber = Annotated[int, BeforeValidator(_not_text_or_boolean), Field(strict=False)]


class Answered(BaseModel):
    """What answered a serving request; every serving response starts with these fields."""

    policy: str = Field(description="the policy that answered: a baseline name or domain/name@version")
    policy_version: int | None = Field(None, description="version of the registered policy that answered "
                                                         "(null: a baseline)")
    scenario: dict[str, Any] = Field(description="all resolved scenario parameters")
    scenario_hash: str = Field(description="fingerprint of the resolved scenario (16 hex digits): with the policy, "
                                           "it identifies exactly what answered")


ID_MARK = "x-decisionlab-id"
MAX_ID = 2**53  # the integers every JSON parser keeps exact
EntityId = Annotated[WholeNumber, Field(ge=0, le=MAX_ID, json_schema_extra={ID_MARK: True})]
"""A client's own integer id (of a driver, an order, an item...), 0..2^53: returned exactly as sent (int64
end to end). The conformance suite sends ids above 2^24 (where float32 would round them) and checks the
answers."""


class Envelope(BaseModel):
    """What every serving request names besides its states: the scenario preset, parameter overrides
    and the policy (a baseline or a registry reference)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    scenario: str = Field(min_length=1, max_length=100, description="scenario preset")
    parameters: dict[str, Any] = Field(default_factory=dict, description="scenario parameter overrides")
    policy: str = Field(min_length=1, max_length=200,
                        description="a baseline or a registry reference: domain/name@version, name@version or name")
    allow_extrapolation: bool = Field(False, description="answer with a learned policy even for states far outside "
                                      "the range it was trained on (refused with a 422 otherwise)")


def envelope(domain: DomainSpec, policy: str | None = None, scenario: str | None = None) -> type[Envelope]:
    """The :class:`Envelope` of ``domain``'s routes: its presets listed, defaults for the scenario (the
    domain's default) and, when given, the policy."""
    described = (f"a baseline (GET {domain.url_path}/policies) or a registry reference: {domain.name}/name@version, "
                 "name@version or name (latest version)")
    policy_field = Field(min_length=1, max_length=200, description=described) if policy is None else \
        Field(policy, min_length=1, max_length=200, description=described)
    fields: dict[str, Any] = {
        "scenario": (str, Field(scenario or domain.default_scenario, min_length=1, max_length=100,
                                description=f"scenario preset: {', '.join(domain.scenarios)}")),
        "policy": (str, policy_field),
    }
    model = create_model(f"{domain.name.title().replace('_', '')}Envelope", __base__=Envelope, **fields)
    model.__doc__ = Envelope.__doc__
    return model


def answered(body: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`Answered` fields of an :func:`act` body (for a domain's own response model)."""
    return {name: body[name] for name in Answered.model_fields}


class PolicyOutputError(RuntimeError):
    """A policy returned actions of the wrong shape or non-finite values: a server fault (500)."""


