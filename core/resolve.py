"""Turning a policy name into a ready policy: a domain baseline or a registered network.

Used by the CLI, the API server and the dashboard, so every entry point accepts the same names:
a baseline (``optimal``), or a registry reference (``inventory/hdpo@2``, ``hdpo@2``, ``hdpo``).
"""

from __future__ import annotations

import torch

from decisionlab.core.errors import RegistryError, UnknownNameError
from decisionlab.core.policy import Policy
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import DomainSpec
from decisionlab.core.store.registry import PolicyRegistry


def build_policy(
    domain: DomainSpec,
    scenario: Scenario,
    name: str,
    device: torch.device,
    registry: PolicyRegistry | None = None,
) -> tuple[str, Policy]:
    """``(label, policy)`` for ``name``; baselines win over registered names that clash."""
    if name in domain.policies:
        return name, domain.policies[name].build(scenario, device)
    registry = registry or PolicyRegistry()
    try:
        record = registry.find(name, domain.name)
    except RegistryError as err:
        registered = sorted({r.ref.name for r in registry.list(domain.name)})
        if "/" in name or "@" in name:
            raise
        raise UnknownNameError(f"{domain.name} policy", name, [*domain.policies, *registered]) from err
    weights = registry.load_weights(record)
    policy = domain.load_policy(record.card["policy_config"], weights, scenario, device)
    return str(record.ref), policy
