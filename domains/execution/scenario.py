"""Optimal-execution scenarios: discrete Almgren–Chriss with constant, profiled or latent stochastic liquidity.

Units are those of Almgren & Chriss (2000) with one step as the time unit (τ = 1):

- ``shares`` X: the parent order (shares), executed as N = ``horizon_steps`` child orders;
- ``sigma`` σ: price volatility per step (currency per share per √step);
- ``eta`` η: temporary impact, a trade of n shares in a step fills ``eta·n`` below (sell) / above (buy)
  the pre-trade price (currency per share per share);
- ``gamma`` γ: permanent impact (currency per share per share traded), ``epsilon`` ε: fixed cost per share
  (half spread plus fees, currency per share);
- ``risk_aversion`` λ: the λ of E + λ·V (per currency), ``initial_price`` S₀ (currency per share).

Liquidity: the temporary impact of step k is ``η_k = η · p_k · L_k``. ``p_k`` is a deterministic intraday
profile (1 for ``flat``; for ``u_shaped`` the inverse of a U-shaped volume curve normalised to mean 1, so
impact is highest mid-horizon). ``L_k`` is 1 for ``liquidity_model="deterministic"``; for ``"stochastic"``
it is a stationary mean-one process: a mean-reverting (AR(1)) log-liquidity times a two-state regime switch
(normal / stressed, with impact ``stress_multiplier`` times higher in stress). ``L_k`` is latent: the agent
only sees the fills of its own child orders.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from decisionlab.core import Scenario


class ExecutionScenario(Scenario):
    """One parent order executed over a fixed horizon under the discrete Almgren–Chriss model."""

    side: Literal["sell", "buy"] = Field("sell", description="'sell' (liquidate X shares) or 'buy' (acquire X)")
    shares: float = Field(1e6, ge=1, le=1e12, allow_inf_nan=False,
                          description="parent order size X (shares), at least one")
    horizon_steps: int = Field(5, ge=1, le=1000, description="number of child orders N (one per step, τ = 1)")
    sigma: float = Field(
        0.95, ge=0, le=1e6, allow_inf_nan=False, description="price volatility per step (currency/share/√step)"
    )
    eta: float = Field(
        2.5e-6, gt=0, le=1e3, allow_inf_nan=False,
        description="temporary impact: n shares in one step fill eta·n away from the pre-trade price",
    )
    gamma: float = Field(
        2.5e-7, ge=0, le=1e3, allow_inf_nan=False, description="permanent impact per share traded (currency/share²)"
    )
    epsilon: float = Field(
        0.0625, ge=0, le=1e6, allow_inf_nan=False, description="fixed cost per share: half spread + fees (currency)"
    )
    risk_aversion: float = Field(
        1e-6, ge=0, le=1e3, allow_inf_nan=False, description="λ of the mean-variance objective E + λ·V (1/currency)"
    )
    initial_price: float = Field(
        50.0, ge=1e-6, le=1e9, allow_inf_nan=False, description="arrival price S0 (currency/share; from 1e-6, as "
        "the API's prices: a smaller one underflows the float32 notional)"
    )
    profile: Literal["flat", "u_shaped"] = Field(
        "flat", description="deterministic impact profile: 'flat' or 'u_shaped' (intraday U-shaped volume)"
    )
    profile_strength: float = Field(
        3.0, ge=0, le=100, allow_inf_nan=False,
        description="U-shape strength a: volume ∝ 1 + a·(2u−1)² over the horizon u ∈ [0, 1]",
    )
    liquidity_model: Literal["deterministic", "stochastic"] = Field(
        "deterministic", description="'deterministic' (η_k = η·profile) or 'stochastic' (latent liquidity process)"
    )
    liquidity_vol: float = Field(
        0.5, ge=0, le=3, allow_inf_nan=False, description="stationary std of the log-liquidity process"
    )
    liquidity_persistence: float = Field(
        0.8, ge=0, lt=1, description="AR(1) coefficient of the log-liquidity per step (mean reversion 1 − φ)"
    )
    stress_multiplier: float = Field(
        3.0, ge=1, le=100, allow_inf_nan=False, description="impact multiplier of the stressed regime (1 = none)"
    )
    stress_entry_prob: float = Field(0.1, ge=0, le=1, description="per-step probability normal → stressed")
    stress_exit_prob: float = Field(0.25, gt=0, le=1, description="per-step probability stressed → normal")

    @model_validator(mode="after")
    def _convex(self) -> ExecutionScenario:
        lowest = float(self.eta * np.min(self.profile_multipliers()))
        if lowest <= 0.5 * self.gamma:
            raise ValueError(
                f"eta·profile must exceed gamma/2 at every step (η̃ = η − γ/2 > 0): lowest eta_k={lowest:.3g}, "
                f"gamma/2={0.5 * self.gamma:.3g}"
            )
        return self

    @property
    def sign(self) -> float:
        """+1 for a sell order, −1 for a buy order."""
        return 1.0 if self.side == "sell" else -1.0

    @property
    def notional(self) -> float:
        """Arrival value X·S0 (currency): the base of shortfall in basis points."""
        return self.shares * self.initial_price

    @property
    def stochastic(self) -> bool:
        return self.liquidity_model == "stochastic"

    @property
    def stress_probability(self) -> float:
        """Stationary probability of the stressed regime."""
        total = self.stress_entry_prob + self.stress_exit_prob
        return self.stress_entry_prob / total if total > 0 else 0.0

    def volume_profile(self) -> np.ndarray:
        """Relative volume per step ``[N]`` (mean 1): flat, or U-shaped at the step midpoints."""
        n = self.horizon_steps
        if self.profile == "flat":
            return np.ones(n)
        u = (np.arange(n) + 0.5) / n
        volume = 1.0 + self.profile_strength * (2.0 * u - 1.0) ** 2
        return volume / volume.mean()

    def profile_multipliers(self) -> np.ndarray:
        """Deterministic impact multipliers ``p_k [N]``: impact is inversely proportional to volume."""
        return 1.0 / self.volume_profile()

    def expected_eta(self) -> np.ndarray:
        """``E[η_k] [N]`` (the stochastic factor has mean one)."""
        return self.eta * self.profile_multipliers()


SCENARIOS: dict[str, ExecutionScenario] = {
    # Almgren & Chriss (2000), section 'Construction of optimal strategies', numerical example.
    "almgren_chriss": ExecutionScenario(),
    # Intraday U-shaped volume: impact twice nominal mid-horizon, half at the ends.
    "time_varying": ExecutionScenario(horizon_steps=10, sigma=0.3, profile="u_shaped", profile_strength=3.0),
    # Latent stochastic liquidity: mean-reverting log-liquidity plus a normal/stressed regime switch.
    "latent_liquidity": ExecutionScenario(horizon_steps=10, sigma=0.3, liquidity_model="stochastic"),
}
