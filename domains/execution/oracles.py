"""Closed forms and exact static optima of discrete Almgren–Chriss execution.

Notation (τ = 1, steps k = 1..N): holdings ``x_0 = X, …, x_N = 0`` (shares still to trade after step k),
trades ``n_k = x_{k−1} − x_k``. With per-step impacts ``η_k``, ``γ_k`` and volatility ``σ_k``, a static
schedule has

    E = Σ_k γ_k n_k x_k + ε Σ_k |n_k| + Σ_k E[η_k] n_k²,
    V = Σ_k σ_k² x_k² + Σ_{j,k} n_j² n_k² Cov(η_j, η_k),

which for constant impact reduces to the paper's ``E = ½γX² + εΣ|n_k| + η̃ Σ n_k²`` (η̃ = η − ½γ) and
``V = σ² Σ x_k²``. E + λV (without the impact-variance term) is quadratic in ``x_1..x_{N−1}`` with a
tridiagonal Hessian, so the best static schedule is one banded solve (:func:`solve_static`); at constant
impact it is the sinh form (:func:`ac_holdings`). Arrays are numpy float64; holdings are ``[N + 1]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_banded

from decisionlab.domains.execution.scenario import ExecutionScenario


@dataclass(frozen=True)
class ScheduleMoments:
    """Expected shortfall E and its variance V (currency, currency²) of one static schedule."""

    expected: float
    variance: float
    price_variance: float
    impact_variance: float = 0.0

    def objective(self, risk_aversion: float) -> float:
        """The mean-variance objective E + λ·V."""
        return self.expected + risk_aversion * self.variance

    @property
    def std(self) -> float:
        return math.sqrt(max(self.variance, 0.0))


# --- the constant-impact closed form ---------------------------------------------------------


def ac_kappa(sigma: float, eta: float, gamma: float, risk_aversion: float) -> float:
    """Discrete AC urgency κ (1/step): κ̃² = λσ²/η̃, κ = arccosh(½κ̃² + 1) with η̃ = η − ½γ."""
    eta_tilde = eta - 0.5 * gamma
    if eta_tilde <= 0:
        raise ValueError(f"need eta > gamma/2 (got eta={eta}, gamma={gamma})")
    kappa_tilde_sq = risk_aversion * sigma**2 / eta_tilde
    return math.acosh(0.5 * kappa_tilde_sq + 1.0)


def ac_holdings(
    shares: float, horizon_steps: int, sigma: float, eta: float, gamma: float, risk_aversion: float
) -> np.ndarray:
    """The optimal static trajectory ``x_j = X sinh(κ(N − j)) / sinh(κN)`` ``[N + 1]`` (TWAP when κ = 0).

    Evaluated as ``e^{−κj} (1 − e^{−2κ(N−j)}) / (1 − e^{−2κN})`` so large κN does not overflow.
    """
    n = int(horizon_steps)
    j = np.arange(n + 1, dtype=np.float64)
    kappa = ac_kappa(sigma, eta, gamma, risk_aversion)
    if kappa * n < 1e-8:
        return shares * (n - j) / n
    ratio = np.exp(-kappa * j) * (-np.expm1(-2.0 * kappa * (n - j))) / (-np.expm1(-2.0 * kappa * n))
    ratio[-1] = 0.0
    return shares * ratio


def ac_closed_form_moments(
    shares: float, horizon_steps: int, sigma: float, eta: float, gamma: float, epsilon: float,
    risk_aversion: float,
) -> ScheduleMoments:
    """E and V of the optimal AC trajectory by the paper's closed forms (τ = 1, T = N):

    ``E = ½γX² + εX + η̃X² tanh(½κ)(sinh(2κT) + 2T sinh κ) / (2 sinh²(κT))``,
    ``V = ½σ²X² (sinh(κT) cosh(κ(T − 1)) − T sinh κ) / (sinh²(κT) sinh κ)``.
    Falls back to the sums over the trajectory where the closed form is 0/0 (κT → 0) or overflows.
    """
    n = int(horizon_steps)
    kappa = ac_kappa(sigma, eta, gamma, risk_aversion)
    big_t = float(n)
    if kappa * big_t < 1e-4 or kappa * big_t > 300:
        holdings = ac_holdings(shares, n, sigma, eta, gamma, risk_aversion)
        return schedule_moments(holdings, np.full(n, eta), np.full(n, gamma), np.full(n, sigma), epsilon)
    eta_tilde = eta - 0.5 * gamma
    sinh_t = math.sinh(kappa * big_t)
    expected = (
        0.5 * gamma * shares**2
        + epsilon * shares
        + eta_tilde * shares**2 * math.tanh(0.5 * kappa)
        * (math.sinh(2 * kappa * big_t) + 2 * big_t * math.sinh(kappa)) / (2 * sinh_t**2)
    )
    variance = (
        0.5 * sigma**2 * shares**2
        * (sinh_t * math.cosh(kappa * (big_t - 1)) - big_t * math.sinh(kappa))
        / (sinh_t**2 * math.sinh(kappa))
    )
    return ScheduleMoments(expected, variance, variance)


# --- any static schedule ---------------------------------------------------------------------


def trades_of(holdings: np.ndarray) -> np.ndarray:
    """Child orders ``n_k = x_{k−1} − x_k`` ``[N]``."""
    holdings = np.asarray(holdings, dtype=np.float64)
    return holdings[:-1] - holdings[1:]


def schedule_moments(
    holdings: np.ndarray,
    eta: np.ndarray,
    gamma: np.ndarray,
    sigma: np.ndarray,
    epsilon: float,
    eta_covariance: np.ndarray | None = None,
) -> ScheduleMoments:
    """E and V of the static schedule ``holdings [N + 1]`` with per-step ``E[η_k]``, ``γ_k``, ``σ_k`` ``[N]``.

    ``eta_covariance [N, N]``: ``Cov(η_j, η_k)`` under stochastic liquidity (adds ``n²ᵀ C n²`` to V).
    """
    holdings = np.asarray(holdings, dtype=np.float64)
    trades = trades_of(holdings)
    after = holdings[1:]
    expected = float(np.sum(gamma * trades * after) + epsilon * np.sum(np.abs(trades)) + np.sum(eta * trades**2))
    price_variance = float(np.sum(np.asarray(sigma) ** 2 * after**2))
    impact_variance = 0.0
    if eta_covariance is not None:
        squared = trades**2
        impact_variance = float(squared @ eta_covariance @ squared)
    return ScheduleMoments(expected, price_variance + impact_variance, price_variance, impact_variance)


def solve_static(
    shares: float, eta: np.ndarray, gamma: np.ndarray, sigma: np.ndarray, risk_aversion: float
) -> np.ndarray:
    """Holdings ``[N + 1]`` minimising ``E + λ·Σσ_k²x_k²`` for deterministic ``η_k, γ_k, σ_k`` ``[N]``.

    Setting the gradient in ``x_1..x_{N−1}`` to zero gives the symmetric tridiagonal system
    ``(2η_i − 2γ_i + 2η_{i+1} + 2λσ_i²) x_i + (γ_i − 2η_i) x_{i−1} + (γ_{i+1} − 2η_{i+1}) x_{i+1} = 0``
    with ``x_0 = X`` and ``x_N = 0`` (indices 1-based, one banded solve). Requires ``η_k > γ_k/2``.
    """
    eta, gamma, sigma = (np.asarray(a, dtype=np.float64) for a in (eta, gamma, sigma))
    n = eta.size
    if gamma.size != n or sigma.size != n:
        raise ValueError("eta, gamma and sigma must all have one value per step")
    if np.any(eta <= 0.5 * gamma):
        raise ValueError("need eta_k > gamma_k / 2 at every step for a convex problem")
    holdings = np.zeros(n + 1)
    holdings[0] = shares
    if n == 1:
        return holdings
    # unknowns x_1..x_{N−1}; 0-based arrays: eta[i−1] is η_i
    diag = 2 * eta[:-1] - 2 * gamma[:-1] + 2 * eta[1:] + 2 * risk_aversion * sigma[:-1] ** 2
    off = gamma[1:-1] - 2 * eta[1:-1]  # coupling x_i, x_{i+1} for i = 1..N−2
    banded = np.zeros((3, n - 1))
    banded[0, 1:] = off
    banded[1] = diag
    banded[2, :-1] = off
    rhs = np.zeros(n - 1)
    rhs[0] = (2 * eta[0] - gamma[0]) * shares
    holdings[1:-1] = solve_banded((1, 1), banded, rhs)
    return holdings


def twap_holdings(shares: float, horizon_steps: int) -> np.ndarray:
    """Equal child orders ``X/N`` ``[N + 1]``."""
    n = int(horizon_steps)
    return shares * (n - np.arange(n + 1, dtype=np.float64)) / n


def vwap_holdings(shares: float, volume: np.ndarray) -> np.ndarray:
    """Child orders proportional to the expected volume profile ``volume [N]``."""
    volume = np.asarray(volume, dtype=np.float64)
    done = np.concatenate([[0.0], np.cumsum(volume)]) / volume.sum()
    holdings = shares * (1.0 - done)
    holdings[-1] = 0.0
    return holdings


def holdings_to_fractions(holdings: np.ndarray) -> np.ndarray:
    """Fraction of the remaining shares each step trades ``[N]`` (1 where nothing is left).

    Applied to the actual remaining shares this is the schedule re-optimised from any state: the
    static problems are homogeneous in the shares left, so the tail of a solution scales with them.
    """
    holdings = np.asarray(holdings, dtype=np.float64)
    before, after = holdings[:-1], holdings[1:]
    fractions = np.ones_like(before)
    live = before > 1e-12 * max(holdings[0], 1e-300)
    fractions[live] = 1.0 - after[live] / before[live]
    fractions[-1] = 1.0
    return np.clip(fractions, 0.0, 1.0)


# --- scenario-level helpers ------------------------------------------------------------------


def scenario_arrays(scenario: ExecutionScenario) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(E[η_k], γ_k, σ_k)`` each ``[N]``."""
    n = scenario.horizon_steps
    return scenario.expected_eta(), np.full(n, scenario.gamma), np.full(n, scenario.sigma)


def regime_correlation(scenario: ExecutionScenario) -> np.ndarray:
    """``E[B_j B_k]`` ``[N, N]`` of the normalised regime multiplier B (mean one, stationary start)."""
    n = scenario.horizon_steps
    p01, p10, m = scenario.stress_entry_prob, scenario.stress_exit_prob, scenario.stress_multiplier
    pi = np.array([1 - scenario.stress_probability, scenario.stress_probability])
    levels = np.array([1.0, m]) / float(pi @ np.array([1.0, m]))
    transition = np.array([[1 - p01, p01], [p10, 1 - p10]])
    out = np.empty((n, n))
    power = np.eye(2)
    for lag in range(n):
        value = float((pi[:, None] * power * levels[:, None] * levels[None, :]).sum())
        idx = np.arange(n - lag)
        out[idx, idx + lag] = value
        out[idx + lag, idx] = value
        power = power @ transition
    return out


def eta_covariance(scenario: ExecutionScenario) -> np.ndarray:
    """``Cov(η_j, η_k)`` ``[N, N]``: zero for deterministic liquidity.

    With ``L_k = exp(ℓ_k − s²/2)·B_k`` (stationary AR(1) ℓ with std s, independent regime factor B):
    ``E[L_j L_k] = exp(s² φ^{|j−k|}) · E[B_j B_k]``.
    """
    n = scenario.horizon_steps
    if not scenario.stochastic:
        return np.zeros((n, n))
    lags = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    log_part = np.exp(scenario.liquidity_vol**2 * scenario.liquidity_persistence**lags)
    second_moment = log_part * regime_correlation(scenario)
    mean_eta = scenario.expected_eta()
    return (second_moment - 1.0) * mean_eta[:, None] * mean_eta[None, :]


def moments(scenario: ExecutionScenario, holdings: np.ndarray) -> ScheduleMoments:
    """E and V of a static schedule under ``scenario`` (impact variance included when stochastic)."""
    eta, gamma, sigma = scenario_arrays(scenario)
    cov = eta_covariance(scenario) if scenario.stochastic else None
    return schedule_moments(holdings, eta, gamma, sigma, scenario.epsilon, cov)


def ac_optimal_holdings(scenario: ExecutionScenario) -> np.ndarray:
    """The sinh-form trajectory with the scenario's nominal (constant) η and γ."""
    s = scenario
    return ac_holdings(s.shares, s.horizon_steps, s.sigma, s.eta, s.gamma, s.risk_aversion)


def static_expected_holdings(scenario: ExecutionScenario, risk_aversion: float | None = None) -> np.ndarray:
    """The exact best static schedule with ``E[η_k]`` plugged in (the exact optimum when deterministic)."""
    eta, gamma, sigma = scenario_arrays(scenario)
    lam = scenario.risk_aversion if risk_aversion is None else risk_aversion
    return solve_static(scenario.shares, eta, gamma, sigma, lam)


def efficient_frontier(scenario: ExecutionScenario, risk_aversions: np.ndarray) -> list[dict[str, float]]:
    """``[{risk_aversion, expected, variance, std, objective}]``: the static optimum per λ (E vs V)."""
    rows = []
    for lam in np.asarray(risk_aversions, dtype=np.float64):
        m = moments(scenario, static_expected_holdings(scenario, float(lam)))
        rows.append({"risk_aversion": float(lam), "expected": m.expected, "variance": m.variance, "std": m.std,
                     "objective": m.objective(float(lam))})
    return rows


def best_static_holdings(scenario: ExecutionScenario) -> np.ndarray:
    """The best static schedule for E + λV *including* the impact-cost variance ``n²ᵀ C n²`` (stochastic η).

    That term is quartic in the trades, so this is a bound-constrained numerical minimisation (L-BFGS-B
    with the exact gradient) started from the plug-in solution; with deterministic liquidity it *is* the
    plug-in solution. Under the presets it differs from ``static_expected`` by well under 1%.
    """
    start = static_expected_holdings(scenario)
    if not scenario.stochastic or scenario.horizon_steps < 2:
        return start
    from scipy.optimize import minimize

    shares, lam = scenario.shares, scenario.risk_aversion
    eta, gamma, sigma = scenario_arrays(scenario)
    cov = eta_covariance(scenario)
    scale = max(moments(scenario, start).objective(lam), 1e-300)

    def value_and_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
        x = np.concatenate([[shares], z * shares, [0.0]])
        n = x[:-1] - x[1:]
        after = x[1:]
        sq = n**2
        c_sq = cov @ sq
        value = np.sum(gamma * n * after + eta * sq) + lam * (np.sum(sigma**2 * after**2) + sq @ c_sq)
        d_n = gamma * after + 2 * eta * n + lam * 4 * n * c_sq  # ∂/∂n_k (ε·Σ|n| is constant for monotone n)
        d_after = gamma * n + 2 * lam * sigma**2 * after  # direct ∂/∂x_k, k = 1..N
        grad = d_after[:-1] - d_n[:-1] + d_n[1:]  # x_i enters n_i (−) and n_{i+1} (+)
        return float(value / scale), grad * shares / scale

    result = minimize(value_and_grad, start[1:-1] / shares, jac=True, method="L-BFGS-B",
                      bounds=[(0.0, 1.0)] * (scenario.horizon_steps - 1), options={"maxiter": 500})
    holdings = np.concatenate([[shares], result.x * shares, [0.0]])
    better = moments(scenario, holdings).objective(lam) <= moments(scenario, start).objective(lam)
    return holdings if better else start
