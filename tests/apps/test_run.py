"""``make run``'s launcher: with a default policy registered it serves the API and the dashboard
on 127.0.0.1 and stops both on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import torch

from decisionlab.apps.run import ensure_default_policies
from decisionlab.core.policy import policy_class
from decisionlab.core.spec import list_domains
from decisionlab.core.store.registry import PolicyRegistry


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _register_defaults(home: Path) -> list[str]:
    """An untrained policy under the default name of every domain (so nothing is trained here)."""
    refs = []
    for spec in list_domains():
        if spec.default_algo is None:
            continue
        scenario = spec.scenarios[spec.default_scenario]
        setting = spec.setting_of(scenario)
        kind = next(iter(setting.policy_kinds))
        net = policy_class(kind).initial(scenario, torch.device("cpu"))
        card = {"setting": setting.name, "scenario_name": spec.default_scenario, "policy_kind": kind,
                "policy_config": net.config(), "algo": spec.default_algo, "scenario": scenario.describe(),
                "metrics": {}}
        refs.append(str(PolicyRegistry(home).save(spec.name, spec.default_policy_name, net.state_dict(), card).ref))
    return refs


def test_existing_default_policies_are_not_retrained(decisionlab_home: Path) -> None:
    refs = _register_defaults(decisionlab_home)
    assert ensure_default_policies(PolicyRegistry(decisionlab_home)) == refs
    assert len(PolicyRegistry(decisionlab_home).list()) == len(refs)


def _wait_for(url: str, deadline: float) -> httpx.Response:
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            raise AssertionError(f"{url} did not answer in time")
        time.sleep(0.5)


def test_launcher_serves_api_and_dashboard_then_stops(decisionlab_home: Path) -> None:
    ref = _register_defaults(decisionlab_home)[0]
    api_port, board_port = _free_port(), _free_port()
    env = {**os.environ, "DECISIONLAB_HOME": str(decisionlab_home), "DECISIONLAB_API_PORT": str(api_port),
           "DECISIONLAB_DASHBOARD_PORT": str(board_port)}
    proc = subprocess.Popen([sys.executable, "-m", "decisionlab.apps.run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        assert _wait_for(f"http://127.0.0.1:{api_port}/health", deadline).json()["status"] == "ok"
        policies = _wait_for(f"http://127.0.0.1:{api_port}/v1/policies", deadline).json()
        assert ref in str(policies)
        _wait_for(f"http://127.0.0.1:{board_port}/_stcore/health", deadline)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
