"""``make run``'s launcher: it serves the API and the dashboard on 127.0.0.1 at once, trains the missing
default policies in the background (their progress in ``training.json``, shown by the dashboard) and
stops everything on Ctrl-C."""

from __future__ import annotations

import contextlib
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


def _register_defaults(home: Path, skip: set[str] = frozenset()) -> list[str]:
    """An untrained policy under the default name of every domain but ``skip`` (so nothing is trained here)."""
    refs = []
    for spec in list_domains():
        if spec.default_algo is None or spec.name in skip:
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


def _launched_domains(env: dict[str, str]) -> list[str]:
    """The domains with a default policy as the launcher's own process sees them (this test process may
    have registered fixture domains too)."""
    code = ("from decisionlab.core.spec import list_domains; "
            "print(' '.join(s.name for s in list_domains() if s.default_policy_name is not None))")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


def test_launcher_serves_at_once_and_trains_the_missing_default_in_the_background(decisionlab_home: Path) -> None:
    """Every default registered but one: the API serves the registered ones as soon as it answers, the
    missing one trains in the background with its progress in training.json, Ctrl-C stops it all."""
    api_port, board_port = _free_port(), _free_port()
    env = {**os.environ, "DECISIONLAB_HOME": str(decisionlab_home), "DECISIONLAB_API_PORT": str(api_port),
           "DECISIONLAB_DASHBOARD_PORT": str(board_port), "DECISIONLAB_WARM": "0", "DECISIONLAB_API_WORKERS": "1"}
    domains = _launched_domains(env)
    missing = domains[0]
    refs = _register_defaults(decisionlab_home, skip={missing})
    proc = subprocess.Popen([sys.executable, "-m", "decisionlab.apps.run"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 90
        _wait_for(f"http://127.0.0.1:{api_port}/health", deadline)
        served = str(_wait_for(f"http://127.0.0.1:{api_port}/v1/policies", deadline).json())
        assert all(ref in served for ref in refs if ref.split("/")[0] in domains)
        _wait_for(f"http://127.0.0.1:{board_port}/_stcore/health", deadline)
        while True:  # the missing default is training, with its progress; it is not registered yet
            jobs = read_training_status(decisionlab_home)
            training = [j for j in jobs if j["state"] == "training" and (j.get("progress") or {}).get("done")]
            if training:
                break
            assert time.time() < deadline, jobs
            time.sleep(0.5)
        assert [j["domain"] for j in jobs] == [missing]
        assert training[0]["progress"]["total"] >= training[0]["progress"]["done"] > 0
        assert not PolicyRegistry(decisionlab_home).list(missing)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        output = proc.stdout.read()
        assert output.index("starting the API") < output.index("API:") < output.index("training the default")
        assert "nan" not in output
        # the run is over: what it left unfinished reads as interrupted, not as still training
        assert {j["state"] for j in read_training_status(decisionlab_home)} == {"interrupted"}
    finally:  # a failed check leaves no API or dashboard behind: the launcher's whole group goes
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
