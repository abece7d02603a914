"""Dispatch matching primitives against brute-force / sequential oracles."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

from decisionlab.domains.ride_hailing import matching
from decisionlab.domains.ride_hailing.matching import candidates, greedy_matching, max_weight_matching

# --------------------------------------------------------------------------------------- oracles


def brute_candidates(oxy, valid, dxy, free, k, max_km, detour):
    """Per order: free drivers within max_km, sorted by (distance, index), first k (python floats)."""
    out = []
    for m, (x, y) in enumerate(oxy):
        if not valid[m]:
            out.append([])
            continue
        near = []
        for j, (u, v) in enumerate(dxy):
            d = math.hypot(x - u, y - v) * detour
            if free[j] and d <= max_km:
                near.append((d, j))
        out.append(sorted(near)[:k])
    return out


def edge_weights(drivers: list[int], weights: list[float]) -> dict[int, float]:
    """An order's usable edges: driver -> best finite weight."""
    best: dict[int, float] = {}
    for d, w in zip(drivers, weights, strict=True):
        if d >= 0 and math.isfinite(w):
            best[d] = max(best.get(d, -math.inf), w)
    return best


def brute_max_weight(edges: list[dict[int, float]]) -> float:
    """Largest total weight over all matchings (each order: unmatched or one unused driver)."""
    options = [[None, *e] for e in edges]
    best = 0.0
    for pick in itertools.product(*options):
        used = [d for d in pick if d is not None]
        if len(used) == len(set(used)):
            best = max(best, sum(edges[m][d] for m, d in enumerate(pick) if d is not None))
    return best


def serial_dictatorship(lists: list[list[int]], priority: list[float]) -> list[int]:
    """Orders by decreasing priority (ties: lower index) take their first free candidate."""
    taken: set[int] = set()
    out = [-1] * len(lists)
    for m in sorted(range(len(lists)), key=lambda i: (-priority[i], i)):
        for d in lists[m]:
            if d >= 0 and d not in taken:
                taken.add(d)
                out[m] = d
                break
    return out


# ------------------------------------------------------------------------------------ candidates


@pytest.mark.parametrize("seed", range(40))
def test_candidates_match_brute_force(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    b, m, n = rng.randint(1, 3), rng.randint(1, 7), rng.randint(1, 9)
    k, max_km, detour = rng.randint(1, 12), rng.uniform(1.0, 8.0), rng.choice([1.0, 1.3])
    oxy, dxy = torch.rand(b, m, 2, generator=g) * 6, torch.rand(b, n, 2, generator=g) * 6
    valid, free = torch.rand(b, m, generator=g) < 0.8, torch.rand(b, n, generator=g) < 0.7
    c = candidates(oxy, valid, dxy, free, k, max_km, detour)
    kk = min(k, n)
    assert c.driver.shape == c.distance_km.shape == (b, m, kk)
    assert c.driver.dtype == torch.long
    for bi in range(b):
        ref = brute_candidates(oxy[bi].tolist(), valid[bi].tolist(), dxy[bi].tolist(), free[bi].tolist(),
                               k, max_km, detour)
        for mi in range(m):
            want = ref[mi]
            got_d, got_x = c.driver[bi, mi].tolist(), c.distance_km[bi, mi].tolist()
            assert got_d == [j for _, j in want] + [-1] * (kk - len(want))
            assert got_x[: len(want)] == pytest.approx([d for d, _ in want], rel=1e-5, abs=1e-5)
            assert all(math.isinf(x) for x in got_x[len(want):])


def test_candidates_empty_and_invalid() -> None:
    oxy, dxy = torch.rand(2, 4, 2), torch.rand(2, 3, 2)
    valid, free = torch.ones(2, 4, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool)
    none = candidates(oxy, valid, dxy[:, :0], free[:, :0], k=5, max_km=10.0)  # N = 0
    assert none.driver.shape == none.distance_km.shape == (2, 4, 0)
    no_orders = candidates(oxy[:, :0], valid[:, :0], dxy, free, k=5, max_km=10.0)  # M = 0
    assert no_orders.driver.shape == (2, 0, 3)
    assert candidates(oxy, valid, dxy, free, k=0, max_km=10.0).driver.shape == (2, 4, 0)
    invalid = candidates(oxy, torch.zeros_like(valid), dxy, free, k=5, max_km=10.0)  # k > N -> K = N
    assert invalid.driver.shape == (2, 4, 3)
    assert (invalid.driver == -1).all() and torch.isinf(invalid.distance_km).all()
    full = candidates(oxy, valid, dxy, free, k=5, max_km=10.0)
    assert (full.driver.sort(dim=2).values == torch.arange(3)).all()  # every driver, once each
    with pytest.raises(ValueError):
        candidates(oxy, valid, dxy, free, k=-1, max_km=1.0)


def test_candidates_ties_go_to_the_lower_driver_index() -> None:
    oxy = torch.zeros(1, 1, 2)
    dxy = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.5, 0.0], [-1.0, 0.0], [0.0, 0.0]]])
    free = torch.tensor([[True, True, True, True, False]])
    c = candidates(oxy, torch.ones(1, 1, dtype=torch.bool), dxy, free, k=3, max_km=5.0, detour=2.0)
    assert c.driver[0, 0].tolist() == [2, 0, 1]
    assert c.distance_km[0, 0].tolist() == pytest.approx([1.0, 2.0, 2.0])


def test_candidates_chunking_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(7)
    oxy, dxy = torch.rand(3, 9, 2, generator=g) * 5, torch.rand(3, 11, 2, generator=g) * 5
    valid, free = torch.rand(3, 9, generator=g) < 0.9, torch.rand(3, 11, generator=g) < 0.8
    whole = candidates(oxy, valid, dxy, free, 4, 3.0, 1.3)
    for limit in (1, 25, 99, 200):  # below one row, inside one city, one city, several cities
        monkeypatch.setattr(matching, "CHUNK_ELEMENTS", limit)
        part = candidates(oxy, valid, dxy, free, 4, 3.0, 1.3)
        assert torch.equal(part.driver, whole.driver) and torch.equal(part.distance_km, whole.distance_km)


# ---------------------------------------------------------------------------- max weight matching


def random_lists(rng: random.Random, b: int, m: int, k: int, n: int) -> torch.Tensor:
    return torch.tensor([[[rng.randrange(n) if rng.random() < 0.75 else -1 for _ in range(k)]
                          for _ in range(m)] for _ in range(b)], dtype=torch.long).view(b, m, k)


def random_weights(rng: random.Random, b: int, m: int, k: int) -> torch.Tensor:
    def one() -> float:
        u = rng.random()
        if u < 0.1:
            return math.inf if rng.random() < 0.5 else -math.inf
        if u < 0.15:
            return math.nan
        if u < 0.25:
            return float(rng.randint(0, 3))  # integer weights: ties and exact zeros
        return rng.uniform(-2.0, 5.0)

    return torch.tensor([[[one() for _ in range(k)] for _ in range(m)] for _ in range(b)]).view(b, m, k)


@pytest.mark.parametrize("seed", range(150))
def test_max_weight_matching_equals_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    b, m, k, n = rng.randint(1, 4), rng.randint(0, 5), rng.randint(0, 3), rng.randint(1, 6)
    driver, weight = random_lists(rng, b, m, k, n), random_weights(rng, b, m, k)
    if seed % 3 == 0:
        weight = weight.double()
    got = max_weight_matching(driver, weight)
    assert got.shape == (b, m) and got.dtype == torch.long
    assert torch.equal(got, max_weight_matching(driver, weight))  # deterministic
    for bi in range(b):
        edges = [edge_weights(driver[bi, mi].tolist(), weight[bi, mi].tolist()) for mi in range(m)]
        picked = [d for d in got[bi].tolist() if d >= 0]
        assert len(picked) == len(set(picked))  # no driver twice
        total = 0.0
        for mi, d in enumerate(got[bi].tolist()):
            if d >= 0:
                assert d in edges[mi] and edges[mi][d] > 0  # a real, worthwhile edge
                total += edges[mi][d]
        assert total == pytest.approx(brute_max_weight(edges), abs=1e-9)


def test_max_weight_matching_prefers_the_global_optimum_over_greedy() -> None:
    # Order 0 would greedily take driver 0 (5 > 4), but 4 + 4 beats 5 + 0.
    driver = torch.tensor([[[0, 1], [0, -1]]])
    weight = torch.tensor([[[5.0, 4.0], [4.0, 0.0]]])
    assert max_weight_matching(driver, weight).tolist() == [[1, 0]]
    assert max_weight_matching(driver, -weight).tolist() == [[-1, -1]]  # negative: stay unmatched
    assert max_weight_matching(driver[:, :, :0], weight[:, :, :0]).tolist() == [[-1, -1]]


# -------------------------------------------------------------------------------- greedy matching


@pytest.mark.parametrize("seed", range(150))
def test_greedy_matching_equals_serial_dictatorship(seed: int) -> None:
    rng = random.Random(1000 + seed)
    b, m, k, n = rng.randint(1, 4), rng.randint(0, 9), rng.randint(0, 4), rng.randint(1, 6)
    driver = random_lists(rng, b, m, k, n)  # few drivers: shared candidates, duplicates
    priority = torch.tensor([[float(rng.randint(0, 3)) for _ in range(m)] for _ in range(b)]).view(b, m)  # ties
    got = greedy_matching(driver, priority)
    assert got.shape == (b, m) and got.dtype == torch.long
    for bi in range(b):
        assert got[bi].tolist() == serial_dictatorship(driver[bi].tolist(), priority[bi].tolist())


def test_greedy_matching_follows_a_long_displacement_chain() -> None:
    # Order i (priority falling with i) lists [d_{i-1}, d_i]. In round 1 order i holds d_{i-1}; then
    # order 1 moves to d_1 and displaces order 2, which moves to d_2 and displaces order 3, ... — one
    # link per round, so this needs ~M rounds, far more than K + 1 = 3.
    m = 12
    driver = torch.tensor([[[max(i - 1, 0), i] for i in range(m)]])
    priority = -torch.arange(m, dtype=torch.float32)[None]
    got = greedy_matching(driver, priority)
    assert got[0].tolist() == list(range(m)) == serial_dictatorship(driver[0].tolist(), priority[0].tolist())


def test_greedy_matching_on_nearest_candidates() -> None:
    g = torch.Generator().manual_seed(3)
    oxy, dxy = torch.rand(2, 30, 2, generator=g) * 4, torch.rand(2, 20, 2, generator=g) * 4
    c = candidates(oxy, torch.ones(2, 30, dtype=torch.bool), dxy, torch.ones(2, 20, dtype=torch.bool), 5, 2.0)
    priority = torch.randint(0, 4, (2, 30), generator=g).float()
    got = greedy_matching(c.driver, priority)
    for bi in range(2):
        assert got[bi].tolist() == serial_dictatorship(c.driver[bi].tolist(), priority[bi].tolist())


def brute_cardinality_then_weight(edges: list[dict[int, float]]) -> tuple[int, float]:
    """(most edges, then largest total weight) over all matchings."""
    best = (0, 0.0)
    for pick in itertools.product(*[[None, *e] for e in edges]):
        used = [d for d in pick if d is not None]
        if len(used) == len(set(used)):
            key = (len(used), sum(edges[m][d] for m, d in enumerate(pick) if d is not None))
            best = max(best, key)
    return best


@pytest.mark.parametrize("seed", range(80))
def test_maximize_cardinality_serves_the_most_then_the_heaviest(seed: int) -> None:
    """Negative weights are taken when they add a match; among the largest matchings, the heaviest
    (both orientations of the solver: more drivers than orders and fewer)."""
    rng = random.Random(1000 + seed)
    b, m, k, n = rng.randint(1, 3), rng.randint(0, 5), rng.randint(0, 3), rng.randint(1, 6)
    driver, weight = random_lists(rng, b, m, k, n), random_weights(rng, b, m, k)
    got = max_weight_matching(driver, weight, maximize_cardinality=True)
    for bi in range(b):
        edges = [edge_weights(driver[bi, mi].tolist(), weight[bi, mi].tolist()) for mi in range(m)]
        picked = [(mi, d) for mi, d in enumerate(got[bi].tolist()) if d >= 0]
        assert len({d for _, d in picked}) == len(picked) and all(d in edges[mi] for mi, d in picked)
        count, total = brute_cardinality_then_weight(edges)
        assert len(picked) == count
        assert sum(edges[mi][d] for mi, d in picked) == pytest.approx(total, abs=1e-9)
