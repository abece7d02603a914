"""A sweep's trials on Ray Tune: one Tune trial per (configuration, seed), one CPU each.

Tune keeps the experiment in the sweep's folder (``SweepLedger.tune_folder``); a sweep started again
after its driver was killed is restored from there (``Tuner.restore``), so Tune reruns only the trials
it had not finished. The ledger stays the record: a Tune trial whose result is already in it (finished
just before the kill, before Tune saved its own state) returns that result without training again.
On a cluster, the data dir (registry, ledger, Tune folder) must be shared by every node: see
docs/scaling.md.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.ray_backend import cluster_cpus, connect
from decisionlab.core.sweep import SweepLedger, SweepPlan, Trial, run_trial

EXPERIMENT = "experiment"


def _trainable(plan: SweepPlan, env: Mapping[str, str], ledger: SweepLedger) -> Any:
    """The Tune function trainable of ``plan``: a config ``{"trial": Trial fields}`` → one report."""

    def train_one(config: dict[str, Any]) -> None:
        from ray import tune

        trial = Trial(**config["trial"])
        result = ledger.finished().get(trial.key)
        if result is None:
            result = run_trial(plan, trial, env)
            ledger.record(result)
        tune.report({"index": trial.index, **{f"metric.{k}": v for k, v in result["metrics"].items()}})

    return train_one


def run_on_ray(plan: SweepPlan, trials: Sequence[Trial], ledger: SweepLedger, env: Mapping[str, str], *,
               address: str | None, workers: int | None, progress: bool) -> None:
    """Run ``trials`` as a Tune experiment (restored if one of this sweep was interrupted)."""
    ray = connect(address)
    from ray import tune

    concurrent = max(1, min(workers or cluster_cpus(ray), len(trials)))
    trainable = tune.with_resources(_trainable(plan, env, ledger), {"cpu": 1})
    path = ledger.tune_folder / EXPERIMENT
    if tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search([asdict(t) for t in trials])},
            tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=True),
            run_config=tune.RunConfig(name=EXPERIMENT, storage_path=str(ledger.tune_folder),
                                      verbose=1 if progress else 0),
        )
    with contextlib.redirect_stdout(sys.stderr):  # Tune's progress tables: stdout is --json's alone
        results = tuner.fit()
    failed = [r for r in results if r.error is not None]
    if failed:
        raise DecisionlabError(f"sweep {plan.name}: {len(failed)} trial(s) failed on Ray, the first with: "
                               f"{failed[0].error}")
