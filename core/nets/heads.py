"""Value heads and the discrete-action Q network.

- :class:`HLGaussSupport`: the categorical HL-Gauss value representation (Imani & White 2018;
  Farebrother et al. 2024, "Stop Regressing"): a scalar target ``y`` becomes the probabilities a
  Gaussian ``N(y, σ²)`` puts on fixed bins over ``[v_min, v_max]``; the net is trained by
  cross-entropy and predicts ``Σ softmax(logits) · centres``.
- :class:`DuelingHead`: ``Q = V + A − mean_a A`` (Wang et al. 2016).
- :class:`QNetwork`: an MLP trunk plus a dueling or plain head, scalar or HL-Gauss, whose
  constructor arguments are plain JSON (``config()``), so the registry rebuilds it from a card and
  a safetensors state dict.

Every head produces ``[B, A, K]``: ``K = 1`` for a scalar head, ``K = bins`` logits for HL-Gauss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from decisionlab.core.nets.mlp import ACTIVATIONS, mlp

HeadKind = Literal["scalar", "hl_gauss"]


def hl_gauss_probs(y: torch.Tensor, edges: torch.Tensor, sigma: float) -> torch.Tensor:
    """Target distribution ``[..., K]`` of scalar targets ``y [...]`` on bins with ``edges [K + 1]``.

    ``p_i = Φ((e_{i+1} − y)/σ) − Φ((e_i − y)/σ)``, renormalised to the mass inside the support.
    ``y`` is clamped into ``[e_0, e_K]`` first: outside it the mass inside would vanish (0/0), and a
    target beyond the support can only be represented by its edge bin anyway.
    """
    y = torch.clamp(y, edges[0], edges[-1])  # tensor bounds: no host sync on an accelerator
    cdf = torch.special.ndtr((edges - y.unsqueeze(-1)) / sigma)  # [..., K + 1]
    mass = cdf[..., 1:] - cdf[..., :-1]
    return mass / (cdf[..., -1:] - cdf[..., :1]).clamp_min(1e-12)


class HLGaussSupport(nn.Module):
    """Fixed bins on ``[v_min, v_max]``: edges ``[K + 1]``, centres ``[K]``, ``σ = sigma_ratio · width``."""

    def __init__(self, v_min: float, v_max: float, bins: int, sigma_ratio: float = 0.75) -> None:
        super().__init__()
        if not v_max > v_min:
            raise ValueError(f"HL-Gauss support needs v_max > v_min, got [{v_min}, {v_max}]")
        if bins < 2:
            raise ValueError(f"HL-Gauss needs at least 2 bins, got {bins}")
        self.v_min, self.v_max, self.bins = float(v_min), float(v_max), int(bins)
        self.width = (self.v_max - self.v_min) / self.bins
        self.sigma = float(sigma_ratio) * self.width
        edges = torch.linspace(self.v_min, self.v_max, self.bins + 1)
        # Non-persistent: rebuilt from the config, so they are not part of the saved weights.
        self.register_buffer("edges", edges, persistent=False)
        self.register_buffer("centres", (edges[:-1] + edges[1:]) / 2, persistent=False)

    def target_probs(self, y: torch.Tensor) -> torch.Tensor:
        """``y [...] -> p [..., K]`` (rows sum to 1)."""
        return hl_gauss_probs(y, self.edges, self.sigma)

    def expectation(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits [..., K] -> Σ softmax · centres [...]``."""
        return torch.softmax(logits, dim=-1) @ self.centres


class LinearHead(nn.Module):
    """Plain head: ``features [B, F] -> [B, A, K]``."""

    def __init__(self, in_features: int, n_actions: int, atoms: int = 1) -> None:
        super().__init__()
        self.n_actions, self.atoms = int(n_actions), int(atoms)
        self.out = nn.Linear(in_features, self.n_actions * self.atoms)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(features).view(-1, self.n_actions, self.atoms)


class DuelingHead(nn.Module):
    """Dueling head: ``V(s) [B, 1, K] + A(s, a) [B, A, K] − mean_a A(s, a)`` -> ``[B, A, K]``.

    Subtracting the mean advantage makes the split identifiable: ``V`` is the mean over actions
    of the output. With ``K > 1`` (HL-Gauss) the identity holds per bin on the logits, as in
    Rainbow; the expected Q-values then mix V and A non-linearly through the softmax.
    """

    def __init__(self, in_features: int, n_actions: int, atoms: int = 1) -> None:
        super().__init__()
        self.n_actions, self.atoms = int(n_actions), int(atoms)
        self.value = nn.Linear(in_features, self.atoms)
        self.advantage = nn.Linear(in_features, self.n_actions * self.atoms)

    def split(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The value stream ``[B, 1, K]`` and the raw advantages ``[B, A, K]`` (before centring)."""
        value = self.value(features).view(-1, 1, self.atoms)
        return value, self.advantage(features).view(-1, self.n_actions, self.atoms)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        value, advantage = self.split(features)
        return value + advantage - advantage.mean(dim=1, keepdim=True)


class QNetwork(nn.Module):
    """``obs [B, obs_dim] -> Q [B, A]`` through an MLP trunk and a scalar or HL-Gauss head.

    ``forward`` returns the raw head output: Q-values ``[B, A]`` (``head='scalar'``) or logits
    ``[B, A, bins]`` (``head='hl_gauss'``); :meth:`q_values` always returns ``[B, A]``.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: Sequence[int] = (64, 64),
        dueling: bool = True,
        head: HeadKind = "scalar",
        bins: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        sigma_ratio: float = 0.75,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if head not in ("scalar", "hl_gauss"):
            raise ValueError(f"head must be 'scalar' or 'hl_gauss', got '{head}'")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; choose one of {sorted(ACTIVATIONS)}")
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self.hidden = tuple(int(h) for h in hidden)
        self.dueling, self.head, self.activation = bool(dueling), head, activation
        self.bins, self.v_min, self.v_max, self.sigma_ratio = int(bins), float(v_min), float(v_max), float(sigma_ratio)
        if self.hidden:
            # mlp() ends with a Linear; the head wants activated features, so add the last activation.
            self.trunk: nn.Module = nn.Sequential(
                mlp(self.obs_dim, self.hidden[:-1], self.hidden[-1], activation), ACTIVATIONS[activation]()
            )
            width = self.hidden[-1]
        else:
            self.trunk, width = nn.Identity(), self.obs_dim
        categorical = head == "hl_gauss"
        self.support = HLGaussSupport(self.v_min, self.v_max, self.bins, self.sigma_ratio) if categorical else None
        atoms = self.bins if categorical else 1
        self.q_head = (DuelingHead if self.dueling else LinearHead)(width, self.n_actions, atoms)

    @property
    def categorical(self) -> bool:
        return self.support is not None

    def config(self) -> dict[str, Any]:
        return {
            "kind": "q_network", "obs_dim": self.obs_dim, "n_actions": self.n_actions, "hidden": list(self.hidden),
            "dueling": self.dueling, "head": self.head, "bins": self.bins, "v_min": self.v_min, "v_max": self.v_max,
            "sigma_ratio": self.sigma_ratio, "activation": self.activation,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> QNetwork:
        return cls(**{k: v for k, v in config.items() if k != "kind"})

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.q_head(self.trunk(obs))  # [B, A, K]
        return out if self.categorical else out.squeeze(-1)

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Expected Q-values ``[B, A]``."""
        out = self(obs)
        return self.support.expectation(out) if self.support is not None else out

