"""What a practitioner reads off a scenario to calibrate a closed form: the mid's total return variance
and its expected move.

The model mid moves ``μ·dt − κ·(s − s0)·dt + σ·√dt·ξ + J`` per step (:mod:`.model.scenario`), J a normal
jump of std ``jump_size`` with probability ``λ·dt``. A desk calibrating Avellaneda–Stoikov or GLFT
estimates σ from realised returns, which carry the jumps too: the total variance rate is
``σ² + λ·jump_size²`` (price units² per time unit), not the diffusion's σ² alone. The expected move
over the next τ time units is ``μ·τ`` without reversion, and with reversion to the long-run level
``s0 + μ/κ``: ``(s0 + μ/κ − s)·(1 − exp(−κτ))``; its variance ``σ_tot²·(1 − exp(−2κτ))/(2κ)``.

Settings without these fields (the order-book replay) have none of them: their σ is already the one
calibrated on returns (:mod:`.replay.calibration`).
"""

from __future__ import annotations

import math

import torch

from decisionlab.domains.market_making.params import QuotingScenario


def drift_of(scenario: QuotingScenario) -> float:
    """The mid's drift μ (price units per time unit; 0 where the setting has none)."""
    return float(getattr(scenario, "drift", 0.0))


def reversion_of(scenario: QuotingScenario) -> float:
    """The mid's mean-reversion speed κ (per time unit; 0 where the setting has none)."""
    return float(getattr(scenario, "mean_reversion", 0.0))


def return_variance_rate(scenario: QuotingScenario) -> float:
    """Variance of the mid's moves per time unit: ``σ² + λ·jump_size²`` (price units² per time unit)."""
    jumps = float(getattr(scenario, "jump_intensity", 0.0)) * float(getattr(scenario, "jump_size", 0.0)) ** 2
    return scenario.sigma**2 + jumps


def total_sigma(scenario: QuotingScenario) -> float:
    """The return volatility a closed form is calibrated with: √(σ² + λ·jump_size²)."""
    return math.sqrt(return_variance_rate(scenario))


def local_drift(scenario: QuotingScenario, mid_offset: torch.Tensor) -> torch.Tensor:
    """Expected drift ``[B]`` of the mid now, ``μ − κ·(s − s0)``, from the offsets ``s − s0 [B]``."""
    return drift_of(scenario) - reversion_of(scenario) * mid_offset


def expected_move(scenario: QuotingScenario, mid_offset: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """``E[s_T − s]`` ``[B]`` over the time left ``τ [B]`` from the offsets ``s − s0 [B]`` (module docstring)."""
    kappa, mu = reversion_of(scenario), drift_of(scenario)
    if kappa == 0:
        return mu * tau
    return (mu / kappa - mid_offset) * -torch.expm1(-kappa * tau)


def move_variance(scenario: QuotingScenario, tau: torch.Tensor) -> torch.Tensor:
    """``Var[s_T − s]`` ``[B]`` over the time left ``τ [B]``: ``σ_tot²·τ``, or the Ornstein–Uhlenbeck
    ``σ_tot²·(1 − exp(−2κτ))/(2κ)`` with reversion."""
    kappa, rate = reversion_of(scenario), return_variance_rate(scenario)
    if kappa == 0:
        return rate * tau
    return rate * -torch.expm1(-2.0 * kappa * tau) / (2.0 * kappa)
