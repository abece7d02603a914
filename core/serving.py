"""The one serving path: request states -> observation -> policy -> actions -> response.

Each setting declares a :class:`~decisionlab.core.serving_spec.ServingSpec`: the pydantic model of one
request state, the model of one action and converters. The core does everything else, the same way
in every domain (:func:`act`): check admissibility by name, resolve the scenario (errors name
``parameters``), find its setting, validate the states once (errors name ``states[i].<field>``, or the
location the caller gives), check them, pick the policy (a cached baseline or a registered network;
fit checked), convert, act, check the actions and convert them back. ``POST /v1/{domain}/act`` calls
:func:`act`; a domain's named routes, whose request *is* one state (an :class:`Envelope` with the
state's fields), call :func:`act_one` with it: validated once by FastAPI, never turned into a dict
and back, never wrapped into a list of one and unwrapped, errors located at its own fields.

Actions stay what the policy returns: a tensor ``[B, ...]`` or a mapping of tensors, integer choices as
int64 (ids above 2^24 are exact). Converters raise :class:`~decisionlab.core.errors.StateError` with
locations relative to the list of states, e.g. ``(3, "pipeline")``.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeVar

import torch
from fastapi import Request
from pydantic import BaseModel, TypeAdapter, ValidationError

from decisionlab.core import telemetry
from decisionlab.core.device import get_device
from decisionlab.core.errors import DecisionlabError, FieldProblem, ScenarioError, StateError
from decisionlab.core.policy import Policy
from decisionlab.core.policy_cache import NONBLOCKING, Answerer, PolicyCache, WouldBlock, check_admissible
from decisionlab.core.scenario import Scenario, server_path_problems
from decisionlab.core.serving_spec import MAX_BATCH, Envelope, PolicyOutputError
from decisionlab.core.spec import DomainSpec, SettingSpec
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.core.workpool import work_pool

T = TypeVar("T")
MAX_PROBLEMS = 20  # validation problems reported per request


def request_scenario(domain: DomainSpec, preset: str, parameters: Mapping[str, Any]) -> Scenario:
    """The preset with the request's ``parameters``; errors are prefixed ``parameters:``. A parameter
    naming a file of the server (:func:`~decisionlab.core.scenario.server_path`) is refused: the API
    reads no files. Resolved scenarios are cached by their parameters' JSON (clients repeat the same few)."""
    try:
        if not parameters:
            return domain.scenario(preset)
        paths = server_path_problems(type(domain.setting_of_preset(preset).presets[preset]), parameters)
        if paths:
            raise ScenarioError(f"{paths[0]}: the API reads no files on the server; a scenario that replays "
                                "your own data is for the CLI and the dashboard (leave it unset or 'sample')")
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


def _tensors(actions: Any) -> list[torch.Tensor] | None:
    if isinstance(actions, torch.Tensor):
        return [actions]
    if isinstance(actions, Mapping) and actions and all(isinstance(v, torch.Tensor) for v in actions.values()):
        return list(actions.values())
    return None


@torch.no_grad()
def decide(policy: Policy, obs: Any, batch: int) -> Any:
    """``policy``'s actions for a batch of ``batch`` observations, checked: a tensor (or a mapping of
    tensors) whose leading dimension is the batch, every float finite (anything else is a server fault)."""
    actions = policy.act(obs)
    parts = _tensors(actions)
    name = getattr(policy, "name", policy)
    if parts is None or any(part.dim() == 0 or part.shape[0] != batch for part in parts):
        shape = [tuple(part.shape) for part in parts] if parts is not None else type(actions).__name__
        raise PolicyOutputError(f"policy {name!r} returned actions {shape} for {batch}")
    if any(part.is_floating_point() and not bool(torch.isfinite(part).all()) for part in parts):
        raise PolicyOutputError(f"policy {name!r} returned non-finite actions")
    return actions


def located(err: StateError, at: tuple[Any, ...] | None) -> StateError:
    """``err`` (locations relative to the list of states) with every location under ``at`` (``("states",)``,
    ``("networks",)``), or, for the one state of a named route (``at=None``), at that state's own fields."""
    if at is None:
        return StateError([FieldProblem(p.loc[1:] if p.loc[:1] == (0,) else p.loc, p.kind, p.message, p.value)
                           for p in err.problems])
    return StateError([FieldProblem((*at, *p.loc), p.kind, p.message, p.value) for p in err.problems])


def prefixed(err: StateError, field: str) -> StateError:
    """``err`` with every location under the request field ``field`` (``states``, ``networks``)."""
    return located(err, (field,))


def trained_range_problems(policy: Policy, states: Sequence[Any]) -> list[FieldProblem]:
    """States far outside the range a learned policy was trained on (its ``trained_ranges``: ``{state field:
    (low, high)}``): a value beyond half the range's width past either end is extrapolation, where a
    network's answer means nothing."""
    ranges = getattr(policy, "trained_ranges", None) or {}
    found = []
    for i, state in enumerate(states):
        for name, (low, high) in ranges.items():
            value = getattr(state, name, None)
            margin = 0.5 * (high - low)
            if isinstance(value, int | float) and not low - margin <= value <= high + margin:
                found.append(FieldProblem((i, name), "extrapolation",
                                          f"{value:g} is far outside the range this policy was trained on "
                                          f"[{low:g}, {high:g}]; send allow_extrapolation=true to answer anyway"))
                if len(found) >= MAX_PROBLEMS:
                    return found
    return found


def _serve(domain: DomainSpec, scenario_name: str, parameters: Mapping[str, Any], policy_name: str,
           raw_states: Sequence[Any], cache: PolicyCache, device: torch.device,
           at: tuple[Any, ...] | None, allow_extrapolation: bool = False,
           ) -> tuple[SettingSpec, Scenario, Answerer, Any, list[Any]]:
    """The serving path up to the response: ``(setting, scenario, answerer, context, actions)``."""
    check_admissible(domain, policy_name)
    scenario = request_scenario(domain, scenario_name, parameters)
    setting = domain.setting_of(scenario)
    serving = setting.serving
    try:
        states = parse_states(serving.state_model, raw_states, serving.max_batch)
        context = prepared(setting, scenario, device)  # before any policy is built: it checks the scenario
        if serving.check is not None:
            serving.check(context, states)
        answerer = cache.answerer(domain, policy_name, scenario, device, admissible_checked=True)
        if not allow_extrapolation:
            outside = trained_range_problems(answerer.policy, states)
            if outside:
                raise StateError(outside)
        if serving.decide is not None:  # several decisions per state, taken in turn
            actions = serving.decide(context, states, answerer.policy)
        else:
            actions = decide(answerer.policy, serving.observe(context, states, answerer.policy), len(states))
    except StateError as err:
        raise located(err, at) from None
    try:
        answers = serving.respond(context, actions, states)  # may refuse answers that make no sense
    except StateError as err:
        raise located(err, at) from None
    telemetry.SERVED.labels(domain.name, answerer.label).inc()
    return setting, scenario, answerer, context, answers


def act(
    domain: DomainSpec,
    scenario_name: str,
    parameters: Mapping[str, Any],
    policy_name: str,
    raw_states: Sequence[Any],
    cache: PolicyCache,
    device: torch.device,
    field: str = "states",
    allow_extrapolation: bool = False,
) -> dict[str, Any]:
    """Serve a batch of states (see the module docstring; ``raw_states``: dicts or instances of the
    setting's state model). Returns the JSON body of ``POST /act``: domain, setting, scenario name and
    resolved parameters, the policy that answered (label and version), the fingerprint of the resolved
    scenario and one action per state."""
    setting, scenario, answerer, _, actions = _serve(domain, scenario_name, parameters, policy_name, raw_states,
                                                     cache, device, (field,), allow_extrapolation)
    return {
        "domain": domain.name,
        "setting": setting.name,
        "scenario_name": scenario_name,
        "scenario": scenario.describe(),
        **answerer.fields(scenario),
        "actions": actions,
    }


def act_one(domain: DomainSpec, request: Envelope, state: BaseModel, cache: PolicyCache,
            device: torch.device) -> tuple[dict[str, Any], dict[str, Any]]:
    """Serve one state of a named route: ``(answered fields, the action)``. ``request`` is the route's
    envelope and ``state`` its state (often the request itself: its fields are the state's); problems are
    located at the state's own fields."""
    _, scenario, answerer, _, actions = _serve(domain, request.scenario, request.parameters, request.policy,
                                               [state], cache, device, None, request.allow_extrapolation)
    return answerer.fields(scenario), actions[0]


async def serve_request(work: Callable[[], T], cost: float) -> T:
    """Run ``work`` (a request's serving, e.g. a call of :func:`act`) of ``cost`` units
    (:func:`request_cost`) on the event loop when every policy it needs is ready in memory and the cost
    is small (microseconds of work: no thread hop), else in the process's bounded serving pool (builds,
    loads and big requests never hold the event loop, so ``/health`` and other requests go on; a full
    pool answers 503 at once, a request over the cost limit 413: :mod:`decisionlab.core.workpool`)."""
    pool = work_pool()
    pool.check_cost(cost)
    if cost <= pool.inline_cost:
        token = NONBLOCKING.set(True)
        try:
            return work()
        except WouldBlock:
            pass
        finally:
            NONBLOCKING.reset(token)
    return await pool.run(work)


def request_cost(domain: DomainSpec, scenario_name: str, parameters: Mapping[str, Any], states: Sequence[Any]) -> float:
    """The work of serving ``states`` (raw or validated) in a scenario: its setting's ``ServingSpec.cost``
    (the number of states when the scenario cannot be resolved: the request then fails fast anyway)."""
    try:
        setting = domain.setting_of(request_scenario(domain, scenario_name, parameters))
    except DecisionlabError:
        return float(len(states))
    return setting.serving.request_cost(states)


def query_parameters(text: str) -> dict[str, Any]:
    """A ``parameters`` query value (a GET's scenario overrides): a JSON object, else a 422 naming it."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        reason = err if isinstance(err, json.JSONDecodeError) else "nested too deeply"
        raise StateError([FieldProblem(("query", "parameters"), "json_object",
                                       f"must be a JSON object of scenario parameters: {reason}", text)]) from None
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
