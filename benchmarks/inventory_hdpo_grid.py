"""HDPO against the exact DP optimum on the single-store lost-sales grid (Zipkin 2008 set-up).

For every cell (lead time L, lost-sales penalty p; h = 1, Poisson(5) demand) this trains an
HDPO policy (seed 0) with ``train_hdpo(..., quality=...)``, then evaluates it and the DP-optimal
policy with ``episode_metrics`` on the same demand (common random numbers: the gap is paired),
and reports the DP's exact average cost, both simulated costs, the gaps and the training time.

    python -m benchmarks.inventory_hdpo_grid --quality fast
    python -m benchmarks.inventory_hdpo_grid --lead-times 1,4 --penalties 4,39 --quality precise

Prints a markdown table and writes it (with the command, date and machine) to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmarks.report import DOCS, cpu_model, write_section
from decisionlab.domains.inventory.single_store.metrics import episode_metrics
from decisionlab.domains.inventory.single_store.policies import OptimalLostSalesPolicy
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario
from decisionlab.domains.inventory.single_store.train import HDPOSettings, train_hdpo


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def run_cell(lead_time: int, penalty: float, args: argparse.Namespace) -> dict[str, float]:
    scenario = LostSalesScenario(
        lead_time=lead_time, underage_cost=penalty, holding_cost=args.holding, demand_mean=args.demand_mean,
        demand_distribution="poisson", horizon_periods=args.horizon, warmup_periods=args.warmup,
    )
    device = torch.device("cpu")
    start, cpu_start = time.perf_counter(), time.process_time()
    outcome = train_hdpo(scenario, args.seed, device, progress=False, settings=HDPOSettings.preset(args.quality))
    seconds = time.perf_counter() - start  # everything train_hdpo does, offset fit included
    cpu_seconds = time.process_time() - cpu_start
    torch.set_num_threads(args.threads)
    optimal = OptimalLostSalesPolicy(scenario, device)
    hdpo_cost = episode_metrics(scenario, outcome.policy, args.episodes, args.eval_seed, device)["cost_per_period"]
    opt_cost = episode_metrics(scenario, optimal, args.episodes, args.eval_seed, device)["cost_per_period"]
    diff = hdpo_cost - opt_cost
    exact = optimal.average_cost
    return {
        "L": lead_time, "p": penalty, "exact": exact, "optimal_sim": float(opt_cost.mean()),
        "hdpo": float(hdpo_cost.mean()),
        "gap_paired": 100 * float(diff.mean() / opt_cost.mean()),
        "gap_paired_se": 100 * float(diff.std(ddof=1) / np.sqrt(len(diff)) / opt_cost.mean()),
        "gap_exact": 100 * (float(hdpo_cost.mean()) - exact) / exact,
        "seconds": seconds, "cpu_seconds": cpu_seconds, "steps": int(outcome.metrics["train_steps"]),
        "offset": float(outcome.metrics.get("order_offset", float("nan"))),
    }


def markdown(rows: list[dict[str, float]], args: argparse.Namespace, command: str) -> str:
    settings = HDPOSettings.preset(args.quality)
    lines = [
        f"### HDPO vs exact DP, single-store lost sales, quality `{args.quality}`",
        "",
        f"- Command: `{command}`",
        f"- Date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Machine: {cpu_model()}, {torch.get_num_threads() if args.threads is None else args.threads} "
        f"torch thread(s) of {len(__import__('os').sched_getaffinity(0))} cores, torch {torch.__version__}, "
        f"Python {platform.python_version()}",
        f"- Scenario: Poisson({args.demand_mean:g}) demand, h = {args.holding:g}; evaluation "
        f"{args.episodes} episodes x {args.horizon} periods ({args.warmup} warm-up) on seed {args.eval_seed}, "
        "the same demand for HDPO and the DP-optimal policy (paired).",
        f"- Training (seed {args.seed}): {settings.max_steps} steps x {settings.batch_size} stores x "
        f"{settings.periods} periods, lr {settings.learning_rate:g} (warm-up {settings.warmup_steps}, cosine to "
        f"x{settings.final_learning_rate_fraction:g}), persistent batch, integer orders with a fitted rounding "
        "offset. `train s` is the wall time of `train_hdpo` (offset fit included, evaluation excluded), "
        "`CPU s` its process CPU time: on a shared machine (other jobs running) wall time exceeds CPU time.",
        "",
        "| L | p | DP exact | optimal (sim) | HDPO (sim) | gap vs sim. optimal % (± s.e.) | gap vs exact % "
        "| train s | CPU s | steps | offset |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['L']} | {r['p']:g} | {r['exact']:.4f} | {r['optimal_sim']:.4f} | {r['hdpo']:.4f} | "
            f"{r['gap_paired']:.3f} ± {r['gap_paired_se']:.3f} | {r['gap_exact']:+.3f} | {r['seconds']:.1f} | "
            f"{r['cpu_seconds']:.1f} | {r['steps']} | {r['offset']:+.3f} |"
        )
    if rows:
        gaps = [r["gap_paired"] for r in rows]
        secs = [r["seconds"] for r in rows]
        cpu = [r["cpu_seconds"] for r in rows]
        load = " / ".join(f"{x:.1f}" for x in __import__("os").getloadavg())
        lines += [
            "",
            f"Paired gap: mean {np.mean(gaps):.3f}%, max {np.max(gaps):.3f}%; train time: mean "
            f"{np.mean(secs):.1f} s, max {np.max(secs):.1f} s wall (CPU mean {np.mean(cpu):.1f} s, max "
            f"{np.max(cpu):.1f} s) over {len(rows)} cells. Load average at the end: {load}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lead-times", default="1,2,3,4")
    parser.add_argument("--penalties", default="4,9,19,39")
    parser.add_argument("--quality", choices=["fast", "precise"], default="fast")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--horizon", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--holding", type=float, default=1.0)
    parser.add_argument("--demand-mean", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--eval-seed", type=int, default=2026, help="evaluation demand seed (shared)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the evaluation")
    parser.add_argument("--out", default=str(DOCS), help="markdown file holding the result sections")
    args = parser.parse_args(argv)
    command = " ".join(shlex.quote(a) for a in ["python", "-m", "benchmarks.inventory_hdpo_grid",
                                                *(sys.argv[1:] if argv is None else argv)])
    torch.set_num_threads(args.threads)
    cells = [(lt, p) for lt in _ints(args.lead_times) for p in _floats(args.penalties)]
    rows = []
    bar = tqdm(cells, desc=f"HDPO grid ({args.quality})")
    for lead_time, penalty in bar:
        bar.set_postfix(L=lead_time, p=f"{penalty:g}")
        row = run_cell(lead_time, penalty, args)
        rows.append(row)
        tqdm.write(f"L={lead_time} p={penalty:g}: gap {row['gap_paired']:.3f}% ± {row['gap_paired_se']:.3f} "
                   f"(vs exact {row['gap_exact']:+.3f}%), {row['seconds']:.1f} s, {row['steps']} steps")
    text = markdown(rows, args, command)
    print(text)
    # One section per quality and set of cells: re-running a subset replaces only its own section.
    write_section(f"inventory-hdpo-{args.quality}-L{args.lead_times}-p{args.penalties}", text, Path(args.out))


if __name__ == "__main__":
    main()
