"""One contextual HDPO policy against the exact DP optimum on the whole Zipkin grid.

Trains one :class:`~decisionlab.domains.inventory.single_store.contextual.ContextualOrderMLP` per seed over the
context distribution of ``ContextualHDPOSettings`` (lead times 1-4, p log-uniform on [3, 50],
h = 1, Poisson demand with mean log-uniform on [3, 8]: a continuous range around the grid, never
the grid itself), then, for every cell (L, p) of the grid (h = 1, Poisson(5)), fixes the cell's
context with ``policy_for`` and compares it with the DP-optimal policy through
``decisionlab.core.evaluation.evaluate_policies`` (common random numbers: the gap is paired, with
a 95% t-interval over episodes). The continuous (unrounded) orders are scored too.

    python -m benchmarks.inventory_contextual                 # fast preset, seeds 0 and 1
    python -m benchmarks.inventory_contextual --seeds 0 --quality precise

Prints a markdown section and writes it into docs/benchmarks.md (``benchmarks.report.write_section``).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from tqdm.auto import tqdm

from benchmarks.report import DOCS, write_section
from decisionlab.core.evaluation import evaluate_policies
from decisionlab.core.spec import get_domain
from decisionlab.domains.inventory.single_store.contextual import policy_for
from decisionlab.domains.inventory.single_store.contextual_train import ContextualHDPOSettings, train_contextual_hdpo
from decisionlab.domains.inventory.single_store.policies import OptimalLostSalesPolicy
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario

ACCEPT = 1.5  # % above the optimum allowed in every cell (the acceptance)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _settings(args: argparse.Namespace) -> ContextualHDPOSettings:
    overrides = {k: v for k, v in (("max_steps", args.max_steps), ("batch_size", args.batch_size)) if v is not None}
    return ContextualHDPOSettings.preset(args.quality, **overrides)


def train(seed: int, args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, float]]:
    """Train one contextual policy; wall and process CPU seconds of the whole call (offset fit included)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    outcome = train_contextual_hdpo(seed, "cpu", progress=False, settings=_settings(args))
    info = {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
            **outcome.metrics}
    return outcome.policy, info


def evaluate_cell(
    networks: dict[int, torch.nn.Module], lead_time: int, penalty: float, args: argparse.Namespace
) -> dict[str, float]:
    """The DP optimum and every seed's network (rounded and continuous orders) on the same demand."""
    scenario = LostSalesScenario(
        lead_time=lead_time, underage_cost=penalty, holding_cost=1.0, demand_mean=args.demand_mean,
        demand_distribution="poisson", horizon_periods=args.horizon, warmup_periods=args.warmup,
    )
    device = torch.device("cpu")
    optimal = OptimalLostSalesPolicy(scenario, device)
    policies: list[tuple[str, object]] = [("optimal", optimal)]
    for seed, network in networks.items():
        policies.append((f"int{seed}", policy_for(network, scenario)))
        continuous = copy.deepcopy(network)
        continuous.integer_orders = False
        policies.append((f"cont{seed}", policy_for(continuous, scenario)))
    report = evaluate_policies(get_domain("inventory"), scenario, policies, episodes=args.episodes,
                               seed=args.eval_seed, device=device)
    table = report.table().filter(pl.col("metric") == "cost_per_period")
    rows = {r["policy"]: r for r in table.iter_rows(named=True)}
    ref = rows["optimal"]["mean"]
    out = {"L": lead_time, "p": penalty, "exact": optimal.average_cost, "optimal_sim": ref}
    for label, r in rows.items():
        if label != "optimal":
            out[f"{label}_cost"] = r["mean"]
            out[f"{label}_gap"] = 100 * r["diff_vs_first"] / ref
            out[f"{label}_ci"] = 100 * r["diff_ci95"] / ref
    return out


def _range(name: str, bounds: tuple[float, float]) -> str:
    lo, hi = bounds
    return f"{name} = {lo:g}" if lo == hi else f"{name} log-uniform on [{lo:g}, {hi:g}]"


def markdown(rows: list[dict[str, float]], trained: dict[int, dict[str, float]], args: argparse.Namespace) -> str:
    s = _settings(args)
    c = s.contexts
    seeds = list(trained)
    lines = [
        f"## One contextual HDPO policy for the whole Zipkin grid (quality `{args.quality}`, "
        f"{s.max_steps} x {s.batch_size})",
        "",
        f"One network per seed, trained once over contexts L ∈ {set(c.lead_times)}, p log-uniform on "
        f"[{c.underage_cost[0]:g}, {c.underage_cost[1]:g}], {_range('h', c.holding_cost)}, "
        f"{c.demand_distribution} demand with mean log-uniform on [{c.demand_mean[0]:g}, "
        f"{c.demand_mean[1]:g}] (a continuous range around the grid; the grid cells are never singled out), "
        f"then given each cell's context. Training: {s.max_steps} steps x {s.batch_size} stores x {s.periods} "
        f"periods (persistent batch, {s.refresh_fraction:.0%} of rows re-drawn per step, per-context normalised "
        f"cost), MLP {'x'.join(map(str, s.hidden))}, lr {s.learning_rate:g} (warm-up {s.warmup_steps}, cosine to "
        f"x{s.final_learning_rate_fraction:g}), one torch thread; integer orders with one rounding offset for all "
        "contexts, fitted on held-out contexts drawn from the same ranges.",
        "",
        f"Evaluation per cell: h = 1, Poisson({args.demand_mean:g}), {args.episodes} episodes x {args.horizon} "
        f"periods ({args.warmup} warm-up) on seed {args.eval_seed}, the same demand for every policy "
        "(`decisionlab.core.evaluation.evaluate_policies`); gap = paired difference to the DP-optimal policy's "
        "simulated cost, ± its 95% CI. `cont.` = the same network without rounding.",
        "",
        "| L | p | DP exact | optimal (sim) | " + " | ".join(
            f"seed {k} gap % (± 95% CI) | seed {k} cont. gap %" for k in seeds) + " |",
        "|---|---|---|---|" + "---|---|" * len(seeds),
    ]
    for r in rows:
        cells = " | ".join(f"{r[f'int{k}_gap']:.3f} ± {r[f'int{k}_ci']:.3f} | {r[f'cont{k}_gap']:.3f}" for k in seeds)
        lines.append(f"| {r['L']} | {r['p']:g} | {r['exact']:.4f} | {r['optimal_sim']:.4f} | {cells} |")
    lines.append("")
    for k in seeds:
        gaps = np.array([r[f"int{k}_gap"] for r in rows])
        upper = np.array([r[f"int{k}_gap"] + r[f"int{k}_ci"] for r in rows])
        t = trained[k]
        ok = "met" if gaps.max() < ACCEPT else "**not met**"
        lines.append(
            f"- Seed {k}: gap mean {gaps.mean():.3f}%, max {gaps.max():.3f}% (max upper 95% bound "
            f"{upper.max():.3f}%); within {ACCEPT:g}% on {int((gaps < ACCEPT).sum())}/{len(rows)} cells "
            f"(acceptance {ok}). Training {t['seconds']:.1f} s wall, {t['cpu_seconds']:.1f} s CPU, "
            f"{int(t['train_steps'])} steps, offset {t.get('order_offset', float('nan')):+.2f}."
        )
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    lines.append(f"- Load average at the end: {load} (2 cores shared with other jobs: trust CPU seconds).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1", help="training seeds (one policy each)")
    parser.add_argument("--quality", choices=["fast", "precise"], default="fast")
    parser.add_argument("--max-steps", type=int, default=None, help="override the preset's steps")
    parser.add_argument("--batch-size", type=int, default=None, help="override the preset's batch")
    parser.add_argument("--lead-times", default="1,2,3,4")
    parser.add_argument("--penalties", default="4,9,19,39")
    parser.add_argument("--demand-mean", type=float, default=5.0)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--horizon", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--eval-seed", type=int, default=2026, help="evaluation demand seed (shared)")
    parser.add_argument("--out", default=str(DOCS), help="markdown file holding the result sections")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    networks, trained = {}, {}
    for seed in _ints(args.seeds):
        networks[seed], trained[seed] = train(seed, args)
        tqdm.write(f"seed {seed}: trained in {trained[seed]['seconds']:.1f} s wall, "
                   f"{trained[seed]['cpu_seconds']:.1f} s CPU")
    rows = []
    cells = [(lt, p) for lt in _ints(args.lead_times) for p in _floats(args.penalties)]
    for lead_time, penalty in tqdm(cells, desc="cells"):
        row = evaluate_cell(networks, lead_time, penalty, args)
        rows.append(row)
        tqdm.write(f"L={lead_time} p={penalty:g}: " + ", ".join(
            f"seed {k} {row[f'int{k}_gap']:.3f}% ± {row[f'int{k}_ci']:.3f}" for k in networks))
    text = markdown(rows, trained, args)
    print(text)
    if not args.no_write:
        # One section per preset; a run with overridden steps or batch gets its own section.
        name = f"inventory-contextual-{args.quality}"
        if args.max_steps is not None or args.batch_size is not None:
            s = _settings(args)
            name += f"-{s.max_steps}x{s.batch_size}"
        write_section(name, text, Path(args.out))


if __name__ == "__main__":
    main()
