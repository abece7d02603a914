"""Taxation benchmark: the exact schedule search against brute force, and the one-step simulator's speed.

``optimal``: wall time of :func:`best_schedule` (the exact best of 21^7 schedules on the 5% grid) at
N = 10, 100 and 1,000 workers, both objectives, one thread; beside it, the time brute force (every
schedule evaluated with exact best responses, batched) takes for a 0.01% sample of the same grid at N = 100,
scaled to the whole grid.

``throughput``: agent-steps per second of the two-level simulator (``OneStepSim``: one planner and N
workers; every agent acts at every decision) at 4, 100 and 1,000 workers per economy with 1,024
economies, one thread, the exact ``saez`` baseline acting (best responses computed in the policy).

``two_level``: ``two_level_ppo`` with its default options on ``one_step`` (N = 10), one objective, several
training seeds: the planner's rates beside ``optimal``'s, the objective of its rates under exact best
responses and under its own learned workers, and the wall time of each training run (one thread).

    python -m benchmarks.taxation_bench optimal [--no-write]
    python -m benchmarks.taxation_bench throughput [--no-write]
    python -m benchmarks.taxation_bench two_level [--objective welfare] [--seeds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from benchmarks.report import write_section
from decisionlab.core import configure_allocator, configure_threads, run
from decisionlab.core.evaluation import mean_ci95
from decisionlab.domains.taxation.economy import Economy
from decisionlab.domains.taxation.optimal import best_schedule
from decisionlab.domains.taxation.policies import saez
from decisionlab.domains.taxation.scenario import OneStepScenario
from decisionlab.domains.taxation.sim import OneStepSim


def brute_force_seconds(scenario: OneStepScenario, share: float = 1e-4, chunk: int = 1 << 14) -> float:
    """Seconds to evaluate ``share`` of all schedules by brute force, scaled to all of them."""
    grid = scenario.rate_grid
    total = len(grid) ** scenario.n_brackets
    wanted = int(total * share)
    economy = Economy(scenario)
    schedules = itertools.product(grid, repeat=scenario.n_brackets)
    start = time.perf_counter()
    done = 0
    while done < wanted and (batch := list(itertools.islice(schedules, min(chunk, wanted - done)))):
        economy.metrics(torch.tensor(batch, dtype=torch.float64))
        done += len(batch)
    return (time.perf_counter() - start) * total / max(done, 1)


def optimal(write: bool) -> None:
    rows = []
    for n in (10, 100, 1000):
        for objective in ("equality_times_productivity", "welfare"):
            scenario = OneStepScenario(n_agents=n, objective=objective)
            start = time.perf_counter()
            found = best_schedule(scenario)
            seconds = time.perf_counter() - start
            shown = " ".join("·" if free else f"{rate:.2f}" for rate, free in zip(found.rates, found.free, strict=True))
            rows.append(f"| {n:,} | {objective} | {found.value:,.4f} | {shown} | {seconds:.2f} |")
            print(rows[-1], flush=True)
    brute = brute_force_seconds(OneStepScenario(n_agents=100))
    body = "\n".join([
        "### Taxation: the exact best schedule on the 5% grid (`one_step`)",
        "",
        "One thread. `best_schedule` searches all 21^7 = 1.8 billion schedules exactly (meet in the middle over "
        "the skill threshold between two halves of the brackets, docs/taxation.md); `·` marks a rate that can "
        "take any grid value without changing any worker's outcome. Target: under 60 s at N = 100.",
        "",
        "| workers | objective | best value | rates | seconds |",
        "|---:|---|---:|---|---:|",
        *rows,
        "",
        f"Brute force (every schedule evaluated with exact best responses, 16,384 at a time) would take "
        f"{brute / 3600:,.1f} hours at N = 100 (timed on 0.01% of the grid and scaled).",
    ])
    if write:
        write_section("taxation_optimal", body)
    print(body)


def throughput(write: bool) -> None:
    rows = []
    for n in (4, 100, 1000):
        scenario = OneStepScenario(n_agents=n, tax_periods=50)
        sim, policy = OneStepSim(scenario), saez(scenario)
        batch = 1024
        run(sim, policy, batch=batch, steps=4)  # warm-up
        start = time.perf_counter()
        run(sim, policy, batch=batch, steps=sim.horizon, until_done=False)
        seconds = time.perf_counter() - start
        agent_steps = batch * sim.horizon * (n + 1)
        rows.append(f"| {n:,} | {batch:,} | {agent_steps / seconds:,.0f} |")
        print(rows[-1], flush=True)
    body = "\n".join([
        "### Taxation: one-step simulator speed",
        "",
        "One thread, 1,024 economies, 100 decisions (50 tax periods: the planner, then the workers); each "
        "decision is one `observe`, the `saez` baseline (the workers' exact best responses) and one `step`. "
        "An agent-step is one agent's action in one economy (N workers + the planner).",
        "",
        "| workers per economy | economies | agent-steps / s |",
        "|---:|---:|---:|",
        *rows,
    ])
    if write:
        write_section("taxation_throughput", body)
    print(body)


def two_level(write: bool, objective: str, seeds: int) -> None:
    from decisionlab.core import TrainContext
    from decisionlab.domains.taxation.saez import one_step_saez_rates
    from decisionlab.domains.taxation.train import TwoLevelOptions, train_two_level

    scenario = OneStepScenario(objective=objective)
    best = best_schedule(scenario)
    economy = Economy(scenario)
    saez_value = float(economy.metrics(torch.tensor([one_step_saez_rates(scenario)]))[objective][0])
    rows, gaps = [], []
    for seed in range(seeds):
        start = time.perf_counter()
        outcome = train_two_level(scenario, TwoLevelOptions(), TrainContext(seed, torch.device("cpu"), progress=False))
        seconds = time.perf_counter() - start
        m = outcome.metrics
        rates = " ".join(f"{m[f'rate_{k}']:.2f}" for k in range(scenario.n_brackets))
        exact, learned = m[f"exact_{objective}"], m["learned_objective"]
        gaps.append(100.0 * (exact / best.value - 1.0))
        rows.append(f"| {seed} | {rates} | {exact:,.4f} | {gaps[-1]:+.2f}% | {learned:,.4f} | {seconds:.0f} |")
        print(rows[-1], flush=True)
    shown = " ".join("·" if free else f"{rate:.2f}" for rate, free in zip(best.rates, best.free, strict=True))
    mean, half = mean_ci95(np.array(gaps))
    body = "\n".join([
        f"### Taxation: two-level PPO against the exact optimum (`one_step`, N = 10, {objective})",
        "",
        "Default options of `two_level_ppo`, one thread, one training run per seed. The planner's rates are "
        "scored twice: under the workers' exact best responses (what the schedule is worth) and under its own "
        "learned workers (what it reached in training). Target: within 2% of `optimal`.",
        "",
        "| seed | planner's rates | exact responses | vs optimal | learned workers | seconds |",
        "|---:|---|---:|---:|---:|---:|",
        *rows,
        f"| `optimal` | {shown} | {best.value:,.4f} | | | |",
        f"| `saez` | | {saez_value:,.4f} | {100.0 * (saez_value / best.value - 1.0):+.2f}% | | |",
        "",
        f"Gap to `optimal` over the seeds: {mean:+.2f}% ± {half:.2f}% (95% t-interval over {len(gaps)} seeds).",
    ])
    if write:
        write_section(f"taxation_two_level_{objective}", body)
    print(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["optimal", "throughput", "two_level"])
    parser.add_argument("--objective", choices=["equality_times_productivity", "welfare"],
                        default="equality_times_productivity")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    configure_threads()
    configure_allocator()
    if args.part == "two_level":
        two_level(not args.no_write, args.objective, args.seeds)
    else:
        (optimal if args.part == "optimal" else throughput)(not args.no_write)


if __name__ == "__main__":
    main()
