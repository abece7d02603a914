"""One local Ray for the tests of a file that asks for it (``ray_session``): 2 CPUs, a small object store,
no dashboard (Ray has no local mode any more). Each task carries the test's data dir itself
(``core.ray_backend.forwarded_env``), so one Ray serves tests with different data dirs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    if not ray.is_initialized():
        ray.init(num_cpus=2, object_store_memory=96 * 1024**2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    yield ray
    ray.shutdown()
