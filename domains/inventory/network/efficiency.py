"""Data-efficiency view of the inventory page: held-out cost against the number of training
scenarios for each HDPO architecture (vanilla MLP, symmetry-aware net, GNN) on ``one_warehouse``.

The numbers come from ``domains/inventory/data/data_efficiency.csv``, written by
``python -m benchmarks.inventory_data_efficiency``: one row per (architecture, train_scenarios, seed)
with the held-out ``cost_per_period`` and ``relative_gap`` (cost / best cost of that architecture
over all sizes − 1). Pure helpers and a figure builder; :func:`efficiency_tab` draws the tab.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import plotly.graph_objects as go
import polars as pl

from decisionlab.core import DecisionlabError, palette

if TYPE_CHECKING:
    from decisionlab.core import ViewContext

DATA_EFFICIENCY_CSV = Path(__file__).resolve().parents[1] / "data" / "data_efficiency.csv"
PRODUCE_COMMAND = "python -m benchmarks.inventory_data_efficiency"
COLUMNS = {"architecture": pl.String, "train_scenarios": pl.Int64, "seed": pl.Int64, "cost_per_period": pl.Float64,
           "relative_gap": pl.Float64}
ARCHITECTURE_ORDER = ("vanilla", "symmetry", "gnn")


def load_efficiency(path: str | Path | None = None) -> pl.DataFrame | None:
    """The results file (default :data:`DATA_EFFICIENCY_CSV`) with the columns of :data:`COLUMNS`
    typed, extra columns kept; ``None`` when the file does not exist yet.

    Raises :class:`DecisionlabError` naming the file and the problem when it cannot be read or
    misses a column.
    """
    path = Path(path) if path is not None else DATA_EFFICIENCY_CSV
    if not path.exists():
        return None
    try:
        frame = pl.read_csv(path)
    except (OSError, pl.exceptions.PolarsError) as err:
        raise DecisionlabError(f"{path}: cannot be read as CSV ({err})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DecisionlabError(f"{path}: missing column(s) {', '.join(missing)}")
    try:
        return frame.with_columns(pl.col(name).cast(dtype) for name, dtype in COLUMNS.items())
    except pl.exceptions.PolarsError as err:
        raise DecisionlabError(f"{path}: a column has values of the wrong type ({err})") from None


def _architecture_rank(name: str) -> int:
    return ARCHITECTURE_ORDER.index(name) if name in ARCHITECTURE_ORDER else len(ARCHITECTURE_ORDER)


def efficiency_summary(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per (architecture, train_scenarios) — and network size when the file has a ``stores``
    column: seeds, cost_mean, cost_se (standard error over seeds; 0 with one seed), gap_mean.
    Architectures in the order vanilla, symmetry, gnn, others; sizes ascending."""
    if "stores" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias("stores"))
    summary = (
        frame.group_by("stores", "architecture", "train_scenarios")
        .agg(
            pl.len().alias("seeds"),
            pl.col("cost_per_period").mean().alias("cost_mean"),
            pl.col("cost_per_period").std(ddof=1).fill_null(0.0).alias("cost_std"),
            pl.col("relative_gap").mean().alias("gap_mean"),
        )
        .with_columns((pl.col("cost_std") / pl.col("seeds").cast(pl.Float64).sqrt()).fill_nan(0.0).alias("cost_se"))
        .drop("cost_std")
        .with_columns(pl.col("architecture").map_elements(_architecture_rank, return_dtype=pl.Int64).alias("_rank"))
        .sort("stores", "_rank", "architecture", "train_scenarios")
        .drop("_rank")
    )
    columns = ["architecture", "train_scenarios", "seeds", "cost_mean", "cost_se", "gap_mean"]
    return summary.select("stores", *columns) if summary["stores"].null_count() < summary.height else \
        summary.select(columns)


def efficiency_figure(summary: pl.DataFrame) -> go.Figure:
    """Held-out cost per period against training scenarios (log x), one line per architecture,
    error bars ± one standard error over seeds; one panel per network size when the summary has a
    ``stores`` column."""
    from plotly.subplots import make_subplots

    sizes = summary["stores"].unique(maintain_order=True).to_list() if "stores" in summary.columns else [None]
    fig = make_subplots(rows=1, cols=len(sizes), subplot_titles=[f"N = {n} stores" if n is not None else ""
                                                                  for n in sizes])
    colors = palette()
    for col, stores in enumerate(sizes, start=1):
        panel = summary if stores is None else summary.filter(pl.col("stores") == stores)
        for i, arch in enumerate(summary["architecture"].unique(maintain_order=True).to_list()):
            part = panel.filter(pl.col("architecture") == arch)
            if not part.height:
                continue
            fig.add_trace(go.Scatter(
                x=part["train_scenarios"].to_list(), y=part["cost_mean"].to_list(), name=arch, mode="lines+markers",
                legendgroup=arch, showlegend=col == 1,
                error_y={"type": "data", "array": part["cost_se"].to_list(), "visible": True},
                line={"color": colors[i % len(colors)]},
                customdata=part.select("seeds", "gap_mean").rows(),
                hovertemplate="%{x} scenarios: %{y:.3f}<br>seeds %{customdata[0]}, gap %{customdata[1]:.1%}",
            ), row=1, col=col)
        fig.update_xaxes(type="log", title_text="training scenarios (log scale)", row=1, col=col)
    fig.update_yaxes(title_text="cost per period (held out)", row=1, col=1)
    fig.update_layout(title="Data efficiency: held-out cost vs training scenarios (mean ± s.e. over seeds)",
                      height=420, margin={"t": 70, "b": 40})
    return fig


def efficiency_tab(ctx: ViewContext) -> None:
    """The data-efficiency results of HDPO on ``one_warehouse`` (read from the results file)."""
    import streamlit as st

    st.caption(
        "HDPO on `one_warehouse`: held-out cost per period after training each architecture (vanilla MLP, "
        "symmetry-aware net, GNN) on a fixed number of training scenarios; error bars ± one standard error over "
        "seeds. `gap_mean`: cost / the architecture's best cost over all sizes − 1."
    )
    frame = load_efficiency()
    if frame is None:
        st.info(f"No data-efficiency results yet. Produce them with `{PRODUCE_COMMAND}` (writes "
                f"`{DATA_EFFICIENCY_CSV.name}` next to the inventory package's data).")
        return
    summary = efficiency_summary(frame)
    st.plotly_chart(efficiency_figure(summary), key=ctx.key("efficiency_chart"))
    st.dataframe(summary.with_columns(pl.col(pl.Float64, pl.Float32).round(4)), hide_index=True,
                 key=ctx.key("efficiency_table"))
