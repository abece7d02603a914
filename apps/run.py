"""``make run``: serve the API and the dashboard on 127.0.0.1 at once, then train, in the background,
the default policy of every domain that has none yet.

The addresses are printed when both answer (``/health``, Streamlit's health check), not before. Each
default policy appears in the registry (so the API serves it as ``<name>@prod`` and the dashboard lists
it) the moment it is trained; until then the dashboard says what is still training, with its progress
(``training.json`` in the data dir: :mod:`decisionlab.core.store.training_status`). Ctrl-C stops all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from rich.console import Console

from decisionlab.apps.cli import dashboard_command
from decisionlab.core.device import configure_allocator, configure_threads, get_device
from decisionlab.core.errors import DecisionlabError
from decisionlab.core.progress import duration, listening
from decisionlab.core.spec import DomainSpec, list_domains
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.core.store.training_status import TrainingStatus
from decisionlab.core.training import train_and_register

console = Console(stderr=True, soft_wrap=True)
API_PORT = int(os.environ.get("DECISIONLAB_API_PORT", "8000"))
DASHBOARD_PORT = int(os.environ.get("DECISIONLAB_DASHBOARD_PORT", "8501"))
API_WORKERS = int(os.environ.get("DECISIONLAB_API_WORKERS", "2"))  # one per core of a small machine
START_TIMEOUT_S = 120.0


def missing_defaults(registry: PolicyRegistry) -> tuple[list[DomainSpec], list[str]]:
    """The domains whose default policy is not registered yet, and the references of those that are."""
    missing, present = [], []
    for spec in list_domains():
        if spec.default_policy_name is None:
            continue
        existing = [r for r in registry.list(spec.name) if r.ref.name == spec.default_policy_name]
        if existing:
            present.append(str(existing[-1].ref))
        else:
            missing.append(spec)
    return missing, present


class Cancelled(Exception):
    """Raised inside the training thread (from a progress update) when ``make run`` stops."""


def train_defaults(specs: list[DomainSpec], registry: PolicyRegistry, status: TrainingStatus,
                   cancel: threading.Event) -> None:
    """Train and register (alias ``prod``) the default policy of each of ``specs``, one after another,
    recording each one's state and progress in ``status``; a failure is reported and the next goes on.
    Setting ``cancel`` ends the training at its next progress update (within about a second)."""
    device = get_device()

    def listener(domain: str) -> Any:
        record = status.listener(domain)

        def heard(update: dict[str, Any]) -> None:
            if cancel.is_set():
                raise Cancelled
            record(update)
        return heard

    for spec in specs:
        if cancel.is_set():
            return
        console.print(f"training the default {spec.name} policy ({spec.default_algo} on {spec.default_scenario}) "
                      "in the background...")
        status.update(spec.name, state="training", started_at=time.time())
        try:
            with listening(listener(spec.name)):
                report = train_and_register(
                    spec, spec.default_scenario, {}, spec.default_algo, seed=0, name=spec.default_policy_name,
                    device=device, progress=True, registry=registry,
                )
            registry.promote(str(report.record.ref), "prod")  # what the API serves as <name>@prod
        except Cancelled:
            return  # the job stays "training" in the file; the writer gone, readers see it interrupted
        except (DecisionlabError, ValueError, RuntimeError) as err:
            status.update(spec.name, state="failed", message=str(err), finished_at=time.time())
            console.print(f"[red]training the default {spec.name} policy failed:[/red] {err}")
            continue
        status.update(spec.name, state="done", ref=str(report.record.ref), finished_at=time.time())
        console.print(f"registered {report.record.ref} (alias prod) in {duration(report.train_seconds)}: the API "
                      "serves it and the dashboard lists it")


def answers(url: str) -> bool:
    """Whether ``url`` (a health check on 127.0.0.1) answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - our own 127.0.0.1 URL
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until_up(processes: dict[str, subprocess.Popen[Any]], urls: dict[str, str], timeout_s: float) -> None:
    """Return when every URL answers 200; raise when a process exits or ``timeout_s`` passes."""
    waiting = dict(urls)
    deadline = time.monotonic() + timeout_s
    while waiting:
        for name, proc in processes.items():
            if proc.poll() is not None:
                raise DecisionlabError(f"the {name} exited with status {proc.returncode} while starting (see above)")
        for name, url in list(waiting.items()):
            if answers(url):
                del waiting[name]
        if time.monotonic() > deadline:
            raise DecisionlabError(f"{', '.join(waiting)} did not answer within {timeout_s:.0f} s")
        time.sleep(0.2)


def stop(processes: list[subprocess.Popen[Any]]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in processes:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    configure_threads()
    configure_allocator()
    started = time.monotonic()
    registry = PolicyRegistry()
    missing, present = missing_defaults(registry)
    status = TrainingStatus(registry.home)
    status.start([{"domain": s.name, "name": s.default_policy_name, "algo": s.default_algo,
                   "scenario": s.default_scenario} for s in missing])
    cancel, failed, interrupted = threading.Event(), False, False
    trainer = threading.Thread(target=train_defaults, args=(missing, registry, status, cancel), daemon=True,
                               name="decisionlab-train-defaults")
    console.print("starting the API and the dashboard...")
    api = subprocess.Popen(
        [sys.executable, "-m", "decisionlab.apps.cli", "serve", "--host", "127.0.0.1", "--port", str(API_PORT),
         "--workers", str(API_WORKERS)]
    )
    board = subprocess.Popen(dashboard_command(DASHBOARD_PORT))
    try:
        wait_until_up({"API": api, "dashboard": board},
                      {"API": f"http://127.0.0.1:{API_PORT}/health",
                       "dashboard": f"http://127.0.0.1:{DASHBOARD_PORT}/_stcore/health"}, START_TIMEOUT_S)
        console.print(f"API:       http://127.0.0.1:{API_PORT}/docs   (answering after "
                      f"{time.monotonic() - started:.0f} s)")
        console.print(f"dashboard: http://127.0.0.1:{DASHBOARD_PORT}")
        if present:
            console.print(f"policies ready: {', '.join(present)}")
        if missing:
            console.print(f"training in the background: {', '.join(s.name for s in missing)} (the dashboard shows "
                          "their progress; each is served as soon as it lands)")
            trainer.start()
        console.print("press Ctrl-C to stop")
        while api.poll() is None and board.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
    except DecisionlabError as err:
        console.print(f"[red]make run: {err}[/red]")
        failed = True
    finally:
        cancel.set()
        stop([api, board])
        if trainer.is_alive():
            trainer.join(timeout=20)
    code = 0 if interrupted or (not failed and api.returncode in (0, None, -2, 130)) else 1
    if trainer.is_alive():  # stuck outside any progress update: leave without finalizing torch under it
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
