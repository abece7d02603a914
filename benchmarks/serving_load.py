"""Load test of the policy API against a bare FastAPI app, measured in the same run.

Trains a small HDPO network (lost_sales, a few hundred steps) into a fresh data dir, starts
``decisionlab serve --workers W`` and a bare FastAPI app (one worker, one route that validates a
body of the same shape and answers a constant order) on 127.0.0.1, then drives each endpoint with
``wrk`` (Debian's package): ``C`` keep-alive connections for ``D`` seconds, after a warm-up. Every
run is bounded in count and time and targets 127.0.0.1 only. Also measures one keep-alive
connection (p50 of a single-state order), which shows any fixed per-request delay.

    python -m benchmarks.serving_load                       # 32 connections, 10 s per endpoint
    python -m benchmarks.serving_load --connections 32 --seconds 10 --workers 2 --rounds 2

Prints a markdown table (req/s, p50, p99 per endpoint, and the ratios to the bare app).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import torch

BARE_APP = textwrap.dedent('''
    from fastapi import FastAPI
    from pydantic import BaseModel

    class State(BaseModel):
        on_hand: float
        pipeline: list[float]

    class Request(BaseModel):
        scenario: str
        policy: str
        states: list[State]

    app = FastAPI()

    @app.post("/orders")
    def orders(request: Request) -> dict:
        return {"policy": request.policy, "orders": [1.0 for _ in request.states]}
''')

LOST_SALES_STATE = {"on_hand": 3.0, "pipeline": [4.0, 5.0]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, path: str, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url}{path} did not answer within {timeout_s} s")


def wrk_script(folder: Path, body: dict | None) -> Path | None:
    if body is None:
        return None
    path = folder / f"post_{abs(hash(json.dumps(body, sort_keys=True)))}.lua"
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
    )
    return path


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(text: str) -> dict[str, float]:
    """req/s, p50 and p99 (ms) and the count of non-2xx/3xx answers from ``wrk --latency``."""
    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
        if not match:
            raise RuntimeError(f"no {label}% latency in wrk output:\n{text}")
        return float(match.group(1)) * UNITS[match.group(2)]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    if rate is None:
        raise RuntimeError(f"no Requests/sec in wrk output:\n{text}")
    return {"rps": float(rate.group(1)), "p50_ms": latency("50"), "p99_ms": latency("99"),
            "bad": float(errors.group(1)) if errors else 0.0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


def run_wrk(url: str, script: Path | None, connections: int, seconds: int) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    return parse_wrk(out)


def keepalive_p50(url: str, body: dict, count: int = 400) -> float:
    """p50 (ms) of ``count`` sequential requests on one keep-alive connection."""
    times = []
    with httpx.Client(timeout=10) as client:
        for _ in range(count + 20):
            started = time.perf_counter()
            client.post(url, json=body).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[20:])


def train_policy(home: Path) -> str:
    from decisionlab.core.spec import get_domain
    from decisionlab.core.training import train_and_register

    report = train_and_register(get_domain("inventory"), "lost_sales", {}, "hdpo", seed=0, name="hdpo_small",
                                device=torch.device("cpu"),
                                progress=False, options={"max_steps": 300, "batch_size": 256})
    return str(report.record.ref)


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = open(log, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two servers this many times")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")

    folder = Path(tempfile.mkdtemp(prefix="decisionlab-load-"))
    home = folder / "home"
    env = {**os.environ, "DECISIONLAB_HOME": str(home), "DECISIONLAB_WARM": "defaults"}
    os.environ["DECISIONLAB_HOME"] = str(home)
    ref = train_policy(home)
    print(f"trained {ref}", file=sys.stderr)

    api_port, bare_port = free_port(), free_port()
    (folder / "bare_app.py").write_text(BARE_APP)
    api = start([sys.executable, "-m", "decisionlab.apps.cli", "serve", "--port", str(api_port), "--workers",
                 str(args.workers), "--log-level", "warning"], env, folder / "api.log")
    bare = start([sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port), "--log-level", "warning",
                  "--no-access-log"], {**env, "PYTHONPATH": str(folder)}, folder / "bare.log")
    api_url, bare_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}"
    try:
        wait_ready(api_url, "/ready", timeout_s=600)
        wait_ready(bare_url, "/docs")
        order = {"scenario": "lost_sales", "states": [LOST_SALES_STATE]}
        endpoints = {
            "bare FastAPI (1 worker): POST /orders": (bare_url + "/orders", {**order, "policy": "x"}),
            "GET /health": (api_url + "/health", None),
            f"POST /v1/inventory/orders, registered {ref}": (api_url + "/v1/inventory/orders",
                                                             {**order, "policy": ref}),
            "POST /v1/inventory/orders, base_stock": (api_url + "/v1/inventory/orders",
                                                      {**order, "policy": "base_stock"}),
            "POST /v1/inventory/act, registered": (api_url + "/v1/inventory/act", {**order, "policy": ref}),
            "POST /v1/execution/next-trade, ac_optimal": (api_url + "/v1/execution/next-trade", {
                "scenario": "almgren_chriss", "policy": "ac_optimal",
                "states": [{"steps_done": 2, "remaining_shares": 6e5, "price": 49.8, "previous_price": 49.9}]}),
        }
        for url, body in endpoints.values():  # warm every path (and check it answers 200)
            response = httpx.post(url, json=body, timeout=60) if body else httpx.get(url, timeout=60)
            response.raise_for_status()
        results: dict[str, list[dict[str, float]]] = {name: [] for name in endpoints}
        for _ in range(args.rounds):
            for name, (url, body) in endpoints.items():
                run_wrk(url, wrk_script(folder, body), args.connections, 2)  # warm-up
                results[name].append(run_wrk(url, wrk_script(folder, body), args.connections, args.seconds))
        single = {"bare": keepalive_p50(bare_url + "/orders", {**order, "policy": "x"}),
                  "api": keepalive_p50(api_url + "/v1/inventory/orders", {**order, "policy": ref})}
    finally:
        stop(api)
        stop(bare)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    bare_name = next(iter(endpoints))
    bare_rps, bare_p99 = median(bare_name, "rps"), median(bare_name, "p99_ms")
    print(f"\n{args.connections} connections, {args.seconds} s per endpoint, median of {args.rounds} round(s); "
          f"decisionlab with {args.workers} workers\n")
    print("| endpoint | req/s | p50 ms | p99 ms | req/s ÷ bare | p99 ÷ bare | non-2xx |")
    print("|---|---|---|---|---|---|---|")
    for name in endpoints:
        rps, p50, p99 = median(name, "rps"), median(name, "p50_ms"), median(name, "p99_ms")
        bad = int(sum(r["bad"] for r in results[name]))
        print(f"| {name} | {rps:,.0f} | {p50:.1f} | {p99:.1f} | {rps / bare_rps:.2f} | {p99 / bare_p99:.2f} | {bad} |")
    print(f"\none keep-alive connection, single-state order: p50 {single['api']:.2f} ms (registered policy) vs "
          f"{single['bare']:.2f} ms (bare app), ratio {single['api'] / single['bare']:.2f}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
