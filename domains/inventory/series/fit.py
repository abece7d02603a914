"""Fitting the ``real_series`` baselines on the training span only, by simulation on the actual
training history (all candidates face the same demand: common random numbers). See
:mod:`.policies` for what each fitted parameter means.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch

from decisionlab.core import Policy, persisted
from decisionlab.domains.inventory.series.forecast import CachedLeadTimeForecast, SeasonalEmpiricalForecaster
from decisionlab.domains.inventory.series.policies import QuantileNewsvendor, SeriesBaseStock, SeriesCappedBaseStock
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario, series_data
from decisionlab.domains.inventory.series.sim import SeriesSim, backtest


def _train_span(sim: SeriesSim) -> tuple[int, int, int]:
    """``(start, periods, warmup)``: from the first full window to the split, warm-up not scored."""
    start = sim.first_decision_period()
    return start, sim.split - start, sim.scenario.warmup_periods


def training_costs(scenario: RealSeriesScenario, make: Callable[[int], Policy], candidates: int) -> torch.Tensor:
    """Mean cost per period on the training span ``[C, N]`` of ``candidates`` policies at once.

    ``make(C)`` returns one policy for a batch of ``C × N`` rows ordered candidate-major (row
    ``c·N + i`` is candidate c on series i), so per-row parameters are ``repeat_interleave(N)``.
    """
    sim = SeriesSim(scenario, "cpu", split="train")
    n = sim.data.n_series
    start, periods, warmup = _train_span(sim)
    series = torch.arange(n).repeat(candidates)
    sums = backtest(sim, make(candidates), series, start, periods, warmup, keys=("cost",))
    return (sums["cost"] / sums["periods"]).view(candidates, n).float()


@lru_cache(maxsize=4)
def _cached_training_forecast(scenario: RealSeriesScenario) -> CachedLeadTimeForecast:
    """The forecast of every (series, period) of the training span, computed once for the searches."""
    sim = SeriesSim(scenario, "cpu", split="train")
    start, periods, _ = _train_span(sim)
    return CachedLeadTimeForecast.build(SeasonalEmpiricalForecaster.for_scenario(scenario), sim, start, periods)


def _per_series_grid(low: torch.Tensor, high: torch.Tensor, points: int) -> torch.Tensor:
    """``[points, N]`` evenly spaced values between ``low [N]`` and ``high [N]``."""
    steps = torch.linspace(0.0, 1.0, points).unsqueeze(1)
    return low.unsqueeze(0) + steps * (high - low).unsqueeze(0)


SEARCH_POINTS = 16
SEARCH_PASSES = 3
FIT_VERSION = 1  # bump when a fit's algorithm changes: results persisted by an older one are not reused


def fit_key(scenario: RealSeriesScenario) -> dict[str, object]:
    """What a fit depends on: the scenario and, for a data file, its size and modification time
    (a changed file is fitted again)."""
    key: dict[str, object] = {"scenario": scenario.model_dump(mode="json")}
    if scenario.data_path not in (None, "sample"):
        with contextlib.suppress(OSError):
            stat = Path(scenario.data_path).expanduser().stat()
            key["data"] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return key


def _persisted_fit(name: str, scenario: RealSeriesScenario, compute: Callable[[], dict[str, object]]) -> dict:
    """``compute()`` once per data dir for ``scenario`` (see :mod:`decisionlab.core.store.builds`)."""
    return persisted(f"inventory.series.{name}", FIT_VERSION, fit_key(scenario), compute)


@lru_cache(maxsize=16)
def fit_base_stock(scenario: RealSeriesScenario) -> torch.Tensor:
    """Best base-stock level per series ``[N]`` on the training span (coarse-to-fine grid)."""
    return _persisted_fit("base_stock", scenario, lambda: {"level": _search_base_stock(scenario)})["level"]


def _search_base_stock(scenario: RealSeriesScenario) -> torch.Tensor:
    data = series_data(scenario)
    low = torch.zeros(data.n_series)
    high = data.scale * (scenario.lead_time + 1) * 4.0 + 2.0
    best = low
    for _ in range(SEARCH_PASSES):
        grid = _per_series_grid(low, high, SEARCH_POINTS)  # [C, N]
        costs = training_costs(scenario, lambda c, g=grid: SeriesBaseStock(g.reshape(-1), per="row"), SEARCH_POINTS)
        best = grid.gather(0, costs.argmin(0, keepdim=True)).squeeze(0)
        step = (high - low) / (SEARCH_POINTS - 1)
        low, high = (best - step).clamp_min(0.0), best + step
    return best


@lru_cache(maxsize=16)
def fit_capped_base_stock(scenario: RealSeriesScenario) -> tuple[torch.Tensor, torch.Tensor]:
    """Best (level, cap) per series on the training span: levels around the best base-stock level,
    caps from a quarter of the mean demand to a high one-period demand."""
    def compute() -> dict[str, object]:
        level, cap = _search_capped_base_stock(scenario)
        return {"level": level, "cap": cap}

    found = _persisted_fit("capped_base_stock", scenario, compute)
    return found["level"], found["cap"]


def _search_capped_base_stock(scenario: RealSeriesScenario) -> tuple[torch.Tensor, torch.Tensor]:
    data = series_data(scenario)
    base = fit_base_stock(scenario)
    points = 8
    bounds = [
        (0.7 * base, 1.4 * base + 1.0),
        (0.25 * data.scale, data.scale * 4.0 + 2.0),
    ]
    best_level, best_cap = base, bounds[1][1]
    for _ in range(SEARCH_PASSES):
        levels = _per_series_grid(*bounds[0], points)  # [P, N]
        caps = _per_series_grid(*bounds[1], points)
        lv = levels.unsqueeze(1).expand(points, points, -1).reshape(points * points, -1)
        cp = caps.unsqueeze(0).expand(points, points, -1).reshape(points * points, -1)
        costs = training_costs(
            scenario, lambda c, lv=lv, cp=cp: SeriesCappedBaseStock(lv.reshape(-1), cp.reshape(-1), per="row"),
            points * points,
        )
        pick = costs.argmin(0, keepdim=True)
        best_level, best_cap = lv.gather(0, pick).squeeze(0), cp.gather(0, pick).squeeze(0)
        step_l = (bounds[0][1] - bounds[0][0]) / (points - 1)
        step_c = (bounds[1][1] - bounds[1][0]) / (points - 1)
        bounds = [((best_level - step_l).clamp_min(0.0), best_level + step_l),
                  ((best_cap - step_c).clamp_min(0.0), best_cap + step_c)]
    return best_level, best_cap


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@lru_cache(maxsize=16)
def fit_fixed_quantile(scenario: RealSeriesScenario) -> float:
    """The one quantile level (shared by all series) with the lowest total training cost."""
    return float(_persisted_fit("fixed_quantile", scenario,
                                lambda: {"level": _search_fixed_quantile(scenario)})["level"])


def _search_fixed_quantile(scenario: RealSeriesScenario) -> float:
    forecaster = _cached_training_forecast(scenario)
    low, high = _logit(0.3), _logit(0.998)
    n = series_data(scenario).n_series
    best = 0.0
    for _ in range(SEARCH_PASSES):
        z = torch.linspace(low, high, SEARCH_POINTS)
        rows = torch.sigmoid(z).repeat_interleave(n)
        costs = training_costs(
            scenario,
            lambda c, lv=rows: QuantileNewsvendor(forecaster, "fixed", fixed_level=lv),
            SEARCH_POINTS,
        ).sum(1)
        index = int(costs.argmin())
        best = float(z[index])
        step = (high - low) / (SEARCH_POINTS - 1)
        low, high = best - step, best + step
    return float(torch.sigmoid(torch.tensor(best)))


@lru_cache(maxsize=16)
def fit_transformed_quantile(scenario: RealSeriesScenario) -> tuple[float, float]:
    """``(a, b)`` of ``level = σ(a + b·logit(fractile))`` with the lowest total training cost.

    The candidates of every pass include the newsvendor map (0, 1) and the best fixed level
    (``logit(level)``, 0), so the fit is never worse than either on the training span."""
    found = _persisted_fit("transformed_quantile", scenario,
                           lambda: dict(zip(("a", "b"), _search_transformed_quantile(scenario), strict=True)))
    return float(found["a"]), float(found["b"])


def _search_transformed_quantile(scenario: RealSeriesScenario) -> tuple[float, float]:
    forecaster = _cached_training_forecast(scenario)
    n = series_data(scenario).n_series
    fixed = _logit(fit_fixed_quantile(scenario))
    a_low, a_high, b_low, b_high = -4.0, 6.0, 0.0, 3.0
    best = (0.0, 1.0)
    points = 9
    for _ in range(SEARCH_PASSES):
        a_grid = torch.linspace(a_low, a_high, points)
        b_grid = torch.linspace(b_low, b_high, points)
        pairs = torch.cartesian_prod(a_grid, b_grid)
        pairs = torch.cat([pairs, torch.tensor([[0.0, 1.0], [fixed, 0.0], list(best)])], dim=0)
        costs = training_costs(
            scenario,
            lambda c, p=pairs: QuantileNewsvendor(
                forecaster, "transformed", a=p[:, 0].repeat_interleave(n), b=p[:, 1].repeat_interleave(n)
            ),
            pairs.shape[0],
        ).sum(1)
        index = int(costs.argmin())
        best = (float(pairs[index, 0]), float(pairs[index, 1]))
        step_a, step_b = (a_high - a_low) / (points - 1), (b_high - b_low) / (points - 1)
        a_low, a_high = best[0] - step_a, best[0] + step_a
        b_low, b_high = max(0.0, best[1] - step_b), best[1] + step_b
    return best


