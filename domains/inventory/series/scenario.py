"""The ``real_series`` scenario: validated parameters and the demand data they point at.

Units: quantities in units of stock, costs in currency per unit per period, time in periods (days
for daily data). Conventions are those of the single-store model (:mod:`..sim`): an order placed in
period t arrives at the start of period t + L; the cost of a period is ``h·(y − d)⁺ + p·(d − y)⁺``
on the stock ``y`` after the arrival; unmet demand is lost (or backlogged).

Data: ``data_path`` unset reads the synthetic history of :mod:`.generator` (``synthetic_*``
fields); ``"sample"`` reads the shipped ``domains/inventory/data/sample_sales.csv``; anything else
is a path to the user's CSV or parquet file (:func:`.loader.load_sales`).

Split by date: the last ``test_periods`` periods (or every period from ``test_start``) are held
out: no policy parameter, search or model selection ever reads them. The evaluation runs each
series from ``warmup_periods`` before the split (empty store, empty pipeline) to the end of the
data and averages the held-out periods only. HDPO's model selection uses the last
``dev_periods`` of the training span.

Each series gets its own lost-sales penalty ``p_i = underage_cost · U[1 − spread, 1 + spread]``
(drawn with ``cost_seed``), as in the HDPO paper's real-data setting (p ~ U[6.3, 11.7] with h = 1),
so the newsvendor fractile ``p_i / (p_i + h)`` differs across series.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import polars as pl
import torch
from pydantic import Field, model_validator

from decisionlab.core import Scenario, ScenarioError, make_generator, server_path
from decisionlab.domains.inventory.series.generator import SAMPLE_PATH, SalesGeneratorConfig, generate_sales
from decisionlab.domains.inventory.series.loader import load_sales, to_demand_tensor

MIN_SCALE = 0.05  # floor of a series' mean demand used to scale features (all-zero training history)


class RealSeriesScenario(Scenario):
    """Many independent store-item series with demand replayed from sales history."""

    data_path: str | None = server_path(
        "None: the synthetic generator; 'sample': the shipped sample file; else a CSV/parquet path")
    synthetic_items: int = Field(16, ge=1, le=2000, description="items of the synthetic history")
    synthetic_stores: int = Field(16, ge=1, le=200, description="stores of the synthetic history")
    synthetic_days: int = Field(1095, ge=60, le=20_000, description="days of the synthetic history")
    synthetic_seed: int = Field(0, ge=0, description="seed of the synthetic history")
    lead_time: int = Field(3, ge=0, le=30, description="periods between placing and receiving an order (L)")
    holding_cost: float = Field(1.0, gt=0, le=1e6, description="cost per unit left on hand at the end of a period (h)")
    underage_cost: float = Field(9.0, gt=0, le=1e6, description="mean cost per unit of unmet demand (p)")
    underage_cost_spread: float = Field(
        0.3, ge=0, lt=1, description="each series' p is underage_cost · U[1 − spread, 1 + spread]"
    )
    cost_seed: int = Field(0, ge=0, description="seed of the per-series penalties")
    shortage: Literal["lost_sales", "backlog"] = Field("lost_sales", description="unmet demand is lost or backlogged")
    window_periods: int = Field(56, ge=1, le=730, description="past periods of demand a policy sees (W)")
    season_length: int = Field(
        7, ge=1, le=366, description="periods per seasonal cycle (7 for daily data, 1 for weekly)"
    )
    test_start: dt.date | None = Field(None, description="first held-out date (None: the last test_periods periods)")
    test_periods: int = Field(182, ge=1, le=10_000, description="held-out periods at the end when test_start is unset")
    dev_periods: int = Field(91, ge=1, le=10_000, description="end of the training span used for model selection")
    warmup_periods: int = Field(14, ge=0, le=1000, description="periods simulated before a scored span, not scored")

    @model_validator(mode="after")
    def _window_holds_a_season(self) -> RealSeriesScenario:
        if self.window_periods < self.season_length:
            raise ValueError(
                f"window_periods ({self.window_periods}) must hold at least one season "
                f"(season_length={self.season_length})"
            )
        return self

    @property
    def forecast_seasons(self) -> int:
        """Past seasons (k) behind each period's forecast: all that fit in the window."""
        return self.window_periods // self.season_length


@dataclass(frozen=True)
class SeriesData:
    """The demand history of a scenario, on the CPU.

    ``demand [N, T]`` units per period, ``promo [N, T]`` flags, ``dates`` (T), ``keys`` (item, store
    per series), ``split``: index of the first held-out period, ``phase0``: season phase of
    period 0 (weekday for daily data with a 7-period season), ``scale [N]``: mean training demand
    per series (floored at ``MIN_SCALE``), ``underage_cost [N]`` and ``critical_ratio [N]``.
    """

    demand: torch.Tensor
    promo: torch.Tensor
    dates: tuple[dt.date, ...]
    keys: pl.DataFrame
    split: int
    phase0: int
    period_days: int
    scale: torch.Tensor
    underage_cost: torch.Tensor
    critical_ratio: torch.Tensor

    @property
    def n_series(self) -> int:
        return int(self.demand.shape[0])

    @property
    def periods(self) -> int:
        return int(self.demand.shape[1])


@lru_cache(maxsize=8)
def _history(
    data_path: str | None, items: int, stores: int, days: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, tuple[dt.date, ...], pl.DataFrame]:
    if data_path is None:
        config = SalesGeneratorConfig(n_items=items, n_stores=stores, n_days=days, seed=seed)
        frame = generate_sales(config)
    else:
        frame = load_sales(SAMPLE_PATH if data_path == "sample" else data_path)
    demand, promo, dates, keys = to_demand_tensor(frame)
    return demand, promo, tuple(dates), keys


@lru_cache(maxsize=16)
def series_data(scenario: RealSeriesScenario) -> SeriesData:
    """Load (cached) the scenario's history and derive the split, scales and penalties.

    Raises :class:`ScenarioError` when the history is too short for the window, the warm-up and
    the held-out span.
    """
    s = scenario
    demand, promo, dates, keys = _history(
        s.data_path, s.synthetic_items, s.synthetic_stores, s.synthetic_days, s.synthetic_seed
    )
    periods = demand.shape[1]
    if s.test_start is not None:
        later = [k for k, d in enumerate(dates) if d >= s.test_start]
        if not later:
            raise ScenarioError(f"test_start: {s.test_start} is after the last date of the data ({dates[-1]})")
        split = later[0]
    else:
        split = periods - s.test_periods
    needed = s.window_periods + s.warmup_periods + s.dev_periods + max(1, s.lead_time)
    if split < needed:
        raise ScenarioError(
            f"test_start/test_periods: the training span has {max(split, 0)} periods but needs at least {needed} "
            f"(window_periods + warmup_periods + dev_periods + lead_time); the data has {periods} periods"
        )
    period_days = (dates[1] - dates[0]).days if periods > 1 else 1
    phase0 = dates[0].weekday() if (period_days == 1 and s.season_length == 7) else 0
    scale = demand[:, :split].mean(dim=1).clamp_min(MIN_SCALE)
    gen = make_generator(s.cost_seed)
    noise = torch.rand(demand.shape[0], generator=gen) * 2.0 - 1.0
    underage = s.underage_cost * (1.0 + s.underage_cost_spread * noise)
    ratio = underage / (underage + s.holding_cost)
    return SeriesData(demand, promo, dates, keys, split, phase0, period_days, scale, underage, ratio)


SCENARIOS: dict[str, RealSeriesScenario] = {
    # 256 synthetic store-items (16 items × 16 stores), three years of daily sales, L = 3 days,
    # h = 1, p ~ U[6.3, 11.7]; the last 26 weeks are held out, the 13 weeks before them select
    # HDPO's model.
    "real_series": RealSeriesScenario(),
}
