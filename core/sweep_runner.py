"""Running a sweep (``core/sweep.py``): the trials its ledger lacks, here or on Ray Tune
(``core/sweep_ray.py``); then the table over seeds and the best configuration promoted to an alias."""

from __future__ import annotations

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.sweep import SweepLedger, SweepPlan, SweepReport, best_trial, check_plan, run_trial


def run_sweep(plan: SweepPlan, *, backend: str = "local", address: str | None = None, workers: int | None = None,
              alias: str | None = "best", progress: bool = False) -> SweepReport:
    """Run the trials of ``plan`` not in its ledger, on ``backend``; promote the best to ``alias``."""
    from decisionlab.core.progress import Progress
    from decisionlab.core.ray_backend import check_backend, forwarded_env
    from decisionlab.core.spec import get_domain
    from decisionlab.core.store.registry import PolicyRegistry, check_alias

    check_backend(backend)
    check_plan(plan)
    if alias is not None:  # before the trials: a bad alias would only be refused once they had all trained
        check_alias(alias)
        PolicyRegistry().check_writable()
    spec = get_domain(plan.domain)
    setting = spec.setting_of(spec.scenario(plan.scenario, plan.overrides))
    ledger = SweepLedger(plan.name)
    ledger.open(plan)
    trials = plan.trials()
    done = ledger.finished()
    pending = [t for t in trials if t.key not in done]
    env = forwarded_env()
    if backend == "ray":
        from decisionlab.core.sweep_ray import run_on_ray

        run_on_ray(plan, trials, ledger, env, address=address, workers=workers, progress=progress)
    else:
        with Progress(len(trials), f"sweep {plan.name}", unit="trial", enabled=progress) as bar:
            bar.update(len(trials) - len(pending))
            for trial in pending:
                bar.show(now=f"{trial.config} seed {trial.seed}")
                ledger.record(run_trial(plan, trial, env))
                bar.update(1)
    done = ledger.finished()
    missing = [t for t in trials if t.key not in done]
    if missing:
        raise DecisionlabError(f"sweep {plan.name}: {len(missing)} trial(s) did not finish; run it again to resume")
    results = sorted((dict(done[t.key], index=t.index) for t in trials), key=lambda r: r["index"])
    metric = setting.metrics[setting.primary_metric]
    report = SweepReport(plan, backend, results, setting.primary_metric, metric.better, trained=len(pending))
    if results and setting.primary_metric in results[0]["metrics"]:
        best = dict(best_trial(results, setting.primary_metric, metric.better))
        if alias is not None:
            PolicyRegistry().promote(best["policy_ref"], alias)
            best["alias"] = f"{plan.domain}/{plan.name}@{alias}"
        report.best = best
    return report
