"""A training outcome of several named policies (a planner and its workers, trained together by PPO) is
registered as one version, and each member is servable on its own (``name@version:member``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from pydantic import BaseModel, Field

from decisionlab.core import (
    ActorCriticPolicy,
    AgentGroup,
    AlgoSpec,
    Box,
    Discrete,
    DomainSpec,
    JointPolicy,
    MetricSpec,
    PolicyCache,
    PolicyMismatchError,
    PolicyRegistry,
    PPOConfig,
    Scenario,
    ServingSpec,
    SettingSpec,
    Spaces,
    StepResult,
    TrainOutcome,
    UnknownNameError,
    build_policy,
    register_domain,
    train_ppo,
    unregister_domain,
)
from decisionlab.core.training import train_and_register

WAGES = torch.tensor([0.5, 1.5, 2.5])


class WageScenario(Scenario):
    workers: int = Field(4, ge=1, le=16)


class WageSim:
    """The planner sets next step's wage (index of WAGES); workers, seeing it, choose effort 0..2 at cost
    0.6·e²; a worker earns w·e − 0.6·e², the planner (3 − w)·Σe (as in tests/core/test_ppo.py)."""

    differentiable = False
    horizon = 6

    def __init__(self, scenario: WageScenario, device: Any = "cpu") -> None:
        self.device, self.n = torch.device(device), scenario.workers
        self.spaces = Spaces(agents={"workers": AgentGroup(self.n, Box((3,)), Discrete(3), Box((3,))),
                                     "planner": AgentGroup(1, Box((3,)), Discrete(3), Box((3,)))})

    def sample_exogenous(self, batch: int, periods: int, generator: Any = None) -> torch.Tensor:
        return torch.zeros(batch, periods)

    def reset(self, batch: int, generator: Any = None) -> torch.Tensor:
        return torch.randint(3, (batch,), generator=generator)

    def observe(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        wage = torch.nn.functional.one_hot(state, 3).float()
        return {"workers": wage[:, None].expand(-1, self.n, -1), "planner": wage[:, None]}

    def flat_observation(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return obs

    def step(self, state: torch.Tensor, action: dict[str, torch.Tensor], _: torch.Tensor) -> StepResult:
        wage, effort = WAGES[state], action["workers"].float()
        return StepResult(action["planner"][:, 0], {
            "workers": wage[:, None] * effort - 0.6 * effort.square(),
            "planner": ((3.0 - wage) * effort.sum(1))[:, None]}, {"output": effort.sum(1)})


class Member(ActorCriticPolicy):
    """A member kind: an actor-critic bound to the scenario's simulator for its group."""

    group_name: ClassVar[str] = ""

    def config(self) -> dict[str, Any]:
        return {**super().config(), "kind": self.kind}

    @classmethod
    def initial(cls, scenario: WageScenario, device: Any) -> Member:
        sim = WageSim(scenario, device)
        return cls(PPOConfig(hidden=(16,)).build_network(sim.spaces.agents[cls.group_name]), sim, cls.group_name)

    def for_scenario(self, scenario: WageScenario) -> Member:
        return self.bind(WageSim(scenario, "cpu"))


class Workers(Member):
    kind: ClassVar[str] = "wage_workers"
    group_name: ClassVar[str] = "workers"


class Planner(Member):
    kind: ClassVar[str] = "wage_planner"
    group_name: ClassVar[str] = "planner"


class WagePair(JointPolicy):
    kind: ClassVar[str] = "wage_pair"

    @classmethod
    def initial(cls, scenario: WageScenario, device: Any) -> WagePair:
        return cls({"planner": Planner.initial(scenario, device), "workers": Workers.initial(scenario, device)})


class NoState(BaseModel):
    wage: int = Field(0, ge=0, le=2)


def train_pair(scenario: WageScenario, options: BaseModel, ctx: Any) -> TrainOutcome:
    ctx.seed_init()
    pair = WagePair.initial(scenario, ctx.device)
    sim = WageSim(scenario, ctx.device)
    config = PPOConfig(num_envs=256, rollout_steps=6, total_env_steps=256 * 6 * 40, gamma=0.5, learning_rate=1e-2,
                       ent_coef=0.01)
    train_ppo(sim, {name: member.net for name, member in pair.members.items()}, config,
              generator=ctx.generator("train"), progress=False)
    return TrainOutcome(pair, pair.config(), {})


def output(scenario: WageScenario, policy: Any, episodes: int, seed: int, device: Any, start: int = 0) -> dict:
    return {"output": np.zeros(episodes)}


SETTING = SettingSpec(
    name="wages", title="Wages", description="a planner and its workers", scenario_model=WageScenario,
    presets={"wages": WageScenario()}, make_simulator=WageSim, episode_metrics=output,
    metrics={"output": MetricSpec("output", "effort", "higher")}, primary_metric="output", policies={},
    algos={"two_level": AlgoSpec("two_level", "PPO of both groups together", train_pair)},
    policy_kinds={"wage_pair": WagePair, "wage_planner": Planner, "wage_workers": Workers},
    serving=ServingSpec(NoState, NoState, lambda s, d: WageSim(s, d), lambda c, states, p: None,
                        lambda c, actions, states: [], lambda c: {}),
)
SPEC = DomainSpec(name="wages", title="Wages", description="test", settings=(SETTING,), default_scenario="wages")


@pytest.fixture
def domain() -> Iterator[DomainSpec]:
    register_domain(SPEC)
    yield SPEC
    unregister_domain(SPEC.name)


def test_a_joint_outcome_is_one_version_whose_members_serve_alone(domain: DomainSpec, home: Path) -> None:
    registry = PolicyRegistry(home)
    report = train_and_register(domain, "wages", {}, "two_level", seed=0, name="pair", device=torch.device("cpu"),
                                progress=False, registry=registry)
    assert str(report.record.ref) == "wages/pair@1" and report.record.card["policy_kind"] == "wage_pair"
    assert set(report.record.card["policy_config"]["members"]) == {"planner", "workers"}
    scenario = domain.scenario("wages")
    sim = WageSim(scenario)
    obs = sim.observe(torch.arange(3))
    label, planner = build_policy(domain, scenario, "pair@1:planner", torch.device("cpu"), registry)
    assert label == "wages/pair@1:planner" and set(planner.act(obs)) == {"planner"}
    assert planner.act(obs)["planner"].flatten().tolist() == [1, 1, 1]  # the wage the workers answer best
    _, workers = build_policy(domain, scenario, "pair:workers", torch.device("cpu"), registry)
    assert workers.act(obs)["workers"].tolist() == [[0] * 4, [1] * 4, [2] * 4]  # best responses
    _, both = build_policy(domain, scenario, "pair", torch.device("cpu"), registry)
    assert set(both.act(obs)) == {"planner", "workers"}
    cache = PolicyCache(registry)
    answer = cache.answerer(domain, "pair@1:planner", scenario, torch.device("cpu"))
    assert answer.label == "wages/pair@1:planner" and answer.version == 1
    with pytest.raises(UnknownNameError, match="managers"):
        build_policy(domain, scenario, "pair:managers", torch.device("cpu"), registry)


def test_a_member_of_a_kind_the_setting_does_not_serve_is_refused(domain: DomainSpec, home: Path) -> None:
    registry = PolicyRegistry(home)
    train_and_register(domain, "wages", {}, "two_level", seed=0, name="pair", device=torch.device("cpu"),
                       progress=False, registry=registry)
    narrow = SETTING.__class__(**{**SETTING.__dict__, "policy_kinds": {"wage_pair": WagePair}})
    other = DomainSpec(name="wages", title="Wages", description="test", settings=(narrow,), default_scenario="wages")
    with pytest.raises(PolicyMismatchError, match="wage_planner"):
        build_policy(other, other.scenario("wages"), "pair:planner", torch.device("cpu"), registry)
