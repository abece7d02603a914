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


def rebuild_policy(
    config: dict[str, Any], weights: Mapping[str, torch.Tensor], scenario: Any, device: torch.device
) -> Policy:
    """The registered policy of ``config`` with ``weights`` loaded, on ``device``, acting in
    ``scenario`` (its class's ``for_scenario`` checks that it can)."""
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
    module = module.to(device).eval()
    return module.for_scenario(scenario)
