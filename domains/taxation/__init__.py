"""Taxation: a planner sets income-tax brackets, heterogeneous workers respond, revenue is rebated equally.

Setting ``one_step`` (the one-period economy with exact best responses): the baselines ``free_market``,
``us_federal``, ``saez`` (the closed-form Saez rates of the skill distribution) and ``optimal`` (the exact
best schedule on the rate grid, ``optimal.py``). The simulator has two agent groups, the planner and
the workers (``sim.py``), for two-level training.

Setting ``gather_trade_build`` (the AI Economist's dynamic economy, ``gtb.py``): the same three schedules
(Saez estimated from simulated incomes, ``gtb_saez.py``), each with scripted workers that answer it
(``gtb_workers.py``); the planner is served from an economy's snapshot (``gtb_serve.py``).
"""

from __future__ import annotations

from decisionlab.core import AlgoSpec, DomainSpec, PolicySpec, SettingSpec, ViewSpec, register_domain
from decisionlab.domains.taxation import gtb_metrics, gtb_serve
from decisionlab.domains.taxation.gtb import GatherTradeBuildSim
from decisionlab.domains.taxation.gtb_policies import (
    gtb_free_market,
    gtb_saez,
    gtb_searched,
    gtb_searched_by_period,
    gtb_us_federal,
)
from decisionlab.domains.taxation.gtb_train import GtbTwoLevelOptions, train_gtb_two_level
from decisionlab.domains.taxation.metrics import METRICS, episode_metrics
from decisionlab.domains.taxation.policies import (
    OptimalBaseline,
    free_market,
    optimal_problem,
    saez,
    us_federal,
    us_federal_problem,
)
from decisionlab.domains.taxation.scenario import GTB_PRESETS, PRESETS, GatherTradeBuildScenario, OneStepScenario
from decisionlab.domains.taxation.serve import SERVING
from decisionlab.domains.taxation.sim import OneStepSim
from decisionlab.domains.taxation.train import TwoLevelOptions, train_two_level

VIEWS = "decisionlab.domains.taxation.view"

ONE_STEP = SettingSpec(
    name="one_step",
    title="One-step economy",
    description="N workers with Pareto skills choose their incomes under seven marginal rates; taxes are "
    "rebated equally; the planner's objective is equality × productivity or welfare",
    scenario_model=OneStepScenario,
    presets=PRESETS,
    make_simulator=lambda scenario, device: OneStepSim(scenario, device),
    episode_metrics=episode_metrics,
    metrics=METRICS,
    primary_metric="equality_times_productivity",
    policies={
        "free_market": PolicySpec("free_market", "no tax", free_market),
        "us_federal": PolicySpec("us_federal", "the 2018 US federal rates (10, 12, 22, 24, 32, 35, 37%)", us_federal,
                                 check=us_federal_problem),
        "saez": PolicySpec("saez", "the Saez formula at each cut-off, in closed form for the skill distribution",
                           saez),
        "optimal": PolicySpec("optimal", "the exact best schedule of the scenario's objective on the rate grid",
                              lambda s, d: OptimalBaseline(s, d), check=optimal_problem, expensive=True),
    },
    serving=SERVING,
    algos={"two_level_ppo": AlgoSpec(
        "two_level_ppo", "the AI Economist's two-level RL: workers (shared PPO) learn to earn without tax, then the "
        "planner (PPO on the social objective) and the workers learn together, the planner's largest rate annealed",
        train_two_level, TwoLevelOptions,
        smoke_options={"worker_steps": 64, "planner_steps": 64, "worker_stages": 1, "planner_stages": 1, "cycles": 1,
                       "num_envs": 16, "eval_economies": 4, "restarts": 2, "final_worker_steps": 64})},
    policy_kinds={"taxation_pair": "decisionlab.domains.taxation.train:TaxationPair",
                  "taxation_planner": "decisionlab.domains.taxation.train:TaxationPlanner",
                  "taxation_grid_planner": "decisionlab.domains.taxation.grid_planner:TaxationGridPlanner",
                  "taxation_workers": "decisionlab.domains.taxation.train:TaxationWorkers"},
    views=(
        ViewSpec("Lorenz curves", f"{VIEWS}:lorenz_tab"),
        ViewSpec("Tax schedules", f"{VIEWS}:schedules_tab"),
        ViewSpec("Equality–productivity frontier", f"{VIEWS}:frontier_tab"),
        ViewSpec("Labour response", f"{VIEWS}:labour_tab"),
        ViewSpec("Training (both levels)", "decisionlab.domains.taxation.training_view:training_tab"),
    ),
    default_policies=("free_market", "us_federal", "saez", "optimal"),
    default_episodes=8,
    smoke={"n_agents": 5},
    input_limits={"n_agents": (1, 1000)},
    episode_label="Economies",
)

GATHER_TRADE_BUILD = SettingSpec(
    name="gather_trade_build",
    title="Gather-Trade-Build economy",
    description="The AI Economist's dynamic economy: workers on a map gather wood and stone, trade them and "
    "build houses for coin over 10 tax periods; the planner sets the rates each period",
    scenario_model=GatherTradeBuildScenario,
    presets=GTB_PRESETS,
    make_simulator=lambda scenario, device: GatherTradeBuildSim(scenario, device),
    episode_metrics=gtb_metrics.episode_metrics,
    metrics=gtb_metrics.METRICS,
    primary_metric="equality_times_productivity",
    policies={
        "free_market": PolicySpec("free_market", "no tax; scripted workers that gather and build while a house "
                                  "is worth its labour", gtb_free_market),
        "us_federal": PolicySpec("us_federal", "the 2018 US federal rates on the scaled cut-offs; scripted workers",
                                 gtb_us_federal, check=us_federal_problem),
        "saez": PolicySpec("saez", "the Saez formula, its elasticity, tail and welfare weights estimated from the "
                           "scripted workers' simulated incomes; scripted workers", gtb_saez, expensive=True),
        "searched": PolicySpec("searched", "the best fixed schedule a coordinate search on the 10% rate grid finds "
                               "for the scripted workers, on economies of its own; scripted workers", gtb_searched,
                               expensive=True),
        "searched_by_period": PolicySpec("searched_by_period", "a schedule per tax period, found by the same search "
                                         "from searched's (what a planner that reads only the clock can do); "
                                         "scripted workers", gtb_searched_by_period, expensive=True),
    },
    serving=gtb_serve.SERVING,
    algos={"two_level_ppo": AlgoSpec(
        "two_level_ppo", "the AI Economist's two levels in the dynamic economy: the planner learns per tax period "
        "(PPO on equality × productivity), the workers (shared masked PPO, or the scripted workers) step by step",
        train_gtb_two_level, GtbTwoLevelOptions,
        smoke_options={"imitation_steps": 3, "worker_steps": 40, "worker_stages": 1, "planner_periods": 8,
                       "planner_stages": 1, "cycles": 1, "worker_share": 1.0, "num_envs": 4, "planner_envs": 4,
                       "rollout_steps": 5, "hidden": 16, "eval_economies": 2})},
    policy_kinds={"gtb_pair": "decisionlab.domains.taxation.gtb_train:GtbPair",
                  "gtb_planner": "decisionlab.domains.taxation.gtb_train:GtbPlanner",
                  "gtb_workers": "decisionlab.domains.taxation.gtb_train:GtbWorkers",
                  "gtb_scripted_workers": "decisionlab.domains.taxation.gtb_train:GtbScriptedWorkers"},
    views=(
        ViewSpec("Tax periods", "decisionlab.domains.taxation.gtb_view:periods_tab"),
        ViewSpec("Training (both levels)", "decisionlab.domains.taxation.training_view:training_tab"),
    ),
    default_policies=("free_market", "us_federal", "saez"),
    default_episodes=32,
    eval_chunk=256,
    smoke={"n_agents": 2, "map_size": 9, "observation_range": 2, "episode_steps": 20, "tax_period_steps": 5},
    input_limits={"n_agents": (1, 64), "episode_steps": (10, 5000)},
    episode_label="Economies",
)


def _routes():  # noqa: ANN202 - imported on use
    from decisionlab.domains.taxation.routes import build_router

    return build_router()


SPEC = register_domain(
    DomainSpec(
        name="taxation",
        title="Taxation",
        description="Set income-tax brackets for workers who respond: free market, US federal, the Saez formula "
        "and the exact optimum of the one-step economy, and the AI Economist's Gather-Trade-Build economy.",
        settings=(ONE_STEP, GATHER_TRADE_BUILD),
        default_scenario="one_step",
        default_algo="two_level_ppo",
        routes=_routes,
    )
)

__all__ = ["GATHER_TRADE_BUILD", "ONE_STEP", "SPEC"]
