"""The data directory: ``$DECISIONLAB_HOME`` or ``~/.decisionlab``."""

from __future__ import annotations

import os
from pathlib import Path

from decisionlab.core.errors import DecisionlabError


def data_home(override: str | Path | None = None) -> Path:
    """Folder that holds the policy registry, the run store and built baselines (created on first
    use); a folder that cannot be created is a :class:`DecisionlabError` naming it."""
    raw = override if override is not None else os.environ.get("DECISIONLAB_HOME")
    home = Path(raw).expanduser() if raw else Path.home() / ".decisionlab"
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DecisionlabError(
            f"the data dir {home} cannot be created ({err.strerror or err}): set DECISIONLAB_HOME to a folder this "
            "user can write"
        ) from None
    if not home.is_dir():
        raise DecisionlabError(f"the data dir {home} is not a folder: set DECISIONLAB_HOME to a folder")
    return home
