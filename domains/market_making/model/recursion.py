"""The exact, noise-free oracle for quoting policies whose depths depend only on (t, q).

When the mid has no mean reversion (:attr:`ModelScenario.recursion_exact`), the fills of such a policy do
not depend on the price path, and the price P&L of a step given the inventory q' held over it,
q'·(μ·dt + σ·√dt·ξ + J), is independent of everything before, with closed-form moments (:func:`price_step`):
mean q'μ·dt, variance q'²(σ²·dt + λ·dt·jump_size²), and CARA factor
E[exp(−γ·q'·move)] = exp(−γq'μ·dt + γ²q'²σ²·dt/2)·(1 − λ·dt + λ·dt·exp(γ²q'²·jump_size²/2)).
So a forward recursion over the distribution of q, carrying

- ``P(q)``: the probability of inventory q,
- ``E[X; q]`` and ``E[X²; q]``: the first two moments of the score X restricted to {inventory = q},
- ``log E[exp(−γX); q]``: the CARA moment, in log space,

gives the mean, the standard deviation and the certainty equivalent ``−(1/γ)·ln E[exp(−γX)]`` of the
episode score X = P&L − penalties with no sampling noise. It follows the simulator's order of events
(:mod:`.sim`): both sides may fill (independently, probabilities clipped to [0, 1]), a side at the
inventory bound does not fill, fees are paid per fill, then the mid moves and the step's penalties
φ·q'²·dt (plus terminal_penalty·q'² at the last step) are charged on the inventory after the fills.

Cost: O(N·n_q) with n_q the number of reachable inventories (2Q + 1, or 2N + 1 unbounded); N = 200 and
|q| ≤ 200 take a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from decisionlab.core import NotTractableError
from decisionlab.domains.market_making.baselines import depth_table, inventory_grid
from decisionlab.domains.market_making.model.scenario import ModelScenario


@dataclass(frozen=True)
class RecursionResult:
    """Exact statistics of a (t, q) policy (score X = P&L − penalties, currency; inventories in units).

    ``mean_spread`` is the time average of the expected quoted spread δ^b + δ^a over the steps where
    both sides quote (the ratio E[Σ spread·1{both}] / E[Σ 1{both}]); ``fill_rate`` is the share of
    posted quotes (one per side per step) that fill; ``fills_per_step`` the expected fills (both sides)
    per step; ``mean_abs_inventory`` the time average of E|q| after each step; ``terminal_distribution``
    ``[n_q]`` is P(q_T = q) on ``inventories [n_q]``.
    """

    mean_pnl: float
    std_pnl: float
    certainty_equivalent: float
    sharpe: float
    mean_terminal_inventory: float
    mean_abs_terminal_inventory: float
    std_terminal_inventory: float
    mean_spread: float
    fill_rate: float
    fills_per_step: float
    pnl_per_trade: float
    mean_abs_inventory: float
    inventories: np.ndarray
    terminal_distribution: np.ndarray

    def summary(self) -> dict[str, float]:
        """The scalar statistics by name."""
        return {name: float(getattr(self, name)) for name in self.__dataclass_fields__
                if name not in ("inventories", "terminal_distribution")}


def _shift_up(a: np.ndarray) -> np.ndarray:
    """``out[i] = a[i − 1]`` (mass moving from q to q + 1), nothing into the first cell."""
    out = np.empty_like(a)
    out[0] = 0.0
    out[1:] = a[:-1]
    return out


def _shift_down(a: np.ndarray) -> np.ndarray:
    """``out[i] = a[i + 1]`` (mass moving from q to q − 1), nothing into the last cell."""
    out = np.empty_like(a)
    out[-1] = 0.0
    out[:-1] = a[1:]
    return out


def _log_shift_up(a: np.ndarray) -> np.ndarray:
    out = np.empty_like(a)
    out[0] = -np.inf
    out[1:] = a[:-1]
    return out


def _log_shift_down(a: np.ndarray) -> np.ndarray:
    out = np.empty_like(a)
    out[-1] = -np.inf
    out[:-1] = a[1:]
    return out


def check_exact(scenario: ModelScenario) -> None:
    """Raise :class:`NotTractableError` unless the recursion is exact for ``scenario``."""
    if not scenario.recursion_exact:
        raise NotTractableError(
            "the exact recursion needs price moves independent of the state: mean_reversion must be 0 (got "
            f"{scenario.mean_reversion:g}); use the Monte-Carlo evaluation instead"
        )


@dataclass(frozen=True)
class PriceStep:
    """The price P&L of one step, q'·move, for each inventory q' held over it ``[n_q]`` (float64):
    its mean, its variance and ``log E[exp(−γ·q'·move)]``."""

    mean: np.ndarray
    variance: np.ndarray
    log_cara: np.ndarray


def price_step(scenario: ModelScenario, inventories: np.ndarray) -> PriceStep:
    """:class:`PriceStep` of ``inventories [n_q]`` (module docstring)."""
    s, q = scenario, np.asarray(inventories, dtype=np.float64)
    g, dt = s.risk_aversion, s.dt
    jump_probability, jump_variance = s.jump_intensity * dt, s.jump_size**2
    log_cara = -g * q * s.drift * dt + 0.5 * g**2 * q**2 * s.sigma**2 * dt
    if jump_probability > 0:
        # log((1 − p) + p·exp(γ²q²J²/2)) without overflow at large |q|
        log_cara = log_cara + np.logaddexp(np.log1p(-jump_probability) if jump_probability < 1 else -np.inf,
                                           np.log(jump_probability) + 0.5 * g**2 * q**2 * jump_variance)
    return PriceStep(mean=q * (s.drift * dt),
                     variance=q**2 * (s.sigma**2 * dt + jump_probability * jump_variance),
                     log_cara=log_cara)


def recursion_from_table(scenario: ModelScenario, depths: np.ndarray | torch.Tensor,
                         inventories: np.ndarray | torch.Tensor) -> RecursionResult:
    """Exact statistics of the policy whose depths are ``depths [N, n_q, 2]`` (price units) at step k and
    inventory ``inventories [n_q]`` (consecutive whole numbers covering every reachable inventory)."""
    check_exact(scenario)
    s = scenario
    depths = np.asarray(depths, dtype=np.float64)
    q = np.asarray(inventories, dtype=np.float64)
    n_steps, n_q = depths.shape[0], q.size
    if depths.shape != (s.steps, n_q, 2):
        raise ValueError(f"depths must be [{s.steps}, {n_q}, 2], got {list(depths.shape)}")
    if n_q > 1 and not np.all(np.diff(q) == 1):
        raise ValueError("inventories must be consecutive whole numbers")
    start = np.flatnonzero(q == s.initial_inventory)
    if start.size != 1:
        raise ValueError(f"inventories must contain the initial inventory {s.initial_inventory}")
    bounded = s.max_inventory is not None
    if not bounded and (q[0] > s.initial_inventory - n_steps or q[-1] < s.initial_inventory + n_steps):
        raise ValueError("an unbounded scenario needs inventories q0 − N..q0 + N (every reachable one)")

    g, adt, k, fee = s.risk_aversion, s.fill_intensity_a * s.dt, s.fill_decay_k, s.maker_fee
    price = price_step(s, q)
    bid_open = q < s.max_inventory if bounded else np.ones(n_q, dtype=bool)
    ask_open = q > -s.max_inventory if bounded else np.ones(n_q, dtype=bool)
    both_open = bid_open & ask_open
    quoted_sides = bid_open.astype(np.float64) + ask_open

    prob = np.zeros(n_q)
    prob[start] = 1.0
    first, second = np.zeros(n_q), np.zeros(n_q)  # E[X; q], E[X²; q]
    log_cara = np.full(n_q, -np.inf)  # log E[exp(−γX); q]
    log_cara[start] = 0.0
    spread_num = spread_den = fills = quotes = abs_inventory = 0.0
    with np.errstate(divide="ignore"):  # log(0) = −inf marks impossible events
        for step in range(n_steps):
            bid, ask = depths[step, :, 0], depths[step, :, 1]
            p_b = np.where(bid_open, np.minimum(adt * np.exp(-k * bid), 1.0), 0.0)
            p_a = np.where(ask_open, np.minimum(adt * np.exp(-k * ask), 1.0), 0.0)
            spread_num += float(np.sum(prob * both_open * (bid + ask)))
            spread_den += float(np.sum(prob * both_open))
            fills += float(np.sum(prob * (p_b + p_a)))
            quotes += float(np.sum(prob * quoted_sides))
            gain_b, gain_a = bid - fee, ask - fee
            # (bid, ask) events: none and both stay at q, bid only goes up, ask only goes down
            events = (
                ((1 - p_b) * (1 - p_a), 0.0, None),
                (p_b * p_a, gain_b + gain_a, None),
                (p_b * (1 - p_a), gain_b, "up"),
                ((1 - p_b) * p_a, gain_a, "down"),
            )
            new_prob, new_first, new_second = np.zeros(n_q), np.zeros(n_q), np.zeros(n_q)
            new_log = np.full(n_q, -np.inf)
            for weight, gain, move in events:
                mass = weight * prob
                moment1 = weight * (first + gain * prob)
                moment2 = weight * (second + 2.0 * gain * first + gain**2 * prob)
                log_term = np.log(weight) + log_cara - g * gain
                if move == "up":
                    mass, moment1, moment2 = _shift_up(mass), _shift_up(moment1), _shift_up(moment2)
                    log_term = _log_shift_up(log_term)
                elif move == "down":
                    mass, moment1, moment2 = _shift_down(mass), _shift_down(moment1), _shift_down(moment2)
                    log_term = _log_shift_down(log_term)
                new_prob += mass
                new_first += moment1
                new_second += moment2
                new_log = np.logaddexp(new_log, log_term)
            # the mid moves (independently of the past) and the step's penalties are charged on q'
            penalty = q**2 * (s.running_penalty * s.dt + (s.terminal_penalty if step == n_steps - 1 else 0.0))
            shift = price.mean - penalty  # the step's mean change of X given q'
            second = new_second + 2.0 * shift * new_first + (price.variance + shift**2) * new_prob
            first = new_first + shift * new_prob
            log_cara = new_log + price.log_cara + g * penalty
            prob = new_prob
            abs_inventory += float(np.sum(prob * np.abs(q)))

    mean = float(first.sum())
    std = float(np.sqrt(max(float(second.sum()) - mean**2, 0.0)))
    top = float(log_cara.max())
    certainty = -(top + float(np.log(np.exp(log_cara - top).sum()))) / g
    mean_q = float(np.sum(prob * q))
    return RecursionResult(
        mean_pnl=mean,
        std_pnl=std,
        certainty_equivalent=certainty,
        sharpe=mean / std if std > 0 else 0.0,
        mean_terminal_inventory=mean_q,
        mean_abs_terminal_inventory=float(np.sum(prob * np.abs(q))),
        std_terminal_inventory=float(np.sqrt(max(float(np.sum(prob * q**2)) - mean_q**2, 0.0))),
        mean_spread=spread_num / spread_den if spread_den > 0 else float("nan"),
        fill_rate=fills / quotes if quotes > 0 else 0.0,
        fills_per_step=fills / n_steps,
        pnl_per_trade=mean / fills if fills > 0 else 0.0,
        mean_abs_inventory=abs_inventory / n_steps,
        inventories=q,
        terminal_distribution=prob,
    )


def exact_statistics(scenario: ModelScenario, policy: object) -> RecursionResult:
    """:func:`recursion_from_table` of ``policy`` (``act(obs [B, 6]) -> depths [B, 2]``, reading only the
    time left and the inventory) tabulated by :func:`depth_table` on :func:`inventory_grid`."""
    check_exact(scenario)
    grid = inventory_grid(scenario)
    return recursion_from_table(scenario, depth_table(policy, scenario, grid), grid)
