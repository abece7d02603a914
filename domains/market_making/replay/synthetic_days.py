"""The long SYNTHETIC data set of the ``lob_replay_days`` preset, generated on first use into the cache.

The shipped sample (4 h, :mod:`.generate_sample`) holds out 1.2 h: 7 disjoint 10-minute windows, too
few to tell policies apart. This data set is :data:`DAYS` sessions of 6.5 h (a trading day) from the
same generator with its own seed, back to back on one clock: 32.5 h, whose held-out 30% (9.75 h) has
58 disjoint 10-minute windows. The sessions are not separated by nights: the replay's regular clock
would otherwise step through 17.5 idle hours a night. Nothing here is market data.

**Generation** is seeded and deterministic (the generator draws only ``random.Random.random``, whose
sequence is guaranteed across Python versions): the same :class:`~.generate_sample.SampleConfig`
always gives the same text. It streams (constant memory) and takes about 0.5 s per simulated hour
on one core, about 16 s for the whole set (18 MB of gzip; loading it then takes about 5 s).

**Cache.** ``cache_home()/market_making/synthetic_days/<key>/`` (:func:`decisionlab.core.store.home.cache_home`:
``$DECISIONLAB_CACHE``, else ``~/.cache/decisionlab``) holds the two tardis files named as in the
shipped sample and ``manifest.json`` (the config, each file's bytes, lines and the SHA-256 of its
decompressed text); ``<key>`` is a digest of the config and :data:`VERSION`, so another config or a
changed generator gets its own folder. Each file is written under a temporary name and renamed; the
manifest is written last and marks the folder complete (a folder without it, or whose files do not
have the recorded sizes, is generated again); a file lock makes concurrent processes generate once.

    python -m decisionlab.domains.market_making.replay.synthetic_days   # generate now, print the folder
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from decisionlab.core import Progress, atomic_path, atomic_write_bytes, cache_home, file_lock
from decisionlab.domains.market_making.replay.generate_sample import (
    TARDIS_BOOK_FILE,
    TARDIS_START_US,
    TARDIS_TRADES_FILE,
    SampleConfig,
    tardis_rows,
)

SYNTHETIC_DAYS = "synthetic_days"
"""The ``data_path`` of a replay scenario that names this data set."""
DAYS = 5
SESSION_SECONDS = 23_400  # 6.5 h: one trading day
DAYS_CONFIG = SampleConfig(seed=20240108, seconds=DAYS * SESSION_SECONDS)
VERSION = 1  # bump when the generator's output changes: the cache key changes with it
MANIFEST = "manifest.json"
COMPRESS_LEVEL = 6  # gzip -6: about 4x faster than -9 for 5% more bytes
LINES_PER_WRITE = 20_000  # lines joined per write (fewer calls into gzip)


def cache_key(config: SampleConfig) -> str:
    """16 hex digits of the config and :data:`VERSION`: the folder name of a data set."""
    text = json.dumps({"version": VERSION, "config": asdict(config)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def folder_of(config: SampleConfig = DAYS_CONFIG, cache: Path | None = None) -> Path:
    """Where the data set of ``config`` lives (generated or not)."""
    return (cache if cache is not None else cache_home()) / "market_making" / SYNTHETIC_DAYS / cache_key(config)


def complete(folder: Path) -> bool:
    """The manifest is there and both files have the sizes it records."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return all((folder / name).stat().st_size == entry["bytes"] for name, entry in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_days(config: SampleConfig = DAYS_CONFIG, cache: Path | None = None, progress: bool = True) -> Path:
    """The folder of ``config``'s data set, generated first if the cache does not hold it complete."""
    folder = folder_of(config, cache)
    if complete(folder):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / ".lock"):
        if not complete(folder):  # another process may have finished while this one waited
            write_days(folder, config, progress)
    return folder


def write_days(folder: Path, config: SampleConfig = DAYS_CONFIG, progress: bool = True) -> dict[str, Any]:
    """Generate ``config``'s tardis files into ``folder`` (atomic writes, the manifest last); returns the manifest."""
    names = {True: TARDIS_BOOK_FILE, False: TARDIS_TRADES_FILE}
    entries: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        temps = {book: stack.enter_context(atomic_path(folder / name)) for book, name in names.items()}
        raw = {book: stack.enter_context(open(path, "wb")) for book, path in temps.items()}
        zipped = {book: stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0,
                                                          compresslevel=COMPRESS_LEVEL))
                  for book, handle in raw.items()}
        digests = {book: hashlib.sha256() for book in names}
        pending: dict[bool, list[str]] = {True: [], False: []}
        lines = {True: 0, False: 0}

        def flush(book: bool) -> None:
            text = ("\n".join(pending[book]) + "\n").encode()
            zipped[book].write(text)
            digests[book].update(text)
            lines[book] += len(pending[book])
            pending[book].clear()

        bar = stack.enter_context(Progress(config.seconds, "generating synthetic order-book days",
                                           unit="simulated second", enabled=progress))
        shown = 0
        for book, line in tardis_rows(config, TARDIS_START_US):
            pending[book].append(line)
            if len(pending[book]) >= LINES_PER_WRITE:
                flush(book)
                if book:  # progress from the book's last time stamp (µs since the start)
                    now = (int(line.split(",", 3)[2]) - TARDIS_START_US) // 1_000_000
                    bar.update(max(0, now - shown))
                    shown = max(shown, now)
        for book in names:
            if pending[book]:
                flush(book)
        bar.update(max(0, config.seconds - shown))
        for book in names:  # close the gzip streams before the temporary files are renamed
            zipped[book].close()
            raw[book].close()
            entries[names[book]] = {"bytes": temps[book].stat().st_size, "lines": lines[book],
                                    "sha256": digests[book].hexdigest()}
    manifest = {"version": VERSION, "config": asdict(config), "start_us": TARDIS_START_US, "files": entries}
    atomic_write_bytes(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return manifest


if __name__ == "__main__":
    print(ensure_days())
