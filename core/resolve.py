"""Turning a policy name into a ready policy: a baseline of the scenario's setting or a registered one.

Used by the CLI, the API server and the dashboard, so every entry point accepts the same names:
a baseline (``optimal``), or a registry reference (``inventory/hdpo@2``, ``hdpo@2``, ``hdpo``), or one
member of a registered joint policy (``taxation/two_level@1:planner``). A registered policy serves a
scenario when its kind (its member's) is one the scenario's setting serves and its class's
``for_scenario`` accepts the scenario.
"""

from __future__ import annotations

import torch

from decisionlab.core.errors import ArtefactError, PolicyMismatchError, RegistryError, UnknownNameError
from decisionlab.core.policy import Policy, member_config, rebuild_policy, split_member
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import DomainSpec, SettingSpec
from decisionlab.core.store.registry import PolicyRecord, PolicyRegistry


def record_kind(record: PolicyRecord, member: str | None = None) -> str:
    """The learned-policy kind of a registered policy (from its card), or of one of its members."""
    if member is not None:
        return str(member_config(record.card.get("policy_config") or {}, member).get("kind"))
    return str(record.card.get("policy_kind") or (record.card.get("policy_config") or {}).get("kind"))


def unknown_policy(domain: DomainSpec, setting: SettingSpec, name: str, registry: PolicyRegistry) -> UnknownNameError:
    """A 404 listing the setting's baselines and the registered policies, naming the baselines of
    the other settings too (a lost_sales user looking for ``echelon_stock`` learns where it is)."""
    registered = sorted({r.ref.name for r in registry.list(domain.name)})
    others = [n for n in domain.policies if n not in setting.policies]
    hint = f" (the {setting.title} setting)"
    if others:
        hint += f"; baselines of other {domain.name} settings: {', '.join(others)}"
    return UnknownNameError(f"{domain.name} policy", name, [*setting.policies, *registered], hint)


def find_record(domain: DomainSpec, setting: SettingSpec, name: str, registry: PolicyRegistry) -> PolicyRecord:
    """The record of the registered policy ``name``; a 404 listing the choices when unknown."""
    try:
        return registry.find(name, domain.name)
    except RegistryError as err:
        if "/" in name or "@" in name:
            raise
        raise unknown_policy(domain, setting, name, registry) from err


def check_kind(record: PolicyRecord, setting: SettingSpec, member: str | None = None) -> None:
    """A 422 when ``record`` (or its ``member``) is of a learned-policy kind ``setting`` does not serve."""
    kind = record_kind(record, member)
    if kind not in setting.policy_kinds:
        trained = record.card.get("scenario_name") or "another scenario"
        served = ", ".join(setting.policy_kinds) or "none"
        raise PolicyMismatchError(
            f"policy {record.ref} is a {kind} policy (trained on {trained}); the {setting.title} setting serves "
            f"the kinds: {served}"
        )


def find_registered(
    domain: DomainSpec, setting: SettingSpec, name: str, registry: PolicyRegistry, member: str | None = None
) -> PolicyRecord:
    """The record of the registered policy ``name`` (a 404 listing the choices when unknown), checked
    to be (its ``member`` to be) of a kind ``setting`` serves."""
    record = find_record(domain, setting, name, registry)
    check_kind(record, setting, member)
    return record


def load_registered(record: PolicyRecord, scenario: Scenario, device: torch.device, registry: PolicyRegistry,
                    member: str | None = None) -> Policy:
    """The registered policy of ``record`` (or its ``member``) acting in ``scenario``; an artefact that
    cannot be used is an :class:`ArtefactError` naming the policy."""
    weights = registry.load_weights(record)
    try:
        return rebuild_policy(record.card.get("policy_config") or {}, weights, scenario, device, member)
    except ArtefactError as err:
        raise ArtefactError(f"policy {record.ref} cannot be served: {err}; re-register it, or remove it with "
                            f"`decisionlab policies delete {record.ref}`") from None


def build_policy(
    domain: DomainSpec,
    scenario: Scenario,
    name: str,
    device: torch.device,
    registry: PolicyRegistry | None = None,
) -> tuple[str, Policy]:
    """``(label, policy)`` for ``name``; baselines win over registered names that clash."""
    setting = domain.setting_of(scenario)
    if name in setting.policies:
        return name, domain.policy(name).build(scenario, device)
    registry = registry or PolicyRegistry()
    if name in domain.policies:  # a baseline of another setting
        domain.policy(name).spec_for(scenario)  # raises the mismatch, naming the settings it serves
    reference, member = split_member(name)
    record = find_registered(domain, setting, reference, registry, member)
    label = str(record.ref) if member is None else f"{record.ref}:{member}"
    return label, load_registered(record, scenario, device, registry, member)
