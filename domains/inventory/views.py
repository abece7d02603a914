"""The dashboard tab every inventory setting shares: where each policy's cost comes from.

:func:`decomposition_figure` stacks holding, lost-sales and backlog cost per period for each
compared policy (from the comparison's table); :func:`cost_breakdown_tab` draws it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core import ViewContext

PARTS = (("holding", "holding_cost_per_period", "#72B7B2"),
         ("lost sales", "shortage_cost_per_period", "#E45756"),
         ("backlog", "backlog_cost_per_period", "#F58518"))


def decomposition_figure(table: pl.DataFrame, shortage_label: str = "lost sales") -> go.Figure:
    """Stacked bars per policy: holding vs lost-sales vs backlog cost per period (a shortage part
    that is zero for every policy is left out; ``shortage_label`` names ``shortage_cost_per_period``)."""
    import plotly.graph_objects as go

    policies = table["policy"].to_list()
    bars = []
    for name, column, color in PARTS:
        shown = shortage_label if column == "shortage_cost_per_period" else name
        if column in table.columns and (column == "holding_cost_per_period" or table[column].abs().sum() > 0):
            bars.append(go.Bar(name=shown, x=policies, y=table[column].to_list(), marker_color=color))
    fig = go.Figure(bars)
    fig.update_layout(
        barmode="stack", title="Cost decomposition", yaxis_title="cost per period", xaxis_title="policy",
        margin={"t": 50, "b": 40}, height=380, legend={"orientation": "h", "y": -0.2},
    )
    return fig


def cost_breakdown_tab(ctx: ViewContext) -> None:
    """Holding vs shortage cost per period of the compared policies."""
    import streamlit as st

    if ctx.result is None:
        st.info("Press **Run** to see where each policy's cost comes from.")
        return
    shortage = "backlog" if getattr(ctx.result.scenario, "shortage", "lost_sales") == "backlog" else "lost sales"
    st.plotly_chart(decomposition_figure(ctx.result.table, shortage), key=ctx.key("decomposition_chart"))
