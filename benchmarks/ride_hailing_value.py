"""Ride-hailing: the learned value (online TD, V1D3) against the strongest fair heuristic, over training
seeds, held-out 24-hour days, and after a demand shift; plus the same-dispatcher ablations.

Run through :mod:`benchmarks.ride_hailing_bench` (``agents`` and ``shift``). Jobs (a baseline's
evaluation, or one training seed with its evaluations) run in ``--workers`` processes, one torch
thread each; every policy is scored on the same held-out days (one evaluation seed), so differences
are paired by day.

Intervals: a baseline row's paired difference is over days (t with days − 1 degrees of freedom). A
learned policy's ``mean over seeds`` row takes each seed's mean paired difference and gives the
t-interval over seeds (seeds − 1 degrees of freedom), so it carries the training seed's variance as
well as the days'.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from decisionlab.core.options import TrainContext
from decisionlab.core.seeding import make_generator
from decisionlab.domains.ride_hailing.baselines import LOG_SEED, LOGGED_DAYS, baseline
from decisionlab.domains.ride_hailing.demand import logged_demand
from decisionlab.domains.ride_hailing.metrics import episode_metrics, run_days
from decisionlab.domains.ride_hailing.policies import CityPolicy, ValuePolicy
from decisionlab.domains.ride_hailing.scenario import CityScenario
from decisionlab.domains.ride_hailing.sim import CitySim
from decisionlab.domains.ride_hailing.train import TDOnlineOptions, V1D3Options, train_td_online, train_v1d3

EVAL_SEED = 20261207
Metrics = dict[str, np.ndarray]
HEURISTIC = "nearest+reposition_estimated"


@dataclass
class Plan:
    """What one benchmark run trains and scores."""

    train_on: CityScenario         # the city the value learns on (online days)
    evaluate_on: CityScenario      # the held-out days' city
    seeds: tuple[int, ...]
    episodes: int
    online_days: int
    history_days: int
    iterations: int
    cities: int
    baselines: tuple[str, ...]
    history_log: str | None = None
    ablations: bool = True         # the same-dispatcher ablations on the first seed
    offline_alone: bool = True     # also score V1D3's offline value alone
    options: dict = field(default_factory=dict)


def evaluate(scenario: CityScenario, policy: object, episodes: int) -> Metrics:
    return episode_metrics(scenario, policy, episodes, EVAL_SEED)


def baseline_job(plan: Plan, name: str) -> tuple[str, Metrics, float]:
    torch.set_num_threads(1)
    start_s = time.perf_counter()
    values = evaluate(plan.evaluate_on, baseline(name, plan.evaluate_on), plan.episodes)
    return name, values, time.perf_counter() - start_s


def seed_job(plan: Plan, seed: int) -> tuple[int, dict[str, Metrics], dict[str, float], tuple[dict, dict]]:
    """Train ``td_online`` and ``v1d3`` with ``seed`` and score them (and, on the first seed, the ablations)."""
    torch.set_num_threads(1)
    ctx = TrainContext(seed=seed, device=torch.device("cpu"), progress=False)
    common = {"online_days": plan.online_days, "history_days": plan.history_days, "iterations": plan.iterations,
              "cities": plan.cities, "eval_episodes": 1, "history_log": plan.history_log, **plan.options}
    out: dict[str, Metrics] = {}
    seconds: dict[str, float] = {}
    trained: tuple[dict, dict] = ({}, {})
    after = plan.evaluate_on
    for algo, train, model in (("td_online", train_td_online, TDOnlineOptions), ("v1d3", train_v1d3, V1D3Options)):
        start_s = time.perf_counter()
        outcome = train(plan.train_on, model(**{k: v for k, v in common.items() if k in model.model_fields}), ctx)
        seconds[algo] = time.perf_counter() - start_s
        policy = outcome.policy
        assert isinstance(policy, ValuePolicy)
        out[algo] = evaluate(after, policy.for_scenario(after), plan.episodes)
        if algo != "v1d3":
            continue
        if plan.ablations:
            out["v1d3 frozen (no online learning)"] = evaluate(after, policy.frozen().for_scenario(after),
                                                              plan.episodes)
        assert policy.anchor is not None
        offline = policy.with_value(policy.anchor)
        if plan.offline_alone:
            out["offline value alone (frozen)"] = evaluate(after, offline.for_scenario(after), plan.episodes)
        trained = (policy.config(), policy.state_dict())
    return seed, out, seconds, trained


def ablation_job(plan: Plan, seed: int, trained: tuple[dict, dict]) -> tuple[int, dict[str, Metrics]]:
    """Same-dispatcher ablations of a trained V1D3 (frozen snapshot, so only the swapped part differs)."""
    torch.set_num_threads(1)
    policy = ValuePolicy.from_config(trained[0])
    policy.load_state_dict(trained[1])
    scenario, episodes = plan.evaluate_on, plan.episodes
    estimated = logged_demand(scenario, LOGGED_DAYS, LOG_SEED)
    learned_demand = torch.tensor(policy.demand) if policy.demand is not None else None

    def city(dispatch: str, reposition: str, demand: torch.Tensor | None) -> CityPolicy:
        return CityPolicy(scenario, dispatch, reposition, value=policy.value, gamma=policy.gamma,
                          gamma_period_s=policy.gamma_period_s, demand=demand)

    variants = {
        "ablation: value dispatch + demand chasing (estimated)": city("value", "demand", estimated),
        "ablation: nearest dispatch + value_supply repositioning": city("nearest", "value_supply", learned_demand),
        "ablation: value dispatch + value repositioning without supply": city("value", "value", learned_demand),
        "ablation: value dispatch, no repositioning": city("value", "stay", None),
    }
    return seed, {name: evaluate(scenario, p, episodes) for name, p in variants.items()}


def history_log(scenario: CityScenario, days: int, folder: Path) -> str:
    """Trip log of ``days`` days of ``scenario`` under ``nearest+reposition_estimated`` (the earlier days)."""
    from decisionlab.domains.ride_hailing.triplog import TripLog

    log = TripLog()
    run_days(CitySim(scenario), baseline(HEURISTIC, scenario), days, 4, make_generator(7), on_step=log,
             on_batch=lambda totals: log.finish(totals.finish))
    log.write(folder)
    return str(folder)


def run_plan(plan: Plan, workers: int, report: Callable[[str], None] = print) -> tuple[dict, dict]:
    """All jobs of ``plan`` (the longest first); returns ``({policy: {seed or None: metrics}}, {policy: s})``."""
    values: dict[str, dict[int | None, Metrics]] = {}
    seconds: dict[str, float] = {}
    # Spawned, not forked: a forked worker deadlocks on locks of the parent's thread pools (polars
    # wrote the shift's trip log before the pool starts).
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        seed_futures = [pool.submit(seed_job, plan, seed) for seed in plan.seeds]
        base_futures = [pool.submit(baseline_job, plan, name) for name in plan.baselines]
        for future in base_futures:
            name, metrics, _ = future.result()
            values[name] = {None: metrics}
            report(f"{name}: income {metrics['total_income'].mean():,.1f}")
        ablation_futures = []
        for future in seed_futures:
            seed, out, took, trained = future.result()
            if plan.ablations and seed == plan.seeds[0]:
                ablation_futures.append(pool.submit(ablation_job, plan, seed, trained))
            for name, metrics in out.items():
                values.setdefault(name, {})[seed] = metrics
                report(f"{name} seed {seed}: income {metrics['total_income'].mean():,.1f}")
            for name, s in took.items():
                seconds[name] = seconds.get(name, 0.0) + s / len(plan.seeds)
        for future in ablation_futures:
            seed, out = future.result()
            for name, metrics in out.items():
                values.setdefault(name, {})[seed] = metrics
                report(f"{name} seed {seed}: income {metrics['total_income'].mean():,.1f}")
    return values, seconds


# --- the table --------------------------------------------------------------------------------------


def interval(samples: np.ndarray) -> str:
    """``mean ± half-width`` of the 95% t-interval of ``samples``."""
    n = len(samples)
    half = stats.t.ppf(0.975, n - 1) * samples.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
    return f"{samples.mean():+,.4g} ± {half:,.3g}"


def rows_of(values: dict[str, dict[int | None, Metrics]]) -> list[tuple[str, str, dict[int | None, Metrics]]]:
    """``(row label, seed label, {seed: metrics})`` per table row: one per baseline, and per learned
    policy one per seed then the mean over seeds."""
    rows = []
    for name, by_seed in values.items():
        if None in by_seed:
            rows.append((name, "–", by_seed))
            continue
        for seed in sorted(by_seed):
            rows.append((f"{name} (seed {seed})", str(seed), {seed: by_seed[seed]}))
        if len(by_seed) > 1:
            rows.append((f"**{name}**", f"mean of {len(by_seed)}", by_seed))
    return rows


def difference(by_seed: dict[int | None, Metrics], reference: dict[int | None, Metrics], metric: str) -> str:
    """Paired by day against a baseline (``reference[None]``) or, for a learned reference, against
    its run of the same training seed."""
    per_day = {seed: m[metric] - reference[None if None in reference else seed][metric]
               for seed, m in by_seed.items() if None in reference or seed in reference}
    if not per_day:
        return "–"
    if len(per_day) == 1:
        return interval(next(iter(per_day.values())))  # over days
    return interval(np.array([d.mean() for d in per_day.values()]))  # over seeds


def table(values: dict[str, dict[int | None, Metrics]], references: tuple[str, ...], seconds: dict[str, float]) -> str:
    head = ["policy", "seed", "total income", "answer rate", "completion", "pickup km", "idle share", "train s"]
    for ref in references:
        head += [f"income vs {ref}", f"answer rate vs {ref}"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for label, seed_label, by_seed in rows_of(values):
        pooled = {k: np.mean([m[k].mean() for m in by_seed.values()]) for k in next(iter(by_seed.values()))}
        base = label.strip("*").split(" (seed")[0]
        cells = [label, seed_label, f"{pooled['total_income']:,.1f}", f"{pooled['answer_rate']:.4f}",
                 f"{pooled['completion_rate']:.4f}", f"{pooled['mean_pickup_distance']:.3f}",
                 f"{pooled['idle_share']:.3f}", f"{seconds[base]:.0f}" if base in seconds else "–"]
        for ref in references:
            if base == ref:
                cells += ["–", "–"]
                continue
            reference = values[ref]
            cells += [difference(by_seed, reference, "total_income"), difference(by_seed, reference, "answer_rate")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shifted_plan(before: CityScenario, seeds: tuple[int, ...], episodes: int, online_days: int, history_days: int,
                 iterations: int, cities: int, weight: float = 3.0) -> tuple[Plan, tempfile.TemporaryDirectory]:
    """A plan whose offline value is fitted on the trip log of ``history_days`` days before a new hot
    spot opens, then learns online (and is scored) on the shifted city."""
    after = before.model_copy(update={"new_hotspot_weight": weight})
    folder = tempfile.TemporaryDirectory(prefix="decisionlab-rh-shift-")
    log = history_log(before, history_days, Path(folder.name))
    plan = Plan(train_on=after, evaluate_on=after, seeds=seeds, episodes=episodes, online_days=online_days,
                history_days=history_days, iterations=iterations, cities=cities,
                baselines=("nearest", "nearest+reposition", HEURISTIC), history_log=log, ablations=False)
    return plan, folder
