"""Execution policies: static schedules (AC, TWAP, VWAP, best static), the pathwise network and the
discrete action grid used by value-based agents (Double DQN).

Every policy acts on the simulator's observation ``obs [B, 7]`` (see ``sim.OBSERVATION_FIELDS``) and returns
the shares to trade this step ``[B]`` on the same device. Static schedules are applied as *fractions of the
remaining shares*: on schedule this is the schedule itself; off schedule (a live state from the API) it is the
same problem re-optimised from that state, because every static problem here is homogeneous in the shares left.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from decisionlab.core import PolicyMismatchError, QNetwork, mlp
from decisionlab.domains.execution import oracles
from decisionlab.domains.execution.scenario import ExecutionScenario
from decisionlab.domains.execution.sim import (
    OBS_INVENTORY,
    OBS_LAST_RETURN,
    OBS_PRICE_MOVE,
    OBS_TIME_LEFT,
    OBS_TWAP_RATE,
    OBSERVATION_SIZE,
)


def steps_done_of(obs: torch.Tensor, horizon_steps: int) -> torch.Tensor:
    """Child orders already sent ``[B]`` (long), recovered from the time-left feature."""
    left = torch.round(obs[:, OBS_TIME_LEFT] * horizon_steps).long()
    return (horizon_steps - left).clamp(0, horizon_steps)


def remaining_of(obs: torch.Tensor, shares: float) -> torch.Tensor:
    """Shares still to trade ``[B]``."""
    return obs[:, OBS_INVENTORY].clamp_min(0.0) * shares


class SchedulePolicy:
    """A static schedule ``holdings [N + 1]`` executed as fractions of the remaining shares."""

    def __init__(
        self, holdings: np.ndarray, shares: float, name: str, device: torch.device | str = "cpu"
    ) -> None:
        self.name = name
        self.holdings = np.asarray(holdings, dtype=np.float64)
        self.horizon = self.holdings.size - 1
        self.shares = float(shares)
        fractions = np.append(oracles.holdings_to_fractions(self.holdings), 0.0)  # nothing after the horizon
        self.fractions = torch.tensor(fractions, dtype=torch.float32, device=device)

    @property
    def trades(self) -> np.ndarray:
        """Child orders of the schedule ``[N]`` (shares)."""
        return oracles.trades_of(self.holdings)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        fraction = self.fractions.to(obs.device)[steps_done_of(obs, self.horizon)]
        return fraction.to(obs.dtype) * remaining_of(obs, self.shares)


def ac_optimal_policy(scenario: ExecutionScenario, device: torch.device | str = "cpu") -> SchedulePolicy:
    """Closed-form Almgren–Chriss (sinh form, discrete κ) with the nominal constant η and γ."""
    return SchedulePolicy(oracles.ac_optimal_holdings(scenario), scenario.shares, "ac_optimal", device)


def twap_policy(scenario: ExecutionScenario, device: torch.device | str = "cpu") -> SchedulePolicy:
    return SchedulePolicy(oracles.twap_holdings(scenario.shares, scenario.horizon_steps), scenario.shares,
                          "twap", device)


def vwap_policy(scenario: ExecutionScenario, device: torch.device | str = "cpu") -> SchedulePolicy:
    """Child orders proportional to the scenario's expected volume profile (TWAP when flat)."""
    return SchedulePolicy(oracles.vwap_holdings(scenario.shares, scenario.volume_profile()), scenario.shares,
                          "vwap", device)


def static_expected_policy(scenario: ExecutionScenario, device: torch.device | str = "cpu") -> SchedulePolicy:
    """The exact best static schedule with E[η_k] plugged in (tridiagonal solve)."""
    return SchedulePolicy(oracles.static_expected_holdings(scenario), scenario.shares, "static_expected", device)


def static_best_policy(scenario: ExecutionScenario, device: torch.device | str = "cpu") -> SchedulePolicy:
    """The best static schedule including the impact-cost variance (numerical; = static_expected when
    liquidity is deterministic)."""
    return SchedulePolicy(oracles.best_static_holdings(scenario), scenario.shares, "static_best", device)


# --- learned: pathwise (HDPO) ---------------------------------------------------------------


def serving_copy(policy: ExecutionMLP | QGridPolicy, scenario: ExecutionScenario) -> Any:
    """``policy`` for ``scenario``: the same number of steps, any order size. Observations are
    scale-free, so the weights serve any order size; a shallow copy (the weights are shared) converts
    fractions with the scenario's shares."""
    if policy.horizon_steps != scenario.horizon_steps:
        raise PolicyMismatchError(
            f"this policy was trained for horizon_steps={policy.horizon_steps}, the scenario has "
            f"horizon_steps={scenario.horizon_steps}: train one for this horizon"
        )
    served = copy.copy(policy)
    served.shares = float(scenario.shares)
    return served


class ExecutionMLP(nn.Module):
    """Pathwise policy: an MLP from the observation to the fraction of the remaining shares to trade.

    ``trade = sigmoid(net(obs)) · remaining``. Inputs are already scale-free (fractions, σ-normalised
    returns, impact relative to η), so one set of hyper-parameters fits any order size; ``shares`` only
    converts the inventory fraction back to shares and is set to the served scenario's X when loaded.

    ``price_features=False`` hides the two price features (last return, move since arrival): the policy
    can then react to time, inventory and its own fills only. With constant impact such a policy is
    deterministic, i.e. a static schedule, so its optimum is exactly the AC trajectory; with the price
    features it can also do what Almgren & Lorenz (2007) call adaptive arrival-price trading, which beats
    every static schedule on mean(IS) + λ·var(IS).
    """

    name = "pathwise_mlp"
    kind = "execution_mlp"

    def __init__(
        self, horizon_steps: int, shares: float, hidden: tuple[int, ...] = (64, 64), price_features: bool = True
    ) -> None:
        super().__init__()
        self.horizon_steps = int(horizon_steps)
        self.shares = float(shares)
        self.hidden = tuple(int(h) for h in hidden)
        self.price_features = bool(price_features)
        mask = torch.ones(OBSERVATION_SIZE)
        if not self.price_features:
            mask[[OBS_LAST_RETURN, OBS_PRICE_MOVE]] = 0.0
        self.register_buffer("feature_mask", mask, persistent=False)
        self.net = mlp(OBSERVATION_SIZE, self.hidden, 1, activation="elu")

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "horizon_steps": self.horizon_steps, "shares": self.shares,
                "hidden": list(self.hidden), "price_features": self.price_features}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ExecutionMLP:
        return cls(config["horizon_steps"], config["shares"], tuple(config["hidden"]),
                   bool(config.get("price_features", True)))

    @classmethod
    def initial(cls, scenario: ExecutionScenario, device: torch.device | str = "cpu") -> ExecutionMLP:
        return cls(scenario.horizon_steps, scenario.shares).to(device)

    def for_scenario(self, scenario: ExecutionScenario) -> ExecutionMLP:
        return serving_copy(self, scenario)

    def fraction(self, obs: torch.Tensor) -> torch.Tensor:
        """Fraction of the remaining shares to trade ``[B]`` in (0, 1)."""
        return torch.sigmoid(self.net(obs * self.feature_mask).squeeze(1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fraction(obs) * remaining_of(obs, self.shares)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self(obs)


# --- discrete actions (Double DQN, SB3 DQN) -------------------------------------------------

GridKind = Literal["fraction", "twap_multiple"]


class ActionGrid:
    """A discrete action set over child-order sizes.

    ``kind="fraction"``: action i trades ``values[i]`` × remaining, ``values = linspace(0, 1, levels)``
    (0, 0.1, …, 1 for 11 levels). ``kind="twap_multiple"``: action i trades ``min(values[i] · twap_rate, 1)``
    × remaining, ``values = linspace(0, max_multiple, levels)``, i.e. multiples of the TWAP pace.
    """

    def __init__(self, kind: GridKind = "fraction", levels: int = 11, max_multiple: float = 3.0) -> None:
        if levels < 2:
            raise ValueError("an action grid needs at least 2 levels")
        self.kind, self.levels, self.max_multiple = kind, int(levels), float(max_multiple)
        top = 1.0 if kind == "fraction" else self.max_multiple
        self.values = torch.linspace(0.0, top, self.levels)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "levels": self.levels, "max_multiple": self.max_multiple}

    def fractions(self, obs: torch.Tensor) -> torch.Tensor:
        """Fraction of the remaining shares of every action ``[B, K]``."""
        values = self.values.to(obs.device, obs.dtype)
        if self.kind == "fraction":
            return values.expand(obs.shape[0], -1)
        return (values[None, :] * obs[:, OBS_TWAP_RATE : OBS_TWAP_RATE + 1]).clamp_max(1.0)

    def to_shares(self, obs: torch.Tensor, index: torch.Tensor, shares: float) -> torch.Tensor:
        """Shares to trade ``[B]`` for action indices ``index [B]``."""
        fraction = self.fractions(obs).gather(1, index.long().reshape(-1, 1)).squeeze(1)
        return fraction * remaining_of(obs, shares)

    def nearest(self, obs: torch.Tensor, trade: torch.Tensor, shares: float) -> torch.Tensor:
        """Index of the action closest to trading ``trade [B]`` shares (e.g. to imitate a schedule)."""
        remaining = remaining_of(obs, shares).clamp_min(1e-12)
        wanted = (trade / remaining).unsqueeze(1)
        return (self.fractions(obs) - wanted).abs().argmin(dim=1)


class QGridPolicy(nn.Module):
    """Greedy policy of a Q-network over an :class:`ActionGrid`: ``trade = grid(argmax_a Q(obs, a))``.

    ``q_net`` (a :meth:`~decisionlab.core.nets.heads.QNetwork.config`) makes ``self.q`` the core's
    :class:`~decisionlab.core.nets.heads.QNetwork` (dueling, scalar or HL-Gauss head): what the ``ddqn``
    algorithm trains. Without it ``self.q`` is a plain ``core.nets.mlp(7, hidden, levels)`` (the original
    ``q_grid`` layout, still loadable). The registry stores this module (kind ``q_grid``), so it
    round-trips like the pathwise network; inputs are scale-free, so it serves any order size.
    """

    name = "q_grid"
    kind = "q_grid"

    def __init__(self, horizon_steps: int, shares: float, grid: dict[str, Any] | None = None,
                 hidden: tuple[int, ...] = (64, 64), q_net: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.horizon_steps, self.shares = int(horizon_steps), float(shares)
        self.grid = ActionGrid(**(grid or {}))
        self.q: nn.Module
        if q_net is None:
            self.hidden = tuple(int(h) for h in hidden)
            self.q = mlp(OBSERVATION_SIZE, self.hidden, self.grid.levels, activation="relu")
        else:
            self.q = QNetwork.from_config(q_net)
            if (self.q.obs_dim, self.q.n_actions) != (OBSERVATION_SIZE, self.grid.levels):
                raise ValueError(f"q_net is {self.q.obs_dim} -> {self.q.n_actions}; a q_grid policy needs "
                                 f"{OBSERVATION_SIZE} -> {self.grid.levels} (the grid's levels)")
            self.hidden = self.q.hidden

    def config(self) -> dict[str, Any]:
        out = {"kind": self.kind, "horizon_steps": self.horizon_steps, "shares": self.shares,
               "grid": self.grid.config(), "hidden": list(self.hidden)}
        if isinstance(self.q, QNetwork):
            out["q_net"] = self.q.config()
        return out

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> QGridPolicy:
        return cls(config["horizon_steps"], config["shares"], config.get("grid"), tuple(config["hidden"]),
                   config.get("q_net"))

    @classmethod
    def initial(cls, scenario: ExecutionScenario, device: torch.device | str = "cpu") -> QGridPolicy:
        return cls(scenario.horizon_steps, scenario.shares, ActionGrid("fraction", 21).config()).to(device)

    def for_scenario(self, scenario: ExecutionScenario) -> QGridPolicy:
        return serving_copy(self, scenario)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values ``[B, K]`` (the expectation over the bins for an HL-Gauss head)."""
        return self.q.q_values(obs) if isinstance(self.q, QNetwork) else self.q(obs)

    @torch.no_grad()
    def action_index(self, obs: torch.Tensor) -> torch.Tensor:
        """Greedy grid indices ``[B]``."""
        return self(obs).argmax(dim=1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.grid.to_shares(obs, self.action_index(obs), self.shares)
