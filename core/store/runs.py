"""Run store: one SQLite row per training or evaluation run, tables beside it as parquet.

The dashboard reads curves and evaluation tables from here instead of re-running anything.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from decisionlab.core.store.atomic import atomic_write_with
from decisionlab.core.store.home import data_home


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    domain: str
    kind: str  # "train" | "evaluate"
    label: str
    created: float
    config: dict[str, Any]
    metrics: dict[str, Any]
    tables: dict[str, str]  # table name -> parquet path


class RunStore:
    def __init__(self, home: str | Path | None = None) -> None:
        self.home = data_home(home)
        self.db_path = self.home / "runs.sqlite"
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, domain TEXT, kind TEXT,"
                " label TEXT, created REAL, config_json TEXT, metrics_json TEXT, tables_json TEXT)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path, timeout=30)

    def record(
        self,
        domain: str,
        kind: str,
        label: str,
        config: dict[str, Any],
        metrics: dict[str, Any],
        tables: dict[str, pl.DataFrame] | None = None,
    ) -> RunRecord:
        """Write the tables (atomically) and then the row that points at them."""
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        paths: dict[str, str] = {}
        for table_name, frame in (tables or {}).items():
            path = self.home / "runs" / run_id / f"{table_name}.parquet"
            atomic_write_with(path, lambda tmp, frame=frame: frame.write_parquet(tmp))
            paths[table_name] = str(path)
        created = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, domain, kind, label, created, json.dumps(config), json.dumps(metrics),
                 json.dumps(paths)),
            )
        return RunRecord(run_id, domain, kind, label, created, config, metrics, paths)

    def list(self, domain: str | None = None, kind: str | None = None) -> list[RunRecord]:
        query, args = "SELECT * FROM runs WHERE 1=1", []
        if domain:
            query, args = query + " AND domain=?", [*args, domain]
        if kind:
            query, args = query + " AND kind=?", [*args, kind]
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created DESC", args).fetchall()
        return [
            RunRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]), json.loads(r[7]))
            for r in rows
        ]

    @staticmethod
    def table(run: RunRecord, name: str) -> pl.DataFrame:
        return pl.read_parquet(run.tables[name])
