"""HDPO for the single store: the core's pathwise trainer wired to the inventory simulator.

Protocol (one gradient step): ``batch_size`` stores, each carried over from the previous step
(a persistent batch, so every window starts from the current policy's own stationary
distribution rather than from made-up start states), run ``periods`` periods on fresh demand;
the loss is the mean cost of the periods after ``warmup`` (0 by default: the carried-over
states need no warm-up). Every ``eval_every`` steps the continuous policy is scored on fixed
held-out paths (common random numbers), and the best weights are kept.

With integer demand (Poisson) the trained policy places integer orders: the continuous output is
rounded, and the rounding offset is fitted on the held-out paths afterwards (see
:class:`~decisionlab.domains.inventory.single_store.policies.OrderMLP`).

Time against quality: ``HDPOSettings.preset("fast")`` (the default; within ~1% of the optimum,
typically ~0.1-0.3%, in well under a minute on one CPU thread) or ``HDPOSettings.preset("precise")`` (more and larger
steps, more held-out paths and a finer offset search: aims at ~0.1% within five minutes).
"""

from __future__ import annotations

from collections.abc import Callable
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
from decisionlab.domains.inventory.single_store.policies import OrderMLP
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario
from decisionlab.domains.inventory.single_store.sim import SingleStoreSim, StoreState

Quality = Literal["fast", "precise"]


def _start_states(sim: SingleStoreSim, batch: int, scenario: LostSalesScenario, gen: torch.Generator) -> StoreState:
    """Spread-out start states (on hand and each pipeline slot ~ U[0, 2μ]); warm-up or the
    persistent batch washes them out."""
    scale = 2.0 * scenario.demand_mean
    on_hand = torch.rand(batch, generator=gen, device=sim.device) * scale
    pipeline = torch.rand(batch, scenario.lead_time, generator=gen, device=sim.device) * scale
    return StoreState(on_hand, pipeline)


class HDPOSettings(PathwiseConfig):
    """Trainer settings plus the path protocol. The defaults are the "fast" preset."""

    max_steps: int = 400
    batch_size: int = 512
    learning_rate: float = 1e-2
    warmup_steps: int = 20
    final_learning_rate_fraction: float = 0.01
    eval_every: int = 100
    eval_from: float = 0.5
    patience: int | None = None

    persistent: bool = Field(True, description="carry stores over between steps (else fixed paths, random starts)")
    train_paths: int = Field(8192, description="size of the fixed training set when not persistent")
    periods: int = Field(32, ge=1, description="periods per training window")
    warmup: int = Field(0, ge=0, description="first periods of a window left out of the loss")
    eval_paths: int = 1024
    eval_periods: int = 300
    eval_warmup: int = 50
    hidden: Widths = (32, 32, 32)
    integer_orders: bool | None = Field(None, description="round orders (None: when demand is integer)")
    offset_grid: float = Field(0.1, gt=0, description="coarse step of the rounding-offset search")
    offset_refine: int = Field(1, ge=0, description="halvings of the step around the best offset")
    threads: int | None = Field(1, ge=1, description="torch CPU threads while training (None: leave as is)")

    @classmethod
    def preset(cls, quality: Quality = "fast", **overrides: object) -> HDPOSettings:
        """``fast``: 400 steps of 512 stores (~15 s of one CPU core);
        ``precise``: 2000 steps of 1024 stores, ~5x the held-out paths, finer offset search
        (~2 min of one CPU core)."""
        if quality == "fast":
            base: dict[str, object] = {}
        elif quality == "precise":
            base = {"max_steps": 2000, "batch_size": 1024, "eval_every": 100, "eval_paths": 4096,
                    "eval_periods": 400, "offset_refine": 2}
        else:
            raise ValueError(f"unknown quality {quality!r}: use 'fast' or 'precise'")
        return cls(**{**base, **overrides})


HDPOOptions = options_model(
    "HDPOOptions", HDPOSettings, ("max_steps", "batch_size", "learning_rate", "max_seconds", "hidden"),
    extra={"quality": (Quality, Field("fast", description="'fast' (< 1 min, ~0.1% gap) or 'precise' (~2 min)"))},
    doc="What a user may set from the CLI (``--algo-set key=value``) or the API: a quality preset and the few "
    "knobs that trade time for quality.",
)


def algo_hdpo(scenario: LostSalesScenario, options: BaseModel, ctx: TrainContext) -> TrainOutcome:
    """The single-store ``hdpo`` algorithm: the preset of the chosen quality, then the options that are set."""
    settings = apply_options(HDPOSettings.preset(options.quality), options, exclude=("quality",))
    return train_hdpo(scenario, ctx.seed, ctx.device, ctx.progress, settings=settings)


def train_hdpo(
    scenario: LostSalesScenario,
    seed: int,
    device: torch.device,
    progress: bool = True,
    settings: HDPOSettings | None = None,
    quality: Quality = "fast",
) -> TrainOutcome:
    """Train an :class:`OrderMLP` by differentiating the mean cost through the simulator.

    ``settings`` wins over ``quality`` (a preset name, see :meth:`HDPOSettings.preset`).
    """
    settings = settings or HDPOSettings.preset(quality)
    with torch_threads(settings.threads):
        return _train(scenario, seed, torch.device(device), progress, settings)


def _train(
    scenario: LostSalesScenario, seed: int, device: torch.device, progress: bool, settings: HDPOSettings
) -> TrainOutcome:
    ctx = TrainContext(seed, device, progress)
    ctx.seed_init()
    sim = SingleStoreSim(scenario, device)
    gen_train, gen_eval = ctx.generator("train"), ctx.generator("eval")
    eval_demand = sim.sample_exogenous(settings.eval_paths, settings.eval_periods, gen_eval)
    eval_start = _start_states(sim, settings.eval_paths, scenario, gen_eval)
    width = 1 + scenario.lead_time
    integer = settings.integer_orders
    if integer is None:
        integer = scenario.demand_distribution == "poisson"

    if settings.persistent:
        carried = [_start_states(sim, settings.batch_size, scenario, gen_train)]

        def train_paths(step: int) -> torch.Tensor:
            return sim.sample_exogenous(settings.batch_size, settings.periods, gen_train)

        def objective(policy: torch.nn.Module, demand: torch.Tensor) -> torch.Tensor:
            traj = rollout(sim, policy, demand, carried[0], grad=True)
            carried[0] = traj.final_state.detach()
            return -traj.rewards[:, settings.warmup :].mean()
    else:
        train_demand = sim.sample_exogenous(settings.train_paths, settings.periods, gen_train)
        train_start = _start_states(sim, settings.train_paths, scenario, gen_train)
        # Each path carries its start state: stack it with the demand so minibatches stay aligned.
        train_paths = torch.cat([train_start.on_hand[:, None], train_start.pipeline, train_demand], dim=1)

        def objective(policy: torch.nn.Module, paths: torch.Tensor) -> torch.Tensor:
            start = StoreState(paths[:, 0], paths[:, 1:width])
            traj = rollout(sim, policy, paths[:, width:], start, grad=True)
            return -traj.rewards[:, settings.warmup :].mean()

    def evaluate(policy: torch.nn.Module) -> float:
        traj = rollout(sim, policy, eval_demand, eval_start)
        return float(-traj.rewards[:, settings.eval_warmup :].mean())

    # Train the continuous policy (act = forward); rounding is switched on afterwards.
    policy = OrderMLP(scenario.lead_time, scenario.demand_mean, settings.hidden).to(device)
    result = train_pathwise(
        policy, objective, train_paths, evaluate, settings,
        generator=ctx.cpu_generator("batches"),
        progress=progress, description=f"HDPO L={scenario.lead_time} p={scenario.underage_cost:g}",
    )
    policy = result.policy
    metrics: dict[str, float] = {"continuous_cost_per_period": result.best_score}
    score = result.best_score
    if integer:
        policy.order_offset, score = fit_order_offset(policy, evaluate, settings)
        metrics["order_offset"] = policy.order_offset
    metrics.update({"cost_per_period": score, "train_steps": result.steps,
                    "train_seconds": result.seconds})
    return TrainOutcome(
        policy=policy,
        policy_config=policy.config(),
        metrics=metrics,
        curve=result.history,
        algo_config=settings.model_dump(),
    )


def fit_order_offset(
    policy: OrderMLP, evaluate: Callable[[torch.nn.Module], float], settings: HDPOSettings
) -> tuple[float, float]:
    """Switch on integer orders and pick the rounding offset in (−½, ½) with the lowest held-out
    cost: a coarse grid, then ``offset_refine`` halvings of the step around the best point."""
    policy.integer_orders = True
    scores: dict[float, float] = {}

    def score(offset: float) -> float:
        offset = round(offset, 6)
        if offset not in scores:
            policy.order_offset = offset
            scores[offset] = evaluate(policy)
        return scores[offset]

    step = settings.offset_grid
    count = int(0.5 / step - 1e-9)
    best = min((k * step for k in range(-count, count + 1)), key=lambda o: (score(o), abs(o)))
    for _ in range(settings.offset_refine):
        step /= 2
        candidates = [o for o in (best - step, best, best + step) if -0.5 < o < 0.5]
        best = min(candidates, key=lambda o: (score(o), abs(o)))
    best = round(best, 6)
    policy.order_offset = best
    return best, scores[best]
