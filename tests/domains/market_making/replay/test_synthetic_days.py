"""The long SYNTHETIC data set: generated deterministically into the cache (tested on two minutes of it),
loaded by the tardis reader, reused when complete and rewritten when damaged; the ``lob_replay_days``
preset is the calibration of its training part and holds out 58 disjoint windows (slow: the whole set)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from decisionlab.core.store.home import cache_home
from decisionlab.domains.market_making.replay import synthetic_days
from decisionlab.domains.market_making.replay.data import load_replay
from decisionlab.domains.market_making.replay.generate_sample import (
    TARDIS_BOOK_FILE,
    TARDIS_TRADES_FILE,
    short,
    tardis_lines,
)

TINY = short(synthetic_days.DAYS_CONFIG, 120)  # the first two minutes of the long set, event for event


def test_the_data_set_generates_deterministically_and_loads(tmp_path: Path) -> None:
    first = synthetic_days.ensure_days(TINY, tmp_path / "a", progress=False)
    second = synthetic_days.ensure_days(TINY, tmp_path / "b", progress=False)
    assert first.name == second.name == synthetic_days.cache_key(TINY)
    book, trades = tardis_lines(TINY)
    manifest = json.loads((first / synthetic_days.MANIFEST).read_text())
    for name, lines in ((TARDIS_BOOK_FILE, book), (TARDIS_TRADES_FILE, trades)):
        text = ("\n".join(lines) + "\n").encode()
        assert gzip.decompress((first / name).read_bytes()) == text  # the generator's own lines, streamed
        assert (first / name).read_bytes() == (second / name).read_bytes()  # same config, same bytes
        assert manifest["files"][name] == {"bytes": (first / name).stat().st_size, "lines": len(lines),
                                           "sha256": hashlib.sha256(text).hexdigest()}
    data = load_replay(first, "tardis", 1.0, 15)
    assert 115 <= data.snapshots <= 120 and data.trade_volume.sum() > 0
    assert not list(first.glob("*.tmp"))  # atomic writes leave no temporary file behind


def test_a_complete_folder_is_reused_and_a_damaged_one_rewritten(tmp_path: Path) -> None:
    folder = synthetic_days.ensure_days(TINY, tmp_path, progress=False)
    book = folder / TARDIS_BOOK_FILE
    stamp = book.stat().st_mtime_ns
    assert synthetic_days.ensure_days(TINY, tmp_path, progress=False) == folder and book.stat().st_mtime_ns == stamp
    book.write_bytes(book.read_bytes()[:100])  # a damaged file: its size is not the manifest's
    assert not synthetic_days.complete(folder)
    synthetic_days.ensure_days(TINY, tmp_path, progress=False)
    assert synthetic_days.complete(folder) and gzip.decompress(book.read_bytes()).startswith(b"exchange,")


def test_the_cache_folder_follows_decisionlab_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONLAB_CACHE", str(tmp_path / "cache"))
    assert cache_home() == tmp_path / "cache"
    assert synthetic_days.folder_of(TINY).is_relative_to(tmp_path / "cache" / "market_making")


@pytest.mark.slow
def test_the_days_preset_is_the_calibration_of_its_data() -> None:
    from decisionlab.domains.market_making.replay.calibration import calibrate
    from decisionlab.domains.market_making.replay.scenario import PRESETS, held_out_windows, replay_data

    preset = PRESETS["lob_replay_days"]
    data = replay_data(preset)  # generated into the cache on first use (about 16 s)
    assert data.snapshots == synthetic_days.DAYS * synthetic_days.SESSION_SECONDS
    assert held_out_windows(preset) == 58
    fit = calibrate(data, preset)
    assert fit["sigma"] == pytest.approx(preset.sigma, rel=1e-3)
    assert fit["fill_intensity_a"] == pytest.approx(preset.fill_intensity_a, rel=1e-3)
    assert fit["fill_decay_k"] == pytest.approx(preset.fill_decay_k, rel=1e-3)
