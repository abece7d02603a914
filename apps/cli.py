"""The ``decisionlab`` command line.

Scripts depend on these names (see the README): ``domains``, ``evaluate``, ``ope``, ``train``, ``sweep``, ``serve``,
``dashboard``, ``policies list|show|promote|rollback|delete|gc``.
``--json`` prints exactly one JSON object on stdout; logs and progress bars go to
stderr. User mistakes print ``error: ...`` on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from decisionlab.apps.cli_options import JsonFlag, SetFlag, check_backend_options
from decisionlab.core.errors import DecisionlabError

app = typer.Typer(
    name="decisionlab",
    help="decisionlab: simulate, train, evaluate and serve decision policies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_SEED = 2**63 - 1
"""The largest --seed: torch generators take 64-bit seeds."""



def _guard(action: Callable[[], T]) -> T:
    """Run ``action``; user errors become a one-line message and exit status 2."""
    try:
        return action()
    except DecisionlabError as problem:
        # escaped: a message may hold brackets that are not markup (pip install 'decisionlab[ray]')
        err.print(f"[bold red]error:[/] {escape(str(problem))}", highlight=False)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(code=130) from None


def _emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=float) + "\n")
    sys.stdout.flush()


def _setup_torch() -> Any:
    from decisionlab.core.device import configure_allocator, configure_threads, get_device

    configure_threads()
    configure_allocator()
    return get_device()


@app.command()
def domains(as_json: JsonFlag = False) -> None:
    """List the registered domains with their scenarios, policies and algorithms."""
    from decisionlab.core.spec import list_domains

    specs = list_domains()
    if as_json:
        _emit_json({"domains": [spec.summary() for spec in specs]})
        return
    table = Table(title="decisionlab domains", show_lines=True)
    for column in ("domain", "setting", "scenarios", "policies", "algos", "primary metric"):
        table.add_column(column, overflow="fold")
    for spec in specs:
        for i, setting in enumerate(spec.settings):
            table.add_row(
                spec.name if i == 0 else "", setting.title, ", ".join(setting.presets), ", ".join(setting.policies),
                ", ".join(setting.algos), setting.primary_metric,
            )
    out.print(table)


@app.command()
def evaluate(
    domain: Annotated[str, typer.Argument(help="domain name, e.g. inventory")],
    policy: Annotated[
        list[str], typer.Option("--policy", help="baseline name or registered policy (repeatable; first = reference)")
    ],
    scenario: Annotated[str | None, typer.Option("--scenario", help="scenario preset name")] = None,
    overrides: SetFlag = None,
    episodes: Annotated[int | None, typer.Option("--episodes", min=1, help="episodes per policy")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="seed of the common random numbers")] = 0,
    backend: Annotated[str, typer.Option(
        "--backend", help="local (this process) or ray (episode chunks sharded over Ray workers; same numbers)",
    )] = "local",
    address: Annotated[str | None, typer.Option(
        "--address", help="Ray cluster address (host:port, ray://host:10001 or auto); default a local Ray")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Ray workers the chunks are spread over (default: the cluster's CPUs)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Compare policies on the same random numbers: mean, 95% CI, paired difference vs the first."""

    def run() -> None:
        from decisionlab.core.evaluation import check_episodes, check_memory, default_episodes, evaluate_policies
        from decisionlab.core.progress import Progress
        from decisionlab.core.resolve import build_policy
        from decisionlab.core.scenario import parse_overrides
        from decisionlab.core.spec import get_domain
        from decisionlab.core.store.runs import RunStore

        spec = get_domain(domain)
        resolved = spec.scenario(scenario or spec.default_scenario, parse_overrides(overrides or []))
        setting = spec.setting_of(resolved)
        n_episodes = episodes or default_episodes(setting, resolved)
        check_memory(setting, len(policy), n_episodes)  # before anything is built
        check_episodes(setting, resolved, n_episodes)
        check_backend_options(backend, address, workers)
        device = _setup_torch()
        if backend == "ray":
            from decisionlab.core.evaluation_ray import evaluate_on_ray

            err.print(f"evaluating {len(policy)} policies x {n_episodes:,} episodes on Ray...", highlight=False)
            report = evaluate_on_ray(spec, resolved, policy, episodes=n_episodes, seed=seed, address=address,
                                     workers=workers, progress=True)
        else:
            built = []
            # a search or an exact solve can take minutes: a bar on a terminal, a line every 10 s in a log
            with Progress(len(policy), "building policies", unit="policy") as bar:
                for name in policy:
                    bar.show(now=name)
                    built.append(build_policy(spec, resolved, name, device))
                    bar.update(1)
            err.print(f"evaluating {len(built)} policies x {n_episodes:,} episodes...", highlight=False)
            report = evaluate_policies(spec, resolved, built, episodes=n_episodes, seed=seed, device=device,
                                       progress=True)
        RunStore().record(spec.name, "evaluate", ",".join(report.labels), report.to_json(), {},
                          {"evaluation": report.table()})
        if as_json:
            _emit_json(report.to_json())
        else:
            _print_report(report, setting.primary_metric)

    _guard(run)


@app.command()
def ope(
    domain: Annotated[str, typer.Argument(help="domain name, e.g. recommendation")],
    logging_policy: Annotated[str, typer.Option("--logging-policy", help="the policy whose log is evaluated "
                                                "(served stochastically at --temperature)")],
    target_policy: Annotated[str, typer.Option("--target-policy", help="the policy to evaluate from the log")],
    scenario: Annotated[str | None, typer.Option("--scenario", help="scenario preset name")] = None,
    overrides: SetFlag = None,
    episodes: Annotated[int, typer.Option("--episodes", min=2, max=1_000_000, help="episodes logged")] = 1000,
    temperature: Annotated[float, typer.Option("--temperature", min=0.01, max=100.0,
                                               help="the logging policy's sampling temperature")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="seed of the log")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Off-policy evaluation: estimate the target policy's value from the logging policy's log (IPS, SNIPS,
    doubly robust, the slate estimator) next to the simulator's truth and a simulated A/B test."""

    def run() -> None:
        from decisionlab.core.ope import off_policy_report
        from decisionlab.core.resolve import build_policy
        from decisionlab.core.scenario import parse_overrides
        from decisionlab.core.spec import get_domain

        spec = get_domain(domain)
        resolved = spec.scenario(scenario or spec.default_scenario, parse_overrides(overrides or []))
        setting = spec.setting_of(resolved)
        if setting.off_policy is None:
            raise DecisionlabError(f"{spec.name}: the {setting.title} setting has no off-policy evaluation "
                                   f"(its policies expose no propensities)")
        device = _setup_torch()
        logging, target = (build_policy(spec, resolved, name, device)[1] for name in (logging_policy, target_policy))
        err.print(f"logging {logging_policy} over {episodes:,} episodes...", highlight=False)
        report = off_policy_report(setting.off_policy(resolved, logging, target, episodes, seed, device, temperature))
        if as_json:
            _emit_json(report)
            return
        table = Table(title=f"{target_policy} estimated from the log of {logging_policy} ({report['rows']:,} rows)")
        metrics = list(next(iter(report["estimates"].values())))
        table.add_column("estimator")
        for name in metrics:
            table.add_column(name, justify="right")
        if report["truth"]:
            table.add_row("truth", *[number(report["truth"][name]) for name in metrics])
        for kind, values in report["estimates"].items():
            table.add_row(kind, *[f"{number(values[m]['estimate'])} ± {number(values[m]['ci95'])}" for m in metrics])
        out.print(table)
        for name, result in report.get("ab_test", {}).items():
            out.print(f"A/B {name}: {target_policy} − {logging_policy} = {number(result['difference'], True)} ± "
                      f"{number(result['ci95'])}", highlight=False)

    _guard(run)


def number(value: float | None, signed: bool = False) -> str:
    """A number as people read it: 4 decimals below 1e6, else 6 significant digits, never cut."""
    if value is None:
        return "n/a"
    if value != value or abs(value) == float("inf"):
        return str(value)
    text = f"{value:+.4f}" if signed else f"{value:.4f}"
    if abs(value) >= 1e6:
        text = f"{value:+.6g}" if signed else f"{value:.6g}"
    return text


REPORT_COLUMNS = ("policy", "metric", "mean", "± 95% CI", "vs first", "± 95% CI (paired)")
SECONDARY = ("± 95% CI", "± 95% CI (paired)")  # dropped first on a narrow terminal


def report_rows(report: Any) -> list[dict[str, str]]:
    """The evaluation table as text cells, one dict per (policy, metric)."""
    rows = []
    for row in report.table().iter_rows(named=True):
        rows.append({"policy": row["policy"], "metric": row["metric"], "mean": number(row["mean"]),
                     "± 95% CI": number(row["ci95"]), "vs first": number(row["diff_vs_first"], signed=True),
                     "± 95% CI (paired)": number(row["diff_ci95"])})
    return rows


def report_columns(rows: list[dict[str, str]], width: int) -> list[str]:
    """The columns that fit ``width`` characters with every number whole: all of them, else without
    the secondary CI columns (the names wrap; numbers are never cut)."""
    def needed(columns: list[str]) -> int:
        return sum(max([len(c)] + [len(r[c]) for r in rows]) + 3 for c in columns) + 1

    columns = list(REPORT_COLUMNS)
    for column in SECONDARY:
        if needed(columns) <= width:
            break
        columns.remove(column)
    return columns


def _print_report(report: Any, primary: str) -> None:
    rows = report_rows(report)
    # Piped output has no terminal width: print the whole table rather than wrap it at 80 columns.
    console = out if out.is_terminal else Console(width=10_000)
    columns = report_columns(rows, console.width)
    table = Table(title=f"{report.domain}: {report.episodes:,} episodes ({report.effective_episodes:,} effective: "
                  f"independent), seed {report.seed}")
    for column in columns:
        numeric = column not in ("policy", "metric")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=numeric,
                         min_width=max(len(r[column]) for r in rows) if numeric else None,
                         overflow="fold")
    for row in rows:
        table.add_row(*(row[c] for c in columns), style="bold" if row["metric"] == primary else None)
    console.print(table)
    params = ", ".join(f"{k}={v}" for k, v in report.scenario.describe().items())
    err.print(f"scenario: {params}", highlight=False)


@app.command()
def train(
    domain: Annotated[str, typer.Argument(help="domain name, e.g. inventory")],
    algo: Annotated[str, typer.Option("--algo", help="training algorithm, e.g. hdpo")],
    scenario: Annotated[str | None, typer.Option("--scenario", help="scenario preset name")] = None,
    overrides: SetFlag = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED)] = 0,
    name: Annotated[str | None, typer.Option("--name", help="registry name (default ALGO_SCENARIO)")] = None,
    algo_options: Annotated[
        list[str] | None,
        typer.Option("--algo-set", help="algorithm setting key=value, e.g. quality=precise (repeatable)"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Train a policy and register it as DOMAIN/NAME@VERSION."""

    def run() -> None:
        from decisionlab.core.scenario import parse_overrides
        from decisionlab.core.spec import get_domain
        from decisionlab.core.training import train_and_register

        spec = get_domain(domain)
        scenario_name = scenario or spec.default_scenario
        device = _setup_torch()
        err.print(f"training a {domain} policy with {algo} on {scenario_name} (seed {seed}, {device})...",
                  highlight=False)
        report = train_and_register(
            spec, scenario_name, parse_overrides(overrides or []), algo, seed=seed, name=name,
            device=device, progress=True, options=parse_overrides(algo_options or []),
        )
        if as_json:
            _emit_json(report.to_json())
            return
        out.print(f"registered [bold]{report.record.ref}[/] in {report.train_seconds:.1f} s")
        for key, value in report.outcome.metrics.items():
            out.print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")

    _guard(run)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, max=64, help="server processes sharing the port (default $DECISIONLAB_API_WORKERS or 1)",
    )] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error")] = "info",
    backend: Annotated[str, typer.Option(
        "--backend", help="local: uvicorn processes on this machine; ray: replicas on Ray Serve (the ray extra)",
    )] = "local",
    replicas: Annotated[int | None, typer.Option(
        "--replicas", min=1, max=1024, help="Ray Serve replicas of the API (--backend ray; default 2)",
    )] = None,
    address: Annotated[str | None, typer.Option(
        "--address", help="the Ray cluster (host:port, ray://host:10001 or auto; default: a local Ray) (--backend ray)",
    )] = None,
    replica_cpus: Annotated[float, typer.Option(
        "--replica-cpus", min=0.01, help="CPUs Ray reserves for each replica (--backend ray)",
    )] = 1.0,
) -> None:
    """Serve the policy API (FastAPI on uvicorn, or on Ray Serve with --backend ray), JSON logs on stderr."""
    from decisionlab.apps.server import default_workers
    from decisionlab.apps.server import serve as run_server
    from decisionlab.core.ray_backend import check_backend

    if log_level not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter("must be debug, info, warning or error", param_hint="--log-level")

    def run() -> None:
        if check_backend(backend) == "local":
            if replicas is not None or address is not None:
                raise DecisionlabError(f"{'--replicas' if replicas is not None else '--address'} needs --backend ray "
                                       "(on one machine, --workers N runs N server processes)")
            _setup_torch()
            run_server(host, port, workers or default_workers(), log_level)
            return
        if workers is not None:
            raise DecisionlabError("--workers is for --backend local: with --backend ray, use --replicas")
        from decisionlab.apps.ray_serve import serve as run_on_ray

        run_on_ray(host, port, replicas or 2, address, log_level, replica_cpus)

    _guard(run)


def dashboard_command(port: int, address: str = "127.0.0.1") -> list[str]:
    """The command line that starts the Streamlit dashboard."""
    return [
        sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "dashboards" / "Home.py"),
        "--server.port", str(port), "--server.address", address, "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]


@app.command()
def dashboard(port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8501) -> None:
    """Open the Streamlit dashboard on 127.0.0.1."""
    raise typer.Exit(subprocess.call(dashboard_command(port), env=os.environ.copy()))


def main() -> None:
    app()


def _register_subcommands() -> None:
    from decisionlab.apps.policies_cli import policies_app
    from decisionlab.apps.sweep_cli import sweep

    app.add_typer(policies_app, name="policies")
    app.command()(sweep)


_register_subcommands()


if __name__ == "__main__":
    main()
