"""Taxation scenarios: a population of workers with Pareto-distributed skills under a bracketed income tax.

``one_step``: one tax period; each worker picks an income ``z ≥ 0`` to maximise the quasi-linear
utility ``U = z − T(z) + R − (c/δ)·(z/w)^δ`` (``w`` the worker's skill, ``c`` the labour cost, ``δ`` the
labour exponent; the elasticity of income to the net-of-tax rate is ``1/(δ − 1)``). ``T`` applies one
marginal rate per bracket; all tax is rebated equally (``R = ΣT / N``). Units: income per period.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from decisionlab.core import Scenario

US_CUTOFFS = (0.0, 10.0, 40.0, 85.0, 160.0, 205.0, 510.0)
"""Lower cut-offs of the seven brackets (US federal spacing, scaled as in the AI Economist); the top is open."""
MAX_INCOME = 1e15
"""The largest untaxed income a one-step economy may give its most skilled worker."""

US_FEDERAL_RATES = (0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37)
"""The 2018 US federal marginal rates of the seven brackets."""

Objective = Literal["equality_times_productivity", "welfare"]


def valid_cutoffs(cutoffs: tuple[float, ...]) -> tuple[float, ...]:
    """``cutoffs`` if the brackets start at 0 and increase strictly (else a ValueError saying which)."""
    if cutoffs[0] != 0.0:
        raise ValueError(f"the first bracket must start at 0, got {cutoffs[0]}")
    if any(b <= a for a, b in zip(cutoffs, cutoffs[1:], strict=False)):
        raise ValueError(f"cut-offs must increase strictly, got {list(cutoffs)}")
    return cutoffs


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
        return valid_cutoffs(cutoffs)

    @model_validator(mode="after")
    def _grid(self) -> OneStepScenario:
        steps = 1.0 / self.rate_grid_step
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"rate_grid_step ({self.rate_grid_step}) must divide 1 (0.05, 0.1, 0.25, ...)")
        return self

    @model_validator(mode="after")
    def _bounded_incomes(self) -> OneStepScenario:
        # the most skilled worker's untaxed income w·(w/c)^(1/(δ − 1)) explodes as δ → 1: beyond MAX_INCOME the
        # metrics lose their precision, and past ~1e308 they are not numbers at all
        top_skill = self.skill_min * (0.5 / self.n_agents) ** (-1.0 / self.skill_pareto_alpha)
        log10_income = math.log10(top_skill) + math.log10(top_skill / self.labour_cost) / (self.labour_exponent - 1.0)
        if log10_income > math.log10(MAX_INCOME):
            raise ValueError(f"labour_exponent ({self.labour_exponent}) is too close to 1 for these skills: the most "
                             f"skilled worker's untaxed income would be about 1e{log10_income:.0f}, above "
                             f"{MAX_INCOME:.0e}; raise labour_exponent or labour_cost, or lower skill_min")
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


GTB_CUTOFFS = (0.0, 9.7, 39.475, 84.2, 160.725, 204.1, 510.3)
"""The 2018 US single-filer cut-offs divided by 1,000 (the AI Economist's ``usd_scaling``): coin per tax period."""


class GatherTradeBuildScenario(Scenario):
    """The AI Economist's Gather-Trade-Build economy (``gtb.py``): workers on a map gather wood and stone,
    trade them in a double auction and build houses for coin; a planner taxes each period's income.
    Defaults: the published configuration (../shared/domain-notes.md) and the Foundation's components
    (sources per field in ``gtb.py``'s docstring)."""

    n_agents: int = Field(4, ge=1, le=2500, description="workers on the map (at most a quarter of its tiles)")
    map_size: int = Field(25, ge=5, le=100, description="side of the square map, in tiles")
    observation_range: int = Field(5, ge=1, le=10, description="tiles a worker sees on each side (window of "
                                   "2·range + 1)")
    episode_steps: int = Field(1000, ge=1, le=100_000, description="steps per episode")
    tax_period_steps: int = Field(100, ge=1, le=100_000, description="steps per tax period (the planner sets "
                                  "the rates at its first step, the tax is collected at its last)")
    bracket_cutoffs: tuple[float, ...] = Field(GTB_CUTOFFS, min_length=1, max_length=12,
                                               description="lower cut-offs of the brackets in coin of income per "
                                               "period, from 0, increasing (the top bracket is open)")
    isoelastic_eta: float = Field(0.23, ge=0.0, lt=1.0, description="η: curvature of the utility of coin "
                                  "(c^(1−η) − 1)/(1 − η)")
    energy_cost: float = Field(0.21, ge=0.0, le=100.0, description="utility lost per unit of labour")
    starting_coin: float = Field(0.0, ge=0.0, le=1e6, description="each worker's coin at the start")
    move_labor: float = Field(1.0, ge=0.0, le=100.0, description="labour of a move to an adjacent tile")
    collect_labor: float = Field(1.0, ge=0.0, le=100.0, description="labour of collecting the resource on a tile")
    gather_skill_pareto_shape: float = Field(3.0, gt=0.0, le=100.0, description="shape a of the Lomax draw X of "
                                             "the gather skill: bonus-unit probability min(2, X)/2")
    build_labor: float = Field(10.0, ge=0.0, le=1000.0, description="labour of building a house")
    build_payment: float = Field(10.0, ge=0.0, le=1e4, description="coin a house pays at skill multiplier 1")
    payment_max_skill_multiplier: float = Field(3.0, ge=1.0, le=100.0, description="largest build-skill "
                                                "multiplier m: min(m, (m − 1)·X + 1) for a Lomax draw X")
    build_skill_pareto_shape: float = Field(4.0, gt=0.0, le=100.0, description="shape a of the Lomax draw X of "
                                            "the build skill")
    max_bid_ask: int = Field(10, ge=1, le=100, description="highest bid or ask price, in coin (prices 0..max)")
    order_labor: float = Field(0.25, ge=0.0, le=100.0, description="labour of placing a bid or an ask")
    order_duration: int = Field(50, ge=1, le=1000, description="steps an unfilled order stays open after the "
                                "step it is placed in")
    max_num_orders: int = Field(5, ge=1, le=32, description="most open bids + asks of one worker per resource")
    resource_regen_prob: float = Field(0.01, ge=0.0, le=1.0, description="probability per step that an emptied "
                                       "resource tile grows its unit back")
    wood_coverage: float = Field(0.025, gt=0.0, lt=0.5, description="target share of the tiles that are wood "
                                 "sources at the start")
    stone_coverage: float = Field(0.025, gt=0.0, lt=0.5, description="target share of the tiles that are stone "
                                  "sources at the start")
    wood_clumpiness: float = Field(0.35, ge=0.0, le=1.0, description="degree to which wood tiles cluster "
                                   "(the share of the coverage grown from seeds)")
    stone_clumpiness: float = Field(0.5, ge=0.0, le=1.0, description="degree to which stone tiles cluster")
    gradient_steepness: float = Field(8.0, ge=1.0, le=50.0, description="how steeply wood gathers at the bottom "
                                      "of the map and stone at the top (row^steepness)")

    @field_validator("bracket_cutoffs")
    @classmethod
    def _cutoffs(cls, cutoffs: tuple[float, ...]) -> tuple[float, ...]:
        return valid_cutoffs(cutoffs)

    @model_validator(mode="after")
    def _fits(self) -> GatherTradeBuildScenario:
        if self.tax_period_steps > self.episode_steps:
            raise ValueError(f"tax_period_steps ({self.tax_period_steps}) is longer than the episode "
                             f"({self.episode_steps})")
        if self.n_agents > self.map_size ** 2 // 4:
            raise ValueError(f"{self.n_agents} workers do not fit a {self.map_size}×{self.map_size} map "
                             f"(at most a quarter of its tiles)")
        if self.wood_coverage + self.stone_coverage >= 0.5:
            raise ValueError("wood_coverage + stone_coverage must stay below 0.5")
        return self

    @property
    def n_brackets(self) -> int:
        return len(self.bracket_cutoffs)


GTB_PRESETS: dict[str, GatherTradeBuildScenario] = {
    "gather_trade_build": GatherTradeBuildScenario(),
}
