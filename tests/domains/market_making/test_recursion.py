"""The exact recursion: the published Avellaneda–Stoikov figures, agreement with Monte Carlo (fees and
penalties included, where no table exists and the recursion is the oracle) and GLFT's certainty equivalent."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from decisionlab.core.errors import NotTractableError
from decisionlab.domains.market_making.baselines import (
    AvellanedaStoikov,
    GLFTApprox,
    GLFTDrift,
    GLFTExact,
    Symmetric,
    depth_table,
    inventory_grid,
)
from decisionlab.domains.market_making.metrics import episode_metrics, finalize_metrics
from decisionlab.domains.market_making.model.recursion import exact_statistics
from decisionlab.domains.market_making.model.scenario import PRESETS, ModelScenario

STANDARD = PRESETS["avellaneda_stoikov"]


@pytest.mark.parametrize(
    ("gamma", "policy", "published"),
    [
        # Avellaneda & Stoikov (2008), table 1 and 3 (1,000 paths): mean profit, std profit, std q_T
        (0.1, AvellanedaStoikov, (65.0, 6.6, 2.9)),
        (0.1, Symmetric, (68.4, 12.7, 8.4)),
        (0.01, AvellanedaStoikov, (68.6, 8.7, 5.1)),
        (0.01, Symmetric, (68.8, 12.8, 8.7)),
    ],
)
def test_published_figures(gamma: float, policy: type, published: tuple[float, float, float]) -> None:
    """Within the sampling error of the paper's 1,000 paths (its standard error of a mean is std/√1000 ≈
    0.2-0.4; of a std about 0.2 for the inventory strategy and 0.35 for the symmetric one, whose P&L is
    a variance mixture) plus its rounding to 0.1."""
    s = STANDARD.model_copy(update={"risk_aversion": gamma})
    result = exact_statistics(s, policy(s))
    mean, std, std_q = published
    assert result.mean_pnl == pytest.approx(mean, abs=0.45)
    assert result.std_pnl == pytest.approx(std, abs=0.4 if policy is AvellanedaStoikov else 1.0)
    assert result.std_terminal_inventory == pytest.approx(std_q, abs=0.15)
    assert result.mean_terminal_inventory == pytest.approx(0.0, abs=1e-9)


def test_standard_set_up_exact_values() -> None:
    """The exact figures of the notes (γ = 0.1): inventory strategy 64.9, 6.5-6.6, 2.9, spread 1.49."""
    inventory = exact_statistics(STANDARD, AvellanedaStoikov(STANDARD))
    assert inventory.mean_pnl == pytest.approx(64.89, abs=0.05)
    assert 6.5 <= inventory.std_pnl <= 6.6
    assert inventory.std_terminal_inventory == pytest.approx(2.93, abs=0.02)
    assert inventory.mean_spread == pytest.approx(1.49, abs=0.005)
    symmetric = exact_statistics(STANDARD, Symmetric(STANDARD))
    assert 68.0 <= symmetric.mean_pnl <= 68.4
    assert symmetric.std_terminal_inventory == pytest.approx(8.40, abs=0.02)
    assert symmetric.mean_spread == pytest.approx(inventory.mean_spread, abs=1e-9)  # the same spread
    assert inventory.terminal_distribution.sum() == pytest.approx(1.0, abs=1e-12)


def test_recursion_is_fast() -> None:
    start = time.perf_counter()
    exact_statistics(STANDARD, AvellanedaStoikov(STANDARD))  # N = 200, |q| ≤ 200
    assert time.perf_counter() - start < 1.0


def test_recursion_refuses_a_mean_reverting_mid() -> None:
    with pytest.raises(NotTractableError, match="mean_reversion must be 0"):
        exact_statistics(PRESETS["mean_reverting"], AvellanedaStoikov(PRESETS["mean_reverting"]))


def test_glft_beats_avellaneda_stoikov_in_certainty_equivalent() -> None:
    s = PRESETS["glft_bounded"]
    ce = {p.name: exact_statistics(s, p(s)).certainty_equivalent for p in (AvellanedaStoikov, GLFTExact, GLFTApprox)}
    gap = 1 - ce["avellaneda_stoikov"] / ce["glft_exact"]
    print(f"certainty equivalents at max_inventory=10, γ=0.1: {ce}; AS is {100 * gap:.2f}% below GLFT exact")
    assert ce["glft_exact"] >= ce["avellaneda_stoikov"]
    assert ce["glft_exact"] >= ce["glft_approx"] - 1e-3  # the exact quotes are CARA-optimal (up to dt)
    assert 0.02 < gap < 0.06


CASES = {
    "as_unbounded": (STANDARD, AvellanedaStoikov, True),
    "symmetric_unbounded": (STANDARD, Symmetric, False),  # its CE rests on rare extreme inventories
    "glft_bounded": (PRESETS["glft_bounded"], GLFTExact, True),
    "glft_fee_penalties": (ModelScenario(max_inventory=10, maker_fee=0.05, terminal_penalty=0.5, running_penalty=1.0),
                           GLFTExact, True),
    "as_rebate_start_long": (ModelScenario(maker_fee=-0.02, initial_inventory=4, running_penalty=0.5,
                                           terminal_penalty=0.2, dt=0.01), AvellanedaStoikov, True),
    "glft_drift_trending": (PRESETS["trending"], GLFTDrift, True),
    "glft_jumpy": (PRESETS["jumpy"], GLFTExact, True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_monte_carlo_agrees_with_the_recursion(case: str) -> None:
    """20k simulated paths against the recursion: 4 standard errors (delta-method errors for the std, the
    CE and the ratios, from the influence values)."""
    scenario, build, check_ce = CASES[case]
    policy = build(scenario)
    exact = exact_statistics(scenario, policy).summary()
    episodes = 20_000
    metrics = finalize_metrics(scenario, episode_metrics(scenario, policy, episodes, seed=11, device="cpu"))
    names = ["mean_pnl", "std_pnl", "std_terminal_inventory", "mean_abs_terminal_inventory", "fill_rate",
             "pnl_per_trade", "mean_abs_inventory", "sharpe"]
    if check_ce:
        names.append("certainty_equivalent")
    for name in names:
        values = metrics[name]
        error = values.std(ddof=1) / np.sqrt(episodes)
        assert abs(values.mean() - exact[name]) < 4 * error + 1e-6, (name, values.mean(), exact[name], error)
    # a ratio over 20k × N steps: its error is far below 2e-3 (float32 depths included)
    assert metrics["mean_spread"].mean() == pytest.approx(exact["mean_spread"], abs=2e-3)


@pytest.mark.parametrize("drift, jumps", [(0.0, 0.0), (4.0, 30.0)])
def test_recursion_matches_enumerating_every_fill_path(drift: float, jumps: float) -> None:
    """On a 3-step problem every sequence of (bid, ask) fills can be enumerated; given the fills the price
    moves are independent with known mean, variance and CARA factor (a normal move, plus a normal jump
    with probability λ·dt), so the score's mean, variance and CARA moment are exact. Clipped probabilities
    (A·dt = 2), both sides filling, the bound, fees, both penalties, drift and jumps all occur."""
    s = ModelScenario(fill_intensity_a=400.0, horizon=0.015, max_inventory=1, maker_fee=0.03, running_penalty=2.0,
                      terminal_penalty=0.4, risk_aversion=0.7, sigma=6.0, drift=drift, jump_intensity=jumps,
                      jump_size=1.5)
    policy = AvellanedaStoikov(s)
    grid = inventory_grid(s)
    table = depth_table(policy, s, grid).double().numpy()
    adt, k, g, var = s.fill_intensity_a * s.dt, s.fill_decay_k, s.risk_aversion, s.sigma**2 * s.dt
    p_jump, jump_var = s.jump_intensity * s.dt, s.jump_size**2
    moments = np.zeros(3)  # E[X], E[X²], E[exp(−γX)]
    for path in itertools.product(itertools.product((0, 1), repeat=2), repeat=s.steps):
        q, prob, mean, variance, cara = s.initial_inventory, 1.0, 0.0, 0.0, 1.0
        for step, (bid, ask) in enumerate(path):
            depth_bid, depth_ask = table[step, q + 1]
            p_b = min(1.0, adt * np.exp(-k * depth_bid)) if q < 1 else 0.0
            p_a = min(1.0, adt * np.exp(-k * depth_ask)) if q > -1 else 0.0
            prob *= (p_b if bid else 1 - p_b) * (p_a if ask else 1 - p_a)
            if prob == 0:  # a fill the bound (or a certain fill) rules out
                break
            mean += bid * (depth_bid - s.maker_fee) + ask * (depth_ask - s.maker_fee)
            q += bid - ask
            mean -= q**2 * (s.running_penalty * s.dt + (s.terminal_penalty if step == s.steps - 1 else 0.0))
            mean += q * drift * s.dt
            variance += q**2 * (var + p_jump * jump_var)
            cara *= np.exp(0.5 * g**2 * q**2 * var) * (1 - p_jump + p_jump * np.exp(0.5 * g**2 * q**2 * jump_var))
        if prob > 0:
            moments += prob * np.array([mean, mean**2 + variance, np.exp(-g * mean) * cara])
    exact = exact_statistics(s, policy)
    assert exact.mean_pnl == pytest.approx(moments[0], rel=1e-12)
    assert exact.std_pnl == pytest.approx(np.sqrt(moments[1] - moments[0] ** 2), rel=1e-10)
    assert exact.certainty_equivalent == pytest.approx(-np.log(moments[2]) / g, rel=1e-12)
