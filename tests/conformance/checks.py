"""The checks of the domain contract, one function each, for any registered domain and setting.

Each raises ``AssertionError`` naming what is wrong; ``test_conformance.py`` runs them over every
registered domain and setting (and the worked example), ``test_broken_fixture.py`` shows that they
fail on a deliberately broken domain. A new domain is checked the day it registers, with no edit
here: everything comes from its ``SettingSpec`` (presets, ``quick`` and ``smoke`` overrides,
baselines and their ``check``, algorithms and their ``smoke_options``, policy kinds, serving).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from fastapi.testclient import TestClient
from gymnasium.utils.env_checker import check_env
from typer.testing import CliRunner

from decisionlab.apps.cli import app as cli_app
from decisionlab.core import ui
from decisionlab.core.engine import Step, run
from decisionlab.core.evaluation import evaluate_policies
from decisionlab.core.gym import SimulatorEnv
from decisionlab.core.policy import policy_class
from decisionlab.core.resolve import build_policy
from decisionlab.core.scenario import Scenario, parse_overrides
from decisionlab.core.serving import act, schema
from decisionlab.core.serving_spec import ID_MARK
from decisionlab.core.sim import action_mask
from decisionlab.core.spaces import RandomPolicy, action_problems
from decisionlab.core.spec import DomainSpec, SettingSpec
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.core.training import train_and_register

CPU = torch.device("cpu")
EPISODES = 4
ACTION_ROWS, ACTION_STEPS = 64, 64  # every baseline and a random masked policy: 4,096 decisions each
ADAPTER_STEPS = 6
BIG_ID = 2**24 + 1  # the first integer float32 cannot hold


# --- scenarios ------------------------------------------------------------------------------------


def small(setting: SettingSpec, preset: str) -> dict[str, Any]:
    """The ``quick`` and ``smoke`` overrides of ``setting`` that ``preset``'s model has."""
    fields = type(setting.presets[preset]).model_fields
    return {k: v for k, v in {**setting.quick, **setting.smoke}.items() if k in fields}


def small_scenario(domain: DomainSpec, setting: SettingSpec, preset: str) -> Scenario:
    return domain.scenario(preset, small(setting, preset))


def cli_text(value: Any) -> str:
    """A parameter value as ``--set key=<text>`` takes it."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    return json.dumps(value)


def set_flags(overrides: dict[str, Any]) -> list[str]:
    return [part for key, value in overrides.items() for part in ("--set", f"{key}={cli_text(value)}")]


def check_presets_round_trip(domain: DomainSpec, setting: SettingSpec) -> None:
    """Every preset validates as its model, and every one of its values survives ``--set key=value``."""
    for name, preset in setting.presets.items():
        assert type(preset).model_validate(preset.model_dump()) == preset, f"{name}: does not validate as its model"
        overrides = parse_overrides([f"{k}={cli_text(v)}" for k, v in preset.model_dump().items()])
        assert domain.scenario(name, overrides) == preset, f"{name}: --set key=value round trip changed it"
        assert domain.setting_of(preset) is setting, f"{name}: the core finds another setting for it"


# --- baselines ------------------------------------------------------------------------------------


def baseline_cases(domain: DomainSpec, setting: SettingSpec) -> Iterator[tuple[str, str]]:
    """``(preset, baseline)`` for every baseline: the first preset it can serve."""
    for name, spec in setting.policies.items():
        for preset in setting.presets:
            if spec.problem(small_scenario(domain, setting, preset)) is None:
                yield preset, name
                break
        else:
            raise AssertionError(f"baseline {name!r} serves none of the presets of {setting.name!r}")


def by_preset(domain: DomainSpec, setting: SettingSpec, admissible: bool = True) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for preset, name in baseline_cases(domain, setting):
        if setting.policies[name].admissible == admissible:
            groups.setdefault(preset, []).append(name)
    return groups


def check_same_seed_same_metrics(domain: DomainSpec, setting: SettingSpec) -> None:
    """The same seed gives the same per-episode metrics; a policy compared with itself differs by exactly 0."""
    for preset, name in baseline_cases(domain, setting):
        scenario = small_scenario(domain, setting, preset)
        policy = domain.policy(name).build(scenario, CPU)
        first = evaluate_policies(domain, scenario, [("a", policy), ("b", policy)], episodes=EPISODES, seed=7,
                                  device=CPU)
        again = evaluate_policies(domain, scenario, [("a", policy)], episodes=EPISODES, seed=7, device=CPU)
        seeded = [metric for metric, spec in setting.metrics.items() if not spec.measured]  # not wall times
        for metric in seeded:
            a, b = first.per_episode["a"][metric], again.per_episode["a"][metric]
            assert np.array_equal(a, b, equal_nan=True), f"{name} on {preset}: {metric} differs for the same seed"
        table = first.table()
        table = table.filter(table["metric"].is_in(seeded))
        diffs = table.filter(table["policy"] == "b")["diff_vs_first"].to_list()
        assert all(d == 0.0 for d in diffs), f"{name} on {preset}: compared with itself, differences {diffs}"


def check_baselines_through_the_cli(domain: DomainSpec, setting: SettingSpec) -> None:
    """``decisionlab evaluate --json`` runs every admissible baseline and prints one JSON object."""
    runner = CliRunner()
    for preset, names in by_preset(domain, setting).items():
        args = ["evaluate", domain.name, "--scenario", preset, *set_flags(small(setting, preset)),
                *(part for name in names for part in ("--policy", name)), "--episodes", str(EPISODES), "--json"]
        result = runner.invoke(cli_app, args)
        assert result.exit_code == 0, f"{' '.join(args)}: exit {result.exit_code}: {result.stderr}"
        body = json.loads(result.stdout)
        assert [r["policy"] for r in body["results"]] == names
        for entry in body["results"]:
            value = entry["metrics"][setting.primary_metric]
            assert math.isfinite(value), f"{entry['policy']}: {setting.primary_metric} = {value}"


def check_baselines_through_the_api(domain: DomainSpec, setting: SettingSpec, client: TestClient) -> None:
    """``POST /v1/<domain>/act`` serves every admissible baseline the example state of ``GET /schema``
    (and refuses a non-admissible one with a 422 naming ``policy``)."""
    for preset, name in baseline_cases(domain, setting):
        parameters = small(setting, preset)
        described = client.get(f"{domain.url_path}/schema",
                               params={"scenario": preset, "parameters": json.dumps(parameters, default=str)})
        assert described.status_code == 200, described.text
        state = described.json()["example_state"]
        response = client.post(f"{domain.url_path}/act", content=json.dumps({
            "scenario": preset, "parameters": parameters, "policy": name, "states": [state, state]}, default=str),
            headers={"content-type": "application/json"})
        if not setting.policies[name].admissible:
            assert response.status_code == 422 and "policy" in response.text, response.text
            continue
        assert response.status_code == 200, f"{name} on {preset}: {response.text}"
        body = response.json()
        assert body["policy"] == name and body["setting"] == setting.name and len(body["actions"]) == 2
        assert body["actions"][0] == body["actions"][1], f"{name}: the same state got different actions"
        setting.serving.action_model.model_validate(body["actions"][0])


def check_baselines_in_the_dashboard(domain: DomainSpec, setting: SettingSpec, page: Any) -> None:
    """The generated page runs every baseline (admissible or not) on its preset: no exception, no
    error, a results row each."""
    for admissible in (True, False):
        for preset, names in by_preset(domain, setting, admissible).items():
            at = page(domain.name).run()
            at.selectbox(key=f"{domain.name}_preset").set_value(preset).run()
            model = type(setting.presets[preset])
            for field, value in small(setting, preset).items():
                kind = ui.field_input(field, model.model_fields[field]).kind
                assert kind in ("int", "float"), f"{field}: smoke overrides must be numbers to set them in the page"
                at.number_input(key=f"{domain.name}_{field}").set_value(value)
            at.number_input(key=f"{domain.name}_episodes").set_value(EPISODES)
            at.multiselect(key=f"{domain.name}_policies").set_value(names)
            at.button(key=f"{domain.name}_run").click().run(timeout=180)
            assert not at.exception, f"{preset}: {at.exception}"
            assert not at.error, f"{preset}: {[e.value for e in at.error]}"
            assert list(at.dataframe[0].value["policy"]) == names


# --- simulators -----------------------------------------------------------------------------------


class ActionInspector:
    """A hook of the engine: the first problems of any step's action with the declared spaces and masks."""

    def __init__(self, sim: Any) -> None:
        self.sim, self.problems = sim, []

    def __call__(self, step: Step) -> None:
        if not self.problems:
            self.problems = action_problems(self.sim.spaces, step.action, action_mask(self.sim, step.obs))


def check_actions_inside_the_spaces(domain: DomainSpec, setting: SettingSpec) -> None:
    """Over thousands of decisions, every admissible baseline's actions and a random masked policy's lie
    inside the simulator's declared action space and never take a masked choice."""
    cases = [(preset, names) for preset, names in by_preset(domain, setting).items()]
    first = next(iter(setting.presets))
    for preset, names in [*cases, (first, ["random (masked)"])]:
        scenario = small_scenario(domain, setting, preset)
        sim = setting.make_simulator(scenario, CPU)
        steps = min(ACTION_STEPS, getattr(sim, "horizon", None) or ACTION_STEPS)
        for name in names:
            generator = torch.Generator().manual_seed(3)
            policy = RandomPolicy(sim, generator) if name.startswith("random (") else \
                domain.policy(name).build(scenario, CPU)
            inspector = ActionInspector(sim)
            run(sim, policy, batch=ACTION_ROWS, generator=generator, steps=steps, hooks=[inspector], until_done=False)
            assert not inspector.problems, f"{name} on {preset}: {inspector.problems[0]}"


class Recorder:
    """A simulator that remembers its last step's ``terminated`` and ``truncated`` (to check the adapters)."""

    def __init__(self, sim: Any) -> None:
        self.sim, self.ended = sim, (None, None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    def step(self, state: Any, action: Any, exogenous: torch.Tensor) -> Any:
        result = self.sim.step(state, action, exogenous)
        self.ended = (result.terminated, result.truncated)
        return result


def legal_action(env: Any, rng: np.random.Generator) -> Any:
    """A random action of a gymnasium env that respects its ``action_masks``."""
    space = env.action_space
    if hasattr(space, "nvec"):
        masks, at, out = env.action_masks(), 0, []
        for n in space.nvec.tolist():
            legal = np.flatnonzero(masks[at:at + n])
            out.append(rng.choice(legal))
            at += n
        return np.asarray(out, dtype=np.int64) + space.start
    if hasattr(space, "n"):
        return int(rng.choice(np.flatnonzero(env.action_masks()))) + int(space.start)
    return space.sample()


def check_adapters(domain: DomainSpec, setting: SettingSpec) -> None:
    """Every preset passes gymnasium's and SB3's ``check_env`` through ``make_env``, settings with agent groups
    PettingZoo's ``parallel_api_test`` through ``make_parallel_env``; along random legal episodes the
    adapter reports the simulator's ``terminated`` as a termination and cuts the rest at the horizon."""
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for preset in setting.presets:
        sim = setting.make_simulator(small_scenario(domain, setting, preset), CPU)
        check_env(SimulatorEnv(sim, ADAPTER_STEPS), skip_render_check=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SB3's advice (normalise, symmetric boxes) is not a failure
            sb3_check_env(SimulatorEnv(sim, ADAPTER_STEPS), warn=False)
        if sim.spaces.multi_agent:
            from pettingzoo.test import parallel_api_test

            from decisionlab.core.parallel_env import SimulatorParallelEnv

            parallel_api_test(SimulatorParallelEnv(sim, ADAPTER_STEPS), num_cycles=2 * ADAPTER_STEPS)
        recorder = Recorder(sim)
        env, rng = SimulatorEnv(recorder, ADAPTER_STEPS), np.random.default_rng(0)
        for episode in range(3):
            env.reset(seed=episode)
            for t in range(1, ADAPTER_STEPS + 1):
                _, _, terminated, truncated, _ = env.step(legal_action(env, rng))
                ended, cut = recorder.ended
                assert terminated == bool(ended is not None and ended[0]), f"{preset}: step {t} terminated"
                own = bool(cut is not None and cut[0])
                assert truncated == ((t == ADAPTER_STEPS or own) and not terminated), f"{preset}: step {t} truncated"
                if terminated or truncated:
                    break


# --- serving --------------------------------------------------------------------------------------


def numeric_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], float]]:
    """``(path, number)`` of every number in a JSON value (not booleans)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from numeric_leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from numeric_leaves(item, (*path, i))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path, value


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


def field_name(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return "states[0]" + text


def id_paths(schema: dict[str, Any], example: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths in ``example`` of the fields the state schema marks as client ids (:data:`EntityId`)."""
    defs = schema.get("$defs", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = defs[node["$ref"].split("/")[-1]]
        for option in node.get("anyOf", []):
            if "$ref" in option or "properties" in option or "items" in option:
                return resolve(option)
        return node

    node = resolve(schema)
    if node.get(ID_MARK):
        yield path
    elif isinstance(example, dict):
        for key, value in example.items():
            if key in node.get("properties", {}):
                yield from id_paths({**node["properties"][key], "$defs": defs}, value, (*path, key))
    elif isinstance(example, list) and "items" in node:
        for i, value in enumerate(example):
            yield from id_paths({**node["items"], "$defs": defs}, value, (*path, i))


def renamed(value: Any, names: dict[int, int]) -> Any:
    """``value`` with every integer in ``names`` replaced (booleans left alone)."""
    if isinstance(value, dict):
        return {k: renamed(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [renamed(v, names) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(value, value)
    return value


def check_ids_round_trip(domain: DomainSpec, setting: SettingSpec, client: TestClient, cache: Any) -> None:
    """Client ids above 2^24 (where float32 rounds) come back exactly, through ``act`` and the HTTP route:
    the answer to the example state with its ids renamed is the answer to the example, renamed."""
    preset = next(iter(setting.presets))
    parameters = small(setting, preset)
    example = schema(domain, preset, parameters, CPU)["example_state"]
    paths = list(id_paths(setting.serving.state_model.model_json_schema(), example))
    if not paths:
        return  # the setting's states carry no ids
    originals = sorted({functools.reduce(lambda node, key: node[key], path, example) for path in paths})
    names = {old: BIG_ID + 7 * k for k, old in enumerate(originals)}
    big = renamed(example, names)
    policy = next(name for name, spec in setting.policies.items() if spec.admissible
                  and spec.problem(small_scenario(domain, setting, preset)) is None)
    want = act(domain, preset, parameters, policy, [example], cache, CPU)["actions"]
    got = act(domain, preset, parameters, policy, [big], cache, CPU)["actions"]
    assert got == renamed(want, names), f"ids through act: {got} != {renamed(want, names)}"
    assert any(v in json.dumps(got) for v in map(str, names.values())), f"{setting.name}: no id in the answer {got}"
    response = client.post(f"{domain.url_path}/act", content=json.dumps(
        {"scenario": preset, "parameters": parameters, "policy": policy, "states": [big]}, default=str),
        headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["actions"] == got, f"ids through HTTP: {response.json()['actions']} != {got}"


def check_states_reject_bad_values(domain: DomainSpec, setting: SettingSpec, client: TestClient) -> None:
    """NaN, infinities, strings and booleans where a state has numbers, and one state too many, are a
    422 naming the field."""
    preset = next(iter(setting.presets))
    parameters = small(setting, preset)
    example = schema(domain, preset, parameters, CPU)["example_state"]
    policy = next(name for name, spec in setting.policies.items() if spec.admissible
                  and spec.problem(small_scenario(domain, setting, preset)) is None)
    leaves = list(numeric_leaves(example))
    assert leaves, f"{setting.name}: the example state has no number to check"
    for path, _ in leaves[:3]:
        for bad in ("NaN", "Infinity", "-Infinity", '"12"', "true"):
            marker = "__BAD__"
            state = replaced(example, path, marker)
            body = json.dumps({"scenario": preset, "parameters": parameters, "policy": policy, "states": [state]},
                              default=str).replace(f'"{marker}"', bad)
            response = client.post(f"{domain.url_path}/act", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 422, f"{field_name(path)} = {bad}: {response.status_code} {response.text}"
            assert field_name(path) in response.text, f"{field_name(path)} = {bad}: not named in {response.text}"
    too_many = [example] * (setting.serving.max_batch + 1)
    response = client.post(f"{domain.url_path}/act", content=json.dumps(
        {"scenario": preset, "parameters": parameters, "policy": policy, "states": too_many}, default=str),
        headers={"content-type": "application/json"})
    assert response.status_code == 422 and "states" in response.text, response.text[:300]


# --- learned policies -----------------------------------------------------------------------------


def tensors(actions: Any) -> list[torch.Tensor]:
    """The tensors of an action batch (a tensor, or a mapping of them)."""
    return list(actions.values()) if isinstance(actions, dict) else [actions]


def same_actions(a: Any, b: Any) -> bool:
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() \
            and all(torch.equal(a[k], b[k]) for k in a)
    return torch.equal(a, b)


def perturbed(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every floating weight moved off its initial value (seeded)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in module.parameters():
            tensor.add_(0.05 * torch.randn(tensor.shape, generator=generator))
    return module


def observations(setting: SettingSpec, scenario: Scenario, policy: Any, steps: int = 3) -> list[Any]:
    """A few observations of a short rollout of ``policy`` from ``reset``."""
    sim = setting.make_simulator(scenario, CPU)
    generator = torch.Generator().manual_seed(1)
    state = sim.reset(8, generator)
    noise = sim.sample_exogenous(8, steps, generator)
    seen = []
    with torch.no_grad():
        for t in range(steps):
            obs = sim.observe(state)
            seen.append(obs)
            state = sim.step(state, policy.act(obs), noise[:, t]).state
    return seen


def check_policy_kinds_round_trip(domain: DomainSpec, setting: SettingSpec, registry: PolicyRegistry) -> None:
    """Every learned-policy kind survives a registry save/load round trip and gives the same actions."""
    preset = next(iter(setting.presets))
    scenario = small_scenario(domain, setting, preset)
    for kind in setting.policy_kinds:
        cls = policy_class(kind)
        net = perturbed(cls.initial(scenario, CPU)).eval()
        config = json.loads(json.dumps(net.config()))
        assert config["kind"] == kind, f"{cls.__name__}.config() names kind {config['kind']!r}, not {kind!r}"
        card = {"setting": setting.name, "scenario_name": preset, "scenario": scenario.describe(),
                "policy_kind": kind, "policy_config": config, "metrics": {}}
        record = registry.save(domain.name, f"conformance_{kind}", net.state_dict(), card)
        label, loaded = build_policy(domain, scenario, str(record.ref), CPU, registry)
        original = net.for_scenario(scenario)
        for obs in observations(setting, scenario, original):
            with torch.no_grad():
                assert same_actions(loaded.act(obs), original.act(obs)), f"{kind}: actions differ after the round trip"


def check_algorithms_train_and_register(domain: DomainSpec, setting: SettingSpec, registry: PolicyRegistry) -> None:
    """Every algorithm trains with its ``smoke_options`` into a policy of a declared kind that loads."""
    preset = next(iter(setting.presets))
    for name, algo in setting.algos.items():
        report = train_and_register(domain, preset, small(setting, preset), name, seed=0,
                                    name=f"smoke_{setting.name}_{name}", device=CPU, progress=False,
                                    options=dict(algo.smoke_options), registry=registry)
        assert report.record.card["policy_kind"] in setting.policy_kinds
        scenario = small_scenario(domain, setting, preset)
        _, policy = build_policy(domain, scenario, str(report.record.ref), CPU, registry)
        for obs in observations(setting, scenario, policy, steps=1):
            with torch.no_grad():
                actions = policy.act(obs)
            assert all(torch.isfinite(part.float()).all() for part in tensors(actions)), f"{name}: non-finite actions"
