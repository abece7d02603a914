"""The data directory: ``$DECISIONLAB_HOME`` or ``~/.decisionlab``."""

from __future__ import annotations

import os
from pathlib import Path


def data_home(override: str | Path | None = None) -> Path:
    """Folder that holds the policy registry and run store (created on first use)."""
    raw = override if override is not None else os.environ.get("DECISIONLAB_HOME")
    home = Path(raw).expanduser() if raw else Path.home() / ".decisionlab"
    home.mkdir(parents=True, exist_ok=True)
    return home
