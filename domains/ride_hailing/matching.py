"""Dispatch matching primitives, batched over ``B`` independent cities.

A dispatch window has ``M`` order slots and ``N`` driver slots per city. :func:`candidates` lists, for
every order, its nearest free drivers (an order's *candidate list*, ``[B, M, K]``); the matchers then
pick at most one driver per order and one order per driver from those lists:

* :func:`max_weight_matching` — the matching of largest total weight (an exact assignment solve per
  city, :func:`scipy.optimize.linear_sum_assignment`);
* :func:`greedy_matching` — serial dictatorship: orders by priority each take their first still-free
  candidate (vectorised deferred acceptance, no solver).

Conventions: driver ids are indices into the city's driver slots, ``-1`` = empty slot / unmatched.
Everything stays on the device of the inputs (cpu or cuda); only the assignment solve runs on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

# Bound on the ``[chunk, M, N]`` distance / sort-key blocks of :func:`candidates` (elements; ~12 bytes each).
CHUNK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class Candidates:
    """Each order's nearest free drivers, nearest first.

    Attributes:
        driver: ``[B, M, K]`` long, driver index per slot; ``-1`` where there is no candidate (the
            ``-1`` slots are always at the end of an order's list).
        distance_km: ``[B, M, K]`` float32 road distance to that driver; ``inf`` where ``driver == -1``.
    """

    driver: torch.Tensor
    distance_km: torch.Tensor


def candidates(
    order_xy: torch.Tensor,
    order_valid: torch.Tensor,
    driver_xy: torch.Tensor,
    driver_free: torch.Tensor,
    k: int,
    max_km: float,
    detour: float = 1.0,
) -> Candidates:
    """For every valid order, its up to ``k`` nearest free drivers within ``max_km`` road distance.

    Args:
        order_xy: ``[B, M, 2]`` order pick-up positions (km).
        order_valid: ``[B, M]`` bool; invalid orders get no candidates (all ``-1``).
        driver_xy: ``[B, N, 2]`` driver positions (km).
        driver_free: ``[B, N]`` bool; only free drivers are candidates.
        k: candidates per order (``>= 0``); the list has ``K = min(k, N)`` slots.
        max_km: largest road distance (inclusive).
        detour: road distance / straight-line distance (``> 0``).

    Returns:
        :class:`Candidates` with ``driver`` / ``distance_km`` of shape ``[B, M, K]``, nearest first.
        Distances are computed and compared in float32; equal distances are broken by the lower
        driver index, so the result is deterministic (also across devices, up to float rounding).

    Memory: the ``[B, M, N]`` distance block is processed in chunks of at most
    :data:`CHUNK_ELEMENTS` elements (over cities, and over orders when a single city is larger).
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if not detour > 0:
        raise ValueError(f"detour must be > 0, got {detour}")
    b_size, m_size = order_xy.shape[0], order_xy.shape[1]
    n_size = driver_xy.shape[1]
    k_eff = min(int(k), n_size)
    device = order_xy.device
    driver_out = torch.full((b_size, m_size, k_eff), -1, dtype=torch.long, device=device)
    dist_out = torch.full((b_size, m_size, k_eff), float("inf"), dtype=torch.float32, device=device)
    if b_size * m_size * k_eff == 0:
        return Candidates(driver_out, dist_out)

    ox, dx = order_xy.to(torch.float32), driver_xy.to(torch.float32)
    valid, free = order_valid.to(torch.bool), driver_free.to(torch.bool)
    # Low 32 bits of the sort key: the driver index, so equal distances sort by lower index.
    driver_ids = torch.arange(n_size, device=device, dtype=torch.long)
    per_city = m_size * n_size
    b_step = max(1, CHUNK_ELEMENTS // per_city)
    m_step = m_size if per_city <= CHUNK_ELEMENTS else max(1, CHUNK_ELEMENTS // n_size)
    for b0 in range(0, b_size, b_step):
        b1 = min(b_size, b0 + b_step)
        for m0 in range(0, m_size, m_step):
            m1 = min(m_size, m0 + m_step)
            # The non-matmul mode is exact to float32 rounding; the matmul one loses precision near 0.
            dist = torch.cdist(ox[b0:b1, m0:m1], dx[b0:b1], compute_mode="donot_use_mm_for_euclid_dist") * detour
            ok = (dist <= max_km) & free[b0:b1, None, :] & valid[b0:b1, m0:m1, None]  # NaN -> excluded
            dist = torch.where(ok, dist.abs(), float("inf"))  # abs: no -0.0, whose bits sort first
            # Non-negative float32 bit patterns order like the floats, so one int64 topk sorts by
            # (distance, driver index) in a single pass — deterministic ties, inf (excluded) last.
            key = (dist.view(torch.int32).to(torch.long) << 32) | driver_ids
            top = key.topk(k_eff, dim=-1, largest=False, sorted=True).values
            idx = top & 0xFFFFFFFF
            d = dist.gather(-1, idx)
            driver_out[b0:b1, m0:m1] = torch.where(torch.isfinite(d), idx, -1)
            dist_out[b0:b1, m0:m1] = d
    return Candidates(driver_out, dist_out)


def max_weight_matching(driver: torch.Tensor, weight: torch.Tensor, *,
                        maximize_cardinality: bool = False) -> torch.Tensor:
    """Per city, the matching of largest total weight over the candidate edges.

    An edge is ``(order m, driver[b, m, j])`` with ``driver >= 0`` and a finite ``weight[b, m, j]``;
    an order may stay unmatched (worth 0), so edges of weight ``<= 0`` are never taken. With
    ``maximize_cardinality``, among the matchings with the most edges (any finite weight) the one of
    largest total weight. If a driver appears twice in an order's list, the larger weight counts.

    Args:
        driver: ``[B, M, K]`` long candidate drivers (``-1`` = none).
        weight: ``[B, M, K]`` float edge weights (``-inf`` / ``nan`` = no edge).

    Returns:
        ``[B, M]`` long: the driver assigned to each order, ``-1`` if unmatched. Deterministic: the
        solver sees the same matrix (orders and drivers in increasing index) for the same input.

    Method and cost: edges are filtered and compacted for the whole batch on the inputs' device
    (``torch.unique`` over ``(city, driver)`` and ``(city, order)``), then moved to the CPU once. Per city,
    the ``M_v`` orders with an edge and the ``U`` distinct drivers in their lists form a dense float64
    matrix with the smaller side ``S = min(M_v, U)`` as rows and the larger ``L`` as columns: edge
    weights, a large negative constant for non-edges, and (unless ``maximize_cardinality``) a private
    zero-weight "unmatched" column per row; it is solved with ``linear_sum_assignment(maximize=True)``
    — ``O(S² (L + S))`` time, with ``U <= min(N, M_v K)`` (a window with many waiting orders and few
    free drivers stays cheap). This is a Python loop of ``B`` independent solver calls (each also pays a few
    tens of µs of overhead); nothing else loops in Python.
    """
    if driver.shape != weight.shape or driver.dim() != 3:
        raise ValueError(f"driver and weight must both be [B, M, K], got {tuple(driver.shape)}, {tuple(weight.shape)}")
    b_size, m_size, _ = driver.shape
    device = driver.device
    out = np.full((b_size, m_size), -1, dtype=np.int64)
    edge = (driver >= 0) & torch.isfinite(weight)  # isfinite also drops nan
    if not maximize_cardinality:
        edge &= weight > 0
    eb, em, ek = edge.nonzero(as_tuple=True)  # row-major, so each city's edges are contiguous
    if eb.numel() == 0:
        return torch.from_numpy(out).to(device)
    ed = driver[eb, em, ek]
    ew = weight[eb, em, ek].to(torch.float64)
    # Compact drivers and orders per city in one batched unique: key = city · span + id.
    d_span = int(ed.max()) + 1
    d_uniq, d_col = torch.unique(eb * d_span + ed, return_inverse=True)
    o_uniq, o_row = torch.unique(eb * m_size + em, return_inverse=True)
    d_first = torch.searchsorted(d_uniq, torch.arange(b_size + 1, device=device) * d_span)
    o_first = torch.searchsorted(o_uniq, torch.arange(b_size + 1, device=device) * m_size)
    e_first = torch.searchsorted(eb, torch.arange(b_size + 1, device=device))
    d_col = d_col - d_first[eb]
    o_row = o_row - o_first[eb]
    # One device -> host transfer for everything the solver loop needs.
    d_ids, o_ids = (d_uniq % d_span).cpu().numpy(), (o_uniq % m_size).cpu().numpy()
    d_first, o_first, e_first = d_first.cpu().numpy(), o_first.cpu().numpy(), e_first.cpu().numpy()
    rows, cols, w = o_row.cpu().numpy(), d_col.cpu().numpy(), ew.cpu().numpy()

    for b in range(b_size):
        e0, e1 = e_first[b], e_first[b + 1]
        if e0 == e1:
            continue
        n_orders, n_drivers = o_first[b + 1] - o_first[b], d_first[b + 1] - d_first[b]
        r, c, wb = rows[e0:e1], cols[e0:e1], w[e0:e1]
        # A non-edge is worth less than any change of the real edges' total (at most 2·Σ|w|): the
        # solver uses one only where no assignment of real edges can replace it, and it is dropped.
        neg = -(2.0 * float(np.abs(wb).sum()) + 1.0)
        core = np.full((n_orders, n_drivers), neg)
        np.maximum.at(core, (r, c), wb)  # duplicate (order, driver) edges: the larger weight
        # The smaller side is the rows (the solver's cost grows with rows² · columns); with
        # maximize_cardinality every row is matched (rectangular, no way out), otherwise each row
        # has a private zero-weight "unmatched" column.
        transpose = n_drivers < n_orders
        mat = core.T if transpose else core
        n_rows, n_cols = mat.shape
        if not maximize_cardinality:
            mat = np.concatenate((mat, np.full((n_rows, n_rows), neg)), axis=1)
            mat[np.arange(n_rows), n_cols + np.arange(n_rows)] = 0.0
        sr, sc = linear_sum_assignment(mat, maximize=True)
        real = (sc < n_cols) & (mat[sr, np.minimum(sc, n_cols - 1)] > neg)
        orders, drivers = (sc[real], sr[real]) if transpose else (sr[real], sc[real])
        out[b, o_ids[o_first[b] + orders]] = d_ids[d_first[b] + drivers]
    return torch.from_numpy(out).to(device)


def greedy_matching(driver: torch.Tensor, priority: torch.Tensor) -> torch.Tensor:
    """Serial dictatorship: orders in decreasing priority each take their first still-free candidate.

    Ties in priority go to the lower order index; ``nan`` priority counts as lowest. An order's list is
    its preference order (e.g. nearest first from :func:`candidates`); ``-1`` slots are skipped.

    Args:
        driver: ``[B, M, K]`` long candidate drivers (``-1`` = none).
        priority: ``[B, M]`` float, higher goes first.

    Returns:
        ``[B, M]`` long: the driver assigned to each order, ``-1`` if unmatched.

    Method: order-proposing deferred acceptance, vectorised over the whole batch. Each round every
    unheld order proposes to the first driver in its list not yet held by a higher-priority order
    (proposing further up would only be rejected), and each driver keeps the highest-priority proposer
    so far (``scatter_reduce(amax)``); displaced orders propose again next round. Since every driver
    ranks orders by the same priority, the stable matching is unique and equals serial dictatorship's
    outcome. Each (order, slot) is proposed at most once, so it ends within ``M·K + 1`` rounds; usually a
    handful, but a displacement chain (order i takes the driver order i+1 holds, ...) needs one round
    per link — serial dictatorship is inherently sequential along such chains, so no fixed number like
    ``K + 1`` rounds is enough in general. Each round is ``O(B·M·K)`` work and one host sync (the stop
    test).
    """
    if driver.dim() != 3 or priority.shape != driver.shape[:2]:
        raise ValueError(f"driver must be [B, M, K] and priority [B, M], got {tuple(driver.shape)}, "
                         f"{tuple(priority.shape)}")
    b_size, m_size, k_size = driver.shape
    device = driver.device
    mine = torch.full((b_size, m_size), -1, dtype=torch.long, device=device)
    if b_size * m_size * k_size == 0 or not bool((driver >= 0).any()):
        return mine
    # Strict score per city: M for the first order in priority order, 1 for the last; 0 = "free".
    prio = torch.nan_to_num(priority.to(torch.float64), nan=-float("inf"))
    order = torch.sort(prio, dim=1, descending=True, stable=True).indices  # stable: ties by lower index
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(m_size, device=device).expand(b_size, m_size))
    score = m_size - rank
    # best[b, d]: score of the order driver d holds (0 = free); column `sink` takes the -1 slots and
    # non-proposals, and outscores everyone so it is never available.
    sink = int(driver.max()) + 1
    best = torch.zeros((b_size, sink + 1), dtype=torch.long, device=device)
    best[:, sink] = m_size + 1
    slots = torch.where(driver >= 0, driver, sink).view(b_size, m_size * k_size)
    for _ in range(m_size * k_size + 1):
        avail = best.gather(1, slots).view(b_size, m_size, k_size) < score[:, :, None]
        propose = avail.any(dim=2) & (mine < 0)
        if not bool(propose.any()):
            break
        first = avail.to(torch.uint8).argmax(dim=2, keepdim=True)  # first available slot
        target = torch.where(propose, slots.view(b_size, m_size, k_size).gather(2, first).squeeze(2), sink)
        best.scatter_reduce_(1, target, torch.where(propose, score, 0), reduce="amax", include_self=True)
        # Scores are unique per city, so the driver's best score names its holder; this keeps the
        # winners and drops the orders that were displaced this round.
        mine = torch.where(propose, target, mine)
        holds = (mine >= 0) & (best.gather(1, mine.clamp(min=0)) == score)
        mine = torch.where(holds, mine, -1)
    return mine
