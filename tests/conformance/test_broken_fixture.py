"""The conformance checks fail on deliberately broken copies of the worked examples: they can fail,
so their passing on the real domains means something."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import checks
import courier_domain
import newsvendor_domain
import pytest
import torch
from courier_domain import serve as courier_serve
from fastapi.testclient import TestClient
from newsvendor_domain.policies import ForecastScaler
from newsvendor_domain.sim import NewsvendorSim
from pydantic import BaseModel, ConfigDict

from decisionlab.apps.api import create_app
from decisionlab.core.policy_cache import PolicyCache
from decisionlab.core.spaces import Box, Spaces
from decisionlab.core.spec import DomainSpec, PolicySpec, SettingSpec, register_domain, unregister_domain
from decisionlab.core.store.registry import PolicyRegistry

BROKEN = "newsvendor_broken"


class IgnoresTheSeed:
    """A baseline that draws its own noise from torch's global generator instead of the seed's paths."""

    name = "noisy"

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return obs * (1.0 + 0.2 * torch.rand(obs.shape))


class LaxState(BaseModel):
    """The example's state without its number constraints: NaN, infinities, "12" and true get through."""

    model_config = ConfigDict(extra="forbid")

    forecast: list[Any]


class ForgetfulScaler(ForecastScaler):
    """A learned kind whose weights are not what it acts with after a reload (from_config re-initialises
    a buffer it does not save)."""

    kind = "newsvendor_forgetful"

    def __init__(self, n_products: int) -> None:
        super().__init__(n_products)
        self.register_buffer("shift", torch.rand(self.n_products), persistent=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return super().forward(obs) + self.shift


def broken(**changes: Any) -> DomainSpec:
    setting = dataclasses.replace(newsvendor_domain.SETTING, **changes)
    return dataclasses.replace(newsvendor_domain.SPEC, name=BROKEN, settings=(setting,))


@pytest.fixture
def register() -> Iterator[Any]:
    def add(spec: DomainSpec) -> tuple[DomainSpec, SettingSpec]:
        register_domain(spec)
        return spec, spec.settings[0]

    yield add
    unregister_domain(BROKEN)


def test_the_example_itself_passes(home: Path) -> None:
    spec, setting = newsvendor_domain.SPEC, newsvendor_domain.SETTING
    checks.check_same_seed_same_metrics(spec, setting)
    checks.check_policy_kinds_round_trip(spec, setting, PolicyRegistry(home))


def test_a_baseline_that_ignores_the_seed_fails(register) -> None:
    policies = {"noisy": PolicySpec("noisy", "ignores the seed", lambda s, d: IgnoresTheSeed())}
    domain, setting = register(broken(policies=policies, default_policies=()))
    with pytest.raises(AssertionError, match="differs for the same seed|compared with itself"):
        checks.check_same_seed_same_metrics(domain, setting)


def test_a_state_model_that_lets_nan_through_fails(register, home: Path) -> None:
    serving = dataclasses.replace(newsvendor_domain.SETTING.serving, state_model=LaxState)
    domain, setting = register(broken(serving=serving))
    with pytest.raises(AssertionError, match="NaN|Infinity|12|true"):
        checks.check_states_reject_bad_values(domain, setting, TestClient(create_app(), raise_server_exceptions=False))


def test_a_policy_kind_that_does_not_round_trip_fails(register, home: Path) -> None:
    kinds = {"newsvendor_forgetful": ForgetfulScaler}
    domain, setting = register(broken(policy_kinds=kinds))
    with pytest.raises(AssertionError, match="actions differ"):
        checks.check_policy_kinds_round_trip(domain, setting, PolicyRegistry(home))


# --- the checks of contract v3 ----------------------------------------------------------------------------


class NegativeOrders:
    """Orders below the declared action space (orders are >= 0)."""

    name = "negative"

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return -obs


def test_actions_outside_the_declared_space_fail(register) -> None:
    policies = {"negative": PolicySpec("negative", "orders below zero", lambda s, d: NegativeOrders())}
    domain, setting = register(broken(policies=policies, default_policies=()))
    with pytest.raises(AssertionError, match="outside"):
        checks.check_actions_inside_the_spaces(domain, setting)


class IgnoresTheMask:
    """Every courier always goes for parcel 1 (even on the road, even once it is collected)."""

    name = "stubborn"

    def act(self, obs: dict) -> dict[str, torch.Tensor]:
        legal = obs["couriers"]["legal"]
        return {"couriers": torch.ones(legal.shape[:2], dtype=torch.long)}


def couriers_broken(**changes: Any) -> DomainSpec:
    setting = dataclasses.replace(courier_domain.SETTING, **changes)
    return dataclasses.replace(courier_domain.SPEC, name=BROKEN, settings=(setting,))


def test_a_policy_taking_masked_choices_fails(register) -> None:
    policies = {"stubborn": PolicySpec("stubborn", "ignores the mask", lambda s, d: IgnoresTheMask())}
    domain, setting = register(couriers_broken(policies=policies, default_policies=()))
    with pytest.raises(AssertionError, match="masked choice"):
        checks.check_actions_inside_the_spaces(domain, setting)


def float_ids(sim: Any, actions: Any, states: Any) -> list[dict[str, Any]]:
    """The example's answer with every id sent through float32 (what packing ids into float actions does)."""
    out = courier_serve.respond(sim, actions, states)
    for answer in out:
        for row in answer["assignments"]:
            row["courier_id"] = int(torch.tensor(float(row["courier_id"]), dtype=torch.float32).item())
    return out


def test_ids_through_float32_fail(register, home: Path) -> None:
    serving = dataclasses.replace(courier_domain.SETTING.serving, respond=float_ids)
    domain, setting = register(couriers_broken(serving=serving))
    client = TestClient(create_app(), raise_server_exceptions=False)
    with pytest.raises(AssertionError, match="ids through act"):
        checks.check_ids_round_trip(domain, setting, client, PolicyCache(PolicyRegistry(home)))


class WrongWidth(NewsvendorSim):
    """Declares one feature more than it observes."""

    def __init__(self, scenario: Any, device: Any = "cpu") -> None:
        super().__init__(scenario, device)
        n = scenario.n_products
        self.spaces = Spaces(observation=Box((n + 1,), 0.0), action=self.spaces.action)


def test_a_simulator_that_breaks_its_declaration_fails_the_adapter_checks(register) -> None:
    domain, setting = register(broken(make_simulator=WrongWidth))
    with pytest.raises(AssertionError):
        checks.check_adapters(domain, setting)
