"""The dashboard's home page: the registered domains and their settings, the trained policies in the
registry and the recent training runs with their curves.

The frames are built by pure functions (tested without Streamlit); :func:`render` draws the page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.spec import DomainSpec
from decisionlab.core.store.registry import PolicyRecord
from decisionlab.core.store.runs import RunRecord, RunStore

RECENT_RUNS = 20


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def _numbers(values: dict[str, Any]) -> str:
    """``{"cost": 6.1234, "steps": 900}`` -> ``"cost=6.123, steps=900"``."""
    parts = []
    for key, value in values.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={shown}")
    return ", ".join(parts)


def domains_frame(domains: list[DomainSpec]) -> pl.DataFrame:
    """One row per registered domain."""
    columns = ("name", "title", "description", "settings", "scenarios", "policies", "algos")
    return pl.DataFrame(
        {
            "name": [d.name for d in domains],
            "title": [d.title for d in domains],
            "description": [d.description for d in domains],
            "settings": [", ".join(s.title for s in d.settings) for d in domains],
            "scenarios": [", ".join(d.scenarios) for d in domains],
            "policies": [", ".join(d.policies) for d in domains],
            "algos": [", ".join(d.algos) for d in domains],
        },
        schema={k: pl.String for k in columns},
    )


def scenario_summary(card: dict[str, Any], domains: dict[str, DomainSpec]) -> str:
    """The card's preset name plus the parameters that differ from that preset."""
    scenario = card.get("scenario") or {}
    name = card.get("scenario_name") or "?"
    domain = domains.get(card.get("domain", ""))
    preset = domain.scenarios.get(name) if domain else None
    base = preset.describe() if preset is not None else {}
    changed = {k: v for k, v in scenario.items() if base.get(k) != v}
    return f"{name}: {_numbers(changed)}" if changed else f"{name} (preset)"


def policies_frame(records: list[PolicyRecord], domains: dict[str, DomainSpec]) -> pl.DataFrame:
    """One row per registered policy version."""
    columns = ("ref", "algo", "kind", "scenario", "metrics", "created")
    return pl.DataFrame(
        {
            "ref": [str(r.ref) for r in records],
            "algo": [str(r.card.get("algo", "")) for r in records],
            "kind": [str(r.card.get("policy_kind") or (r.card.get("policy_config") or {}).get("kind", ""))
                     for r in records],
            "scenario": [scenario_summary(r.card, domains) for r in records],
            "metrics": [_numbers(r.card.get("metrics") or {}) for r in records],
            "created": [_when(r.created) for r in records],
        },
        schema={k: pl.String for k in columns},
    )


def runs_frame(runs: list[RunRecord]) -> pl.DataFrame:
    """One row per run, newest first."""
    return pl.DataFrame(
        {
            "label": [r.label for r in runs],
            "domain": [r.domain for r in runs],
            "created": [_when(r.created) for r in runs],
            "metrics": [_numbers(r.metrics) for r in runs],
        },
        schema={k: pl.String for k in ("label", "domain", "created", "metrics")},
    )


def _show_curve(runs: list[RunRecord]) -> None:
    """A selected run's held-out score against training step."""
    import plotly.graph_objects as go
    import streamlit as st

    with_curve = [r for r in runs if "curve" in r.tables]
    if not with_curve:
        return
    run = st.selectbox(
        "Training curve", with_curve, format_func=lambda r: f"{r.label}  ({_when(r.created)})", key="home_run"
    )
    try:
        curve = RunStore.table(run, "curve")
    except (OSError, pl.exceptions.PolarsError) as err:
        st.warning(f"the curve of {run.label} cannot be read: {err}")
        return
    if not {"step", "eval_score"} <= set(curve.columns):
        st.warning(f"the curve of {run.label} has no step/eval_score columns")
        return
    fig = go.Figure(
        go.Scatter(x=curve["step"].to_list(), y=curve["eval_score"].to_list(), mode="lines+markers", name=run.label)
    )
    fig.update_layout(
        title=f"{run.label}: held-out score during training", xaxis_title="step",
        yaxis_title="eval_score (lower is better for costs)", height=380, margin={"t": 50, "b": 40},
    )
    st.plotly_chart(fig, key="home_curve")


def render() -> None:
    """Draw the home page."""
    import streamlit as st

    from decisionlab.core.spec import list_domains
    from decisionlab.core.store.registry import PolicyRegistry

    st.title("decisionlab")
    st.markdown(
        "An open toolkit for applied decision-making with reinforcement learning: one RL core (batched, "
        "differentiable simulators, pathwise and classic training, a policy registry) and many domains. "
        "Every domain brings its settings, scenarios, baselines (including exact optima where they exist) and "
        "training methods; pick a domain page in the sidebar to compare policies on common random numbers."
    )
    try:
        domains = list_domains()
        registry = PolicyRegistry()
        records = registry.list()
        runs = RunStore(registry.home).list(kind="train")[:RECENT_RUNS]
    except DecisionlabError as err:
        st.error(str(err))
        return

    st.header("Domains")
    st.dataframe(domains_frame(domains), hide_index=True)

    st.header("Registered policies")
    if records:
        st.dataframe(policies_frame(records, {d.name: d for d in domains}), hide_index=True)
    else:
        st.info(
            "No policies registered yet. Train one with `decisionlab train inventory --algo hdpo` and "
            f"it will appear here (registry: `{registry.home}`)."
        )

    st.header("Recent training runs")
    if runs:
        st.dataframe(runs_frame(runs), hide_index=True)
        _show_curve(runs)
    else:
        st.info("No training runs recorded yet.")
