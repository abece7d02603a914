"""Scale-out on Ray: a sweep and a large evaluation at 1 and 2 workers, beside the local path.

    python -m benchmarks.scaling [--episodes 1000000] [--steps 30] [--write-docs]

- **evaluation**: ``base_stock`` on lost sales (episodes of 100 periods, the first 20 not scored), on the
  local path, then sharded on Ray over 1 and 2 workers; the three must print the same numbers.
- **sweep**: 2 seeds x 3 learning rates of HDPO on lost sales (``--steps`` steps each), local, then Ray
  Tune with 1 and 2 trials at once; per-trial results must match.

Every Ray run is timed from the call (the local Ray already started and warm with one task, so Ray's own
start-up, a few seconds once per cluster, is not counted; the workers' start and their imports are). The
table goes to docs/benchmarks.md (``scaling`` section) with ``--write-docs``; docs/scaling.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import machine, write_section


def _evaluation(episodes: int) -> list[dict[str, Any]]:
    import torch

    from decisionlab.core.evaluation import evaluate_policies
    from decisionlab.core.evaluation_ray import evaluate_on_ray
    from decisionlab.core.resolve import build_policy
    from decisionlab.core.spec import get_domain

    spec = get_domain("inventory")
    scenario = spec.scenario("lost_sales", {"horizon_periods": 100, "warmup_periods": 20})
    cpu = torch.device("cpu")
    rows = []
    start = time.perf_counter()
    local = evaluate_policies(spec, scenario, [build_policy(spec, scenario, "base_stock", cpu)], episodes=episodes,
                              seed=0, device=cpu)
    rows.append({"path": "local (this process)", "workers": 1, "seconds": time.perf_counter() - start,
                 "same": True})
    expected = local.to_json()["results"]
    for workers in (1, 2):
        start = time.perf_counter()
        report = evaluate_on_ray(spec, scenario, ["base_stock"], episodes=episodes, seed=0, workers=workers)
        rows.append({"path": "ray (sharded chunks)", "workers": workers, "seconds": time.perf_counter() - start,
                     "same": report.to_json()["results"] == expected})
    return rows


def _sweep(steps: int) -> list[dict[str, Any]]:
    from decisionlab.core.sweep import SweepPlan
    from decisionlab.core.sweep_runner import run_sweep

    def plan(name: str) -> SweepPlan:
        return SweepPlan(name=name, domain="inventory", scenario="lost_sales", algo="hdpo",
                         grid={"learning_rate": [0.003, 0.01, 0.03]}, seeds=[0, 1],
                         overrides={"horizon_periods": 1000, "warmup_periods": 200},
                         options={"max_steps": steps}, episodes=64)

    rows = []
    start = time.perf_counter()
    local = run_sweep(plan("local"))
    expected = {t["index"]: t["metrics"] for t in local.trials}
    per_trial = float(np.mean([t["train_seconds"] for t in local.trials]))
    rows.append({"path": "local (one process)", "workers": 1, "seconds": time.perf_counter() - start,
                 "same": True, "per_trial_train_s": per_trial})
    for workers in (1, 2):
        start = time.perf_counter()
        report = run_sweep(plan(f"ray{workers}"), backend="ray", workers=workers)
        rows.append({"path": "ray (Tune trials)", "workers": workers, "seconds": time.perf_counter() - start,
                     "same": {t["index"]: t["metrics"] for t in report.trials} == expected})
    return rows


def _table(title: str, rows: list[dict[str, Any]]) -> str:
    ray_one = next(r["seconds"] for r in rows if r["path"].startswith("ray") and r["workers"] == 1)
    lines = [f"**{title}**", "", "| path | workers | wall s | speed-up vs Ray at 1 worker | same numbers as local |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['path']} | {row['workers']} | {row['seconds']:.1f} | {ray_one / row['seconds']:.2f}x | "
                     f"{'yes' if row['same'] else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=30, help="HDPO steps per sweep trial")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)

    import os

    import ray

    home = tempfile.mkdtemp(prefix="decisionlab-scaling-")
    os.environ["DECISIONLAB_HOME"] = home
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.get(ray.remote(lambda: 0).remote())  # Ray itself up and warm: its start-up is not what is measured
    try:
        evaluation = _evaluation(args.episodes)
        sweep = _sweep(args.steps)
    finally:
        ray.shutdown()
    result = {"evaluation": evaluation, "sweep": sweep, "machine": machine()}
    print(json.dumps(result, indent=1))
    if args.write_docs:
        per_trial = sweep[0]["per_trial_train_s"]
        body = "\n\n".join([
            "## Scale-out on Ray: a sweep and a large evaluation at 1 and 2 workers",
            _table(f"Evaluation: base_stock on lost sales, {args.episodes:,} episodes of 100 periods", evaluation),
            _table(f"Sweep: 2 seeds x 3 learning rates of HDPO on lost sales, {args.steps} steps per trial "
                   f"(training {per_trial:.1f} s per trial on one core)", sweep),
            f"Ray {ray.__version__}: a local Ray of 2 CPUs, started and warm before the timings (the workers' "
            "start and imports are timed).",
        ])
        write_section("scaling", body)
    Path(home).joinpath("scaling.json").write_text(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
