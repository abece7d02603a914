"""Ride-hailing benchmark: simulator speed at city scale, API latency of a dispatch window, and the
learned value policies against the dispatch baselines (also after a demand shift).

``throughput``: simulated hours per wall second at 1k and 10k drivers on one thread, each with the
nearest-driver baseline and with value dispatch + value repositioning (a table learned online on
the same grid), and one whole day with 10,000 drivers and 1,000,000 orders.

``api``: ``POST /v1/ride-hailing/dispatch`` with 1,000 free drivers and 500 open orders on a local
uvicorn server (one worker): p50 and p99 over sequential requests, fare matching and a
registered value policy.

``agents``: on ``city_small`` (peaked, spatially unbalanced demand) the baselines and the policies
learned by ``td_online``, ``offline_value`` and ``v1d3``, on the same held-out days (paired 95% CIs
vs nearest-driver and vs fare matching).

``shift``: the offline value is fitted on the logs of days *before* a new hot spot opens; online TD
alone and V1D3 (online TD blended with that offline value) then learn for the same few days on the
shifted city, and both are scored on held-out shifted days.

    python -m benchmarks.ride_hailing_bench throughput [--no-write]
    python -m benchmarks.ride_hailing_bench api [--requests 300] [--no-write]
    python -m benchmarks.ride_hailing_bench agents [--online-days 64] [--no-write]
    python -m benchmarks.ride_hailing_bench shift [--online-days 8] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

from benchmarks.report import write_section
from benchmarks.serving_load import free_port, start, stop, wait_ready
from decisionlab.core.options import TrainContext
from decisionlab.core.policy import Policy
from decisionlab.core.seeding import make_generator
from decisionlab.domains.ride_hailing.baselines import baseline
from decisionlab.domains.ride_hailing.metrics import episode_metrics, run_days, run_episodes
from decisionlab.domains.ride_hailing.policies import ValuePolicy
from decisionlab.domains.ride_hailing.scenario import PRESETS, CityScenario
from decisionlab.domains.ride_hailing.sim import CitySim
from decisionlab.domains.ride_hailing.train import (
    OfflineValueOptions,
    TDOnlineOptions,
    V1D3Options,
    ValueSettings,
    train_offline_value,
    train_td_online,
    train_v1d3,
)

CPU = torch.device("cpu")
EVAL_SEED = 20261202


def ctx(seed: int = 0) -> TrainContext:
    return TrainContext(seed=seed, device=CPU, progress=True)


def timed_day(scenario: CityScenario, policy: Policy) -> tuple[float, dict[str, float]]:
    """Wall seconds of one simulated horizon of one city, and its totals."""
    sim = CitySim(scenario)
    start_s = time.perf_counter()
    totals = run_episodes(sim, policy, 1, make_generator(0))
    seconds = time.perf_counter() - start_s
    return seconds, {k: float(v.sum()) for k, v in totals.sums.items()}


# --- throughput ---------------------------------------------------------------------------------


def throughput(write: bool, hours: float) -> None:
    torch.set_num_threads(1)
    grid = PRESETS["city_grid"]
    learned = train_td_online(grid, TDOnlineOptions(online_days=1, cities=1, eval_episodes=1), ctx()).policy
    assert isinstance(learned, ValuePolicy)
    rows = ["| drivers | orders/day | horizon | policy | wall s | simulated h per wall s | orders | served |",
            "|---:|---:|---:|---|---:|---:|---:|---:|"]
    for drivers, orders, horizon in ((1_000, 20_000, hours), (10_000, 1_000_000, hours), (10_000, 1_000_000, 24.0)):
        scenario = grid.model_copy(update={"n_drivers": drivers, "orders_per_day": orders, "horizon_hours": horizon,
                                           "start_hour": 0.0 if horizon >= 24 else 7.0})
        policies = [("nearest", baseline("nearest", scenario))] if horizon < 24 else []
        policies.append(("value dispatch + value repositioning", learned.for_scenario(scenario)))
        for name, policy in policies:
            seconds, totals = timed_day(scenario, policy)
            rows.append(f"| {drivers:,} | {orders:,} | {horizon:g} h | {name} | {seconds:.1f} | "
                        f"{horizon / seconds:.3f} | {totals['arrived']:,.0f} | {totals['served']:,.0f} |")
            print(rows[-1], flush=True)
    body = ("### Ride-hailing: simulator speed at city scale\n\n"
            "One city on one thread, 2-second dispatch windows (43,200 a day), 20 × 20 cells of 1 km. "
            "Value policy: a V(cell, hour) table learned online on the same grid (one day, 1,000 drivers). "
            f"The {hours:g}-hour rows start at 7:00 (the morning peak).\n\n" + "\n".join(rows))
    if write:
        write_section("ride_hailing_throughput", body)
    print(body)


# --- api ----------------------------------------------------------------------------------------


def dispatch_window(scenario: CityScenario, drivers: int, orders: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    cells = scenario.grid_size ** 2
    return {
        "time_of_day_s": 30600.0,
        "drivers": [{"id": i, "cell": int(c), "idle_seconds": float(s)} for i, (c, s) in
                    enumerate(zip(rng.integers(0, cells, drivers), rng.uniform(0, 900, drivers), strict=True))],
        "orders": [{"id": 100_000 + j, "origin_cell": int(o), "dest_cell": int(d), "wait_seconds": 2.0}
                   for j, (o, d) in enumerate(zip(rng.integers(0, cells, orders), rng.integers(0, cells, orders),
                                                  strict=True))],
    }


def api(write: bool, requests: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="decisionlab-rh-api-"))
    env = {**os.environ, "DECISIONLAB_HOME": str(folder / "home"), "DECISIONLAB_NUM_THREADS": "1"}
    os.environ["DECISIONLAB_HOME"] = env["DECISIONLAB_HOME"]
    from decisionlab.core.spec import get_domain
    from decisionlab.core.training import train_and_register

    report = train_and_register(get_domain("ride_hailing"), "city_grid", {}, "td_online", seed=0, name="value_grid",
                                device=CPU, progress=False,
                                options={"online_days": 1, "cities": 1, "eval_episodes": 1, "hours_per_day": 3.0})
    port = free_port()
    server = start([sys.executable, "-m", "decisionlab.apps.cli", "serve", "--port", str(port), "--workers", "1",
                    "--log-level", "warning"], env, folder / "api.log")
    url = f"http://127.0.0.1:{port}/v1/ride-hailing/dispatch"
    rows = ["| policy | drivers × orders | p50 ms | p99 ms | mean assigned |", "|---|---|---:|---:|---:|"]
    try:
        wait_ready(f"http://127.0.0.1:{port}", "/ready", timeout_s=600)
        with httpx.Client(timeout=60) as client:
            for policy in ("fare_matching", "nearest", str(report.record.ref)):
                latencies, assigned = [], []
                for i in range(requests + 10):
                    body = {"scenario": "city_grid", "policy": policy, **dispatch_window(PRESETS["city_grid"], 1000,
                                                                                         500, i)}
                    start_s = time.perf_counter()
                    response = client.post(url, json=body)
                    elapsed = (time.perf_counter() - start_s) * 1000
                    response.raise_for_status()
                    if i >= 10:  # the first requests build the policy and warm the caches
                        latencies.append(elapsed)
                        assigned.append(len(response.json()["assignments"]))
                p50, p99 = np.percentile(latencies, [50, 99])
                rows.append(f"| {policy} | 1,000 × 500 | {p50:.1f} | {p99:.1f} | {np.mean(assigned):.0f} |")
                print(rows[-1], flush=True)
    finally:
        stop(server)
    body = ("### Ride-hailing: one dispatch window through the API\n\n"
            f"`POST /v1/ride-hailing/dispatch`, a local uvicorn server with one worker and one torch thread, "
            f"{requests} sequential requests after 10 warm-up ones, each a fresh random window of 1,000 free drivers "
            "and 500 open orders on `city_grid` (K = 11 nearest drivers within 3 km per order); latency measured by "
            "the client, JSON encoding and HTTP included. Target: p99 < 200 ms (the window is 2 s).\n\n"
            + "\n".join(rows))
    if write:
        write_section("ride_hailing_api", body)
    print(body)


# --- agents and the demand shift ------------------------------------------------------------------


def paired(values: dict[str, dict[str, np.ndarray]], reference: str, metric: str, name: str) -> str:
    diff = values[name][metric] - values[reference][metric]
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    return f"{diff.mean():+.4g} ± {half:.3g}"


def table(values: dict[str, dict[str, np.ndarray]], references: tuple[str, ...], seconds: dict[str, float]) -> str:
    head = ["policy", "total income", "answer rate", "completion", "pickup km", "idle share", "Gini", "train s"]
    for ref in references:
        head += [f"income vs {ref}", f"answer rate vs {ref}"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in values.items():
        cells = [name, f"{m['total_income'].mean():,.1f}", f"{m['answer_rate'].mean():.4f}",
                 f"{m['completion_rate'].mean():.4f}", f"{m['mean_pickup_distance'].mean():.3f}",
                 f"{m['idle_share'].mean():.3f}", f"{m['income_gini'].mean():.3f}",
                 f"{seconds[name]:.0f}" if name in seconds else "–"]
        for ref in references:
            cells += ["–", "–"] if name == ref else [paired(values, ref, "total_income", name),
                                                     paired(values, ref, "answer_rate", name)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def bench_scenario(name: str, hours: float, start_hour: float) -> CityScenario:
    return PRESETS[name].model_copy(update={"horizon_hours": hours, "start_hour": start_hour})


def agents(write: bool, online_days: int, history_days: int, episodes: int, iterations: int,
           scenario: CityScenario, label: str) -> None:
    torch.set_num_threads(1)
    values: dict[str, dict[str, np.ndarray]] = {}
    seconds: dict[str, float] = {}
    for name in ("nearest", "max_fare", "fare_matching", "nearest+reposition", "fare_matching+reposition"):
        values[name] = episode_metrics(scenario, baseline(name, scenario), episodes, EVAL_SEED)
        print(name, float(values[name]["total_income"].mean()), flush=True)
    common = {"online_days": online_days, "history_days": history_days, "iterations": iterations, "cities": 8}
    for algo, train, options in (("td_online", train_td_online, TDOnlineOptions),
                                 ("offline_value", train_offline_value, OfflineValueOptions),
                                 ("v1d3", train_v1d3, V1D3Options)):
        start_s = time.perf_counter()
        outcome = train(scenario, options(**{k: v for k, v in common.items() if k in options.model_fields}), ctx())
        seconds[algo] = time.perf_counter() - start_s
        values[algo] = episode_metrics(scenario, outcome.policy.for_scenario(scenario), episodes, EVAL_SEED)
        print(algo, float(values[algo]["total_income"].mean()), flush=True)
    body = ("### Ride-hailing: learned value vs dispatch baselines\n\n"
            f"{label}; 2-second windows; {episodes} held-out days (seed "
            f"{EVAL_SEED}), the same for every policy; paired differences with 95% CIs. Training: `td_online` "
            f"{online_days} days (8 cities at a time), `offline_value` fitted TD on {history_days} days of "
            "`nearest+reposition` logs (HL-Gauss head), `v1d3` both with an hourly ensemble.\n\n"
            + table(values, ("nearest", "fare_matching"), seconds))
    if write:
        write_section("ride_hailing_agents", body)
    print(body)


def shift(write: bool, online_days: int, history_days: int, episodes: int, iterations: int,
          before: CityScenario, label: str) -> None:
    torch.set_num_threads(1)
    after = before.model_copy(update={"new_hotspot_weight": 3.0})
    folder = Path(tempfile.mkdtemp(prefix="decisionlab-rh-shift-"))
    from decisionlab.domains.ride_hailing.triplog import TripLog

    log = TripLog()
    sim = CitySim(before)
    policy = baseline("nearest+reposition", before)
    generator = make_generator(7)
    run_days(sim, policy, history_days, 8, generator, on_step=log, on_batch=lambda totals: log.finish(totals.finish))
    log.write(folder)
    values: dict[str, dict[str, np.ndarray]] = {}
    seconds: dict[str, float] = {}
    for name in ("nearest", "fare_matching"):
        values[name] = episode_metrics(after, baseline(name, after), episodes, EVAL_SEED)
    options = {"online_days": online_days, "cities": 4, "history_log": str(folder), "iterations": iterations}
    for algo, train, model in (("td_online", train_td_online, TDOnlineOptions), ("v1d3", train_v1d3, V1D3Options),
                               ("offline_value (before the shift)", train_offline_value, OfflineValueOptions)):
        start_s = time.perf_counter()
        outcome = train(after, model(**{k: v for k, v in options.items() if k in model.model_fields}), ctx())
        seconds[algo] = time.perf_counter() - start_s
        values[algo] = episode_metrics(after, outcome.policy.for_scenario(after), episodes, EVAL_SEED)
        print(algo, float(values[algo]["total_income"].mean()), flush=True)
    body = ("### Ride-hailing: after a demand shift, online TD alone vs V1D3\n\n"
            f"The offline value is fitted on {history_days} logged days of {label} under `nearest+reposition`; "
            "then a new hot spot opens (`new_hotspot_weight=3`). Online TD alone and V1D3 (online TD from the "
            f"offline value, blended hourly) each learn for {online_days} days on the shifted city; all are scored on "
            f"the same {episodes} held-out shifted days (paired 95% CIs).\n\n"
            + table(values, ("td_online", "fare_matching"), seconds))
    if write:
        write_section("ride_hailing_shift", body)
    print(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--hours", type=float, default=2.0)
    p = sub.add_parser("api")
    p.add_argument("--requests", type=int, default=300)
    for name, days in (("agents", 64), ("shift", 8)):
        p = sub.add_parser(name)
        p.add_argument("--online-days", type=int, default=days)
        p.add_argument("--history-days", type=int, default=32)
        p.add_argument("--episodes", type=int, default=16)
        p.add_argument("--iterations", type=int, default=ValueSettings().iterations)
        p.add_argument("--scenario", default="city_peaks")
        p.add_argument("--hours", type=float, default=6.0, help="simulated hours per day (from --start-hour)")
        p.add_argument("--start-hour", type=float, default=6.0)
    for p in sub.choices.values():
        p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    write = not args.no_write
    if args.command == "throughput":
        throughput(write, args.hours)
    elif args.command == "api":
        api(write, args.requests)
    else:
        scenario = bench_scenario(args.scenario, args.hours, args.start_hour)
        label = (f"`{args.scenario}` from {args.start_hour:g}:00 for {args.hours:g} h (a 'day' below: the morning "
                 "peak and the hours around it)")
        run = agents if args.command == "agents" else shift
        run(write, args.online_days, args.history_days, args.episodes, args.iterations, scenario, label)


if __name__ == "__main__":
    main()
