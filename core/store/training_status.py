"""What is being trained in the background (``make run``'s default policies), for the dashboard.

One small JSON file in the data dir, ``training.json``, rewritten atomically on every change by the
process that trains: one job per policy (domain, name, algorithm, scenario), each ``waiting``,
``training`` (with its progress: the phase, done / total, seconds elapsed and left), ``done`` (the
registered reference) or ``failed`` (the message). The writer's process id is in the file, so a reader
can tell a run that was interrupted (the process is gone) from one still going.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from decisionlab.core.store.atomic import atomic_write_bytes
from decisionlab.core.store.home import data_home

STATUS_FILE = "training.json"
ACTIVE = ("waiting", "training")


class TrainingStatus:
    """The writer of ``training.json`` (thread-safe: progress arrives from the training thread)."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.path = Path(data_home(home)) / STATUS_FILE
        self.jobs: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def start(self, jobs: list[dict[str, Any]]) -> None:
        """Announce ``jobs`` (``domain``, ``name``, ``algo``, ``scenario`` each), all waiting."""
        with self._lock:
            self.jobs = [{**job, "state": "waiting"} for job in jobs]
            self._write()

    def update(self, domain: str, **fields: Any) -> None:
        """Change the job of ``domain`` (its ``state``, ``progress``, ``ref``, ``message``...)."""
        with self._lock:
            for job in self.jobs:
                if job["domain"] == domain:
                    job.update(fields)
            self._write()

    def listener(self, domain: str) -> Any:
        """A :func:`decisionlab.core.progress.listening` callback that records ``domain``'s progress."""
        return lambda update: self.update(domain, progress=update)

    def _write(self) -> None:
        body = {"pid": os.getpid(), "updated_at": time.time(), "jobs": self.jobs}
        atomic_write_bytes(self.path, json.dumps(body, indent=1).encode())


def read_training_status(home: Path | str | None = None) -> list[dict[str, Any]]:
    """The jobs of the last background training (empty when none); a job left waiting or training by a
    process that is gone reads ``interrupted``."""
    path = Path(data_home(home)) / STATUS_FILE
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    jobs = body.get("jobs") if isinstance(body, dict) else None
    if not isinstance(jobs, list):
        return []
    alive = _process_alive(body.get("pid"))
    out = []
    for job in jobs:
        if not isinstance(job, dict):
            continue
        if job.get("state") in ACTIVE and not alive:
            job = {**job, "state": "interrupted"}
        out.append(job)
    return out


def describe_job(job: dict[str, Any]) -> str:
    """One line for a person: ``ride_hailing: v1d3 on manhattan, training 45% (about 2 min 10 s left)``."""
    from decisionlab.core.progress import duration

    head = f"{job.get('domain')}: {job.get('algo')} on {job.get('scenario')}"
    state = job.get("state")
    if state == "training":
        progress = job.get("progress") or {}
        total = progress.get("total") or 0
        phase = progress.get("description") or "training"
        text = f"{head}, {phase}"
        if total:
            text += f" {100 * (progress.get('done') or 0) / total:.0f}%"
        if progress.get("eta_s") is not None:
            text += f" (about {duration(progress['eta_s'])} left in this phase)"
        return text
    if state == "done":
        return f"{head}: registered {job.get('ref')}"
    if state == "failed":
        return f"{head}: failed ({job.get('message')})"
    return f"{head}: {state}"


def _process_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
