"""Shared test set-up: every test gets its own data home; torch uses a fixed, small thread count."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# The worked-example domain (tests/fixtures/newsvendor_domain) is importable as ``newsvendor_domain``.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

# The same default as the product (decisionlab.core.device.configure_threads: one thread, measured
# fastest for these small kernels); ``DECISIONLAB_NUM_THREADS`` overrides it.
TEST_THREADS = int(os.environ.get("DECISIONLAB_NUM_THREADS") or 1)


# Rebuildable data (generated data sets, baseline searches: ``core.store.home.cache_home``) goes to one
# folder per test run, made here in the first process (xdist's workers, servers and notebook kernels
# inherit the variable) and removed at its end: every run starts cold, so its timings are honest and
# nothing stale from an earlier run is read, but a search runs once per run, not once per test's data dir.
_CACHE_OWNER = "DECISIONLAB_TEST_CACHE_OWNER"
if _CACHE_OWNER not in os.environ:
    os.environ["DECISIONLAB_CACHE"] = tempfile.mkdtemp(prefix="decisionlab-test-cache-")
    os.environ[_CACHE_OWNER] = str(os.getpid())


def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get(_CACHE_OWNER) == str(os.getpid()):
        shutil.rmtree(os.environ["DECISIONLAB_CACHE"], ignore_errors=True)


# The longest files, longest first. ``make test`` hands whole files to two workers in collection order
# (``-n 2 --dist loadfile --no-loadscope-reorder``; xdist's own reorder puts the files with the most tests
# first, which left one-test files of a minute, the notebooks and schemathesis, to the end, where one
# worker could idle while the other ran them); starting the long ones first lets the short ones fill in.
LONGEST_FIRST = (
    "tests/e2e/",
    "tests/scale/test_ray.py",
    "tests/apps/test_schemathesis.py",
    "/test_notebook.py",
    "tests/conformance/",
    "tests/apps/test_run.py",
    "tests/core/test_registry_lifecycle.py",
)


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    path = path if path.startswith("tests/") else f"tests/{path}"
    return next((i for i, part in enumerate(LONGEST_FIRST) if part in path), len(LONGEST_FIRST))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: within a rank, collection order stays


@pytest.fixture(autouse=True)
def decisionlab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point ``DECISIONLAB_HOME`` at a fresh folder so no test touches ``~/.decisionlab``."""
    home = tmp_path / "decisionlab_home"
    monkeypatch.setenv("DECISIONLAB_HOME", str(home))
    # Tests wait for baseline builds (the 503 while one runs has its own test) and start servers cold.
    monkeypatch.setenv("DECISIONLAB_BUILD_WAIT_S", "600")
    monkeypatch.setenv("DECISIONLAB_WARM", "0")
    torch.set_num_threads(TEST_THREADS)
    yield home


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data folder and a clean API environment (no token, default body limit)."""
    monkeypatch.setenv("DECISIONLAB_HOME", str(tmp_path))
    monkeypatch.delenv("DECISIONLAB_API_TOKEN", raising=False)
    monkeypatch.delenv("DECISIONLAB_API_MAX_BODY_BYTES", raising=False)
    return tmp_path


@pytest.fixture
def client(home: Path):
    """A TestClient of the full API app over ``home``."""
    from fastapi.testclient import TestClient

    from decisionlab.apps.api import create_app

    return TestClient(create_app())


def app_test_of(name: str):
    """An ``AppTest`` of the dashboard page the shell generates for domain ``name``."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_string(
        f"from decisionlab.core.dashboard.compare import domain_page\ndomain_page({name!r})\n", default_timeout=60
    )


@pytest.fixture
def domain_page():
    """``domain_page(name)``: an ``AppTest`` of the dashboard page of domain ``name``."""
    return app_test_of


REGISTERED_REF = "inventory/hdpo_test@1"


@pytest.fixture
def registered(home: Path) -> Path:
    """A registered (untrained) single-store network ``inventory/hdpo_test@1`` (lead time 2) and its
    training run with a curve."""
    import math

    import polars as pl

    from decisionlab.core.spec import get_domain
    from decisionlab.core.store.registry import PolicyRegistry
    from decisionlab.core.store.runs import RunStore
    from decisionlab.domains.inventory.single_store.policies import OrderMLP

    spec = get_domain("inventory")
    torch.manual_seed(0)
    net = OrderMLP(2, 5.0)
    card = {
        "scenario_name": "lost_sales",
        "scenario": spec.scenario("lost_sales", {"underage_cost": 19}).describe(),
        "algo": "hdpo",
        "policy_config": net.config(),
        "metrics": {"cost_per_period": 6.5, "train_steps": 100},
    }
    record = PolicyRegistry(home).save("inventory", "hdpo_test", net.state_dict(), card)
    assert str(record.ref) == REGISTERED_REF
    curve = pl.DataFrame({"step": [0, 50, 100], "train_loss": [math.nan, 8.0, 7.0], "eval_score": [9.0, 7.0, 6.5]})
    RunStore(home).record("inventory", "train", REGISTERED_REF, card, card["metrics"], {"curve": curve})
    return home


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on 127.0.0.1 for this test session (skipped, with the reason, where the
    binaries cannot be had)."""
    from postgres_server import PostgresServer, unavailable

    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh PostgreSQL database's URL."""
    return postgres_server.database()



@dataclass
class NotebookRun:
    """An executed notebook: its outputs, the plotly figures among them and their printed text."""

    outputs: list[dict]
    figures: list[dict]
    text: str


@pytest.fixture
def run_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - returns the runner
    """``run_notebook(name)`` executes ``notebooks/<name>`` top to bottom at its quick sizes
    (``DECISIONLAB_NOTEBOOK_SMALL=1``, one torch thread; nbclient, the python3 kernel) after checking that it
    is stored with its outputs cleared, and fails on any error output."""
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    monkeypatch.setenv("DECISIONLAB_NUM_THREADS", "1")
    monkeypatch.setenv("DECISIONLAB_NOTEBOOK_SMALL", "1")

    def execute(name: str) -> NotebookRun:
        notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in code), \
            f"{name} is stored with outputs: clear them"
        nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
        outputs = [o for cell in code for o in cell.get("outputs", [])]
        assert not [o for o in outputs if o.get("output_type") == "error"]
        figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
        return NotebookRun(outputs, figures, "".join(o.get("text", "") for o in outputs))

    return execute
