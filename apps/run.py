"""``make run``: make sure every domain has a default trained policy, then serve the API and the
dashboard on 127.0.0.1 until interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from rich.console import Console

from decisionlab.apps.cli import dashboard_command
from decisionlab.core.device import configure_threads, get_device
from decisionlab.core.spec import list_domains
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.core.training import train_and_register

console = Console(stderr=True, soft_wrap=True)
API_PORT = int(os.environ.get("DECISIONLAB_API_PORT", "8000"))
DASHBOARD_PORT = int(os.environ.get("DECISIONLAB_DASHBOARD_PORT", "8501"))
API_WORKERS = int(os.environ.get("DECISIONLAB_API_WORKERS", "2"))  # one per core of a small machine


def ensure_default_policies(registry: PolicyRegistry | None = None) -> list[str]:
    """Train (with a progress bar) the default policy of each domain that has none yet."""
    registry = registry or PolicyRegistry()
    device = get_device()
    refs = []
    for spec in list_domains():
        if spec.default_policy_name is None:
            continue
        name = spec.default_policy_name
        existing = [r for r in registry.list(spec.name) if r.ref.name == name]
        if existing:
            refs.append(str(existing[-1].ref))
            continue
        console.print(f"training the default {spec.name} policy ({spec.default_algo} on {spec.default_scenario})...")
        report = train_and_register(
            spec, spec.default_scenario, {}, spec.default_algo, seed=0, name=name, device=device,
            progress=True, registry=registry,
        )
        registry.promote(str(report.record.ref), "prod")  # what the API serves as <name>@prod
        console.print(f"registered {report.record.ref} (alias prod) in {report.train_seconds:.0f} s")
        refs.append(str(report.record.ref))
    return refs


def main() -> None:
    configure_threads()
    refs = ensure_default_policies()
    console.print(f"policies ready: {', '.join(refs) or 'none'}")
    api = subprocess.Popen(
        [sys.executable, "-m", "decisionlab.apps.cli", "serve", "--host", "127.0.0.1", "--port", str(API_PORT),
         "--workers", str(API_WORKERS)]
    )
    board = subprocess.Popen(dashboard_command(DASHBOARD_PORT))
    console.print(f"API:       http://127.0.0.1:{API_PORT}/docs")
    console.print(f"dashboard: http://127.0.0.1:{DASHBOARD_PORT}")
    console.print("press Ctrl-C to stop")
    try:
        while api.poll() is None and board.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (api, board):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in (api, board):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    sys.exit(0 if api.returncode in (0, None, -2, 130) else 1)


if __name__ == "__main__":
    main()
