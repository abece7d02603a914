"""The policy contract and the registry of learned-policy kinds.

Baselines (closed forms, heuristics, exact solvers) and learned networks implement the same
:class:`Policy` protocol, ``act(obs) -> action`` on batched tensors, so evaluation, the API and the
dashboard treat them alike.

A learned policy is an ``nn.Module`` that also implements :class:`LearnedPolicy`: a class-level
``kind`` (the name stored in its registry card), ``config()`` (plain-JSON constructor arguments),
``from_config`` (rebuild the module without weights), ``initial`` (a fresh, untrained instance for a
scenario: what training starts from) and ``for_scenario`` (the policy that acts in a given
scenario, or a :class:`~decisionlab.core.errors.PolicyMismatchError` saying why it cannot).
Each setting names the kinds it serves; :func:`register_policy_kind` maps a kind to its class
(by dotted path, imported on first use), so rebuilding a registered policy is one look-up,
:func:`rebuild_policy`, and no domain writes an if/elif over kinds.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from decisionlab.core.errors import ArtefactError, UnknownNameError


@runtime_checkable
class Policy(Protocol):
    """Maps a batch of observations to a batch of actions (same device in, same device out)."""

    name: str

    def act(self, obs: Any) -> torch.Tensor:
        """``obs`` is the setting's observation for a batch ``[B, ...]``; returns actions ``[B, ...]``."""
        ...


class ConstantPolicy:
    """The same action at every decision (probes: fill rates at fixed quote depths, throughput with a
    fixed action); ``action`` holds one row per environment ``[B, ...]``."""

    def __init__(self, action: torch.Tensor, name: str = "constant") -> None:
        self.action, self.name = action, name

    def act(self, obs: Any) -> torch.Tensor:
        return self.action


@runtime_checkable
class LearnedPolicy(Policy, Protocol):
    """A policy the registry can store and rebuild (weights in safetensors, constructor in JSON)."""

    kind: ClassVar[str]

    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments, ``{"kind": kind, ...}``."""
        ...

    def state_dict(self) -> Mapping[str, torch.Tensor]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any: ...

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearnedPolicy:
        """The module described by ``config`` (weights not loaded)."""
        ...

    @classmethod
    def initial(cls, scenario: Any, device: torch.device) -> LearnedPolicy:
        """A fresh, untrained instance for ``scenario`` with default sizes."""
        ...

    def for_scenario(self, scenario: Any) -> Policy:
        """The policy acting in ``scenario`` (often ``self``), or a ``PolicyMismatchError``."""
        ...


_KINDS: dict[str, str | type] = {}


def register_policy_kind(kind: str, target: str | type) -> None:
    """Map ``kind`` to its class, given as the class or as ``"package.module:Class"`` (imported on
    first use, so registering a domain stays cheap). Registering the same kind twice with a
    different target is a programming error."""
    known = _KINDS.get(kind)
    if known is not None and known != target and _qualname(known) != _qualname(target):
        raise ValueError(f"policy kind {kind!r} is already registered for {_qualname(known)}")
    _KINDS[kind] = target


def _qualname(target: str | type) -> str:
    return target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"


def policy_class(kind: str) -> type:
    """The class registered for ``kind`` (an :class:`UnknownNameError` listing the kinds)."""
    target = _KINDS.get(kind)
    if target is None:
        raise UnknownNameError("policy kind", kind, list(_KINDS))
    if isinstance(target, str):
        module, _, name = target.partition(":")
        target = getattr(importlib.import_module(module), name)
        if getattr(target, "kind", None) != kind:
            raise TypeError(f"{module}:{name}.kind is {getattr(target, 'kind', None)!r}, registered as {kind!r}")
        _KINDS[kind] = target
    return target


def registered_kinds() -> list[str]:
    return sorted(_KINDS)


MEMBER_SEPARATOR = ":"
"""``domain/name@version:member`` names one member of a registered joint policy (``planner``, ``workers``)."""


def split_member(text: str) -> tuple[str, str | None]:
    """``"two_level@3:planner"`` -> ``("two_level@3", "planner")``; no member -> ``(text, None)``."""
    reference, separator, member = text.rpartition(MEMBER_SEPARATOR)
    return (reference, member) if separator and reference and member else (text, None)


class JointPolicy(torch.nn.Module):
    """Several named learned policies trained together and registered as one version (a planner and its
    workers, trained by two-level RL): one safetensors file (keys ``<member>.<name>``), one card, and each
    member servable on its own (``name@version:member``). A domain subclasses it with its own ``kind``
    and ``initial``; ``for_scenario`` gives the members acting together (their actions merged by group)."""

    kind: ClassVar[str] = "joint"

    def __init__(self, members: Mapping[str, torch.nn.Module], name: str = "joint") -> None:
        super().__init__()
        self.members, self.name = torch.nn.ModuleDict(dict(members)), name

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name,
                "members": {name: member.config() for name, member in self.members.items()}}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> JointPolicy:
        members = {name: policy_class(str(part.get("kind"))).from_config(part)
                   for name, part in config["members"].items()}
        return cls(members, config.get("name", "joint"))

    def member(self, name: str) -> torch.nn.Module:
        if name not in self.members:
            raise UnknownNameError("member of this joint policy", name, list(self.members))
        return self.members[name]

    def for_scenario(self, scenario: Any) -> Policy:
        return MergedPolicy({name: member.for_scenario(scenario) for name, member in self.members.items()},
                            self.name)


class MergedPolicy:
    """Policies acting together on one observation: each returns ``{group: action}`` for its own groups;
    the merged action holds them all."""

    def __init__(self, policies: Mapping[str, Policy], name: str = "joint") -> None:
        self.policies, self.name = dict(policies), name

    @torch.no_grad()
    def act(self, obs: Any) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for policy in self.policies.values():
            out.update(policy.act(obs))
        return out


def rebuild_module(config: dict[str, Any], weights: Mapping[str, torch.Tensor], device: torch.device) -> Any:
    """The learned module of ``config`` with ``weights`` loaded, on ``device``, in evaluation mode."""
    kind = str(config.get("kind"))
    cls = policy_class(kind)
    try:
        module = cls.from_config(config)
    except (KeyError, TypeError, ValueError) as err:
        raise ArtefactError(f"the stored config does not fit its policy kind {kind!r} "
                            f"({type(err).__name__}: {err})") from None
    bad = [name for name, tensor in weights.items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise ArtefactError(f"the stored weights of this {kind} policy are not finite ({', '.join(sorted(bad)[:3])})")
    try:
        module.load_state_dict(dict(weights))
    except (RuntimeError, KeyError, ValueError) as err:
        raise ArtefactError(f"the stored weights do not fit a {kind} policy ({type(err).__name__})") from None
    return module.to(device).eval()


def rebuild_policy(
    config: dict[str, Any], weights: Mapping[str, torch.Tensor], scenario: Any, device: torch.device,
    member: str | None = None,
) -> Policy:
    """The registered policy of ``config`` with ``weights`` loaded, on ``device``, acting in ``scenario``
    (its class's ``for_scenario`` checks that it can); ``member``: that member of a joint policy."""
    module = rebuild_module(config, weights, device)
    if member is not None:
        if not isinstance(module, JointPolicy):
            raise UnknownNameError("member", member, [], hint=f": a {config.get('kind')} policy has no members")
        module = module.member(member)
    return module.for_scenario(scenario)


def member_config(config: dict[str, Any], member: str | None) -> dict[str, Any]:
    """The config of ``member`` of a joint policy's ``config`` (``config`` itself for no member)."""
    if member is None:
        return config
    members = config.get("members")
    if not isinstance(members, Mapping) or member not in members:
        raise UnknownNameError("member", member, list(members) if isinstance(members, Mapping) else [],
                               hint="" if isinstance(members, Mapping) else
                               f": a {config.get('kind')} policy has no members")
    return dict(members[member])
