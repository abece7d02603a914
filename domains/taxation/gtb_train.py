"""Two-level PPO in the Gather-Trade-Build economy (``two_level_ppo`` of ``gather_trade_build``).

The planner decides once per tax period, so it learns in :class:`PeriodSim`: one step is one period, in
which the workers act ``tax_period_steps`` times with their current policy, and the planner's reward is the
change in equality × productivity over the period (γ = 1: the episode's return is the final objective).
The workers learn in the economy itself, a step at a time, from their utility (the simulator's reward),
the planner's rates set by its current network.

``workers``:
- ``ppo`` (the AI Economist's two levels): the workers share one masked actor-critic (their window,
  inventory, skills and the rates in the observation). They first imitate the scripted workers
  (``imitation_steps``, ``gtb_imitation.py``: a warm start the paper did not need with its budget of
  steps), then the curriculum: workers alone without tax, the energy cost annealed from ``energy_start``
  of its value to all of it; then cycles of the planner (its largest rate annealed from
  ``max_rate_start`` to 1, its entropy bonus to 0) and the workers catching up.
- ``scripted``: the planner learns against :class:`~decisionlab.domains.taxation.gtb_workers.GatherBuildWorkers`,
  the workers every baseline of the setting is evaluated with, so its schedule is compared with Saez's,
  the US federal one and no tax on the same workers.

The outcome is one registered pair (``gtb_pair``: ``planner`` + ``workers``), each member servable.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar, Literal

import polars as pl
import torch
from pydantic import BaseModel, Field

from decisionlab.core import (
    ActorCriticPolicy,
    JointPolicy,
    MergedPolicy,
    PPOConfig,
    Spaces,
    StepResult,
    TrainContext,
    TrainOutcome,
    hash_rows,
    hash_uniform,
    train_ppo,
)
from decisionlab.domains.taxation.gtb import PLANNER, WORKERS, GatherTradeBuildSim
from decisionlab.domains.taxation.gtb_imitation import imitate
from decisionlab.domains.taxation.gtb_metrics import episode_metrics
from decisionlab.domains.taxation.gtb_observe import planner_features
from decisionlab.domains.taxation.gtb_workers import GatherBuildWorkers, GtbSchedule, SchedulePlanner
from decisionlab.domains.taxation.members import GroupMember
from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario


class GtbTwoLevelOptions(BaseModel):
    """What a user may set (``--algo-set key=value``) for ``two_level_ppo`` in ``gather_trade_build``."""

    workers: Literal["ppo", "scripted"] = Field("ppo", description="learned workers (two levels) or the scripted "
                                                "workers of the baselines")
    imitation_steps: int = Field(20_000, ge=0, le=10_000_000, description="steps of the workers imitating the "
                                 "scripted workers before PPO (gtb_imitation.py; 0: PPO from scratch)")
    worker_steps: int = Field(400_000, ge=1, le=1_000_000_000, description="env steps of the workers' phase 1 "
                              "(no tax); each catch-up is worker_share of it")
    worker_stages: int = Field(2, ge=1, le=20, description="energy-cost annealing stages of phase 1")
    energy_start: float = Field(0.5, ge=0, le=1, description="energy-cost multiplier at the start of phase 1")
    planner_periods: int = Field(200_000, ge=1, le=100_000_000, description="tax periods the planner learns from "
                                 "in phase 2 (over all its stages and cycles)")
    planner_stages: int = Field(3, ge=1, le=20, description="max-rate annealing stages of phase 2")
    cycles: int = Field(2, ge=1, le=50, description="planner-then-workers cycles per phase-2 stage")
    worker_share: float = Field(0.25, ge=0, le=10, description="env steps of each workers' catch-up, as a share "
                                "of worker_steps")
    max_rate_start: float = Field(0.5, gt=0, le=1, description="the planner's largest rate at the start of phase 2")
    entropy_start: float = Field(0.05, ge=0, le=1, description="the planner's entropy bonus at the start of phase 2")
    num_envs: int = Field(64, ge=2, le=16_384, description="economies per batch")
    rollout_steps: int = Field(100, ge=1, le=100_000, description="the workers' steps per update")
    hidden: int = Field(128, ge=4, le=1024, description="width of the two hidden layers of each network")
    learning_rate: float = Field(3e-4, gt=0, le=1, description="the workers' Adam learning rate")
    planner_learning_rate: float = Field(1e-3, gt=0, le=1, description="the planner's Adam learning rate")
    worker_entropy: float = Field(0.01, ge=0, le=1, description="the workers' entropy bonus")
    paired: bool = Field(True, description="the planner learns from its economy's objective minus a no-tax twin's "
                         "on the same map and draws (a baseline that does not depend on its actions)")
    planner_envs: int = Field(128, ge=2, le=16_384, description="economies per planner update (each decides "
                              "once per tax period)")
    eval_economies: int = Field(32, ge=1, le=4096, description="economies of the final held-out evaluation")


class GtbMember(GroupMember):
    """One group's actor-critic, acting in any Gather-Trade-Build scenario with the same shapes."""

    default_hidden: ClassVar[int] = 128
    simulator = staticmethod(GatherTradeBuildSim)


class GtbPlanner(GtbMember):
    kind: ClassVar[str] = "gtb_planner"
    group_name: ClassVar[str] = PLANNER


class GtbWorkers(GtbMember):
    """The learned workers act as they learned: each choice drawn from their distribution, not its most
    probable entry. A movement policy's argmax stalls: in one exploratory run (imitation alone, free market,
    32 economies) the workers built 2.1 houses per episode acting by argmax and 11.1 by sampling.

    The draw is a pure function of the observation: the uniform of each worker's choice is a hash of its
    feature row (:func:`~decisionlab.core.hashing.hash_rows`), which holds the episode's progress, so it is
    fresh at every step, while the same observation always gets the same action (an evaluation repeats,
    a registry round trip acts the same, and two schedules scored with the same workers see the same draws
    wherever their economies agree)."""

    kind: ClassVar[str] = "gtb_workers"
    group_name: ClassVar[str] = WORKERS
    SAMPLE_SALT: ClassVar[int] = 31

    @torch.no_grad()
    def group_action(self, obs: Any) -> torch.Tensor:
        if self.reader is None:
            raise ValueError("bind the workers to a simulator first (GtbWorkers.bind)")
        features = self.reader.features(self.sim, obs)  # [N, F]
        distribution = self.net.distribution(features, self.reader.mask(self.sim, obs))
        cdf = distribution.log_probs.exp().double().cumsum(-1)  # [N, choices]; illegal choices add nothing
        u = hash_uniform(hash_rows(features), self.SAMPLE_SALT)[:, None] * cdf[:, -1:]
        choice = (cdf < u).sum(-1).clamp(max=cdf.shape[-1] - 1)  # the first choice whose cdf reaches u
        return self.reader.to_env(choice)


class GtbScriptedWorkers(torch.nn.Module):
    """The scripted workers as a pair member (no weights): :class:`GatherBuildWorkers` in any scenario."""

    kind: ClassVar[str] = "gtb_scripted_workers"

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GtbScriptedWorkers:
        return cls()

    @classmethod
    def initial(cls, scenario: GatherTradeBuildScenario, device: Any) -> GtbScriptedWorkers:
        return cls()

    def for_scenario(self, scenario: GatherTradeBuildScenario) -> GatherBuildWorkers:
        return GatherBuildWorkers(scenario)


class GtbPair(JointPolicy):
    """A planner and its workers (members ``planner`` and ``workers``)."""

    kind: ClassVar[str] = "gtb_pair"

    @classmethod
    def initial(cls, scenario: GatherTradeBuildScenario, device: Any, hidden: int = 128,
                workers: Literal["ppo", "scripted"] = "ppo") -> GtbPair:
        members = {PLANNER: GtbPlanner.initial(scenario, device, hidden),
                   WORKERS: GtbScriptedWorkers() if workers == "scripted" else GtbWorkers.initial(scenario, device,
                                                                                                   hidden)}
        return cls(members, "two_level_ppo")


class Sampled:
    """A bound member acting by sampling its distribution with ``generator`` (the global one when None):
    the workers inside :class:`PeriodSim` while they learn, as the registered pairs were trained.
    :class:`GtbWorkers` acting alone draws from a hash of its observation instead."""

    def __init__(self, member: ActorCriticPolicy, generator: torch.Generator | None = None) -> None:
        self.member, self.generator = member, generator

    @torch.no_grad()
    def act(self, obs: Any) -> dict[str, torch.Tensor]:
        m = self.member
        features, mask = m.reader.features(m.sim, obs), m.reader.mask(m.sim, obs)
        raw = m.net.distribution(features, mask).sample(self.generator)
        return {m.group: m.reader.to_env(raw)}


class Capped:
    """``sim`` with the planner's rates multiplied by ``max_rate`` (the curriculum's cap)."""

    def __init__(self, sim: Any, max_rate: float) -> None:
        self.sim, self.max_rate = sim, float(max_rate)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    def step(self, state: Any, action: dict[str, torch.Tensor], exogenous: torch.Tensor) -> StepResult[Any]:
        if PLANNER in action:
            action = {**action, PLANNER: action[PLANNER] * self.max_rate}
        return self.sim.step(state, action, exogenous)


def tiled(state: Any, copies: int) -> Any:
    """``state`` (a dataclass of tensors and dataclasses, batch first) repeated: ``[B] → [copies·B]``, copy
    after copy."""
    if isinstance(state, torch.Tensor):
        return state.repeat(copies, *([1] * (state.dim() - 1)))
    return dataclasses.replace(state, **{f.name: tiled(getattr(state, f.name), copies)
                                         for f in dataclasses.fields(state)})


class PeriodSim:
    """The planner's view of the economy: one step is one tax period of ``base``, the workers acting
    with ``workers`` at every inner step. Spaces: the planner group of ``base`` alone. Reward: the change
    in equality × productivity over the period, divided by ``scale``.

    ``paired``: each economy runs beside a twin on the same map, skills and draws with no tax, and the
    planner's reward is its own change minus the twin's. The twin's does not depend on the planner's
    actions, so the policy gradient keeps its expectation, while most of the spread between economies
    (a rich map, skilled workers) cancels. The state then holds both: rows ``[:B]`` and ``[B:]``."""

    differentiable = False

    def __init__(self, base: GatherTradeBuildSim, workers: Any, max_rate: float = 1.0, scale: float = 1.0,
                 paired: bool = False) -> None:
        s = base.scenario
        if s.episode_steps % s.tax_period_steps:
            raise ValueError(f"two-level training needs whole tax periods: episode_steps ({s.episode_steps}) is not "
                             f"a multiple of tax_period_steps ({s.tax_period_steps})")
        self.base, self.workers, self.max_rate, self.scale = base, workers, float(max_rate), float(scale)
        self.paired = paired
        self.device, self.scenario = base.device, s
        self.period = s.tax_period_steps
        self.horizon = s.episode_steps // s.tax_period_steps
        self.spaces = Spaces(agents={PLANNER: base.spaces.agents[PLANNER]})

    def reset(self, batch: int, generator: torch.Generator | None = None) -> Any:
        state = self.base.reset(batch, generator)
        return tiled(state, 2) if self.paired else state

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        draws = self.base.sample_exogenous(batch, periods * self.period, generator)
        return draws.reshape(batch, periods, self.period, -1)

    def rows(self, state: Any) -> int:
        return state.coin.shape[0] // (2 if self.paired else 1)

    def observe(self, state: Any) -> dict[str, dict[str, torch.Tensor]]:
        return {PLANNER: {"features": self.base.observe(state)[PLANNER]["features"][:self.rows(state)]}}

    def flat_observation(self, obs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {PLANNER: obs[PLANNER]["features"]}

    def step(self, state: Any, action: dict[str, torch.Tensor], exogenous: torch.Tensor) -> StepResult[Any]:
        batch = self.rows(state)
        rates = action[PLANNER] * self.max_rate
        if self.paired:
            rates, exogenous = torch.cat([rates, torch.zeros_like(rates)]), torch.cat([exogenous, exogenous])
        total = torch.zeros(state.coin.shape[0], 1, device=self.device)
        result = None
        for t in range(self.period):
            obs = self.base.observe(state)
            acts = {**self.workers.act(obs), PLANNER: rates}
            result = self.base.step(state, acts, exogenous[:, t])
            total = total + result.reward[PLANNER]
            state = result.state
        assert result is not None
        reward = total[:batch] - total[batch:] if self.paired else total
        info = {"equality_times_productivity": result.state.welfare[:batch]}
        return StepResult(state, {PLANNER: reward / self.scale}, info, terminated=result.terminated[:batch])


def workers_ppo_config(options: GtbTwoLevelOptions, steps: int) -> PPOConfig:
    """The workers' PPO settings for ``steps`` env steps (at least one update)."""
    per_update = options.num_envs * options.rollout_steps
    return PPOConfig(num_envs=options.num_envs, rollout_steps=options.rollout_steps,
                     total_env_steps=max(per_update, steps), gamma=0.998, gae_lambda=0.98,
                     learning_rate=options.learning_rate, ent_coef=options.worker_entropy, update_epochs=4,
                     minibatches=4, eval_every=10**12)


class UnderSchedule:
    """``sim`` with the planner's rates replaced by a fixed ``schedule``'s (its period's row, read from the
    planner's clock): the economy the workers adapt to in :func:`adapt_workers`."""

    def __init__(self, sim: GatherTradeBuildSim, schedule: GtbSchedule) -> None:
        self.sim, self.schedule = sim, schedule

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    def step(self, state: Any, action: dict[str, torch.Tensor], exogenous: torch.Tensor) -> StepResult[Any]:
        clock = {PLANNER: {"features": planner_features(self.sim.scenario, state)}}
        return self.sim.step(state, {**action, **self.schedule.planner(clock)}, exogenous)


def adapt_workers(workers: GtbWorkers, schedule: GtbSchedule, steps: int, generator: torch.Generator,
                  options: GtbTwoLevelOptions | None = None, progress: bool = False) -> GtbWorkers:
    """A copy of ``workers`` after ``steps`` env steps of PPO under ``schedule`` held fixed: the workers a
    fixed tax policy faces once they have adapted to it (the AI Economist scores every baseline schedule with
    agents trained under it). ``workers`` itself is not changed."""
    options = options or GtbTwoLevelOptions()
    scenario = schedule.scenario
    device = next(workers.net.parameters()).device
    adapted = GtbWorkers(copy.deepcopy(workers.net), group=WORKERS, name=workers.name)
    planner = GtbPlanner.initial(scenario, device, options.hidden)  # acts, but its rates are replaced
    sim = UnderSchedule(GatherTradeBuildSim(scenario, device), schedule)
    train_ppo(sim, {PLANNER: planner.net, WORKERS: adapted.net}, workers_ppo_config(options, steps),
              train=[WORKERS], generator=generator, progress=progress,
              description=f"workers adapt to {schedule.name}")
    return adapted.for_scenario(scenario)


def _scripted(member: Any) -> bool:
    return isinstance(member, GtbScriptedWorkers)


def train_gtb_two_level(scenario: GatherTradeBuildScenario, options: GtbTwoLevelOptions, ctx: TrainContext
                        ) -> TrainOutcome:
    ctx.seed_init()
    device = ctx.device
    base = GatherTradeBuildSim(scenario, device)
    periods = PeriodSim(base, None).horizon  # (checks the periods before anything trains)
    pair = GtbPair.initial(scenario, device, options.hidden, options.workers)
    planner, workers = pair.members[PLANNER], pair.members[WORKERS]
    generator = ctx.generator("train")
    curves: list[pl.DataFrame] = []
    done_steps = 0

    def free_market_scale() -> float:
        """The planner's reward scale: the free market's objective with the workers as they are now."""
        acting = workers.for_scenario(scenario) if _scripted(workers) else Sampled(workers.bind(base), None)
        no_tax = SchedulePlanner(GtbSchedule(scenario, [0.0] * scenario.n_brackets, "free_market", device))
        free = episode_metrics(scenario, MergedPolicy({PLANNER: no_tax, WORKERS: acting}),
                               options.eval_economies, int(ctx.stream("scale")) % (2**31), device)
        return max(float(free["equality_times_productivity"].mean()), 1.0)

    def record(history: pl.DataFrame, phase: str, stage: int) -> None:
        nonlocal done_steps
        rows = history.filter(pl.col("update") > 0)
        curves.append(rows.with_columns((pl.col("env_steps") + done_steps).alias("step"), pl.lit(phase).alias("phase"),
                                        pl.lit(stage).alias("stage")))
        done_steps += int(history["env_steps"].max() or 0)

    def planner_config(steps: int, entropy: float) -> PPOConfig:
        per_update = options.planner_envs * periods
        return PPOConfig(num_envs=options.planner_envs, rollout_steps=periods,
                         total_env_steps=max(per_update, steps), gamma=1.0, gae_lambda=1.0,
                         learning_rate=options.planner_learning_rate, ent_coef=entropy, update_epochs=4,
                         minibatches=4, eval_every=10**12)

    nets = {PLANNER: planner.net} | ({} if _scripted(workers) else {WORKERS: workers.net})
    if not _scripted(workers) and options.imitation_steps:  # the warm start (gtb_imitation.py)
        losses = imitate(workers, scenario, options.imitation_steps, options.num_envs, generator,
                         progress=ctx.progress)
        curves.append(pl.DataFrame({"step": [100 * i for i in range(len(losses))], "phase": ["imitation"] * len(losses),
                                    "stage": [0] * len(losses), "imitation_loss": losses}))
    if not _scripted(workers):  # phase 1: the workers alone, no tax, the energy cost annealed up
        for stage in range(options.worker_stages):
            share = stage / max(options.worker_stages - 1, 1)
            energy = options.energy_start + (1.0 - options.energy_start) * share
            annealed = scenario.model_copy(update={"energy_cost": scenario.energy_cost * energy})
            sim = Capped(GatherTradeBuildSim(annealed, device), 0.0)
            result = train_ppo(sim, nets, workers_ppo_config(options, options.worker_steps // options.worker_stages),
                               train=[WORKERS], generator=generator, progress=ctx.progress,
                               description=f"workers {stage + 1}/{options.worker_stages} (no tax)")
            record(result.history, "workers", stage)

    scale = free_market_scale()
    for stage in range(options.planner_stages):  # phase 2: the planner, its largest rate annealed up
        share = stage / max(options.planner_stages - 1, 1)
        max_rate = options.max_rate_start + (1.0 - options.max_rate_start) * share
        entropy = options.entropy_start * (1.0 - share)
        for cycle in range(options.cycles):
            label = f"stage {stage + 1}/{options.planner_stages}, cycle {cycle + 1}/{options.cycles}"
            inner = workers.for_scenario(scenario) if _scripted(workers) else Sampled(workers.bind(base), None)
            period_sim = PeriodSim(base, inner, max_rate, scale, options.paired)
            result = train_ppo(period_sim, {PLANNER: planner.net},
                               planner_config(options.planner_periods // (options.planner_stages * options.cycles),
                                              entropy),
                               generator=generator, progress=ctx.progress,
                               description=f"planner {label} (max rate {max_rate:.2f})")
            record(result.history, "planner", stage)
            if not _scripted(workers):  # the workers catch up with the planner's rates
                steps = int(options.worker_steps * options.worker_share)
                result = train_ppo(Capped(base, max_rate), nets, workers_ppo_config(options, steps), train=[WORKERS],
                                   generator=generator, progress=ctx.progress, description=f"workers {label}")
                record(result.history, "workers", stage)

    for member in pair.members.values():
        if not _scripted(member):
            member.for_scenario(scenario)
    policy = pair.for_scenario(scenario)
    held_out = episode_metrics(scenario, policy, options.eval_economies, int(ctx.stream("eval")) % (2**31), device)
    metrics = {name: float(value.mean()) for name, value in held_out.items()}
    rates = planner.act(base.observe(base.reset(1, ctx.generator("rates"))))[PLANNER].reshape(-1).clamp(0, 1)
    metrics |= {f"first_rate_{k}": float(r) for k, r in enumerate(rates.tolist())}
    curve = pl.concat(curves, how="diagonal_relaxed") if curves else pl.DataFrame()
    return TrainOutcome(pair, pair.config(), metrics, curve, options.model_dump())
