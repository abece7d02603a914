"""Legends under the plot: the plot area keeps its height whatever the number or length of labels."""

from __future__ import annotations

import plotly.graph_objects as go

from decisionlab.core.ui import LEGEND_ROW_PX, legend_below, legend_entries, legend_layout, short_label


def _figure(labels: list[str]) -> go.Figure:
    fig = go.Figure()
    for label in labels:
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name=label, legendgroup=label))
        fig.add_trace(go.Scatter(x=[0, 1], y=[1, 0], showlegend=False, legendgroup=label))  # a band: no entry
    return fig


def test_the_plot_area_keeps_its_height_for_any_legend() -> None:
    for n in (1, 3, 12):
        fig = legend_below(_figure([f"domain/a_rather_long_policy_name_{i}@3" for i in range(n)]), plot_height=300)
        layout = fig.layout
        assert layout.height - layout.margin.t - layout.margin.b == 300
        assert layout.legend.orientation == "h" and layout.legend.yanchor == "top" and layout.legend.y < 0
        assert layout.margin.b >= n * LEGEND_ROW_PX  # room for one entry a row under the axis


def test_entries_per_row_set_the_rows() -> None:
    one, three = legend_layout(7, 300, per_row=1), legend_layout(7, 300, per_row=3)
    assert one["height"] - three["height"] == (7 - 3) * LEGEND_ROW_PX
    assert legend_layout(0, 300)["height"] < three["height"]


def test_legend_entries_count_what_plotly_shows() -> None:
    assert legend_entries(_figure(["a", "b"])) == 2
    assert legend_entries(go.Figure(go.Scatter(x=[0], y=[0], name="alone"))) == 0  # plotly hides a lone trace
    hidden = _figure(["a", "b"])
    hidden.update_layout(showlegend=False)
    assert legend_entries(hidden) == 0


def test_short_labels() -> None:
    label = "market_making/pathwise_avellaneda_stoikov@1"
    assert short_label(label, "market_making") == "pathwise_avellaneda_stoikov@1"
    assert short_label("nearest", "ride_hailing") == "nearest"
    assert short_label("other/x@1", "ride_hailing") == "other/x@1"
    cut = short_label("p" * 30 + "@12", most=20)
    assert len(cut) == 20 and cut.endswith("@12") and "…" in cut
