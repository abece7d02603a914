"""Data efficiency on ``one_warehouse``: held-out cost vs number of training scenarios for the
vanilla MLP, the symmetry-aware net and the GNN (the HDPO paper's second claim).

A *training scenario* is one fixed sample: a random start state and a demand path of
``periods`` periods. Each run trains by HDPO on a fixed set of ``k`` scenarios (``persistent=False``:
minibatches are drawn from that set, nothing fresh is ever sampled), with model selection on a
simulated dev set of 512 paths (fixed size for every ``k``, as in the paper), then is scored on
long held-out episodes (common random numbers for every run). ``relative_gap`` = cost / the best
mean cost any ``k`` reached for that architecture − 1.

    python -m benchmarks.inventory_data_efficiency                       # N=10, k in 16..8192, 2 seeds
    python -m benchmarks.inventory_data_efficiency --stores 5 --sizes 16,256 --seeds 0 --no-write

Writes the rows of this network size into ``domains/inventory/data/data_efficiency.csv`` (one file
for every size, read by the dashboard and the notebook), the plotly figure
``docs/figures/inventory_data_efficiency.html`` (one panel per size) and the
``inventory-data-efficiency-<N>`` section of docs/benchmarks.md (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl
import torch
from tqdm.auto import tqdm

from benchmarks.report import write_section
from decisionlab.core.evaluation import mean_ci95
from decisionlab.core.store.atomic import atomic_write_bytes
from decisionlab.domains.inventory.network.efficiency import efficiency_figure, efficiency_summary
from decisionlab.domains.inventory.network.metrics import network_episode_metrics
from decisionlab.domains.inventory.network.scenario import OneWarehouseScenario
from decisionlab.domains.inventory.network.train import NetworkHDPOSettings, train_network_hdpo

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT / "domains" / "inventory" / "data" / "data_efficiency.csv"
FIGURE = ROOT / "docs" / "figures" / "inventory_data_efficiency.html"
CPU = torch.device("cpu")
ARCHITECTURES = ("vanilla", "symmetry", "gnn")


def run(arch: str, k: int, seed: int, scenario: OneWarehouseScenario, args: argparse.Namespace) -> dict:
    settings = NetworkHDPOSettings.preset(
        scenario, architecture=arch, persistent=False, train_paths=k, batch_size=min(args.batch_size, k),
        max_steps=args.steps,
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    outcome = train_network_hdpo(scenario, seed, CPU, progress=False, settings=settings)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    costs = network_episode_metrics(scenario, outcome.policy, args.episodes, args.eval_seed, CPU)["cost_per_period"]
    mean, half = mean_ci95(costs)
    return {"stores": scenario.n_stores, "architecture": arch, "train_scenarios": k, "seed": seed,
            "cost_per_period": mean, "ci95": half,
            "train_seconds": seconds, "train_cpu_seconds": cpu_seconds}


def with_gaps(frame: pl.DataFrame) -> pl.DataFrame:
    """Adds ``relative_gap``: cost / (best seed-mean cost of the architecture over all sizes) − 1, per
    network size."""
    best = (frame.group_by("stores", "architecture", "train_scenarios").agg(pl.col("cost_per_period").mean())
            .group_by("stores", "architecture").agg(pl.col("cost_per_period").min().alias("best")))
    return (frame.join(best, on=["stores", "architecture"])
            .with_columns((pl.col("cost_per_period") / pl.col("best") - 1).alias("relative_gap")).drop("best"))


def smallest_within(frame: pl.DataFrame, tolerance: float = 0.02, common: bool = False) -> dict[str, int | None]:
    """Per architecture: the fewest training scenarios whose seed-mean cost is within ``tolerance`` of
    the architecture's own best (``common``: of the best cost any architecture reached); None if no
    size is."""
    means = frame.group_by("architecture", "train_scenarios").agg(pl.col("cost_per_period").mean().alias("cost"))
    best = means.group_by("architecture").agg(pl.col("cost").min().alias("best"))
    means = means.join(best, on="architecture")
    if common:
        means = means.with_columns(pl.lit(means["cost"].min()).alias("best"))
    means = means.with_columns((pl.col("cost") / pl.col("best") - 1).alias("relative_gap"))
    out: dict[str, int | None] = {}
    for arch in ARCHITECTURES:
        if arch not in frame["architecture"].to_list():
            continue
        ok = means.filter((pl.col("architecture") == arch) & (pl.col("relative_gap") <= tolerance))
        out[arch] = int(ok["train_scenarios"].min()) if ok.height else None
    return out


def markdown(frame: pl.DataFrame, args: argparse.Namespace) -> str:
    summary = (frame.group_by("architecture", "train_scenarios")
               .agg(pl.col("cost_per_period").mean().alias("cost"), pl.col("cost_per_period").std().alias("sd"),
                    pl.col("relative_gap").mean().alias("gap"), pl.col("train_seconds").mean().alias("secs"))
               .sort("architecture", "train_scenarios"))
    sizes = sorted(frame["train_scenarios"].unique().to_list())
    lines = [
        f"## Inventory: data efficiency on one_warehouse (N = {args.stores})",
        "",
        f"HDPO on a fixed set of k training scenarios (random start + {args.periods}-period demand path), "
        f"{args.steps} steps, batch min(k, {args.batch_size}), model selection on a 512-path simulated dev set; "
        f"held-out cost on {args.episodes} episodes x 3,000 periods (500 warm-up), same demand for every run; "
        f"seeds {args.seeds}. Gap: vs the best seed-mean cost of the same architecture over all k.",
        "",
        "| architecture | " + " | ".join(f"k = {k:,}" for k in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for arch in ARCHITECTURES:
        rows = summary.filter(pl.col("architecture") == arch)
        if not rows.height:
            continue
        cells = []
        for k in sizes:
            row = rows.filter(pl.col("train_scenarios") == k)
            cells.append("—" if not row.height else f"{row['cost'][0]:.2f} ({100 * row['gap'][0]:+.1f}%)")
        lines.append(f"| {arch} | " + " | ".join(cells) + " |")
    for common in (False, True):
        fewest = smallest_within(frame, common=common)
        target = "the best cost any architecture reached" if common else "the architecture's own best"
        lines += ["", f"Fewest training scenarios within 2% of {target}: "
                  + ", ".join(f"{arch} {'—' if k is None else f'{k:,}'}" for arch, k in fewest.items()) + "."]
        if fewest.get("vanilla"):
            ratios = [f"{arch} {fewest['vanilla'] / k:.0f}x" for arch, k in fewest.items() if arch != "vanilla" and k]
            lines.append("Scenarios the vanilla net needs per scenario the shared-weight nets need: "
                         + ", ".join(ratios) + ".")
    if args.report_only:
        lines.append(f"Runs: `python -m benchmarks.inventory_data_efficiency --stores {args.stores} --architectures "
                     f"ARCHS --rows FILE` (one process per group of architectures, appending to one rows file), "
                     f"then this report with `--report-only`. Sizes with no run show —.")
    seconds = summary.group_by("architecture").agg(pl.col("secs").mean())
    lines.append("Mean training time per run (s, one thread, shared machine): "
                 + ", ".join(f"{r['architecture']} {r['secs']:.0f}" for r in seconds.sort("architecture").to_dicts())
                 + ". Figure: `docs/figures/inventory_data_efficiency.html`; data: "
                 "`domains/inventory/data/data_efficiency.csv` (plotted by the dashboard).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--sizes", default="16,64,256,1024,8192")
    parser.add_argument("--architectures", default=",".join(ARCHITECTURES))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--periods", type=int, default=32)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--eval-seed", type=int, default=123)
    parser.add_argument("--rows", type=Path, help="JSON-lines file: finished runs are appended to it and runs "
                        "already in it are skipped (resume; several processes may share one file)")
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the runs in --rows")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scenario = OneWarehouseScenario(n_stores=args.stores, horizon_periods=3000, warmup_periods=500)
    jobs = [(arch, int(k), int(seed)) for arch in args.architectures.split(",")
            for k in args.sizes.split(",") for seed in args.seeds.split(",")]
    rows = [json.loads(line) for line in args.rows.read_text().splitlines()] if args.rows and args.rows.exists() else []
    rows = [{"stores": args.stores, **r} for r in rows if r.get("stores", args.stores) == args.stores]
    done = {(r["architecture"], r["train_scenarios"], r["seed"]) for r in rows}
    for arch, k, seed in tqdm([] if args.report_only else [j for j in jobs if j not in done], desc="data efficiency"):
        rows.append(run(arch, k, seed, scenario, args))
        tqdm.write(f"{arch:9s} k={k:5d} seed={seed}: {rows[-1]['cost_per_period']:.3f} "
                   f"({rows[-1]['train_seconds']:.0f} s)")
        if args.rows:
            with args.rows.open("a") as out:
                out.write(json.dumps(rows[-1]) + "\n")
    frame = with_gaps(pl.DataFrame(rows))
    text = markdown(frame, args)
    print(text)
    if not args.no_write:
        # One file for every network size: this run replaces the rows of its size only.
        CSV.parent.mkdir(parents=True, exist_ok=True)
        if CSV.exists():
            frame = pl.concat([pl.read_csv(CSV).filter(pl.col("stores") != args.stores), frame], how="diagonal_relaxed")
        frame = frame.sort("stores", "architecture", "train_scenarios", "seed")
        atomic_write_bytes(CSV, frame.write_csv().encode())
        FIGURE.parent.mkdir(parents=True, exist_ok=True)
        efficiency_figure(efficiency_summary(frame)).write_html(FIGURE, include_plotlyjs="cdn")
        write_section(f"inventory-data-efficiency-{args.stores}", text)


if __name__ == "__main__":
    main()
