"""A seeded generator of daily unit sales for many item-store series.

The expected sales of series ``i`` on day ``t`` are a product of interpretable factors::

    mean[i, t] = level[i] · trend[i, t] · weekly[i, dow(t)] · yearly[i, t] · uplift[i, t]

- ``level[i] = item_level[item] · store_factor[store]``: item levels are log-normal around
  ``level_median`` (log-sd ``level_log_sd``), store factors log-normal with mean 1 (log-sd
  ``store_log_sd``): an item sells proportionally more in a big store.
- ``trend[i, t] = (1 + g[i])^(t / 365)`` with the annual growth ``g[i] ~ U[−trend_max, trend_max]``.
- ``weekly[i, d] = 1 + weekly_amplitude · (profile[d] + jitter[i, d])``: one retail profile shared
  by every series (quiet early week, busy Friday–Saturday; mean 0, peak 1) plus a small per-series
  jitter (``weekly_jitter``), renormalised to mean 1 over the week.
- ``yearly[i, t] = 1 + A[i] · sin(2π (t − φ[item]) / 365.25)`` with ``A[i] ~ U[0, yearly_amplitude]``
  and a phase per item.
- ``uplift[i, t] = u[i]`` on promotion days, 1 otherwise, with ``u[i] ~ U[promo_uplift_min,
  promo_uplift_max]``. Promotions come in runs: each non-promotion day starts one with probability
  ``promo_start_probability``; a run lasts ``U{promo_min_days..promo_max_days}`` days. The
  promotion flag is returned (a covariate known in advance: the promotion plan).

Noise: units are negative binomial with that mean and shape ``dispersion`` (variance
``μ + μ²/dispersion``; a Poisson–gamma mixture). Intermittency: a share ``intermittent_fraction``
of the series (chosen at random) sell on a day only with probability ``occurrence_probability``
(a Bernoulli occurrence process, as in Croston's model); on a selling day the size is
``1 + NB`` with mean ``max(μ / p − 1, 0)``, so the mean is kept (for ``μ / p ≥ 1``) and the share of
zero days is exactly ``1 − occurrence_probability`` in expectation.

``generate_sales(config)`` returns a polars frame ``item_id, store_id, date, units, promo`` (one
row per series and day, series in item-major order), with ``expected_units`` (the mean above)
added on request. ``python -m decisionlab.domains.inventory.series.generator`` rewrites the
shipped sample file ``domains/inventory/data/sample_sales.csv``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

# Mon..Sun: a typical grocery week (quiet Monday-Wednesday, busy Friday-Saturday), before scaling.
WEEKLY_PROFILE = np.array([-0.25, -0.35, -0.25, -0.05, 0.25, 1.0, -0.35])
WEEKLY_PROFILE = (WEEKLY_PROFILE - WEEKLY_PROFILE.mean()) / np.abs(WEEKLY_PROFILE - WEEKLY_PROFILE.mean()).max()

SAMPLE_PATH = Path(__file__).resolve().parent.parent / "data" / "sample_sales.csv"


class SalesGeneratorConfig(BaseModel):
    """Parameters of :func:`generate_sales` (each with its valid range)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_items: int = Field(8, ge=1, le=10_000, description="number of items")
    n_stores: int = Field(8, ge=1, le=1_000, description="number of stores (series = items × stores)")
    start_date: dt.date = Field(dt.date(2023, 1, 2), description="first day of the history")
    n_days: int = Field(730, ge=14, le=20_000, description="days of history")
    level_median: float = Field(6.0, gt=0, le=1e5, description="median expected units per day of an item")
    level_log_sd: float = Field(0.8, ge=0, le=3, description="log-sd of item levels")
    store_log_sd: float = Field(0.3, ge=0, le=3, description="log-sd of store size factors")
    trend_max: float = Field(0.2, ge=0, le=2, description="annual growth rates are drawn in [−trend_max, trend_max]")
    weekly_amplitude: float = Field(0.4, ge=0, le=0.9, description="size of the weekday swing (peak day +x)")
    weekly_jitter: float = Field(0.1, ge=0, le=0.5, description="per-series noise on the weekday profile")
    yearly_amplitude: float = Field(0.2, ge=0, le=0.9, description="largest yearly swing (±x around 1)")
    promo_start_probability: float = Field(0.025, ge=0, le=0.5, description="daily chance a promotion run starts")
    promo_min_days: int = Field(2, ge=1, le=60, description="shortest promotion run (days)")
    promo_max_days: int = Field(5, ge=1, le=60, description="longest promotion run (days)")
    promo_uplift_min: float = Field(1.5, ge=1, le=20, description="smallest promotion multiplier")
    promo_uplift_max: float = Field(2.5, ge=1, le=20, description="largest promotion multiplier")
    dispersion: float = Field(5.0, gt=0, le=1e6, description="negative-binomial shape (large: Poisson)")
    intermittent_fraction: float = Field(0.25, ge=0, le=1, description="share of series with intermittent demand")
    occurrence_probability: float = Field(
        0.3, gt=0, le=1, description="chance an intermittent series sells on a given day"
    )
    seed: int = Field(0, ge=0, description="seed of every random draw")

    @model_validator(mode="after")
    def _ordered_ranges(self) -> SalesGeneratorConfig:
        if self.promo_min_days > self.promo_max_days:
            raise ValueError(f"promo_min_days ({self.promo_min_days}) > promo_max_days ({self.promo_max_days})")
        if self.promo_uplift_min > self.promo_uplift_max:
            raise ValueError(
                f"promo_uplift_min ({self.promo_uplift_min}) > promo_uplift_max ({self.promo_uplift_max})"
            )
        return self

    @property
    def n_series(self) -> int:
        return self.n_items * self.n_stores


def _promotions(rng: np.random.Generator, config: SalesGeneratorConfig) -> np.ndarray:
    """Promotion flags ``[n_series, n_days]`` (bool) in runs of ``promo_min_days..promo_max_days``."""
    n, days = config.n_series, config.n_days
    promo = np.zeros((n, days), dtype=bool)
    starts = rng.random((n, days)) < config.promo_start_probability
    lengths = rng.integers(config.promo_min_days, config.promo_max_days + 1, size=(n, days))
    for i in range(n):  # a run is only started on a day that is not already in one
        t = 0
        row_starts, row_lengths = starts[i], lengths[i]
        while t < days:
            if row_starts[t]:
                promo[i, t : t + row_lengths[t]] = True
                t += row_lengths[t]
            else:
                t += 1
    return promo


def expected_and_promo(config: SalesGeneratorConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
    """The mean ``[n_series, n_days]``, promotion flags, intermittent-series mask ``[n_series]`` and
    the generator positioned for the noise draws (everything :func:`generate_sales` samples from)."""
    rng = np.random.default_rng(config.seed)
    n_items, n_stores, days = config.n_items, config.n_stores, config.n_days
    n = n_items * n_stores
    item_level = config.level_median * np.exp(config.level_log_sd * rng.standard_normal(n_items))
    store_factor = np.exp(config.store_log_sd * rng.standard_normal(n_stores) - config.store_log_sd**2 / 2)
    level = (item_level[:, None] * store_factor[None, :]).reshape(n)  # item-major series order
    growth = rng.uniform(-config.trend_max, config.trend_max, n)
    t = np.arange(days, dtype=np.float64)
    trend = (1.0 + growth[:, None]) ** (t[None, :] / 365.0)
    weekday = np.array([(config.start_date + dt.timedelta(days=int(k))).weekday() for k in range(7)])
    profile = WEEKLY_PROFILE[None, :] + config.weekly_jitter * rng.standard_normal((n, 7))
    weekly = np.clip(1.0 + config.weekly_amplitude * profile, 0.05, None)
    weekly /= weekly.mean(axis=1, keepdims=True)
    weekly_by_day = weekly[:, weekday[np.arange(days) % 7]]
    amplitude = rng.uniform(0.0, config.yearly_amplitude, n)
    phase = np.repeat(rng.uniform(0.0, 365.25, n_items), n_stores)
    yearly = 1.0 + amplitude[:, None] * np.sin(2 * np.pi * (t[None, :] - phase[:, None]) / 365.25)
    uplift = rng.uniform(config.promo_uplift_min, config.promo_uplift_max, n)
    promo = _promotions(rng, config)
    mean = level[:, None] * trend * weekly_by_day * yearly * np.where(promo, uplift[:, None], 1.0)
    intermittent = np.zeros(n, dtype=bool)
    count = int(round(config.intermittent_fraction * n))
    intermittent[rng.choice(n, size=count, replace=False)] = True
    return mean, promo, intermittent, rng


def _negative_binomial(rng: np.random.Generator, mean: np.ndarray, shape: float) -> np.ndarray:
    """NB draws with ``mean`` and shape ``shape`` as a Poisson–gamma mixture (mean 0 gives 0)."""
    rate = rng.gamma(shape, 1.0, size=mean.shape) * (mean / shape)
    return rng.poisson(rate)


def generate_sales(config: SalesGeneratorConfig | None = None, include_expected: bool = False) -> pl.DataFrame:
    """Daily sales of ``n_items × n_stores`` series; see the module docstring for the model.

    Returns a frame with columns ``item_id`` (str), ``store_id`` (str), ``date`` (date), ``units``
    (int), ``promo`` (bool), and ``expected_units`` (float, the noise-free mean) when
    ``include_expected``; rows are sorted by item, store, date.
    """
    config = config or SalesGeneratorConfig()
    mean, promo, intermittent, rng = expected_and_promo(config)
    units = _negative_binomial(rng, mean, config.dispersion)
    if intermittent.any():
        p = config.occurrence_probability
        rows = mean[intermittent]
        occurs = rng.random(rows.shape) < p
        size = 1 + _negative_binomial(rng, np.clip(rows / p - 1.0, 0.0, None), config.dispersion)
        units[intermittent] = np.where(occurs, size, 0)
    n, days = mean.shape
    width_i, width_s = len(str(config.n_items)), len(str(config.n_stores))
    items = [f"item_{k + 1:0{width_i}d}" for k in range(config.n_items)]
    stores = [f"store_{k + 1:0{width_s}d}" for k in range(config.n_stores)]
    dates = pl.date_range(
        config.start_date, config.start_date + dt.timedelta(days=days - 1), interval="1d", eager=True
    )
    columns: dict[str, object] = {
        "item_id": np.repeat(np.repeat(items, config.n_stores), days),
        "store_id": np.repeat(np.tile(stores, config.n_items), days),
        "date": np.tile(dates.to_numpy(), n),
        "units": units.reshape(-1).astype(np.int64),
        "promo": promo.reshape(-1),
    }
    if include_expected:
        columns["expected_units"] = mean.reshape(-1)
    return pl.DataFrame(columns).with_columns(pl.col("date").cast(pl.Date))


SAMPLE_CONFIG = SalesGeneratorConfig(n_items=3, n_stores=2, n_days=730, seed=7)


def write_sample(path: Path = SAMPLE_PATH, config: SalesGeneratorConfig = SAMPLE_CONFIG) -> Path:
    """Write the shipped sample file (CSV; ``promo`` as 0/1 to keep it small)."""
    frame = generate_sales(config).with_columns(pl.col("promo").cast(pl.Int8))
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return path


if __name__ == "__main__":
    written = write_sample()
    print(f"wrote {written} ({written.stat().st_size / 1024:.0f} KB)")
