"""Learning the drivers' value function V(cell, time of day): online TD, offline fitted TD, V1D3.

- ``td_online``: the fleet dispatches and repositions by the current table while every completed
  trip (and every ``idle_transition_seconds`` of idling, and every end of shift) updates it by
  TD(0) (:func:`decisionlab.core.algos.td.td0_update`, α ≈ 0.025, γ ≈ 0.9 per 10 minutes);
- ``offline_value``: fitted TD (:func:`decisionlab.core.algos.td.fitted_td`) of a neural value
  (cell embeddings + time-of-day features; scalar or HL-Gauss head) on the trajectories of earlier
  days: read from a trip log the simulator wrote (``history_log``, see
  :mod:`decisionlab.domains.ride_hailing.triplog`), or the user's trip records (the scenario's
  ``trips_path``), or else simulated under a behaviour policy (``history_policy``);
- ``v1d3``: the offline value, then online TD starting from it, blended back every
  ``ensemble_every_hours`` (``V ← w·V_online + (1 − w)·V_offline``) — the periodic ensemble of
  Tang et al. (2021).

Each returns a :class:`~decisionlab.domains.ride_hailing.policies.ValuePolicy` (value matching and
``value_supply`` repositioning by default), scored on held-out days. With ``learn_online`` (the
default) the policies of ``td_online`` and ``v1d3`` keep learning from the trips of every day they
serve in simulation, V1D3's still blended with its offline value every ``ensemble_every_hours``
(:mod:`decisionlab.domains.ride_hailing.online`); the API serves the frozen snapshot. The demand
table ``value_supply`` reads is counted on the days the algorithm learned from (the online days for
``td_online`` and ``v1d3``, the history or its trip log for ``offline_value``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, Field

from decisionlab.core import (
    FittedTDConfig,
    NeuralValue,
    TabularValue,
    TrainContext,
    TrainOutcome,
    Transitions,
    Widths,
    apply_options,
    blend,
    blend_,
    fitted_td,
    options_model,
    td0_update,
    value_table,
)
from decisionlab.domains.ride_hailing.demand import log_demand, logged_demand
from decisionlab.domains.ride_hailing.metrics import episode_metrics, run_days
from decisionlab.domains.ride_hailing.online import step_transitions
from decisionlab.domains.ride_hailing.policies import (
    DEFAULT_GAMMA,
    DEFAULT_GAMMA_PERIOD_S,
    VALUE_TIME_BINS,
    ValuePolicy,
)
from decisionlab.domains.ride_hailing.scenario import SECONDS_PER_DAY, CityScenario
from decisionlab.domains.ride_hailing.sim import CitySim

__all__ = ["OfflineValueOptions", "TDOnlineOptions", "V1D3Options", "ValueSettings", "step_transitions",
           "train_offline_value", "train_td_online", "train_v1d3"]


class ValueSettings(BaseModel):
    """What the three value-learning algorithms share (defaults: the competition's winning set-up)."""

    gamma: float = Field(DEFAULT_GAMMA, gt=0, le=1, description="discount per gamma_period_s")
    gamma_period_s: float = Field(DEFAULT_GAMMA_PERIOD_S, gt=0, le=86_400, description="seconds γ discounts over")
    alpha: float = Field(0.025, gt=0, le=1, description="online TD(0) step size")
    online_days: int = Field(4, ge=1, le=10_000, description="simulated horizons of online learning")
    cities: int = Field(4, ge=1, le=1024, description="cities simulated side by side (they share the value)")
    history_days: int = Field(4, ge=1, le=10_000, description="earlier horizons simulated for offline training "
                              "(when no history_log)")
    history_policy: str = Field("nearest+demand", description="behaviour policy of the simulated history")
    history_log: str | None = Field(None, max_length=500, description="trip-log folder written by the simulator "
                                    "(transitions.parquet) to train the offline value on, instead of simulating")
    head: Literal["scalar", "hl_gauss"] = Field("hl_gauss", description="offline value head")
    embedding_dim: int = Field(16, ge=1, le=512, description="cell embedding width of the offline value")
    hidden: Widths = Field((64, 64), description="hidden widths of the offline value")
    iterations: int = Field(4000, ge=1, le=10_000_000, description="fitted-TD gradient steps")
    batch_size: int = Field(1024, ge=1, le=1_000_000, description="fitted-TD minibatch")
    learning_rate: float = Field(3e-3, gt=0, le=1, description="fitted-TD learning rate")
    target_update_every: int = Field(250, ge=1, description="fitted-TD target refresh (steps)")
    ensemble_every_hours: float = Field(1.0, gt=0, le=168, description="V1D3: simulated hours between blends")
    ensemble_weight_online: float = Field(0.5, ge=0, le=1, description="V1D3: weight of the online table in a blend")
    reposition: Literal["value_supply", "value", "stay"] = Field(
        "value_supply", description="the learned policy's repositioning: value_supply (idle drivers matched to "
        "cell slots by value and the competition they expect), value (each to its best cell), stay")
    time_bins: int = Field(VALUE_TIME_BINS, ge=1, le=1440, description="time-of-day bins of the value table "
                           "(48: half hours)")
    learn_online: bool = Field(True, description="the learned value keeps learning by TD(0) from the trips of "
                               "every day it serves in simulation (V1D3: blended with the offline value every "
                               "ensemble_every_hours); the API serves the frozen snapshot either way")
    eval_episodes: int = Field(4, ge=1, le=10_000, description="held-out horizons the learned policy is scored on")
    hours_per_day: float | None = Field(None, gt=0, le=168, description="simulate only this many hours (from the "
                                        "scenario's start_hour) of every training, history and held-out day "
                                        "(null: the scenario's horizon)")


ONLINE_FIELDS = ("gamma", "gamma_period_s", "alpha", "online_days", "cities", "reposition", "time_bins",
                 "learn_online", "eval_episodes", "hours_per_day")
OFFLINE_FIELDS = ("gamma", "gamma_period_s", "history_days", "history_policy", "history_log", "head",
                  "embedding_dim", "hidden", "iterations", "batch_size", "learning_rate", "target_update_every",
                  "cities", "reposition", "time_bins", "eval_episodes", "hours_per_day")
TDOnlineOptions = options_model("TDOnlineOptions", ValueSettings, ONLINE_FIELDS,
                                doc="What a user may set for ``td_online``.")
OfflineValueOptions = options_model("OfflineValueOptions", ValueSettings, OFFLINE_FIELDS,
                                    doc="What a user may set for ``offline_value``.")
V1D3Options = options_model("V1D3Options", ValueSettings, tuple(ValueSettings.model_fields),
                            doc="What a user may set for ``v1d3``.")


# --- transitions -----------------------------------------------------------------------------------


def simulate_history(scenario: CityScenario, settings: ValueSettings, policy_name: str, device: torch.device,
                     generator: torch.Generator, progress: bool = False) -> Transitions:
    """Value transitions of ``history_days`` horizons under a behaviour policy (earlier days' logs)."""
    from decisionlab.domains.ride_hailing.baselines import baseline

    sim = CitySim(scenario, device)
    policy = baseline(policy_name, scenario, device)
    seen: list[Transitions] = []
    run_days(sim, policy, settings.history_days, settings.cities, generator,
             on_step=lambda state, info: seen.append(step_transitions(info, settings.gamma, settings.gamma_period_s)),
             label="history" if progress else None)
    return Transitions.cat(seen)


def offline_value(scenario: CityScenario, settings: ValueSettings, ctx: TrainContext) -> tuple[NeuralValue, int]:
    """The neural value fitted on earlier days (and how many transitions it saw)."""
    if settings.history_log is not None:
        from decisionlab.domains.ride_hailing.triplog import read_transitions

        data = read_transitions(Path(settings.history_log), settings.gamma, settings.gamma_period_s)
    elif scenario.trips_path is not None:  # the user's own trip records are the earlier days
        from decisionlab.domains.ride_hailing.city import city_of
        from decisionlab.domains.ride_hailing.triplog import record_transitions
        from decisionlab.domains.ride_hailing.trips import read_trip_records

        records = read_trip_records(scenario.trips_path, city_of(scenario, str(ctx.device)).grid,
                                    zones_path=scenario.zones_path)
        data = record_transitions(records.frame, settings.gamma, settings.gamma_period_s).to(ctx.device)
    else:
        data = simulate_history(scenario, settings, settings.history_policy, ctx.device, ctx.generator("history"),
                                ctx.progress)
    ctx.seed_init("offline")
    cells = scenario.grid_size ** 2
    v_max = 1.5 * float(data.reward.max().clamp_min(1.0)) / max(1e-3, 1.0 - float(data.discount.mean()))
    from decisionlab.domains.ride_hailing.city import city_of

    # Cell centres scaled to [0, 1] join the embeddings: the value then carries over to cells the
    # history rarely visited (where an idle driver deciding where to go most needs it).
    centres = city_of(scenario).grid.centres_km
    where = ((centres - centres.min(0).values) / (centres.max(0).values - centres.min(0).values).clamp_min(1e-9))
    value = NeuralValue(cells, settings.time_bins, SECONDS_PER_DAY, embedding_dim=settings.embedding_dim,
                        hidden=settings.hidden, head=settings.head, v_min=0.0, v_max=v_max,
                        location_features=[[round(float(x), 6) for x in row] for row in where]).to(ctx.device)
    config = FittedTDConfig(iterations=settings.iterations, batch_size=settings.batch_size,
                            learning_rate=settings.learning_rate, target_update_every=settings.target_update_every)
    fitted_td(value, data, config, generator=ctx.generator("fitted_td"), progress=ctx.progress,
              description="offline fitted TD")
    return value.eval(), len(data)


def blend_every(scenario: CityScenario, settings: ValueSettings) -> int:
    """Windows between two V1D3 blends."""
    return max(1, round(settings.ensemble_every_hours * 3600.0 / scenario.window_seconds))


def online_td(scenario: CityScenario, settings: ValueSettings, ctx: TrainContext, table: TabularValue,
              demand: list[list[float]] | None = None, anchor: torch.nn.Module | None = None) -> int:
    """Online TD(0) on ``online_days`` horizons, acting by the table being learned; with ``anchor``, the
    table is blended with it every ``ensemble_every_hours`` (V1D3). Returns the transitions used."""
    sim = CitySim(scenario, ctx.device)
    learner = ValuePolicy(table, **policy_settings(settings, demand)).for_scenario(scenario)
    generator = ctx.generator("online")
    anchor_table = value_table(anchor, table.n_locations, table.n_time_bins, table.period_s) if anchor else None
    every = blend_every(scenario, settings)
    used = 0

    def update(state, info) -> None:  # noqa: ANN001
        nonlocal used
        batch = step_transitions(info, settings.gamma, settings.gamma_period_s)
        if len(batch):
            td0_update(table, batch, settings.alpha)
            used += len(batch)
        if anchor_table is not None and (state.step + 1) % every == 0:
            blend_(table, anchor_table, settings.ensemble_weight_online)

    run_days(sim, learner, settings.online_days, settings.cities, generator, on_step=update,
             label="online TD" if ctx.progress else None)
    return used


def score(scenario: CityScenario, policy: ValuePolicy, settings: ValueSettings, ctx: TrainContext) -> dict[str, float]:
    """Mean KPIs of the learned policy on held-out horizons (their own seed stream)."""
    values = episode_metrics(scenario, policy.for_scenario(scenario), settings.eval_episodes,
                             ctx.stream("eval"), ctx.device)
    return {name: float(v.mean()) for name, v in values.items()}


def outcome(policy: ValuePolicy, metrics: dict[str, float], algo: str, settings: ValueSettings) -> TrainOutcome:
    return TrainOutcome(policy=policy, policy_config=policy.config(), metrics=metrics,
                        algo_config={"algo": algo, **settings.model_dump(mode="json")})


def training_days(scenario: CityScenario, settings: ValueSettings) -> CityScenario:
    """The scenario with ``hours_per_day`` as its horizon (when set and shorter)."""
    if settings.hours_per_day is None or settings.hours_per_day >= scenario.horizon_hours:
        return scenario
    return scenario.model_copy(update={"horizon_hours": settings.hours_per_day})


def new_table(scenario: CityScenario, settings: ValueSettings, device: torch.device) -> TabularValue:
    return TabularValue(scenario.grid_size ** 2, settings.time_bins, SECONDS_PER_DAY).to(device)


def estimated_demand(scenario: CityScenario, days: int, ctx: TrainContext, log: str | None = None) -> list[list[float]]:
    """``[24][C]`` orders per hour and cell counted on the ``days`` days the algorithm learned from, or
    on the trip log ``log`` it was fitted on (what ``value_supply`` repositioning expects of the
    competition)."""
    if log is not None:
        table = log_demand(log, scenario.grid_size ** 2)
    else:
        table = logged_demand(scenario, days, ctx.stream("demand"), ctx.device)
    return [[round(float(x), 4) for x in row] for row in table.cpu()]


def policy_settings(settings: ValueSettings, demand: list[list[float]] | None, online: bool = False) -> dict:
    """The :class:`ValuePolicy` keywords a training's settings give (``online``: it keeps learning)."""
    rule = {"alpha": settings.alpha, "ensemble_every_hours": settings.ensemble_every_hours,
            "weight_online": settings.ensemble_weight_online}
    return {"gamma": settings.gamma, "gamma_period_s": settings.gamma_period_s, "reposition": settings.reposition,
            "demand": demand, "online": rule if online else None}


def train_td_online(scenario: CityScenario, options: BaseModel, ctx: TrainContext) -> TrainOutcome:
    settings = apply_options(ValueSettings(), options)
    scenario = training_days(scenario, settings)
    demand = estimated_demand(scenario, settings.online_days, ctx)
    table = new_table(scenario, settings, ctx.device)
    with torch.no_grad():
        used = online_td(scenario, settings, ctx, table, demand)
    policy = ValuePolicy(table, **policy_settings(settings, demand, online=settings.learn_online))
    return outcome(policy, {**score(scenario, policy, settings, ctx), "transitions": float(used)}, "td_online",
                   settings)


def train_offline_value(scenario: CityScenario, options: BaseModel, ctx: TrainContext) -> TrainOutcome:
    settings = apply_options(ValueSettings(), options)
    scenario = training_days(scenario, settings)
    value, seen = offline_value(scenario, settings, ctx)
    demand = estimated_demand(scenario, settings.history_days, ctx, settings.history_log)
    policy = ValuePolicy(value, **policy_settings(settings, demand))
    return outcome(policy, {**score(scenario, policy, settings, ctx), "transitions": float(seen)}, "offline_value",
                   settings)


def train_v1d3(scenario: CityScenario, options: BaseModel, ctx: TrainContext) -> TrainOutcome:
    settings = apply_options(ValueSettings(), options)
    scenario = training_days(scenario, settings)
    offline, seen = offline_value(scenario, settings, ctx)
    demand = estimated_demand(scenario, settings.online_days, ctx)  # the most recent days: the online ones
    table = new_table(scenario, settings, ctx.device)
    with torch.no_grad():
        table.table.copy_(value_table(offline, table.n_locations, table.n_time_bins, table.period_s))
        used = online_td(scenario, settings, ctx, table, demand, anchor=offline)
        # A day whose last window is a blend step has just been blended: blending again would weigh
        # the online table w² instead of w.
        blended = scenario.windows % blend_every(scenario, settings) == 0
        ensemble = table if blended else blend(table, offline, settings.ensemble_weight_online)
    policy = ValuePolicy(ensemble, anchor=offline, **policy_settings(settings, demand, online=settings.learn_online))
    metrics = {**score(scenario, policy, settings, ctx), "transitions": float(used + seen)}
    return outcome(policy, metrics, "v1d3", settings)

