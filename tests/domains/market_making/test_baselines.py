"""Closed-form quotes: Avellaneda–Stoikov, symmetric, GLFT exact (eigendecomposition) and its approximation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from decisionlab.core.errors import NotTractableError, ScenarioError
from decisionlab.domains.market_making.baselines import (
    AvellanedaStoikov,
    AvellanedaStoikovInformed,
    GLFTApprox,
    GLFTApproxDrift,
    GLFTDrift,
    GLFTExact,
    Symmetric,
    depth_table,
    glft_exact_problem,
    glft_matrix,
    glft_problem,
    inventory_grid,
    require_bounded,
)
from decisionlab.domains.market_making.model.scenario import PRESETS, ModelScenario
from decisionlab.domains.market_making.quotes import depth_bounds, observation

STANDARD = PRESETS["avellaneda_stoikov"]
BOUNDED = PRESETS["glft_bounded"]


def _obs(tau: float, q: list[float]) -> torch.Tensor:
    inventory = torch.tensor(q)
    return observation(torch.full_like(inventory, tau), inventory)


def test_avellaneda_stoikov_and_symmetric_quotes() -> None:
    obs = _obs(0.5, [-3.0, 0.0, 2.0])
    depths = AvellanedaStoikov(STANDARD).act(obs).double()
    spread = 0.1 * 4 * 0.5 + (2 / 0.1) * math.log(1 + 0.1 / 1.5)
    skew = torch.tensor([-3.0, 0.0, 2.0], dtype=torch.float64) * 0.1 * 4 * 0.5
    assert torch.allclose(depths[:, 0], spread / 2 + skew, atol=1e-6)
    assert torch.allclose(depths[:, 1], spread / 2 - skew, atol=1e-6)
    assert torch.allclose(depths.sum(dim=1), torch.full((3,), spread, dtype=torch.float64), atol=1e-6)
    sym = Symmetric(STANDARD).act(obs).double()
    assert torch.allclose(sym, torch.full((3, 2), spread / 2, dtype=torch.float64), atol=1e-6)
    # r = s − qγσ²τ: the quotes are centred on the reservation price
    assert AvellanedaStoikov.name == "avellaneda_stoikov" and Symmetric.name == "symmetric"


def test_glft_needs_a_bound() -> None:
    problem = glft_problem(STANDARD)
    assert problem is not None and "max_inventory" in problem and "must be set" in problem
    assert glft_problem(BOUNDED) is None and glft_exact_problem(BOUNDED) is None
    for build in (GLFTExact, GLFTApprox):
        with pytest.raises(ScenarioError, match="max_inventory must be set"):
            build(STANDARD)
    with pytest.raises(ScenarioError):
        require_bounded(STANDARD)


def test_glft_exact_refuses_bounds_float64_cannot_resolve() -> None:
    big = ModelScenario(max_inventory=60)
    with pytest.raises(NotTractableError, match="max_inventory"):
        GLFTExact(big)
    assert "glft_approx" in (glft_exact_problem(big) or "")
    GLFTExact(ModelScenario(max_inventory=25))  # within the limit at the standard parameters


def test_glft_exact_matches_a_direct_matrix_exponential() -> None:
    policy = GLFTExact(BOUNDED)
    matrix = glft_matrix(BOUNDED)
    assert np.allclose(matrix, matrix.T) and matrix.shape == (21, 21)
    for tau in (0.0, 0.013, 0.37, 1.0):
        direct = scipy.linalg.expm(-matrix * tau) @ np.ones(21)
        ours = policy.values(torch.tensor([tau], dtype=torch.float64))[0].numpy()
        log_direct, log_ours = np.log(direct), np.log(ours)
        # v is computed up to a positive factor: compare log-ratios, which is all the depths use
        assert np.abs((log_ours - log_ours[10]) - (log_direct - log_direct[10])).max() < 1e-10, tau
        bid, ask = policy.depths_at(torch.tensor([tau], dtype=torch.float64))
        expected_bid = (log_direct[:-1] - log_direct[1:]) / 1.5 + math.log1p(0.1 / 1.5) / 0.1
        assert np.abs(bid[0, :-1].numpy() - expected_bid).max() < 1e-9
        assert np.abs(ask[0, 1:].numpy() - (expected_bid[::-1])).max() < 1e-9  # symmetric in q


def test_glft_exact_survives_long_horizons() -> None:
    """The shift by the smallest eigenvalue keeps v finite however long the time left."""
    s = ModelScenario(max_inventory=10, horizon=1000.0, dt=0.5)
    bid, ask = GLFTExact(s).depths_at(torch.tensor([1000.0, 1.0], dtype=torch.float64))
    assert bool(torch.isfinite(bid).all() and torch.isfinite(ask).all())
    assert torch.allclose(bid[0], bid[1], atol=1e-9)  # the depths are at their long-horizon values by τ = 1


def test_glft_exact_and_approximation_agree_near_zero_inventory() -> None:
    q = [float(i) for i in range(-10, 11)]
    exact = GLFTExact(BOUNDED).act(_obs(1.0, q)).double()
    approx = GLFTApprox(BOUNDED).act(_obs(1.0, q)).double()
    gap = (exact - approx).abs()
    near = [i for i, value in enumerate(q) if abs(value) <= 2]
    assert gap[near].max().item() < 2e-3
    assert gap[[5, 15]].max().item() < 3.5e-3  # |q| = 5: about 3e-3 (the notes' figure)
    c2 = math.sqrt(4 * 0.1 / (2 * 1.5 * 140) * (1 + 0.1 / 1.5) ** (1 + 1.5 / 0.1))
    assert (approx[11, 0] - approx[10, 0]).item() == pytest.approx(c2, rel=1e-5)


def test_glft_closes_the_side_at_the_bound() -> None:
    high = depth_bounds(BOUNDED)[1]
    for policy in (GLFTExact(BOUNDED), GLFTApprox(BOUNDED)):
        depths = policy.act(_obs(0.5, [10.0, -10.0, 12.0, -30.0, 0.0]))
        assert depths[0, 0].item() == pytest.approx(high) and depths[1, 1].item() == pytest.approx(high)
        assert depths[2, 0].item() == pytest.approx(high) and depths[3, 1].item() == pytest.approx(high)
        assert depths[0, 1].item() < high and depths[4].max().item() < 1.0


def test_glft_exact_handles_mixed_times_in_one_batch() -> None:
    policy = GLFTExact(BOUNDED)
    obs = observation(torch.tensor([0.1, 0.9, 0.1, 0.5]), torch.tensor([1.0, -2.0, 3.0, 0.0]))
    together = policy.act(obs)
    apart = torch.cat([policy.act(obs[i : i + 1]) for i in range(4)])
    assert torch.equal(together, apart)


def test_depth_table_tabulates_time_and_inventory() -> None:
    table = depth_table(AvellanedaStoikov(BOUNDED), BOUNDED)
    assert table.shape == (200, 21, 2)
    grid = inventory_grid(BOUNDED)
    direct = AvellanedaStoikov(BOUNDED).act(_obs(1.0 - 7 * 0.005, grid.float().tolist()))
    assert torch.allclose(table[7], direct, atol=1e-6)
    assert inventory_grid(STANDARD).tolist() == list(range(-200, 201))
    assert inventory_grid(ModelScenario(initial_inventory=3, horizon=0.01)).tolist() == [1, 2, 3, 4, 5]


def test_closed_forms_are_calibrated_on_the_total_return_volatility() -> None:
    """On ``jumpy`` (σ = 2, ten jumps of std 1 per time unit) the closed forms skew with σ² + λ·J² = 14."""
    jumpy = PRESETS["jumpy"]
    plain = jumpy.model_copy(update={"sigma": math.sqrt(14.0), "jump_intensity": 0.0, "jump_size": 0.0})
    obs = _obs(0.4, [-3.0, 0.0, 5.0])
    for build in (AvellanedaStoikov, GLFTExact, GLFTApprox):
        torch.testing.assert_close(build(jumpy).act(obs), build(plain).act(obs))


def test_drift_aware_glft_matches_a_direct_matrix_exponential() -> None:
    """GLFT with drift: M's diagonal αq² − kμq; μ = 0 gives GLFT exact, μ > 0 lowers the bids (buy more)."""
    trending = PRESETS["trending"]
    q_max, k = trending.max_inventory, trending.fill_decay_k
    matrix = glft_matrix(trending, trending.drift)
    q = np.arange(-q_max, q_max + 1)
    assert np.allclose(np.diag(matrix), np.diag(glft_matrix(trending)) - k * trending.drift * q)
    direct = np.log(scipy.linalg.expm(-matrix * 0.6) @ np.ones(q.size))
    bid, ask = GLFTDrift(trending).depths_at(torch.tensor([0.6], dtype=torch.float64))
    c1 = math.log1p(0.1 / 1.5) / 0.1
    # v spans e²⁰ over |q| ≤ 20: the eigendecomposition resolves the far tail to a few 1e-9 (GLFT_MIN_RANGE)
    assert np.abs(bid[0, :-1].numpy() - ((direct[:-1] - direct[1:]) / k + c1)).max() < 1e-7
    assert np.abs(ask[0, 1:].numpy() - ((direct[1:] - direct[:-1]) / k + c1)).max() < 1e-7
    blind = GLFTExact(trending).depths_at(torch.tensor([0.6], dtype=torch.float64))
    assert bool((bid[0, :-1] < blind[0][0, :-1]).all() and (ask[0, 1:] > blind[1][0, 1:]).all())
    torch.testing.assert_close(GLFTDrift(BOUNDED).act(_obs(0.3, [2.0])), GLFTExact(BOUNDED).act(_obs(0.3, [2.0])))


def test_drift_aware_approximation_leans_by_the_drift() -> None:
    """Guéant's approximation with drift shifts both depths by ∓μ/(γσ²)·c₂: the inventory worth holding.
    With reversion the drift is the local one, μ − κ(s − s0), read from the mid offset."""
    trending, reverting = PRESETS["trending"], PRESETS["mean_reverting"]
    obs = _obs(0.5, [-2.0, 0.0, 3.0])
    lean = trending.drift / (0.1 * 4.0) * GLFTApproxDrift(trending).c2
    expected = GLFTApprox(trending).act(obs) + torch.tensor([-lean, lean])
    torch.testing.assert_close(GLFTApproxDrift(trending).act(obs), expected)
    above = observation(torch.tensor([0.5]), torch.tensor([0.0]), mid_offset=torch.tensor([0.4]))
    local = -reverting.mean_reversion * 0.4 / (0.1 * 4.0) * GLFTApproxDrift(reverting).c2  # a sell lean
    expected = GLFTApprox(reverting).act(above) + torch.tensor([-local, local])
    torch.testing.assert_close(GLFTApproxDrift(reverting).act(above), expected)


def test_informed_avellaneda_stoikov_reservation_price() -> None:
    """r − s = E[s_T − s] − q·γ·Var[s_T − s]: μτ and σ²τ with drift; (s0 − s)(1 − e^{−κτ}) and
    σ²(1 − e^{−2κτ})/(2κ) with reversion; plain Avellaneda–Stoikov without either."""
    tau, q = 0.5, 3.0
    torch.testing.assert_close(AvellanedaStoikovInformed(STANDARD).act(_obs(tau, [q])),
                               AvellanedaStoikov(STANDARD).act(_obs(tau, [q])))
    for scenario, offset in ((PRESETS["trending"], 0.0), (PRESETS["mean_reverting"], 0.4)):
        mu, kappa = scenario.drift, scenario.mean_reversion
        move = mu * tau if kappa == 0 else -offset * (1 - math.exp(-kappa * tau))
        variance = 4.0 * tau if kappa == 0 else 4.0 * (1 - math.exp(-2 * kappa * tau)) / (2 * kappa)
        half = 0.5 * 0.1 * variance + math.log1p(0.1 / 1.5) / 0.1
        lean = move - q * 0.1 * variance
        obs = observation(torch.tensor([tau]), torch.tensor([q]), mid_offset=torch.tensor([offset]))
        torch.testing.assert_close(AvellanedaStoikovInformed(scenario).act(obs), torch.tensor([[half - lean,
                                                                                              half + lean]]))
