"""The memory budget of one baseline build (an exact solver's arrays, a grid policy's tables)."""

from __future__ import annotations

import os

from decisionlab.core.errors import DecisionlabError

BUDGET_ENV = "DECISIONLAB_BUILD_MAX_BYTES"
DEFAULT_BUDGET = 2 * 1024**3


def build_budget_bytes() -> float:
    """``$DECISIONLAB_BUILD_MAX_BYTES`` or 2 GiB: builds that would need more are refused up front."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return float(DEFAULT_BUDGET)
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise DecisionlabError(f"{BUDGET_ENV} must be a positive number of bytes, got {raw!r}")
    return value
