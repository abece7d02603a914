"""Inventory scenarios: validated parameters and named presets.

Units: quantities in units of stock, costs in currency per unit per period, time in periods.
Convention (the one the HDPO paper's code and Zipkin's tables use): an order placed in period t
arrives at the start of period t + L, before that period's demand; unmet demand is lost.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from decisionlab.core import EpisodicScenario


class LostSalesScenario(EpisodicScenario):
    """One store, one product, lost sales, fixed lead time, i.i.d. demand."""

    lead_time: int = Field(2, ge=0, le=30, description="periods between placing and receiving an order (L)")
    holding_cost: float = Field(1.0, gt=0, le=1e6, description="cost per unit left on hand at the end of a period (h)")
    underage_cost: float = Field(9.0, gt=0, le=1e6, description="cost per unit of demand lost (p)")
    demand_mean: float = Field(5.0, gt=0, le=1e6, description="mean demand per period")
    demand_distribution: Literal["poisson", "normal"] = Field(
        "poisson", description="'poisson' (integer demand) or 'normal' (continuous, truncated at 0)"
    )
    demand_cv: float = Field(
        0.4, ge=0, le=3, description="coefficient of variation of demand (used by 'normal')"
    )

    @property
    def demand_std(self) -> float:
        """Standard deviation of one period's demand."""
        if self.demand_distribution == "poisson":
            return self.demand_mean**0.5
        return self.demand_mean * self.demand_cv

    @property
    def critical_ratio(self) -> float:
        """Newsvendor fractile p / (p + h)."""
        return self.underage_cost / (self.underage_cost + self.holding_cost)


SCENARIOS: dict[str, LostSalesScenario] = {
    # Zipkin (2008) / HDPO paper single-store set-up: Poisson(5), h = 1.
    "lost_sales": LostSalesScenario(),
}
