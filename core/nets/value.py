"""Spatio-temporal state-value functions ``V(location, time)``.

A state is a discrete location (a cell, a zone, a node: ``long [N]``) and a time in seconds
(``float [N]``) that is periodic with ``period_s`` (a day by default): ``V`` is the expected
discounted future reward from that location at that time of the period.

- :class:`TabularValue`: a table ``[T, L]`` over ``T`` time bins and ``L`` locations, for online
  TD(0) (:func:`decisionlab.core.algos.td.td0_update`).
- :class:`NeuralValue`: a location embedding plus periodic time features through an MLP, with a
  scalar or HL-Gauss (categorical) head, for fitted TD on logs.
- :func:`value_table`: any of them evaluated at every (bin-centre time, location), for maps and
  for blending a network into a table.

Both have plain-JSON ``config()`` (with a ``"type"``) and ``from_config``;
:func:`value_from_config` rebuilds either. Times are reduced modulo ``period_s`` before use; give
times since a recent origin (or float64): float32 epoch seconds only resolve ~2 minutes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from decisionlab.core.nets.heads import HeadKind, HLGaussSupport
from decisionlab.core.nets.mlp import ACTIVATIONS, mlp


def _check_sizes(n_locations: int, n_time_bins: int, period_s: float) -> None:
    if n_locations < 1 or n_time_bins < 1:
        raise ValueError(f"need n_locations >= 1 and n_time_bins >= 1, got {n_locations} and {n_time_bins}")
    if not period_s > 0:
        raise ValueError(f"period_s must be > 0, got {period_s}")


def bin_centres(n_time_bins: int, period_s: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """The time ``[T]`` at the centre of each of ``T`` equal bins of the period."""
    return (torch.arange(n_time_bins, device=device, dtype=torch.get_default_dtype()) + 0.5) * (
        period_s / n_time_bins
    )


class TabularValue(nn.Module):
    """``V(location, time) = table[bin(time), location]`` with ``table [T, L]`` a parameter.

    Bin ``b`` covers ``[b, b + 1) · period_s / T`` of the period; ``init`` fills the table.
    """

    def __init__(self, n_locations: int, n_time_bins: int, period_s: float = 86400.0, init: float = 0.0) -> None:
        super().__init__()
        _check_sizes(n_locations, n_time_bins, period_s)
        self.n_locations, self.n_time_bins = int(n_locations), int(n_time_bins)
        self.period_s, self.init = float(period_s), float(init)
        self.table = nn.Parameter(torch.full((self.n_time_bins, self.n_locations), self.init))

    def time_bin(self, time_s: torch.Tensor) -> torch.Tensor:
        """``time_s [N] -> long [N]`` in ``[0, T)``: the time wraps modulo ``period_s``."""
        frac = torch.remainder(time_s, self.period_s) / self.period_s
        # The clamp catches frac == 1.0, which rounding can produce for times just below a period.
        return torch.floor(frac * self.n_time_bins).long().clamp_(0, self.n_time_bins - 1)

    def flat_index(self, location: torch.Tensor, time_s: torch.Tensor) -> torch.Tensor:
        """Index ``long [N]`` of each state in ``table.view(-1)``."""
        return self.time_bin(time_s) * self.n_locations + location.long()

    def forward(self, location: torch.Tensor, time_s: torch.Tensor) -> torch.Tensor:
        """``location long [N], time_s [N] -> V [N]``."""
        return self.table[self.time_bin(time_s), location.long()]

    def loss(self, location: torch.Tensor, time_s: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the entries against ``target [N]`` (its minimiser: the mean target per entry)."""
        return F.mse_loss(self(location, time_s), target.to(self.table.dtype))

    def config(self) -> dict[str, Any]:
        return {
            "type": "tabular", "n_locations": self.n_locations, "n_time_bins": self.n_time_bins,
            "period_s": self.period_s, "init": self.init,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TabularValue:
        """Rebuild (without weights: then ``load_state_dict``)."""
        return cls(**{k: v for k, v in config.items() if k != "type"})


class NeuralValue(nn.Module):
    """``V(location, time)``: ``[embed(location), sin/cos(k · 2π t / period) for k = 1..H]`` -> MLP -> head.

    ``head='scalar'``: one output, trained by mean squared error (the minimiser is the mean TD
    target, as for the table; returns here are not heavy-tailed enough to need Huber, and Huber
    would bias the mean of skewed targets). ``head='hl_gauss'``: logits over ``bins`` on
    ``[v_min, v_max]``, trained by cross-entropy against the HL-Gauss distribution of the target;
    the value is ``Σ softmax · centres`` (so it stays inside the support: size it to the returns).
    ``n_time_bins`` is not used by the network: it is the resolution of its tables and maps.
    ``location_features [L, F]`` (optional, e.g. each location's coordinates) join the embedding, so
    the value generalises to locations the data rarely visits (an embedding alone cannot).
    """

    def __init__(
        self,
        n_locations: int,
        n_time_bins: int = 24,
        period_s: float = 86400.0,
        *,
        embedding_dim: int = 16,
        harmonics: int = 4,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        head: HeadKind = "scalar",
        bins: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        sigma_ratio: float = 0.75,
        location_features: Sequence[Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        _check_sizes(n_locations, n_time_bins, period_s)
        if head not in ("scalar", "hl_gauss"):
            raise ValueError(f"head must be 'scalar' or 'hl_gauss', got '{head}'")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; choose one of {sorted(ACTIVATIONS)}")
        if embedding_dim < 1 or harmonics < 0:
            raise ValueError(f"need embedding_dim >= 1 and harmonics >= 0, got {embedding_dim} and {harmonics}")
        self.n_locations, self.n_time_bins, self.period_s = int(n_locations), int(n_time_bins), float(period_s)
        self.embedding_dim, self.harmonics = int(embedding_dim), int(harmonics)
        self.hidden, self.activation, self.head = tuple(int(h) for h in hidden), activation, head
        self.bins, self.v_min, self.v_max, self.sigma_ratio = int(bins), float(v_min), float(v_max), float(sigma_ratio)
        categorical = head == "hl_gauss"
        self.support = HLGaussSupport(self.v_min, self.v_max, self.bins, self.sigma_ratio) if categorical else None
        self.embedding = nn.Embedding(self.n_locations, self.embedding_dim)
        self.register_buffer(
            "frequencies", torch.arange(1, self.harmonics + 1, dtype=torch.get_default_dtype()), persistent=False
        )
        table = torch.tensor(location_features if location_features is not None else [[] for _ in range(n_locations)],
                             dtype=torch.get_default_dtype()).reshape(self.n_locations, -1)
        if not bool(torch.isfinite(table).all()):
            raise ValueError("location_features must be finite")
        # Non-persistent: rebuilt from the config, like the HL-Gauss bins.
        self.register_buffer("location_table", table, persistent=False)
        atoms = self.bins if self.support is not None else 1
        width = self.embedding_dim + 2 * self.harmonics + table.shape[1]
        self.net = mlp(width, self.hidden, atoms, activation)

    def features(self, location: torch.Tensor, time_s: torch.Tensor) -> torch.Tensor:
        """Network input ``[N, embedding_dim + F + 2H]``."""
        # Reduce first: the phase of a large time would lose precision after multiplying by k.
        phase = (2 * math.pi / self.period_s) * torch.remainder(time_s, self.period_s).to(self.frequencies.dtype)
        angles = phase.unsqueeze(-1) * self.frequencies  # [N, H]
        location = location.long()
        return torch.cat([self.embedding(location), self.location_table[location], torch.sin(angles),
                          torch.cos(angles)], dim=-1)

    def logits(self, location: torch.Tensor, time_s: torch.Tensor) -> torch.Tensor:
        """Raw head output ``[N, K]`` (``K = 1`` for the scalar head, ``bins`` for HL-Gauss)."""
        return self.net(self.features(location, time_s))

    def forward(self, location: torch.Tensor, time_s: torch.Tensor) -> torch.Tensor:
        """``location long [N], time_s [N] -> V [N]``."""
        out = self.logits(location, time_s)
        return self.support.expectation(out) if self.support is not None else out.squeeze(-1)

    def loss(self, location: torch.Tensor, time_s: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar training loss against ``target [N]``: MSE (scalar head) or HL-Gauss cross-entropy."""
        out = self.logits(location, time_s)
        target = target.to(out.dtype)
        if self.support is None:
            return F.mse_loss(out.squeeze(-1), target)
        log_probs = torch.log_softmax(out, dim=-1)
        return -(self.support.target_probs(target) * log_probs).sum(dim=-1).mean()

    def config(self) -> dict[str, Any]:
        return {
            "type": "neural", "n_locations": self.n_locations, "n_time_bins": self.n_time_bins,
            "period_s": self.period_s, "embedding_dim": self.embedding_dim, "harmonics": self.harmonics,
            "hidden": list(self.hidden), "activation": self.activation, "head": self.head, "bins": self.bins,
            "v_min": self.v_min, "v_max": self.v_max, "sigma_ratio": self.sigma_ratio,
            "location_features": self.location_table.tolist() if self.location_table.shape[1] else None,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NeuralValue:
        """Rebuild (without weights: then ``load_state_dict``)."""
        return cls(**{k: v for k, v in config.items() if k != "type"})


VALUE_TYPES: dict[str, type[TabularValue] | type[NeuralValue]] = {"tabular": TabularValue, "neural": NeuralValue}


def value_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild a value module from its ``config()`` (dispatch on ``config["type"]``)."""
    kind = VALUE_TYPES.get(config.get("type", ""))
    if kind is None:
        raise ValueError(f"unknown value type {config.get('type')!r}; choose one of {sorted(VALUE_TYPES)}")
    return kind.from_config(config)


@torch.no_grad()
def value_table(
    value: nn.Module,
    n_locations: int | None = None,
    n_time_bins: int | None = None,
    period_s: float | None = None,
) -> torch.Tensor:
    """``V`` at every (bin-centre time, location): ``[T, L]`` on the module's device, no grad.

    The sizes default to the module's own (``n_locations``, ``n_time_bins``, ``period_s``).
    """
    n_locations = int(n_locations if n_locations is not None else value.n_locations)
    n_time_bins = int(n_time_bins if n_time_bins is not None else value.n_time_bins)
    period_s = float(period_s if period_s is not None else value.period_s)
    _check_sizes(n_locations, n_time_bins, period_s)
    device = next(value.parameters()).device
    times = bin_centres(n_time_bins, period_s, device)
    location = torch.arange(n_locations, device=device).repeat(n_time_bins)  # [T·L], location fastest
    return value(location, times.repeat_interleave(n_locations)).view(n_time_bins, n_locations)
