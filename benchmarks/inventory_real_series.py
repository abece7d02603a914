"""real_series: the data-driven HDPO policy against every baseline on held-out periods.

Builds the ``real_series`` preset (or overrides of it), fits every baseline on the training span,
trains the HDPO policy (one network over the demand window, shared by every series) for each
seed, and backtests everything on the held-out periods. Every policy replays the same history, so
differences are paired across series: the table gives each policy's mean cost per period with its
95% CI over series, and its paired difference to HDPO (policy − HDPO; positive: HDPO is cheaper)
with that difference's 95% CI. The acceptance check: HDPO beats every newsvendor variant by more
than the CI of the paired difference.

    .venv/bin/python benchmarks/inventory_real_series.py                 # preset, seed 0, writes docs
    .venv/bin/python benchmarks/inventory_real_series.py --seeds 0,1,2
    .venv/bin/python benchmarks/inventory_real_series.py --set lead_time=5 --no-write
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.report import write_section  # noqa: E402
from decisionlab.core.evaluation import mean_ci95  # noqa: E402
from decisionlab.core.scenario import parse_overrides, resolve_scenario  # noqa: E402
from decisionlab.domains.inventory.series.metrics import episode_metrics  # noqa: E402
from decisionlab.domains.inventory.series.policies import NEWSVENDOR_FAMILY, SERIES_POLICIES  # noqa: E402
from decisionlab.domains.inventory.series.scenario import SCENARIOS, RealSeriesScenario, series_data  # noqa: E402
from decisionlab.domains.inventory.series.train import SeriesHDPOSettings, train_series_hdpo  # noqa: E402

SECTION = "inventory-real-series"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="scenario key=value")
    parser.add_argument("--seeds", default="0", help="HDPO seeds, comma-separated (the first fills the main table)")
    parser.add_argument("--max-steps", type=int, default=None, help="HDPO gradient steps (default: the settings')")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device("cpu")
    scenario = resolve_scenario(RealSeriesScenario, SCENARIOS["real_series"], parse_overrides(args.overrides))
    data = series_data(scenario)
    n = data.n_series
    print(f"{n} series, {data.periods} periods, held out from {data.dates[data.split]} "
          f"({data.periods - data.split} periods)", flush=True)

    results: dict[str, np.ndarray] = {}
    fills: dict[str, float] = {}
    seconds: dict[str, float] = {}
    admissible: dict[str, bool] = {}
    for name, (_, build, is_admissible) in SERIES_POLICIES.items():
        start = time.perf_counter()
        policy = build(scenario, device)
        seconds[name] = time.perf_counter() - start
        metrics = episode_metrics(scenario, policy, n, 0, device)
        results[name], fills[name] = metrics["cost_per_period"], float(metrics["fill_rate"].mean())
        admissible[name] = is_admissible
        print(f"{name:22s} {results[name].mean():8.3f}  (fit {seconds[name]:.1f} s)", flush=True)

    settings = SeriesHDPOSettings() if args.max_steps is None else SeriesHDPOSettings(max_steps=args.max_steps)
    seeds = _ints(args.seeds)
    per_seed: list[tuple[int, float, float, np.ndarray]] = []
    for seed in seeds:
        start = time.perf_counter()
        outcome = train_series_hdpo(scenario, seed, device, progress=False, settings=settings)
        train_seconds = time.perf_counter() - start
        costs = episode_metrics(scenario, outcome.policy, n, 0, device)
        per_seed.append((seed, train_seconds, outcome.metrics["dev_cost_per_period"], costs["cost_per_period"]))
        if seed == seeds[0]:
            results = {"hdpo": costs["cost_per_period"], **results}
            fills["hdpo"], seconds["hdpo"], admissible["hdpo"] = float(costs["fill_rate"].mean()), train_seconds, True
        print(f"hdpo seed {seed}: {costs['cost_per_period'].mean():.3f} (train {train_seconds:.0f} s)", flush=True)

    hdpo = results["hdpo"]
    rows = ["| policy | cost / period | 95% CI | − HDPO (paired) | 95% CI | vs HDPO | fill rate | fit / train s |",
            "|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for name, costs in results.items():
        mean, half = mean_ci95(costs)
        label = name if admissible[name] else f"{name} (non-admissible)"
        if name == "hdpo":
            diff_cells = "— | — | —"
        else:
            diff, diff_half = mean_ci95(costs - hdpo)
            diff_cells = f"{diff:+.3f} | ±{diff_half:.3f} | {100 * (mean / hdpo.mean() - 1):+.1f}%"
            if name in NEWSVENDOR_FAMILY:
                verdicts.append((name, diff, diff_half, diff > diff_half))
        rows.append(f"| {label} | {mean:.3f} | ±{half:.3f} | {diff_cells} | {fills[name]:.3f} | {seconds[name]:.0f} |")

    seed_rows = ["| seed | train s | dev cost | held-out cost | HDPO − transformed_quantile (paired) |",
                 "|---|---|---|---|---|"]
    for seed, train_seconds, dev, costs in per_seed:
        diff, half = mean_ci95(costs - results["transformed_quantile"])
        seed_rows.append(
            f"| {seed} | {train_seconds:.0f} | {dev:.3f} | {costs.mean():.3f} | {diff:+.3f} ± {half:.3f} |"
        )

    passed = all(ok for *_, ok in verdicts)
    s = scenario
    source = f"synthetic generator, seed {s.synthetic_seed}" if s.data_path is None else s.data_path
    body = "\n".join(
        [
            "## Inventory: real_series (demand from time series, held-out periods)",
            "",
            f"{n} store-item series ({source}), "
            f"{data.periods} daily periods; held out: the last {data.periods - data.split} periods from "
            f"{data.dates[data.split]} (never read by any fit, search or model selection). L = {s.lead_time}, "
            f"h = {s.holding_cost:g}, p_i = {s.underage_cost:g}·U[{1 - s.underage_cost_spread:g}, "
            f"{1 + s.underage_cost_spread:g}], {s.shortage.replace('_', ' ')}; policies see the last "
            f"{s.window_periods} periods of demand. Each series is replayed from {s.warmup_periods} periods before "
            "the split with an empty store; the warm-up is not scored. CIs are over series (t, 95%); differences "
            "are paired across series (every policy replays the same history).",
            "",
            *rows,
            "",
            "Acceptance (HDPO beats every newsvendor variant by more than the 95% CI of the paired difference): "
            + ("**met**" if passed else "**not met**") + " — "
            + "; ".join(f"{name} {diff:+.3f} ± {half:.3f}" for name, diff, half, _ in verdicts) + ".",
            "",
            "HDPO across seeds (each trained and selected on the training span only):",
            "",
            *seed_rows,
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
