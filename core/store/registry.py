"""Policy registry: safetensors weights + a JSON card, indexed in SQLite.

A policy is addressed as ``domain/name@version``. Files live under
``<home>/policies/<domain>/<name>/v<version>-<id>.{safetensors,json}``; the index (``<home>/index.sqlite``)
maps references to them. Files are written atomically before the index row is committed, so a
reference in the index always points at complete files. Loading never unpickles: weights come
from safetensors and are checked against the SHA-256 recorded in the card.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load_file, save_file

from decisionlab.core.errors import PolicyNotFoundError, RegistryError
from decisionlab.core.store.atomic import atomic_write_bytes, atomic_write_with
from decisionlab.core.store.home import data_home

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REF_PATTERN = re.compile(
    r"^(?:(?P<domain>[A-Za-z0-9_]+)/)?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,63}?)(?:@(?P<version>\d+))?$"
)


@dataclass(frozen=True)
class PolicyRef:
    domain: str
    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.domain}/{self.name}@{self.version}"


@dataclass(frozen=True)
class PolicyRecord:
    """One registered policy: its reference, card and file locations."""

    ref: PolicyRef
    card: dict[str, Any]
    weights_path: Path
    created: float

    def summary(self) -> dict[str, Any]:
        """JSON description for listings (API, CLI, dashboard)."""
        return {
            "ref": str(self.ref),
            "domain": self.ref.domain,
            "name": self.ref.name,
            "version": self.ref.version,
            "algo": self.card.get("algo"),
            "scenario": self.card.get("scenario"),
            "metrics": self.card.get("metrics", {}),
            "created": self.created,
        }


def parse_ref(text: str, domain: str | None = None) -> tuple[str, str, int | None]:
    """``"inventory/hdpo@3"`` -> ("inventory", "hdpo", 3); domain and version may be omitted."""
    match = REF_PATTERN.match(text.strip())
    if not match:
        raise RegistryError(
            f"'{text}' is not a policy reference (expected domain/name@version, name@version or name)"
        )
    ref_domain = match.group("domain") or domain
    if ref_domain is None:
        raise RegistryError(f"policy reference '{text}' needs a domain (domain/name@version)")
    if domain is not None and ref_domain != domain:
        raise RegistryError(f"policy '{text}' belongs to domain '{ref_domain}', not '{domain}'")
    version = match.group("version")
    return ref_domain, match.group("name"), int(version) if version else None


class PolicyIndex(Protocol):
    """The index behind the registry; SQLite here, a server database elsewhere."""

    def next_version(self, domain: str, name: str) -> int: ...
    def insert(self, record: PolicyRecord) -> None: ...
    def find(self, domain: str, name: str, version: int | None) -> PolicyRecord | None: ...
    def all(self, domain: str | None) -> list[PolicyRecord]: ...


class SQLitePolicyIndex:
    """An embedded index: one file, safe for several processes (SQLite locking)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS policies (domain TEXT NOT NULL, name TEXT NOT NULL,"
                " version INTEGER NOT NULL, weights_path TEXT NOT NULL, card_json TEXT NOT NULL,"
                " created REAL NOT NULL, PRIMARY KEY (domain, name, version))"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def next_version(self, domain: str, name: str) -> int:
        with self._connect() as db:
            row = db.execute(
                "SELECT MAX(version) FROM policies WHERE domain=? AND name=?", (domain, name)
            ).fetchone()
        return int(row[0] or 0) + 1

    def insert(self, record: PolicyRecord) -> None:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO policies VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.ref.domain,
                    record.ref.name,
                    record.ref.version,
                    str(record.weights_path),
                    json.dumps(record.card),
                    record.created,
                ),
            )
            db.execute("COMMIT")
        except sqlite3.IntegrityError as err:
            db.execute("ROLLBACK")
            raise RegistryError(f"{record.ref} is already registered") from err
        finally:
            db.close()

    def _row(self, row: tuple[Any, ...]) -> PolicyRecord:
        domain, name, version, path, card, created = row
        return PolicyRecord(PolicyRef(domain, name, int(version)), json.loads(card), Path(path), created)

    def find(self, domain: str, name: str, version: int | None) -> PolicyRecord | None:
        query = "SELECT * FROM policies WHERE domain=? AND name=?"
        args: tuple[Any, ...] = (domain, name)
        if version is not None:
            query, args = query + " AND version=?", (*args, version)
        with self._connect() as db:
            row = db.execute(query + " ORDER BY version DESC LIMIT 1", args).fetchone()
        return self._row(row) if row else None

    def all(self, domain: str | None) -> list[PolicyRecord]:
        query, args = "SELECT * FROM policies", ()
        if domain is not None:
            query, args = query + " WHERE domain=?", (domain,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY domain, name, version", args).fetchall()
        return [self._row(r) for r in rows]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class PolicyRegistry:
    """Save, list and load trained policies."""

    def __init__(self, home: str | Path | None = None, index: PolicyIndex | None = None) -> None:
        self.home = data_home(home)
        self.index = index or SQLitePolicyIndex(self.home / "index.sqlite")

    def save(
        self,
        domain: str,
        name: str,
        weights: dict[str, torch.Tensor],
        card: dict[str, Any],
    ) -> PolicyRecord:
        """Register a new version of ``domain/name``; returns its record."""
        for label, value in (("policy name", name), ("domain", domain)):
            if not NAME_PATTERN.match(value):
                raise RegistryError(f"{label} '{value}' must be 1-64 characters of letters, digits, '_', '.', '-'")
        folder = self.home / "policies" / domain / name
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
        for _attempt in range(5):
            version = self.index.next_version(domain, name)
            ref = PolicyRef(domain, name, version)
            # A unique stem per attempt: a concurrent writer that drew the same version number
            # can never overwrite files another process has already committed to the index.
            stem = f"v{version}-{uuid.uuid4().hex[:8]}"
            weights_path = folder / f"{stem}.safetensors"
            card_path = folder / f"{stem}.json"
            atomic_write_with(weights_path, lambda tmp: save_file(tensors, str(tmp)))
            created = time.time()
            full_card = {
                **card,
                "ref": str(ref),
                "domain": domain,
                "name": name,
                "version": version,
                "created": created,
                "weights_sha256": _sha256(weights_path),
            }
            atomic_write_bytes(card_path, json.dumps(full_card, indent=2).encode())
            record = PolicyRecord(ref, full_card, weights_path, created)
            try:
                self.index.insert(record)
                return record
            except RegistryError:
                # Another process took this version number: drop our files, try the next one.
                weights_path.unlink(missing_ok=True)
                card_path.unlink(missing_ok=True)
        raise RegistryError(f"could not register {domain}/{name}: version conflict")

    def find(self, text: str, domain: str | None = None) -> PolicyRecord:
        """The record for a reference; the latest version when none is given."""
        ref_domain, name, version = parse_ref(text, domain)
        record = self.index.find(ref_domain, name, version)
        if record is None:
            known = sorted({str(r.ref) for r in self.index.all(ref_domain)})
            hint = f"; registered: {', '.join(known)}" if known else "; none registered yet"
            raise PolicyNotFoundError(f"no registered policy '{text}' in domain '{ref_domain}'{hint}")
        return record

    def load_weights(self, record: PolicyRecord) -> dict[str, torch.Tensor]:
        """Weights of ``record`` after checking their SHA-256 against the card."""
        if not record.weights_path.exists():
            raise RegistryError(f"weights of {record.ref} are missing at {record.weights_path}")
        expected = record.card.get("weights_sha256")
        if expected and _sha256(record.weights_path) != expected:
            raise RegistryError(f"weights of {record.ref} do not match their card (corrupt file?)")
        try:
            return load_file(str(record.weights_path))
        except Exception as err:  # safetensors raises its own error types on bad headers
            raise RegistryError(f"weights of {record.ref} cannot be read: {err}") from err

    def list(self, domain: str | None = None) -> list[PolicyRecord]:
        return self.index.all(domain)
