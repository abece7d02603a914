"""The exact optimum of the discrete model market: a backward dynamic programme over (step, inventory).

The score is the certainty equivalent of X = P&L − penalties under CARA risk aversion γ, so the optimum
minimises ``E[exp(−γX)]``. Wealth factors out of the exponential and, without mean reversion, the
price moves are independent of the state (:func:`.recursion.price_step`), so the value depends on the
step and the inventory alone: ``W_t(q) = min E[exp(−γ·X_{t..N})]`` with ``W_N = 1``. One step, with
``Z(q') = exp(log_cara(q') + γ·penalty(q'))·W_{t+1}(q')`` the factor of everything after the fills:

    W_t(q) = min over (δ^b, δ^a) of  (1 − p_b)(1 − p_a)·Z(q) + p_b(1 − p_a)·e^{−γ(δ^b − fee)}·Z(q + 1)
                                    + (1 − p_b)·p_a·e^{−γ(δ^a − fee)}·Z(q − 1) + p_b·p_a·e^{−γ(δ^b + δ^a − 2fee)}·Z(q)

with ``p = min(1, A·dt·e^{−kδ})`` (0 for a side the inventory bound closes). For a fixed ask the
objective is ``C₀ + p_b·(e^{−γδ^b}·D − C₀)`` with C₀, D ≥ 0 independent of δ^b, minimised at
``δ^b = (1/γ)·ln((k + γ)·D / (k·C₀))`` (the root of its derivative; below ``ln(A·dt)/k`` the fill is
certain and a deeper quote only pays more), and the same holds for the ask given the bid. Alternating
these two exact best responses converges to the joint minimum in a few iterations. Depths are kept in
the learners' action range (:func:`~decisionlab.domains.market_making.quotes.depth_bounds`), so a
learner and the optimum choose from the same set.

Everything runs in log space (W spans hundreds of orders of magnitude at large |q|). Cost O(N·n_q·iters):
the standard set-up (200 steps, |q| ≤ 10) solves in milliseconds. With ``depth_grid`` the minimum is
taken over pairs of grid depths instead (the brute-force tests compare against it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from decisionlab.core import NotTractableError
from decisionlab.domains.market_making.baselines import inventory_grid
from decisionlab.domains.market_making.model.recursion import check_exact, price_step
from decisionlab.domains.market_making.model.scenario import ModelScenario
from decisionlab.domains.market_making.params import QuotingScenario
from decisionlab.domains.market_making.quotes import OBS_INVENTORY, OBS_TIME_LEFT, depth_bounds

DP_MAX_CELLS = 4_000_000
"""steps × inventories the DP solves at most: about 3 s on one core (2,000 steps × 2,001 inventories took 5 s)."""
BEST_RESPONSE_ROUNDS = 60
BEST_RESPONSE_TOLERANCE = 1e-13  # price units: alternating best responses stop once no depth moves more


@dataclass(frozen=True)
class DPSolution:
    """The optimal depths ``[N, n_q, 2]`` (price units) at step t and inventory ``inventories [n_q]``, and
    ``log W_t(q)`` ``[N + 1, n_q]``; ``certainty_equivalent`` = −(1/γ)·log W_0(q0)."""

    depths: np.ndarray
    log_value: np.ndarray
    inventories: np.ndarray
    certainty_equivalent: float


def _log_fill(log_adt: float, k: float, depth: np.ndarray, open_side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log p, log(1 − p))`` of a side's fill at ``depth`` (−inf / 0 on a closed side)."""
    log_p = np.minimum(log_adt - k * depth, 0.0)
    log_p = np.where(open_side, log_p, -np.inf)
    with np.errstate(divide="ignore"):
        log_not = np.where(open_side, np.log1p(-np.exp(log_p)), 0.0)
    return log_p, log_not


def _objective(log_z: np.ndarray, log_up: np.ndarray, log_down: np.ndarray, bid: np.ndarray, ask: np.ndarray,
               bid_open: np.ndarray, ask_open: np.ndarray, g: float, fee: float, log_adt: float,
               k: float) -> np.ndarray:
    """log of the step's objective at depths ``bid``, ``ask`` (any shape broadcasting with ``[n_q]``)."""
    lb, lnb = _log_fill(log_adt, k, bid, bid_open)
    la, lna = _log_fill(log_adt, k, ask, ask_open)
    gain_b, gain_a = -g * (bid - fee), -g * (ask - fee)
    terms = np.stack(np.broadcast_arrays(lnb + lna + log_z, lb + lna + gain_b + log_up, lnb + la + gain_a + log_down,
                                         lb + la + gain_b + gain_a + log_z))
    top = terms.max(axis=0)
    safe = np.where(np.isfinite(top), top, 0.0)
    return safe + np.log(np.exp(terms - safe).sum(axis=0))


def _best_response(log_c0: np.ndarray, log_d: np.ndarray, g: float, k: float, low: float, high: float) -> np.ndarray:
    """argmin over δ of ``C₀ + p(δ)·(e^{−γδ}·D − C₀)``: ``(1/γ)·ln((k + γ)D/(kC₀))`` clipped to [low, high]."""
    depth = (math.log((k + g) / k) + log_d - log_c0) / g
    return np.clip(depth, low, high)


def _step(log_z: np.ndarray, bid_open: np.ndarray, ask_open: np.ndarray, s: QuotingScenario, low: float,
          high: float, grid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One backward step: optimal bid and ask ``[n_q]`` and ``log W_t`` ``[n_q]`` from ``log Z [n_q]``."""
    g, k, fee = s.risk_aversion, s.fill_decay_k, s.maker_fee
    log_adt = math.log(s.fill_intensity_a * s.dt)
    # neighbours; off the grid (unreachable from the start) the edge value stands in
    log_up = np.append(log_z[1:], log_z[-1])
    log_down = np.insert(log_z[:-1], 0, log_z[0])
    if grid is not None:
        values = _objective(log_z[:, None, None], log_up[:, None, None], log_down[:, None, None],
                            grid[None, :, None], grid[None, None, :], bid_open[:, None, None],
                            ask_open[:, None, None], g, fee, log_adt, k)
        flat = values.reshape(values.shape[0], -1).argmin(axis=1)
        bid, ask = grid[flat // grid.size], grid[flat % grid.size]
    else:
        # a depth where the fill is certain only pays more: the floor of the best response
        floor = max(low, log_adt / k)
        bid = np.full(log_z.shape, max(floor, min(high, 1.0 / k)))
        ask = bid.copy()
        for _ in range(BEST_RESPONSE_ROUNDS):
            la, lna = _log_fill(log_adt, k, ask, ask_open)
            gain_a = -g * (ask - fee)
            log_c0 = np.logaddexp(lna + log_z, la + gain_a + log_down)
            log_d = np.logaddexp(lna + log_up, la + gain_a + log_z) + g * fee
            new_bid = np.where(bid_open, _best_response(log_c0, log_d, g, k, floor, high), high)
            lb, lnb = _log_fill(log_adt, k, new_bid, bid_open)
            gain_b = -g * (new_bid - fee)
            log_c0 = np.logaddexp(lnb + log_z, lb + gain_b + log_up)
            log_d = np.logaddexp(lnb + log_down, lb + gain_b + log_z) + g * fee
            new_ask = np.where(ask_open, _best_response(log_c0, log_d, g, k, floor, high), high)
            moved = max(float(np.abs(new_bid - bid).max()), float(np.abs(new_ask - ask).max()))
            bid, ask = new_bid, new_ask
            if moved < BEST_RESPONSE_TOLERANCE:
                break
    log_w = _objective(log_z, log_up, log_down, bid, ask, bid_open, ask_open, g, fee, log_adt, k)
    return bid, ask, log_w


def solve(scenario: ModelScenario, depth_grid: np.ndarray | None = None) -> DPSolution:
    """The optimal (step, inventory) policy of ``scenario`` and its value (module docstring). Raises
    :class:`NotTractableError` with mean reversion or a table beyond :data:`DP_MAX_CELLS` cells."""
    check_exact(scenario)
    s = scenario
    q = inventory_grid(s).numpy().astype(np.float64)
    n, n_q = s.steps, q.size
    if n * n_q > DP_MAX_CELLS:
        raise NotTractableError(f"dp_optimal: {n:,} steps × {n_q:,} inventories exceed {DP_MAX_CELLS:,} cells; "
                                "use fewer steps (horizon/dt) or set max_inventory")
    low, high = depth_bounds(s)
    bounded = s.max_inventory is not None
    bid_open = q < s.max_inventory if bounded else np.ones(n_q, dtype=bool)
    ask_open = q > -s.max_inventory if bounded else np.ones(n_q, dtype=bool)
    grid = None if depth_grid is None else np.asarray(depth_grid, dtype=np.float64)
    price = price_step(s, q)
    depths = np.empty((n, n_q, 2))
    log_value = np.zeros((n + 1, n_q))
    for step in range(n - 1, -1, -1):
        penalty = q**2 * (s.running_penalty * s.dt + (s.terminal_penalty if step == n - 1 else 0.0))
        log_z = price.log_cara + s.risk_aversion * penalty + log_value[step + 1]
        bid, ask, log_value[step] = _step(log_z, bid_open, ask_open, s, low, high, grid)
        depths[step, :, 0], depths[step, :, 1] = bid, ask
    start = int(np.flatnonzero(q == s.initial_inventory)[0])
    return DPSolution(depths=depths, log_value=log_value, inventories=q,
                      certainty_equivalent=float(-log_value[0, start] / s.risk_aversion))


@lru_cache(maxsize=4)
def cached_solution(scenario: ModelScenario) -> DPSolution:
    """:func:`solve`, once per scenario (scenarios are frozen and hashable). Few entries: a table at the cell
    limit holds 64 MB of depths (the serving cache keeps the built policies it needs)."""
    return solve(scenario)


def dp_problem(scenario: QuotingScenario) -> str | None:
    """Why :class:`DPOptimal` cannot serve ``scenario`` (None when it can). For ``PolicySpec.check``."""
    if not isinstance(scenario, ModelScenario):
        return "dp_optimal solves the model market only (the replay's fills depend on the book, not on (t, q))"
    if not scenario.recursion_exact:
        return (f"dp_optimal needs price moves independent of the state: mean_reversion must be 0 (got "
                f"{scenario.mean_reversion:g}); the optimum then depends on the mid too")
    cells = scenario.steps * int(inventory_grid(scenario).numel())
    if cells > DP_MAX_CELLS:
        return (f"dp_optimal: {cells:,} steps × inventories exceed {DP_MAX_CELLS:,} cells; use fewer steps "
                "(horizon/dt) or set max_inventory")
    return None


class DPOptimal:
    """The exact optimum of the model market as a policy: the :func:`solve` table looked up at the step
    ``N − round(τ/dt)`` and the inventory (clamped to the table) of each observation ``[B, 6]`` -> ``[B, 2]``."""

    name = "dp_optimal"

    def __init__(self, scenario: ModelScenario) -> None:
        problem = dp_problem(scenario)
        if problem is not None:
            raise NotTractableError(problem)
        self.scenario = scenario
        solution = cached_solution(scenario)
        self.certainty_equivalent = solution.certainty_equivalent
        self._table = torch.from_numpy(solution.depths)  # [N, n_q, 2] float64
        self._first_inventory = int(solution.inventories[0])

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        s = self.scenario
        table = self._table.to(obs.device)
        steps_done = (s.steps - torch.round(obs[:, OBS_TIME_LEFT].double() / s.dt)).clamp(0, s.steps - 1).long()
        column = (obs[:, OBS_INVENTORY].round().long() - self._first_inventory).clamp(0, table.shape[1] - 1)
        return table[steps_done, column].to(obs.dtype)
