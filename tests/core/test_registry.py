"""Policy registry: versioning, references, integrity checks and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from decisionlab.core.errors import RegistryError
from decisionlab.core.store.atomic import atomic_write_bytes, atomic_write_with
from decisionlab.core.store.home import data_home
from decisionlab.core.store.registry import (
    PolicyRegistry,
    parse_ref,
)


def _weights(value: float = 1.0) -> dict[str, torch.Tensor]:
    return {
        "net.0.weight": torch.full((3, 2), value),
        "net.0.bias": torch.arange(3, dtype=torch.float32) * value,
        "steps": torch.tensor([7], dtype=torch.int64),
    }


def test_home_follows_the_environment(decisionlab_home: Path) -> None:
    """The autouse fixture's DECISIONLAB_HOME is where the registry writes."""
    registry = PolicyRegistry()
    assert registry.home == decisionlab_home
    record = registry.save("inventory", "hdpo", _weights(), {})
    assert (decisionlab_home / "index.sqlite").exists()
    assert record.weights_path.parent == decisionlab_home / "policies" / "inventory" / "hdpo"
    assert record.weights_path.suffix == ".safetensors" and record.weights_path.exists()
    # the index stores the path relative to the data dir
    [row] = registry.index.all("inventory")
    assert not Path(row.weights_path).is_absolute() and decisionlab_home / row.weights_path == record.weights_path
    assert data_home() == decisionlab_home


def test_versions_count_up_per_name() -> None:
    registry = PolicyRegistry()
    first = registry.save("inventory", "hdpo", _weights(1.0), {"note": "a"})
    second = registry.save("inventory", "hdpo", _weights(2.0), {"note": "b"})
    other = registry.save("inventory", "other", _weights(3.0), {})
    assert (first.ref.version, second.ref.version, other.ref.version) == (1, 2, 1)
    assert str(second.ref) == "inventory/hdpo@2"
    assert second.card["ref"] == "inventory/hdpo@2"
    assert second.card["note"] == "b"


def test_find_latest_and_exact() -> None:
    registry = PolicyRegistry()
    registry.save("inventory", "hdpo", _weights(1.0), {"note": "a"})
    registry.save("inventory", "hdpo", _weights(2.0), {"note": "b"})
    assert registry.find("inventory/hdpo").ref.version == 2
    assert registry.find("hdpo", "inventory").ref.version == 2
    exact = registry.find("inventory/hdpo@1")
    assert exact.ref.version == 1
    assert exact.card["note"] == "a"
    assert registry.find("hdpo@1", "inventory").card["note"] == "a"


def test_find_missing_lists_what_is_registered() -> None:
    registry = PolicyRegistry()
    with pytest.raises(RegistryError, match="none registered"):
        registry.find("inventory/hdpo")
    registry.save("inventory", "hdpo", _weights(), {})
    with pytest.raises(RegistryError) as info:
        registry.find("inventory/hdpo@5")
    assert "inventory/hdpo@1" in str(info.value)


@pytest.mark.parametrize(
    ("text", "domain", "expected"),
    [
        ("inventory/x@2", None, ("inventory", "x", 2)),
        ("inventory/x@2", "inventory", ("inventory", "x", 2)),
        ("x@2", "inventory", ("inventory", "x", 2)),
        ("x", "inventory", ("inventory", "x", None)),
        ("inventory/hdpo_lost-sales.v2", None, ("inventory", "hdpo_lost-sales.v2", None)),
        ("  x@10 ", "inventory", ("inventory", "x", 10)),
    ],
)
def test_parse_ref_forms(text: str, domain: str | None, expected: tuple[str, str, int | None]) -> None:
    assert parse_ref(text, domain) == expected


def test_parse_ref_wrong_domain() -> None:
    """A reference into another domain is refused, naming both domains."""
    with pytest.raises(RegistryError) as info:
        parse_ref("routing/x@1", "inventory")
    assert "routing" in str(info.value)
    assert "inventory" in str(info.value)


def test_parse_ref_needs_a_domain() -> None:
    with pytest.raises(RegistryError, match="domain"):
        parse_ref("x@1")


@pytest.mark.parametrize("text", ["", "x@", "x@v2", "../x", "a/b/c", "x y", "@1", "inventory/"])
def test_parse_ref_rejects_malformed(text: str) -> None:
    with pytest.raises(RegistryError):
        parse_ref(text, "inventory")


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "has space", "-leading", ".hidden", "x" * 65, "é"])
def test_bad_names_are_rejected_and_nothing_is_written(name: str, decisionlab_home: Path) -> None:
    registry = PolicyRegistry()
    with pytest.raises(RegistryError, match="policy name"):
        registry.save("inventory", name, _weights(), {})
    assert registry.list() == []
    assert not (decisionlab_home / "policies").exists()


def test_weights_round_trip() -> None:
    """Tensors (values and dtypes) come back exactly; the card records their SHA-256."""
    registry = PolicyRegistry()
    weights = _weights(0.25)
    record = registry.save("inventory", "hdpo", weights, {"policy_config": {"kind": "order_mlp"}})
    loaded = registry.load_weights(registry.find("inventory/hdpo@1"))
    assert set(loaded) == set(weights)
    for key, tensor in weights.items():
        assert loaded[key].dtype == tensor.dtype
        assert torch.equal(loaded[key], tensor)
    assert len(record.card["weights_sha256"]) == 64
    on_disk = json.loads(record.weights_path.with_suffix(".json").read_text())
    assert on_disk["weights_sha256"] == record.card["weights_sha256"]
    assert on_disk["policy_config"] == {"kind": "order_mlp"}


def test_tampered_weights_are_refused() -> None:
    """A weights file changed after registration fails the SHA-256 check."""
    registry = PolicyRegistry()
    record = registry.save("inventory", "hdpo", _weights(), {})
    raw = bytearray(record.weights_path.read_bytes())
    raw[-1] ^= 0xFF
    record.weights_path.write_bytes(bytes(raw))
    with pytest.raises(RegistryError, match="do not match"):
        registry.load_weights(registry.find("inventory/hdpo"))


def test_missing_weights_are_reported() -> None:
    registry = PolicyRegistry()
    record = registry.save("inventory", "hdpo", _weights(), {})
    record.weights_path.unlink()
    with pytest.raises(RegistryError, match="missing"):
        registry.load_weights(record)


def test_list_by_domain() -> None:
    registry = PolicyRegistry()
    registry.save("inventory", "b", _weights(), {})
    registry.save("inventory", "a", _weights(), {})
    registry.save("inventory", "a", _weights(), {})
    registry.save("routing", "a", _weights(), {})
    assert [str(r.ref) for r in registry.list("inventory")] == ["inventory/a@1", "inventory/a@2", "inventory/b@1"]
    assert [str(r.ref) for r in registry.list("routing")] == ["routing/a@1"]
    assert len(registry.list()) == 4
    assert registry.list("nothing") == []


def test_registry_persists_across_instances(tmp_path: Path) -> None:
    """A second registry on the same home sees what the first saved."""
    home = tmp_path / "shared"
    PolicyRegistry(home).save("inventory", "hdpo", _weights(), {})
    assert PolicyRegistry(home).find("inventory/hdpo").ref.version == 1


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_failure_leaves_no_target_and_no_temp(tmp_path: Path) -> None:
    """A writer that fails halfway leaves no target and no temporary file; the error propagates."""
    target = tmp_path / "sub" / "file.bin"

    def failing(tmp: Path) -> None:
        tmp.write_bytes(b"half of it")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_with(target, failing)
    assert not target.exists()
    assert _leftovers(target.parent) == []


def test_atomic_write_failure_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")

    def failing(tmp: Path) -> None:
        tmp.write_bytes(b"new but incomplete")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        atomic_write_with(target, failing)
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert _leftovers(tmp_path) == []


def test_failed_weights_write_registers_nothing(monkeypatch: pytest.MonkeyPatch, decisionlab_home: Path) -> None:
    """If writing the weights fails, no index row, no card and no temp file remain."""
    import decisionlab.core.store.registry as registry_module

    registry = PolicyRegistry()

    def broken_save_file(tensors: dict[str, torch.Tensor], path: str) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError("no space left on device")

    monkeypatch.setattr(registry_module, "save_file", broken_save_file)
    with pytest.raises(OSError):
        registry.save("inventory", "hdpo", _weights(), {})
    assert registry.list() == []
    folder = decisionlab_home / "policies" / "inventory" / "hdpo"
    assert not folder.exists() or list(folder.iterdir()) == []
