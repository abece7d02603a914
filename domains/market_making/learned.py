"""The learned quoting policy (both settings, both algorithms): an MLP from the shared observation
to bid and ask depths, squashed into the setting's depth bounds.

``QuoteNet`` normalises the observation ``[B, 6]`` with scales of the scenario it was trained on
(time left / T, inventory / Q, mid offset / (σ√T), last return / (σ√dt), imbalance, market spread · k),
runs an MLP (``actor``) and maps its output ``u [B, 2]`` to depths ``low + (high − low)·(tanh u + 1)/2``.
That map is the deterministic action of the core PPO's squashed Gaussian, so a PPO actor's weights
are copied into a ``QuoteNet`` as they are (:func:`from_actor`); the pathwise trainer trains a
``QuoteNet`` directly. The scales are part of the config: the same net serves any scenario, reading
its inputs in the units it was trained in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from decisionlab.core import ActorCritic, mlp, orthogonal_init
from decisionlab.domains.market_making.params import QuotingScenario
from decisionlab.domains.market_making.quotes import ACTION_SIZE, OBSERVATION_SIZE, depth_bounds

DEFAULT_HIDDEN = (64, 64)
UNBOUNDED_INVENTORY_SCALE = 10.0  # q is read in tens of units when the scenario sets no bound


def observation_scales(scenario: QuotingScenario) -> list[float]:
    """Divisors of the six observation fields (``[6]``): every input of order one."""
    inventory = float(scenario.max_inventory or UNBOUNDED_INVENTORY_SCALE)
    sigma = max(scenario.sigma, 1e-12)
    return [scenario.horizon, inventory, sigma * math.sqrt(scenario.horizon), sigma * math.sqrt(scenario.dt),
            1.0, 1.0 / scenario.fill_decay_k]


class QuoteNet(nn.Module):
    """``obs [B, 6] -> depths [B, 2]`` (see the module docstring)."""

    kind: ClassVar[str] = "quote_mlp"

    def __init__(self, scales: Sequence[float], depth_low: float, depth_high: float,
                 hidden: Sequence[int] = DEFAULT_HIDDEN, activation: str = "tanh", name: str = "quote_mlp",
                 trained_ranges: Mapping[str, Sequence[float]] | None = None) -> None:
        super().__init__()
        if len(scales) != OBSERVATION_SIZE or not all(s > 0 and math.isfinite(s) for s in scales):
            raise ValueError(f"scales must be {OBSERVATION_SIZE} positive numbers, got {list(scales)}")
        if not depth_high > depth_low:
            raise ValueError(f"depth bounds need high > low, got [{depth_low}, {depth_high}]")
        self.scales_list = [float(s) for s in scales]
        self.depth_low, self.depth_high = float(depth_low), float(depth_high)
        self.hidden, self.activation, self.name = tuple(int(h) for h in hidden), activation, name
        # the request-state ranges the policy saw in training (the server refuses states far outside)
        self.trained_ranges = {k: (float(v[0]), float(v[1])) for k, v in (trained_ranges or {}).items()}
        self.register_buffer("scales", torch.tensor(self.scales_list), persistent=False)
        self.actor = orthogonal_init(mlp(OBSERVATION_SIZE, self.hidden, ACTION_SIZE, activation), 0.01)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, 6]`` normalised inputs."""
        return obs.to(self.scales.dtype) / self.scales

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Depths ``[B, 2]`` (differentiable: the pathwise trainer calls this)."""
        unit = (torch.tanh(self.actor(self.features(obs))) + 1.0) / 2.0
        return self.depth_low + (self.depth_high - self.depth_low) * unit

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Depths ``[B, 2]``; differentiable (rollouts and serving switch gradients off themselves)."""
        return self.forward(obs)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "scales": self.scales_list, "depth_low": self.depth_low,
                "depth_high": self.depth_high, "hidden": list(self.hidden), "activation": self.activation,
                "name": self.name, "trained_ranges": {k: list(v) for k, v in self.trained_ranges.items()}}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> QuoteNet:
        return cls(config["scales"], config["depth_low"], config["depth_high"], config.get("hidden", DEFAULT_HIDDEN),
                   config.get("activation", "tanh"), config.get("name", cls.kind), config.get("trained_ranges"))

    @classmethod
    def initial(cls, scenario: QuotingScenario, device: torch.device, hidden: Sequence[int] = DEFAULT_HIDDEN,
                activation: str = "tanh", name: str = "quote_mlp") -> QuoteNet:
        low, high = depth_bounds(scenario)
        return cls(observation_scales(scenario), low, high, hidden, activation, name).to(device)

    def for_scenario(self, scenario: QuotingScenario) -> QuoteNet:
        """Any quoting scenario: the inputs are read in the training scenario's units."""
        return self

    def copy_actor(self, net: ActorCritic) -> QuoteNet:
        """Load the actor of a PPO :class:`ActorCritic` built with this net's widths and bounds."""
        if (net.hidden, net.activation, net.action_dim) != (self.hidden, self.activation, ACTION_SIZE):
            raise ValueError("the actor-critic's actor does not have this net's shape")
        if not (torch.allclose(net.action_low.cpu(), torch.tensor(self.depth_low))
                and torch.allclose(net.action_high.cpu(), torch.tensor(self.depth_high))):
            raise ValueError("the actor-critic's action bounds differ from this net's depth bounds")
        self.actor.load_state_dict(net.actor.state_dict())
        return self
