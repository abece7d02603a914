"""Everything that runs on Ray, against one real local Ray for the file (tests/scale/conftest.py):

- sweeps on both backends, killed halfway and resumed (Ray's with ``Tuner.restore``), give the same
  per-trial results;
- a sharded evaluation prints the local path's numbers;
- ``decisionlab serve --backend ray``: the API on Ray Serve (2 replicas) answers the README's requests
  exactly as uvicorn does over the same data dir; auth and /metrics behave the same.

One file, so ``make test``'s workers (whole files each) start one Ray, not two."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from servers import free_port, running_server
from typer.testing import CliRunner

from decisionlab.apps.cli import app
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.core.sweep import SweepLedger, Trial

pytestmark = pytest.mark.ray


HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from test_sweep import sweep_command  # noqa: E402


def cli(*args: str) -> dict:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def by_trial(body: dict) -> dict[str, dict]:
    return {Trial(t["index"], t["config"], t["seed"]).key: t["metrics"] for t in body["trials"]}


def killed_then_resumed(name: str, *extra: str) -> tuple[dict[str, dict], dict]:
    """Start ``decisionlab sweep`` in a process of its own, kill it once 2 trials are in the ledger, then run
    it again to the end; returns the ledger when it was killed and the second run's ``--json``."""
    env = {**os.environ, "DECISIONLAB_NUM_THREADS": "1"}
    ledger = SweepLedger(name)
    first = subprocess.Popen(sweep_command(name, *extra), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(ledger.finished()) < 2:
        assert first.poll() is None, "the sweep ended before it was killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = ledger.finished()
    return before, cli(*sweep_command(name, *extra)[3:])


def interrupted_then_resumed_locally(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, dict], dict]:
    """A local sweep in this process, Ctrl-C during its third trial, then run again to the end."""
    from decisionlab.core import sweep_runner

    real, done = sweep_runner.run_trial, []

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - run_trial's arguments
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(real(*args, **kwargs))
        return done[-1]

    monkeypatch.setattr(sweep_runner, "run_trial", interrupted)
    stopped = CliRunner().invoke(app, sweep_command("local")[3:])
    assert stopped.exit_code == 130, stopped.stderr[-2000:]
    before = SweepLedger("local").finished()
    monkeypatch.setattr(sweep_runner, "run_trial", real)
    return before, cli(*sweep_command("local")[3:])


def check_resumed(before: dict[str, dict], body: dict) -> None:
    """The second run trained only what the ledger lacked and kept what it had; the table and the alias."""
    assert 2 <= len(before) < 6 and body["trained"] == 6 - len(before)
    assert [t["index"] for t in body["trials"]] == list(range(6))
    for trial in body["trials"]:
        key = Trial(trial["index"], trial["config"], trial["seed"]).key
        if key in before:
            assert trial == before[key]
    assert [row["seeds"] for row in body["table"]] == [2, 2, 2]
    primary = body["primary_metric"]
    values = [t["metrics"][primary] for t in body["trials"][:2]]
    assert body["table"][0][primary]["mean"] == pytest.approx(np.mean(values))
    assert str(PolicyRegistry().find(body["best"]["alias"]).ref) == body["best"]["policy_ref"]


def test_sweeps_killed_halfway_resume_and_both_backends_give_the_same_trials(
        ray_session, decisionlab_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """2 seeds x 3 learning rates, each backend stopped after 2 trials (the local one by Ctrl-C, the Ray
    driver by SIGKILL) and started again: each finishes only the missing trials, and every trial's metrics
    are the same on both."""
    local_before, local = interrupted_then_resumed_locally(monkeypatch)
    check_resumed(local_before, local)
    # The Ray sweep's driver is a process of its own connected to this file's Ray; Tune restores its experiment.
    address = ray_session.get_runtime_context().gcs_address
    ray_before, on_ray = killed_then_resumed("on_ray", "--backend", "ray", "--address", address)
    assert SweepLedger("on_ray").tune_folder.is_dir()
    check_resumed(ray_before, on_ray)
    assert on_ray["backend"] == "ray" and local["backend"] == "local"
    assert by_trial(on_ray) == by_trial(local)  # identical per-trial results for the same seeds
    assert on_ray["best"]["config"] == local["best"]["config"]


def test_sharded_evaluation_prints_the_local_numbers(ray_session, decisionlab_home: Path) -> None:
    # 3 chunks of the setting's eval_chunk over 2 workers, so the merge order matters
    from decisionlab.core.spec import get_domain

    setting = get_domain("inventory").setting_of(get_domain("inventory").scenario("lost_sales"))
    episodes = 2 * setting.eval_chunk + 7
    args = ["evaluate", "inventory", "--scenario", "lost_sales", "--set", "horizon_periods=30",
            "--set", "warmup_periods=5", "--policy", "base_stock",
            "--policy", "myopic", "--episodes", str(episodes), "--seed", "5", "--json"]
    local = cli(*args)
    sharded = cli(*args, "--backend", "ray", "--workers", "2")
    assert sharded["results"] == local["results"] and sharded["effective_episodes"] == episodes

# --- serving ---------------------------------------------------------------------------------------


TOKEN = "ray-serve-test-token"
README_STATES = [{"on_hand": 3, "pipeline": [5, 4]}, {"on_hand": 0, "pipeline": [0, 0]}]
README_BODY = {"policy": "optimal", "scenario": "lost_sales", "parameters": {"lead_time": 2, "underage_cost": 9},
               "states": README_STATES}
# The README's requests (the API section and "Serving in production"), the registered policy and two errors.
REQUESTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/health", None),
    ("GET", "/v1/domains", None),
    ("GET", "/v1/policies", None),
    ("GET", "/v1/inventory/schema?scenario=one_warehouse", None),
    ("POST", "/v1/inventory/act", README_BODY),
    ("POST", "/v1/inventory/orders", README_BODY),
    ("POST", "/v1/inventory/orders", {"policy": "hdpo_test@1", "scenario": "lost_sales",
                                      "parameters": {"underage_cost": 19}, "states": README_STATES}),
    ("POST", "/v1/inventory/orders", {**README_BODY, "states": [{"on_hand": 3, "pipeline": [5]}]}),  # 422
    ("GET", "/v1/nowhere/schema", None),  # 404
    ("GET", "/ready", None),
]


def answer(client: httpx.Client, number: int, method: str, path: str, body: dict[str, Any] | None,
           token: str | None = TOKEN) -> httpx.Response:
    """One request with a fixed ``X-Request-ID``: every error body carries the request id, and both
    servers adopt the client's, so the bodies compare whole (ids and timings are otherwise per request:
    only the ``x-request-id`` header and the JSON logs' ``ms`` would differ)."""
    headers = {"x-request-id": f"readme-{number}"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return client.request(method, path, json=body, headers=headers)


def request_count(metrics: str, route: str) -> float:
    """``decisionlab_requests_total`` of GET ``route`` with status 200 in a Prometheus text exposition."""
    sample = f'decisionlab_requests_total{{method="GET",route="{route}",status="200"}} '
    return sum(float(line[len(sample):]) for line in metrics.splitlines() if line.startswith(sample))


@pytest.fixture
def servers(ray_session: Any, registered: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """The API over ``registered`` with a token, on uvicorn (``decisionlab serve``) and on Ray Serve
    (2 replicas of half a CPU each), started side by side; their base URLs."""
    from decisionlab.apps.ray_serve import deploy

    monkeypatch.setenv("DECISIONLAB_API_TOKEN", TOKEN)
    with ThreadPoolExecutor(1) as pool, contextlib.ExitStack() as stack:
        pending = pool.submit(deploy, port=free_port(), replicas=2, log_level="warning", num_cpus=0.5,
                              blocking=False)
        # Stopped even when uvicorn fails: the application is deleted and, with nothing else on it, Serve shut down.
        stack.callback(lambda: pending.result().stop())
        local_url = stack.enter_context(running_server(dict(os.environ)))
        yield local_url, pending.result().url


@pytest.mark.timeout(300)
def test_ray_serve_answers_the_readme_requests_as_uvicorn_does(servers: tuple[str, str]) -> None:
    from ray import serve

    from decisionlab.apps.ray_serve import deploy
    from decisionlab.core.errors import DecisionlabError

    assert serve.status().applications["decisionlab"].deployments["decisionlab_api"].replica_states == {"RUNNING": 2}
    local_url, ray_url = servers
    with httpx.Client(base_url=local_url, timeout=120) as local, httpx.Client(base_url=ray_url, timeout=120) as ray:
        for number, (method, path, body) in enumerate(REQUESTS):
            expected, got = answer(local, number, method, path, body), answer(ray, number, method, path, body)
            assert (got.status_code, got.json()) == (expected.status_code, expected.json()), f"{method} {path}"
            assert got.headers["x-request-id"] == f"readme-{number}"  # once: Serve's proxy and the app agree
        statuses = [answer(ray, n, m, p, b).status_code for n, (m, p, b) in enumerate(REQUESTS)]
        assert statuses[:7] == [200] * 7 and statuses[7:] == [422, 404, 200]

        # Auth: public probes answer without the token, everything else is 401 with the same body.
        for path in ("/v1/policies", "/metrics"):
            expected, got = (answer(client, 0, "GET", path, None, token=None) for client in (local, ray))
            assert got.status_code == expected.status_code == 401
            assert got.json() == expected.json() and got.headers["www-authenticate"] == "Bearer"
        assert answer(ray, 0, "GET", "/health", None, token=None).json() == local.get("/health").json()

        # Metrics: Prometheus text; the replicas' samples add up as the workers' do (whichever answers).
        for _ in range(6):
            assert answer(ray, 0, "GET", "/v1/domains", None).status_code == 200
        for client, domains_asked in ((local, 1), (ray, 1 + 6 + 1)):
            metrics = answer(client, 0, "GET", "/metrics", None)
            assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
            assert "# TYPE decisionlab_request_seconds histogram" in metrics.text
            assert request_count(metrics.text, "/v1/domains") == domains_asked

    # Serve has one proxy per cluster: deploying to another port while it runs is a clear error.
    with pytest.raises(DecisionlabError, match="Ray Serve already runs on this cluster on 127.0.0.1:"):
        deploy(port=free_port(), replicas=1, blocking=False)


def test_backend_ray_without_ray_installed_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = CliRunner().invoke(app, ["serve", "--backend", "ray", "--replicas", "2"])
    assert result.exit_code == 2, result.output
    assert "--backend ray needs Ray, which is not installed: pip install 'decisionlab[ray]'" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("args", "needle"), [
    (["--replicas", "2"], "--replicas needs --backend ray (on one machine, --workers N runs N server processes)"),
    (["--address", "auto"], "--address needs --backend ray"),
    (["--backend", "ray", "--workers", "2"], "--workers is for --backend local: with --backend ray, use --replicas"),
    (["--backend", "kubernetes"], "--backend: expected one of local, ray, got 'kubernetes'"),
])
def test_options_of_the_other_backend_are_refused(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr


def test_settings_every_replica_would_refuse_are_refused_before_ray_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONLAB_WARM", "sometimes")
    monkeypatch.setattr("decisionlab.core.ray_backend.import_ray", lambda: pytest.fail("Ray was started"))
    result = CliRunner().invoke(app, ["serve", "--backend", "ray"])
    assert result.exit_code == 2, result.output
    assert "DECISIONLAB_WARM must be 0, defaults or all, got 'sometimes'" in result.stderr
