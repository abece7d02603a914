"""The driver-income tab: how each policy shares the income among its drivers over the simulated day
(:mod:`~decisionlab.domains.ride_hailing.day`; violins, Gini), and the comparison's KPIs with their 95%
confidence intervals.

Pure helpers (no Streamlit): :func:`income_frame`, :func:`kpi_frame`, :func:`income_figure`,
:func:`kpi_figure`; the tab :func:`income_tab`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
import torch

from decisionlab.core import legend_below, palette, short_label
from decisionlab.domains.ride_hailing.day import DayRecord, comparison_day
from decisionlab.domains.ride_hailing.metrics import gini

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core import EvaluationReport, ViewContext


def income_frame(day: DayRecord) -> pl.DataFrame:
    """``policy, drivers, mean_income, median_income, gini``: per policy, over the drivers who worked."""
    rows = []
    for label in day.labels:
        part = day.income.filter((pl.col("policy") == label) & pl.col("worked"))
        values = torch.tensor(part["income"].to_numpy())[None]
        rows.append({"policy": label, "drivers": part.height,
                     "mean_income": float(part["income"].mean() or 0.0),
                     "median_income": float(part["income"].median() or 0.0),
                     "gini": float(gini(values, torch.ones_like(values))[0])})
    return pl.DataFrame(rows, schema={"policy": pl.String, "drivers": pl.Int64, "mean_income": pl.Float64,
                                      "median_income": pl.Float64, "gini": pl.Float64})


def kpi_frame(report: EvaluationReport, metric: str) -> pl.DataFrame:
    """``policy, mean, ci95`` of ``metric`` over the report's episodes (evaluation order)."""
    return report.table().filter(pl.col("metric") == metric).select("policy", "mean", "ci95")


def income_figure(day: DayRecord, domain: str | None = None) -> go.Figure:
    """Income per driver who worked, one violin per policy (Gini of the incomes in the legend, under
    the plot)."""
    import plotly.graph_objects as go

    summary = {row["policy"]: row for row in income_frame(day).iter_rows(named=True)}
    colors = palette()
    fig = go.Figure()
    for i, label in enumerate(day.labels):
        part = day.income.filter((pl.col("policy") == label) & pl.col("worked"))
        name = f"{short_label(label, domain)} (Gini {summary[label]['gini']:.3f})"
        fig.add_trace(go.Violin(y=part["income"].to_list(), name=name,
                                box_visible=True, meanline_visible=True, points=False, spanmode="hard",
                                line={"color": colors[i % len(colors)]}))
    fig.update_layout(title="Income per driver over the horizon (drivers who worked; one simulated day)",
                      yaxis_title="income (currency)", xaxis={"showticklabels": False})
    return legend_below(fig, plot_height=340, per_row=2, axis_px=20)


def kpi_figure(report: EvaluationReport, metric: str, unit: str = "") -> go.Figure:
    """``metric``'s mean per policy with its 95% CI over the report's episodes."""
    import plotly.graph_objects as go

    frame = kpi_frame(report, metric)
    colors = palette()
    fig = go.Figure(go.Bar(
        x=frame["policy"].to_list(), y=frame["mean"].to_list(),
        marker_color=[colors[i % len(colors)] for i in range(frame.height)],
        error_y={"type": "data", "array": frame["ci95"].to_list(), "visible": True, "thickness": 1.5},
        hovertemplate="%{x}: %{y:.4g} ± %{error_y.array:.3g}<extra></extra>",
    ))
    axis = f"{metric} ({unit})" if unit else metric
    fig.update_layout(title=f"{metric}: mean and 95% CI over {report.episodes} episodes", yaxis_title=axis,
                      height=380, margin={"t": 50, "b": 60})
    return fig


def income_tab(ctx: ViewContext) -> None:
    """Per-driver income distribution per policy (one day) and the KPIs with their 95% CIs."""
    import streamlit as st

    day = comparison_day(ctx)
    if day is None or ctx.result is None:
        st.info("Press **Run** to compare how the policies share the income among drivers.")
        return
    st.plotly_chart(income_figure(day, ctx.domain.name), key=ctx.key("income_distribution"))
    st.dataframe(income_frame(day).with_columns(pl.col(pl.Float64).round(3)), hide_index=True,
                 key=ctx.key("income_table"))
    metrics = list(ctx.setting.metrics)
    primary = ctx.setting.primary_metric
    metric = st.selectbox("KPI", metrics, index=metrics.index(primary) if primary in metrics else 0,
                          key=ctx.key("income_metric"),
                          help="mean over the comparison's episodes with its 95% confidence interval")
    spec = ctx.setting.metrics[metric]
    st.caption(f"{spec.description}; {spec.better} is better.")
    st.plotly_chart(kpi_figure(ctx.result.report, metric, spec.unit or ""), key=ctx.key("kpi_chart"))
