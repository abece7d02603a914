"""Ride-hailing: dispatch orders to drivers and reposition idle drivers on a city's hex grid.

One setting, ``city``: the batched city simulator (``sim.py``: drivers on shifts, peaked and
spatially unbalanced demand, cancellations rising with pickup distance, idle drift; or the demand
of the user's own trip records), the dispatch baselines (nearest driver, highest fare, matching on
fare; each with demand-chasing repositioning), and one learned value function V(cell, time of
day) used for both tasks — dispatch by bipartite matching on the value advantage, repositioning
toward higher value — learned online by TD(0), offline by fitted TD, or both with the periodic
ensemble (V1D3, Tang et al. 2021).
"""

from __future__ import annotations

from decisionlab.core import AlgoSpec, DomainSpec, SettingSpec, ViewSpec, register_domain
from decisionlab.domains.ride_hailing.baselines import policy_specs
from decisionlab.domains.ride_hailing.metrics import METRICS, episode_metrics
from decisionlab.domains.ride_hailing.scenario import PRESETS, CityScenario
from decisionlab.domains.ride_hailing.serve import SERVING
from decisionlab.domains.ride_hailing.sim import CitySim
from decisionlab.domains.ride_hailing.train import (
    OfflineValueOptions,
    TDOnlineOptions,
    V1D3Options,
    train_offline_value,
    train_td_online,
    train_v1d3,
)

PACKAGE = "decisionlab.domains.ride_hailing"  # the tabs: one module each (view.py re-exports them all)
SMOKE_VALUE = {"online_days": 1, "cities": 1, "history_days": 1, "iterations": 20, "batch_size": 64,
               "eval_episodes": 1, "hours_per_day": 0.1}

CITY = SettingSpec(
    name="city",
    title="City dispatch and repositioning",
    description="drivers on shifts over a hexagonal city grid, orders with morning and evening peaks and moving hot "
    "spots, cancellations rising with pickup distance; dispatch every window, reposition idle drivers",
    scenario_model=CityScenario,
    presets=PRESETS,
    make_simulator=lambda scenario, device: CitySim(scenario, device),
    episode_metrics=episode_metrics,
    metrics=METRICS,
    primary_metric="total_income",
    policies=policy_specs(),
    algos={
        "td_online": AlgoSpec("td_online", "online TD(0) of a value table V(cell, hour) from every completed trip, "
                              "acting by it (value matching + value repositioning)", train_td_online,
                              TDOnlineOptions, smoke_options={k: v for k, v in SMOKE_VALUE.items()
                                                              if k in TDOnlineOptions.model_fields}),
        "offline_value": AlgoSpec("offline_value", "fitted TD of a neural V(cell, time) (cell embeddings, HL-Gauss "
                                  "head) on the trajectories of earlier days", train_offline_value,
                                  OfflineValueOptions, smoke_options={k: v for k, v in SMOKE_VALUE.items()
                                                                      if k in OfflineValueOptions.model_fields}),
        "v1d3": AlgoSpec("v1d3", "offline value, then online TD from it with a periodic ensemble of the two "
                         "(V1D3)", train_v1d3, V1D3Options, smoke_options=SMOKE_VALUE),
    },
    policy_kinds={"ride_value": "decisionlab.domains.ride_hailing.policies:ValuePolicy"},
    serving=SERVING,
    views=(
        ViewSpec("Value map over the day", f"{PACKAGE}.value_view:value_tab"),
        ViewSpec("Supply and demand", f"{PACKAGE}.supply_view:supply_demand_tab"),
        ViewSpec("Driver income", f"{PACKAGE}.income_view:income_tab"),
        ViewSpec("Dispatch window replay", f"{PACKAGE}.window_view:window_tab"),
    ),
    default_policies=("nearest", "fare_matching", "nearest+reposition"),
    default_episodes=32,  # separates reposition from nearest (paired CI); one Run ≈ 20 s on 2 cores
    quick={"horizon_hours": 1.0, "start_hour": 7.5},
    smoke={"horizon_hours": 0.05},
    eval_chunk=64,
    input_limits={"n_drivers": (1, 2000), "orders_per_day": (1, 100_000), "horizon_hours": (0.01, 24.0)},
    episode_label="Simulated days",
)


def _routes():  # noqa: ANN202
    from decisionlab.domains.ride_hailing.routes import build_router

    return build_router()


SPEC = register_domain(
    DomainSpec(
        name="ride_hailing",
        title="Ride-hailing",
        description="Dispatch orders and reposition idle drivers in a simulated city: nearest-driver and fare "
        "baselines against one learned spatio-temporal value function (online TD, offline fitted TD, V1D3).",
        settings=(CITY,),
        default_scenario="city_small",
        default_algo="v1d3",
        routes=_routes,
    )
)

__all__ = ["CITY", "SPEC"]
