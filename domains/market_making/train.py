"""Training quoting agents: the core PPO and the core pathwise trainer wired to a quoting simulator.

Both produce a :class:`~decisionlab.domains.market_making.learned.QuoteNet` (kind ``quote_mlp``) and
select the weights with the best held-out **certainty equivalent** ``−(1/γ)·ln mean exp(−γ·X)`` of
the episode outcome X (P&L less penalties: the sum of the simulator's rewards) on fixed evaluation
episodes (common random numbers: successive checkpoints are compared on the same paths).

**PPO** (algorithm ``ppo``): :func:`decisionlab.core.algos.ppo.train_ppo` on the batched simulator
(thousands of episodes as one batch), continuous depths from a squashed Gaussian inside the setting's
depth bounds, γ = 1 (a finite horizon whose time left is observed). The reward it learns from is one
of three families (option ``reward``):

- ``pnl``: positional P&L, the change of mark-to-market wealth per step (the simulator's reward) —
  risk-neutral: it maximises the mean and ignores inventory risk;
- ``dampened``: the trade-completion / asymmetrically dampened P&L of the paper's comparison: the
  spread captured by fills plus the inventory P&L, with gains from holding inventory damped,
  ``r = Δwealth − damping·max(0, q'·Δs)`` (losses count in full, speculative gains only in part);
- ``mean_variance``: ``r = Δwealth − (γ/2)·σ²·q'²·dt``: the expected variance the step's inventory
  adds to the P&L, so the return is the mean–variance approximation of the certainty equivalent.

**Pathwise** (algorithm ``pathwise``, model setting): the simulator with straight-through fills
(``surrogate_gradients=True``: realised fills forward, the gradient of the fill probabilities
backward) and the minibatch certainty equivalent as the differentiable objective, optimised by
:func:`decisionlab.core.algos.pathwise.train_pathwise` on fresh paths every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field

from decisionlab.core import (
    NETWORK_FIELDS,
    SINGLE,
    BatchedSimulator,
    Max,
    Min,
    PathwiseConfig,
    Policy,
    PPOConfig,
    Reshaped,
    StepResult,
    TrainContext,
    TrainOutcome,
    Widths,
    apply_options,
    options_model,
    rollout,
    run,
    train_pathwise,
    train_ppo,
)
from decisionlab.domains.market_making.baselines import Symmetric
from decisionlab.domains.market_making.learned import QuoteNet
from decisionlab.domains.market_making.mid_model import return_variance_rate
from decisionlab.domains.market_making.params import QuotingScenario

Reward = Literal["pnl", "dampened", "mean_variance"]
SimFactory = Callable[[QuotingScenario, torch.device, str], BatchedSimulator[Any]]
"""``(scenario, device, purpose) -> simulator``; ``purpose`` is ``"train"``, ``"surrogate"`` (pathwise
training: straight-through fills), ``"select"`` (the episodes a trainer selects its checkpoint on: never
the evaluation's data, so a replay reads its training span) or ``"eval"`` (held-out: a replay reads only
its test span)."""


def certainty_equivalent(outcome: torch.Tensor, risk_aversion: float) -> torch.Tensor:
    """``−(1/γ)·ln mean exp(−γ·X)`` of outcomes ``X [B]`` (stable: log-sum-exp; differentiable)."""
    x = outcome if outcome.requires_grad else outcome.double()  # float64 where no gradient is needed
    return -(torch.logsumexp(-risk_aversion * x, dim=0) - math.log(x.shape[0])) / risk_aversion


def episode_outcomes(sim: BatchedSimulator[Any], policy: Policy, exogenous: torch.Tensor,
                     grad: bool = False) -> torch.Tensor:
    """Sum of rewards per episode ``[B]`` (P&L less penalties) of ``policy`` over ``exogenous [B, N, C]``."""
    return rollout(sim, policy, exogenous, sim.reset(exogenous.shape[0]), grad=grad).rewards.sum(dim=1)


def held_out_score(sim: BatchedSimulator[Any], exogenous: torch.Tensor,
                   risk_aversion: float) -> Callable[[Policy], float]:
    """``policy -> −CE`` on fixed episodes (lower is better, as the core trainers expect)."""
    def score(policy: Policy) -> float:
        return -float(certainty_equivalent(episode_outcomes(sim, policy, exogenous), risk_aversion))

    return score


def held_out_episodes(scenario: QuotingScenario, episodes: int, ctx: TrainContext,
                      make_sim: SimFactory) -> Callable[[Policy], float]:
    """:func:`held_out_score` on ``episodes`` fixed episodes of the ``"select"`` simulator (fresh model
    episodes; on a replay, windows of the training span: checkpoint selection must not read the held-out
    data the evaluation scores), drawn from the context's ``"eval"`` seed stream."""
    eval_sim = make_sim(scenario, ctx.device, "select")
    paths = eval_sim.sample_exogenous(episodes, eval_sim.horizon, ctx.generator("eval"))
    return held_out_score(eval_sim, paths, scenario.risk_aversion)


RANGE_EPISODES = 1024


def record_trained_ranges(quoter: QuoteNet, scenario: QuotingScenario, ctx: TrainContext,
                          make_sim: SimFactory) -> QuoteNet:
    """Set ``quoter.trained_ranges``: the time left of the training horizon, and the inventory it can reach
    (the scenario's bound, else the extremes the trained quoter reaches on held-out episodes), so the
    server refuses states far outside them (``allow_extrapolation`` opts in)."""
    inventory: tuple[float, float]
    if scenario.max_inventory is not None:
        inventory = (-float(scenario.max_inventory), float(scenario.max_inventory))
    else:
        sim = make_sim(scenario, ctx.device, "select")
        reached = run(sim, quoter, batch=RANGE_EPISODES, generator=ctx.generator("ranges"),
                      reducers={"low": Min("inventory"), "high": Max("inventory")}).totals
        inventory = (min(0.0, float(reached["low"].min())), max(0.0, float(reached["high"].max())))
    quoter.trained_ranges = {"inventory": inventory, "time_left": (0.0, float(scenario.horizon))}
    return quoter


def reward_function(reward: Reward, scenario: QuotingScenario, damping: float):  # noqa: ANN201
    """The PPO reward of a family (module docstring), from a step's result: ``result -> [B]`` (None: the
    simulator's own reward)."""
    if reward == "pnl":
        return None
    if reward == "dampened":
        def dampened(result: StepResult[Any]) -> torch.Tensor:
            inventory_gain = result.info["inventory"] * result.info["mid_change"]
            return result.reward - damping * inventory_gain.clamp_min(0.0)

        return dampened
    # the variance each step adds: the mid's total return variance, jumps included (what the CE charges)
    variance_weight = 0.5 * scenario.risk_aversion * return_variance_rate(scenario) * scenario.dt

    def mean_variance(result: StepResult[Any]) -> torch.Tensor:
        return result.reward - variance_weight * result.info["inventory"].square()

    return mean_variance


def learning_sim(sim: BatchedSimulator[Any], reward: Reward, scenario: QuotingScenario, damping: float) -> Any:
    """``sim`` as PPO learns from it: its reward replaced by the family's (:class:`Reshaped`)."""
    shaping = reward_function(reward, scenario, damping)
    return sim if shaping is None else Reshaped(sim, shaping)


# --- PPO ------------------------------------------------------------------------------------


class QuotingPPOSettings(PPOConfig):
    """The core PPO's settings with this domain's defaults, the reward family and the evaluation size."""

    # Measured on the glft_bounded preset (docs/benchmarks.md): 2,048 episodes of 50-step rollouts
    # reach 0.4% of GLFT's certainty equivalent in 20M steps; shorter rollouts with less exploration
    # noise learn faster on short horizons but stall early (exploration collapses) on the full one.
    num_envs: int = Field(2048, ge=1, le=1_000_000, description="episodes stepped together as one batch")
    rollout_steps: int = Field(50, ge=1, le=100_000, description="steps per episode per update")
    total_env_steps: int = Field(20_000_000, ge=1, le=10_000_000_000, description="environment steps in all")
    gamma: float = Field(1.0, ge=0, le=1, description="discount (1: the finite horizon is observed)")
    learning_rate: float = Field(3e-3, gt=0, le=1, description="Adam learning rate (annealed)")
    init_log_std: float = Field(-1.0, ge=-10, le=2, description="initial log-std of the pre-squash Gaussian")
    eval_every: int = Field(1_000_000, ge=1, description="env steps between held-out evaluations")
    reward: Reward = Field("mean_variance", description="reward family: pnl, dampened or mean_variance")
    damping: float = Field(0.5, ge=0, le=1, description="η of the dampened reward: share of inventory gains removed")
    eval_paths: int = Field(8192, ge=2, le=1_000_000, description="held-out episodes of the certainty equivalent")
    reward_scale: float | None = Field(
        None, gt=0, description="rewards × this for learning; None: 1/(spread the symmetric baseline earns per "
        "episode), so returns are O(1) and the value loss does not swamp the policy gradient under one norm clip")


PPOOptions = options_model(
    "QuotingPPOOptions", QuotingPPOSettings,
    ("reward", "damping", "total_env_steps", "num_envs", "rollout_steps", "learning_rate", "update_epochs",
     "gae_lambda", "minibatches", "ent_coef", "init_log_std", "value_head", "hidden", "eval_paths", "eval_every",
     "target", "reward_scale"),
    doc="What a user may set for ``ppo`` (CLI ``--algo-set key=value``); unset keys keep the defaults.",
)


SCALE_EPISODES = 256


def reward_scale_of(sim: BatchedSimulator[Any], scenario: QuotingScenario, generator: torch.Generator) -> float:
    """1 / the mean spread income per episode of the symmetric baseline (at least its P&L's std)."""
    exogenous = sim.sample_exogenous(SCALE_EPISODES, sim.horizon, generator)
    outcome = episode_outcomes(sim, Symmetric(scenario), exogenous).double()
    size = max(float(outcome.mean().abs()), float(outcome.std()), 1e-6)
    return 1.0 / size


def train_ppo_quoter(scenario: QuotingScenario, settings: QuotingPPOSettings, ctx: TrainContext,
                     make_sim: SimFactory) -> TrainOutcome:
    """PPO on ``make_sim(scenario, device, "train")``, selected on ``make_sim(..., "select")``."""
    ctx.seed_init()
    device = ctx.device
    sim = make_sim(scenario, device, "train")
    score = held_out_episodes(scenario, settings.eval_paths, ctx, make_sim)
    quoter = QuoteNet.initial(scenario, device, settings.hidden, settings.activation, name="ppo")
    # the network reads the observation in the QuoteNet's units (its scales) and squashes into its bounds
    net = settings.build_network(sim.spaces.groups()[SINGLE], obs_scale=quoter.scales_list,
                                 action_low=quoter.depth_low, action_high=quoter.depth_high)
    scale = settings.reward_scale or reward_scale_of(sim, scenario, ctx.generator("scale"))
    # the network is built here (its widths and bounds match the QuoteNet): pass only the trainer's fields
    ppo_config = PPOConfig(**{**settings.model_dump(include=set(PPOConfig.model_fields) - NETWORK_FIELDS),
                              "reward_scale": scale})
    result = train_ppo(
        learning_sim(sim, settings.reward, scenario, settings.damping), net, ppo_config,
        evaluate=lambda policy: score(quoter.copy_actor(policy.net)),
        generator=ctx.generator("train"), progress=ctx.progress, description=f"PPO ({settings.reward})",
    )
    quoter.copy_actor(result.policy.net).eval()  # the best held-out weights: their score is best_score
    record_trained_ranges(quoter, scenario, ctx, make_sim)
    return TrainOutcome(
        policy=quoter, policy_config=quoter.config(),
        metrics={"certainty_equivalent": -result.best_score, "env_steps": float(result.env_steps),
                 "updates": float(result.updates), "train_seconds": result.seconds},
        curve=result.history,
        algo_config={"algo": "ppo", **settings.model_dump(mode="json")},
    )


def algo_ppo(make_sim: SimFactory):  # noqa: ANN201
    """The ``ppo`` algorithm of a setting whose simulators ``make_sim`` builds."""
    def train(scenario: QuotingScenario, options: BaseModel, ctx: TrainContext) -> TrainOutcome:
        return train_ppo_quoter(scenario, apply_options(QuotingPPOSettings(), options), ctx, make_sim)

    return train


# --- pathwise -------------------------------------------------------------------------------


class QuotingPathwiseSettings(PathwiseConfig):
    """The core pathwise trainer's settings for quoting, with the evaluation size and network widths."""

    max_steps: int = Field(300, ge=1, le=1_000_000, description="gradient steps at most")
    batch_size: int = Field(512, ge=2, le=1_000_000, description="episodes per gradient step (fresh each step)")
    learning_rate: float = Field(3e-3, gt=0, le=1)
    eval_every: int = Field(25, ge=1, description="steps between held-out evaluations")
    patience: int | None = Field(4, ge=1, description="evaluations without improvement before stopping")
    eval_paths: int = Field(8192, ge=2, le=1_000_000, description="held-out episodes of the certainty equivalent")
    hidden: Widths = Field((64, 64), description="hidden widths of the quoting MLP")


PathwiseOptions = options_model(
    "QuotingPathwiseOptions", QuotingPathwiseSettings,
    ("max_steps", "batch_size", "learning_rate", "eval_paths", "eval_every", "patience", "hidden", "target"),
    doc="What a user may set for ``pathwise`` (CLI ``--algo-set key=value``); unset keys keep the defaults.",
)


def train_pathwise_quoter(scenario: QuotingScenario, settings: QuotingPathwiseSettings, ctx: TrainContext,
                          make_sim: SimFactory) -> TrainOutcome:
    """Minibatch −CE through straight-through fills, selected on held-out episodes."""
    ctx.seed_init()
    device = ctx.device
    sim = make_sim(scenario, device, "surrogate")
    score = held_out_episodes(scenario, settings.eval_paths, ctx, make_sim)
    quoter = QuoteNet.initial(scenario, device, settings.hidden, name="pathwise")
    gamma = scenario.risk_aversion
    train_generator = ctx.generator("train")

    def objective(policy: torch.nn.Module, paths: torch.Tensor) -> torch.Tensor:
        outcome = episode_outcomes(sim, policy, paths, grad=True)
        return -certainty_equivalent(outcome, gamma)

    def fresh_paths(step: int) -> torch.Tensor:
        return sim.sample_exogenous(settings.batch_size, sim.horizon, train_generator)

    config = PathwiseConfig(**settings.model_dump(include=set(PathwiseConfig.model_fields)))
    result = train_pathwise(quoter, objective, fresh_paths, score, config, progress=ctx.progress,
                            description="pathwise quoting")
    quoter.eval()
    record_trained_ranges(quoter, scenario, ctx, make_sim)
    return TrainOutcome(
        policy=quoter, policy_config=quoter.config(),
        metrics={"certainty_equivalent": -result.best_score, "steps": float(result.steps),
                 "train_seconds": result.seconds},
        curve=result.history,
        algo_config={"algo": "pathwise", **settings.model_dump(mode="json")},
    )


def algo_pathwise(make_sim: SimFactory):  # noqa: ANN201
    """The ``pathwise`` algorithm of a setting with a differentiable simulator."""
    def train(scenario: QuotingScenario, options: BaseModel, ctx: TrainContext) -> TrainOutcome:
        return train_pathwise_quoter(scenario, apply_options(QuotingPathwiseSettings(), options), ctx, make_sim)

    return train
