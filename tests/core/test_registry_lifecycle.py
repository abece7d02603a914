"""The registry under concurrency and failure, on SQLite and on a real PostgreSQL server: saves from
8 processes, killed saves and ``gc``, aliases, a data dir that moves, a data dir that cannot be written."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from decisionlab.core.errors import ArtefactError, DecisionlabError, RegistryError
from decisionlab.core.store import registry as registry_module
from decisionlab.core.store.registry import PolicyRegistry

WRITERS, SAVES_EACH = 8, 25

SAVER = textwrap.dedent("""
    import sys, torch
    from decisionlab.core.store.registry import PolicyRegistry
    writer, count = int(sys.argv[1]), int(sys.argv[2])
    registry = PolicyRegistry()
    for i in range(count):
        registry.save("toy", "shared", {"w": torch.full((4,), float(writer * 1000 + i))},
                      {"writer": writer, "i": i})
""")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, decisionlab_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The index database of the test: the embedded SQLite file or a fresh PostgreSQL database."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("DECISIONLAB_DB_URL", url)
    else:
        monkeypatch.delenv("DECISIONLAB_DB_URL", raising=False)
    return request.param


def consistent(registry: PolicyRegistry) -> None:
    """Every index row has its weights, and every file under policies/ belongs to a row."""
    rows = registry.list()
    referenced = {r.weights_path for r in rows}
    for record in rows:
        assert record.weights_path.is_file(), record.ref
    for path in (registry.home / "policies").rglob("*"):
        if path.is_file():
            assert path.with_suffix(".safetensors") in referenced, f"orphan {path.relative_to(registry.home)}"


def test_eight_processes_saving_under_one_name_all_succeed(backend: str) -> None:
    """8 concurrent writers x 25 saves: 200 distinct versions, each loading its own weights."""
    env = {**os.environ}
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(w), str(SAVES_EACH)], env=env,
                              stderr=subprocess.PIPE, text=True) for w in range(WRITERS)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    registry = PolicyRegistry()
    records = [r for r in registry.list("toy") if r.ref.name == "shared"]
    assert sorted(r.ref.version for r in records) == list(range(1, WRITERS * SAVES_EACH + 1))
    seen = set()
    for record in records:
        value = float(registry.load_weights(record)["w"][0])
        assert value == record.card["writer"] * 1000 + record.card["i"]
        seen.add(value)
    assert len(seen) == WRITERS * SAVES_EACH
    consistent(registry)


def _save(registry: PolicyRegistry, value: float = 1.0) -> str:
    return str(registry.save("toy", "p", {"w": torch.full((3,), value)}, {"value": value}).ref)


@pytest.mark.parametrize("stage", ["writing_weights", "before_index", "before_card"])
def test_a_save_that_dies_at_any_stage_is_cleaned_by_gc(
    stage: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = PolicyRegistry()
    kept = _save(registry)

    class Killed(BaseException):
        """Stands in for SIGKILL: nothing after it runs (not even except-Exception handlers)."""

    def die(*_: object, **__: object) -> None:
        raise Killed

    if stage == "writing_weights":
        def partial_write(target: Path, writer: object) -> None:
            # what SIGKILL in the middle of an atomic write leaves: half a temporary file, no target
            target.parent.mkdir(parents=True, exist_ok=True)
            (target.parent / f".{target.name}.k1ll3d.tmp").write_bytes(b"half a file")
            raise Killed

        monkeypatch.setattr(registry_module, "atomic_write_with", partial_write)
    elif stage == "before_index":
        monkeypatch.setattr(registry.index, "insert_next", die)
    else:
        monkeypatch.setattr(registry_module, "atomic_write_bytes", die)
    with pytest.raises(Killed):
        _save(registry, 2.0)
    monkeypatch.undo()
    report = registry.gc()
    consistent(registry)
    assert registry.load_weights(registry.find(kept))["w"][0] == 1.0
    if stage != "before_card":
        assert report.removed, "the dead save's files are removed"
    # the registry goes on: the next save gets the next free version
    assert registry.find(_save(registry, 3.0)).card["value"] == 3.0


LOOP_SAVER = textwrap.dedent("""
    import torch
    from decisionlab.core.store.registry import PolicyRegistry
    registry = PolicyRegistry()
    registry.save("toy", "loop", {"w": torch.randn(20_000)}, {"i": -1})
    print("saving", flush=True)  # imported and saving: the test kills from here on
    i = 0
    while True:
        registry.save("toy", "loop", {"w": torch.randn(20_000)}, {"i": i})
        i += 1
""")


def test_processes_killed_mid_save_leave_nothing_after_gc(backend: str) -> None:
    """SIGKILL a saving process at random moments; after gc the index and the files agree."""
    rng = random.Random(0)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", LOOP_SAVER], env={**os.environ}, stdout=subprocess.PIPE,
                                text=True)
        # wait for the saves to run (imports take seconds, more on a cold machine), then kill at a random moment
        assert proc.stdout is not None and proc.stdout.readline().strip() == "saving"
        time.sleep(rng.uniform(0.1, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    registry = PolicyRegistry()
    registry.gc()
    consistent(registry)
    for record in registry.list("toy"):
        registry.load_weights(record)


def test_aliases_promote_rollback_and_guard_deletes(backend: str) -> None:
    registry = PolicyRegistry()
    first, second, third = (_save(registry, v) for v in (1.0, 2.0, 3.0))
    assert registry.promote(first, "prod").aliases == ("prod",)
    assert registry.find("toy/p@prod").ref.version == 1
    registry.promote(third, "prod")
    assert registry.find("toy/p@prod").ref.version == 3
    assert registry.rollback("toy/p", "prod").ref.version == 1
    with pytest.raises(RegistryError, match="aliased as prod"):
        registry.delete(first)
    registry.delete(second)
    with pytest.raises(DecisionlabError, match="no registered policy"):
        registry.find(second)
    assert registry.delete(first, force=True).ref.version == 1
    with pytest.raises(DecisionlabError, match="no alias 'prod'"):
        registry.find("toy/p@prod")
    consistent(registry)


def test_a_rollback_with_no_history_is_refused(backend: str) -> None:
    registry = PolicyRegistry()
    registry.promote(_save(registry), "prod")
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback("toy/p", "prod")


def test_the_data_dir_can_move(decisionlab_home: Path, tmp_path: Path) -> None:
    """The index stores paths relative to the data dir: a moved (SQLite) data dir still loads."""
    ref = _save(PolicyRegistry())
    moved = tmp_path / "moved"
    shutil.move(str(decisionlab_home), moved)
    registry = PolicyRegistry(moved)
    assert registry.load_weights(registry.find(ref))["w"][0] == 1.0


def test_missing_and_corrupt_weights_name_the_policy_not_the_path(decisionlab_home: Path) -> None:
    registry = PolicyRegistry()
    record = registry.find(_save(registry))
    record.weights_path.write_bytes(b"not safetensors")
    with pytest.raises(ArtefactError) as info:
        registry.load_weights(record)
    assert "toy/p@1" in str(info.value) and str(decisionlab_home) not in str(info.value)
    record.weights_path.unlink()
    with pytest.raises(ArtefactError, match="missing") as info:
        registry.load_weights(record)
    assert str(decisionlab_home) not in str(info.value)
    assert registry.gc().missing == ["toy/p@1"]


def test_an_unwritable_data_dir_fails_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A data dir that cannot take a policy is refused before any training starts (here its
    policies/ folder is a file, which stops root too)."""
    from decisionlab.core import training
    from decisionlab.core.spec import get_domain

    home = tmp_path / "home"
    registry = PolicyRegistry(home)
    (home / "policies").write_text("not a folder")
    started = []
    monkeypatch.setattr(training, "TrainContext", lambda *a, **k: started.append(1))
    with pytest.raises(DecisionlabError, match="not writable") as info:
        training.train_and_register(get_domain("inventory"), "lost_sales", {}, "hdpo", seed=0, name=None,
                                    device=torch.device("cpu"), progress=False, registry=registry)
    assert not started
    assert "DECISIONLAB_HOME" in str(info.value)


def test_a_data_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(DecisionlabError, match="not a folder|cannot be created"):
        PolicyRegistry(path)
