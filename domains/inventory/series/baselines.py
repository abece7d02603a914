"""Baselines for ``real_series``: the base-stock family, the myopic policy, the newsvendor family on
the seasonal quantile forecast, and the just-in-time oracle.

Every policy acts on a :class:`~.sim.SeriesObservation` and returns orders ``[B]``. Parameters are
fitted on the **training span only** (from the first full window to the split), by simulation on
the actual training history (all candidates face the same demand: common random numbers):

- ``base_stock``: order up to a constant level per series, ``q = (S_i − IP)⁺``; ``S_i`` by a
  coarse-to-fine grid search per series.
- ``capped_base_stock``: ``q = min((S_i − IP)⁺, c_i)``; ``(S_i, c_i)`` by a 2-D search per series.
- ``myopic``: minimise the expected cost of the period in which the order arrives, under the
  forecast's joint sample paths: the stock left at arrival ``y`` is projected path by path (lost
  sales clip at zero), and ``q = (quantile_{p_i/(p_i+h)}(D_{t+L} − y))⁺``.
- The newsvendor family orders up to a quantile of the forecast lead-time demand (periods
  t..t+L), ``q = (Q(level) − IP)⁺``, and differs in the level:

  * ``fixed_quantile``: one level for every series, fitted on the training span (the paper's
    "fixed quantile" learns one constant level);
  * ``newsvendor_quantile``: the critical fractile ``p_i / (p_i + h)`` (no fitting);
  * ``transformed_quantile``: ``level = σ(a + b · logit(p_i / (p_i + h)))``, ``(a, b)`` fitted on the
    training span. The HDPO paper maps the fractile through a small learned network to correct for
    lost sales (the fractile is the right level only with backlogging) and forecast error; a
    monotone two-parameter map in logit space is our choice: it contains the newsvendor level
    (a = 0, b = 1) and every fixed level (b = 0), both of which are always among the candidates,
    so on the training span it is never worse than either.

- ``just_in_time`` (**non-admissible**, a lower bound only): reads the future and orders exactly
  what the period the order will arrive in needs, ``q_t = (d_{t+L} − y)⁺`` with ``y`` the stock
  left at arrival (from an empty store: ``d_{t+L}``). After the first L periods its cost is zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Literal

import torch

from decisionlab.core.policy import Policy
from decisionlab.domains.inventory.series.forecast import CachedLeadTimeForecast, SeasonalEmpiricalForecaster
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario, series_data
from decisionlab.domains.inventory.series.sim import SeriesObservation, SeriesSim, backtest

Per = Literal["series", "row"]


def _pick(values: torch.Tensor | float, obs: SeriesObservation, per: Per) -> torch.Tensor | float:
    """Per-series parameters ``[N]`` indexed by ``obs.series``; per-row ``[B]`` as they are."""
    if not isinstance(values, torch.Tensor) or values.dim() == 0:
        return values
    return values[obs.series] if per == "series" else values


class SeriesBaseStock:
    """``q = (S − IP)⁺`` with ``S`` per series (``[N]``), per row (``[B]``, searches) or one number."""

    name = "base_stock"

    def __init__(self, level: torch.Tensor | float, per: Per = "series") -> None:
        self.level, self.per = level, per

    def act(self, obs: SeriesObservation) -> torch.Tensor:
        return torch.relu(_pick(self.level, obs, self.per) - obs.inventory_position())


class SeriesCappedBaseStock:
    """``q = min((S − IP)⁺, c)`` with per-series (or per-row) ``S`` and ``c``."""

    name = "capped_base_stock"

    def __init__(self, level: torch.Tensor | float, cap: torch.Tensor | float, per: Per = "series") -> None:
        self.level, self.cap, self.per = level, cap, per

    def act(self, obs: SeriesObservation) -> torch.Tensor:
        order = torch.relu(_pick(self.level, obs, self.per) - obs.inventory_position())
        return torch.minimum(order, torch.as_tensor(_pick(self.cap, obs, self.per), device=order.device))


class SeriesMyopic:
    """One-period myopic policy on the forecast's sample paths (see the module docstring)."""

    name = "myopic"

    def __init__(self, forecaster: SeasonalEmpiricalForecaster, lost_sales: bool = True) -> None:
        self.forecaster, self.lost_sales = forecaster, lost_sales

    def act(self, obs: SeriesObservation) -> torch.Tensor:
        paths = self.forecaster.paths(obs)  # [B, M, L + 1]
        stock = obs.on_hand.unsqueeze(1).expand(-1, paths.shape[1])
        for j in range(self.forecaster.lead_time):
            stock = stock + obs.pipeline[:, j : j + 1] - paths[:, :, j]
            if self.lost_sales:
                stock = torch.relu(stock)
        gap = (paths[:, :, -1] - stock).sort(dim=1).values
        return torch.relu(self.forecaster.quantile_of_sorted(gap, obs.critical_ratio))


QuantileRule = Literal["fixed", "newsvendor", "transformed"]


class QuantileNewsvendor:
    """Order up to a quantile of the forecast lead-time demand: ``q = (Q(level) − IP)⁺``.

    ``rule='fixed'``: ``level = fixed_level``; ``'newsvendor'``: ``p_i/(p_i + h)``;
    ``'transformed'``: ``σ(a + b·logit(p_i/(p_i + h)))``. ``a``, ``b`` and ``fixed_level`` may be
    per-row tensors (the searches evaluate many candidates in one batch).
    """

    def __init__(
        self,
        forecaster: SeasonalEmpiricalForecaster | CachedLeadTimeForecast,
        rule: QuantileRule,
        fixed_level: torch.Tensor | float = 0.9,
        a: torch.Tensor | float = 0.0,
        b: torch.Tensor | float = 1.0,
        name: str | None = None,
    ) -> None:
        self.forecaster, self.rule = forecaster, rule
        self.fixed_level, self.a, self.b = fixed_level, a, b
        self.name = name or f"{rule}_quantile"

    def level(self, obs: SeriesObservation) -> torch.Tensor:
        """The quantile level of each row ``[B]``."""
        ratio = obs.critical_ratio
        if self.rule == "fixed":
            return torch.as_tensor(self.fixed_level, dtype=ratio.dtype, device=ratio.device).expand_as(ratio)
        if self.rule == "newsvendor":
            return ratio
        return torch.sigmoid(self.a + self.b * torch.logit(ratio.clamp(1e-6, 1 - 1e-6)))

    def act(self, obs: SeriesObservation) -> torch.Tensor:
        target = self.forecaster.lead_time_quantile(obs, self.level(obs))
        return torch.relu(target - obs.inventory_position())

    def describe(self) -> dict[str, float | str]:
        out: dict[str, float | str] = {"rule": self.rule}
        if self.rule == "fixed":
            out["level"] = float(self.fixed_level)
        if self.rule == "transformed":
            out.update(a=float(self.a), b=float(self.b))
        return out


class JustInTime:
    """Non-admissible oracle: reads the true demand of periods t..t+L (held-out periods included),
    projects the stock left when the order arrives, ``y`` (lost sales clip at zero; backlog goes
    negative), and orders exactly what the arrival period needs: ``q = (d_{t+L} − y)⁺``. From an
    empty store that is ``d_{t+L}``; under backlog the first order also clears the backlog of the
    first L periods. A lower bound, not a policy."""

    name = "just_in_time"
    admissible = False

    def __init__(self, scenario: RealSeriesScenario, device: torch.device | str = "cpu") -> None:
        data = series_data(scenario)
        self.lead_time = scenario.lead_time
        self.lost_sales = scenario.shortage == "lost_sales"
        pad = torch.zeros(data.n_series, self.lead_time + 1)
        self.demand = torch.cat([data.demand, pad], dim=1).to(device)
        self._ahead = torch.arange(self.lead_time + 1, device=device)

    def act(self, obs: SeriesObservation) -> torch.Tensor:
        index = (obs.period.unsqueeze(1) + self._ahead).clamp_max(self.demand.shape[1] - 1)
        future = self.demand[obs.series.unsqueeze(1), index]  # [B, L + 1]
        stock = obs.on_hand
        for j in range(self.lead_time):
            stock = stock + obs.pipeline[:, j] - future[:, j]
            if self.lost_sales:
                stock = torch.relu(stock)
        return torch.relu(future[:, -1] - stock)


# ----- fitting on the training span ----------------------------------------------------------------


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


@lru_cache(maxsize=16)
def fit_base_stock(scenario: RealSeriesScenario) -> torch.Tensor:
    """Best base-stock level per series ``[N]`` on the training span (coarse-to-fine grid)."""
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


# ----- builders (what the domain registers) --------------------------------------------------------


def build_base_stock(scenario: RealSeriesScenario, device: torch.device | str) -> SeriesBaseStock:
    return SeriesBaseStock(fit_base_stock(scenario).to(device))


def build_capped_base_stock(scenario: RealSeriesScenario, device: torch.device | str) -> SeriesCappedBaseStock:
    level, cap = fit_capped_base_stock(scenario)
    return SeriesCappedBaseStock(level.to(device), cap.to(device))


def build_myopic(scenario: RealSeriesScenario, device: torch.device | str) -> SeriesMyopic:
    forecaster = SeasonalEmpiricalForecaster.for_scenario(scenario, device)
    return SeriesMyopic(forecaster, lost_sales=scenario.shortage == "lost_sales")


def build_fixed_quantile(scenario: RealSeriesScenario, device: torch.device | str) -> QuantileNewsvendor:
    forecaster = SeasonalEmpiricalForecaster.for_scenario(scenario, device)
    return QuantileNewsvendor(forecaster, "fixed", fixed_level=fit_fixed_quantile(scenario))


def build_newsvendor_quantile(scenario: RealSeriesScenario, device: torch.device | str) -> QuantileNewsvendor:
    return QuantileNewsvendor(SeasonalEmpiricalForecaster.for_scenario(scenario, device), "newsvendor")


def build_transformed_quantile(scenario: RealSeriesScenario, device: torch.device | str) -> QuantileNewsvendor:
    a, b = fit_transformed_quantile(scenario)
    return QuantileNewsvendor(SeasonalEmpiricalForecaster.for_scenario(scenario, device), "transformed", a=a, b=b)


def build_just_in_time(scenario: RealSeriesScenario, device: torch.device | str) -> JustInTime:
    return JustInTime(scenario, device)


# name -> (description, builder, admissible)
SERIES_POLICIES: dict[str, tuple[str, Callable[[RealSeriesScenario, torch.device | str], Policy], bool]] = {
    "base_stock": ("order up to a constant level per series (searched on the training span)", build_base_stock, True),
    "capped_base_stock": (
        "base-stock with an order cap per series (searched on the training span)", build_capped_base_stock, True
    ),
    "myopic": ("minimise the expected cost of the arrival period under the forecast", build_myopic, True),
    "fixed_quantile": (
        "order up to one quantile level of forecast lead-time demand (level fitted on the training span)",
        build_fixed_quantile, True,
    ),
    "newsvendor_quantile": (
        "order up to the p/(p+h) quantile of forecast lead-time demand", build_newsvendor_quantile, True
    ),
    "transformed_quantile": (
        "order up to the σ(a + b·logit(p/(p+h))) quantile of forecast lead-time demand ((a, b) fitted on train)",
        build_transformed_quantile, True,
    ),
    "just_in_time": (
        "oracle that reads the future and orders the arrival period's demand (non-admissible lower bound)",
        build_just_in_time, False,
    ),
}
NEWSVENDOR_FAMILY = ("fixed_quantile", "newsvendor_quantile", "transformed_quantile")
