"""Two-level PPO (``two_level_ppo``): the workers and the planner of the one-step economy learn together.

Both groups are actor-critics trained by the core PPO in one run of the two-group simulator
(``sim.py``); the workers share one network (their skill is in their observation). The curriculum is
the AI Economist's, which the paper needed for stability:

1. **Workers alone, no tax.** The planner's rates are held at 0 while the workers learn to earn, with
   their labour cost annealed from ``labour_start`` to its true value over ``worker_stages`` stages.
2. **Planner and workers together.** The planner's largest rate ``max_rate`` (a mask on the grid, a
   scale of the Gaussian's rates) is annealed to 1 over ``planner_stages`` stages, from ``max_rate_start``
   in the first restart and from higher caps in the others (``vary_max_rate_start``: one annealing path
   can lead every restart into the same basin of the schedule), and its entropy bonus annealed
   from ``entropy_start`` to 0. Each stage alternates on two time scales: the planner learns for a few
   updates (γ = 1: its reward comes one decision after its action), then the workers catch up with its
   rates (γ = 0: a response is a bandit). A last catch-up of the workers ends the training.

The planner picks each bracket's rate on the scenario's rate grid (``planner="grid"``, the paper's: one
masked ``Discrete`` agent per bracket, :mod:`grid_planner`) or sets rates through a squashed Gaussian
(``"gaussian"``). The planner exploits any error in the workers' responses, so four settings keep them near
their best responses: a floor on their log-std (PPO's updates turn unstable when it collapses), their
spread raised again before each catch-up, a search step before and after each catch-up (every worker
tries incomes across its range and its response is fitted to the best: :mod:`worker_search`; a
non-concave utility holds a Gaussian at a local optimum, and the planner learns to tax exactly there),
and a last catch-up learnt from the no-tax workers, long enough to converge, on which the restarts are
compared.

Rewards are scaled per group to about 1 (the planner's objective by its free-market value, a worker's
utility, without the rebate, by its mean no-tax income). The outcome is one registered pair,
``planner`` + ``workers``, each servable on its own.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar, Literal

import polars as pl
import torch
from pydantic import BaseModel, Field

from decisionlab.core import (
    JointPolicy,
    MergedPolicy,
    PPOConfig,
    Reshaped,
    StepResult,
    Sum,
    TrainContext,
    TrainOutcome,
    run,
    train_ppo,
)
from decisionlab.domains.taxation.economy import Economy
from decisionlab.domains.taxation.grid_planner import GridPlannerSim, TaxationGridPlanner
from decisionlab.domains.taxation.members import GroupMember
from decisionlab.domains.taxation.scenario import OneStepScenario
from decisionlab.domains.taxation.sim import PLANNER, WORKERS, OneStepSim
from decisionlab.domains.taxation.worker_search import improve_workers


class TwoLevelOptions(BaseModel):
    """What a user may set (``--algo-set key=value``) for ``two_level_ppo``."""

    worker_steps: int = Field(60_000, ge=1, le=100_000_000, description="env steps of phase 1 (workers, no tax)")
    planner_steps: int = Field(100_000, ge=1, le=100_000_000, description="the planner's env steps in phase 2")
    worker_stages: int = Field(3, ge=1, le=50, description="labour-cost annealing stages of phase 1")
    planner_stages: int = Field(3, ge=1, le=50, description="max-rate annealing stages of phase 2")
    worker_share: float = Field(0.75, ge=0, lt=1, description="share of phase 2's steps in which the workers learn "
                                "(the planner's the rest), alternating in cycles")
    cycles: int = Field(4, ge=1, le=100, description="planner-then-workers cycles per phase-2 stage")
    restarts: int = Field(5, ge=1, le=16, description="phase 2 runs from the same phase-1 workers, each with a "
                          "fresh planner; the pair whose planner reaches the best objective with its workers is kept")
    final_worker_steps: int = Field(100_000, ge=1, le=100_000_000, description="env steps of the workers' last "
                                    "catch-up with the planner's final rates, long enough for them to converge "
                                    "(the restarts are compared on it)")
    worker_min_log_std: float | None = Field(-3.0, ge=-20, le=2, description="floor on the workers' log-std "
                                             "(pre-squash): below about -4 their PPO updates turn unstable and they "
                                             "drift off their best responses; None: no floor")
    worker_reexplore_log_std: float | None = Field(-1.5, ge=-20, le=2, description="the workers' log-std is raised "
                                                   "to at least this before each catch-up (None: never)")
    worker_search_tries: int = Field(64, ge=0, le=4096, description="before and after each catch-up, every worker "
                                     "tries this many incomes spread over its range (and a hair below each cut-off), "
                                     "and the workers' response is fitted to the best (0: no search; "
                                     "worker_search.py)")
    final_from_phase_one: bool = Field(True, description="the last catch-up starts from the phase-1 (no-tax) workers, "
                                       "not the co-adapted ones: they learn the planner's final schedule, not the "
                                       "path to it")
    labour_start: float = Field(0.5, gt=0, le=1, description="labour-cost multiplier at the start of phase 1")
    max_rate_start: float = Field(0.5, gt=0, le=1, description="the planner's largest rate at the start of phase 2")
    vary_max_rate_start: bool = Field(True, description="restart r starts its cap at max_rate_start + (1 − "
                                      "max_rate_start) · r / (restarts − 1): the first anneals from "
                                      "max_rate_start, the last starts at 1 (the annealed cap can lead every "
                                      "restart into the same basin of the schedule)")
    entropy_start: float = Field(0.1, ge=0, le=1, description="entropy bonus at the start of phase 2 (then to 0)")
    num_envs: int = Field(256, ge=2, le=65_536, description="economies per batch")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="the workers' Adam learning rate")
    planner_learning_rate: float = Field(3e-4, gt=0, le=1, description="the planner's Adam learning rate")
    planner: Literal["grid", "gaussian"] = Field("grid", description="the planner's actions: one choice per bracket "
                                                 "on the rate grid (the paper's), or a squashed Gaussian over rates")
    planner_log_std: float = Field(0.0, ge=-5, le=2, description="the Gaussian planner's initial log-std (pre-squash)")
    hidden: int = Field(64, ge=4, le=1024, description="width of the two hidden layers of each network")
    eval_economies: int = Field(64, ge=1, le=65_536, description="economies of each held-out evaluation")


def training_sim(scenario: OneStepScenario, device: Any, **curriculum: float) -> OneStepSim:
    """The simulator the pair learns and acts in (the economy, with the curriculum's settings)."""
    return OneStepSim(scenario, device, **curriculum)


class TaxationMember(GroupMember):
    """One group's actor-critic, acting in any one-step scenario with the same brackets."""

    simulator = staticmethod(training_sim)


class TaxationPlanner(TaxationMember):
    kind: ClassVar[str] = "taxation_planner"
    group_name: ClassVar[str] = PLANNER


class TaxationWorkers(TaxationMember):
    kind: ClassVar[str] = "taxation_workers"
    group_name: ClassVar[str] = WORKERS


class TaxationPair(JointPolicy):
    """The planner and its workers, trained together (members ``planner`` and ``workers``)."""

    kind: ClassVar[str] = "taxation_pair"

    @classmethod
    def initial(cls, scenario: OneStepScenario, device: Any, hidden: int = 64, planner_log_std: float = -1.0,
                planner: str = "gaussian", worker_min_log_std: float | None = None) -> TaxationPair:
        return cls({PLANNER: planner_kind(planner).initial(scenario, device, hidden, planner_log_std),
                    WORKERS: TaxationWorkers.initial(scenario, device, hidden, min_log_std=worker_min_log_std)},
                   "two_level_ppo")


def planner_kind(planner: str) -> type[GroupMember]:
    """The member class of a planner (``grid`` or ``gaussian``)."""
    return TaxationGridPlanner if planner == "grid" else TaxationPlanner


def learning_reward(scales: dict[str, float]) -> Any:
    """The rewards the pair learns from (for :class:`decisionlab.core.Reshaped`; the simulator's own stay in
    ``info["env_reward"]``, what the training curves show): each group's divided by its scale, and the
    workers' without the rebate.

    The rebate is the same for every worker, and a worker's own choice moves it only by its own tax / N:
    the exact best response takes it as given, and so does learning. Left in, it carries every other
    worker's exploration noise into each worker's reward, which no value baseline can remove."""

    def shaping(result: StepResult[Any]) -> dict[str, torch.Tensor]:
        workers = result.reward[WORKERS] - result.info["rebate"][:, None].to(result.reward[WORKERS])
        return {PLANNER: result.reward[PLANNER] / scales[PLANNER], WORKERS: workers / scales[WORKERS]}

    return shaping


class NoTax:
    """``sim`` with the planner's rates held at 0 (phase 1)."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    def step(self, state: Any, action: Any, exogenous: torch.Tensor) -> StepResult[Any]:
        return self.sim.step(state, {**action, PLANNER: torch.zeros_like(action[PLANNER])}, exogenous)


def joint_objective(scenario: OneStepScenario, pair: TaxationPair, economies: int, device: torch.device,
                    sim: OneStepSim | None = None) -> float:
    """The objective the planner and the workers reach acting together (deterministically), per period."""
    sim = sim or training_sim(scenario, device)
    policy = MergedPolicy({name: member.bind(sim) for name, member in pair.members.items()})
    done = run(sim, policy, batch=economies, reducers={"objective": Sum(scenario.objective)})
    return float(done.totals["objective"].mean()) / scenario.tax_periods


def planner_rates(pair: TaxationPair, scenario: OneStepScenario, sim: OneStepSim | None = None) -> list[float]:
    """The rates the trained planner sets (its deterministic action, times ``sim.max_rate``)."""
    return member_rates(pair.members[PLANNER], scenario, sim)


def member_rates(planner: TaxationMember, scenario: OneStepScenario, sim: OneStepSim | None = None) -> list[float]:
    """The rates ``[K]`` a planner member sets in ``scenario`` (its deterministic action, times the
    simulator's ``max_rate``); the member is bound to ``sim`` (default: the scenario's own)."""
    sim = sim or training_sim(scenario, next(planner.parameters()).device)
    bound = planner.bind(sim)
    action = bound.act(sim.observe(sim.reset(1)))[PLANNER].reshape(-1)
    return (sim.max_rate * action.clamp(0.0, 1.0)).tolist()


def train_two_level(scenario: OneStepScenario, options: TwoLevelOptions, ctx: TrainContext) -> TrainOutcome:
    ctx.seed_init()
    device = ctx.device
    pair = TaxationPair.initial(scenario, device, options.hidden, options.planner_log_std, options.planner,
                                options.worker_min_log_std)

    def acting(sim: OneStepSim) -> Any:
        """The simulator PPO steps: ``sim`` as the planner's network sees it."""
        return GridPlannerSim(sim) if options.planner == "grid" else sim

    nets = {name: member.net for name, member in pair.members.items()}
    economy = Economy(scenario, device)
    free = float(economy.metrics(torch.zeros(1, scenario.n_brackets, dtype=torch.float64))[scenario.objective][0])
    scales = {PLANNER: max(abs(free), 1e-6), WORKERS: max(float(economy.untaxed.mean()), 1e-6)}
    rollout = 2 * scenario.tax_periods
    reward = learning_reward(scales)
    curves: list[pl.DataFrame] = []
    done_steps = 0

    def record(history: pl.DataFrame, phase: str, stage: int) -> None:
        """One training call's rows, on the run's cumulative step axis (``step``)."""
        nonlocal done_steps
        rows = history.filter(pl.col("update") > 0)
        curves.append(rows.with_columns((pl.col("env_steps") + done_steps).alias("step"), pl.lit(phase).alias("phase"),
                                        pl.lit(stage).alias("stage")))
        done_steps += int(history["env_steps"].max() or 0)

    def measure(stage: int, sim: OneStepSim) -> None:
        """The planner's rates scored with exact responses and with its own workers (``eval_score``: the
        latter, negated, lower is better, as the core's curves read it)."""
        rates = planner_rates(pair, scenario, sim)
        exact = float(economy.metrics(torch.tensor([rates], dtype=torch.float64))[scenario.objective][0])
        learned = joint_objective(scenario, pair, options.eval_economies, device, sim)
        curves.append(pl.DataFrame({"step": [done_steps], "phase": ["measure"], "stage": [stage],
                                    "exact_objective": [exact], "learned_objective": [learned],
                                    "eval_score": [-learned]}))
    generator = ctx.generator("train")

    def reexplore() -> None:
        """Before the workers catch up, their spread is raised to at least ``worker_reexplore_log_std``: a
        schedule whose marginal rate falls above a bracket makes a worker's utility non-concave, and a narrow
        Gaussian stays at the local optimum it knew (the planner then taxes what exact best responders flee)."""
        if options.worker_reexplore_log_std is not None:
            with torch.no_grad():
                nets[WORKERS].log_std.clamp_(min=options.worker_reexplore_log_std)

    def search(sim: Any) -> None:
        """The workers' policy-improvement step around a catch-up (:mod:`worker_search`): before it, PPO starts
        in the better basin; after it, the planner (and the restart pick) face responses no try beats."""
        if options.worker_search_tries > 0:
            improve_workers(sim, nets, generator, min(options.num_envs, 64), options.worker_search_tries)

    def config(steps: int, entropy: float, stages: int, gamma: float, lr: float | None = None) -> PPOConfig:
        """γ = 0 for the workers: each response is a bandit (its reward comes at once; the phase in which the
        planner decides carries no signal for them); γ = 1 for the planner, whose reward comes one decision later."""
        per_update = options.num_envs * rollout
        return PPOConfig(num_envs=options.num_envs, rollout_steps=rollout,
                         total_env_steps=max(per_update, steps // stages), gamma=gamma, gae_lambda=1.0,
                         learning_rate=lr or options.learning_rate, ent_coef=entropy, update_epochs=4, minibatches=4,
                         eval_every=max(per_update, steps // stages // 4))

    for stage in range(options.worker_stages):  # phase 1: workers, no tax, labour cost annealed up
        share = stage / max(options.worker_stages - 1, 1)
        scale = options.labour_start + (1.0 - options.labour_start) * share
        sim = Reshaped(NoTax(acting(training_sim(scenario, device, labour_scale=scale))), reward)
        result = train_ppo(sim, nets, config(options.worker_steps, 0.0, options.worker_stages, 0.0), train=[WORKERS],
                           generator=generator, progress=ctx.progress,
                           description=f"workers {stage + 1}/{options.worker_stages}")
        record(result.history, "workers", stage)

    # Phase 2 from the same phase-1 workers, once per restart of the planner (a fresh network each); the
    # pair kept is the one whose planner reaches the best objective with its own caught-up workers: what
    # the planner itself can observe, never the exact responses. Restart r starts its cap at
    # max_rate_start + (1 − max_rate_start) · r / (restarts − 1) unless vary_max_rate_start is off.
    phase_one = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in nets.items()}
    best_score, best_state = -float("inf"), phase_one
    for restart in range(options.restarts):
        cap_start = options.max_rate_start
        if options.vary_max_rate_start and options.restarts > 1:
            cap_start += (1.0 - cap_start) * restart / (options.restarts - 1)
        if restart > 0:
            torch.manual_seed(ctx.stream(f"planner_{restart}"))
            fresh = planner_kind(options.planner).initial(scenario, device, options.hidden, options.planner_log_std).net
            nets[PLANNER].load_state_dict(fresh.state_dict())
            nets[WORKERS].load_state_dict(phase_one[WORKERS])
        for stage in range(options.planner_stages):  # phase 2: both, the planner's largest rate annealed up
            share = stage / max(options.planner_stages - 1, 1)
            max_rate = cap_start + (1.0 - cap_start) * share
            entropy = options.entropy_start * (1.0 - share)
            base = training_sim(scenario, device, max_rate=max_rate)
            shaped = Reshaped(acting(base), reward)
            steps = options.planner_steps // (options.planner_stages * options.cycles)
            catch_up = int(steps * options.worker_share / (1.0 - options.worker_share))
            for cycle in range(options.cycles):
                # two time scales: the planner moves a little, then the workers catch up with its rates
                label = f"stage {stage + 1}/{options.planner_stages}, cycle {cycle + 1}/{options.cycles}"
                planner_config = config(steps, entropy, 1, 1.0, options.planner_learning_rate)
                result = train_ppo(shaped, nets, planner_config, train=[PLANNER], generator=generator,
                                   progress=ctx.progress,
                                   description=f"planner {label} (max rate {max_rate:.2f})")
                record(result.history, "planner", stage)
                catch_up_config = config(catch_up, 0.0, 1, 0.0)
                reexplore()
                search(shaped)
                result = train_ppo(shaped, nets, catch_up_config, train=[WORKERS], generator=generator,
                                   progress=ctx.progress, description=f"workers {label}")
                search(shaped)
                record(result.history, "workers", stage)
                measure(stage, base)
            if ctx.progress:
                rates = planner_rates(pair, scenario, base)
                # stderr: stdout is the CLI's (``--json`` prints one object there)
                print(f"stage {stage + 1}: rates {[round(r, 3) for r in rates]}", file=sys.stderr, flush=True)
        # The workers catch up with the planner's final rates. No "best" moment of the run is picked by the
        # objective the two reach together: the highest is where the planner exploits workers that lag (it
        # taxes what they have not yet learned to avoid); restarts are compared only after this catch-up.
        # It starts from the no-tax workers: co-adapted ones carry the schedules they answered before, and a
        # worker left at a local optimum by one of them can keep it under the final rates.
        final = config(options.final_worker_steps, 0.0, 1, 0.0)
        if options.final_from_phase_one:
            nets[WORKERS].load_state_dict(phase_one[WORKERS])
        reexplore()
        search(shaped)
        result = train_ppo(shaped, nets, final, train=[WORKERS],
                           generator=generator, progress=ctx.progress, description="workers, final catch-up")
        search(shaped)
        record(result.history, "workers", options.planner_stages)
        measure(options.planner_stages, base)
        score = joint_objective(scenario, pair, options.eval_economies, device)
        if score > best_score:
            best_score = score
            best_state = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in nets.items()}
    for name, net in nets.items():
        net.load_state_dict(best_state[name])

    for member in pair.members.values():
        member.for_scenario(scenario)
    rates = planner_rates(pair, scenario)
    exact = economy.metrics(torch.tensor([rates], dtype=torch.float64))
    learned = joint_objective(scenario, pair, options.eval_economies, device)
    metrics = {f"exact_{name}": float(value[0]) for name, value in exact.items()}
    metrics |= {"learned_objective": learned, **{f"rate_{k}": r for k, r in enumerate(rates)}}
    curve = pl.concat(curves, how="diagonal_relaxed")
    return TrainOutcome(pair, pair.config(), metrics, curve, options.model_dump())
