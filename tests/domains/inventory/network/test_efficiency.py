"""The data-efficiency view: loading the results file, the per-size summary, the figure, and the page
with and without the file."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from decisionlab.core.errors import DecisionlabError
from decisionlab.domains.inventory.network import efficiency


def _write(path: Path) -> Path:
    """Two seeds per (architecture, size); the GNN reaches the vanilla net's cost with fewer scenarios."""
    rows = []
    costs = {"vanilla": {16: (14.0, 16.0), 256: (11.0, 11.4), 4096: (10.0, 10.2)},
             "gnn": {16: (11.0, 11.2), 256: (10.1, 10.3), 4096: (10.0, 10.0)}}
    for arch, sizes in costs.items():
        best = min(sum(pair) / 2 for pair in sizes.values())
        for size, pair in sizes.items():
            for seed, cost in enumerate(pair):
                rows.append({"architecture": arch, "train_scenarios": size, "seed": seed, "cost_per_period": cost,
                             "relative_gap": cost / best - 1, "train_seconds": 1.5})
    pl.DataFrame(rows).write_csv(path)
    return path


def test_summary_means_and_standard_errors(tmp_path: Path) -> None:
    frame = efficiency.load_efficiency(_write(tmp_path / "eff.csv"))
    assert frame is not None and frame.height == 12
    assert frame.schema["train_scenarios"] == pl.Int64 and "train_seconds" in frame.columns
    summary = efficiency.efficiency_summary(frame)
    assert summary.columns == ["architecture", "train_scenarios", "seeds", "cost_mean", "cost_se", "gap_mean"]
    assert summary["architecture"].to_list() == ["vanilla"] * 3 + ["gnn"] * 3  # paper order, not alphabetical
    first = summary.row(0, named=True)
    assert first["train_scenarios"] == 16 and first["seeds"] == 2
    assert first["cost_mean"] == pytest.approx(15.0)
    assert first["cost_se"] == pytest.approx(1.0)  # std 1.414 / sqrt(2)
    assert first["gap_mean"] == pytest.approx(15.0 / 10.1 - 1)
    figure = efficiency.efficiency_figure(summary)
    assert figure.layout.xaxis.type == "log"
    assert [trace.name for trace in figure.data] == ["vanilla", "gnn"]
    assert list(figure.data[1].y) == pytest.approx([11.1, 10.2, 10.0])
    assert list(figure.data[0].error_y.array) == pytest.approx(summary["cost_se"].to_list()[:3])


def test_one_seed_has_no_error_bar_and_bad_files_are_named(tmp_path: Path) -> None:
    one = tmp_path / "one.csv"
    pl.DataFrame({"architecture": ["symmetry"], "train_scenarios": [64], "seed": [0], "cost_per_period": [9.0],
                  "relative_gap": [0.0]}).write_csv(one)
    summary = efficiency.efficiency_summary(efficiency.load_efficiency(one))
    assert summary["cost_se"].to_list() == [0.0]
    assert efficiency.load_efficiency(tmp_path / "absent.csv") is None
    broken = tmp_path / "broken.csv"
    pl.DataFrame({"architecture": ["gnn"], "seed": [0]}).write_csv(broken)
    with pytest.raises(DecisionlabError, match="broken.csv: missing column.*train_scenarios"):
        efficiency.load_efficiency(broken)


def test_page_plots_the_file_or_says_how_to_produce_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, domain_page
) -> None:
    monkeypatch.setattr(efficiency, "DATA_EFFICIENCY_CSV", tmp_path / "missing.csv")
    at = domain_page("inventory").run()
    at.selectbox(key="inventory_preset").set_value("one_warehouse").run()  # a network setting has the tab
    assert not at.exception, at.exception
    assert any(efficiency.PRODUCE_COMMAND in info.value for info in at.info)
    assert len(at.get("plotly_chart")) == 1  # the network graph only

    monkeypatch.setattr(efficiency, "DATA_EFFICIENCY_CSV", _write(tmp_path / "eff.csv"))
    at.run(timeout=60)
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 2
    assert at.dataframe[0].value.shape[0] == 6


def test_network_sizes_get_one_panel_each(tmp_path: Path) -> None:
    path = _write(tmp_path / "eff.csv")
    frame = pl.read_csv(path)
    both = pl.concat([frame.with_columns(pl.lit(10).alias("stores")),
                      frame.with_columns(pl.lit(20).alias("stores"), pl.col("cost_per_period") * 2)])
    both.write_csv(path)
    summary = efficiency.efficiency_summary(efficiency.load_efficiency(path))
    assert summary.columns[0] == "stores" and summary.height == 12
    assert summary.filter(pl.col("stores") == 20)["cost_mean"].to_list()[:3] == pytest.approx([30.0, 22.4, 20.2])
    figure = efficiency.efficiency_figure(summary)
    assert [a.text for a in figure.layout.annotations] == ["N = 10 stores", "N = 20 stores"]
    # panel by panel: the legend shows each architecture once
    assert [(t.name, t.xaxis, t.showlegend) for t in figure.data] == [
        ("vanilla", "x", True), ("gnn", "x", True), ("vanilla", "x2", False), ("gnn", "x2", False)]
    assert list(figure.data[3].y) == pytest.approx([22.2, 20.4, 20.0])
