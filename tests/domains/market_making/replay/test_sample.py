"""The shipped SYNTHETIC sample: it loads in both formats, the generator rewrites it bit-identically, the
preset's σ, A and k are its calibration, and the shared market-making metrics run on the replay."""

from __future__ import annotations

import gzip
import hashlib
import zlib

import numpy as np
import pytest
import torch

from decisionlab.core.errors import ScenarioError
from decisionlab.core.scenario import resolve_scenario
from decisionlab.domains.market_making.replay import generate_sample
from decisionlab.domains.market_making.replay.calibration import calibrate, calibrated
from decisionlab.domains.market_making.replay.data import infer_tick, summary
from decisionlab.domains.market_making.replay.scenario import PRESETS, ReplayScenario, check_data, replay_data
from decisionlab.domains.market_making.replay.sim import ReplaySim


def test_the_sample_loads_in_both_formats() -> None:
    preset = PRESETS["lob_replay"]
    data = replay_data(preset)
    assert data.snapshots == 4 * 3600 and data.levels == 15
    assert infer_tick(data) == pytest.approx(0.01)
    stats = summary(data)
    assert 0.9 < stats["trades_per_step"] < 1.3 and stats["median_spread"] == pytest.approx(0.01)
    # the queue-reactive effect: the best-level imbalance predicts the next mid move
    assert np.corrcoef(data.imbalance[:-1], np.diff(data.mid))[0, 1] > 0.1
    check_data(preset)
    lobster = replay_data(preset.model_copy(update={"data_format": "lobster", "book_levels": 10}))
    assert lobster.snapshots == 30 * 60 - 1 and lobster.levels == 10  # the clock starts at the first whole second
    assert lobster.trade_volume.sum() > 1000


def test_the_generator_rewrites_the_sample_bit_identically() -> None:
    for name, lines in generate_sample.sample_lines().items():
        shipped = (generate_sample.SAMPLE_DIR / name).read_bytes()
        text = ("\n".join(lines) + "\n").encode()
        assert gzip.decompress(shipped) == text, name
        assert hashlib.sha256(text).hexdigest() == generate_sample.SAMPLE_SHA256[name]
        if zlib.ZLIB_RUNTIME_VERSION == generate_sample.SAMPLE_ZLIB:  # another zlib may compress differently
            assert generate_sample.gzip_lines(lines) == shipped, name


def test_a_shorter_run_is_a_prefix() -> None:
    config = generate_sample.short(generate_sample.TARDIS_SAMPLE, 120)
    book, trades = generate_sample.tardis_lines(config)
    full_book, full_trades = generate_sample.tardis_lines(generate_sample.short(generate_sample.TARDIS_SAMPLE, 240))
    assert full_book[: len(book)] == book and full_trades[: len(trades)] == trades


def test_the_preset_is_the_calibration_of_the_sample() -> None:
    preset = PRESETS["lob_replay"]
    fit = calibrate(replay_data(preset), preset)
    assert fit["sigma"] == pytest.approx(preset.sigma, rel=1e-3)
    assert fit["fill_intensity_a"] == pytest.approx(preset.fill_intensity_a, rel=1e-3)
    assert fit["fill_decay_k"] == pytest.approx(preset.fill_decay_k, rel=1e-3)
    intensity = np.array(fit["intensity"])
    assert (np.diff(intensity) < 0).all()  # deeper quotes fill less often
    recalibrated = calibrated(preset.model_copy(update={"sigma": 1.0, "fill_decay_k": 1.0}))
    assert recalibrated.fill_decay_k == pytest.approx(fit["fill_decay_k"]) and recalibrated.sigma == fit["sigma"]


def test_scenario_errors_name_the_fields(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ScenarioError, match="queue_model"):
        resolve_scenario(ReplayScenario, PRESETS["lob_replay"], {"queue_model": "optimistic"})
    with pytest.raises(ScenarioError, match="flatten_at_end: Input should be a valid boolean"):
        resolve_scenario(ReplayScenario, PRESETS["lob_replay"], {"flatten_at_end": 1})
    with pytest.raises(ScenarioError, match="train_fraction"):
        resolve_scenario(ReplayScenario, PRESETS["lob_replay"], {"train_fraction": 1.0})
    long = resolve_scenario(ReplayScenario, PRESETS["lob_replay"], {"horizon": 9000.0})
    with pytest.raises(ScenarioError, match="horizon/dt/train_fraction: an episode of 9000 steps"):
        check_data(long)
    missing = resolve_scenario(ReplayScenario, PRESETS["lob_replay"], {"data_path": str(tmp_path / "none")})
    with pytest.raises(ScenarioError, match="no such file or folder"):
        check_data(missing)


def test_the_shared_metrics_run_on_the_replay() -> None:
    metrics = pytest.importorskip("decisionlab.domains.market_making.metrics")
    baselines = pytest.importorskip("decisionlab.domains.market_making.baselines")
    scenario = PRESETS["lob_replay"].model_copy(update={"horizon": 120.0})
    sim = ReplaySim(scenario, "cpu", "test")
    values = metrics.episode_values(sim, baselines.AvellanedaStoikov(scenario), 32,
                                    torch.Generator().manual_seed(0))
    again = metrics.episode_values(sim, baselines.AvellanedaStoikov(scenario), 32,
                                   torch.Generator().manual_seed(0))
    assert all(np.array_equal(values[k], again[k]) for k in values)
    summary_ = metrics.summarize(scenario, values)
    assert summary_["fill_rate"] > 0 and np.isfinite(summary_["mean_pnl"])
    assert summary_["max_abs_inventory"] <= scenario.max_inventory
