"""Helpers every domain's API router shares: where the registry and device come from, scenario
resolution that names the request field, cached baselines and the policy listing.

The API server (:func:`decisionlab.apps.api.create_app`) puts the registry and device on
``app.state``; a router mounted in another app falls back to ``$DECISIONLAB_HOME`` and
:func:`~decisionlab.core.device.get_device`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch
from fastapi import Request

from decisionlab.core.device import get_device
from decisionlab.core.errors import ScenarioError
from decisionlab.core.policy import Policy
from decisionlab.core.resolve import build_policy
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import DomainSpec
from decisionlab.core.store.registry import PolicyRegistry


def registry_of(request: Request) -> PolicyRegistry:
    """FastAPI dependency: the app's registry (``app.state.registry``) or the default one."""
    registry = getattr(request.app.state, "registry", None)
    return registry if isinstance(registry, PolicyRegistry) else PolicyRegistry()


def device_of(request: Request) -> torch.device:
    """FastAPI dependency: the app's device (``app.state.device``) or :func:`get_device`'s choice."""
    device = getattr(request.app.state, "device", None)
    return device if isinstance(device, torch.device) else get_device()


def request_scenario(spec: DomainSpec, preset: str, parameters: Mapping[str, Any]) -> Scenario:
    """The preset with the request's ``parameters``; errors are prefixed ``parameters:``."""
    try:
        return spec.scenario(preset, parameters)
    except ScenarioError as err:
        raise ScenarioError(f"parameters: {err}") from None


@lru_cache(maxsize=64)
def cached_baseline(spec: DomainSpec, name: str, scenario: Scenario, device: torch.device) -> Policy:
    """A built baseline, cached: searches and exact solvers take seconds to build, microseconds to act."""
    return spec.policy(name).build(scenario, device)


def serving_policy(
    spec: DomainSpec, name: str, scenario: Scenario, device: torch.device, registry: PolicyRegistry
) -> tuple[str, Policy]:
    """``(label, policy)``: a cached baseline, else a registered network (baselines win clashes)."""
    if name in spec.policies:
        return name, cached_baseline(spec, name, scenario, device)
    return build_policy(spec, scenario, name, device, registry)


def policy_listing(spec: DomainSpec, registry: PolicyRegistry) -> dict[str, Any]:
    """``GET /v1/<domain>/policies``: baselines by name and registered networks by reference."""
    return {
        "baselines": {
            name: {"description": policy.description, "admissible": policy.admissible}
            for name, policy in spec.policies.items()
        },
        "registered": [record.summary() for record in registry.list(spec.name)],
    }
