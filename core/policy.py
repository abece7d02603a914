"""The policy contract: ``act(obs) -> action`` on batched tensors.

Baselines (closed forms, heuristics, exact solvers) and learned networks implement the same
protocol, so evaluation, the API and the dashboard treat them alike. Learned policies are
``nn.Module`` subclasses that also implement :class:`LearnedPolicy` so the registry can rebuild
them from a JSON config and a safetensors state dict.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Policy(Protocol):
    """Maps a batch of observations to a batch of actions (same device in, same device out)."""

    name: str

    def act(self, obs: Any) -> torch.Tensor:
        """``obs`` is the domain's observation for a batch ``[B, ...]``; returns actions ``[B, ...]``."""
        ...


@runtime_checkable
class LearnedPolicy(Policy, Protocol):
    """A policy the registry can store: its constructor arguments are plain JSON."""

    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (rebuilds the module without weights)."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]: ...
