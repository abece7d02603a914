"""Schemathesis against the real server (uvicorn on 127.0.0.1, a bearer token, a registered
policy): every check on every route, bounded in examples per operation (about 1,300 cases, 15-30 s; the
subprocess timeout is the safety net). `--max-time` is not used: it makes schemathesis keep going
until the budget is spent. A server error, a status the
OpenAPI document does not declare, or a body that does not match its schema fails the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from servers import running_server

HERE = Path(__file__).parent
TOKEN = "fuzz-token"


@pytest.mark.timeout(900)
def test_no_server_errors_and_no_schema_violations(registered: Path, tmp_path: Path) -> None:
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if schemathesis is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    env = {**os.environ, "DECISIONLAB_HOME": str(registered), "DECISIONLAB_API_TOKEN": TOKEN,
           "DECISIONLAB_BUILD_WAIT_S": "0.2", "DECISIONLAB_WARM": "0"}
    with running_server(env) as url:
        result = subprocess.run(
            [schemathesis, "--config-file", str(HERE / "schemathesis.toml"), "run", f"{url}/openapi.json",
             "--checks", "all", "--header", f"Authorization: Bearer {TOKEN}", "--max-examples", "10",
             "--seed", "20261201", "--workers", "1", "--no-color",
             "--generation-database", "none", "--report-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=800, env=env, cwd=tmp_path,
        )
    summary = result.stdout[-8000:]
    assert result.returncode == 0, summary
    assert "Tested:" in summary, summary
