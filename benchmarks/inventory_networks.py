"""HDPO against the searched heuristics on every inventory-network setting of the HDPO paper.

For each setting this finds the baselines' levels by simulation search (timed), trains the
HDPO policies of ``--architectures`` (vanilla MLP by default; symmetry-aware, GNN; timed, one CPU
thread; ``--transfer gnn@5`` adds a size-independent policy trained on 5 stores), then evaluates every policy with
``network_episode_metrics`` on the same demand (common random numbers: gaps are paired) and
reports cost per period, the 95% half-width, the paired gap to the best heuristic with its
half-width, and the wall times. Backlog also gets the closed-form optimum.

    .venv/bin/python benchmarks/inventory_networks.py                       # every setting
    .venv/bin/python benchmarks/inventory_networks.py --settings serial,one_warehouse_3 --no-write
    .venv/bin/python benchmarks/inventory_networks.py --settings one_warehouse_50 --merge earlier.json

Writes the table to docs/benchmarks.md (section ``inventory-networks``) unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.report import write_section  # noqa: E402
from decisionlab.core.evaluation import mean_ci95  # noqa: E402
from decisionlab.domains.inventory.network.metrics import network_episode_metrics  # noqa: E402
from decisionlab.domains.inventory.network.scenario import (  # noqa: E402
    BacklogScenario,
    MultiWarehouseScenario,
    NetworkScenario,
    OneWarehouseScenario,
    SerialScenario,
    TransshipmentScenario,
)
from decisionlab.domains.inventory.network.search import search_levels  # noqa: E402
from decisionlab.domains.inventory.network.sim import NetworkSim  # noqa: E402
from decisionlab.domains.inventory.network.train import NetworkHDPOSettings, train_network_hdpo  # noqa: E402

CPU = torch.device("cpu")
HORIZON = {"horizon_periods": 3000, "warmup_periods": 500}

# setting -> (scenario, baselines to search: (label, kind, capped))
SETTINGS: dict[str, tuple[NetworkScenario, list[tuple[str, str, bool]]]] = {
    "backlog": (BacklogScenario(**HORIZON), [("base_stock", "local", False)]),
    "serial": (SerialScenario(**HORIZON), [("base_stock", "local", False), ("echelon_stock", "echelon", False)]),
    **{
        f"one_warehouse_{n}": (
            OneWarehouseScenario(n_stores=n, **HORIZON),
            [("echelon_stock", "echelon", False), ("capped_echelon_stock", "echelon", True)],
        )
        for n in (3, 5, 10, 20, 50)
    },
    "transshipment": (TransshipmentScenario(**HORIZON), [("echelon_stock", "echelon", False)]),
    "multi_warehouse": (
        MultiWarehouseScenario(**HORIZON),
        [("echelon_stock", "echelon", False), ("capped_echelon_stock", "echelon", True)],
    ),
}


def _transfers(text: str) -> list[tuple[str, int]]:
    """``"gnn@5,symmetry@5"`` -> ``[("gnn", 5), ("symmetry", 5)]``."""
    out = []
    for item in filter(None, text.split(",")):
        arch, _, stores = item.partition("@")
        if arch not in ("symmetry", "gnn") or not stores.isdigit():
            raise SystemExit(f"--transfer: expected symmetry@N or gnn@N, got {item!r}")
        out.append((arch, int(stores)))
    return out


def run_setting(name: str, args: argparse.Namespace) -> list[dict[str, object]]:
    scenario, baselines = SETTINGS[name]
    policies: dict[str, object] = {}
    seconds: dict[str, float] = {}
    for label, kind, capped in baselines:
        start = time.perf_counter()
        policies[label] = search_levels(scenario, kind, capped=capped).policy
        seconds[label] = time.perf_counter() - start
        print(f"  {name}: {label} searched in {seconds[label]:.0f} s", flush=True)
    for arch in args.architectures.split(","):
        label = "hdpo" if arch == "vanilla" else f"hdpo_{arch}"
        start = time.perf_counter()
        settings = NetworkHDPOSettings.preset(scenario, args.quality, architecture=arch)
        outcome = train_network_hdpo(scenario, args.seed, CPU, progress=False, settings=settings)
        seconds[label] = time.perf_counter() - start
        policies[label] = outcome.policy
        print(f"  {name}: {label} trained in {seconds[label]:.0f} s ({outcome.metrics['train_steps']:.0f} steps)",
              flush=True)
    for arch, stores in _transfers(args.transfer) if isinstance(scenario, OneWarehouseScenario) else []:
        # A size-independent policy trained on a network with another number of stores, acting here unchanged.
        source = type(scenario)(**{**scenario.model_dump(), "n_stores": stores})  # validated, fresh
        label = f"hdpo_{arch} (trained at N={stores})"
        start = time.perf_counter()
        settings = NetworkHDPOSettings.preset(source, args.quality, architecture=arch)
        outcome = train_network_hdpo(source, args.seed, CPU, progress=False, settings=settings)
        seconds[label] = time.perf_counter() - start
        policies[label] = outcome.policy.bind(NetworkSim(scenario, CPU))
        print(f"  {name}: {label} trained in {seconds[label]:.0f} s", flush=True)
    costs = {label: network_episode_metrics(scenario, policy, args.episodes, args.eval_seed, CPU)["cost_per_period"]
             for label, policy in policies.items()}
    best = min((label for label in costs if not label.startswith("hdpo")), key=lambda label: costs[label].mean())
    rows = []
    for label, values in costs.items():
        mean, half = mean_ci95(values)
        gap, gap_half = mean_ci95(values - costs[best])
        reference = costs[best].mean()
        rows.append({"setting": name, "policy": label, "cost": mean, "ci95": half,
                     "gap_pct": 100 * gap / reference, "gap_ci95_pct": 100 * gap_half / reference,
                     "seconds": seconds[label], "best_heuristic": best})
        trained_here = label.split(" (trained at")[0]
        if trained_here != label and trained_here in costs:  # a transferred policy vs its retrained twin
            diff, diff_half = mean_ci95(values - costs[trained_here])
            rows[-1]["transfer_note"] = (f"{label} vs {trained_here} trained on this network: "
                                         f"{100 * diff / costs[trained_here].mean():+.2f}% "
                                         f"± {100 * diff_half / costs[trained_here].mean():.2f}% (paired)")
    if isinstance(scenario, BacklogScenario):
        rows.append({"setting": name, "policy": "closed form (untruncated normal)",
                     "cost": scenario.critical_fractile_cost(), "ci95": 0.0, "gap_pct": float("nan"),
                     "gap_ci95_pct": float("nan"), "seconds": 0.0, "best_heuristic": best})
    return rows


def markdown(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    lines = [
        "## Inventory networks: HDPO vs searched heuristics",
        "",
        f"Each setting: heuristics' levels by coordinate search on common random numbers; HDPO "
        f"(hdpo = vanilla MLP, hdpo_symmetry, hdpo_gnn; `{args.quality}` preset, seed {args.seed}, one CPU "
        "thread); all evaluated on "
        f"{args.episodes} episodes x {HORIZON['horizon_periods']} periods ({HORIZON['warmup_periods']} warm-up) "
        f"from an empty network, same demand for every policy (seed {args.eval_seed}). Gap: paired, vs the best "
        "heuristic of the setting. Time: search or training wall time (machine shared with other jobs).",
        "",
        "| setting | policy | cost / period | ±95% | gap vs best heuristic | time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        gap = "—" if r["policy"] == r["best_heuristic"] or np.isnan(r["gap_pct"]) else (
            f"{r['gap_pct']:+.2f}% ± {r['gap_ci95_pct']:.2f}%")
        lines.append(f"| {r['setting']} | {r['policy']} | {r['cost']:.4f} | {r['ci95']:.4f} | {gap} | "
                     f"{r['seconds']:.0f} |")
    notes = [f"- {r['transfer_note']}" for r in rows if r.get("transfer_note")]
    return "\n".join(lines + ([""] + notes if notes else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"comma list of {', '.join(SETTINGS)} (empty: only --merge)")
    parser.add_argument("--quality", default="fast", choices=["fast", "precise"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--architectures", default="vanilla",
                        help="comma list of vanilla, symmetry, gnn: the HDPO policies trained per setting")
    parser.add_argument("--transfer", default="",
                        help="one_warehouse settings: comma list of ARCH@STORES (symmetry or gnn), e.g. gnn@5: "
                        "train that policy on STORES stores and evaluate it here unchanged")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--eval-seed", type=int, default=123)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="rows of earlier runs (--json files) to put in the same table, before this run's")
    parser.add_argument("--section", default="inventory-networks", help="section of docs/benchmarks.md to write")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: list[dict[str, object]] = [row for path in args.merge for row in json.loads(path.read_text())]
    fresh: list[dict[str, object]] = []
    for name in filter(None, args.settings.split(",")):
        if name not in SETTINGS:
            parser.error(f"unknown setting {name!r}")
        fresh += run_setting(name, args)
    rows += fresh
    text = markdown(rows, args)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(fresh, indent=2))
    if not args.no_write:
        write_section(args.section, text)

if __name__ == "__main__":
    main()
