"""Oracle tests: the Almgren–Chriss closed forms, the tridiagonal static optimum and their agreement with
the simulator (Monte Carlo within confidence intervals)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decisionlab.core.spec import get_domain
from decisionlab.domains.execution import oracles
from decisionlab.domains.execution.metrics import simulate
from decisionlab.domains.execution.policies import SchedulePolicy
from decisionlab.domains.execution.scenario import ExecutionScenario
from decisionlab.domains.execution.sim import ExecutionSim

PAPER = {"shares": 1e6, "horizon_steps": 5, "sigma": 0.95, "eta": 2.5e-6, "gamma": 2.5e-7, "risk_aversion": 1e-6}
PAPER_HOLDINGS = [1e6, 541956, 289854, 147897, 62142, 0]


def _scenario(name: str = "almgren_chriss", **overrides: object) -> ExecutionScenario:
    scenario = get_domain("execution").scenario(name, overrides)
    assert isinstance(scenario, ExecutionScenario)
    return scenario


def _constant(n: int, value: float) -> np.ndarray:
    return np.full(n, value)


def test_paper_example_trajectory_and_moments() -> None:
    """Almgren & Chriss (2000): X=1e6, T=N=5, σ=0.95, ε=1/16, η=2.5e-6, γ=2.5e-7, λ=1e-6."""
    holdings = oracles.ac_holdings(**PAPER)
    np.testing.assert_allclose(holdings, PAPER_HOLDINGS, atol=1.0)
    closed = oracles.ac_closed_form_moments(**PAPER, epsilon=1 / 16)
    assert closed.expected == pytest.approx(911_227, abs=1)
    assert closed.variance == pytest.approx(3.641e11, rel=2e-4)
    twap = oracles.moments(_scenario(), oracles.twap_holdings(1e6, 5))
    assert twap.expected == pytest.approx(662_500, abs=1e-6)
    assert twap.variance == pytest.approx(1.083e12, rel=1e-9)
    # the preset is that example
    np.testing.assert_allclose(oracles.ac_optimal_holdings(_scenario()), PAPER_HOLDINGS, atol=1.0)


@pytest.mark.parametrize(
    "params",
    [
        PAPER,
        {**PAPER, "horizon_steps": 50, "risk_aversion": 1e-7},
        {**PAPER, "horizon_steps": 12, "sigma": 0.3, "risk_aversion": 3e-5},
        {**PAPER, "horizon_steps": 3, "gamma": 0.0},
    ],
)
def test_closed_form_moments_equal_the_sums_over_the_trajectory(params: dict) -> None:
    holdings = oracles.ac_holdings(**params)
    n = params["horizon_steps"]
    closed = oracles.ac_closed_form_moments(**params, epsilon=0.0625)
    summed = oracles.schedule_moments(holdings, _constant(n, params["eta"]), _constant(n, params["gamma"]),
                                      _constant(n, params["sigma"]), 0.0625)
    assert closed.expected == pytest.approx(summed.expected, rel=1e-10)
    assert closed.variance == pytest.approx(summed.variance, rel=1e-9)


def test_zero_risk_aversion_is_twap_and_the_limit_is_continuous() -> None:
    twap = oracles.twap_holdings(1e6, 5)
    np.testing.assert_allclose(oracles.ac_holdings(**{**PAPER, "risk_aversion": 0.0}), twap, rtol=1e-12)
    gaps = [np.abs(oracles.ac_holdings(**{**PAPER, "risk_aversion": lam}) - twap).max() / 1e6
            for lam in (1e-9, 1e-11, 1e-13)]
    assert gaps[0] < 1e-3 and gaps[1] < gaps[0] / 50 and gaps[2] < gaps[1] / 50  # the gap is O(λ)
    assert np.allclose(oracles.solve_static(1e6, _constant(5, 2.5e-6), _constant(5, 2.5e-7), _constant(5, 0.95), 0.0),
                       twap)


@pytest.mark.parametrize(("n", "lam"), [(1, 1e-6), (2, 1e-6), (5, 1e-6), (5, 1e-4), (60, 2e-7)])
def test_tridiagonal_solver_equals_sinh_form_at_constant_impact(n: int, lam: float) -> None:
    params = {**PAPER, "horizon_steps": n, "risk_aversion": lam}
    sinh = oracles.ac_holdings(**params)
    tri = oracles.solve_static(1e6, _constant(n, 2.5e-6), _constant(n, 2.5e-7), _constant(n, 0.95), lam)
    np.testing.assert_allclose(tri, sinh, rtol=1e-9, atol=1e-6)


def test_tridiagonal_solver_is_the_minimum_for_time_varying_impact() -> None:
    """Random η_k, γ_k, σ_k: the objective (from its definition) is stationary at the solution and every
    perturbation raises it."""
    rng = np.random.default_rng(0)
    n, shares, lam = 12, 1e6, 1e-6
    eta = 2.5e-6 * rng.uniform(0.3, 3.0, n)
    gamma = 2.5e-7 * rng.uniform(0.0, 2.0, n)
    sigma = 0.5 * rng.uniform(0.5, 1.5, n)
    best = oracles.solve_static(shares, eta, gamma, sigma, lam)

    def objective(holdings: np.ndarray) -> float:
        return oracles.schedule_moments(holdings, eta, gamma, sigma, 0.0).objective(lam)

    base = objective(best)
    h = 10.0
    for i in range(1, n):
        bump = np.zeros(n + 1)
        bump[i] = h
        gradient = (objective(best + bump) - objective(best - bump)) / (2 * h)
        assert abs(gradient) < 1e-6 * base / shares
    for _ in range(20):
        noise = np.concatenate([[0.0], rng.normal(0, 2e4, n - 1), [0.0]])
        assert objective(best + noise) > base


def test_time_varying_static_optimum_beats_constant_impact_schedules() -> None:
    scenario = _scenario("time_varying")
    best = oracles.static_expected_holdings(scenario)
    assert np.all(np.diff(best) <= 0)  # sells only
    lam = scenario.risk_aversion
    value = oracles.moments(scenario, best).objective(lam)
    for other in (oracles.ac_optimal_holdings(scenario), oracles.twap_holdings(scenario.shares, 10),
                  oracles.vwap_holdings(scenario.shares, scenario.volume_profile())):
        assert oracles.moments(scenario, other).objective(lam) > value


def test_vwap_follows_the_volume_profile_and_is_twap_when_flat() -> None:
    np.testing.assert_allclose(oracles.vwap_holdings(1e6, np.ones(5)), oracles.twap_holdings(1e6, 5))
    scenario = _scenario("time_varying")
    trades = oracles.trades_of(oracles.vwap_holdings(scenario.shares, scenario.volume_profile()))
    np.testing.assert_allclose(trades / trades.sum(), scenario.volume_profile() / scenario.volume_profile().sum())
    assert trades[0] > trades[scenario.horizon_steps // 2]  # U-shape: heavy at the ends


def test_fractions_of_remaining_reproduce_the_schedule() -> None:
    holdings = oracles.ac_holdings(**PAPER)
    fractions = oracles.holdings_to_fractions(holdings)
    x = holdings[0]
    rebuilt = [x]
    for f in fractions:
        x = x * (1 - f)
        rebuilt.append(x)
    np.testing.assert_allclose(rebuilt, holdings, atol=1e-6)
    assert fractions[-1] == 1.0


def _mc_check(scenario: ExecutionScenario, holdings: np.ndarray, episodes: int, seed: int = 0) -> None:
    """Simulated mean and variance of the shortfall of a static schedule vs its closed form (4.5 SE)."""
    policy = SchedulePolicy(holdings, scenario.shares, "schedule")
    shortfall, _ = simulate(scenario, policy, episodes, seed, "cpu")
    m = oracles.moments(scenario, holdings)
    se_mean = shortfall.std() / np.sqrt(episodes)
    assert abs(shortfall.mean() - m.expected) < 4.5 * se_mean
    centred = shortfall - shortfall.mean()
    se_var = np.sqrt((np.mean(centred**4) - shortfall.var() ** 2) / episodes)
    assert abs(shortfall.var() - m.variance) < 4.5 * se_var
    assert 0.95 * m.variance < shortfall.var() < 1.05 * m.variance  # and the CI is tight enough to mean it


@pytest.mark.parametrize("side", ["sell", "buy"])
def test_closed_form_moments_equal_simulated_moments(side: str) -> None:
    scenario = _scenario(side=side)
    _mc_check(scenario, oracles.ac_optimal_holdings(scenario), 100_000)
    _mc_check(scenario, oracles.twap_holdings(scenario.shares, 5), 100_000, seed=1)


def test_static_moments_under_latent_liquidity_include_the_impact_variance() -> None:
    scenario = _scenario("latent_liquidity")
    holdings = oracles.static_expected_holdings(scenario)
    m = oracles.moments(scenario, holdings)
    assert m.impact_variance > 0.05 * m.variance  # the impact variance term matters here
    _mc_check(scenario, holdings, 100_000)


def test_liquidity_process_has_mean_one_and_the_stated_covariance() -> None:
    scenario = _scenario("latent_liquidity")
    sim = ExecutionSim(scenario, "cpu", dtype=torch.float64)
    paths = sim.sample_exogenous(200_000, scenario.horizon_steps, torch.Generator().manual_seed(5))
    multiplier = paths[:, :, 1].numpy()
    np.testing.assert_allclose(multiplier.mean(axis=0), 1.0, atol=0.015)
    empirical = np.cov(multiplier.T) * scenario.eta**2
    np.testing.assert_allclose(empirical, oracles.eta_covariance(scenario), atol=0.04 * scenario.eta**2)
    regime = paths[:, :, 2].numpy()
    assert regime.mean() == pytest.approx(scenario.stress_probability, abs=0.01)


def test_best_static_improves_on_the_plug_in_schedule_only_slightly() -> None:
    scenario = _scenario("latent_liquidity")
    lam = scenario.risk_aversion
    plug_in = oracles.moments(scenario, oracles.static_expected_holdings(scenario)).objective(lam)
    best = oracles.moments(scenario, oracles.best_static_holdings(scenario)).objective(lam)
    assert 0.98 * plug_in < best < plug_in
    deterministic = _scenario("time_varying")
    np.testing.assert_array_equal(oracles.best_static_holdings(deterministic),
                                  oracles.static_expected_holdings(deterministic))


def test_frontier_trades_expected_cost_for_variance() -> None:
    rows = oracles.efficient_frontier(_scenario(), np.array([0.0, 1e-7, 1e-6, 1e-5]))
    expected = [r["expected"] for r in rows]
    variance = [r["variance"] for r in rows]
    assert expected == sorted(expected) and variance == sorted(variance, reverse=True)
    assert rows[0]["expected"] == pytest.approx(662_500)
