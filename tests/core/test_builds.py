"""Persisted expensive builds: computed once per data dir (across processes), tensors round-trip
through safetensors, a damaged result is computed again, an unwritable data dir still answers."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from decisionlab.core.store.builds import FOLDER, persisted


def _counting(values: dict) -> tuple[list[int], object]:
    calls: list[int] = []

    def compute() -> dict:
        calls.append(1)
        return values

    return calls, compute


def test_computed_once_and_read_back_with_tensors(tmp_path: Path) -> None:
    calls, compute = _counting({"level": torch.tensor([1.5, 2.5]), "passes": 3, "name": "grid"})
    first = persisted("test.builder", 1, {"lead_time": 2}, compute, home=tmp_path)
    again = persisted("test.builder", 1, {"lead_time": 2}, compute, home=tmp_path)
    assert len(calls) == 1
    assert torch.equal(again["level"], torch.tensor([1.5, 2.5])) and again["passes"] == 3 and again["name"] == "grid"
    assert torch.equal(first["level"], again["level"])
    # another key, another version: computed again
    persisted("test.builder", 1, {"lead_time": 3}, compute, home=tmp_path)
    persisted("test.builder", 2, {"lead_time": 2}, compute, home=tmp_path)
    assert len(calls) == 3


def test_damaged_result_is_computed_again(tmp_path: Path) -> None:
    calls, compute = _counting({"level": torch.tensor([4.0])})
    persisted("test.builder", 1, {"k": 1}, compute, home=tmp_path)
    (meta,) = (tmp_path / FOLDER / "test.builder").glob("*.json")
    meta.write_text("{not json")
    assert torch.equal(persisted("test.builder", 1, {"k": 1}, compute, home=tmp_path)["level"], torch.tensor([4.0]))
    assert len(calls) == 2
    json.loads(meta.read_text())  # rewritten whole


def test_unwritable_data_dir_still_computes(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("a file where the data dir should be")  # root ignores permissions; a file does not
    calls, compute = _counting({"value": 7})
    assert persisted("test.builder", 1, {}, compute, home=blocker)["value"] == 7
    assert persisted("test.builder", 1, {}, compute, home=blocker)["value"] == 7
    assert len(calls) == 2
