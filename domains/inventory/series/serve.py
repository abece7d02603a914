"""``real_series`` over HTTP: the request model of one store-item's state and its conversion to the
:class:`~decisionlab.domains.inventory.series.sim.SeriesObservation` the series policies read.

What the observation holds and where each part comes from when a client sends a state
(:class:`SeriesStoreState`):

============================  ===========================================================================
observation field              source
============================  ===========================================================================
``on_hand``, ``pipeline``      the state (pipeline: exactly ``lead_time`` values, oldest first)
``demand_window [W]``          the state: demand of the last ``window_periods`` periods, oldest first
``promo_window [W]``           the state (0/1 flags), default no promotion
``promo_ahead [L + 1]``        the state: promotion plan of periods t..t+L, default no promotion
``phase``                      from ``date`` on the scenario data's calendar (the weekday for daily
                               data with ``season_length`` 7), or given as ``phase``
``scale``, ``critical_ratio``  a series of the scenario's data (``item`` + ``store``): its training mean
                               demand and ``p_i / (p_i + h)``; otherwise the state's ``scale`` (default:
                               the window's mean) and ``underage_cost`` (default: the scenario's p)
``series``                     the index of ``item`` + ``store`` in the data (0 for other series)
``period``                     the period index of ``date`` on the data's calendar (0 without a date)
============================  ===========================================================================

``series`` and ``period`` exist so the just-in-time oracle can read the future; it is not
admissible and the API refuses it, so no served policy reads ``period``. ``series`` is read by the
per-series fits (``base_stock``, ``capped_base_stock``: one level per series of the data), which
therefore need ``item`` + ``store``; the forecast-based policies (``myopic``, the newsvendor
family) and registered HDPO networks act on any series' supplied history.

Scenario limits for the API: ``data_path`` may only be unset (the synthetic generator) or
``"sample"`` (the shipped sample file): a path would let a client read the server's files; and the
synthetic history is capped at :data:`MAX_SYNTHETIC_CELLS` series-days (every request may load it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from decisionlab.core import FieldProblem, Policy, ScenarioError, ServingSpec, StateError, WholeNumber
from decisionlab.domains.inventory.orders import StoreOrder, one_order_per_state
from decisionlab.domains.inventory.series.policies import SeriesBaseStock, SeriesCappedBaseStock
from decisionlab.domains.inventory.series.scenario import MIN_SCALE, RealSeriesScenario, SeriesData, series_data
from decisionlab.domains.inventory.series.sim import SeriesObservation

MAX_QUANTITY = 1e9
MAX_LEAD = 64  # longer than any valid lead time; the exact length is checked against the scenario
MAX_WINDOW = 730  # the largest window_periods
MAX_PROBLEMS = 20
MAX_SYNTHETIC_CELLS = 2_000_000  # series x days of a synthetic history the API will generate (preset: 280,320)
PER_SERIES_POLICIES = (SeriesBaseStock, SeriesCappedBaseStock)  # read obs.series: parameters per data series

Quantity = Annotated[float, Field(ge=0, le=MAX_QUANTITY, allow_inf_nan=False, strict=True)]
NetStock = Annotated[float, Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY, allow_inf_nan=False, strict=True)]
Flag = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class SeriesStoreState(BaseModel):
    """One store-item at the moment of ordering for period t (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")  # numbers are strict field by field; dates come as text

    on_hand: NetStock = Field(description="stock on hand (units); negative (= backlog) only with shortage='backlog'")
    pipeline: list[Quantity] = Field(
        default_factory=list, max_length=MAX_LEAD,
        description="orders in transit, oldest (arriving next) first; exactly lead_time values",
    )
    demand_window: list[Quantity] = Field(
        max_length=MAX_WINDOW, description="demand of periods t-W..t-1, oldest first; exactly window_periods values"
    )
    promo_window: list[Flag] | None = Field(
        None, max_length=MAX_WINDOW, description="promotion flags (0/1) of the same periods; default: none"
    )
    promo_ahead: list[Flag] | None = Field(
        None, max_length=MAX_LEAD + 1,
        description="promotion plan (0/1) of periods t..t+lead_time (lead_time + 1 values); default: none",
    )
    date: dt.date | None = Field(
        None, description="date of period t, on the data's calendar (sets the season phase; e.g. the weekday)"
    )
    phase: WholeNumber | None = Field(None, ge=0, le=365, description="season phase of period t, instead of date")
    item: Key | None = Field(None, description="with store: a series of the scenario's data (its scale and penalty)")
    store: Key | None = Field(None, description="with item: a series of the scenario's data")
    underage_cost: float | None = Field(
        None, gt=0, le=1e6, allow_inf_nan=False, strict=True,
        description="a series outside the data: its penalty p (default: the scenario's)"
    )
    scale: float | None = Field(
        None, gt=0, le=MAX_QUANTITY, allow_inf_nan=False, strict=True,
        description="a series outside the data: its mean demand per period (default: the window's mean)",
    )


# --- the scenario's data, as the API needs it ------------------------------------------------------


def check_series_scenario(scenario: RealSeriesScenario) -> None:
    """Refuse scenarios the API does not load: a file path, an oversized synthetic history."""
    if scenario.data_path not in (None, "sample"):
        raise ScenarioError(
            "parameters: data_path: the API reads the synthetic history (leave data_path unset) or the shipped "
            "sample ('sample') only; train and evaluate on your own file with the CLI"
        )
    if scenario.data_path is None:
        cells = scenario.synthetic_items * scenario.synthetic_stores * scenario.synthetic_days
        if cells > MAX_SYNTHETIC_CELLS:
            raise ScenarioError(
                f"parameters: synthetic_items x synthetic_stores x synthetic_days = {cells:,} exceeds the API's limit "
                f"of {MAX_SYNTHETIC_CELLS:,} series-days"
            )


@dataclass(frozen=True)
class SeriesCatalog:
    """A scenario's data with its series looked up by ``(item, store)``."""

    scenario: RealSeriesScenario
    data: SeriesData
    index: dict[tuple[str, str], int]

    def period_of(self, date: dt.date) -> int | None:
        """The period index of ``date`` on the data's calendar (may be outside the data), or
        ``None`` when ``date`` falls between two periods."""
        days = (date - self.data.dates[0]).days
        step = self.data.period_days
        return days // step if days % step == 0 else None

    def phase_of(self, period: int) -> int:
        return (period + self.data.phase0) % self.scenario.season_length


@lru_cache(maxsize=8)
def series_catalog(scenario: RealSeriesScenario) -> SeriesCatalog:
    """The (cached) catalog of ``scenario``'s data (checked with :func:`check_series_scenario`)."""
    check_series_scenario(scenario)
    data = series_data(scenario)
    keys = zip(data.keys["item_id"].to_list(), data.keys["store_id"].to_list(), strict=True)
    return SeriesCatalog(scenario, data, {(str(item), str(store)): i for i, (item, store) in enumerate(keys)})


def describe_series(scenario: RealSeriesScenario) -> dict[str, Any]:
    """What ``GET /v1/inventory/series`` returns: the state's sizes, the calendar, the series of the
    data (with their scale and penalty) and an example state (the first series, deciding the period
    after the last date of the data)."""
    catalog = series_catalog(scenario)
    data, s = catalog.data, scenario
    keys = sorted(catalog.index, key=catalog.index.__getitem__)
    first = 0
    next_date = data.dates[-1] + dt.timedelta(days=data.period_days)
    example = {
        "on_hand": 0.0,
        "pipeline": [0.0] * s.lead_time,
        "demand_window": data.demand[first, -s.window_periods:].double().tolist(),
        "promo_window": data.promo[first, -s.window_periods:].double().tolist(),
        "promo_ahead": [0.0] * (s.lead_time + 1),
        "date": next_date.isoformat(),
        "item": keys[first][0],
        "store": keys[first][1],
    }
    return {
        "scenario": s.describe(),
        "lead_time": s.lead_time,
        "window_periods": s.window_periods,
        "season_length": s.season_length,
        "shortage": s.shortage,
        "calendar": {
            "first_date": data.dates[0].isoformat(),
            "last_date": data.dates[-1].isoformat(),
            "period_days": data.period_days,
            "first_held_out_date": data.dates[data.split].isoformat(),
        },
        "series": [
            {"item": item, "store": store, "scale": float(data.scale[i]), "underage_cost": float(data.underage_cost[i])}
            for i, (item, store) in enumerate(keys)
        ],
        "example": example,
    }


# --- states -> observation ---------------------------------------------------------------------


def _problem(loc: tuple[str | int, ...], kind: str, msg: str, value: Any = None) -> FieldProblem:
    return FieldProblem(tuple(loc), kind, msg, value)


def _length(problems: list, loc: tuple, values: list | None, wanted: int, what: str) -> None:
    if values is not None and len(values) != wanted:
        problems.append(_problem(loc, "length", f"expected {wanted} value(s) ({what}), got {len(values)}", values))


def state_problems(
    catalog: SeriesCatalog, state: SeriesStoreState, loc: tuple[str | int, ...], policy: Policy | None
) -> list[FieldProblem]:
    """Everything wrong with one state for ``catalog``'s scenario and ``policy`` (``None``: what
    holds for every policy)."""
    s, problems = catalog.scenario, []
    lead, window = s.lead_time, s.window_periods
    _length(problems, (*loc, "pipeline"), state.pipeline, lead, f"one per period of lead_time={lead}, oldest first")
    _length(problems, (*loc, "demand_window"), state.demand_window, window,
            f"window_periods={window}: the demand of periods t-{window}..t-1, oldest first")
    _length(problems, (*loc, "promo_window"), state.promo_window, window, "one flag per period of the window")
    _length(problems, (*loc, "promo_ahead"), state.promo_ahead, lead + 1,
            f"one flag per period t..t+{lead}")
    if state.on_hand < 0 and s.shortage == "lost_sales":
        problems.append(_problem((*loc, "on_hand"), "negative_on_hand",
                                 "on hand must be >= 0 with shortage='lost_sales' (only a backlog goes negative)",
                                 state.on_hand))
    if state.date is not None and state.phase is not None:
        problems.append(_problem((*loc, "phase"), "date_and_phase", "give date or phase, not both", state.phase))
    elif state.date is None and state.phase is None and s.season_length > 1:
        problems.append(_problem((*loc, "date"), "missing",
                                 f"the date of the period being decided (or its season phase 0..{s.season_length - 1}) "
                                 f"is needed: the policies use the season (season_length={s.season_length})"))
    elif state.phase is not None and state.phase >= s.season_length:
        problems.append(_problem((*loc, "phase"), "phase_range", f"must be below season_length={s.season_length}",
                                 state.phase))
    elif state.date is not None and catalog.period_of(state.date) is None:
        problems.append(_problem((*loc, "date"), "off_calendar",
                                 f"not on the data's calendar (one period every {catalog.data.period_days} days from "
                                 f"{catalog.data.dates[0].isoformat()})", state.date.isoformat()))
    if (state.item is None) != (state.store is None):
        missing = "store" if state.store is None else "item"
        problems.append(_problem((*loc, missing), "missing", "item and store name a series together: give both"))
    elif state.item is not None:
        if (state.item, state.store) not in catalog.index:
            problems.append(_problem((*loc, "item"), "unknown_series",
                                     f"no series item {state.item!r}, store {state.store!r} in the scenario's data "
                                     "(GET /v1/inventory/series lists them)", state.item))
        for name in ("underage_cost", "scale"):
            if getattr(state, name) is not None:
                problems.append(_problem((*loc, name), "given_by_series",
                                         f"{name} comes from the data for a series of the data: leave it out",
                                         getattr(state, name)))
    elif policy is not None and isinstance(policy, PER_SERIES_POLICIES):
        problems.append(_problem((*loc, "item"), "missing",
                                 f"policy '{policy.name}' has one fitted level per series of the data: name the series "
                                 "with item and store"))
    return problems


def check_states(catalog: SeriesCatalog, states: Sequence[SeriesStoreState], policy: Policy | None = None) -> None:
    """A :class:`StateError` naming ``[i].<part>`` for every problem (up to :data:`MAX_PROBLEMS`)."""
    problems: list[FieldProblem] = []
    for i, state in enumerate(states):
        problems += state_problems(catalog, state, (i,), policy)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise StateError(problems[:MAX_PROBLEMS])


def series_observation(
    catalog: SeriesCatalog,
    states: Sequence[SeriesStoreState],
    policy: Policy,
    device: torch.device,
) -> SeriesObservation:
    """The :class:`SeriesObservation` ``[B, ...]`` of the states (see the module docstring).
    Raises a :class:`StateError` naming ``[i].<part>`` for every problem (:func:`check_states`)."""
    check_states(catalog, states, policy)
    s, data = catalog.scenario, catalog.data
    series, period, phase, scale, ratio = [], [], [], [], []
    for state in states:
        t = catalog.period_of(state.date) if state.date is not None else 0
        period.append(t)
        phase.append(state.phase if state.phase is not None else catalog.phase_of(t))
        if state.item is not None:
            i = catalog.index[(state.item, state.store)]
            series.append(i)
            scale.append(float(data.scale[i]))
            ratio.append(float(data.critical_ratio[i]))
        else:
            series.append(0)
            mean = sum(state.demand_window) / len(state.demand_window)
            scale.append(state.scale if state.scale is not None else max(mean, MIN_SCALE))
            p = state.underage_cost if state.underage_cost is not None else s.underage_cost
            ratio.append(p / (p + s.holding_cost))

    def floats(rows: list) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.float32, device=device)

    batch, window, ahead = len(states), s.window_periods, s.lead_time + 1
    promo_window = [[0.0] * window if state.promo_window is None else state.promo_window for state in states]
    promo_ahead = [[0.0] * ahead if state.promo_ahead is None else state.promo_ahead for state in states]
    return SeriesObservation(
        on_hand=floats([state.on_hand for state in states]),
        pipeline=floats([state.pipeline for state in states]).reshape(batch, s.lead_time),
        demand_window=floats([state.demand_window for state in states]).reshape(batch, window),
        promo_window=floats(promo_window).reshape(batch, window),
        promo_ahead=floats(promo_ahead).reshape(batch, ahead),
        phase=torch.tensor(phase, dtype=torch.long, device=device),
        scale=floats(scale),
        critical_ratio=floats(ratio),
        series=torch.tensor(series, dtype=torch.long, device=device),
        period=torch.tensor(period, dtype=torch.long, device=device),
    )


@dataclass(frozen=True)
class SeriesContext:
    """What serving a ``real_series`` scenario needs: its data's catalogue and the device."""

    catalog: SeriesCatalog
    device: torch.device


def prepare(scenario: RealSeriesScenario, device: torch.device) -> SeriesContext:
    return SeriesContext(series_catalog(scenario), device)


SERVING = ServingSpec(
    state_model=SeriesStoreState,
    action_model=StoreOrder,
    prepare=prepare,
    check=lambda context, states: check_states(context.catalog, states),
    observe=lambda context, states, policy: series_observation(context.catalog, states, policy, context.device),
    respond=one_order_per_state,
    example=lambda context: describe_series(context.catalog.scenario)["example"],
    describe=lambda context: {k: v for k, v in describe_series(context.catalog.scenario).items() if k != "example"},
)
