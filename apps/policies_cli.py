"""``decisionlab policies ...``: the registered-policy lifecycle from the command line.

- ``list [--domain D]``: every version, with its aliases;
- ``show REF``: one version's card (algorithm, scenario, metrics, checksum);
- ``promote REF [--alias prod]``: point an alias at a version (the API serves it within a second);
- ``rollback NAME [--alias prod]``: move the alias back to the version it pointed at before;
- ``delete REF [--force]``: remove a version (refused while an alias points at it, unless forced);
- ``gc``: remove the files of saves that never reached the index (a killed save) and report index
  rows whose weights are gone.

References are ``domain/name@version``, ``domain/name@alias`` or ``domain/name`` (latest).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from decisionlab.core.store.registry import PolicyRecord, PolicyRegistry

policies_app = typer.Typer(help="List, inspect, promote, roll back, delete and clean up registered policies.",
                           no_args_is_help=True)
out = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout (for scripts)")]
AliasOption = Annotated[str, typer.Option("--alias", help="the alias to move (e.g. prod, staging)")]
Reference = Annotated[str, typer.Argument(help="domain/name@version, domain/name@alias or domain/name (latest)")]


def _run(action: Any) -> Any:
    from decisionlab.apps.cli import _guard  # one error path for every command

    return _guard(action)


def _emit(payload: dict[str, Any]) -> None:
    from decisionlab.apps.cli import _emit_json

    _emit_json(payload)


def _said(verb: str, record: PolicyRecord, as_json: bool) -> None:
    if as_json:
        _emit({verb: record.summary()})
    else:
        aliases = f" (aliases: {', '.join(record.aliases)})" if record.aliases else ""
        out.print(f"{verb} [bold]{record.ref}[/]{aliases}")


POLICY_COLUMNS = ("reference", "aliases", "algo", "kind", "scenario", "primary metric")


def policy_row(record: PolicyRecord) -> list[str]:
    """The :data:`POLICY_COLUMNS` of one registered version."""
    metrics = record.card.get("metrics") or {}
    first = next(iter(metrics.items()), None)
    return [str(record.ref), ", ".join(record.aliases) or "-", str(record.card.get("algo", "")),
            str(record.summary()["kind"] or ""), str(record.card.get("scenario_name", "")),
            f"{first[0]} = {first[1]:.4g}" if first and isinstance(first[1], int | float) else "-"]


def plain_table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    """``rows`` under ``columns`` as space-aligned text (what ``| cut``, ``| grep`` and logs want)."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = [columns, *rows]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


@policies_app.command("list")
def list_policies(
    domain: Annotated[str | None, typer.Option("--domain", help="only this domain")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every registered version, oldest first, with its aliases."""

    def run() -> None:
        from decisionlab.core.spec import get_domain

        # an unknown domain is an error naming the domains (as the API's 404), not an empty list
        records = PolicyRegistry().list(get_domain(domain).name if domain is not None else None)
        if as_json:
            _emit({"policies": [r.summary() for r in records]})
            return
        if not records:
            out.print("no registered policies")
            return
        rows = [policy_row(record) for record in records]
        if not out.is_terminal:  # piped: plain aligned columns, one line per version, never wrapped
            print(plain_table(POLICY_COLUMNS, rows))
            return
        table = Table(title="registered policies")
        for column in POLICY_COLUMNS:  # a reference is never broken inside; the other columns may wrap
            table.add_column(column, no_wrap=column == "reference", overflow="fold")
        for row in rows:
            table.add_row(*row)
        out.print(table)

    _run(run)


@policies_app.command()
def show(reference: Reference, as_json: JsonFlag = False) -> None:
    """One version's card: algorithm, scenario, metrics, weights checksum, aliases."""

    def run() -> None:
        record = PolicyRegistry().find(reference)
        summary = {**record.summary(), "sha256": record.sha256,
                   "card": {k: v for k, v in record.card.items() if k != "policy_config"},
                   "policy_config": record.card.get("policy_config")}
        if as_json:
            _emit({"policy": summary})
            return
        out.print_json(data=summary)

    _run(run)


@policies_app.command()
def promote(reference: Reference, alias: AliasOption = "prod", as_json: JsonFlag = False) -> None:
    """Point ``alias`` at the version ``reference`` names (the latest when it names none)."""
    _run(lambda: _said("promoted", PolicyRegistry().promote(reference, alias), as_json))


@policies_app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="domain/name of the policy")], alias: AliasOption = "prod",
    as_json: JsonFlag = False,
) -> None:
    """Move ``alias`` back to the version it pointed at before its last move."""
    _run(lambda: _said("rolled back to", PolicyRegistry().rollback(name, alias), as_json))


@policies_app.command()
def delete(
    reference: Reference,
    force: Annotated[bool, typer.Option("--force", help="also drop the aliases that point at it")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove one version: its index row, then its files."""
    _run(lambda: _said("deleted", PolicyRegistry().delete(reference, force=force), as_json))


@policies_app.command()
def gc(as_json: JsonFlag = False) -> None:
    """Remove files no index row points at (killed saves); list rows whose weights are missing."""

    def run() -> None:
        report = PolicyRegistry().gc()
        if as_json:
            _emit({"removed": report.removed, "missing": report.missing})
            return
        out.print(f"removed {len(report.removed)} orphan file(s)")
        for path in report.removed:
            out.print(f"  {path}")
        if report.missing:
            out.print(f"{len(report.missing)} version(s) have no weights (remove them with `decisionlab policies "
                      f"delete`): {', '.join(report.missing)}")

    _run(run)
