"""Closed-form quoting policies on the shared observation ``[B, 6]`` -> depths ``[B, 2]`` (price units).

Each is calibrated as a practitioner would calibrate it from the scenario (:mod:`.mid_model`): σ is the
mid's total return volatility √(σ² + λ·jump_size²), jumps included. The plain forms read only the time
left τ = T − t and the inventory q of the observation and ignore the fee, the penalties and the mid's
expected move; the *informed* forms add the drift μ and the mean reversion κ the scenario states:

- :class:`AvellanedaStoikov` (2008): reservation price r = s − q·γσ²τ, total spread
  γσ²τ + (2/γ)·ln(1 + γ/k) centred on r, so δ^b = spread/2 + qγσ²τ and δ^a = spread/2 − qγσ²τ;
- :class:`Symmetric`: the same total spread centred on the mid (the paper's "symmetric strategy");
- :class:`GLFTExact` (Guéant, Lehalle & Fernandez-Tapia 2013, needs ``max_inventory`` Q): with
  α = (k/2)γσ², η = A(1 + γ/k)^−(1+k/γ) and M the tridiagonal matrix on q ∈ [−Q, Q] (diagonal αq²,
  off-diagonals −η), v(τ) = exp(−M·τ)·1 and
  δ^b(q) = (1/k)·ln(v_q/v_{q+1}) + (1/γ)·ln(1 + γ/k), δ^a(q) = (1/k)·ln(v_q/v_{q−1}) + (1/γ)·ln(1 + γ/k);
- :class:`GLFTApprox`: the closed-form approximation c₁ = (1/γ)·ln(1 + γ/k),
  c₂ = √(σ²γ/(2kA)·(1 + γ/k)^(1+k/γ)), δ^b = c₁ + (2q + 1)·c₂/2, δ^a = c₁ − (2q − 1)·c₂/2;
- :class:`GLFTDrift` (informed): GLFT exact with the drift term of the Hamilton–Jacobi–Bellman equation,
  whose ansatz gives M's diagonal αq² − kμq (the drift rewards holding q in the direction of μ);
- :class:`GLFTApproxDrift` (informed): Guéant's (2017) approximation with drift,
  δ^b = c₁ + (−μ/(γσ²) + (2q + 1)/2)·c₂, δ^a = c₁ + (μ/(γσ²) − (2q − 1)/2)·c₂, read with the local
  expected drift μ − κ·(s − s0) (the offset is in the observation), so it also leans against a
  mean-reverting mid; depths clipped to the learners' depth bounds;
- :class:`AvellanedaStoikovInformed` (informed): Avellaneda–Stoikov's indifference price with the mid's
  expected move and variance to the horizon, r = s + E[s_T − s] − q·γ·Var[s_T − s] and total spread
  γ·Var[s_T − s] + (2/γ)·ln(1 + γ/k): E and Var of the drifting or Ornstein–Uhlenbeck mid (the
  "OU-aware reservation price").

At the bound the GLFT policies post the side that cannot trade at the depth bound ``action_high``
(bid at q ≥ Q, ask at q ≤ −Q); the simulators enforce the bound whatever a policy quotes.
:func:`depth_table` tabulates any (t, q) policy on the grid of steps and inventories.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from decisionlab.core import NotTractableError, ScenarioError
from decisionlab.domains.market_making.mid_model import (
    drift_of,
    expected_move,
    local_drift,
    move_variance,
    return_variance_rate,
)
from decisionlab.domains.market_making.params import QuotingScenario
from decisionlab.domains.market_making.quotes import (
    OBS_INVENTORY,
    OBS_MID_OFFSET,
    OBS_TIME_LEFT,
    depth_bounds,
    observation,
    time_left,
)

GLFT_MIN_RANGE = 1e-12
"""GLFT exact refuses parameters where v(T) spans more than 1/this between its smallest and largest
component. The eigendecomposition resolves each component of v to about eps of the largest, so the
log-ratios of the smallest ones (the depths at the largest |q|) degrade as the span grows: against a
60-digit reference the worst depth error was 6e-10 at a span of 1e10, 5e-5 at 1e14 and 1.1 at 2e20
(standard set-up, max_inventory 25, 30, 40). In the standard set-up the limit admits max_inventory ≤ 27."""


def glft_problem(scenario: QuotingScenario) -> str | None:
    """Why the GLFT quotes cannot serve ``scenario`` (None when they can): they need an inventory bound.
    The message suits ``PolicySpec.check``."""
    if scenario.max_inventory is None:
        return ("GLFT quotes need an inventory bound: max_inventory must be set (e.g. --set max_inventory=10); "
                "it is unbounded in this scenario")
    return None


def require_bounded(scenario: QuotingScenario) -> int:
    """``max_inventory`` Q, or a :class:`ScenarioError` saying that it must be set."""
    problem = glft_problem(scenario)
    if problem is not None:
        raise ScenarioError(problem)
    assert scenario.max_inventory is not None
    return scenario.max_inventory


def as_half_spread_and_skew(scenario: QuotingScenario, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Avellaneda–Stoikov's half spread ``[B]`` and the skew per unit of inventory γσ²τ ``[B]`` (price units),
    σ² the total return variance rate."""
    g, k = scenario.risk_aversion, scenario.fill_decay_k
    per_unit = tau * (g * return_variance_rate(scenario))
    half = per_unit * 0.5 + math.log1p(g / k) / g
    return half, per_unit


class AvellanedaStoikov:
    """Quotes symmetric around the reservation price r = s − q·γσ²τ (module docstring)."""

    name = "avellaneda_stoikov"

    def __init__(self, scenario: QuotingScenario) -> None:
        self.scenario = scenario

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Depths ``[B, 2]`` from the observation ``[B, 6]``."""
        half, per_unit = as_half_spread_and_skew(self.scenario, obs[:, OBS_TIME_LEFT])
        skew = obs[:, OBS_INVENTORY] * per_unit
        return torch.stack([half + skew, half - skew], dim=1)


class AvellanedaStoikovInformed:
    """Avellaneda–Stoikov's indifference quotes with the mid's expected move and variance to the horizon
    (module docstring): the drift and the mean reversion the scenario states move the reservation price."""

    name = "avellaneda_stoikov_informed"

    def __init__(self, scenario: QuotingScenario) -> None:
        self.scenario = scenario

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        s = self.scenario
        tau = obs[:, OBS_TIME_LEFT].clamp_min(0.0)
        variance = move_variance(s, tau)
        half = variance * (0.5 * s.risk_aversion) + math.log1p(s.risk_aversion / s.fill_decay_k) / s.risk_aversion
        lean = expected_move(s, obs[:, OBS_MID_OFFSET], tau) - obs[:, OBS_INVENTORY] * s.risk_aversion * variance
        return torch.stack([half - lean, half + lean], dim=1)


class Symmetric:
    """Avellaneda–Stoikov's total spread centred on the mid, whatever the inventory."""

    name = "symmetric"

    def __init__(self, scenario: QuotingScenario) -> None:
        self.scenario = scenario

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        half, _ = as_half_spread_and_skew(self.scenario, obs[:, OBS_TIME_LEFT])
        return torch.stack([half, half], dim=1)


def glft_constants(scenario: QuotingScenario) -> tuple[float, float, float, float]:
    """``(α, η, c₁, c₂)`` of GLFT (module docstring), σ² the total return variance rate."""
    g, k, a = scenario.risk_aversion, scenario.fill_decay_k, scenario.fill_intensity_a
    variance = return_variance_rate(scenario)
    alpha = 0.5 * k * g * variance
    log_base = math.log1p(g / k)
    eta = a * math.exp(-(1.0 + k / g) * log_base)
    c1 = log_base / g
    c2 = math.sqrt(variance * g / (2.0 * k * a) * math.exp((1.0 + k / g) * log_base))
    return alpha, eta, c1, c2


def glft_matrix(scenario: QuotingScenario, drift: float = 0.0) -> np.ndarray:
    """GLFT's M ``[2Q+1, 2Q+1]`` (float64) on q = −Q..Q: diagonal αq² − kμq (μ = ``drift``), off-diagonals −η."""
    q_max = require_bounded(scenario)
    alpha, eta, _, _ = glft_constants(scenario)
    q = np.arange(-q_max, q_max + 1, dtype=np.float64)
    diagonal = alpha * q**2 - scenario.fill_decay_k * drift * q
    return np.diag(diagonal) - eta * (np.eye(q.size, k=1) + np.eye(q.size, k=-1))


class _BoundedQuotes:
    """Shared pieces of the GLFT policies: the bound, the depth posted on a closed side, inventory indices."""

    def __init__(self, scenario: QuotingScenario) -> None:
        self.scenario = scenario
        self.max_inventory = require_bounded(scenario)
        self.closed_depth = depth_bounds(scenario)[1]

    def _close_sides(self, q: torch.Tensor, bid: torch.Tensor, ask: torch.Tensor) -> torch.Tensor:
        bound = self.max_inventory
        bid = torch.where(q >= bound, self.closed_depth, bid)
        ask = torch.where(q <= -bound, self.closed_depth, ask)
        return torch.stack([bid, ask], dim=1)


class GLFTApprox(_BoundedQuotes):
    """GLFT's closed-form approximation, constant in time (module docstring)."""

    name = "glft_approx"

    def __init__(self, scenario: QuotingScenario) -> None:
        super().__init__(scenario)
        _, _, self.c1, self.c2 = glft_constants(scenario)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        q = obs[:, OBS_INVENTORY]
        bid = (2.0 * q + 1.0) * (0.5 * self.c2) + self.c1
        ask = (2.0 * q - 1.0) * (-0.5 * self.c2) + self.c1
        return self._close_sides(q, bid, ask)


class GLFTApproxDrift(_BoundedQuotes):
    """Guéant's approximation with the local expected drift μ − κ·(s − s0) (module docstring)."""

    name = "glft_approx_drift"

    def __init__(self, scenario: QuotingScenario) -> None:
        super().__init__(scenario)
        _, _, self.c1, self.c2 = glft_constants(scenario)
        variance = return_variance_rate(scenario)
        # the lean μ/(γσ²) is the inventory the drift makes worth holding; σ = 0 leaves no risk to weigh
        self.lean_per_drift = self.c2 / (scenario.risk_aversion * variance) if variance > 0 else 0.0
        self.low, self.high = depth_bounds(scenario)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        q = obs[:, OBS_INVENTORY]
        lean = local_drift(self.scenario, obs[:, OBS_MID_OFFSET]) * self.lean_per_drift
        bid = ((2.0 * q + 1.0) * (0.5 * self.c2) + self.c1 - lean).clamp(self.low, self.high)
        ask = ((2.0 * q - 1.0) * (-0.5 * self.c2) + self.c1 + lean).clamp(self.low, self.high)
        return self._close_sides(q, bid, ask)


class GLFTExact(_BoundedQuotes):
    """GLFT's exact quotes from v(τ) = exp(−M·τ)·1 (module docstring).

    M is symmetric, so one eigendecomposition M = V·diag(λ)·Vᵀ at construction (float64) gives v for any
    batch of τ: ``v(τ) ∝ V·(exp(−(λ − λ₀)·τ) ⊙ Vᵀ1)``; shifting by the smallest eigenvalue λ₀ keeps every
    exponent in (0, 1], so nothing underflows at long horizons (only ratios of v enter the depths).
    The time left is clipped to [0, horizon]. Raises :class:`NotTractableError` when v(T) spans more than
    1/:data:`GLFT_MIN_RANGE` (too large a bound for float64 at these parameters).
    """

    name = "glft_exact"

    def __init__(self, scenario: QuotingScenario, drift: float = 0.0) -> None:
        super().__init__(scenario)
        _, _, self.c1, _ = glft_constants(scenario)
        eigenvalues, vectors = np.linalg.eigh(glft_matrix(scenario, drift))
        self._rates = torch.from_numpy(eigenvalues - eigenvalues[0])  # [n] ≥ 0
        self._vectors = torch.from_numpy(vectors)  # [n, n], column j = eigenvector j
        self._weights = self._vectors.sum(dim=0)  # Vᵀ1 [n]
        v_end = self.values(torch.tensor([scenario.horizon], dtype=torch.float64))[0]
        spread = float(v_end.min() / v_end.max())
        if not spread >= GLFT_MIN_RANGE:  # also catches non-positive components
            raise NotTractableError(
                f"glft_exact: at these parameters v(T) spans {1 / max(spread, 1e-300):.1e} between |q| = 0 and "
                f"|q| = max_inventory ({self.max_inventory}), more than float64 resolves (limit "
                f"{1 / GLFT_MIN_RANGE:.0e}); lower max_inventory or use glft_approx"
            )

    def values(self, tau: torch.Tensor) -> torch.Tensor:
        """``v(τ)`` up to a positive factor per row, ``[U, 2Q+1]`` (float64) for times left ``τ [U]``."""
        tau = tau.double()
        rates, weights, vectors = (t.to(tau.device) for t in (self._rates, self._weights, self._vectors))
        decay = torch.exp(-tau[:, None] * rates[None, :])  # [U, n] in (0, 1]
        return (decay * weights) @ vectors.T

    def depths_at(self, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bid and ask depths ``[U, 2Q+1]`` (float64) for every inventory −Q..Q at times left ``τ [U]``;
        the closed side at the bound holds the closed depth."""
        log_v = torch.log(self.values(tau.clamp(0.0, self.scenario.horizon)))
        k, closed = self.scenario.fill_decay_k, self.closed_depth
        step_down = (log_v[:, :-1] - log_v[:, 1:]) / k + self.c1  # ln(v_q/v_{q+1})/k + c₁ for q < Q
        edge = torch.full_like(log_v[:, :1], closed)
        bid = torch.cat([step_down, edge], dim=1)
        ask = torch.cat([edge, -step_down + 2.0 * self.c1], dim=1)  # ln(v_q/v_{q−1})/k + c₁ for q > −Q
        return bid, ask

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        tau, q = obs[:, OBS_TIME_LEFT], obs[:, OBS_INVENTORY]
        # a rollout asks for one time left at a time: compute v once per distinct τ
        if tau.numel() and bool(tau.min() == tau.max()):
            unique, rows = tau[:1], torch.zeros_like(q, dtype=torch.long)
        else:
            unique, rows = torch.unique(tau, return_inverse=True)
        bid, ask = self.depths_at(unique)
        bound = self.max_inventory
        column = q.round().clamp(-bound, bound).long() + bound
        depths = torch.stack([bid[rows, column], ask[rows, column]], dim=1).to(obs.dtype)
        # inventories beyond the bound (the API may send any q) close the side like q = ±Q
        return self._close_sides(q, depths[:, 0], depths[:, 1])


class GLFTDrift(GLFTExact):
    """GLFT exact with the scenario's drift μ in M (module docstring); GLFT exact where μ = 0."""

    name = "glft_drift"

    def __init__(self, scenario: QuotingScenario) -> None:
        super().__init__(scenario, drift_of(scenario))


@lru_cache(maxsize=256)
def glft_exact_problem(scenario: QuotingScenario, with_drift: bool = False) -> str | None:
    """Why :class:`GLFTExact` (:class:`GLFTDrift` with ``with_drift``) cannot serve ``scenario`` (None when
    it can): no inventory bound, or a bound too large for float64 at these parameters (see
    :data:`GLFT_MIN_RANGE`). For ``PolicySpec.check``."""
    problem = glft_problem(scenario)
    if problem is not None:
        return problem
    try:
        GLFTExact(scenario, drift_of(scenario) if with_drift else 0.0)
    except NotTractableError as err:
        return str(err)
    return None


def inventory_grid(scenario: QuotingScenario) -> torch.Tensor:
    """Every inventory an episode can reach, ``[n_q]`` (long): −Q..Q when bounded, else q0 − N..q0 + N."""
    if scenario.max_inventory is not None:
        return torch.arange(-scenario.max_inventory, scenario.max_inventory + 1)
    q0, n = scenario.initial_inventory, scenario.steps
    return torch.arange(q0 - n, q0 + n + 1)


MAX_TABLE_CELLS = 20_000_000  # steps × inventories of a depth table (160 MiB of float32 observations)


def depth_table(policy: object, scenario: QuotingScenario, inventories: torch.Tensor | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Depths ``[N, n_q, 2]`` of a (t, q) policy at every step k (time left (N − k)·dt, as the simulators
    compute it) and inventory of ``inventories [n_q]`` (default :func:`inventory_grid`), the other
    observation fields 0. The policy needs an ``act(obs [B, 6]) -> [B, 2]``."""
    grid = inventory_grid(scenario) if inventories is None else inventories
    n, n_q = scenario.steps, int(grid.numel())
    if n * n_q > MAX_TABLE_CELLS:
        raise NotTractableError(
            f"a depth table of {n:,} steps × {n_q:,} inventories exceeds {MAX_TABLE_CELLS:,} cells; "
            "use fewer steps (horizon/dt) or set max_inventory"
        )
    steps = torch.arange(n).repeat_interleave(n_q)
    obs = observation(time_left(steps, scenario, dtype), grid.to(dtype).repeat(n))
    with torch.no_grad():
        depths = policy.act(obs)  # type: ignore[attr-defined]
    return depths.reshape(n, n_q, 2)
