"""``make run``'s launcher: it serves the API and the dashboard on 127.0.0.1 at once, trains the missing
default policies in the background (their progress in ``training.json``, shown by the dashboard) and
stops everything on Ctrl-C."""

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

from decisionlab.apps.run import missing_defaults
from decisionlab.core.policy import policy_class
from decisionlab.core.spec import list_domains
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.core.store.training_status import read_training_status


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
    assert missing_defaults(PolicyRegistry(decisionlab_home)) == ([], refs)
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
        assert proc.wait(timeout=30) == 0, proc.stdout.read().decode()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_launcher_answers_first_and_trains_the_defaults_in_the_background(decisionlab_home: Path) -> None:
    api_port, board_port = _free_port(), _free_port()
    env = {**os.environ, "DECISIONLAB_HOME": str(decisionlab_home), "DECISIONLAB_API_PORT": str(api_port),
           "DECISIONLAB_DASHBOARD_PORT": str(board_port), "DECISIONLAB_WARM": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "decisionlab.apps.run"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        _wait_for(f"http://127.0.0.1:{api_port}/health", deadline)
        _wait_for(f"http://127.0.0.1:{board_port}/_stcore/health", deadline)
        expected = {s.name for s in list_domains() if s.default_policy_name is not None}
        while True:  # the first default policy is training, with its progress; none is registered yet
            jobs = read_training_status(decisionlab_home)
            training = [j for j in jobs if j["state"] == "training" and (j.get("progress") or {}).get("done")]
            if training:
                break
            assert time.time() < deadline, jobs
            time.sleep(0.5)
        assert {j["domain"] for j in jobs} == expected
        assert training[0]["progress"]["total"] >= training[0]["progress"]["done"] > 0
        assert not PolicyRegistry(decisionlab_home).list(training[0]["domain"])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        output = proc.stdout.read()
        assert output.index("starting the API") < output.index("API:") < output.index("training the default")
        assert "nan" not in output
        # the run is over: what it left unfinished reads as interrupted, not as still training
        assert {j["state"] for j in read_training_status(decisionlab_home)} <= {"interrupted", "done"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
