"""Fleet scheduling: an eVTOL fleet across vertiports under pad, battery and disruption constraints.

One setting, ``uam``: the event-driven day simulator (``sim.py``: the next free aircraft flies to a
vertiport or stays to wait and charge; masks keep every rule), the baselines (random, greedy), two
clairvoyant references that see the whole day before it starts (a genetic algorithm on DEAP, and on
small instances an exact perfect-information bound from a MILP solved by HiGHS), and a learned
policy: graph encoders over the aircraft and the vertiports, a transformer over the demand forecast and
an attention decoder (``graph_policy.py``), trained with the core PPO.
"""

from __future__ import annotations

from decisionlab.core import AlgoSpec, DomainSpec, PolicySpec, SettingSpec, ViewSpec, register_domain
from decisionlab.domains.fleet.metrics import METRICS, episode_metrics
from decisionlab.domains.fleet.policies import GreedyPolicy, RandomLegalPolicy
from decisionlab.domains.fleet.scenario import PRESETS, FleetScenario
from decisionlab.domains.fleet.serve import SERVING
from decisionlab.domains.fleet.sim import FleetSim
from decisionlab.domains.fleet.train import FleetPPOOptions, train_fleet_ppo

VIEWS = "decisionlab.domains.fleet.view"


def _ga(scenario: FleetScenario, device: object):  # noqa: ANN202 - imported on use (DEAP)
    from decisionlab.domains.fleet.ga import GAPolicy, GASettings

    return GAPolicy(FleetSim(scenario, device), GASettings())


def _exact(scenario: FleetScenario, device: object):  # noqa: ANN202 - imported on use (scipy's HiGHS)
    from decisionlab.domains.fleet.exact import ExactPolicy, ExactSettings

    return ExactPolicy(FleetSim(scenario, device), ExactSettings())


def _exact_problem(scenario: FleetScenario) -> str | None:
    from decisionlab.domains.fleet.exact import ExactSettings

    size, most = scenario.n_vertiports * scenario.n_aircraft * scenario.slots, ExactSettings().max_size
    if size <= most:
        return None
    return (f"the exact bound is for small instances such as uam_small: {scenario.n_vertiports} vertiports × "
            f"{scenario.n_aircraft} aircraft × {scenario.slots} slots = {size:,}, over {most:,}")


UAM = SettingSpec(
    name="uam",
    title="Urban air mobility fleet",
    description="eVTOL aircraft across vertiports over a 06:00–18:00 day with a double demand peak; the next "
    "free aircraft flies somewhere or stays to charge, under pad, battery, closure and downtime rules",
    scenario_model=FleetScenario,
    presets=PRESETS,
    make_simulator=lambda scenario, device: FleetSim(scenario, device),
    episode_metrics=episode_metrics,
    metrics=METRICS,
    primary_metric="daily_profit",
    policies={
        "random": PolicySpec("random", "a uniformly random legal choice (the floor)",
                             lambda s, d: RandomLegalPolicy(FleetSim(s, d))),
        "greedy": PolicySpec("greedy", "the legal destination with the highest immediate profit, else stay",
                             lambda s, d: GreedyPolicy(FleetSim(s, d))),
        "ga": PolicySpec("ga", "genetic algorithm (DEAP) planning each day with full knowledge of its demand and "
                         "disruptions: a clairvoyant reference, never served", _ga, admissible=False, expensive=True),
        "exact": PolicySpec("exact", "the plan of the perfect-information MILP (HiGHS), small instances only: a "
                            "clairvoyant reference, never served", _exact, admissible=False, expensive=True,
                            check=_exact_problem),
    },
    algos={"ppo": AlgoSpec("ppo", "PPO on a graph policy (GATv2 encoders over aircraft and vertiports, a "
                           "transformer over the forecast, an attention decoder), warm-started by imitating greedy",
                           train_fleet_ppo, FleetPPOOptions,
                           smoke_options={"total_env_steps": 512, "num_envs": 16, "rollout_steps": 16,
                                          "eval_days": 2, "imitation_steps": 2, "imitation_days": 1})},
    policy_kinds={"fleet_graph": "decisionlab.domains.fleet.graph_policy:FleetGraphPolicy"},
    serving=SERVING,
    views=(
        ViewSpec("Network and flows", f"{VIEWS}:network_tab"),
        ViewSpec("Utilisation and spill", f"{VIEWS}:utilisation_tab"),
        ViewSpec("Charging pads", f"{VIEWS}:charging_tab"),
        ViewSpec("Disruptions", f"{VIEWS}:disruption_tab"),
    ),
    default_policies=("greedy", "random"),
    default_episodes=32,
    quick={"day_end_h": 12.0},  # the dashboard starts from the morning peak (one Run in seconds); 18.0: the day
    smoke={"day_end_h": 6.5},  # half an hour: the exact bound solves a day in a fraction of a second
    input_limits={"n_vertiports": (2, 32), "n_aircraft": (1, 256)},
    episode_label="Days",
)


def _routes():  # noqa: ANN202
    from decisionlab.domains.fleet.routes import build_router

    return build_router()


SPEC = register_domain(
    DomainSpec(
        name="fleet",
        title="Fleet scheduling",
        description="Schedule an eVTOL fleet across vertiports under pad, battery and disruption constraints: "
        "random and greedy dispatch, a clairvoyant genetic algorithm and an exact bound, and a graph-attention "
        "policy trained with PPO.",
        settings=(UAM,),
        default_scenario="uam_8x40",
        default_algo="ppo",
        routes=_routes,
    )
)

__all__ = ["SPEC", "UAM"]
