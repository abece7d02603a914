"""A genetic algorithm (DEAP) that plans one fleet day knowing all of it: the clairvoyant GA reference.

Fleet-scheduling studies compare a learned dispatcher with schedules a genetic algorithm found for the
very day being played; this is that reference. A genome is one day's plan flattened ``[A * S]`` (aircraft
major): the choice ``0..V`` (``V``: stay) of aircraft ``a`` when it decides in slot ``s``. Its fitness is
the day's profit when :class:`~decisionlab.domains.fleet.schedule.ScheduleFollower` executes it, so a
planned choice that is not legal when it comes up is a stay and every genome is a feasible day.

The whole population is scored as one batched simulation: the day replicated once per genome to be
scored, each row following its own plan (a batch of 64 costs about 1.2 times a batch of one on a CPU, so
populations are cheap and generations are what cost). DEAP supplies the operators (two-point crossover,
uniform integer mutation, tournament selection, a hall of fame); the generation loop is ours so that
scoring stays batched and the hall of fame is carried into every next generation (elitism: the best
profit never falls, and with ``seed_with_greedy`` it starts at greedy's or above).

Why a closed-loop mutation too: a plan is open loop, so one changed gene sends its aircraft somewhere
its later genes were not written for, and the rest of its day falls apart (on a ``uam_8x40`` day, 64 single
random gene changes of greedy's $11,900 schedule cost $0 to $7,500 each, none gained), and
gene-level operators alone leave a large fleet's GA stuck at its start. ``replan_prob`` of the offspring
are therefore also rewritten from a random time of the day on by :class:`NoisyGreedy` (greedy with noise
on its profit estimates), choice by choice where each aircraft really is, during the very simulation that
scores them (:func:`simulate_plans`): the prefix is inherited, the tail is consistent again.

The start population: with ``seed_with_greedy``, greedy's recorded schedule and perturbed greedy days (a
``greedy_share`` of it); the rest are recorded days of the uniformly random legal policy, so even the
random part begins legal. ``seed_with_greedy=False`` with ``replan_prob=0`` is a GA that never sees
greedy. Each day of a batch gets its own independent GA, one day after another.

Randomness: DEAP's operators draw from Python's global :mod:`random` module, so :func:`plan_day` seeds
it per day from ``seed`` and the day's index and restores its previous state afterwards (the same seed
gives the same plans; not thread-safe with other users of :mod:`random`). Torch draws (random and
perturbed greedy choices) use their own generators, seeded from the same seed.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import polars as pl
import torch
from deap import algorithms, base, creator, tools
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core import Progress, RandomPolicy, derive_seed, make_generator
from decisionlab.domains.fleet.network import Days
from decisionlab.domains.fleet.policies import GreedyPolicy
from decisionlab.domains.fleet.schedule import ScheduleFollower, record_schedule
from decisionlab.domains.fleet.sim import FleetSim, FleetState

TERMINATION_CHECK_EVERY = 8  # steps between checks (a host sync each) that every replicated day has ended

# DEAP's creator registers classes globally, once per process: a second create() would warn and replace them
if not hasattr(creator, "FleetGAFitness"):
    creator.create("FleetGAFitness", base.Fitness, weights=(1.0,))  # maximise the day's profit
if not hasattr(creator, "FleetGAIndividual"):
    creator.create("FleetGAIndividual", list, fitness=creator.FleetGAFitness)


class GASettings(BaseModel):
    """Hyper-parameters of the fleet GA (one run per day)."""

    model_config = ConfigDict(extra="forbid")

    population: int = Field(128, ge=4, le=4096, description="genomes per generation (the batch of one scoring)")
    generations: int = Field(15, ge=0, le=10_000, description="generations after the start population")
    crossover_prob: float = Field(0.3, ge=0, le=1, description="probability that a pair of parents is crossed")
    mutation_prob: float = Field(0.3, ge=0, le=1, description="probability that an offspring is mutated")
    gene_mutation_prob: float = Field(0.02, ge=0, le=1,
                                      description="probability that a mutated offspring's gene is redrawn")
    tournament_size: int = Field(3, ge=1, le=64, description="contestants per selection tournament")
    elite: int = Field(2, ge=1, le=64, description="hall-of-fame size: the best genomes carried to every generation")
    seed_with_greedy: bool = Field(True, description="start from greedy's recorded schedule and perturbed greedy "
                                   "days (else only random legal schedules)")
    greedy_share: float = Field(0.5, gt=0, le=1, description="share of the start population made of greedy's "
                                "schedule and perturbed greedy days (with seed_with_greedy)")
    replan_prob: float = Field(0.8, ge=0, le=1, description="probability that an offspring's plan is rewritten "
                               "by perturbed greedy from a random time on (the closed-loop mutation; 0: the GA "
                               "never uses greedy after its start population)")
    greedy_noise: float = Field(20.0, ge=0, le=10_000, description="largest noise (dollars, the std of a normal "
                                "added to each flight's immediate profit) of perturbed greedy")
    seed: int = Field(0, ge=0, le=2**63 - 2, description="seed of the GA's random draws")
    max_seconds: float | None = Field(None, gt=0, description="wall-time cap per day: no new generation after it "
                                      "(makes results machine-dependent)")


@dataclass
class GAPlan:
    """What :func:`plan_day` found for ``B`` days: ``plans [B, A, S]`` (the best genome of each day),
    ``profit [B]`` (float64, its simulated profit in dollars), ``seconds [B]`` (wall time of each day's GA, with
    its share of recording greedy's days),
    ``decisions [B]`` (decisions the best plan's day takes), ``history`` (one row per day and generation:
    the population's best and mean profit, evaluations and seconds so far) and ``evaluations`` (genomes
    simulated, all days together)."""

    plans: torch.Tensor
    profit: torch.Tensor
    seconds: torch.Tensor
    decisions: torch.Tensor
    history: pl.DataFrame
    evaluations: int


def replicate(state: FleetState, row: int, copies: int) -> FleetState:
    """``state``'s day ``row`` repeated ``copies`` times (every tensor, the sampled day's included)."""
    index = torch.full((copies,), row, dtype=torch.long, device=state.time_h.device)

    def take(item: Any) -> dict[str, torch.Tensor]:
        return {f.name: getattr(item, f.name)[index] for f in fields(item) if f.name != "day"}

    return replace(state, **take(state), day=Days(**take(state.day)))


def simulate_plans(sim: FleetSim, state: FleetState, plans: torch.Tensor, replan_from_h: torch.Tensor | None = None,
                   replanner: NoisyGreedy | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Profit ``[K]`` (float64, dollars) and decisions ``[K]`` of ``state``'s ``K`` rows, each following
    its ``plans [K, A, S]`` to the end of the day.

    The same steps and float64 sum as ``run(sim, ScheduleFollower(sim, plans), state=state, reducers={"profit":
    Sum("profit")})`` (an ended day earns exactly 0), without building the observation's features the
    follower never reads (a third of the time).

    With ``replan_from_h [K]`` (hours, ``inf``: never) and a ``replanner`` for the ``K`` rows, each row's plan
    is rewritten, in place, from that time on: the first decision of an aircraft in a slot at or after it
    writes the replanner's choice into the plan, then the follower acts by the plan as always. So the day
    simulated is exactly the day the rewritten plan gives when followed, and the profit is its score."""
    follower = ScheduleFollower(sim, plans)
    end_h = sim.scenario.day_end_h
    rows = state.time_h.shape[0]
    index = torch.arange(rows, device=sim.device)
    nothing = torch.zeros(rows, 0, device=sim.device)
    profit = torch.zeros(rows, dtype=torch.float64, device=sim.device)
    decisions = torch.zeros(rows, dtype=torch.long, device=sim.device)
    used = torch.zeros_like(plans, dtype=torch.bool)  # genes already acted on: fixed for the rest of the day
    with torch.no_grad():
        for t in range(sim.horizon):
            alive = state.time_h < end_h
            decisions += alive
            obs = {"actor": state.actor, "time_h": state.time_h, "legal": sim.legal(state)}
            if replanner is not None and replan_from_h is not None:
                here = state.location[index, state.actor]
                obs |= {"actor_location": here, "waiting_from_here": state.waiting[index, here]}  # what greedy reads
                slot = sim.slot_of(state.time_h)
                gene = plans[index, state.actor, slot]
                fresh = alive & (state.time_h >= replan_from_h) & ~used[index, state.actor, slot]
                plans[index, state.actor, slot] = torch.where(fresh, replanner.act(obs), gene)
                used[index, state.actor, slot] |= alive
            result = sim.step(state, follower.act(obs), nothing)
            profit += result.info["profit"]
            state = result.state
            if (t + 1) % TERMINATION_CHECK_EVERY == 0 and bool((state.time_h >= end_h).all()):
                break
    return profit, decisions


class NoisyGreedy:
    """Greedy with its judgement blurred, a different amount per row: noise of std ``sigma [K]`` (uniform in
    ``0..noise`` dollars) on each flight's immediate profit, and a flight only above a threshold (uniform in
    ``-noise / 4 .. 3 noise / 4``). The replanner of :func:`simulate_plans`: its choices are made where each
    aircraft really is, so the plans it writes stay consistent (module docstring)."""

    name = "noisy-greedy"

    def __init__(self, sim: FleetSim, rows: int, noise: float, generator: torch.Generator) -> None:
        self.greedy, self.generator, self.stay = GreedyPolicy(sim), generator, sim.scenario.n_vertiports
        self.sigma = torch.rand(rows, 1, generator=generator, device=sim.device) * noise
        self.threshold = (torch.rand(rows, generator=generator, device=sim.device) - 0.25) * noise

    def act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        profits = self.greedy.profits(obs)  # -inf where not legal, whatever the noise
        noise = torch.randn(profits.shape, generator=self.generator, device=profits.device)
        best, where = (profits + self.sigma * noise).max(1)
        return torch.where(best > self.threshold, where, self.stay)


def _toolbox(sim: FleetSim, settings: GASettings) -> base.Toolbox:
    toolbox = base.Toolbox()
    toolbox.register("mate", tools.cxTwoPoint)
    toolbox.register("mutate", tools.mutUniformInt, low=0, up=sim.scenario.n_vertiports,
                     indpb=settings.gene_mutation_prob)
    toolbox.register("select", tools.selTournament, tournsize=settings.tournament_size)
    return toolbox


def _individuals(plans: torch.Tensor) -> list[Any]:
    """``plans [K, A, S]`` as DEAP individuals (flat lists of Python ints, unscored)."""
    return [creator.FleetGAIndividual(row) for row in plans.reshape(plans.shape[0], -1).tolist()]


def _mark_replan(individual: Any, start_h: float, end_h: float) -> tuple[Any]:
    """The closed-loop mutation: the individual's plan is to be rewritten by perturbed greedy from a uniformly
    random time of the day on (done batched, when the individual is scored: :func:`simulate_plans`)."""
    individual.replan_from_h = random.uniform(start_h, end_h)
    del individual.fitness.values
    return (individual,)


def _evolve_day(sim: FleetSim, day: FleetState, greedy: torch.Tensor | None, settings: GASettings,
                seed: int, bar: Progress | None = None) -> tuple[Any, list[dict[str, float]], int]:
    """One day's GA (``day``: one row; ``greedy [A, S]`` or None): the best individual, the history rows
    and the number of genomes simulated; ``bar`` advances by one per generation. Uses (and expects seeded) the
    global :mod:`random`."""
    s = sim.scenario
    shape = (s.n_aircraft, s.slots)
    toolbox = _toolbox(sim, settings)
    toolbox.register("replan", _mark_replan, start_h=s.day_start_h, end_h=s.day_end_h)
    started = time.perf_counter()
    evaluations = batches = 0

    def score(individuals: Sequence[Any]) -> None:
        """One batched simulation for all of ``individuals`` (the day replicated once each), replanning
        those marked by ``toolbox.replan`` on the way."""
        nonlocal evaluations, batches
        if not individuals:
            return
        plans = torch.tensor(list(individuals), dtype=torch.long, device=sim.device).reshape(-1, *shape)
        from_h = [vars(ind).pop("replan_from_h", math.inf) for ind in individuals]
        replanning = any(math.isfinite(h) for h in from_h)
        replanner = NoisyGreedy(sim, len(individuals), settings.greedy_noise,
                                make_generator(derive_seed(seed, "replan", batches), sim.device))
        profit, decisions = simulate_plans(
            sim, replicate(day, 0, len(individuals)), plans,
            torch.tensor(from_h, dtype=day.time_h.dtype, device=sim.device) if replanning else None,
            replanner if replanning else None)
        rewritten = plans.reshape(len(individuals), -1).tolist() if replanning else None
        for k, (ind, value, count) in enumerate(zip(individuals, profit.tolist(), decisions.tolist(), strict=True)):
            if rewritten is not None and math.isfinite(from_h[k]):
                ind[:] = rewritten[k]
            ind.fitness.values = (value,)
            ind.decisions = count  # kept by toolbox.clone (a deep copy)
        evaluations += len(individuals)
        batches += 1

    population: list[Any] = []
    if greedy is not None:
        population.append(creator.FleetGAIndividual(greedy.reshape(-1).tolist()))
        perturbed = min(settings.population - 1, math.ceil(settings.greedy_share * settings.population) - 1)
        for _ in range(perturbed):  # greedy's day perturbed from its start
            population.append(toolbox.clone(population[0]))
            population[-1].replan_from_h = s.day_start_h
    fresh = settings.population - len(population)
    if fresh > 0:
        random_policy = RandomPolicy(sim, make_generator(derive_seed(seed, "random-start"), sim.device))
        population += _individuals(record_schedule(sim, random_policy, replicate(day, 0, fresh)))
    score(population)
    hall = tools.HallOfFame(settings.elite)
    hall.update(population)
    history = []

    def note(generation: int) -> None:
        values = [ind.fitness.values[0] for ind in population]
        history.append({"generation": generation, "best": max(values), "mean": sum(values) / len(values),
                        "evaluations": evaluations, "seconds": time.perf_counter() - started})

    note(0)
    for generation in range(1, settings.generations + 1):
        if settings.max_seconds is not None and time.perf_counter() - started > settings.max_seconds:
            break
        elites = [toolbox.clone(ind) for ind in hall]  # distinct genomes only: the hall may hold fewer
        offspring = toolbox.select(population, settings.population - len(elites))
        offspring = algorithms.varAnd(offspring, toolbox, settings.crossover_prob, settings.mutation_prob)
        for ind in offspring:
            if random.random() < settings.replan_prob:
                toolbox.replan(ind)
        score([ind for ind in offspring if not ind.fitness.valid])  # unchanged clones keep their score
        hall.update(offspring)
        population = offspring + elites
        note(generation)
        if bar is not None:
            bar.update(1)
            bar.show(best=f"{history[-1]['best']:,.0f}")
    if bar is not None:
        bar.update(settings.generations - (len(history) - 1))  # generations a time cap skipped
    return hall[0], history, evaluations


def plan_day(sim: FleetSim, state: FleetState, settings: GASettings | None = None, progress: bool = False
             ) -> GAPlan:
    """The GA's best plan for every day (row) of ``state``, each day's GA independent (module docstring);
    ``progress``: a bar over the days' generations.

    Seeds the global :mod:`random` per day from ``settings.seed`` and the row index, and restores it after."""
    settings = settings or GASettings()
    s = sim.scenario
    days = state.time_h.shape[0]
    started = time.perf_counter()
    greedy = record_schedule(sim, GreedyPolicy(sim), state) if settings.seed_with_greedy else None
    shared_seconds = (time.perf_counter() - started) / days  # greedy's days, recorded for all days at once
    plans = torch.full((days, s.n_aircraft, s.slots), s.n_vertiports, dtype=torch.long, device=sim.device)
    profit = torch.zeros(days, dtype=torch.float64, device=sim.device)
    decisions = torch.zeros(days, dtype=torch.long, device=sim.device)
    seconds = torch.zeros(days, dtype=torch.float64)
    rows: list[dict[str, float]] = []
    evaluations = 0
    saved = random.getstate()
    bar = Progress(days * settings.generations, f"GA, {days} day(s)", enabled=progress, unit="generation")
    try:
        for b in range(days):
            started = time.perf_counter()
            day_seed = derive_seed(settings.seed, "fleet-ga", b)
            random.seed(day_seed)
            best, history, count = _evolve_day(sim, replicate(state, b, 1), None if greedy is None else greedy[b],
                                               settings, day_seed, bar)
            plans[b] = torch.tensor(best, dtype=torch.long, device=sim.device).reshape(s.n_aircraft, s.slots)
            profit[b] = best.fitness.values[0]
            decisions[b] = best.decisions
            seconds[b] = time.perf_counter() - started + shared_seconds
            rows += [{"day": b, **row} for row in history]
            evaluations += count
    finally:
        random.setstate(saved)
        bar.close()
    history = pl.DataFrame(rows, schema={"day": pl.Int64, "generation": pl.Int64, "best": pl.Float64,
                                         "mean": pl.Float64, "evaluations": pl.Int64, "seconds": pl.Float64})
    return GAPlan(plans, profit, seconds, decisions, history, evaluations)


class GAPolicy:
    """The GA as a clairvoyant policy: :meth:`plan` runs :func:`plan_day` on the start state (every day of
    the batch), :meth:`act` follows the plans. ``planning_seconds`` and ``decisions_planned`` add up over
    :meth:`plan` calls; their ratio is the planning time per decision."""

    name = "ga"

    def __init__(self, sim: FleetSim, settings: GASettings | None = None, progress: bool = False) -> None:
        self.sim, self.settings, self.progress = sim, settings or GASettings(), progress
        self.follower: ScheduleFollower | None = None
        self.last: GAPlan | None = None
        self.planning_seconds = 0.0
        self.decisions_planned = 0

    def plan(self, sim: FleetSim, state: FleetState) -> None:
        self.sim = sim
        self.last = plan_day(sim, state, self.settings, self.progress)
        self.follower = ScheduleFollower(sim, self.last.plans)
        self.planning_seconds += float(self.last.seconds.sum())
        self.decisions_planned += int(self.last.decisions.sum())

    @property
    def seconds_per_decision(self) -> float:
        """Planning wall time per decision of the planned days (nan before any plan)."""
        return self.planning_seconds / self.decisions_planned if self.decisions_planned else math.nan

    def act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.follower is None:
            raise RuntimeError("GAPolicy.act before plan: the GA is clairvoyant, call plan(sim, start_state) "
                               "with the day's start state first")
        return self.follower.act(obs)
