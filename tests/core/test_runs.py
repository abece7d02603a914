"""Run store: a run row plus parquet tables, listed by domain and kind, read back intact."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from decisionlab.core.store.runs import RunStore


def _curve() -> pl.DataFrame:
    return pl.DataFrame(
        {"step": [0, 50, 100], "train_loss": [float("nan"), 5.1, 4.2], "eval_score": [6.0, 4.5, 4.1],
         "seconds": [0.0, 1.5, 3.0]}
    )


def test_record_and_read_back_table(decisionlab_home: Path) -> None:
    """The recorded table comes back equal (values, dtypes, column order), stored under the home."""
    store = RunStore()
    curve = _curve()
    run = store.record("inventory", "train", "inventory/hdpo@1", {"seed": 0}, {"cost_per_period": 4.1},
                       {"curve": curve})
    assert Path(run.tables["curve"]).is_relative_to(decisionlab_home)
    [listed] = store.list()
    assert listed == run
    assert_frame_equal(RunStore.table(listed, "curve"), curve)


def test_record_without_tables() -> None:
    store = RunStore()
    run = store.record("inventory", "evaluate", "optimal vs base_stock", {"episodes": 8}, {"n": 2})
    [listed] = store.list()
    assert listed.tables == {}
    assert (listed.config, listed.metrics, listed.label) == ({"episodes": 8}, {"n": 2}, run.label)


def test_list_filters_by_domain_and_kind_newest_first() -> None:
    store = RunStore()
    a = store.record("inventory", "train", "a", {}, {})
    b = store.record("inventory", "evaluate", "b", {}, {})
    c = store.record("routing", "train", "c", {}, {})
    assert len({a.run_id, b.run_id, c.run_id}) == 3
    assert [r.label for r in store.list()] == ["c", "b", "a"]
    assert [r.label for r in store.list("inventory")] == ["b", "a"]
    assert [r.label for r in store.list("inventory", "train")] == ["a"]
    assert [r.label for r in store.list(kind="train")] == ["c", "a"]
    assert store.list("nothing") == []


def test_runs_persist_across_instances(tmp_path: Path) -> None:
    home = tmp_path / "shared"
    RunStore(home).record("inventory", "train", "x", {"k": [1, 2]}, {"m": 1.5}, {"t": _curve()})
    [run] = RunStore(home).list()
    assert run.config == {"k": [1, 2]}
    assert run.metrics == {"m": 1.5}
    assert RunStore.table(run, "t").height == 3
