"""Results of expensive baseline builds (searches, exact solvers), kept in the cache dir.

``persisted(builder, version, key, compute)`` returns what ``compute()`` returned the first time it
ran for ``(builder, version, key)`` on this cache dir, in this process or any other: a restart, a
second server worker, the CLI or another data dir does not search again. They live with the other
rebuildable data (:func:`~decisionlab.core.store.home.cache_home`), not with the policies and runs a
user made: a build is a pure function of its key, so every data dir on the machine can share it.
Values are numbers, lists, strings or torch tensors (tensors go to safetensors, the rest to JSON:
nothing is pickled). A file lock per key makes
concurrent processes compute once: the second waits for the first and reads its result. Bump
``version`` when the builder's algorithm changes, so old results are not reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from decisionlab.core.store.atomic import atomic_write_bytes, atomic_write_with, file_lock
from decisionlab.core.store.home import cache_home

FOLDER = "builds"


def build_key(builder: str, version: int, key: Mapping[str, Any]) -> str:
    """A stable hex digest of what determines a build."""
    text = json.dumps({"builder": builder, "version": version, "key": key}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _read(stem: Path) -> dict[str, Any] | None:
    meta_path, tensor_path = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        values = dict(meta["values"])
        if meta.get("tensors"):
            tensors = load_file(str(tensor_path))
            values.update({name: tensors[name] for name in meta["tensors"]})
        return values
    except Exception:  # a damaged result is computed again, never trusted
        return None


def _write(stem: Path, values: Mapping[str, Any], builder: str, key: Mapping[str, Any]) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in values.items() if isinstance(v, torch.Tensor)}
    plain = {k: v for k, v in values.items() if not isinstance(v, torch.Tensor)}
    if tensors:
        atomic_write_with(stem.with_suffix(".safetensors"), lambda tmp: save_file(tensors, str(tmp)))
    meta = {"builder": builder, "key": key, "values": plain, "tensors": sorted(tensors)}
    atomic_write_bytes(stem.with_suffix(".json"), json.dumps(meta, default=str).encode())  # written last: the commit


def persisted(
    builder: str, version: int, key: Mapping[str, Any], compute: Callable[[], Mapping[str, Any]],
    home: Path | None = None,
) -> dict[str, Any]:
    """The values of ``compute()`` for ``(builder, version, key)``, computed once per cache dir (``home``,
    default :func:`cache_home`)."""
    digest = build_key(builder, version, key)
    folder = (home or cache_home()) / FOLDER / builder
    stem = folder / digest
    found = _read(stem)
    if found is not None:
        return found
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(folder / f".{digest}.lock"))
        except OSError:  # a read-only or invalid data dir: compute, keep nothing
            return dict(compute())
        found = _read(stem)  # another process may have finished while this one waited
        if found is not None:
            return found
        values = dict(compute())
        with contextlib.suppress(OSError):  # the disk filled up: the result is still good for this process
            _write(stem, values, builder, dict(key))
        return values
