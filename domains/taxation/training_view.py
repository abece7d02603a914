"""The taxation page's training tab: both levels of a registered two-level run, from its recorded curve.

The curve (``train.py``) holds, per PPO update, each group's mean episode return (the simulator's own
rewards: the planner's objective, a worker's utility) on the run's cumulative step axis, the phase
(``workers``: workers alone or catching up; ``planner``: the planner learning), and at the end of each
cycle of phase 2 a ``measure`` row: the planner's rates scored under exact best responses and under its
own learned workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go
import polars as pl

from decisionlab.core import RunRecord, RunStore, legend_below, palette

if TYPE_CHECKING:
    from decisionlab.core import ViewContext

LEVELS = {"planner/episode_return": "planner (its objective)",
          "workers/episode_return": "workers (utility)"}


def returns_figure(curve: pl.DataFrame) -> go.Figure:
    """Each level's episode return against the cumulative training step, one trace per level, marked by
    the phase whose updates produced it (only the learning group's return moves in a phase)."""
    colours = palette()[:len(LEVELS)]
    figure = go.Figure()
    learning = curve.filter(pl.col("phase") != "measure")
    for colour, (column, label) in zip(colours, LEVELS.items(), strict=True):
        if column not in learning.columns:
            continue
        figure.add_trace(go.Scatter(x=learning["step"].to_list(), y=learning[column].to_list(), mode="lines",
                                    name=label, line={"color": colour}))
    figure.update_layout(title="Episode return of both levels during training", xaxis_title="env steps (cumulative)",
                         yaxis_title="mean episode return", height=380)
    return legend_below(figure)


def objective_figure(curve: pl.DataFrame, objective: str) -> go.Figure | None:
    """The planner's rates scored at the end of each cycle: under exact responses and under its workers."""
    measured = curve.filter(pl.col("phase") == "measure")
    if measured.is_empty() or "exact_objective" not in measured.columns:
        return None
    colours = palette()[:2]
    figure = go.Figure()
    for colour, (column, label) in zip(colours, {"exact_objective": "exact best responses",
                                                "learned_objective": "its learned workers"}.items(), strict=True):
        figure.add_trace(go.Scatter(x=measured["step"].to_list(), y=measured[column].to_list(), mode="lines+markers",
                                    name=label, line={"color": colour}))
    figure.update_layout(title=f"The planner's rates: {objective.replace('_', ' ')}", xaxis_title="env steps",
                         yaxis_title=objective.replace("_", " "), height=380)
    return legend_below(figure)


def two_level_runs(store: RunStore, domain: str) -> list[RunRecord]:
    """The domain's training runs with a curve that has both levels (newest first)."""
    return [run for run in store.list(domain, kind="train") if "curve" in run.tables
            and run.config.get("algo") == "two_level_ppo"]


def training_tab(ctx: ViewContext) -> None:
    import streamlit as st

    runs = two_level_runs(RunStore(ctx.registry.home), ctx.domain.name)
    if not runs:
        st.info("No two-level training run yet: `decisionlab train taxation --algo two_level_ppo` (or `make run`) "
                "records one, and its curves show here.")
        return
    run = st.selectbox("Training run", runs, format_func=lambda r: r.label, key=ctx.key("training_run"))
    try:
        curve = RunStore.table(run, "curve")
    except (OSError, pl.exceptions.PolarsError) as err:
        st.warning(f"the curve of {run.label} cannot be read: {err}")
        return
    if "step" not in curve.columns:
        st.warning(f"the curve of {run.label} predates the two-level curve format (no step column)")
        return
    st.plotly_chart(returns_figure(curve), key=ctx.key("training_returns"))
    objective = str(run.config.get("scenario", {}).get("objective", "equality_times_productivity"))
    figure = objective_figure(curve, objective)
    if figure is not None:
        st.plotly_chart(figure, key=ctx.key("training_objective"))
