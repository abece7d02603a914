"""Scenarios of the model setting: the Avellaneda–Stoikov market plus what the closed forms ignore.

The mid follows ``s ← s + μ·dt − κ·(s − s0)·dt + σ·√dt·ξ + J`` per step (ξ standard normal; J a
normal jump of std ``jump_size`` with probability ``λ·dt``). With μ = κ = λ = 0 this is the arithmetic
Brownian motion of Avellaneda–Stoikov and GLFT (:attr:`ModelScenario.closed_form_exact`). Without
reversion the exact recursion of :mod:`.recursion` is the oracle of (t, q) policies and :mod:`.dp`
gives the optimum. The other presets give a learned policy something
the closed forms leave on the table: a known drift (lean long), a mean-reverting mid (lean against the
offset ``s − s0``, which the observation shows) or jumps (more inventory risk than σ says).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from decisionlab.domains.market_making.params import QuotingScenario


class ModelScenario(QuotingScenario):
    """A simulated quoting market (see the module docstring)."""

    drift: float = Field(0.0, ge=-1e4, le=1e4, allow_inf_nan=False,
                         description="drift μ of the mid (price units per time unit)")
    mean_reversion: float = Field(0.0, ge=0, le=1e4, allow_inf_nan=False,
                                  description="mean reversion κ of the mid toward initial_price (per time unit, "
                                  "Ornstein–Uhlenbeck); κ·dt ≤ 1")
    jump_intensity: float = Field(0.0, ge=0, le=1e6, allow_inf_nan=False,
                                  description="jump intensity λ of the mid (jumps per time unit); λ·dt ≤ 1")
    jump_size: float = Field(0.0, ge=0, le=1e4, allow_inf_nan=False,
                             description="standard deviation of a normal jump of the mid (price units); "
                             "> 0 when jump_intensity > 0")

    @model_validator(mode="after")
    def _stable_steps(self) -> ModelScenario:
        if self.mean_reversion * self.dt > 1:
            raise ValueError(
                f"mean_reversion·dt must be at most 1 (an Euler step would overshoot the mean): "
                f"mean_reversion={self.mean_reversion:g}, dt={self.dt:g}"
            )
        if self.jump_intensity * self.dt > 1:
            raise ValueError(
                f"jump_intensity·dt is the jump probability of a step and must be at most 1: "
                f"jump_intensity={self.jump_intensity:g}, dt={self.dt:g}"
            )
        if self.jump_intensity > 0 and self.jump_size <= 0:
            raise ValueError("jump_size must be > 0 when jump_intensity > 0")
        return self

    @property
    def closed_form_exact(self) -> bool:
        """Whether the mid is the closed forms' arithmetic Brownian motion (no drift, reversion or jumps)."""
        return self.drift == 0 and self.mean_reversion == 0 and self.jump_intensity == 0

    @property
    def recursion_exact(self) -> bool:
        """Whether the mid's moves are independent of the state (no mean reversion): then a (t, q) policy's
        statistics follow exactly from :mod:`.recursion` and :mod:`.dp` solves the optimum."""
        return self.mean_reversion == 0


PRESETS: dict[str, ModelScenario] = {
    # Avellaneda & Stoikov (2008), section 4: s0 = 100, T = 1, σ = 2, dt = 0.005, k = 1.5, A = 140, γ = 0.1.
    "avellaneda_stoikov": ModelScenario(),
    # Guéant, Lehalle & Fernandez-Tapia (2013): the same market with |q| ≤ 10, where GLFT's quotes are exact.
    "glft_bounded": ModelScenario(max_inventory=10),
    # A known upward drift of one σ per horizon: holding q ≈ μ/(γσ²) = 5 long earns about +5 in
    # mean-variance terms, which the drift-blind closed forms never do (their mean P&L is unchanged).
    "trending": ModelScenario(drift=2.0, max_inventory=20),
    # Reversion to s0 with a half-life of ~0.14 time units (stationary std σ/√(2κ) ≈ 0.63): the offset
    # s − s0 forecasts the next moves, so leaning against it earns a drift the closed forms ignore.
    "mean_reverting": ModelScenario(mean_reversion=5.0, max_inventory=20),
    # Ten jumps of std 1 per time unit: the mid's variance is 4 + 10 = 14 per time unit instead of σ² = 4,
    # so the closed forms under-skew their inventory.
    "jumpy": ModelScenario(jump_intensity=10.0, jump_size=1.0, max_inventory=20),
}
