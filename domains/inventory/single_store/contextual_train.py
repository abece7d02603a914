"""Contextual HDPO: one :class:`~.contextual.ContextualOrderMLP` trained across a distribution of
lead times, costs and demand means, with the core pathwise trainer.

Protocol (one gradient step): ``batch_size`` stores, each with its own context, carried over from
the previous step (a persistent batch: windows start in the current policy's own stationary
distribution). Before each step a share ``refresh_fraction`` of the rows gets a new context drawn
from :class:`~.contextual.ContextRanges` and a spread-out start state; those rows sit out that
step's loss (their window starts off-distribution) and join the next. The loss is the mean over
rows of the row's mean cost over ``periods`` periods divided by :func:`~.contextual.cost_scale`
(a per-context reference cost), so every context weighs about the same, as the per-context
relative-gap acceptance does. Every ``eval_every`` steps (from ``eval_from`` of the schedule) the
policy is scored on fixed held-out paths whose contexts are drawn from the same ranges (never the
evaluation grid), and the best weights are kept. With integer demand the orders are then rounded
with one offset for all contexts, fitted on the same held-out paths.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, Field

from decisionlab.core import (
    PathwiseConfig,
    TrainContext,
    TrainOutcome,
    Widths,
    apply_options,
    options_model,
    rollout,
    torch_threads,
    train_pathwise,
)
from decisionlab.domains.inventory.single_store.contextual import (
    ContextRanges,
    ContextState,
    ContextualOrderMLP,
    ContextualStoreSim,
    cost_scale,
    ranges_covering,
)
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario
from decisionlab.domains.inventory.single_store.train import fit_order_offset

Quality = Literal["fast", "precise"]


class ContextualHDPOSettings(PathwiseConfig):
    """Trainer settings, the context distribution and the path protocol (defaults: ``fast``)."""

    max_steps: int = 1000
    batch_size: int = 1024
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    final_learning_rate_fraction: float = 0.01
    eval_every: int = 100
    eval_from: float = 0.5
    patience: int | None = None

    contexts: ContextRanges = Field(default_factory=ContextRanges, description="training context distribution")
    periods: int = Field(32, ge=1, description="periods per training window")
    refresh_fraction: float = Field(
        0.05, ge=0, le=1, description="share of rows given a new context and start state before each step"
    )
    normalise_cost: bool = Field(True, description="divide each row's cost by its context's reference cost")
    eval_paths: int = Field(2048, ge=1, description="held-out stores (contexts drawn from `contexts`)")
    eval_periods: int = Field(300, ge=2, description="periods per held-out path")
    eval_warmup: int = Field(50, ge=0, description="held-out periods left out of the score")
    hidden: Widths = Field((64, 64, 64), description="hidden widths of the MLP")
    integer_orders: bool | None = Field(None, description="round orders (None: when demand is Poisson)")
    offset_grid: float = Field(0.1, gt=0, description="coarse step of the rounding-offset search")
    offset_refine: int = Field(1, ge=0, description="halvings of the step around the best offset")
    threads: int | None = Field(1, ge=1, description="torch CPU threads while training (None: leave as is)")

    @classmethod
    def preset(cls, quality: Quality = "fast", **overrides: object) -> ContextualHDPOSettings:
        """``fast``: 1000 steps of 1024 stores (~65 s of one CPU core for the whole context range);
        ``precise``: 3000 steps of 2048 stores, twice the held-out paths and a finer offset search
        (~6x the time)."""
        if quality == "fast":
            base: dict[str, object] = {}
        elif quality == "precise":
            base = {"max_steps": 3000, "batch_size": 2048, "eval_paths": 4096, "offset_refine": 2}
        else:
            raise ValueError(f"unknown quality {quality!r}: use 'fast' or 'precise'")
        return cls(**{**base, **overrides})


def train_contextual_hdpo(
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
    settings: ContextualHDPOSettings | None = None,
) -> TrainOutcome:
    """Train one :class:`ContextualOrderMLP` over ``settings.contexts`` (module docstring).

    ``outcome.policy`` is the contextual network; use :func:`~.contextual.policy_for` to act in one
    scenario. Metrics: held-out normalised cost (continuous and final), offset, steps, seconds."""
    settings = settings or ContextualHDPOSettings()
    with torch_threads(settings.threads):
        return _train(seed, torch.device(device), progress, settings)


def _train(seed: int, device: torch.device, progress: bool, settings: ContextualHDPOSettings) -> TrainOutcome:
    ctx = TrainContext(seed, device, progress)
    ctx.seed_init()
    sim = ContextualStoreSim(settings.contexts, device)
    gen_train, gen_eval = ctx.generator("train"), ctx.generator("eval")
    eval_start = sim.spread_start(sim.sample_contexts(settings.eval_paths, gen_eval), gen_eval)
    eval_demand = sim.with_contexts(eval_start.context).sample_exogenous(
        settings.eval_paths, settings.eval_periods, gen_eval)
    batch = settings.batch_size

    def scale(state: ContextState) -> torch.Tensor:
        if settings.normalise_cost:
            return cost_scale(state.context)
        return torch.ones_like(state.on_hand)

    eval_scale = scale(eval_start)
    carried = [sim.spread_start(sim.sample_contexts(batch, gen_train), gen_train)]
    fresh = [torch.zeros(batch, dtype=torch.bool, device=device)]

    def train_paths(step: int) -> torch.Tensor:
        state = carried[0]
        if settings.refresh_fraction > 0:
            mask = torch.rand(batch, generator=gen_train, device=device) < settings.refresh_fraction
            new = sim.spread_start(sim.sample_contexts(batch, gen_train), gen_train)
            state = ContextState(
                torch.where(mask, new.on_hand, state.on_hand),
                torch.where(mask[:, None], new.pipeline, state.pipeline),
                state.context.where(mask, new.context),
            )
            carried[0], fresh[0] = state, mask
        return sim.with_contexts(state.context).sample_exogenous(batch, settings.periods, gen_train)

    def objective(policy: torch.nn.Module, demand: torch.Tensor) -> torch.Tensor:
        start = carried[0]
        traj = rollout(sim, policy, demand, start, grad=True)
        carried[0] = traj.final_state.detach()
        per_row = -traj.rewards.mean(dim=1) / scale(start)
        weight = (~fresh[0]).to(per_row.dtype)
        return (per_row * weight).sum() / weight.sum().clamp_min(1.0)

    def evaluate(policy: torch.nn.Module) -> float:
        traj = rollout(sim, policy, eval_demand, eval_start)
        return float((-traj.rewards[:, settings.eval_warmup :] / eval_scale[:, None]).mean())

    policy = ContextualOrderMLP(settings.contexts, settings.hidden).to(device)
    result = train_pathwise(
        policy, objective, train_paths, evaluate, settings,
        generator=ctx.cpu_generator("batches"),
        progress=progress, description="contextual HDPO",
    )
    policy = result.policy
    metrics: dict[str, float] = {"continuous_eval_score": result.best_score}
    score = result.best_score
    integer = settings.integer_orders
    if integer is None:
        integer = settings.contexts.demand_distribution == "poisson"
    if integer:
        # One offset for all contexts, fitted on the held-out contexts (same helper as per-instance HDPO).
        policy.order_offset, score = fit_order_offset(policy, evaluate, settings)  # type: ignore[arg-type]
        metrics["order_offset"] = policy.order_offset
    metrics.update({"eval_score": score, "train_steps": result.steps, "train_seconds": result.seconds})
    return TrainOutcome(policy=policy, policy_config=policy.config(), metrics=metrics, curve=result.history,
                        algo_config=settings.model_dump(mode="json"))


ContextualHDPOOptions = options_model(
    "ContextualHDPOOptions", ContextualHDPOSettings,
    ("max_steps", "batch_size", "learning_rate", "max_seconds", "hidden"),
    extra={"quality": (Quality, Field("fast", description="'fast' or 'precise' (see ContextualHDPOSettings.preset)"))},
    doc="What a user may set from the CLI (``--algo-set key=value``) or the API for ``hdpo_contextual``.",
)


def algo_hdpo_contextual(scenario: LostSalesScenario, options: BaseModel, ctx: TrainContext) -> TrainOutcome:
    """The ``hdpo_contextual`` algorithm: contexts around the default ranges, widened to include
    ``scenario`` (:func:`~.contextual.ranges_covering`), the preset of the chosen quality, then the
    options that are set."""
    base = ContextualHDPOSettings.preset(options.quality, contexts=ranges_covering(scenario))
    settings = apply_options(base, options, exclude=("quality",))
    return train_contextual_hdpo(ctx.seed, ctx.device, ctx.progress, settings)
