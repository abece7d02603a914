"""The data directory: ``$DECISIONLAB_HOME`` or ``~/.decisionlab``; and the cache directory of data that
can be rebuilt: ``$DECISIONLAB_CACHE``, else ``$XDG_CACHE_HOME/decisionlab``, else ``~/.cache/decisionlab``."""

from __future__ import annotations

import os
from pathlib import Path

from decisionlab.core.errors import DecisionlabError


def _folder(home: Path, variable: str, what: str) -> Path:
    """``home`` created if needed; a folder that cannot be created is a :class:`DecisionlabError` naming it."""
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DecisionlabError(
            f"the {what} {home} cannot be created ({err.strerror or err}): set {variable} to a folder this "
            "user can write"
        ) from None
    if not home.is_dir():
        raise DecisionlabError(f"the {what} {home} is not a folder: set {variable} to a folder")
    return home


def data_home(override: str | Path | None = None) -> Path:
    """Folder that holds the policy registry, the run store and built baselines (created on first
    use); a folder that cannot be created is a :class:`DecisionlabError` naming it."""
    raw = override if override is not None else os.environ.get("DECISIONLAB_HOME")
    home = Path(raw).expanduser() if raw else Path.home() / ".decisionlab"
    return _folder(home, "DECISIONLAB_HOME", "data dir")


def cache_home(override: str | Path | None = None) -> Path:
    """Folder for data that is generated or downloaded once and can be rebuilt at any time (generated
    data sets): ``$DECISIONLAB_CACHE``, else ``$XDG_CACHE_HOME/decisionlab``, else ``~/.cache/decisionlab``.

    Unlike :func:`data_home` it holds nothing a user made (no policies, no runs), so many data dirs
    (tests give each test its own) share one cache and generate each data set once per machine."""
    raw = override if override is not None else os.environ.get("DECISIONLAB_CACHE")
    if raw:
        home = Path(raw).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        home = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "decisionlab"
    return _folder(home, "DECISIONLAB_CACHE", "cache dir")
