"""The sales generator: reproducible, and it has the structure its docstring documents."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from decisionlab.domains.inventory.series.generator import (
    SAMPLE_CONFIG,
    SAMPLE_PATH,
    WEEKLY_PROFILE,
    SalesGeneratorConfig,
    generate_sales,
)
from decisionlab.domains.inventory.series.loader import load_sales


def _quiet(**overrides: object) -> SalesGeneratorConfig:
    """No trend, yearly cycle, promotion or intermittency unless asked: one effect at a time."""
    base = {"n_items": 6, "n_stores": 4, "n_days": 364, "level_median": 20.0, "trend_max": 0.0,
            "yearly_amplitude": 0.0, "promo_start_probability": 0.0, "intermittent_fraction": 0.0,
            "dispersion": 50.0, "seed": 3}
    return SalesGeneratorConfig(**{**base, **overrides})


def test_reproducible_and_seed_dependent() -> None:
    config = SalesGeneratorConfig(n_items=3, n_stores=2, n_days=60, seed=11)
    first, again = generate_sales(config), generate_sales(config)
    assert first.equals(again)
    other = generate_sales(config.model_copy(update={"seed": 12}))
    assert not first["units"].equals(other["units"])


def test_columns_types_and_shape() -> None:
    config = SalesGeneratorConfig(n_items=3, n_stores=2, n_days=30)
    frame = generate_sales(config, include_expected=True)
    assert frame.columns == ["item_id", "store_id", "date", "units", "promo", "expected_units"]
    assert frame.schema["date"] == pl.Date and frame.schema["promo"] == pl.Boolean
    assert frame.height == 3 * 2 * 30
    assert frame.select(pl.struct("item_id", "store_id").n_unique()).item() == 6
    assert frame["units"].min() >= 0
    assert frame["date"].min() == config.start_date


def test_weekly_pattern_follows_the_profile() -> None:
    config = _quiet(weekly_amplitude=0.4)
    frame = generate_sales(config)
    weekday = (
        frame.with_columns(pl.col("date").dt.weekday().alias("dow"))  # 1 = Monday
        .group_by("dow").agg(pl.col("units").mean()).sort("dow")["units"].to_numpy()
    )
    relative = weekday / weekday.mean()
    assert np.corrcoef(relative, WEEKLY_PROFILE)[0, 1] > 0.95
    assert relative.max() / relative.min() > 1.4  # Saturday vs Tuesday
    flat = generate_sales(_quiet(weekly_amplitude=0.0, weekly_jitter=0.0))
    flat_days = flat.group_by(pl.col("date").dt.weekday()).agg(pl.col("units").mean())["units"].to_numpy()
    assert flat_days.max() / flat_days.min() < 1.05


def test_promotions_lift_sales_and_come_in_runs() -> None:
    config = _quiet(promo_start_probability=0.05, promo_min_days=2, promo_max_days=4,
                    promo_uplift_min=1.8, promo_uplift_max=2.2)
    frame = generate_sales(config)
    by_flag = frame.group_by("promo").agg(pl.col("units").mean())
    promoted = by_flag.filter(pl.col("promo"))["units"].item()
    regular = by_flag.filter(~pl.col("promo"))["units"].item()
    assert 1.6 < promoted / regular < 2.4
    share = frame["promo"].mean()
    assert 0.05 < share < 0.25
    # runs: no isolated promotion day (minimum run length 2), except one cut off by the last day
    flags = frame["promo"].to_numpy().reshape(config.n_series, config.n_days).astype(int)
    starts = np.diff(np.pad(flags, ((0, 0), (1, 0))), axis=1) == 1
    ends = np.diff(np.pad(flags, ((0, 0), (0, 1))), axis=1) == -1
    end_days = np.nonzero(ends)[1]
    lengths = end_days - np.nonzero(starts)[1] + 1
    assert lengths[end_days < config.n_days - 1].min() >= 2


def test_intermittency_share_as_configured() -> None:
    config = _quiet(n_items=10, n_stores=4, intermittent_fraction=0.5, occurrence_probability=0.3)
    frame = generate_sales(config)
    zero_share = (
        frame.group_by("item_id", "store_id").agg((pl.col("units") == 0).mean().alias("zeros"))["zeros"].to_numpy()
    )
    intermittent = zero_share > 0.4
    assert intermittent.sum() == round(0.5 * config.n_series)
    assert abs(zero_share[intermittent].mean() - 0.7) < 0.02  # zero days = 1 − occurrence probability
    assert zero_share[~intermittent].max() < 0.05
    # the mean is kept: intermittent series sell as much on average as their expected units
    expected = generate_sales(config, include_expected=True)
    ratio = expected["units"].sum() / expected["expected_units"].sum()
    assert 0.95 < ratio < 1.05


def test_trend_and_yearly_cycle_show_in_the_mean() -> None:
    config = _quiet(n_days=730, trend_max=0.5, yearly_amplitude=0.5)
    frame = generate_sales(config, include_expected=True)
    mean = frame["expected_units"].to_numpy().reshape(config.n_series, config.n_days)
    growth = mean[:, 365:].mean(1) / mean[:, :365].mean(1)
    assert growth.min() < 0.9 and growth.max() > 1.1


def test_invalid_ranges_are_rejected() -> None:
    with pytest.raises(ValidationError, match="promo_min_days"):
        SalesGeneratorConfig(promo_min_days=6, promo_max_days=3)
    with pytest.raises(ValidationError, match="occurrence_probability"):
        SalesGeneratorConfig(occurrence_probability=0)


def test_the_shipped_sample_is_what_the_generator_writes() -> None:
    assert SAMPLE_PATH.stat().st_size < 200_000
    shipped = load_sales(SAMPLE_PATH)
    fresh = generate_sales(SAMPLE_CONFIG)
    assert shipped.height == fresh.height
    assert shipped["units"].to_list() == fresh["units"].cast(pl.Float64).to_list()
    assert shipped["promo"].to_list() == fresh["promo"].to_list()
