"""Multi-layer perceptrons."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    activation: str = "elu",
) -> nn.Sequential:
    """``in -> hidden[0] -> ... -> out`` with ``activation`` between layers (none after the last)."""
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), act()]
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["mlp", "count_parameters", "torch"]
