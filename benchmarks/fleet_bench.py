"""Fleet benchmark: simulator speed, the assign API's latency, and the learned policy against greedy, random,
the clairvoyant GA and (on ``uam_small``) the exact perfect-information bound.

``throughput``: decisions per second at 1 and 1,024 days in the batch, one thread, random legal choices
(the simulator with its masks and full observation) and greedy.

``api``: ``POST /v1/fleet/assign`` on ``uam_8x40`` (40 aircraft, a quarter of them free) on a local uvicorn
server (one worker): p50 / p99 over sequential requests, greedy and a registered graph policy.

``agents``: PPO (three training seeds) on ``uam_8x40`` against random and greedy on the same held-out days
(paired 95% t-intervals), the GA on a subset of those days (it plans each day: minutes), and the decision
time of each (the GA's planning time per decision included).

``small``: on ``uam_small`` the exact bound (HiGHS), the GA, PPO and greedy on the same days: each one's
gap to the bound.

``transfer``: the policies trained on 8 vertiports / 40 aircraft act on 12 / 60 without retraining, against
greedy and a policy retrained there.

``ga_budget``: the GA's quality and time as its generations grow, on the first ``--ga-days`` of the ``agents``
days, against the three PPO policies that ``agents`` saved: one GA run per day to the largest budget, read at
each smaller one from its history (the best plan's profit is what executing it earns: the GA is
clairvoyant), and PPO's time per decision with 1 day, the GA's days and the agents table's `--days` in one batch.

    python -m benchmarks.fleet_bench throughput [--no-write]
    python -m benchmarks.fleet_bench api [--requests 300] [--no-write]
    python -m benchmarks.fleet_bench agents [--steps 100000] [--days 64] [--ga-days 8] [--no-write]
    python -m benchmarks.fleet_bench small [--days 8] [--steps 100000] [--time-limit 60] [--no-write]
    python -m benchmarks.fleet_bench transfer [--steps 100000] [--days 64] [--no-write]
    python -m benchmarks.fleet_bench ga_budget [--ga-days 8] [--days 64] [--generations 15 50 150] [--jobs 1]
        [--no-write]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import torch

from benchmarks.report import publish
from benchmarks.serving_load import free_port, start, stop, wait_ready
from decisionlab.core import TrainContext, derive_seed, make_generator, rebuild_policy
from decisionlab.core.store.atomic import atomic_path, atomic_write_bytes
from decisionlab.domains.fleet.ga import GAPolicy, GASettings, plan_day, replicate
from decisionlab.domains.fleet.graph_policy import FleetGraphPolicy
from decisionlab.domains.fleet.metrics import episode_metrics
from decisionlab.domains.fleet.policies import GreedyPolicy, RandomLegalPolicy
from decisionlab.domains.fleet.scenario import PRESETS, FleetScenario
from decisionlab.domains.fleet.sim import FleetSim
from decisionlab.domains.fleet.train import FleetPPOOptions, train_fleet_ppo

CPU = torch.device("cpu")
EVAL_SEED = 20261206
SEEDS = (0, 1, 2)
RESULTS = Path(__file__).resolve().parent.parent / ".decisionlab" / "fleet_bench"  # trained weights (ignored by git)
GA_FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "fleet_ga_budget.html"


def ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and 95% t-interval half-width (scipy's t quantile: the GA rows have few days)."""
    from scipy import stats

    n = len(values)
    half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return float(values.mean()), half


def fmt(mean: float, half: float) -> str:
    return f"{mean:,.0f} ± {half:,.0f}"


# --- throughput -----------------------------------------------------------------------------------


def decisions_per_second(sim: FleetSim, policy: Any, batch: int, steps: int) -> float:
    state = sim.reset(batch, make_generator(0))
    none = torch.zeros(batch, 0)
    for _ in range(5):
        state = sim.step(state, policy.act(sim.observe(state)), none).state
    start_s = time.perf_counter()
    for _ in range(steps):
        state = sim.step(state, policy.act(sim.observe(state)), none).state
    return batch * steps / (time.perf_counter() - start_s)


def throughput(write: bool) -> None:
    torch.set_num_threads(1)
    rows = ["| scenario | policy | days in the batch | decisions / s |", "|---|---|---:|---:|"]
    for name in ("uam_8x40", "uam_small"):
        sim = FleetSim(PRESETS[name])
        for label, policy in (("random", RandomLegalPolicy(sim)), ("greedy", GreedyPolicy(sim))):
            for batch, steps in ((1, 2000), (1024, 200)):
                rate = decisions_per_second(sim, policy, batch, steps)
                rows.append(f"| {name} | {label} | {batch:,} | {rate:,.0f} |")
                print(rows[-1], flush=True)
    body = ("### Fleet: simulator speed\n\n"
            "One thread; each decision is one `observe` (the full observation: vertiport, aircraft, forecast and "
            "mask tensors) + the policy + one `step` (dynamics, rules re-checked). Target: ≥ 500,000 decisions/s "
            "at 1,024 days.\n\n" + "\n".join(rows))
    publish("fleet_throughput", body, write)


# --- api ------------------------------------------------------------------------------------------


def snapshot(scenario: FleetScenario, seed: int) -> dict[str, Any]:
    """A random mid-morning state of the fleet: a quarter of the aircraft free, passengers waiting."""
    rng = np.random.default_rng(seed)
    v, a = scenario.n_vertiports, scenario.n_aircraft
    ports = rng.permutation(np.repeat(np.arange(v), scenario.parking_pads))[:a]  # within every vertiport's pads
    aircraft = [{"id": 1000 + k, "vertiport": int(ports[k]),
                 "battery_kwh": float(rng.uniform(30, scenario.battery_kwh)),
                 "free_in_h": 0.0 if k < a // 4 else float(rng.uniform(0.05, 0.5))} for k in range(a)]
    waiting = [{"origin": i, "destination": j, "passengers": float(rng.poisson(2.0))}
               for i in range(v) for j in range(v) if i != j]
    return {"time_h": 8.5, "aircraft": aircraft, "waiting": waiting, "closed_routes": []}


def api(write: bool, requests: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="decisionlab-fleet-api-"))
    env = {**os.environ, "DECISIONLAB_HOME": str(folder / "home"), "DECISIONLAB_NUM_THREADS": "1"}
    os.environ["DECISIONLAB_HOME"] = env["DECISIONLAB_HOME"]
    from decisionlab.core.spec import get_domain
    from decisionlab.core.training import train_and_register

    report = train_and_register(get_domain("fleet"), "uam_8x40", {}, "ppo", seed=0, name="graph_8x40", device=CPU,
                                progress=False, options={"total_env_steps": 2048, "num_envs": 32, "rollout_steps": 32,
                                                         "eval_days": 4, "imitation_steps": 50})
    port = free_port()
    server = start([sys.executable, "-m", "decisionlab.apps.cli", "serve", "--port", str(port), "--workers", "1",
                    "--log-level", "warning"], env, folder / "api.log")
    url = f"http://127.0.0.1:{port}/v1/fleet/assign"
    rows = ["| policy | aircraft (free) | p50 ms | p99 ms | server decision ms (p50) |", "|---|---|---:|---:|---:|"]
    scenario = PRESETS["uam_8x40"]
    try:
        wait_ready(f"http://127.0.0.1:{port}", "/ready", timeout_s=600)
        with httpx.Client(timeout=60) as client:
            for policy in ("greedy", str(report.record.ref)):
                latencies, server_ms = [], []
                for i in range(requests + 10):
                    body = {"scenario": "uam_8x40", "policy": policy, **snapshot(scenario, i)}
                    start_s = time.perf_counter()
                    response = client.post(url, json=body)
                    elapsed = (time.perf_counter() - start_s) * 1000
                    response.raise_for_status()
                    if i >= 10:  # the first requests build the policy and warm the caches
                        latencies.append(elapsed)
                        server_ms.append(response.json()["decision_ms"])
                p50, p99 = np.percentile(latencies, [50, 99])
                rows.append(f"| {policy} | 40 ({scenario.n_aircraft // 4}) | {p50:.1f} | {p99:.1f} | "
                            f"{np.median(server_ms):.1f} |")
                print(rows[-1], flush=True)
    finally:
        stop(server)
    body = ("### Fleet: `POST /v1/fleet/assign` through a real server\n\n"
            f"A local uvicorn server with one worker and one torch thread, {requests} sequential requests after 10 "
            "warm-up ones, each a fresh random `uam_8x40` snapshot (40 aircraft, 10 of them free and deciding one "
            "after another, 56 waiting origin–destination pairs); latency measured by the client, JSON and HTTP "
            "included. Target: p99 < 50 ms.\n\n" + "\n".join(rows))
    publish("fleet_api", body, write)


# --- agents ---------------------------------------------------------------------------------------


def train(scenario: FleetScenario, seed: int, steps: int) -> FleetGraphPolicy:
    options = FleetPPOOptions(total_env_steps=steps)
    outcome = train_fleet_ppo(scenario, options, TrainContext(seed, CPU, True))
    print(f"seed {seed}: {json.dumps({k: round(v, 2) for k, v in outcome.metrics.items()})}", flush=True)
    return outcome.policy


def save(policy: FleetGraphPolicy, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in policy.state_dict().items()}, str(path.with_suffix(".safetensors")))
    path.with_suffix(".json").write_text(json.dumps(policy.config()))


def load(path: Path, scenario: FleetScenario) -> Any:
    from safetensors.torch import load_file

    config = json.loads(path.with_suffix(".json").read_text())
    return rebuild_policy(config, load_file(str(path.with_suffix(".safetensors"))), scenario, CPU)


def compare(scenario: FleetScenario, policies: dict[str, Any], days: int,
            seed: int) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for label, policy in policies.items():
        start_s = time.perf_counter()
        out[label] = episode_metrics(scenario, policy, days, seed, CPU)
        print(f"{label}: {out[label]['daily_profit'].mean():,.0f} $/day ({time.perf_counter() - start_s:.0f} s)",
              flush=True)
    return out


def agents(write: bool, steps: int, days: int, ga_days: int) -> None:
    torch.set_num_threads(1)
    scenario = PRESETS["uam_8x40"]
    sim = FleetSim(scenario)
    learned = {}
    for seed in SEEDS:
        policy = train(scenario, seed, steps)
        save(policy, RESULTS / f"fleet_ppo_uam_8x40_seed{seed}")
        learned[f"ppo (seed {seed})"] = policy
    base = {"random": RandomLegalPolicy(sim), "greedy": GreedyPolicy(sim)}
    values = compare(scenario, {**base, **learned}, days, EVAL_SEED)
    rows = ["| policy | daily profit $ (95% CI) | vs greedy (paired) | vs random (paired) | served share | "
            "utilisation | ms / decision |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, v in values.items():
        rows.append(f"| {label} | {fmt(*ci(v['daily_profit']))} | "
                    f"{fmt(*ci(v['daily_profit'] - values['greedy']['daily_profit']))} | "
                    f"{fmt(*ci(v['daily_profit'] - values['random']['daily_profit']))} | "
                    f"{v['demand_served_share'].mean():.3f} | {v['utilisation'].mean():.3f} | "
                    f"{v['decision_ms'].mean():.3f} |")
    # the GA plans each day (minutes each): the first ga_days of the same days
    ga = GAPolicy(sim, GASettings(), progress=True)
    sub = compare(scenario, {"ga": ga, "greedy": base["greedy"], **learned}, ga_days, EVAL_SEED)
    ga_rows = ["| policy | daily profit $ (95% CI) | vs GA (paired) | ms / decision |", "|---|---:|---:|---:|"]
    for label, v in sub.items():
        ga_rows.append(f"| {label} | {fmt(*ci(v['daily_profit']))} | "
                       f"{fmt(*ci(v['daily_profit'] - sub['ga']['daily_profit']))} | {v['decision_ms'].mean():.3f} |")
    ppo_ms = np.mean([sub[label]["decision_ms"].mean() for label in learned])
    ratio = sub["ga"]["decision_ms"].mean() / ppo_ms
    body = ("### Fleet: PPO with the graph policy against greedy, random and the GA (`uam_8x40`)\n\n"
            f"PPO (greedy imitation, then {steps:,} env steps of PPO) with three training seeds; every policy on the "
            f"same {days} held-out days (paired differences, 95% t-intervals over days).\n\n" + "\n".join(rows)
            + f"\n\nThe clairvoyant GA (DEAP; it knows each day's demand and disruptions in advance) on the first "
            f"{ga_days} of those days:\n\n" + "\n".join(ga_rows)
            + f"\n\nDecision time: the GA needs {ratio:,.0f}× the PPO policy's time per decision (its planning "
            "included).")
    publish("fleet_agents", body, write)


# --- small: the exact bound ------------------------------------------------------------------------


def small(write: bool, steps: int, days: int, time_limit_s: float) -> None:
    from decisionlab.domains.fleet.exact import ExactPolicy, ExactSettings

    torch.set_num_threads(1)
    scenario = PRESETS["uam_small"]
    sim = FleetSim(scenario)
    learned = {f"ppo (seed {seed})": train(scenario, seed, steps) for seed in SEEDS}
    # the exact policy solves each day's MILP once when it plans: its bound is the table's reference
    exact = ExactPolicy(sim, ExactSettings(time_limit_s=time_limit_s))
    policies = {"exact (its plan, executed)": exact, "ga": GAPolicy(sim, GASettings(), progress=True),
                "greedy": GreedyPolicy(sim), "random": RandomLegalPolicy(sim), **learned}
    values = compare(scenario, policies, days, EVAL_SEED)
    bound = exact.bound
    assert bound is not None
    upper = np.asarray(bound.upper_bound, dtype=float)
    greedy = values["greedy"]["daily_profit"]
    rows = ["| policy | daily profit $ (95% CI) | gap to the bound (paired) | gap % | vs greedy (paired) |",
            "|---|---:|---:|---:|---:|"]
    rows.append(f"| **exact bound** (HiGHS dual bound of the MILP) | {fmt(*ci(upper))} | 0 | 0 | "
                f"{fmt(*ci(upper - greedy))} |")
    for label, v in values.items():
        gap = upper - v["daily_profit"]
        rows.append(f"| {label} | {fmt(*ci(v['daily_profit']))} | {fmt(*ci(gap))} | "
                    f"{100 * gap.mean() / upper.mean():.1f} | {fmt(*ci(v['daily_profit'] - greedy))} |")
    gaps = ", ".join(f"{100 * g:.1f}%" for g in np.asarray(bound.mip_gap, dtype=float))
    body = ("### Fleet: gaps to the exact perfect-information bound (`uam_small`)\n\n"
            f"{days} days; the bound is HiGHS's dual bound of a MILP relaxation of each day with every arrival and "
            f"disruption known (HiGHS via scipy, limit {time_limit_s:,.0f} s per day, {np.mean(bound.seconds):.0f} s "
            f"per day spent, statuses {sorted(set(bound.status))}, HiGHS's own gaps between its incumbent and its "
            f"bound per day: {gaps}): no policy, clairvoyant or not, earns more on that day. PPO: three "
            f"training seeds, {steps:,} env steps each.\n\n" + "\n".join(rows))
    publish("fleet_small", body, write)


# --- transfer -------------------------------------------------------------------------------------


def transfer(write: bool, steps: int, days: int) -> None:
    torch.set_num_threads(1)
    bigger = PRESETS["uam_8x40"].model_copy(update={"n_vertiports": 12, "n_aircraft": 60})
    sim = FleetSim(bigger)
    policies: dict[str, Any] = {"greedy": GreedyPolicy(sim), "random": RandomLegalPolicy(sim)}
    transferred, retrained = [], []
    for seed in SEEDS:
        path = RESULTS / f"fleet_ppo_uam_8x40_seed{seed}"
        if path.with_suffix(".json").exists():
            transferred.append(f"trained on 8/40 (seed {seed})")
            policies[transferred[-1]] = load(path, bigger)
    if steps > 0:  # --steps 0: only the transferred policies
        for seed in SEEDS:
            retrained.append(f"retrained on 12/60 (seed {seed})")
            policies[retrained[-1]] = train(bigger, seed, steps)
    values = compare(bigger, policies, days, EVAL_SEED)
    profit = {label: v["daily_profit"] for label, v in values.items()}
    rows = ["| policy | daily profit $ (95% CI) | vs greedy (paired) |", "|---|---:|---:|"]
    for label, v in profit.items():
        rows.append(f"| {label} | {fmt(*ci(v))} | {fmt(*ci(v - profit['greedy']))} |")
    body = ("### Fleet: the policy trained on 8 vertiports / 40 aircraft acting on 12 / 60\n\n"
            f"The same weights (no retraining) on {days} held-out days of a 12-vertiport, 60-aircraft network, "
            + (f"against greedy and policies retrained there ({steps:,} env steps, seeds {list(SEEDS)}).\n\n"
               if steps > 0 else "against greedy (no retrained policy in this run).\n\n") + "\n".join(rows))
    if transferred and retrained:
        # seed k transferred against seed k retrained (paired over days), then the mean over seeds ± t
        pairs = ["| transferred − retrained | seed | daily profit $ (paired, 95% CI over days) |", "|---|---|---:|"]
        means = []
        for seed, (moved, fresh) in enumerate(zip(transferred, retrained, strict=False)):
            diff = profit[moved] - profit[fresh]
            means.append(diff.mean())
            pairs.append(f"| | {seed} | {fmt(*ci(diff))} |")
        pairs.append(f"| **all seeds** (t over seeds) | {len(means)} | {fmt(*ci(np.asarray(means)))} |")
        body += "\n\n" + "\n".join(pairs)
    publish("fleet_transfer", body, write)


# --- ga_budget ------------------------------------------------------------------------------------


def saved_policies(scenario: FleetScenario) -> dict[str, Any]:
    """The PPO policies of the last ``agents`` run (one per seed)."""
    paths = [RESULTS / f"fleet_ppo_uam_8x40_seed{seed}" for seed in SEEDS]
    missing = [str(path) for path in paths if not path.with_suffix(".json").exists()]
    if missing:
        raise SystemExit(f"ga_budget reads the policies `agents` saved; run `python -m benchmarks.fleet_bench "
                         f"agents` first (missing: {', '.join(missing)})")
    return {f"ppo (seed {seed})": load(path, scenario) for seed, path in zip(SEEDS, paths, strict=True)}


def ga_day(scenario: FleetScenario, ga_days: int, day: int, generations: int) -> pl.DataFrame:
    """The GA's history on held-out day ``day`` (of the first ``ga_days``, sampled as ``compare`` samples them),
    run to ``generations``: one row per generation (``best``, ``mean``, ``evaluations``, ``seconds``) with
    ``day`` and the best plan's ``decisions``. Stored in :data:`RESULTS` (parquet, written atomically) and
    reused when the same day, scenario and GA settings are asked again: a 1,000-generation day is ~20
    minutes on one core, and a killed run keeps the days it finished. Delete the files to rerun them."""
    settings = GASettings(generations=generations, seed=derive_seed(0, "ga_budget", day))
    # day k is the same in a batch of any size (the simulator draws each day from its own stream), so the key
    # leaves out ga_days: a run over more days reuses the days a shorter one planned
    run_key = json.dumps([scenario.model_dump(mode="json"), settings.model_dump(mode="json"), day, EVAL_SEED],
                         sort_keys=True)  # any change to the day, the scenario or the GA: another run
    path = RESULTS / f"ga_day_{hashlib.sha256(run_key.encode()).hexdigest()[:16]}.parquet"
    if path.exists():
        print(f"GA day {day}: history reused from {path.name}", flush=True)
        return pl.read_parquet(path)
    torch.set_num_threads(1)
    sim = FleetSim(scenario)
    state = sim.reset(ga_days, make_generator(EVAL_SEED, CPU))  # the days episode_metrics samples
    plan = plan_day(sim, replicate(state, day, 1), settings, progress=True)
    stored = plan.history.with_columns(pl.lit(day).alias("day"), pl.lit(int(plan.decisions[0])).alias("decisions"))
    with atomic_path(path) as temporary:  # a killed run leaves no half file to be reused
        stored.write_parquet(temporary)
    return stored


def ga_history(scenario: FleetScenario, ga_days: int, generations: int, jobs: int) -> tuple[Any, np.ndarray, int]:
    """The GA's history (one row per day and generation) and decisions per day on the first ``ga_days`` held-out
    days (:func:`ga_day`), ``jobs`` days at a time in separate processes (each one thread: the days are
    independent GA runs, so this changes no figure, only the wall time)."""
    tasks = [(scenario, ga_days, day, generations) for day in range(ga_days)]
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(min(jobs, ga_days)) as pool:
            frames = pool.starmap(ga_day, tasks)
    else:
        frames = [ga_day(*task) for task in tasks]
    stored = pl.concat(frames).sort("day", "generation")
    per_day = stored.group_by("day").agg(pl.col("decisions").first()).sort("day")
    return stored.drop("decisions"), per_day["decisions"].to_numpy().astype(np.float64), GASettings().population


def ga_budget_figure(history: Any, decisions: np.ndarray, ppo: dict[str, Any], ppo_one_ms: float) -> Any:
    """Two panels over the GA's generations: its daily profit (mean over the days, 95% t band) beside each PPO
    seed's, and its planning ms per decision beside PPO's one-day time and 1,000 times it."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    per_generation = history.group_by("generation").agg(pl.col("best"), pl.col("seconds").sum()).sort("generation")
    gens = per_generation["generation"].to_numpy()
    bands = np.array([ci(np.asarray(best)) for best in per_generation["best"].to_list()])  # [G, 2]: mean, half
    ms = 1000.0 * per_generation["seconds"].to_numpy() / decisions.sum()
    figure = make_subplots(rows=1, cols=2, subplot_titles=("daily profit ($)", "planning ms per decision"))
    figure.add_trace(go.Scatter(x=np.r_[gens, gens[::-1]], y=np.r_[bands[:, 0] + bands[:, 1], (bands[:, 0]
                                - bands[:, 1])[::-1]], fill="toself", line={"width": 0}, opacity=0.2,
                                name="GA 95% CI", showlegend=False), row=1, col=1)
    figure.add_trace(go.Scatter(x=gens, y=bands[:, 0], name="GA (mean over the days)"), row=1, col=1)
    for label, values in ppo.items():
        figure.add_trace(go.Scatter(x=[gens[0], gens[-1]], y=[values["daily_profit"].mean()] * 2, name=label,
                                    line={"dash": "dash"}), row=1, col=1)
    figure.add_trace(go.Scatter(x=gens, y=ms, name="GA ms / decision"), row=1, col=2)
    figure.add_trace(go.Scatter(x=[gens[0], gens[-1]], y=[ppo_one_ms] * 2, name="PPO, one day", line={"dash": "dash"}),
                     row=1, col=2)
    figure.add_trace(go.Scatter(x=[gens[0], gens[-1]], y=[1000 * ppo_one_ms] * 2, name="1,000 × PPO, one day",
                                line={"dash": "dot"}), row=1, col=2)
    figure.update_xaxes(title_text="generations", type="log")
    figure.update_yaxes(type="log", row=1, col=2)
    figure.update_layout(height=420, margin={"t": 40})
    return figure


def ga_budget(write: bool, ga_days: int, generations: list[int], days: int, jobs: int = 1) -> None:
    torch.set_num_threads(1)
    scenario = PRESETS["uam_8x40"]
    learned = saved_policies(scenario)
    ppo = compare(scenario, learned, ga_days, EVAL_SEED)
    def warm_ms(policy: Any, batch: int) -> float:
        """PPO's ms per decision over ``batch`` days in one batch, the second time (the first traces the net
        for this input shape, once per process)."""
        episode_metrics(scenario, policy, batch, EVAL_SEED, CPU)
        return float(episode_metrics(scenario, policy, batch, EVAL_SEED, CPU)["decision_ms"].mean())

    one_day = {label: warm_ms(policy, 1) for label, policy in learned.items()}  # no other day shares the batch
    many = {label: warm_ms(policy, days) for label, policy in learned.items()}  # the agents table's days
    history, decisions, population = ga_history(scenario, ga_days, max(generations), jobs)
    ppo_batch_ms = float(np.mean([warm_ms(policy, ga_days) for policy in learned.values()]))
    ppo_one_ms = float(np.mean(list(one_day.values())))
    ppo_many_ms = float(np.mean(list(many.values())))
    rows = ["| GA generations | GA daily profit $ (95% CI) | GA ms / decision | "
            + " | ".join(f"{label} − GA (paired)" for label in learned)
            + f" | time ratio vs PPO, 1 day | {ga_days} days in the batch | {days} days |",
            "|---:|---:|---:|" + "---:|" * len(learned) + "---:|---:|---:|"]
    for g in sorted(generations):
        at = history.filter(history["generation"] == g).sort("day")
        profit, seconds = at["best"].to_numpy(), at["seconds"].to_numpy()
        ms = 1000.0 * seconds.sum() / decisions.sum()
        gaps = [f"{fmt(*ci(v['daily_profit'] - profit))} ({100 * (v['daily_profit'].mean() / profit.mean() - 1):+.1f}%)"
                for v in ppo.values()]
        rows.append(f"| {g} | {fmt(*ci(profit))} | {ms:.1f} | " + " | ".join(gaps)
                    + f" | {ms / ppo_one_ms:,.0f}× | {ms / ppo_batch_ms:,.0f}× | {ms / ppo_many_ms:,.0f}× |")
        print(rows[-1], flush=True)
    body = ("### Fleet: the GA's budget against its profit and its time (`uam_8x40`)\n\n"
            f"One GA run per day ({max(generations)} generations of {population} genomes; DEAP), read at "
            f"each budget from its history, on the first {ga_days} held-out days of the `agents` table; the three "
            f"PPO policies that run saved, on the same days (paired differences, 95% t over days). PPO's time per "
            f"decision: {ppo_one_ms:.3f} ms with one day alone, {ppo_batch_ms:.3f} ms with the {ga_days} days in one "
            f"batch, {ppo_many_ms:.3f} ms with the agents table's {days} days in one batch (the decisions of "
            "different days go through the network together; each measured on a second run, the first having "
            "traced the network for that batch). The GA's time per decision: its planning seconds "
            "over the decisions of its days (the seconds at a budget are those it had spent by that generation; "
            "the decisions, those of its final plans); it plans one day at a time, each generation's genomes "
            "simulated in one batch. Its history is stored in `.decisionlab/fleet_bench` and reused by a rerun "
            "with the same days, scenario and GA settings.\n\n" + "\n".join(rows))
    figure = ga_budget_figure(history.filter(pl.col("generation") >= 1), decisions, ppo, ppo_one_ms)
    if write:
        atomic_write_bytes(GA_FIGURE, figure.to_html(include_plotlyjs="cdn").encode())
        body += f"\n\nFigure: `{GA_FIGURE.relative_to(GA_FIGURE.parents[2])}`."
    publish("fleet_ga_budget", body, write)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["throughput", "api", "agents", "small", "transfer", "ga_budget"])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=64)
    parser.add_argument("--ga-days", type=int, default=8)
    parser.add_argument("--generations", type=int, nargs="+", default=[15, 50, 150],
                        help="ga_budget: the GA budgets to read (the largest is run)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="small: HiGHS seconds per day")
    parser.add_argument("--jobs", type=int, default=1, help="ga_budget: days planned at once, one process each")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    write = not args.no_write
    if args.part == "throughput":
        throughput(write)
    elif args.part == "api":
        api(write, args.requests)
    elif args.part == "agents":
        agents(write, args.steps, args.days, args.ga_days)
    elif args.part == "small":
        small(write, args.steps, min(args.days, 16), args.time_limit)
    elif args.part == "ga_budget":
        ga_budget(write, args.ga_days, args.generations, args.days, args.jobs)
    else:
        transfer(write, args.steps, args.days)


if __name__ == "__main__":
    main()
