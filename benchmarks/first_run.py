"""How long a new user waits: ``make run`` from a fresh clone until the API and the dashboard answer.

Each round clones this repository into a new folder, starts ``make run`` there with a new data dir
(set-up included: the venv and ``pip install``, with pip's cache as it is on this machine) and polls
``/health`` and Streamlit's health check every 0.25 s; the seconds from ``git clone`` to each first
200 are the figures. Then it stops ``make run`` (Ctrl-C to its process group) and removes the folders.

    python -m benchmarks.first_run [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.report import command_line, machine, write_section
from benchmarks.serving_stall import free_port
from decisionlab.apps.run import answers

HERE = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600.0


def one_round() -> tuple[float, float]:
    """Seconds from ``git clone`` to the API's ``/health``, then to the dashboard's health check."""
    folder, home = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
    api_port, board_port = free_port(), free_port()
    start = time.monotonic()
    subprocess.run(["git", "clone", "-q", str(HERE), str(folder / "repo")], check=True)
    env = {**os.environ, "DECISIONLAB_HOME": str(home), "DECISIONLAB_API_PORT": str(api_port),
           "DECISIONLAB_DASHBOARD_PORT": str(board_port)}
    env.pop("VIRTUAL_ENV", None)
    log = open(folder / "run.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(["make", "run"], cwd=folder / "repo", env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    api = board = None
    try:
        while api is None or board is None:
            elapsed = time.monotonic() - start
            if elapsed > TIMEOUT_S or proc.poll() is not None:
                raise RuntimeError(f"make run did not answer (see {folder / 'run.log'})")
            if api is None and answers(f"http://127.0.0.1:{api_port}/health"):
                api = elapsed
            if board is None and answers(f"http://127.0.0.1:{board_port}/_stcore/health"):
                board = elapsed
            time.sleep(0.25)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    return api, board


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for index in range(args.rounds):
        api, board = one_round()
        rows.append(f"| {index + 1} | {api:.0f} | {board:.0f} |")
        print(rows[-1], flush=True)
    body = "\n".join([
        "## The first `make run`: from a fresh clone to the API and the dashboard",
        "",
        f"`{command_line()}` — {machine()}. Seconds from `git clone` to the first 200 of the API's `/health` "
        "and of the dashboard's health check; `make run`'s set-up included (venv, one `pip install` with "
        "pip's cache warm), a new data dir each round (the default policies then train in the background).",
        "",
        "| round | API /health (s) | dashboard (s) |",
        "|---|---|---|",
        *rows,
    ])
    print(body)
    if not args.no_write:
        write_section("first_run", body)


if __name__ == "__main__":
    main()
