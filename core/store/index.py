"""The policy index: one SQLAlchemy implementation for SQLite (embedded, the default) and PostgreSQL.

``DECISIONLAB_DB_URL`` (for example ``postgresql+psycopg://user@host/db``) selects a server
database; without it the index is ``<data dir>/index.sqlite``. The schema is created and upgraded by
Alembic (``core/store/migrations``) the first time a process opens the index; a lock (a file lock
next to an SQLite database, an advisory lock on PostgreSQL) keeps concurrent processes from
migrating at once.

Tables: ``policies`` (one row per version: domain, name, version, the weights' path relative to
the data dir, their SHA-256, the card as JSON, created), ``aliases`` (``domain/name@alias`` →
version) and ``alias_history`` (every move of an alias, for rollback).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from decisionlab.core.store.atomic import file_lock

METADATA = sa.MetaData()
POLICIES = sa.Table(
    "policies", METADATA,
    sa.Column("domain", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("weights_path", sa.Text, nullable=False),
    sa.Column("card_json", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=True),
)
ALIASES = sa.Table(
    "aliases", METADATA,
    sa.Column("domain", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("alias", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
)
ALIAS_HISTORY = sa.Table(
    "alias_history", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("domain", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("alias", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("moved", sa.Float, nullable=False),
)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class Row:
    """One registered version as the index stores it."""

    domain: str
    name: str
    version: int
    weights_path: str  # relative to the data dir
    card: dict[str, Any]
    created: float
    sha256: str | None


class VersionTaken(Exception):
    """Another writer registered this version first (the caller retries with the next one)."""


def _row(record: Any) -> Row:
    return Row(record.domain, record.name, int(record.version), record.weights_path, json.loads(record.card_json),
               float(record.created), record.sha256)


def engine_for(url: str) -> Engine:
    """An engine for ``url``; SQLite waits on locks instead of failing at once."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30}, poolclass=sa.pool.NullPool)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


@contextlib.contextmanager
def migration_lock(engine: Engine, lock_file: Path | None) -> Iterator[None]:
    """One process migrates at a time: a file lock for SQLite, an advisory lock for PostgreSQL."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(7231947)"))
            try:
                yield
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock(7231947)"))
        return
    if lock_file is None:
        yield
        return
    with file_lock(lock_file):
        yield


def upgrade(engine: Engine, lock_file: Path | None = None, data_dir: Path | None = None) -> None:
    """Bring the schema to the newest Alembic revision (an index made before Alembic is stamped first)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["data_dir"] = str(data_dir) if data_dir is not None else ""
    with migration_lock(engine, lock_file), engine.begin() as connection:
        config.attributes["connection"] = connection
        tables = set(sa.inspect(connection).get_table_names())
        if "policies" in tables and "alembic_version" not in tables:
            command.stamp(config, "0001")  # the index of the first releases, made without Alembic
        command.upgrade(config, "head")


class SQLPolicyIndex:
    """The index behind :class:`~decisionlab.core.store.registry.PolicyRegistry`."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.engine = engine_for(url)
        lock = data_dir / ".index.migrate.lock" if url.startswith("sqlite") else None
        upgrade(self.engine, lock, data_dir)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    # --- versions -------------------------------------------------------------------------------

    def insert_next(self, domain: str, name: str, weights_path: str, card: dict[str, Any], sha256: str,
                    attempts: int = 200) -> tuple[int, float]:
        """Insert the next version of ``domain/name``; returns ``(version, created)``. Concurrent
        writers that draw the same number retry with the next one (with a short random back-off)."""
        import random

        for attempt in range(attempts):
            created = time.time()
            try:
                with self.engine.begin() as connection:
                    latest = connection.execute(
                        sa.select(sa.func.max(POLICIES.c.version)).where(
                            POLICIES.c.domain == domain, POLICIES.c.name == name)).scalar()
                    version = int(latest or 0) + 1
                    full = {**card, "ref": f"{domain}/{name}@{version}", "version": version, "created": created}
                    connection.execute(POLICIES.insert().values(
                        domain=domain, name=name, version=version, weights_path=weights_path,
                        card_json=json.dumps(full), created=created, sha256=sha256))
                return version, created
            except (IntegrityError, OperationalError):
                time.sleep(random.uniform(0.0, 0.01 * min(attempt + 1, 20)))
        raise VersionTaken(f"could not register {domain}/{name} after {attempts} attempts")

    def get(self, domain: str, name: str, version: int) -> Row | None:
        with self.engine.connect() as connection:
            record = connection.execute(sa.select(POLICIES).where(
                POLICIES.c.domain == domain, POLICIES.c.name == name, POLICIES.c.version == version)).first()
        return _row(record) if record else None

    def latest(self, domain: str, name: str) -> Row | None:
        with self.engine.connect() as connection:
            record = connection.execute(sa.select(POLICIES).where(
                POLICIES.c.domain == domain, POLICIES.c.name == name).order_by(POLICIES.c.version.desc()).limit(1)
            ).first()
        return _row(record) if record else None

    def all(self, domain: str | None = None) -> list[Row]:
        query = sa.select(POLICIES).order_by(POLICIES.c.domain, POLICIES.c.name, POLICIES.c.version)
        if domain is not None:
            query = query.where(POLICIES.c.domain == domain)
        with self.engine.connect() as connection:
            return [_row(r) for r in connection.execute(query)]

    def delete(self, domain: str, name: str, version: int) -> None:
        with self.engine.begin() as connection:
            connection.execute(POLICIES.delete().where(
                POLICIES.c.domain == domain, POLICIES.c.name == name, POLICIES.c.version == version))

    def paths(self) -> set[str]:
        with self.engine.connect() as connection:
            return {r[0] for r in connection.execute(sa.select(POLICIES.c.weights_path))}

    # --- aliases --------------------------------------------------------------------------------

    def alias(self, domain: str, name: str, alias: str) -> int | None:
        with self.engine.connect() as connection:
            version = connection.execute(sa.select(ALIASES.c.version).where(
                ALIASES.c.domain == domain, ALIASES.c.name == name, ALIASES.c.alias == alias)).scalar()
        return int(version) if version is not None else None

    def aliases(self, domain: str | None = None) -> dict[tuple[str, str, str], int]:
        query = sa.select(ALIASES)
        if domain is not None:
            query = query.where(ALIASES.c.domain == domain)
        with self.engine.connect() as connection:
            return {(r.domain, r.name, r.alias): int(r.version) for r in connection.execute(query)}

    def set_alias(self, domain: str, name: str, alias: str, version: int) -> None:
        now = time.time()
        with self.engine.begin() as connection:
            done = connection.execute(ALIASES.update().where(
                ALIASES.c.domain == domain, ALIASES.c.name == name, ALIASES.c.alias == alias).values(
                version=version, updated=now))
            if done.rowcount == 0:
                connection.execute(ALIASES.insert().values(domain=domain, name=name, alias=alias, version=version,
                                                           updated=now))
            connection.execute(ALIAS_HISTORY.insert().values(domain=domain, name=name, alias=alias, version=version,
                                                             moved=now))

    def history(self, domain: str, name: str, alias: str) -> list[int]:
        """The versions ``alias`` pointed at, oldest move first."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(ALIAS_HISTORY.c.version).where(
                ALIAS_HISTORY.c.domain == domain, ALIAS_HISTORY.c.name == name, ALIAS_HISTORY.c.alias == alias
            ).order_by(ALIAS_HISTORY.c.id))
            return [int(r[0]) for r in rows]

    def drop_alias(self, domain: str, name: str, alias: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(ALIASES.delete().where(
                ALIASES.c.domain == domain, ALIASES.c.name == name, ALIASES.c.alias == alias))

    def generation(self) -> tuple[int, float]:
        """A cheap fingerprint that changes whenever a version or an alias does (cache invalidation)."""
        with self.engine.connect() as connection:
            count = connection.execute(sa.select(sa.func.count()).select_from(POLICIES)).scalar() or 0
            newest = connection.execute(sa.select(sa.func.max(POLICIES.c.created))).scalar() or 0.0
            moved = connection.execute(sa.select(sa.func.max(ALIASES.c.updated))).scalar() or 0.0
            aliases = connection.execute(sa.select(sa.func.count()).select_from(ALIASES)).scalar() or 0
        return int(count) * 1_000_003 + int(aliases), float(newest) + float(moved)
