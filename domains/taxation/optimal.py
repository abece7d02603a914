"""The exact best bracket schedule on a rate grid, in seconds instead of enumerating G^K schedules.

Three facts make it exact and fast (proofs in docs/taxation.md):

1. **Separable objective.** With workers in ascending skill, incomes and net incomes ascend too
   (single crossing of the labour cost; rates ≤ 1), so the Gini is linear in the sorted net incomes and
   equality × productivity = Σ_i [(1 − κ_i)·z_i + κ_i·T_i] with κ_i = (2i − N − 1)/(N − 1); welfare =
   Σ_i [ω_i·(z_i − T_i − cost_i) + T_i/N]. Each worker adds ``p_i·z + q_i·T + e_i·cost``.
2. **A threshold between two halves.** Split the brackets into a lower and an upper half at cut-off
   ``b_s``. A worker's best upper option minus its best lower option never decreases with skill, so the
   workers choosing the upper half are a suffix ``i ≥ m``, and only workers whose no-tax income
   exceeds ``b_s`` can be in it (no non-negative tax raises an income).
3. **Meet in the middle.** For each lower-half schedule ``l`` and upper-half schedule ``h`` the total is
   ``F_L(l, m) + F_U(h, m)``, and the pair has threshold ``m`` exactly when worker ``m − 1`` prefers the
   lower half and worker ``m`` the upper one: two inequalities, one per side. For each ``m`` the best
   pair is a 2-D dominance maximum, answered with √n blocks of sorted points.

The result is checked against brute force on coarse grids by the tests.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from decisionlab.domains.taxation.scenario import Objective, OneStepScenario

NEG = -np.inf


@dataclass(frozen=True)
class Workers:
    """Per worker (ascending skill): skill ``w``, no-tax income, and the objective's coefficients of
    income ``p``, tax ``q`` and labour cost ``e``."""

    skills: np.ndarray
    untaxed: np.ndarray
    p: np.ndarray
    q: np.ndarray
    e: np.ndarray


def workers(scenario: OneStepScenario, objective: Objective | None = None) -> Workers:
    n, alpha = scenario.n_agents, scenario.skill_pareto_alpha
    u = (np.arange(1, n + 1) - 0.5) / n
    w = scenario.skill_min * (1.0 - u) ** (-1.0 / alpha)
    c, delta = scenario.labour_cost, scenario.labour_exponent
    untaxed = w * (w / c) ** (1.0 / (delta - 1.0))
    objective = objective or scenario.objective
    if objective == "equality_times_productivity":
        kappa = (2.0 * np.arange(1, n + 1) - n - 1.0) / (n - 1.0) if n > 1 else np.zeros(1)
        return Workers(w, untaxed, 1.0 - kappa, kappa, np.zeros(n))
    omega = (1.0 / w) / (1.0 / w).sum()
    return Workers(w, untaxed, omega, 1.0 / n - omega, -omega)


@dataclass(frozen=True)
class Options:
    """``[N, K, G]`` per worker, bracket and grid rate: the best income inside the bracket, the utility
    before the tax owed below the bracket (``g``), the objective's share before that tax (``value``)."""

    income: np.ndarray
    g: np.ndarray
    value: np.ndarray


def options(scenario: OneStepScenario, crowd: Workers, grid: np.ndarray) -> Options:
    cutoffs = np.asarray(scenario.bracket_cutoffs, dtype=float)
    tops = np.append(cutoffs[1:], np.inf)
    c, delta = scenario.labour_cost, scenario.labour_exponent
    w = crowd.skills[:, None, None]
    interior = w * ((1.0 - grid)[None, None, :] * w / c) ** (1.0 / (delta - 1.0))
    z = np.clip(interior, cutoffs[None, :, None], tops[None, :, None])
    local_tax = grid[None, None, :] * (z - cutoffs[None, :, None])
    cost = c / delta * (z / w) ** delta
    g = z - local_tax - cost
    value = crowd.p[:, None, None] * z + crowd.q[:, None, None] * local_tax + crowd.e[:, None, None] * cost
    return Options(z, g, value)


@dataclass
class Half:
    """Every schedule of brackets ``brackets`` (rows, in ``itertools.product`` order of grid indices):
    ``lump [S]`` tax owed over these brackets' full widths; per tracked worker ``best [S, P]`` (the best
    utility among these brackets, relative to the tax owed below them) and ``value [S, P]`` (its share of
    the objective, same reference); ``settled [S]`` the summed shares of workers that never leave."""

    lump: np.ndarray
    best: np.ndarray
    value: np.ndarray
    settled: np.ndarray


def enumerate_half(opts: Options, crowd: Workers, brackets: range, widths: np.ndarray, grid: np.ndarray,
                   tracked: np.ndarray, settled: np.ndarray) -> Half:
    """Best options of workers ``tracked`` (indices) and the summed share of ``settled`` over every
    schedule of ``brackets``; ties go to the lower bracket (an option replaces only a strictly better one)."""
    lump = np.zeros(1)
    groups = [tracked, settled]
    best = [np.full((1, len(idx)), NEG) for idx in groups]
    value = [np.zeros((1, len(idx))) for idx in groups]
    for k in brackets:
        for j, idx in enumerate(groups):
            here_g = opts.g[idx, k, :].T[None]  # [1, G, P]
            here_v = opts.value[idx, k, :].T[None]
            owed = lump[:, None, None]  # the tax owed below bracket k, per schedule so far
            cand = here_g - owed
            take = cand > best[j][:, None, :]
            shape = (len(lump) * len(grid), len(idx))
            best[j] = np.where(take, cand, best[j][:, None, :]).reshape(shape)
            value[j] = np.where(take, here_v + crowd.q[idx] * owed, value[j][:, None, :]).reshape(shape)
        lump = (lump[:, None] + grid[None, :] * widths[k]).reshape(-1)
    return Half(lump, best[0], value[0], value[1].sum(1))


def dominance_max(px: np.ndarray, py: np.ndarray, pf: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """For each query ``q``: max of ``pf`` over points with ``px ≤ qx[q]`` and ``py > qy[q]`` (−inf if none).

    Points sorted by ``px``; blocks of √n points sorted by ``py`` with suffix maxima answer the blocks a
    query covers whole; its one partial block is scanned."""
    n = len(px)
    out = np.full(len(qx), NEG)
    if n == 0 or len(qx) == 0:
        return out
    order = np.argsort(px, kind="stable")
    px, py, pf = px[order], py[order], pf[order]
    covered = np.searchsorted(px, qx, side="right")  # the valid points are the first `covered`
    size = max(1, math.isqrt(n))
    for start in range(0, n, size):
        stop = min(start + size, n)
        whole = covered >= stop
        if not whole.any():
            continue
        by_y = np.argsort(py[start:stop], kind="stable")
        ys, fs = py[start:stop][by_y], pf[start:stop][by_y]
        suffix = np.maximum.accumulate(fs[::-1])[::-1]
        suffix = np.append(suffix, NEG)
        first = np.searchsorted(ys, qy[whole], side="right")  # first point with py > qy
        out[whole] = np.maximum(out[whole], suffix[first])
    rows = np.flatnonzero(covered % size != 0)  # a block partly covered (the last one may be whole too)
    if len(rows):
        start = (covered[rows] // size) * size
        offsets = np.arange(size)
        idx = start[:, None] + offsets[None, :]
        inside = idx < covered[rows, None]
        idx = np.minimum(idx, n - 1)
        ok = inside & (py[idx] > qy[rows, None])
        best = np.where(ok, pf[idx], NEG).max(1)
        out[rows] = np.maximum(out[rows], best)
    return out


@dataclass(frozen=True)
class Schedule:
    """The best schedule found: ``rates [K]``, its objective ``value``, ``free [K]`` (brackets whose rate
    can be anything on the grid without changing any worker's outcome), schedules ``searched`` (G^K)."""

    rates: tuple[float, ...]
    value: float
    free: tuple[bool, ...]
    searched: int


def _split_cost(n_grid: int, n_brackets: int, s: int, n_workers: int, pending: int) -> float:
    low, high = n_grid ** s, n_grid ** (n_brackets - s)
    big, small = max(low, high), min(low, high)
    return low * n_workers * s + high * max(pending, 1) * (n_brackets - s) \
        + (pending + 1) * (big * 8 + small * math.isqrt(big) * 2)


def best_schedule(scenario: OneStepScenario, objective: Objective | None = None,
                  grid: np.ndarray | None = None) -> Schedule:
    """The exact maximiser of ``objective`` (default the scenario's) over every schedule of rates on
    ``grid`` (default the scenario's rate grid), workers answering with exact best responses."""
    grid = np.asarray(scenario.rate_grid if grid is None else grid, dtype=float)
    crowd = workers(scenario, objective)
    opts = options(scenario, crowd, grid)
    cutoffs = np.asarray(scenario.bracket_cutoffs, dtype=float)
    widths = np.append(np.diff(cutoffs), 0.0)
    k_count, n = len(cutoffs), scenario.n_agents
    if k_count == 1:
        split = 1
    else:
        split = min(range(1, k_count), key=lambda s: _split_cost(
            len(grid), k_count, s, n, int((crowd.untaxed > cutoffs[s]).sum())))
    first_pending = int((crowd.untaxed <= cutoffs[split]).sum()) if split < k_count else n
    everyone = np.arange(n)
    pending = everyone[first_pending:]
    low = enumerate_half(opts, crowd, range(split), widths, grid, pending, everyone[:first_pending])
    high = enumerate_half(opts, crowd, range(split, k_count), widths, grid, pending, everyone[:0])
    scale = 1e-9 * (1.0 + float(np.abs(opts.g).max()))
    # a[i] = the best lower utility measured from the tax owed at b_s: upper wins iff high.best > a
    a = low.best + low.lump[:, None]
    q_suffix = np.append(np.cumsum(crowd.q[::-1])[::-1], 0.0)  # Σ_{i ≥ m} q_i
    low_prefix = np.concatenate([np.zeros((len(low.lump), 1)), np.cumsum(low.value, 1)], 1)  # [S_l, P + 1]
    high_suffix = np.concatenate([np.cumsum(high.value[:, ::-1], 1)[:, ::-1], np.zeros((len(high.lump), 1))], 1)
    best_value, best_pair = NEG, (0, 0)
    count = len(pending)
    for j in range(count + 1):  # j pending workers stay below: threshold m = first_pending + j
        m = first_pending + j
        f_low = low.settled + low_prefix[:, j] + low.lump * q_suffix[m]
        f_high = high_suffix[:, j]
        # worker m − 1 stays low: high.best[:, j − 1] ≤ a[:, j − 1] (+ tolerance: ties go low)
        # worker m goes high:     high.best[:, j]     > a[:, j]     (+ tolerance)
        lo_x = np.full(len(low.lump), np.inf) if j == 0 else a[:, j - 1] + scale
        lo_y = np.full(len(low.lump), NEG) if j == count else a[:, j] + scale
        hi_x = np.full(len(high.lump), NEG) if j == 0 else high.best[:, j - 1]
        hi_y = np.full(len(high.lump), np.inf) if j == count else high.best[:, j]
        if len(high.lump) >= len(low.lump):  # points: the bigger half
            found = dominance_max(hi_x, hi_y, f_high, lo_x, lo_y) + f_low
            row = int(np.argmax(found))
            if found[row] > best_value:
                ok = (hi_x <= lo_x[row]) & (hi_y > lo_y[row])
                best_value, best_pair = float(found[row]), (row, int(np.argmax(np.where(ok, f_high, NEG))))
        else:
            found = dominance_max(-lo_x, -lo_y, f_low, -hi_x, -hi_y) + f_high
            row = int(np.argmax(found))
            if found[row] > best_value:
                ok = (-lo_x <= -hi_x[row]) & (-lo_y > -hi_y[row])
                best_value, best_pair = float(found[row]), (int(np.argmax(np.where(ok, f_low, NEG))), row)
    low_index = np.unravel_index(best_pair[0], (len(grid),) * split) if split else ()
    high_index = np.unravel_index(best_pair[1], (len(grid),) * (k_count - split))
    rates = tuple(float(grid[i]) for i in (*low_index, *high_index))
    return Schedule(rates, best_value, free_brackets(scenario, rates, grid), len(grid) ** k_count)


def free_brackets(scenario: OneStepScenario, rates: tuple[float, ...], grid: np.ndarray) -> tuple[bool, ...]:
    """Which brackets' rates could be any grid value without changing any worker's income or net income."""
    import torch

    from decisionlab.domains.taxation.economy import Economy

    economy = Economy(scenario)
    trials = []
    for k in range(len(rates)):
        for rate in grid:
            changed = list(rates)
            changed[k] = float(rate)
            trials.append(changed)
    table = torch.tensor([list(rates), *trials], dtype=torch.float64)
    result = economy.outcome(table)
    same = (torch.isclose(result.income, result.income[:1], rtol=1e-9, atol=1e-9).all(1)
            & torch.isclose(result.net_income, result.net_income[:1], rtol=1e-9, atol=1e-9).all(1))[1:]
    return tuple(bool(v) for v in same.reshape(len(rates), len(grid)).all(1))


def brute_force(scenario: OneStepScenario, objective: Objective | None = None,
                grid: np.ndarray | None = None, chunk: int = 1 << 14) -> tuple[tuple[float, ...], float]:
    """Every schedule on ``grid`` evaluated with exact best responses (the check of :func:`best_schedule`
    on coarse grids; G^K schedules)."""
    import torch

    from decisionlab.domains.taxation.economy import Economy

    grid = np.asarray(scenario.rate_grid if grid is None else grid, dtype=float)
    economy = Economy(scenario)
    objective = objective or scenario.objective
    best, best_rates = NEG, ()
    schedules = itertools.product(grid.tolist(), repeat=scenario.n_brackets)
    while batch := list(itertools.islice(schedules, chunk)):
        rates = torch.tensor(batch, dtype=torch.float64)
        values = economy.metrics(rates)[objective]
        row = int(values.argmax())
        if float(values[row]) > best:
            best, best_rates = float(values[row]), tuple(batch[row])
    return best_rates, best
