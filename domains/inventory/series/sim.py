"""Batched inventory simulator over demand histories, and the held-out evaluation.

Each row of a batch is one store-item series at one period of its history: the state carries
the stock (on hand, pipeline) and *where in the data* the row is (``series``, ``period``). The
exogenous input of a step is that period's demand, ``demand[series, period]`` (use
:meth:`SeriesSim.windows` to cut it from the data), so the dynamics are the single-store ones
and stay differentiable in the orders (HDPO). Order of events in period t: the policy observes
and orders ``q``; the order placed L periods ago arrives (with L = 0 the new order itself); demand
is served from stock; unmet demand is lost (``shortage='lost_sales'``) or carried as negative
stock (``'backlog'``). Cost ``h·(y − d)⁺ + p_i·(d − y)⁺`` on the stock ``y`` after the arrival,
with the series' own penalty ``p_i``.

The observation (:class:`SeriesObservation`) holds what a store knows when it orders: on hand,
the pipeline, the last W periods of demand and their promotion flags, the promotion plan of the
periods up to the arrival period (t..t+L, known in advance), the season phase (weekday) of the
current period, the series' training mean (to scale by) and its newsvendor fractile. It also
carries ``series`` and ``period``, which only the non-admissible just-in-time oracle may use to read
the future.

A simulator built with ``split='train'`` holds only the training span (later periods read as zero
demand, no promotion): nothing built on it can see held-out data. ``split='all'`` holds
everything and is what the held-out evaluation uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Literal

import torch

from decisionlab.core import Box, Composite, Discrete, Policy, Spaces, StepResult, accumulate
from decisionlab.domains.inventory.dynamics import receive, serve
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario, SeriesData, series_data

Split = Literal["train", "all"]


@dataclass(frozen=True)
class SeriesState:
    """``on_hand [B]`` (negative = backlog), ``pipeline [B, L]`` oldest first, ``series [B]`` (long):
    row of the data, ``period [B]`` (long): index of the period about to be played."""

    on_hand: torch.Tensor
    pipeline: torch.Tensor
    series: torch.Tensor
    period: torch.Tensor

    def inventory_position(self) -> torch.Tensor:
        return self.on_hand + self.pipeline.sum(dim=1)

    def detach(self) -> SeriesState:
        return SeriesState(self.on_hand.detach(), self.pipeline.detach(), self.series, self.period)


@dataclass(frozen=True)
class SeriesObservation:
    """What a policy sees at period t (all ``[B, ...]``).

    ``on_hand [B]``, ``pipeline [B, L]`` (oldest first), ``demand_window [B, W]`` (periods
    t−W..t−1, oldest first), ``promo_window [B, W]`` (float 0/1), ``promo_ahead [B, L + 1]``
    (periods t..t+L), ``phase [B]`` (long, season phase of t), ``scale [B]`` (training mean demand
    of the series), ``critical_ratio [B]`` (``p_i / (p_i + h)``), ``series [B]``, ``period [B]``.
    """

    on_hand: torch.Tensor
    pipeline: torch.Tensor
    demand_window: torch.Tensor
    promo_window: torch.Tensor
    promo_ahead: torch.Tensor
    phase: torch.Tensor
    scale: torch.Tensor
    critical_ratio: torch.Tensor
    series: torch.Tensor
    period: torch.Tensor

    @property
    def batch(self) -> int:
        return int(self.on_hand.shape[0])

    def inventory_position(self) -> torch.Tensor:
        return self.on_hand + self.pipeline.sum(dim=1)


def observation_space(lead_time: int, window: int, season_length: int, n_series: int) -> Composite:
    """The fields of :class:`SeriesObservation` for one row."""
    periods = Box((), 0, dtype="int64", description="period of the series")
    return Composite({
        "on_hand": Box((), unit="units"), "pipeline": Box((lead_time,), unit="units"),
        "demand_window": Box((window,), 0.0, unit="units"), "promo_window": Box((window,), 0.0, 1.0),
        "promo_ahead": Box((lead_time + 1,), 0.0, 1.0), "phase": Discrete(season_length),
        "scale": Box((), 0.0, unit="units"), "critical_ratio": Box((), 0.0, 1.0),
        "series": Discrete(n_series), "period": periods,
    })


def feature_count(lead_time: int, window: int, season_length: int) -> int:
    """Width F of :func:`observation_features`: ``2 + L + 2W + (L + 1) + season_length + 2``."""
    return 2 + lead_time + 2 * window + lead_time + 1 + season_length + 2


def observation_features(obs: SeriesObservation, season_length: int) -> torch.Tensor:
    """Flat, scale-free features ``[B, F]`` (F: :func:`feature_count`):
    on hand, pipeline, inventory position and demand window divided by the series scale; the
    promotion window and plan; the season phase one-hot; the newsvendor fractile; log of the scale."""
    scale = obs.scale.unsqueeze(1)
    phase = torch.nn.functional.one_hot(obs.phase, season_length).to(obs.on_hand.dtype)
    return torch.cat(
        [
            obs.on_hand.unsqueeze(1) / scale,
            obs.pipeline / scale,
            obs.inventory_position().unsqueeze(1) / scale,
            obs.demand_window / scale,
            obs.promo_window,
            obs.promo_ahead,
            phase,
            obs.critical_ratio.unsqueeze(1),
            torch.log(scale),
        ],
        dim=1,
    )


class SeriesSim:
    """Batched simulator over a scenario's demand history; see the module docstring."""

    differentiable = True

    def __init__(
        self,
        scenario: RealSeriesScenario,
        device: torch.device | str = "cpu",
        split: Split = "all",
        data: SeriesData | None = None,
    ) -> None:
        self.scenario = scenario
        self.device = torch.device(device)
        self.data = data or series_data(scenario)
        self.split_name = split
        self.lead_time = scenario.lead_time
        self.window = scenario.window_periods
        self.season_length = scenario.season_length
        self.holding_cost = float(scenario.holding_cost)
        self.lost_sales = scenario.shortage == "lost_sales"
        d = self.data
        self.split = d.split
        visible = d.split if split == "train" else d.periods
        pad = self.lead_time + 1
        demand = torch.zeros(d.n_series, d.periods + pad)
        promo = torch.zeros(d.n_series, d.periods + pad)
        demand[:, :visible] = d.demand[:, :visible]
        promo[:, :visible] = d.promo[:, :visible].float()
        self.demand = demand.to(self.device)  # [N, T + L + 1]
        self.promo = promo.to(self.device)
        self.visible_periods = visible
        self.scale = d.scale.to(self.device)
        self.underage_cost = d.underage_cost.to(self.device)
        self.critical_ratio = d.critical_ratio.to(self.device)
        self.phase0 = d.phase0
        self.observation_size = feature_count(self.lead_time, self.window, self.season_length)
        self.spaces = Spaces(
            observation=observation_space(self.lead_time, self.window, self.season_length, d.n_series),
            features=Box((self.observation_size,), description="scale-free features (observation_features)"),
            action=Box((), 0.0, unit="units", span=(0.0, float(d.demand.max()) * (self.lead_time + 1) + 1.0),
                       description="order quantity"),
        )
        self._offsets = torch.arange(-self.window, 0, device=self.device)
        self._ahead = torch.arange(self.lead_time + 1, device=self.device)

    # ----- data access -------------------------------------------------------------------------
    def windows(self, series: torch.Tensor, start: torch.Tensor, periods: int) -> torch.Tensor:
        """Demand ``[B, periods]`` of rows ``series [B]`` from period ``start [B]`` on (zeros past the
        visible data)."""
        index = (start.unsqueeze(1) + torch.arange(periods, device=self.device)).clamp_max(self.demand.shape[1] - 1)
        values = self.demand[series.unsqueeze(1), index]
        return torch.where(index < self.visible_periods, values, torch.zeros_like(values))

    def start_state(
        self,
        series: torch.Tensor,
        start: torch.Tensor,
        on_hand: torch.Tensor | None = None,
        pipeline: torch.Tensor | None = None,
    ) -> SeriesState:
        """State at period ``start`` of rows ``series``; empty store and pipeline unless given."""
        batch = series.shape[0]
        on_hand = torch.zeros(batch, device=self.device) if on_hand is None else on_hand
        pipeline = torch.zeros(batch, self.lead_time, device=self.device) if pipeline is None else pipeline
        return SeriesState(on_hand, pipeline, series.to(self.device).long(), start.to(self.device).long())

    def first_decision_period(self) -> int:
        """The earliest period with a full demand window."""
        return self.window

    # ----- the generic simulator contract ------------------------------------------------------
    def _draw(self, batch: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        gen = generator if generator is not None else torch.default_generator
        series = torch.randint(self.data.n_series, (batch,), generator=gen, device=gen.device)
        start = torch.randint(self.window, self.split, (batch,), generator=gen, device=gen.device)
        return series.to(self.device), start.to(self.device)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> SeriesState:
        """Empty stores at random (series, period) rows of the training span.

        The draw does not advance ``generator``: a following :meth:`sample_exogenous` with the same
        generator draws the same rows and returns their demand (the gymnasium adapter's pattern).
        """
        gen = generator if generator is not None else torch.default_generator
        saved = gen.get_state()
        series, start = self._draw(batch, gen)
        gen.set_state(saved)
        return self.start_state(series, start)

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Demand ``[B, periods]`` of the rows the matching :meth:`reset` started at."""
        series, start = self._draw(batch, generator)
        return self.windows(series, start, periods)

    def observe(self, state: SeriesState) -> SeriesObservation:
        series, period = state.series, state.period
        rows = series.unsqueeze(1)
        past = (period.unsqueeze(1) + self._offsets).clamp_min(0)
        ahead = (period.unsqueeze(1) + self._ahead).clamp_max(self.promo.shape[1] - 1)
        return SeriesObservation(
            on_hand=state.on_hand,
            pipeline=state.pipeline,
            demand_window=self.demand[rows, past],
            promo_window=self.promo[rows, past],
            promo_ahead=self.promo[rows, ahead],
            phase=(period + self.phase0) % self.season_length,
            scale=self.scale[series],
            critical_ratio=self.critical_ratio[series],
            series=series,
            period=period,
        )

    def flat_observation(self, obs: SeriesObservation) -> torch.Tensor:
        return observation_features(obs, self.season_length)

    def step(self, state: SeriesState, action: torch.Tensor, demand: torch.Tensor) -> StepResult[SeriesState]:
        """One period (:mod:`decisionlab.domains.inventory.dynamics`): ``action`` orders ``[B]`` or
        ``[B, 1]`` (negative read as 0), ``demand [B]``. Reward is minus the period's cost."""
        order = action.reshape(-1).clamp_min(0.0)
        arriving, pipeline = receive(state.pipeline, order)
        on_hand, info = serve(state.on_hand, arriving, demand, self.holding_cost, self.underage_cost[state.series],
                              lost_sales=self.lost_sales)
        info["order"] = order
        return StepResult(SeriesState(on_hand, pipeline, state.series, state.period + 1), -info["cost"], info)


SUMMED = ("cost", "holding_cost", "shortage_cost", "sales", "demand", "on_hand")


def backtest(
    sim: SeriesSim,
    policy: Policy,
    series: torch.Tensor,
    start: int,
    periods: int,
    warmup: int,
    state: SeriesState | None = None,
    keys: tuple[str, ...] = SUMMED,
) -> dict[str, torch.Tensor]:
    """Replay rows ``series [B]`` from period ``start`` for ``periods`` periods (empty start unless
    ``state``) through the core rollout (:func:`~decisionlab.core.engine.accumulate`); sums of the
    per-period diagnostics ``keys`` over the periods after ``warmup`` (``[B]`` float64 each, plus
    ``"periods"``: the count)."""
    series = series.to(sim.device)
    starts = torch.full_like(series, start)
    state = state or sim.start_state(series, starts)
    sums = accumulate(sim, policy, state, lambda offset, length: sim.windows(series, starts + offset, length),
                      periods, warmup, {key: itemgetter(key) for key in keys}, chunk_periods=periods)
    sums["periods"] = torch.full_like(sums["cost"], float(periods - warmup))
    return sums


def heldout_span(sim: SeriesSim) -> tuple[int, int, int]:
    """``(start, periods, warmup)`` of the held-out evaluation: from ``warmup_periods`` before the
    split to the end of the data."""
    warmup = sim.scenario.warmup_periods
    start = sim.split - warmup
    return start, sim.data.periods - start, warmup
