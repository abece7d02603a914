"""Domain specs and the domain registry.

Each domain package builds one :class:`DomainSpec` in its ``__init__`` and calls
:func:`register_domain`. Apps call :func:`discover_domains` (which imports every package under
``decisionlab.domains``) and then look domains up by name, so no app ever branches on a domain.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel

from decisionlab.core.errors import UnknownNameError
from decisionlab.core.policy import Policy
from decisionlab.core.scenario import Scenario, pick, resolve_scenario
from decisionlab.core.sim import BatchedSimulator

if TYPE_CHECKING:
    import polars as pl
    from fastapi import APIRouter


@dataclass(frozen=True)
class MetricSpec:
    """A KPI the domain reports per episode."""

    name: str
    description: str
    better: Literal["lower", "higher"]
    unit: str = ""


@dataclass(frozen=True)
class PolicySpec:
    """A named baseline: ``build(scenario, device)`` returns a ready :class:`Policy`.

    ``admissible=False`` marks policies that cheat (see the future) and exist only as bounds.
    """

    name: str
    description: str
    build: Callable[[Scenario, torch.device], Policy]
    admissible: bool = True


@dataclass
class TrainOutcome:
    """What an algorithm returns: a learned policy plus its record."""

    policy: torch.nn.Module
    policy_config: dict[str, Any]
    metrics: dict[str, float]
    curve: pl.DataFrame | None = None
    algo_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlgoSpec:
    """A training method wired to a domain: ``train(scenario, seed, device, progress, options)``.

    ``options`` are the user's algorithm settings (``--algo-set key=value``), validated by the
    algorithm against ``options_model`` (a pydantic model whose fields are the accepted keys).
    """

    name: str
    description: str
    train: Callable[[Scenario, int, torch.device, bool, Mapping[str, Any]], TrainOutcome]
    options_model: type[BaseModel] | None = None


@dataclass(frozen=True, eq=False)  # identity equality and hash: one spec object per domain
class DomainSpec:
    """Everything the apps need to know about a domain.

    Attributes:
        scenarios: named presets; each preset's class is that scenario's pydantic model.
        episode_metrics: ``(scenario, policy, episodes, seed, device) -> {metric: [episodes]}``;
            must draw all randomness from ``seed`` so policies share random numbers.
            Statistics that are not episode averages (a standard deviation, a CVaR, mean + λ·var)
            are returned as per-episode influence values whose average is the statistic, so the
            t-interval and paired differences stay valid (see domains/execution/metrics.py).
        make_simulator: builds the batched simulator of a scenario (used by the gymnasium
            adapter and benchmarks); ``None`` for domains that cannot be stepped generically.
        load_policy: rebuilds a learned policy from its JSON config and weights, raising a
            :class:`~decisionlab.core.errors.DecisionlabError` if it cannot serve ``scenario``.
        router: builds the domain's FastAPI router (imported lazily by the API server).
        dashboard: dotted path of the module whose ``render()`` draws the Streamlit page.
    """

    name: str
    title: str
    description: str
    scenarios: Mapping[str, Scenario]
    policies: Mapping[str, PolicySpec]
    algos: Mapping[str, AlgoSpec]
    metrics: Mapping[str, MetricSpec]
    primary_metric: str
    episode_metrics: Callable[[Scenario, Policy, int, int, torch.device], dict[str, np.ndarray]]
    load_policy: Callable[[dict[str, Any], dict[str, torch.Tensor], Scenario, torch.device], Policy]
    make_simulator: Callable[[Scenario, torch.device], BatchedSimulator[Any]] | None = None
    default_episodes: int = 64
    default_scenario: str | None = None
    default_algo: str | None = None
    router: Callable[[], APIRouter] | None = None
    dashboard: str | None = None

    def scenario(self, name: str, overrides: Mapping[str, Any] | None = None) -> Scenario:
        """The preset ``name`` with ``overrides`` applied and validated."""
        preset = pick(self.scenarios, name, f"{self.name} scenario")
        return resolve_scenario(type(preset), preset, overrides)

    def policy(self, name: str) -> PolicySpec:
        return pick(self.policies, name, f"{self.name} policy")

    def algo(self, name: str) -> AlgoSpec:
        return pick(self.algos, name, f"{self.name} algorithm")

    def summary(self) -> dict[str, Any]:
        """JSON description used by ``decisionlab domains`` and ``GET /v1/domains``."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "scenarios": {k: v.describe() for k, v in self.scenarios.items()},
            "policies": {
                k: {"description": v.description, "admissible": v.admissible}
                for k, v in self.policies.items()
            },
            "algos": {k: v.description for k, v in self.algos.items()},
            "metrics": {
                k: {"description": v.description, "better": v.better, "unit": v.unit}
                for k, v in self.metrics.items()
            },
            "primary_metric": self.primary_metric,
        }


_DOMAINS: dict[str, DomainSpec] = {}


def register_domain(spec: DomainSpec) -> DomainSpec:
    """Add ``spec`` to the registry (idempotent for the same name)."""
    _DOMAINS[spec.name] = spec
    return spec


def discover_domains() -> dict[str, DomainSpec]:
    """Import every package under ``decisionlab.domains`` so each registers itself."""
    import decisionlab.domains as root

    for module in pkgutil.iter_modules(root.__path__):
        if module.ispkg:
            importlib.import_module(f"decisionlab.domains.{module.name}")
    return dict(_DOMAINS)


def get_domain(name: str) -> DomainSpec:
    """The registered domain ``name`` (discovering domains on first use)."""
    if name not in _DOMAINS:
        discover_domains()
    if name not in _DOMAINS:
        raise UnknownNameError("domain", name, list(_DOMAINS))
    return _DOMAINS[name]


def list_domains() -> list[DomainSpec]:
    return [spec for _, spec in sorted(discover_domains().items())]
