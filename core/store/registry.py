"""Policy registry: safetensors weights + a JSON card, indexed in SQLite or PostgreSQL.

A policy is addressed as ``domain/name@version`` or ``domain/name@alias`` (``prod``, ``staging``:
an alias points at one version and can be moved, with its history kept for rollbacks); the domain
may be left out where it is known, and ``name`` alone means the latest version. Files live under
``<data dir>/policies/<domain>/<name>/<id>.{safetensors,json}``; the index (:mod:`.index`) stores
their path relative to the data dir, so the data dir can move.

A save writes the weights atomically, then inserts the index row (concurrent savers retry until each
gets its own version), then writes the card next to the weights. A save killed at any point leaves
at most files no row points at: :meth:`PolicyRegistry.gc` removes them (saves hold a shared lock on
the data dir while they write, ``gc`` an exclusive one, so it never removes a save in flight).
Loading never unpickles: weights come from safetensors and are checked against their SHA-256.
Artefacts that cannot be used (missing, corrupt) are an :class:`ArtefactError` (503) naming the
policy, never a server path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from decisionlab.core.errors import ArtefactError, DecisionlabError, PolicyNotFoundError, RegistryError
from decisionlab.core.store.atomic import atomic_write_bytes, atomic_write_with
from decisionlab.core.store.home import data_home
from decisionlab.core.store.index import Row, SQLPolicyIndex, VersionTaken

DB_URL_ENV = "DECISIONLAB_DB_URL"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ALIAS_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")
REF_PATTERN = re.compile(
    r"^(?:(?P<domain>[A-Za-z0-9_]{1,64})/)?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,63}?)"
    r"(?:@(?:(?P<version>[0-9]{1,9})|(?P<alias>[A-Za-z][A-Za-z0-9_.-]{0,31})))?$"
)
LOCK_FILE = ".registry.lock"


def check_alias(alias: str) -> None:
    """Refuse an alias the registry cannot hold (before any work that would end by setting it)."""
    if not ALIAS_PATTERN.match(alias) or alias == "latest":
        raise RegistryError(f"alias '{alias}' must be 1-32 letters, digits, '_', '.', '-' starting with a "
                            "letter (and not 'latest')")


@dataclass(frozen=True)
class PolicyRef:
    domain: str
    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.domain}/{self.name}@{self.version}"


@dataclass(frozen=True)
class PolicyRecord:
    """One registered policy: its reference, card, file location (absolute) and weights' SHA-256."""

    ref: PolicyRef
    card: dict[str, Any]
    weights_path: Path
    created: float
    sha256: str | None = None
    aliases: tuple[str, ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        """JSON description for listings (API, CLI, dashboard); no server paths."""
        return {
            "ref": str(self.ref),
            "domain": self.ref.domain,
            "name": self.ref.name,
            "version": self.ref.version,
            "aliases": list(self.aliases),
            "algo": self.card.get("algo"),
            "kind": self.card.get("policy_kind") or (self.card.get("policy_config") or {}).get("kind"),
            "scenario": self.card.get("scenario"),
            "metrics": self.card.get("metrics", {}),
            "created": self.created,
        }


@dataclass(frozen=True)
class Reference:
    """A parsed policy reference: a version, an alias, or neither (the latest version)."""

    domain: str
    name: str
    version: int | None = None
    alias: str | None = None


def parse_reference(text: str, domain: str | None = None) -> Reference:
    """``"inventory/hdpo@3"``, ``"hdpo@prod"``, ``"hdpo"``; the domain may be left out when given."""
    match = REF_PATTERN.match(text.strip())
    if not match:
        raise RegistryError(
            f"'{text[:80]}' is not a policy reference (expected domain/name@version, name@alias or name; versions "
            "have at most 9 digits)"
        )
    ref_domain = match.group("domain") or domain
    if ref_domain is None:
        raise RegistryError(f"policy reference '{text}' needs a domain (domain/name@version)")
    if domain is not None and ref_domain != domain:
        raise RegistryError(f"policy '{text}' belongs to domain '{ref_domain}', not '{domain}'")
    version = match.group("version")
    return Reference(ref_domain, match.group("name"), int(version) if version else None, match.group("alias"))


def parse_ref(text: str, domain: str | None = None) -> tuple[str, str, int | None]:
    """``"inventory/hdpo@3"`` -> ``("inventory", "hdpo", 3)``: a reference to a version (or the
    latest); an alias is refused here (:func:`parse_reference` takes them)."""
    ref = parse_reference(text, domain)
    if ref.alias is not None:
        raise RegistryError(f"'{text}' names an alias, not a version")
    return ref.domain, ref.name, ref.version


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=8)
def _index(url: str, data_dir: str) -> SQLPolicyIndex:
    """One index (and engine) per database per process; the schema is migrated on first open."""
    return SQLPolicyIndex(url, Path(data_dir))


def database_url(home: Path) -> str:
    """``$DECISIONLAB_DB_URL`` or the embedded SQLite index in the data dir."""
    return os.environ.get(DB_URL_ENV, "").strip() or f"sqlite:///{home / 'index.sqlite'}"


@dataclass
class GarbageReport:
    """What :meth:`PolicyRegistry.gc` found: files no index row points at (removed), and index rows
    whose weights are missing (listed; ``delete`` removes them)."""

    removed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


class PolicyRegistry:
    """Save, find, list, promote, delete and load trained policies."""

    def __init__(self, home: str | Path | None = None, url: str | None = None) -> None:
        self.home = data_home(home)
        self.url = url or database_url(self.home)
        try:
            self.index = _index(self.url, str(self.home))
        except DecisionlabError:
            raise
        except Exception as err:  # a database that cannot be opened: say which setting, not a traceback
            raise DecisionlabError(
                f"the policy index cannot be opened ({type(err).__name__}); check {DB_URL_ENV} or the data dir "
                "DECISIONLAB_HOME"
            ) from None

    # --- files ----------------------------------------------------------------------------------

    def _absolute(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.home / path

    def _record(self, row: Row, aliases: tuple[str, ...] = ()) -> PolicyRecord:
        return PolicyRecord(PolicyRef(row.domain, row.name, row.version), row.card, self._absolute(row.weights_path),
                            row.created, row.sha256, aliases)

    @contextlib.contextmanager
    def _lock(self, exclusive: bool) -> Iterator[None]:
        with open(self.home / LOCK_FILE, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def check_writable(self) -> None:
        """Fail now, with a message, if the data dir cannot take a new policy (before training)."""
        folder = self.home / "policies"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-check-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise DecisionlabError(
                f"the data dir {self.home} is not writable ({err.strerror or err}): set DECISIONLAB_HOME to a "
                "folder this user can write"
            ) from None

    # --- saving ---------------------------------------------------------------------------------

    def save(self, domain: str, name: str, weights: dict[str, torch.Tensor], card: dict[str, Any]) -> PolicyRecord:
        """Register a new version of ``domain/name``; returns its record."""
        for label, value in (("policy name", name), ("domain", domain)):
            if not NAME_PATTERN.match(value):
                raise RegistryError(f"{label} '{value}' must be 1-64 characters of letters, digits, '_', '.', '-'")
        self.check_writable()
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
        stem = uuid.uuid4().hex
        relative = Path("policies") / domain / name / f"{stem}.safetensors"
        weights_path = self.home / relative
        with self._lock(exclusive=False):
            atomic_write_with(weights_path, lambda tmp: save_file(tensors, str(tmp)))
            sha = _sha256(weights_path)
            full_card = {**card, "domain": domain, "name": name, "weights_sha256": sha}
            try:
                version, created = self.index.insert_next(domain, name, str(relative), full_card, sha)
            except VersionTaken as err:
                weights_path.unlink(missing_ok=True)
                raise RegistryError(str(err)) from None
        full_card.update(ref=f"{domain}/{name}@{version}", version=version, created=created)
        atomic_write_bytes(weights_path.with_suffix(".json"), json.dumps(full_card, indent=2).encode())
        return PolicyRecord(PolicyRef(domain, name, version), full_card, weights_path, created, sha)

    # --- finding --------------------------------------------------------------------------------

    def find(self, text: str, domain: str | None = None) -> PolicyRecord:
        """The record of a reference: its version, its alias's version, or the latest."""
        ref = parse_reference(text, domain)
        version = ref.version
        if ref.alias is not None:
            version = self.index.alias(ref.domain, ref.name, ref.alias)
            if version is None:
                raise PolicyNotFoundError(f"no alias '{ref.alias}' on {ref.domain}/{ref.name}"
                                          f"{self._known_aliases(ref.domain, ref.name)}")
        row = self.index.latest(ref.domain, ref.name) if version is None else \
            self.index.get(ref.domain, ref.name, version)
        if row is None:
            known = sorted({f"{r.domain}/{r.name}@{r.version}" for r in self.index.all(ref.domain)})
            hint = f"; registered: {', '.join(known[-20:])}" if known else "; none registered yet"
            raise PolicyNotFoundError(f"no registered policy '{text}' in domain '{ref.domain}'{hint}")
        return self._record(row, self._aliases_of(row))

    def _known_aliases(self, domain: str, name: str) -> str:
        names = sorted(alias for (d, n, alias) in self.index.aliases(domain) if n == name)
        if names:
            return f"; its aliases: {', '.join(names)}"
        return "; it has no aliases yet (decisionlab policies promote)"

    def _aliases_of(self, row: Row) -> tuple[str, ...]:
        return tuple(sorted(alias for (d, n, alias), v in self.index.aliases(row.domain).items()
                            if n == row.name and v == row.version))

    def list(self, domain: str | None = None) -> list[PolicyRecord]:
        aliases = self.index.aliases(domain)
        return [self._record(row, tuple(sorted(a for (d, n, a), v in aliases.items()
                                               if (d, n, v) == (row.domain, row.name, row.version))))
                for row in self.index.all(domain)]

    def load_weights(self, record: PolicyRecord) -> dict[str, torch.Tensor]:
        """Weights of ``record`` after checking their SHA-256 against the index; an
        :class:`ArtefactError` naming the policy (never the path) when they cannot be used."""
        fix = f"re-register it, or remove it with `decisionlab policies delete {record.ref}`"
        if not record.weights_path.is_file():
            raise ArtefactError(f"the weights of {record.ref} are missing from the registry: {fix}")
        expected = record.sha256 or record.card.get("weights_sha256")
        if expected and _sha256(record.weights_path) != expected:
            raise ArtefactError(f"the weights of {record.ref} do not match their checksum (corrupt file): {fix}")
        try:
            return load_file(str(record.weights_path))
        except Exception:  # safetensors raises its own error types on bad headers
            raise ArtefactError(f"the weights of {record.ref} cannot be read (corrupt file): {fix}") from None

    # --- lifecycle ------------------------------------------------------------------------------

    def promote(self, text: str, alias: str = "prod", domain: str | None = None) -> PolicyRecord:
        """Point ``alias`` of the policy's name at the version ``text`` names (the latest by default)."""
        check_alias(alias)
        record = self.find(text, domain)
        self.index.set_alias(record.ref.domain, record.ref.name, alias, record.ref.version)
        return self.find(f"{record.ref.domain}/{record.ref.name}@{record.ref.version}")

    def rollback(self, text: str, alias: str = "prod", domain: str | None = None) -> PolicyRecord:
        """Move ``alias`` back to the version it pointed at before its last move."""
        ref = parse_reference(text, domain)
        history = self.index.history(ref.domain, ref.name, alias)
        current = self.index.alias(ref.domain, ref.name, alias)
        earlier = [v for v in history[:-1] if v != current and self.index.get(ref.domain, ref.name, v) is not None]
        if current is None or not earlier:
            raise RegistryError(f"{ref.domain}/{ref.name}@{alias} has no earlier version to roll back to")
        self.index.set_alias(ref.domain, ref.name, alias, earlier[-1])
        return self.find(f"{ref.domain}/{ref.name}@{earlier[-1]}")

    def delete(self, text: str, domain: str | None = None, force: bool = False) -> PolicyRecord:
        """Remove one version (its index row, then its files). Refused while an alias points at it,
        unless ``force`` (the aliases are dropped too)."""
        record = self.find(text, domain)
        if record.aliases and not force:
            raise RegistryError(f"{record.ref} is aliased as {', '.join(record.aliases)}: promote another version "
                                "first, or delete with --force")
        for alias in record.aliases:
            self.index.drop_alias(record.ref.domain, record.ref.name, alias)
        self.index.delete(record.ref.domain, record.ref.name, record.ref.version)
        for path in (record.weights_path, record.weights_path.with_suffix(".json")):
            path.unlink(missing_ok=True)
        return record

    def gc(self) -> GarbageReport:
        """Remove the files of saves that never reached the index (a killed save, a failed write) and
        report index rows whose weights are gone."""
        report = GarbageReport()
        with self._lock(exclusive=True):  # no save is between writing its file and its index row
            referenced = {str(Path(p)) for p in self.index.paths()}
            root = self.home / "policies"
            for path in sorted(root.rglob("*")) if root.exists() else []:
                if not path.is_file():
                    continue
                relative = str(path.relative_to(self.home))
                stray_tmp = path.name.startswith(".")  # atomic-write temporaries and write checks
                weights = path.suffix == ".safetensors" and relative not in referenced
                card = path.suffix == ".json" and str(path.with_suffix(".safetensors").relative_to(self.home)) \
                    not in referenced
                if stray_tmp or weights or card:
                    path.unlink(missing_ok=True)
                    report.removed.append(relative)
            for row in self.index.all():
                if not self._absolute(row.weights_path).is_file():
                    report.missing.append(f"{row.domain}/{row.name}@{row.version}")
        return report

    def generation(self) -> tuple[int, float]:
        """Changes whenever a version is added or removed or an alias moves."""
        return self.index.generation()
