"""Smoke test of ``python -m benchmarks.gpu``: the whole path on the CPU at a tiny size (seconds)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # ``benchmarks`` is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks import gpu  # noqa: E402

DOMAINS = ("execution", "market_making")  # the two whose smoke trainings take a fraction of a second
SIZES = (16, 64)


def test_gpu_bench_runs_on_cpu_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    report = gpu.main(["--devices", "cpu", "--sizes", ",".join(map(str, SIZES)), "--steps", "3",
                       "--domains", ",".join(DOMAINS), "--train", "--eval-episodes", "4", "--out", str(out)])

    rows = {(r["domain"], r["batch"]): r for r in report["throughput"]}
    assert set(rows) == {(d, b) for d in DOMAINS for b in SIZES}
    for row in rows.values():
        assert row["skipped"] is None and row["device"] == "cpu"
        assert row["rate"] > 0 and row["steps"] == 3
    trained = {r["domain"]: r for r in report["training"]}
    assert set(trained) == set(DOMAINS)
    for row in trained.values():
        assert row["skipped"] is None and row["seconds"] > 0 and row["value"] == row["value"]  # not NaN

    # the table states the hardware and has a row per domain with a rate per size
    text = report["markdown"]
    assert "Hardware: CPU:" in text and "torch threads" in text and "GPU: none" in text
    for domain in DOMAINS:
        line = next(line for line in text.splitlines() if line.startswith(f"| {domain} |") and "| cpu |" in line)
        assert all(cell.strip().replace(",", "").isdigit() for cell in line.strip("|").split("|")[-len(SIZES):])
    assert json.loads(out.read_text())["throughput"] == report["throughput"]


def test_sizes_that_do_not_fit_are_skipped_with_a_reason(tmp_path: Path) -> None:
    report = gpu.main(["--devices", "cpu", "--sizes", "64,100000000000", "--steps", "2", "--domains", "inventory",
                       "--no-train"])
    big = next(r for r in report["throughput"] if r["batch"] == 100_000_000_000)
    assert big["rate"] is None and big["skipped"].startswith(("memory:", "time:"))
    assert "skipped: " in report["markdown"]
