"""Policies for ``real_series``: the base-stock family, the myopic policy, the newsvendor family on
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

The fits live in :mod:`.fit`. The learned policy, :class:`SeriesOrderNet` (one network over the
demand window shared by every series), is trained by :mod:`.train`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from decisionlab.core import Policy, PolicyMismatchError, mlp
from decisionlab.domains.inventory.series.forecast import CachedLeadTimeForecast, SeasonalEmpiricalForecaster
from decisionlab.domains.inventory.series.scenario import MIN_SCALE, RealSeriesScenario, series_data
from decisionlab.domains.inventory.series.sim import SeriesObservation

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


# ----- builders (what the domain registers) --------------------------------------------------------


def build_base_stock(scenario: RealSeriesScenario, device: torch.device | str) -> SeriesBaseStock:
    from decisionlab.domains.inventory.series.fit import fit_base_stock

    return SeriesBaseStock(fit_base_stock(scenario).to(device))


def build_capped_base_stock(scenario: RealSeriesScenario, device: torch.device | str) -> SeriesCappedBaseStock:
    from decisionlab.domains.inventory.series.fit import fit_capped_base_stock

    level, cap = fit_capped_base_stock(scenario)
    return SeriesCappedBaseStock(level.to(device), cap.to(device))


def build_myopic(scenario: RealSeriesScenario, device: torch.device | str) -> SeriesMyopic:
    forecaster = SeasonalEmpiricalForecaster.for_scenario(scenario, device)
    return SeriesMyopic(forecaster, lost_sales=scenario.shortage == "lost_sales")


def build_fixed_quantile(scenario: RealSeriesScenario, device: torch.device | str) -> QuantileNewsvendor:
    from decisionlab.domains.inventory.series.fit import fit_fixed_quantile

    forecaster = SeasonalEmpiricalForecaster.for_scenario(scenario, device)
    return QuantileNewsvendor(forecaster, "fixed", fixed_level=fit_fixed_quantile(scenario))


def build_newsvendor_quantile(scenario: RealSeriesScenario, device: torch.device | str) -> QuantileNewsvendor:
    return QuantileNewsvendor(SeasonalEmpiricalForecaster.for_scenario(scenario, device), "newsvendor")


def build_transformed_quantile(scenario: RealSeriesScenario, device: torch.device | str) -> QuantileNewsvendor:
    from decisionlab.domains.inventory.series.fit import fit_transformed_quantile

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


# ----- the learned policy (trained by :mod:`.train`) -----------------------------------------------

KIND = "series_order_mlp"
LEVEL_FLOOR = 0.1  # the local level is at least this share of the series' training mean


class SeriesOrderNet(nn.Module):
    """``obs -> order [B]``: ``softplus(mlp(features)) · scale`` (see the module docstring).

    The demand window enters through a linear bottleneck: ``[d / scale, d · promo / scale]``
    (``[B, 2W]``) is projected onto ``window_features`` learned summaries (weighted sums over the
    window: same-weekday lags, recent levels; the ``d · promo`` half lets a summary discount
    promoted days), which join the stock (on hand, pipeline, inventory position over scale), the
    promotion plan of periods t..t+L, the weekday one-hot, the newsvendor fractile and the log
    scale in an MLP. The bottleneck keeps the first layer small (``2W · K`` weights instead of
    ``2W · hidden``): a window of noisy daily sales is easy to memorise.

    The last layer starts near zero with the bias set so the untrained policy orders about one
    period's mean demand.
    """

    name = "hdpo_series"
    kind = KIND

    def __init__(
        self,
        lead_time: int,
        window: int,
        season_length: int,
        hidden: tuple[int, ...] = (64, 64),
        window_features: int = 16,
        activation: str = "elu",
    ) -> None:
        super().__init__()
        self.lead_time, self.window, self.season_length = int(lead_time), int(window), int(season_length)
        self.hidden = tuple(int(h) for h in hidden)
        self.window_features = int(window_features)
        self.activation = activation
        self.summarise = nn.Linear(2 * self.window, self.window_features)
        other = 2 + self.lead_time + self.lead_time + 1 + self.season_length + 3
        self.net = mlp(other + self.window_features, self.hidden, 1, activation=activation)
        with torch.no_grad():
            last = self.net[-1]
            last.weight.mul_(0.1)
            last.bias.fill_(math.log(math.e - 1.0))  # softplus(bias) = 1: order ≈ mean demand

    def config(self) -> dict[str, Any]:
        return {"kind": KIND, "lead_time": self.lead_time, "window": self.window,
                "season_length": self.season_length, "hidden": list(self.hidden),
                "window_features": self.window_features, "activation": self.activation}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SeriesOrderNet:
        return cls(config["lead_time"], config["window"], config["season_length"], tuple(config["hidden"]),
                   int(config["window_features"]), config.get("activation", "elu"))

    @classmethod
    def initial(cls, scenario: RealSeriesScenario, device: torch.device | str = "cpu") -> SeriesOrderNet:
        return cls(scenario.lead_time, scenario.window_periods, scenario.season_length).to(device)

    def for_scenario(self, scenario: RealSeriesScenario) -> SeriesOrderNet:
        """``self`` when ``scenario`` has the lead time, window and season it was trained for (its
        input shapes)."""
        wanted = {"lead_time": scenario.lead_time, "window_periods": scenario.window_periods,
                  "season_length": scenario.season_length}
        mine = {"lead_time": self.lead_time, "window_periods": self.window, "season_length": self.season_length}
        for field, value in wanted.items():
            if mine[field] != value:
                raise PolicyMismatchError(
                    f"this policy was trained for {field}={mine[field]}, the scenario has {field}={value}: "
                    "train one for this setting"
                )
        return self

    @staticmethod
    def level(obs: SeriesObservation) -> torch.Tensor:
        """The unit every quantity is measured in ``[B]``: the window's mean demand, floored at a
        tenth of the series' training mean (a window with no sales still has a unit)."""
        return obs.demand_window.mean(dim=1).maximum(LEVEL_FLOOR * obs.scale).clamp_min(MIN_SCALE)

    def features(self, obs: SeriesObservation) -> torch.Tensor:
        """MLP input ``[B, 2 + 2L + 1 + season_length + 3 + window_features]``."""
        level = self.level(obs)
        scale = level.unsqueeze(1)
        window = obs.demand_window / scale
        summary = self.summarise(torch.cat([window, window * obs.promo_window], dim=1))
        phase = nn.functional.one_hot(obs.phase, self.season_length).to(window.dtype)
        return torch.cat(
            [
                obs.on_hand.unsqueeze(1) / scale,
                obs.pipeline / scale,
                obs.inventory_position().unsqueeze(1) / scale,
                obs.promo_ahead,
                phase,
                obs.critical_ratio.unsqueeze(1),
                torch.log(obs.scale).unsqueeze(1),
                torch.log(level / obs.scale).unsqueeze(1),
                summary,
            ],
            dim=1,
        )

    def forward(self, obs: SeriesObservation) -> torch.Tensor:
        return nn.functional.softplus(self.net(self.features(obs))).squeeze(1) * self.level(obs)

    def act(self, obs: SeriesObservation) -> torch.Tensor:
        return self(obs)
