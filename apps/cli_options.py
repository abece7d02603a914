"""Options several ``decisionlab`` commands share (their own module: command modules import it without
importing ``apps.cli``, which registers them)."""

from __future__ import annotations

from typing import Annotated

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout (for scripts)")]
SetFlag = Annotated[
    list[str] | None, typer.Option("--set", help="override a scenario parameter: key=value (repeatable)")
]


def check_backend_options(backend: str, address: str | None, workers: int | None) -> str:
    """``backend`` if valid (``core.ray_backend.check_backend``); ``--address``/``--workers`` with the local
    backend are a usage error naming them."""
    from decisionlab.core.ray_backend import check_backend

    if check_backend(backend) == "local" and (address is not None or workers is not None):
        raise typer.BadParameter("only with --backend ray", param_hint="--address/--workers")
    return backend
