"""Actor-critic network and the two action distributions PPO samples from.

- :class:`SquashedGaussian`: a diagonal Gaussian over pre-squash values ``u [B, A]``, squashed by
  ``tanh`` and mapped affinely onto per-component bounds ``[low, high]``; log-densities include
  the Jacobian of that map, so the density of an action is exact as long as its ``u`` is kept.
- :class:`MaskedCategorical`: a categorical over ``A`` indices whose invalid entries (mask False)
  have probability exactly 0.
- :class:`ActorCritic`: separate MLP trunks for the policy and the value (orthogonal init, as is
  usual for PPO), a state-independent learnable log-std for continuous actions, and a scalar or
  HL-Gauss value head. Its constructor arguments are plain JSON (:meth:`ActorCritic.config`), so
  the registry rebuilds it from a card and a safetensors state dict.

Shapes: ``B`` batch (environments, or environments × agents flattened), ``F`` features, ``A``
action components (continuous) or action indices (discrete), ``K`` HL-Gauss bins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from decisionlab.core.nets.heads import HLGaussSupport
from decisionlab.core.nets.mlp import ACTIVATIONS, mlp

ValueHead = Literal["scalar", "hl_gauss"]
LOG_2 = math.log(2.0)
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def bounds_vector(bound: float | Sequence[float] | torch.Tensor, size: int) -> torch.Tensor:
    """A scalar or per-component bound as a float tensor ``[size]`` (on the CPU)."""
    vector = torch.as_tensor(bound, dtype=torch.get_default_dtype()).detach().cpu().flatten()
    if vector.numel() == 1:
        vector = vector.expand(size)
    if vector.numel() != size:
        raise ValueError(f"an action bound has {vector.numel()} components, the action has {size}")
    return vector.clone()


class SquashedGaussian:
    """``a = low + (high − low) · (tanh(u) + 1) / 2`` with ``u ~ N(mean, exp(log_std)²)``.

    ``mean [B, A]``, ``log_std [A]`` or ``[B, A]``, ``low`` / ``high [A]``. Methods take and return
    the pre-squash ``u``: a rollout stores ``u`` so that :meth:`log_prob` of the stored action is
    recomputed exactly later (inverting a saturated ``tanh`` with ``atanh`` would not be).
    """

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> None:
        self.mean, self.log_std = mean, log_std.expand_as(mean)
        self.low, self.high = low, high
        self.half_range = (high - low) / 2

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A pre-squash draw ``u [B, A]`` (map it with :meth:`squash`)."""
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.log_std.exp() * noise

    def squash(self, u: torch.Tensor) -> torch.Tensor:
        """``u [B, A] -> a [B, A]`` inside ``[low, high]`` (clamped: rounding must not leave the box)."""
        action = self.low + self.half_range * (torch.tanh(u) + 1)
        return torch.minimum(torch.maximum(action, self.low), self.high)

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        """``log p(a) [B]`` of the action ``squash(u)``: Gaussian log-density of ``u`` minus ``log |da/du|``.

        ``log |da/du| = Σ_i log(half_range_i) + log(1 − tanh² u_i)``, with the stable form
        ``log(1 − tanh² u) = 2 (log 2 − u − softplus(−2u))`` (no ``1 − tanh²`` underflow).
        """
        z = (u - self.mean) / self.log_std.exp()
        gaussian = -0.5 * z.square() - self.log_std - HALF_LOG_2PI
        log_jacobian = self.half_range.log() + 2 * (LOG_2 - u - F.softplus(-2 * u))
        return (gaussian - log_jacobian).sum(dim=-1)

    def entropy(self) -> torch.Tensor:
        """Entropy ``[B]`` of the *pre-squash* Gaussian (the squashed one has no closed form).

        Used as PPO's entropy bonus and logged; it differs from the squashed entropy by
        ``E[log |da/du|]``, which the bonus does not try to maximise.
        """
        return (0.5 + HALF_LOG_2PI + self.log_std).sum(dim=-1)

    def mode(self) -> torch.Tensor:
        """The deterministic action ``[B, A]``: the squashed mean."""
        return self.squash(self.mean)


class MaskedCategorical:
    """Categorical over ``A`` indices from ``logits [B, A]``; ``mask [B, A]`` (True = valid) or None.

    Invalid logits are replaced by ``finfo.min`` (finite, so no ``inf − inf`` NaN) and get
    probability exactly 0; the entropy sums over valid entries only. A row needs at least one
    valid entry to be meaningful (an all-invalid row degrades to uniform, without NaN).
    """

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        self.mask = mask
        if mask is not None:
            logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        self.logits = logits
        self.log_probs = torch.log_softmax(logits, dim=-1)  # [B, A]

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices ``[B]`` (long) by Gumbel-max: pure tensor ops, no host sync.

        ``U`` and ``−log U`` are kept away from 0, so the Gumbel noise is finite (|g| < 90 in float32)
        and a masked logit at ``finfo.min`` can never win over a valid one.
        """
        tiny = torch.finfo(self.logits.dtype).tiny
        uniform = torch.rand(self.logits.shape, generator=generator, device=self.logits.device,
                             dtype=self.logits.dtype).clamp_min(tiny)
        gumbel = -torch.log(-torch.log(uniform).clamp_max(-tiny))
        return (self.logits + gumbel).argmax(dim=-1)

    def log_prob(self, index: torch.Tensor) -> torch.Tensor:
        """``log p(index) [B]`` for ``index [B]`` (long)."""
        return self.log_probs.gather(-1, index.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        """``−Σ_valid p log p`` ``[B]`` (masked entries contribute nothing)."""
        terms = self.log_probs.exp() * self.log_probs
        if self.mask is not None:
            terms = torch.where(self.mask, terms, torch.zeros_like(terms))
        return -terms.sum(dim=-1)

    def mode(self) -> torch.Tensor:
        """The most probable valid index ``[B]``."""
        return self.logits.argmax(dim=-1)


Distribution = SquashedGaussian | MaskedCategorical


def orthogonal_init(net: nn.Sequential, head_gain: float) -> nn.Sequential:
    """Orthogonal weights (gain √2 on hidden layers, ``head_gain`` on the last Linear), zero biases."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    for position, layer in enumerate(linears):
        nn.init.orthogonal_(layer.weight, gain=head_gain if position == len(linears) - 1 else math.sqrt(2.0))
        nn.init.zeros_(layer.bias)
    return net


class ActorCritic(nn.Module):
    """Policy ``features [B, F] -> distribution over actions`` and value ``features [B, F] -> V [B]``.

    Args:
        obs_dim: ``F``, the width of the feature vector (``featurize(obs)``).
        action_dim: continuous: components ``A`` of the action; discrete: number of indices ``A``.
        discrete: a masked categorical over indices (True) or a squashed Gaussian (False).
        hidden / activation: the widths and non-linearity of each of the two trunks (actor, critic).
        value_head: ``"scalar"`` (``V [B]``) or ``"hl_gauss"`` (logits ``[B, K]`` on
            ``[value_min, value_max]``; ``V`` is their expectation).
        action_low / action_high: bounds of continuous actions, a float or ``[A]`` (ignored when discrete).
        init_log_std: initial value of the learnable, state-independent log-std ``[A]``.
        min_log_std: a floor on the log-std the distribution uses (None: none). PPO's clip bounds each
            update's move of the mean to a fraction of the spread, so a spread that collapses makes a
            policy slow to follow a changing task and its ratios unstable.
        obs_scale: ``[F]`` divisors of the features (a fixed normalisation that is part of the network,
            so a policy reads its inputs in the units it was trained in), or None.

    Features and masks come from the simulator's declared spaces; the caller reads them (see
    ``decisionlab.core.algos.ppo.ActorCriticPolicy``).
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        *,
        discrete: bool = False,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        value_head: ValueHead = "scalar",
        bins: int = 51,
        value_min: float = -10.0,
        value_max: float = 10.0,
        sigma_ratio: float = 0.75,
        action_low: float | Sequence[float] | torch.Tensor = -1.0,
        action_high: float | Sequence[float] | torch.Tensor = 1.0,
        init_log_std: float = -0.5,
        min_log_std: float | None = None,
        obs_scale: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if value_head not in ("scalar", "hl_gauss"):
            raise ValueError(f"value_head must be 'scalar' or 'hl_gauss', got '{value_head}'")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; choose one of {sorted(ACTIVATIONS)}")
        self.obs_dim, self.action_dim, self.discrete = int(obs_dim), int(action_dim), bool(discrete)
        self.hidden, self.activation = tuple(int(h) for h in hidden), activation
        self.value_head, self.bins = value_head, int(bins)
        self.value_min, self.value_max, self.sigma_ratio = float(value_min), float(value_max), float(sigma_ratio)
        self.init_log_std = float(init_log_std)
        self.min_log_std = None if min_log_std is None else float(min_log_std)
        low, high = bounds_vector(action_low, self.action_dim), bounds_vector(action_high, self.action_dim)
        if not self.discrete and not (torch.isfinite(low).all() and torch.isfinite(high).all() and (high > low).all()):
            raise ValueError(f"continuous actions need finite bounds with high > low, got {low} and {high}")
        # Non-persistent: they live in config(), and move with .to(device).
        self.register_buffer("action_low", low, persistent=False)
        self.register_buffer("action_high", high, persistent=False)
        self.obs_scale_list = None if obs_scale is None else [float(s) for s in obs_scale]
        if self.obs_scale_list is not None and (len(self.obs_scale_list) != self.obs_dim
                                                or not all(s > 0 and math.isfinite(s) for s in self.obs_scale_list)):
            raise ValueError(f"obs_scale must be {self.obs_dim} positive numbers, got {self.obs_scale_list}")
        self.register_buffer("obs_scale", None if obs_scale is None else torch.tensor(self.obs_scale_list),
                             persistent=False)

        self.actor = orthogonal_init(mlp(self.obs_dim, self.hidden, self.action_dim, activation), 0.01)
        categorical = self.categorical_value
        self.support = HLGaussSupport(self.value_min, self.value_max, self.bins, self.sigma_ratio) if categorical \
            else None
        self.critic = orthogonal_init(mlp(self.obs_dim, self.hidden, self.bins if categorical else 1, activation), 1.0)
        # Continuous only; a discrete net keeps no unused parameter (the optimiser would see no grad).
        self.log_std = None if self.discrete else nn.Parameter(torch.full((self.action_dim,), self.init_log_std))

    @property
    def categorical_value(self) -> bool:
        return self.value_head == "hl_gauss"

    def inputs(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` divided by ``obs_scale`` (as they are without one)."""
        return features if self.obs_scale is None else features.to(self.obs_scale.dtype) / self.obs_scale

    def distribution(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution:
        """The action distribution at ``features [B, F]``; ``mask [B, A]`` (discrete only) marks valid indices."""
        out = self.actor(self.inputs(features))  # [B, A]: means (continuous) or logits (discrete)
        if self.discrete:
            return MaskedCategorical(out, mask)
        if mask is not None:
            raise ValueError("an action mask needs discrete actions")
        log_std = self.log_std if self.min_log_std is None else self.log_std.clamp(min=self.min_log_std)
        return SquashedGaussian(out, log_std, self.action_low, self.action_high)

    def value_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The raw critic output: ``V [B]`` (scalar head) or logits ``[B, K]`` (HL-Gauss)."""
        out = self.critic(self.inputs(features))
        return out if self.categorical_value else out.squeeze(-1)

    def value(self, features: torch.Tensor) -> torch.Tensor:
        """``V [B]`` (the expectation over bins for HL-Gauss)."""
        out = self.value_logits(features)
        return self.support.expectation(out) if self.support is not None else out

    @torch.no_grad()
    def act(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic action: the squashed mean ``[B, A]`` or the most probable valid index ``[B]``."""
        return self.distribution(features, mask).mode()

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.act(features, mask)

    def config(self) -> dict[str, Any]:
        return {
            "kind": "actor_critic", "obs_dim": self.obs_dim, "action_dim": self.action_dim, "discrete": self.discrete,
            "hidden": list(self.hidden), "activation": self.activation, "value_head": self.value_head,
            "bins": self.bins, "value_min": self.value_min, "value_max": self.value_max,
            "sigma_ratio": self.sigma_ratio, "action_low": self.action_low.cpu().tolist(),
            "action_high": self.action_high.cpu().tolist(), "init_log_std": self.init_log_std,
            "obs_scale": self.obs_scale_list,
        } | ({} if self.min_log_std is None else {"min_log_std": self.min_log_std})

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ActorCritic:
        """Rebuild (without weights: then ``load_state_dict``)."""
        return cls(**{k: v for k, v in config.items() if k != "kind"})
