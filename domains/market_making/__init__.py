"""Market making: quote a bid and an ask around the mid under inventory risk.

Two settings share one observation (time left, inventory, mid offset, last return, order-flow
imbalance, market spread), one action (bid and ask depths), one request state, the closed-form
baselines, the learned-policy kind and the metrics:

- ``model`` (``model/``): the stylised market of Avellaneda & Stoikov (2008) on the batched torch
  simulator, with the mis-specifications the closed forms ignore (drift, mean reversion, jumps);
  an exact recursion over the inventory distribution is the noise-free oracle of (t, q) policies;
- ``lob_replay`` (``replay/``): the quotes are filled by queue position against a replay of
  order-book snapshots and trades (LOBSTER or tardis CSV; a synthetic sample ships).

Baselines: Avellaneda–Stoikov, the symmetric strategy, GLFT exact (matrix exponential with the
inventory bound) and its closed-form approximation. Algorithms: the core PPO with three reward
families (``train.py``) and, on the model, pathwise gradients through straight-through fills.
"""

from __future__ import annotations

from decisionlab.core import AlgoSpec, DomainSpec, PolicySpec, SettingSpec, ViewSpec, register_domain
from decisionlab.domains.market_making.baselines import (
    AvellanedaStoikov,
    AvellanedaStoikovInformed,
    GLFTApprox,
    GLFTApproxDrift,
    GLFTDrift,
    GLFTExact,
    Symmetric,
    glft_exact_problem,
    glft_problem,
)
from decisionlab.domains.market_making.metrics import METRICS, episode_metrics, finalize_metrics
from decisionlab.domains.market_making.model.dp import DPOptimal, dp_problem
from decisionlab.domains.market_making.model.scenario import PRESETS as MODEL_PRESETS
from decisionlab.domains.market_making.model.scenario import ModelScenario
from decisionlab.domains.market_making.model.sim import ModelSim
from decisionlab.domains.market_making.replay.scenario import PRESETS as REPLAY_PRESETS
from decisionlab.domains.market_making.replay.scenario import ReplayScenario
from decisionlab.domains.market_making.replay.sim import ReplaySim
from decisionlab.domains.market_making.serve import SERVING
from decisionlab.domains.market_making.train import PathwiseOptions, PPOOptions, algo_pathwise, algo_ppo

VIEWS = "decisionlab.domains.market_making.view"
POLICY_KINDS = {"quote_mlp": "decisionlab.domains.market_making.learned:QuoteNet"}
PPO_SMOKE = {"total_env_steps": 2048, "num_envs": 32, "rollout_steps": 32, "eval_paths": 64, "eval_every": 1024}
PPO_DESCRIPTION = ("core PPO (squashed Gaussian depths, GAE, clipped ratio) with a reward family: pnl (positional "
                   "P&L), dampened (asymmetrically dampened P&L) or mean_variance (the default)")


def _glft_drift_problem(scenario) -> str | None:  # noqa: ANN001
    return glft_exact_problem(scenario, True)


def closed_form_policies() -> dict[str, PolicySpec]:
    """The closed forms both settings share (they read only time left and inventory), each calibrated on the
    scenario's total return volatility."""
    return {
        "avellaneda_stoikov": PolicySpec(
            "avellaneda_stoikov", "Avellaneda–Stoikov: quotes around the reservation price s − qγσ²(T−t)",
            lambda s, d: AvellanedaStoikov(s)),
        "symmetric": PolicySpec(
            "symmetric", "the Avellaneda–Stoikov spread centred on the mid (no inventory skew)",
            lambda s, d: Symmetric(s)),
        "glft": PolicySpec(
            "glft", "Guéant–Lehalle–Fernandez-Tapia exact quotes (matrix exponential; needs max_inventory)",
            lambda s, d: GLFTExact(s), check=glft_exact_problem),
        "glft_approx": PolicySpec(
            "glft_approx", "GLFT closed-form approximation (needs max_inventory)",
            lambda s, d: GLFTApprox(s), check=glft_problem),
    }


def model_policies() -> dict[str, PolicySpec]:
    """The model market's baselines: the shared closed forms, the informed ones that also read the drift and
    the mean reversion the scenario states (the replay has neither), and ``dp_optimal``, the exact optimum."""
    return {
        **closed_form_policies(),
        "avellaneda_stoikov_informed": PolicySpec(
            "avellaneda_stoikov_informed", "Avellaneda–Stoikov around the expected mid at the horizon (drift, "
            "mean reversion) less q·γ·Var: the informed reservation price",
            lambda s, d: AvellanedaStoikovInformed(s)),
        "glft_drift": PolicySpec(
            "glft_drift", "GLFT exact with the mid's drift μ in its matrix (needs max_inventory)",
            lambda s, d: GLFTDrift(s), check=_glft_drift_problem),
        "glft_approx_drift": PolicySpec(
            "glft_approx_drift", "GLFT approximation with the local expected drift μ − κ(s − s0) (needs "
            "max_inventory)", lambda s, d: GLFTApproxDrift(s), check=glft_problem),
        "dp_optimal": PolicySpec(
            "dp_optimal", "the exact optimum of the model market: backward dynamic programme over (step, "
            "inventory) for the certainty equivalent (no mean reversion)",
            lambda s, d: DPOptimal(s), check=dp_problem, expensive=True),
    }


def _model_sim(scenario: ModelScenario, device, purpose: str = "eval") -> ModelSim:  # noqa: ANN001
    return ModelSim(scenario, device, surrogate_gradients=purpose == "surrogate")


def _replay_sim(scenario: ReplayScenario, device, purpose: str = "eval") -> ReplaySim:  # noqa: ANN001
    """Training and checkpoint selection read the first ``train_fraction`` of the data; evaluation, the
    views and the gymnasium adapter the held-out rest."""
    return ReplaySim(scenario, device, "train" if purpose in ("train", "select") else "test")


def _replay_metrics(scenario, policy, episodes, seed, device="cpu", start=0):  # noqa: ANN001, ANN202
    """Episodes ``start .. start + episodes`` are the disjoint held-out windows of those numbers, whatever the
    seed and the chunking: every policy and chunk sees the same windows and no two overlap."""
    def tiled(s: ReplayScenario, d) -> ReplaySim:  # noqa: ANN001
        return ReplaySim(s, d, "test", first_window=start)

    return episode_metrics(scenario, policy, episodes, seed, device, start, make_sim=tiled)


def _replay_max_episodes(scenario: ReplayScenario) -> int:
    """An evaluation scores at most the disjoint windows of the held-out part."""
    from decisionlab.domains.market_making.replay.scenario import held_out_windows

    return held_out_windows(scenario)


VIEW_SPECS = (
    ViewSpec("P&L and inventory paths", f"{VIEWS}:paths_tab"),
    ViewSpec("Quote depths vs inventory", f"{VIEWS}:depths_tab"),
    ViewSpec("Reward functions", f"{VIEWS}:rewards_tab"),
)

MODEL = SettingSpec(
    name="model",
    title="Model market (Avellaneda–Stoikov)",
    description="arithmetic Brownian mid (optional drift, mean reversion, jumps), Poisson fills A·exp(−k·δ), "
    "optional inventory bound, fees and penalties",
    scenario_model=ModelScenario,
    presets=MODEL_PRESETS,
    make_simulator=lambda scenario, device: ModelSim(scenario, device),
    episode_metrics=episode_metrics,
    finalize_metrics=finalize_metrics,
    metrics=METRICS,
    primary_metric="certainty_equivalent",
    policies=model_policies(),
    algos={
        "ppo": AlgoSpec("ppo", PPO_DESCRIPTION, algo_ppo(_model_sim), PPOOptions, smoke_options=PPO_SMOKE),
        "pathwise": AlgoSpec(
            "pathwise", "pathwise gradients of the certainty equivalent through straight-through fills (expected "
            "fills backward, realised fills forward), MLP quoting policy",
            algo_pathwise(_model_sim), PathwiseOptions,
            smoke_options={"max_steps": 2, "batch_size": 16, "eval_paths": 64}),
    },
    policy_kinds=POLICY_KINDS,
    serving=SERVING,
    views=VIEW_SPECS,
    default_policies=("avellaneda_stoikov", "symmetric"),
    default_episodes=4000,
    smoke={"horizon": 0.05},
    eval_chunk=1 << 16,
)


REPLAY = SettingSpec(
    name="lob_replay",
    title="Order-book replay",
    description="quotes filled by queue position against replayed L2 snapshots and trades (tardis or LOBSTER "
    "CSV; a synthetic sample ships), latency, fees; trained on the first part of the data, scored on disjoint "
    "windows of the rest",
    scenario_model=ReplayScenario,
    presets=REPLAY_PRESETS,
    make_simulator=lambda scenario, device: _replay_sim(scenario, device),
    episode_metrics=_replay_metrics,
    finalize_metrics=finalize_metrics,
    metrics=METRICS,
    primary_metric="certainty_equivalent",
    policies=closed_form_policies(),
    algos={"ppo": AlgoSpec("ppo", PPO_DESCRIPTION, algo_ppo(_replay_sim), PPOOptions,
                           smoke_options={**PPO_SMOKE, "num_envs": 16, "rollout_steps": 8, "total_env_steps": 256})},
    policy_kinds=POLICY_KINDS,
    serving=SERVING,
    views=(*VIEW_SPECS, ViewSpec("Order book replay", f"{VIEWS}:replay_tab")),
    default_policies=("avellaneda_stoikov", "symmetric", "glft"),
    default_episodes=512,  # capped at max_episodes: every held-out window of the shipped presets (7, 58)
    max_episodes=_replay_max_episodes,
    episode_label="Held-out windows",
    smoke={"horizon": 20.0},
    eval_chunk=1 << 12,
)


def _routes():  # noqa: ANN202
    from decisionlab.domains.market_making.routes import build_router

    return build_router()


SPEC = register_domain(
    DomainSpec(
        name="market_making",
        title="Market making",
        description="Quote a bid and an ask under inventory risk: closed forms (Avellaneda–Stoikov, GLFT) against "
        "PPO and pathwise-trained policies, on a model market and an order-book replay.",
        settings=(MODEL, REPLAY),
        default_scenario="avellaneda_stoikov",
        default_algo="pathwise",
        routes=_routes,
    )
)

__all__ = ["MODEL", "REPLAY", "SPEC"]
