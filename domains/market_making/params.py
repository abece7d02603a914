"""Parameters every market-making setting shares: the quoting problem of Avellaneda & Stoikov (2008).

A market maker posts one bid and one ask around the mid price ``s`` over a horizon ``T`` cut into
``N = T/dt`` steps. A quote at depth δ (price units away from the mid) fills with intensity
``A·exp(−k·δ)`` per time unit, i.e. with probability ``A·exp(−k·δ)·dt`` in a step (clipped to [0, 1]).
Units:

- time in *time units* (the horizon ``T`` is 1 in the standard set-up), prices in *price units*
  (currency per unit of the traded asset), inventory in *units* of the asset;
- ``sigma`` σ: mid volatility, price units per √(time unit); ``fill_intensity_a`` A: fills per
  time unit of a quote at the mid; ``fill_decay_k`` k: per price unit;
- ``risk_aversion`` γ: the CARA coefficient (per currency) of the closed forms and of the
  certainty equivalent; ``maker_fee``: currency per unit filled (negative = rebate);
- ``terminal_penalty``: currency per unit² of the inventory left at ``T``; ``running_penalty`` φ:
  currency per unit² per time unit of inventory held.

The standard set-up (the defaults) is the paper's: s0 = 100, T = 1, σ = 2, dt = 0.005, k = 1.5,
A = 140, γ = 0.1, q0 = 0, no inventory bound, no fees, no penalties.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from decisionlab.core import Scenario

MAX_STEPS = 100_000
STEPS_TOLERANCE = 1e-9  # relative: horizon/dt may differ from a whole number by float rounding only


class QuotingScenario(Scenario):
    """The quoting problem's parameters common to every setting (see the module docstring)."""

    sigma: float = Field(2.0, ge=0, le=1e4, allow_inf_nan=False,
                         description="mid-price volatility σ (price units per √time unit)")
    fill_intensity_a: float = Field(140.0, gt=0, le=1e6, allow_inf_nan=False,
                                    description="fill intensity A of a quote at the mid (fills per time unit)")
    fill_decay_k: float = Field(1.5, ge=1e-6, le=1e3, allow_inf_nan=False,
                                description="decay k of the fill intensity A·exp(−k·depth) (per price unit; from "
                                "1e-6: a quote's depth bounds scale as 1/k, and float32 depths overflow near 1e-38)")
    risk_aversion: float = Field(0.1, gt=0, le=1e3, allow_inf_nan=False,
                                 description="CARA risk aversion γ of the closed forms and the certainty "
                                 "equivalent (per currency)")
    horizon: float = Field(1.0, gt=0, le=1e4, allow_inf_nan=False, description="horizon T (time units)")
    dt: float = Field(0.005, gt=0, le=1, allow_inf_nan=False,
                      description="step length (time units); horizon/dt must be a whole number of steps")
    max_inventory: int | None = Field(None, ge=1, le=1000,
                                      description="inventory bound Q (units): a side at the bound does not quote; "
                                      "null = unbounded (GLFT quotes need it set)")
    initial_price: float = Field(100.0, gt=0, le=1e9, allow_inf_nan=False,
                                 description="mid price s0 at the start (price units)")
    initial_inventory: int = Field(0, ge=-1_000_000, le=1_000_000,
                                   description="inventory q0 at the start (units), |q0| ≤ max_inventory when set")
    maker_fee: float = Field(0.0, ge=-1e6, le=1e6, allow_inf_nan=False,
                             description="fee per unit filled (currency; negative = rebate)")
    terminal_penalty: float = Field(0.0, ge=0, le=1e6, allow_inf_nan=False,
                                    description="penalty on the inventory left at T (currency per unit²)")
    running_penalty: float = Field(0.0, ge=0, le=1e6, allow_inf_nan=False,
                                   description="running inventory penalty φ (currency per unit² per time unit)")

    @model_validator(mode="after")
    def _whole_steps_and_bounded_start(self) -> QuotingScenario:
        ratio = self.horizon / self.dt
        steps = round(ratio)
        if abs(ratio - steps) > STEPS_TOLERANCE * ratio:
            raise ValueError(
                f"horizon/dt must be a whole number of steps: horizon={self.horizon:g}, dt={self.dt:g} "
                f"give {ratio:.10g} steps"
            )
        if not 1 <= steps <= MAX_STEPS:
            raise ValueError(f"horizon/dt must give between 1 and {MAX_STEPS:,} steps (got {steps:,})")
        if self.max_inventory is not None and abs(self.initial_inventory) > self.max_inventory:
            raise ValueError(
                f"initial_inventory ({self.initial_inventory}) must lie within ±max_inventory ({self.max_inventory})"
            )
        return self

    @property
    def steps(self) -> int:
        """Number of steps N = horizon/dt."""
        return round(self.horizon / self.dt)

    @property
    def bounded(self) -> bool:
        """Whether the inventory is bounded by ``max_inventory``."""
        return self.max_inventory is not None
