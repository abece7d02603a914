"""``decisionlab sweep``: a grid of algorithm options x seeds, locally or on Ray Tune (``core/sweep.py``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from decisionlab.apps.cli_options import JsonFlag, SetFlag, check_backend_options

out = Console()
err = Console(stderr=True, soft_wrap=True)


def sweep(
    domain: Annotated[str, typer.Argument(help="domain name, e.g. inventory")],
    algo: Annotated[str, typer.Option("--algo", help="training algorithm, e.g. hdpo")],
    grid: Annotated[list[str], typer.Option(
        "--grid", help="algorithm option and its values: key=v1,v2 (repeatable; the grid is their product)")],
    scenario: Annotated[str | None, typer.Option("--scenario", help="scenario preset name")] = None,
    overrides: SetFlag = None,
    algo_options: Annotated[list[str] | None, typer.Option(
        "--algo-set", help="algorithm option every trial shares: key=value (repeatable)")] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, max=1000, help="training seeds 0..N-1 per configuration")] = 3,
    episodes: Annotated[int | None, typer.Option(
        "--episodes", min=1, help="held-out episodes each trial is scored on (default: the setting's)")] = None,
    backend: Annotated[str, typer.Option("--backend", help="local (this process) or ray (Ray Tune)")] = "local",
    address: Annotated[str | None, typer.Option(
        "--address", help="Ray cluster address (host:port, ray://host:10001 or auto); default a local Ray")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="trials at once on Ray (default: the cluster's CPUs)")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="sweep name: its policies' registry name, its resume key (default sweep_ALGO_SCENARIO)",
    )] = None,
    alias: Annotated[str, typer.Option("--alias", help="alias the best configuration's policy goes to")] = "best",
    as_json: JsonFlag = False,
) -> None:
    """Train every configuration of the grid with each seed, score each on the same held-out episodes, print
    the mean and 95% CI over seeds per configuration, promote the best. Rerun to resume an interrupted sweep."""

    def run() -> None:
        from decisionlab.apps.cli import _emit_json, _setup_torch
        from decisionlab.core.evaluation import default_episodes
        from decisionlab.core.scenario import parse_overrides
        from decisionlab.core.spec import get_domain
        from decisionlab.core.sweep import SweepPlan, parse_grid
        from decisionlab.core.sweep_runner import run_sweep

        check_backend_options(backend, address, workers)
        spec = get_domain(domain)
        scenario_name = scenario or spec.default_scenario
        parsed = parse_overrides(overrides or [])
        resolved = spec.scenario(scenario_name, parsed)
        plan = SweepPlan(
            name=name or f"sweep_{algo}_{scenario_name}", domain=domain, scenario=scenario_name, algo=algo,
            grid=parse_grid(grid), seeds=list(range(seeds)), overrides=parsed,
            options=parse_overrides(algo_options or []),
            episodes=episodes or default_episodes(spec.setting_of(resolved), resolved),
        )
        _setup_torch()
        err.print(f"sweep {plan.name}: {len(plan.configs())} configurations x {seeds} seeds on {backend}...",
                  highlight=False)
        report = run_sweep(plan, backend=backend, address=address, workers=workers, alias=alias, progress=True)
        if as_json:
            _emit_json(report.to_json())
            return
        _print_sweep(report.to_json())

    from decisionlab.apps.cli import _guard  # one error path for every command

    _guard(run)


def _print_sweep(body: dict[str, Any]) -> None:
    primary = body["primary_metric"]
    table = Table(title=f"sweep {body['sweep']}: {primary} ({body['better']} is better), mean and 95% CI over seeds")
    for column in ("configuration", "seeds", primary):
        table.add_column(column, justify="right" if column != "configuration" else "left")
    best = body["best"]["config"] if body["best"] else None
    for row in body["table"]:
        cell = row.get(primary, {"mean": float("nan"), "ci95": float("nan")})
        label = ", ".join(f"{k}={v}" for k, v in row["config"].items())
        table.add_row(label, str(row["seeds"]), f"{cell['mean']:.4f} ± {cell['ci95']:.4f}",
                      style="bold" if row["config"] == best else None)
    out.print(table)
    out.print(f"trained {body['trained']} of {len(body['trials'])} trials (the rest were already in the ledger)")
    if body["best"]:
        out.print(f"best: {body['best'].get('alias', body['best']['policy_ref'])} -> {body['best']['policy_ref']}")
