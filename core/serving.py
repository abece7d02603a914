"""The one serving path: request states -> observation -> policy -> actions -> response.

Each setting declares a :class:`ServingSpec`: the pydantic model of one request state (with
examples), the model of one action in the response, and converters. The core does everything
else, the same way in every domain (:func:`act`): resolve the scenario (errors name
``parameters``), find its setting, validate the states (errors name ``states[i].<field>``), pick the
policy (a cached baseline or a registered network; admissibility and fit checked), convert, act,
check the actions and convert them back. The API's ``POST /v1/{domain}/act`` and every domain's
named routes call :func:`act`; ``GET /v1/{domain}/schema`` calls :func:`schema`.

Converters raise :class:`~decisionlab.core.errors.StateError` with locations relative to the list
of states, e.g. ``(3, "pipeline")``; the serving path prefixes the request field that holds them.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, TypeVar

import torch
from fastapi import Request
from pydantic import BaseModel, BeforeValidator, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from decisionlab.core import telemetry
from decisionlab.core.device import get_device
from decisionlab.core.errors import FieldProblem, PolicyMismatchError, ScenarioError, StateError
from decisionlab.core.policy import Policy
from decisionlab.core.policy_cache import NONBLOCKING, PolicyCache, WouldBlock
from decisionlab.core.resolve import check_kind, find_record, load_registered
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import DomainSpec, SettingSpec
from decisionlab.core.store.registry import PolicyRegistry

MAX_BATCH = 10_000
T = TypeVar("T")
MAX_PROBLEMS = 20  # validation problems reported per request


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
        respond: ``(context, actions [B, ...], states) -> [action dict]``, one per state.
        describe: ``context -> dict``: what ``GET /schema`` adds about the scenario (names, sizes).
        example: ``context -> dict``: a valid state for the scenario (schema, tests, docs).
        max_batch: most states per request.
    """

    state_model: type[BaseModel]
    action_model: type[BaseModel]
    prepare: Callable[[Scenario, torch.device], Any]
    observe: Callable[[Any, Sequence[Any], Policy], Any]
    respond: Callable[[Any, torch.Tensor, Sequence[Any]], list[dict[str, Any]]]
    example: Callable[[Any], dict[str, Any]]
    check: Callable[[Any, Sequence[Any]], None] | None = None
    describe: Callable[[Any], dict[str, Any]] | None = None
    max_batch: int = MAX_BATCH


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


def answered(body: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`Answered` fields of an :func:`act` body (for a domain's own response model)."""
    return {name: body[name] for name in Answered.model_fields}


class PolicyOutputError(RuntimeError):
    """A policy returned actions of the wrong shape or non-finite values: a server fault (500)."""


def request_scenario(domain: DomainSpec, preset: str, parameters: Mapping[str, Any]) -> Scenario:
    """The preset with the request's ``parameters``; errors are prefixed ``parameters:``. Resolved
    scenarios are cached by their parameters' JSON (clients repeat the same few)."""
    try:
        if not parameters:
            return domain.scenario(preset)
        key = json.dumps(parameters, sort_keys=True)
        if len(key) > 4096:
            return domain.scenario(preset, parameters)
        return _resolved(domain, preset, key)
    except ScenarioError as err:
        raise ScenarioError(f"parameters: {err}") from None


@lru_cache(maxsize=1024)
def _resolved(domain: DomainSpec, preset: str, parameters_json: str) -> Scenario:
    return domain.scenario(preset, json.loads(parameters_json))


_PREPARED: OrderedDict[tuple[SettingSpec, Scenario, str], Any] = OrderedDict()
_PREPARED_LOCK = threading.Lock()
MAX_PREPARED = 64


def prepared(setting: SettingSpec, scenario: Scenario, device: torch.device) -> Any:
    """The setting's serving context of ``scenario`` on ``device`` (cached; preparing may read data
    files, so on the event loop a miss is :class:`WouldBlock`)."""
    key = (setting, scenario, str(device))
    with _PREPARED_LOCK:
        context = _PREPARED.get(key)
        if context is not None:
            _PREPARED.move_to_end(key)
            return context
    if NONBLOCKING.get():
        raise WouldBlock
    context = setting.serving.prepare(scenario, device)
    with _PREPARED_LOCK:
        _PREPARED[key] = context
        while len(_PREPARED) > MAX_PREPARED:
            _PREPARED.popitem(last=False)
    return context


@dataclass(frozen=True)
class Answerer:
    """The policy that answers a request: ``label`` (a baseline name or ``domain/name@version``),
    ``version`` (``None`` for baselines) and the fingerprint of the resolved scenario it serves."""

    label: str
    version: int | None
    policy: Policy
    scenario_hash: str


def check_admissible(domain: DomainSpec, name: str) -> None:
    """A 422 naming ``policy`` for a baseline that is not admissible (it reads the future): a bound
    for evaluations, never served. Checked by name, before anything else of the request."""
    entry = domain.policies.get(name)
    if entry is not None and not entry.admissible:
        raise PolicyMismatchError(
            f"policy: '{name}' is not admissible ({entry.description}): it is a bound for evaluations, not a "
            f"policy to act on; choose an admissible one (GET {domain.url_path}/policies)"
        )


def serving_policy(
    domain: DomainSpec, name: str, scenario: Scenario, device: torch.device, cache: PolicyCache
) -> Answerer:
    """A cached baseline of the scenario's setting, else a cached registered policy (baselines win
    clashes). A non-admissible baseline (one that reads the future) and one that cannot serve the
    scenario are a 422 naming ``policy``."""
    check_admissible(domain, name)
    setting = domain.setting_of(scenario)
    spec = setting.policies.get(name)
    if spec is not None:
        problem = spec.problem(scenario)
        if problem is not None:
            raise PolicyMismatchError(f"policy: '{name}' cannot serve this scenario: {problem}")
        return Answerer(name, None, cache.baseline(spec, scenario, device), scenario.fingerprint())
    try:
        if name in domain.policies:  # a baseline of another setting: say which settings it serves
            domain.policy(name).spec_for(scenario)
        registry = cache.registry
        record = cache.resolve(domain.name, name, lambda: find_record(domain, setting, name, registry))
        check_kind(record, setting)
        policy = cache.registered(record, scenario, device,
                                  lambda: load_registered(record, scenario, device, registry))
    except PolicyMismatchError as err:
        raise PolicyMismatchError(f"policy: '{name}' cannot serve this scenario: {err}") from None
    return Answerer(str(record.ref), record.ref.version, policy, scenario.fingerprint())


@lru_cache(maxsize=16)
def _adapter(model: type[BaseModel]) -> TypeAdapter:
    return TypeAdapter(list[model])


def parse_states(model: type[BaseModel], raw: Sequence[Any], max_batch: int = MAX_BATCH) -> list[Any]:
    """``raw`` validated as a list of ``model``; a ``StateError`` names ``(i, field...)`` for every
    problem (up to :data:`MAX_PROBLEMS`), or the list itself when it is empty or too long."""
    if not raw:
        raise StateError([FieldProblem((), "too_short", "give at least one state")])
    if len(raw) > max_batch:
        raise StateError([FieldProblem((), "too_long", f"at most {max_batch:,} states per request, got {len(raw):,}")])
    try:
        return _adapter(model).validate_python(list(raw))
    except ValidationError as err:
        problems = [
            FieldProblem(tuple(p["loc"]), str(p["type"]), str(p["msg"]), p.get("input"))
            for p in err.errors(include_url=False)[:MAX_PROBLEMS]
        ]
        raise StateError(problems) from None


@torch.no_grad()
def decide(policy: Policy, obs: Any, batch: int) -> torch.Tensor:
    """``policy``'s actions for a batch of ``batch`` observations, checked: the leading dimension
    is the batch and every value is finite (anything else is a server fault)."""
    actions = policy.act(obs)
    if not isinstance(actions, torch.Tensor) or actions.dim() == 0 or actions.shape[0] != batch:
        shape = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
        raise PolicyOutputError(f"policy {getattr(policy, 'name', policy)!r} returned actions {shape} for {batch}")
    if actions.is_floating_point() and not bool(torch.isfinite(actions).all()):
        raise PolicyOutputError(f"policy {getattr(policy, 'name', policy)!r} returned non-finite actions")
    return actions


def prefixed(err: StateError, field: str) -> StateError:
    """``err`` with every location under the request field ``field`` (``states``, ``networks``)."""
    return StateError([FieldProblem((field, *p.loc), p.kind, p.message, p.value) for p in err.problems])


def act(
    domain: DomainSpec,
    scenario_name: str,
    parameters: Mapping[str, Any],
    policy_name: str,
    raw_states: Sequence[Any],
    cache: PolicyCache,
    device: torch.device,
    field: str = "states",
) -> dict[str, Any]:
    """Serve one request (see the module docstring). Returns the JSON body of ``POST /act``:
    domain, setting, scenario name and resolved parameters, the policy that answered (label and
    version), the fingerprint of the resolved scenario and one action per state."""
    check_admissible(domain, policy_name)
    scenario = request_scenario(domain, scenario_name, parameters)
    setting = domain.setting_of(scenario)
    serving = setting.serving
    try:
        states = parse_states(serving.state_model, raw_states, serving.max_batch)
        context = prepared(setting, scenario, device)  # before any policy is built: it checks the scenario
        if serving.check is not None:
            serving.check(context, states)
        answerer = serving_policy(domain, policy_name, scenario, device, cache)
        obs = serving.observe(context, states, answerer.policy)
    except StateError as err:
        raise prefixed(err, field) from None
    actions = decide(answerer.policy, obs, len(states))
    telemetry.SERVED.labels(domain.name, answerer.label).inc()
    return {
        "domain": domain.name,
        "setting": setting.name,
        "scenario_name": scenario_name,
        "scenario": scenario.describe(),
        "policy": answerer.label,
        "policy_version": answerer.version,
        "scenario_hash": answerer.scenario_hash,
        "actions": serving.respond(context, actions, states),
    }


INLINE_MAX_STATES = 64  # larger batches are always served in a worker thread


async def serve_request(work: Callable[[], T], states: int) -> T:
    """Run ``work`` (a request's serving, e.g. a call of :func:`act`) on the event loop when every
    policy it needs is ready in memory and the batch is small (microseconds of work: no thread hop),
    else in a worker thread (builds, loads, big batches never hold the event loop, so ``/health``
    and other requests go on)."""
    if states <= INLINE_MAX_STATES:
        token = NONBLOCKING.set(True)
        try:
            return work()
        except WouldBlock:
            pass
        finally:
            NONBLOCKING.reset(token)
    return await run_in_threadpool(work)


def query_parameters(text: str) -> dict[str, Any]:
    """A ``parameters`` query value (a GET's scenario overrides): a JSON object, else a 422 naming it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise StateError([FieldProblem(("query", "parameters"), "json_object",
                                       f"must be a JSON object of scenario parameters: {err}", text)]) from None
    if not isinstance(value, dict):
        raise StateError([FieldProblem(("query", "parameters"), "json_object",
                                       "must be a JSON object of scenario parameters, e.g. {\"n_stores\": 3}", text)])
    return value


def schema(domain: DomainSpec, scenario_name: str, parameters: Mapping[str, Any], device: torch.device) -> dict:
    """What a client must send for ``scenario_name``: the setting, the resolved scenario, the JSON
    schemas of one state and one action, an example state and the setting's own description."""
    scenario = request_scenario(domain, scenario_name, parameters)
    setting = domain.setting_of(scenario)
    serving = setting.serving
    context = prepared(setting, scenario, device)
    return {
        "domain": domain.name,
        "setting": setting.name,
        "scenario_name": scenario_name,
        "scenario": scenario.describe(),
        "state_schema": serving.state_model.model_json_schema(),
        "action_schema": serving.action_model.model_json_schema(),
        "example_state": serving.example(context),
        "max_batch": serving.max_batch,
        "details": serving.describe(context) if serving.describe is not None else {},
        "policies": setting.available_policies(scenario),
    }


def policy_listing(domain: DomainSpec, registry: PolicyRegistry) -> dict[str, Any]:
    """``GET /v1/<domain>/policies``: baselines by name (with the settings they serve) and
    registered policies by reference."""
    baselines: dict[str, Any] = {}
    for entry in domain.policies.values():
        specs = [s.policies[entry.name] for s in entry.settings]
        extra: dict[str, Any] = {}
        for spec in specs:
            extra.update(spec.extra)
        baselines[entry.name] = {"description": entry.description, "admissible": entry.admissible,
                                 "settings": [s.name for s in entry.settings], **extra}
    return {"baselines": baselines, "registered": [record.summary() for record in registry.list(domain.name)]}


# --- FastAPI dependencies (the server puts its registry and device on ``app.state``) -----------


async def policies_of(request: Request) -> PolicyCache:
    """FastAPI dependency: the app's policy cache (``app.state.policies``), or one over the default
    registry when the app has none."""
    cache = getattr(request.app.state, "policies", None)
    if isinstance(cache, PolicyCache):
        return cache
    registry = getattr(request.app.state, "registry", None)
    cache = PolicyCache(registry if isinstance(registry, PolicyRegistry) else PolicyRegistry())
    request.app.state.policies = cache
    return cache


async def registry_of(request: Request) -> PolicyRegistry:
    """FastAPI dependency: the app's registry (``app.state.registry``) or the default one."""
    registry = getattr(request.app.state, "registry", None)
    return registry if isinstance(registry, PolicyRegistry) else PolicyRegistry()


async def device_of(request: Request) -> torch.device:
    """FastAPI dependency: the app's device (``app.state.device``) or :func:`get_device`'s choice."""
    device = getattr(request.app.state, "device", None)
    return device if isinstance(device, torch.device) else get_device()
