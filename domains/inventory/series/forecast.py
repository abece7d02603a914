"""A seasonal empirical quantile forecast of lead-time demand, from the observed window only.

For a decision at period t the relevant demand is that of periods t..t+L (the order placed now
arrives at t + L; the inventory position must cover demand until then). For each future period
u = t + j the forecast takes the demand of the same season phase (weekday) in the last k seasons
that lie inside the window, ``u − s·m`` for ``m = ⌈(j+1)/s⌉, …, ⌈(j+1)/s⌉ + k − 1`` (s = season
length, k = ``W // s``), removes the promotion uplift from the past values that were on
promotion and applies it to u if u is on promotion: ``k`` equally likely values per future period.

Joint sample paths ``[B, M, L + 1]`` draw one of the k values per future period independently
(a fixed, seeded table of ``M`` index combinations, so the forecast is deterministic). The
lead-time demand distribution is the empirical distribution of the path sums; its quantile at a
level ``q`` interpolates the sorted sums linearly, so levels may differ per row.

The promotion uplift is one number estimated on the training span of all series: the ratio of
promoted demand to the same series' mean non-promoted demand on the same season phase.
"""

from __future__ import annotations

import math

import torch

from decisionlab.domains.inventory.series.scenario import RealSeriesScenario, SeriesData, series_data
from decisionlab.domains.inventory.series.sim import SeriesObservation, SeriesSim

FORECAST_SEED = 20_240_917
DEFAULT_SAMPLES = 128


def estimate_promo_uplift(data: SeriesData, season_length: int) -> float:
    """Mean uplift of promoted demand over the same series' non-promoted demand on the same season
    phase, over the training span (1.0 when there is no promotion in it)."""
    demand = data.demand[:, : data.split].double()
    promo = data.promo[:, : data.split]
    phase = (torch.arange(data.split) + data.phase0) % season_length
    base = torch.zeros_like(demand)
    for k in range(season_length):
        days = phase == k
        quiet = (~promo) & days
        mean = (demand * quiet).sum(1) / quiet.sum(1).clamp_min(1)
        base[:, days] = mean.unsqueeze(1)
    promoted = promo & (base > 0)
    if not bool(promoted.any()):
        return 1.0
    return float((demand[promoted]).sum() / base[promoted].sum())


class SeasonalEmpiricalForecaster:
    """Lead-time demand quantiles from the observation's window (see the module docstring).

    ``uplift``: the promotion multiplier; ``samples``: M joint paths per row.
    """

    def __init__(
        self,
        lead_time: int,
        window: int,
        season_length: int,
        uplift: float = 1.0,
        samples: int = DEFAULT_SAMPLES,
        device: torch.device | str = "cpu",
    ) -> None:
        self.lead_time, self.window, self.season = int(lead_time), int(window), int(season_length)
        self.seasons = self.window // self.season
        self.uplift = float(uplift)
        self.samples = int(samples)
        # Window positions (0 = oldest) of the k same-phase periods behind each future period j.
        positions = []
        for j in range(self.lead_time + 1):
            first = math.ceil((j + 1) / self.season)
            positions.append([self.window + j - self.season * m for m in range(first, first + self.seasons)])
        self.positions = torch.tensor(positions, device=device)  # [L + 1, k]
        if int(self.positions.min()) < 0:
            raise ValueError("the window is too short for this lead time and season length")
        gen = torch.Generator().manual_seed(FORECAST_SEED)
        self.combos = torch.randint(self.seasons, (self.samples, self.lead_time + 1), generator=gen).to(device)

    @classmethod
    def for_scenario(
        cls, scenario: RealSeriesScenario, device: torch.device | str = "cpu", samples: int = DEFAULT_SAMPLES
    ) -> SeasonalEmpiricalForecaster:
        data = series_data(scenario)
        uplift = estimate_promo_uplift(data, scenario.season_length)
        return cls(scenario.lead_time, scenario.window_periods, scenario.season_length, uplift, samples, device)

    def config(self) -> dict[str, float | int]:
        return {"lead_time": self.lead_time, "window": self.window, "season_length": self.season,
                "uplift": self.uplift, "samples": self.samples}

    def period_values(self, obs: SeriesObservation) -> torch.Tensor:
        """The k equally likely demands of each future period ``[B, L + 1, k]`` (promotion-adjusted)."""
        flat = self.positions.reshape(-1)
        past = obs.demand_window[:, flat].view(obs.batch, self.lead_time + 1, self.seasons)
        past_promo = obs.promo_window[:, flat].view_as(past)
        lift = self.uplift - 1.0
        base = past / (1.0 + lift * past_promo)
        return base * (1.0 + lift * obs.promo_ahead.unsqueeze(2))

    def paths(self, obs: SeriesObservation) -> torch.Tensor:
        """Joint demand sample paths ``[B, M, L + 1]`` over periods t..t+L."""
        values = self.period_values(obs)  # [B, L + 1, k]
        index = self.combos.T.unsqueeze(0).expand(obs.batch, -1, -1)  # [B, L + 1, M]
        return torch.gather(values, 2, index).transpose(1, 2)

    def lead_time_samples(self, obs: SeriesObservation) -> torch.Tensor:
        """Sorted samples of the demand over t..t+L ``[B, M]``."""
        return self.paths(obs).sum(dim=2).sort(dim=1).values

    @staticmethod
    def quantile_of_sorted(sorted_samples: torch.Tensor, level: torch.Tensor | float) -> torch.Tensor:
        """Linear-interpolation quantile ``[B]`` of sorted samples ``[B, M]`` at ``level`` (scalar or
        ``[B]``, clipped to [0, 1])."""
        count = sorted_samples.shape[1]
        level = torch.as_tensor(level, dtype=sorted_samples.dtype, device=sorted_samples.device)
        position = level.clamp(0.0, 1.0).expand(sorted_samples.shape[0]) * (count - 1)
        low = position.floor().long().clamp_max(count - 1)
        high = (low + 1).clamp_max(count - 1)
        weight = position - low
        below = sorted_samples.gather(1, low.unsqueeze(1)).squeeze(1)
        above = sorted_samples.gather(1, high.unsqueeze(1)).squeeze(1)
        return below + weight * (above - below)

    def lead_time_quantile(self, obs: SeriesObservation, level: torch.Tensor | float) -> torch.Tensor:
        """Quantile ``[B]`` of the demand over t..t+L at ``level``."""
        return self.quantile_of_sorted(self.lead_time_samples(obs), level)


class CachedLeadTimeForecast:
    """The same lead-time quantiles, read from a table of sorted samples computed once.

    The forecast depends on the row's (series, period) only, so a search that replays the same
    span under many candidate policies computes it once: ``table [N, periods, M]`` holds
    :meth:`SeasonalEmpiricalForecaster.lead_time_samples` for periods ``start .. start + periods − 1``.
    """

    def __init__(self, forecaster: SeasonalEmpiricalForecaster, table: torch.Tensor, start: int) -> None:
        self.forecaster, self.table, self.start = forecaster, table, int(start)
        self.lead_time = forecaster.lead_time

    @classmethod
    @torch.no_grad()
    def build(
        cls, forecaster: SeasonalEmpiricalForecaster, sim: SeriesSim, start: int, periods: int
    ) -> CachedLeadTimeForecast:
        n = sim.data.n_series
        series = torch.arange(n, device=sim.device)
        table = torch.empty(n, periods, forecaster.samples, device=sim.device)
        for t in range(periods):
            state = sim.start_state(series, torch.full_like(series, start + t))
            table[:, t] = forecaster.lead_time_samples(sim.observe(state))
        return cls(forecaster, table, start)

    def lead_time_samples(self, obs: SeriesObservation) -> torch.Tensor:
        offset = obs.period - self.start
        if int(offset.min()) < 0 or int(offset.max()) >= self.table.shape[1]:
            raise IndexError("period outside the cached span")
        return self.table[obs.series, offset]

    def lead_time_quantile(self, obs: SeriesObservation, level: torch.Tensor | float) -> torch.Tensor:
        return SeasonalEmpiricalForecaster.quantile_of_sorted(self.lead_time_samples(obs), level)
