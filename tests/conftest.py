"""Shared test set-up: every test gets its own data home; torch uses a fixed, small thread count."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# The same default as the product (decisionlab.core.device.configure_threads: one thread, measured
# fastest for these small kernels); ``DECISIONLAB_NUM_THREADS`` overrides it.
TEST_THREADS = int(os.environ.get("DECISIONLAB_NUM_THREADS") or 1)


@pytest.fixture(autouse=True)
def decisionlab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point ``DECISIONLAB_HOME`` at a fresh folder so no test touches ``~/.decisionlab``."""
    home = tmp_path / "decisionlab_home"
    monkeypatch.setenv("DECISIONLAB_HOME", str(home))
    torch.set_num_threads(TEST_THREADS)
    yield home
