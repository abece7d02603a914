"""Options several ``decisionlab`` commands share (their own module: command modules import it without
importing ``apps.cli``, which registers them)."""

from __future__ import annotations

from typing import Annotated

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout (for scripts)")]
SetFlag = Annotated[
    list[str] | None, typer.Option("--set", help="override a scenario parameter: key=value (repeatable)")
]
