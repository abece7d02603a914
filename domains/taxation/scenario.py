"""Taxation scenarios: a population of workers with Pareto-distributed skills under a bracketed income tax.

``one_step``: one tax period; each worker picks an income ``z ≥ 0`` to maximise the quasi-linear
utility ``U = z − T(z) + R − (c/δ)·(z/w)^δ`` (``w`` the worker's skill, ``c`` the labour cost, ``δ`` the
labour exponent; the elasticity of income to the net-of-tax rate is ``1/(δ − 1)``). ``T`` applies one
marginal rate per bracket; all tax is rebated equally (``R = ΣT / N``). Units: income per period.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from decisionlab.core import Scenario

US_CUTOFFS = (0.0, 10.0, 40.0, 85.0, 160.0, 205.0, 510.0)
"""Lower cut-offs of the seven brackets (US federal spacing, scaled as in the AI Economist); the top is open."""

US_FEDERAL_RATES = (0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37)
"""The 2018 US federal marginal rates of the seven brackets."""

Objective = Literal["equality_times_productivity", "welfare"]


class OneStepScenario(Scenario):
    """One tax period of ``n_agents`` workers (module docstring for the model)."""

    n_agents: int = Field(10, ge=1, le=10_000, description="workers in the economy")
    skill_pareto_alpha: float = Field(2.5, gt=1.0, le=20.0, description="Pareto shape α of the skills "
                                      "(w_i = skill_min · (1 − u_i)^(−1/α) at the quantiles u_i = (i − 0.5)/N)")
    skill_min: float = Field(10.0, gt=0.0, le=1e4, description="the lowest skill of the Pareto distribution")
    labour_cost: float = Field(1.0, gt=0.0, le=1e3, description="c: scale of the labour disutility (c/δ)·(z/w)^δ")
    labour_exponent: float = Field(3.0, gt=1.0, le=20.0, description="δ: exponent of the labour disutility "
                                   "(income elasticity 1/(δ − 1))")
    objective: Objective = Field("equality_times_productivity", description="the planner's social objective")
    bracket_cutoffs: tuple[float, ...] = Field(US_CUTOFFS, min_length=1, max_length=12,
                                               description="lower income cut-offs of the brackets, from 0, "
                                               "increasing (the top bracket is open)")
    rate_grid_step: float = Field(0.05, gt=0.0, le=1.0, description="step of the rate grid the exact search "
                                  "(`optimal`) and the planner choose from")
    tax_periods: int = Field(1, ge=1, le=100, description="tax periods per episode (the one-step economy "
                             "repeated; each period the planner sets rates, then the workers respond)")

    @field_validator("bracket_cutoffs")
    @classmethod
    def _cutoffs(cls, cutoffs: tuple[float, ...]) -> tuple[float, ...]:
        if cutoffs[0] != 0.0:
            raise ValueError(f"the first bracket must start at 0, got {cutoffs[0]}")
        if any(b <= a for a, b in zip(cutoffs, cutoffs[1:], strict=False)):
            raise ValueError(f"cut-offs must increase strictly, got {list(cutoffs)}")
        return cutoffs

    @model_validator(mode="after")
    def _grid(self) -> OneStepScenario:
        steps = 1.0 / self.rate_grid_step
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"rate_grid_step ({self.rate_grid_step}) must divide 1 (0.05, 0.1, 0.25, ...)")
        return self

    @property
    def n_brackets(self) -> int:
        return len(self.bracket_cutoffs)

    @property
    def rate_grid(self) -> list[float]:
        """The rates the exact search and the planner choose from: 0, step, ..., 1."""
        steps = round(1.0 / self.rate_grid_step)
        return [i / steps for i in range(steps + 1)]


PRESETS: dict[str, OneStepScenario] = {
    "one_step": OneStepScenario(),
    "one_step_100": OneStepScenario(n_agents=100),
}
