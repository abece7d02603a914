"""Recommendation: slates for users' requests, and the lifelong value of user–author pairs.

One setting, ``short_video``: users arrive in sessions, the platform ranks ``slate_size`` of ``n_candidates``
retrieved items per request, and users respond through the funnel click → follow → gift (``sim.py``). The
baselines ``random``, ``popularity`` and ``ctr_greedy`` (a click model fitted to a random-exposure log); the
algorithm ``rliv`` (``rliv.py``, ``train.py``); logs in the KuaiRand layout (``logs.py``) and the calibration of
the simulator to them (``calibration.py``); off-policy evaluation of logged slates with the core's estimators.
"""

from __future__ import annotations

from decisionlab.core import AlgoSpec, DomainSpec, PolicySpec, SettingSpec, ViewSpec, register_domain
from decisionlab.domains.recommendation.metrics import METRICS, episode_metrics, finalize_metrics
from decisionlab.domains.recommendation.ope import off_policy_log
from decisionlab.domains.recommendation.policies import ctr_greedy, popularity, random_policy
from decisionlab.domains.recommendation.scenario import PRESETS, RecommendationScenario
from decisionlab.domains.recommendation.serve import SERVING
from decisionlab.domains.recommendation.sim import RecommendationSim
from decisionlab.domains.recommendation.train import RlivOptions, train_rliv

SHORT_VIDEO = SettingSpec(
    name="short_video",
    title="Short-video platform",
    description="users in sessions, slates of candidate items, the funnel click → follow → gift, clickbait, "
    "satisfaction and churn",
    scenario_model=RecommendationScenario,
    presets=PRESETS,
    make_simulator=lambda scenario, device: RecommendationSim(scenario, device),
    episode_metrics=episode_metrics,
    finalize_metrics=finalize_metrics,
    metrics=METRICS,
    primary_metric="revenue",
    policies={
        "random": PolicySpec("random", "a uniformly random slate of the candidates", random_policy),
        "popularity": PolicySpec("popularity", "the candidates the platform has seen engage most", popularity),
        "ctr_greedy": PolicySpec("ctr_greedy", "the highest predicted click probability: a conditional-logit click "
                                 "model fitted to a random-exposure log", ctr_greedy, expensive=True),
    },
    serving=SERVING,
    off_policy=off_policy_log,
    algos={"rliv": AlgoSpec(
        "rliv", "the lifelong value of a recommendation: a multi-task critic (click, follow and gift heads on a "
        "shared trunk, an auxiliary click/follow/gift model) trained on the random-exposure log and refined online; "
        "ranks by click utility + value_weight × the gift head, the weight chosen on validation users",
        train_rliv, RlivOptions,
        smoke_options={"epochs": 1, "online_rounds": 1, "online_epochs": 1, "online_users": 16, "log_users": 32,
                       "validation_users": 16, "value_weights": [0.0, 1.0], "hidden": [8]})},
    policy_kinds={"recommendation_rliv": "decisionlab.domains.recommendation.rliv:FunnelCritic"},
    views=(
        ViewSpec("Funnel over time", "decisionlab.domains.recommendation.view:funnel_tab"),
        ViewSpec("A/B test", "decisionlab.domains.recommendation.view:ab_tab"),
        ViewSpec("Off-policy estimates", "decisionlab.domains.recommendation.view:off_policy_tab"),
        ViewSpec("Author exposure", "decisionlab.domains.recommendation.view:exposure_tab"),
    ),
    default_policies=("random", "popularity", "ctr_greedy"),
    default_episodes=256,
    eval_chunk=2048,
    quick={"days": 7},
    smoke={"days": 2, "n_users": 1000, "n_authors": 50, "n_items": 5000, "n_candidates": 12, "slate_size": 3},
    input_limits={"days": (1, 60), "n_candidates": (1, 500)},
    episode_label="Users",
)


def _routes():  # noqa: ANN202 - imported on use
    from decisionlab.domains.recommendation.routes import build_router

    return build_router()


SPEC = register_domain(
    DomainSpec(
        name="recommendation",
        title="Recommendation",
        description="Rank slates for users' requests: random, popularity, a click-greedy ranker and the learned "
        "lifelong value (rliv) on a simulated platform whose users click, follow and gift, with off-policy "
        "evaluation of logged slates.",
        settings=(SHORT_VIDEO,),
        # the small platform: `make run` trains the default policy on it in about two minutes (short_video's
        # 50 candidates and two weeks take ten times as long) and the dashboard's Run answers in seconds
        default_scenario="small",
        default_algo="rliv",
        routes=_routes,
    )
)

__all__ = ["SHORT_VIDEO", "SPEC"]
