"""The dashboard's note of what is still training in the background (``make run``'s default policies).

Drawn at the top of every page and refreshed every few seconds on its own (a Streamlit fragment), so a
user sees each default policy's progress and knows when it lands; nothing is drawn when nothing is
training. Reads ``training.json`` (:mod:`decisionlab.core.store.training_status`).
"""

from __future__ import annotations

from typing import Any

from decisionlab.core.store.training_status import describe_job, read_training_status

REFRESH_S = 5


def training_lines(jobs: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """``(still training or waiting, ended badly)`` as lines for a person."""
    active = [describe_job(j) for j in jobs if j.get("state") in ("waiting", "training")]
    bad = [describe_job(j) for j in jobs if j.get("state") in ("failed", "interrupted")]
    return active, bad


def draw_training_status() -> None:
    import streamlit as st

    @st.fragment(run_every=REFRESH_S)
    def status() -> None:
        active, bad = training_lines(read_training_status())
        if active:
            st.info("**Default policies still training in the background** (each appears in the policy lists "
                    "and the API as it lands; rerun a comparison to include it):\n\n"
                    + "\n".join(f"- {line}" for line in active))
        if bad:
            st.warning("**Background training that did not finish** (`decisionlab train` reruns it):\n\n"
                       + "\n".join(f"- {line}" for line in bad))

    status()
