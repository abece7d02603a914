"""Can one request stall the server? ``/health`` latency while heavy and steady work is served.

``decisionlab serve`` (real uvicorn, on 127.0.0.1) answers, in turn:

1. one maximal ride-hailing dispatch window (20,000 drivers × 10,000 orders through ``POST /act``) per
   worker, with ``/health`` probed every 20 ms while they run (1 worker, then 2 workers with 2 requests);
2. ``--clients`` steady clients (``wrk``, Debian's package: one C thread keeping ``--clients``
   connections busy) each sending a small dispatch window (50 drivers × 10 orders) back to back for
   ``--seconds``, with the same ``/health`` probe (in this process, alone: its latency is the server's).

Reported: ``/health`` p50 / p99 / max over the probes, the heavy requests' status and seconds, the
steady clients' request rate, latency and non-2xx answers (a 503 is load shed by the bounded pool).

    python -m benchmarks.serving_stall [--clients 50] [--seconds 20] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.report import command_line, machine, write_section
from benchmarks.serving_load import run_wrk, wrk_script

HERE = Path(__file__).resolve().parent.parent


def window(drivers: int, orders: int, cells: int, seed: int) -> dict:
    rng = random.Random(seed)
    return {"time_of_day_s": 30600.0,
            "drivers": [{"id": 10**9 + i, "cell": rng.randrange(cells), "idle_seconds": 400.0} for i in range(drivers)],
            "orders": [{"id": 2 * 10**9 + i, "origin_cell": rng.randrange(cells), "dest_cell": rng.randrange(cells)}
                       for i in range(orders)]}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, workers: int, home: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DECISIONLAB_HOME": home, "DECISIONLAB_WARM": "0", "PYTHONUNBUFFERED": "1"}
        self.log = open(Path(home) / f"server-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "decisionlab.apps.cli", "serve", "--port", str(self.port),
                                      "--workers", str(workers), "--log-level", "warning"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=HERE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


class Probe:
    """``/health`` every ``every`` seconds on its own connection until stopped; latencies in ms."""

    def __init__(self, base: str, every: float = 0.02) -> None:
        self.base, self.every, self.latencies, self.stopped = base, every, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stopped.is_set():
                start = time.perf_counter()
                client.get(f"{self.base}/health")
                self.latencies.append((time.perf_counter() - start) * 1000)
                time.sleep(self.every)

    def __enter__(self) -> Probe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()

    def stats(self) -> tuple[float, float, float, int]:
        values = np.array(self.latencies)
        return float(np.percentile(values, 50)), float(np.percentile(values, 99)), float(values.max()), values.size


def heavy(server: Server, requests: int, body: dict) -> tuple[list[str], Probe]:
    """``requests`` maximal windows at once (one thread each), probing /health meanwhile."""
    outcomes: list[str] = []

    def send() -> None:
        start = time.perf_counter()
        status = httpx.post(f"{server.base}/v1/ride-hailing/act", json=body, timeout=300).status_code
        outcomes.append(f"{status} in {time.perf_counter() - start:.1f} s")

    with Probe(server.base) as probe:
        time.sleep(0.5)
        threads = [threading.Thread(target=send) for _ in range(requests)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(0.3)
    return outcomes, probe


def steady(server: Server, clients: int, seconds: float, cells: int, folder: Path) -> tuple[dict, Probe]:
    """``clients`` wrk connections posting small windows for ``seconds``, probing /health meanwhile."""
    body = {"scenario": "city_grid", "policy": "nearest", "states": [window(50, 10, cells, 7)]}
    script = wrk_script(folder, body)
    with Probe(server.base) as probe:
        result = run_wrk(f"{server.base}/v1/ride-hailing/act", script, clients, int(seconds))
    return result, probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--steady-only", action="store_true",
                        help="only the steady clients (2 workers); implies --no-write")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    cells = 20 * 20  # city_grid
    body = {"scenario": "city_grid", "policy": "nearest", "states": [window(20_000, 10_000, cells, 0)]}
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for workers in ((2,) if args.steady_only else (1, 2)):
            server = Server(workers, home)
            try:
                httpx.post(f"{server.base}/v1/ride-hailing/act", timeout=60, json={
                    "scenario": "city_grid", "policy": "nearest", "states": [window(50, 10, cells, 1)]})
                if not args.steady_only:
                    outcomes, probe = heavy(server, workers, body)
                    p50, p99, worst, count = probe.stats()
                    rows.append(f"| {workers} maximal window(s) (20,000 × 10,000), {workers} worker(s) | {p50:.1f} "
                                f"| {p99:.1f} | {worst:.1f} | {count} | {', '.join(sorted(outcomes))} |")
                    print(rows[-1])
                if workers == 2:
                    result, probe = steady(server, args.clients, args.seconds, cells, Path(home))
                    p50, p99, worst, count = probe.stats()
                    rows.append(f"| {args.clients} steady clients (50 × 10 windows), 2 workers | {p50:.1f} | "
                                f"{p99:.1f} | {worst:.1f} | {count} | {result['rps']:,.0f} req/s, p50 "
                                f"{result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, "
                                f"{result['bad']:.0f} non-2xx |")
                    print(rows[-1])
            finally:
                server.stop()
    body_text = "\n".join([
        "## Serving: no request stalls the server",
        "",
        f"`{command_line()}` — {machine()}. `decisionlab serve` on 127.0.0.1 (the probe, the clients and the "
        "server share the 2 cores); `/health` probed every 20 ms on its own connection. Requests are "
        "costed from their content (drivers × orders); heavy ones run in the bounded serving pool "
        "(`DECISIONLAB_SERVE_THREADS`, `DECISIONLAB_SERVE_QUEUE`), never on the event loop.",
        "",
        "| load | /health p50 (ms) | p99 (ms) | max (ms) | probes | requests |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    print(body_text)
    if not (args.no_write or args.steady_only):
        write_section("serving_stall", body_text)


if __name__ == "__main__":
    main()
