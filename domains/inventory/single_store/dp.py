"""Exact dynamic programming for the single-store lost-sales system with Poisson demand.

State at the moment of ordering: ``y`` = stock on hand after this period's arrival, and the
orders still in transit ``r_1..r_{L-1}`` (``r_1`` arrives next period). Ordering ``q`` costs
nothing directly; the period costs ``c(y) = E[h(y−D)⁺ + p(D−y)⁺]`` and the next state is
``((y−D)⁺ + r_1, r_2, …, r_{L−1}, q)``. Relative value iteration on a truncated grid gives the
minimal long-run average cost and the optimal order for every state (Zipkin 2008 computed the
published table this way).

The grid bounds come from the backlog base-stock level (an upper bound on a sensible inventory
position under lost sales) and are checked after solving: if the optimal policy ever asks for
the largest order on the grid, the grid is widened and the solve repeated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy import stats

from decisionlab.core import BUDGET_ENV, NotTractableError, build_budget_bytes, persisted

MAX_STATES = 3_000_000


@dataclass(frozen=True)
class LostSalesDPSolution:
    """``order[y, r_1, …, r_{L−1}]``: optimal integer order; ``average_cost`` per period."""

    average_cost: float
    order: np.ndarray
    max_on_hand: int
    max_order: int
    iterations: int


def _period_cost(max_on_hand: int, pmf: np.ndarray, h: float, p: float) -> np.ndarray:
    """``c(y)`` for y = 0..max_on_hand: expected holding plus lost-sales cost of one period."""
    y = np.arange(max_on_hand + 1)[:, None]
    d = np.arange(pmf.size)[None, :]
    return (pmf * (h * np.maximum(y - d, 0) + p * np.maximum(d - y, 0))).sum(axis=1)


def _leftover_matrix(max_on_hand: int, pmf: np.ndarray) -> np.ndarray:
    """``T[y, z] = P((y − D)⁺ = z)``."""
    size = max_on_hand + 1
    matrix = np.zeros((size, size))
    for y in range(size):
        tail = pmf[: y + 1] if y + 1 <= pmf.size else np.pad(pmf, (0, y + 1 - pmf.size))
        # leftover z = y − d for d ≤ y (d = y − z); every d > y leaves zero
        matrix[y, : y + 1] = tail[::-1]
        matrix[y, 0] += max(0.0, 1.0 - tail.sum())
    return matrix


def _solve(
    lead_time: int, h: float, p: float, pmf: np.ndarray, max_on_hand: int, max_order: int,
    tol: float, max_iter: int,
) -> LostSalesDPSolution:
    cost = _period_cost(max_on_hand, pmf, h, p)
    leftover = _leftover_matrix(max_on_hand, pmf)
    n_y, n_q = max_on_hand + 1, max_order + 1
    if lead_time == 0:
        # Order arrives at once: state = leftover x, choose y = x + q.
        y_of = np.minimum(np.arange(n_y)[:, None] + np.arange(n_q)[None, :], max_on_hand)
        value = np.zeros(n_y)
        for it in range(1, max_iter + 1):  # noqa: B007 (it is reported)
            q_values = cost[y_of] + (leftover @ value)[y_of]
            new = q_values.min(axis=1)
            diff = new - value
            value = new - new[0]
            if diff.max() - diff.min() < tol:
                break
        order = q_values.argmin(axis=1)
        return LostSalesDPSolution(float(0.5 * (diff.max() + diff.min())), order, max_on_hand, max_order, it)

    rest_shape = (n_q,) * (lead_time - 1)  # r_2..r_L where r_L is the new order
    value = np.zeros((n_y, *((n_q,) * (lead_time - 1))))
    # Index of the next on-hand level for every (leftover z, arriving r_1), clipped to the grid.
    next_y = np.minimum(np.arange(n_y)[:, None] + np.arange(n_q)[None, :], max_on_hand)
    diff = np.zeros(1)
    for it in range(1, max_iter + 1):  # noqa: B007 (it is reported)
        flat = value.reshape(n_y, -1)  # [z', rest]; rest = r_2..r_{L} after the shift
        # expected[y, r_1, rest] = Σ_z T[y, z] · V[min(z + r_1, Y), rest]
        shifted = flat[next_y]  # [z, r_1, rest]
        expected = np.einsum("yz,zrk->yrk", leftover, shifted)
        expected = expected.reshape(n_y, n_q, *rest_shape)
        # The last axis of ``expected`` is the new order q: minimise over it.
        best = expected.min(axis=-1)
        new = cost.reshape((n_y,) + (1,) * (lead_time - 1)) + best
        diff = new - value
        value = new - new.flat[0]
        if diff.max() - diff.min() < tol:
            break
    order = expected.argmin(axis=-1)
    return LostSalesDPSolution(float(0.5 * (diff.max() + diff.min())), order, max_on_hand, max_order, it)


@lru_cache(maxsize=32)
def solve_lost_sales(
    lead_time: int, holding_cost: float, underage_cost: float, demand_mean: float,
    tol: float = 1e-7, max_iter: int = 5000,
) -> LostSalesDPSolution:
    """Optimal average cost and policy for Poisson demand (see the module docstring), solved once per
    data dir (the solution is kept there: a restart or another process reads it).

    Raises :class:`NotTractableError` when the state grid would exceed ``MAX_STATES`` or its memory
    the build budget (:func:`dp_memory_bytes`).
    """
    check_budget(lead_time, holding_cost, underage_cost, demand_mean)
    key = {"lead_time": lead_time, "holding_cost": holding_cost, "underage_cost": underage_cost,
           "demand_mean": demand_mean, "tol": tol, "max_iter": max_iter}

    def solve() -> dict[str, object]:
        found = _solve_grid(lead_time, holding_cost, underage_cost, demand_mean, tol, max_iter)
        return {"average_cost": found.average_cost, "order": torch.as_tensor(found.order),
                "max_on_hand": found.max_on_hand, "max_order": found.max_order, "iterations": found.iterations}

    values = persisted("inventory.single_store.dp", 1, key, solve)
    return LostSalesDPSolution(float(values["average_cost"]), values["order"].numpy(), int(values["max_on_hand"]),
                               int(values["max_order"]), int(values["iterations"]))


def grid_sizes(lead_time: int, holding_cost: float, underage_cost: float, demand_mean: float) -> tuple[int, int, int]:
    """``(pmf size, max on hand, max order)`` of the first grid the DP solves on."""
    pmf_size = int(stats.poisson.ppf(1 - 1e-12, demand_mean)) + 2
    fractile = underage_cost / (underage_cost + holding_cost)
    base_stock = int(stats.poisson.ppf(fractile, demand_mean * (lead_time + 1)))
    return pmf_size, base_stock + 2, max(int(stats.poisson.ppf(1 - 1e-4, demand_mean)), 2)


def dp_memory_bytes(lead_time: int, holding_cost: float, underage_cost: float, demand_mean: float) -> float:
    """Bytes the first solve holds at once: the leftover matrix (Y²), the period costs (Y·D) and the
    value arrays (Y·Q^L, a few of them), in float64."""
    pmf_size, max_on_hand, max_order = grid_sizes(lead_time, holding_cost, underage_cost, demand_mean)
    y, q = max_on_hand + 1.0, max_order + 1.0
    return 8.0 * (y * y + 3.0 * y * pmf_size + 4.0 * y * q ** max(lead_time, 1))


def check_budget(lead_time: int, holding_cost: float, underage_cost: float, demand_mean: float) -> None:
    """A :class:`NotTractableError` naming the parameters and the memory when the DP would not fit."""
    needed = dp_memory_bytes(lead_time, holding_cost, underage_cost, demand_mean)
    limit = build_budget_bytes()
    if needed > limit:
        raise NotTractableError(
            f"the exact DP for lead_time={lead_time}, demand_mean={demand_mean:g} would need about "
            f"{needed / 1024**3:,.1f} GiB (the build budget is {limit / 1024**3:.1f} GiB, {BUDGET_ENV}); use "
            "base_stock, capped_base_stock, myopic or a trained policy instead"
        )


def _solve_grid(
    lead_time: int, holding_cost: float, underage_cost: float, demand_mean: float, tol: float, max_iter: int,
) -> LostSalesDPSolution:
    pmf = stats.poisson.pmf(np.arange(int(stats.poisson.ppf(1 - 1e-12, demand_mean)) + 2), demand_mean)
    pmf[-1] += 1 - pmf.sum()
    fractile = underage_cost / (underage_cost + holding_cost)
    base_stock = int(stats.poisson.ppf(fractile, demand_mean * (lead_time + 1)))
    max_on_hand = base_stock + 2
    max_order = max(int(stats.poisson.ppf(1 - 1e-4, demand_mean)), 2)
    while True:
        states = (max_on_hand + 1) * (max_order + 1) ** lead_time
        if states > MAX_STATES:
            raise NotTractableError(
                f"the exact DP needs about {states:,} state-action cells for lead_time={lead_time}, "
                f"demand_mean={demand_mean:g} (limit {MAX_STATES:,}); use base_stock, "
                "capped_base_stock, myopic or a trained policy instead"
            )
        solution = _solve(lead_time, holding_cost, underage_cost, pmf, max_on_hand, max_order, tol, max_iter)
        if solution.order.max() < max_order or max_order >= max_on_hand:
            return solution
        max_order = min(max_on_hand, math.ceil(max_order * 1.3))
