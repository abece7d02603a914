"""The dashboard in a real headless Chromium: the home page lists the inventory domain, and the
inventory page runs a comparison when its button is pressed.

Needs the ``e2e`` extra (playwright) and a Chromium binary (Debian: ``apt-get install chromium``);
run with ``make e2e`` or ``pytest -m e2e``. Skipped when either is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from decisionlab.apps.cli import dashboard_command

pytestmark = pytest.mark.e2e
CHROMIUM = os.environ.get("DECISIONLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def dashboard_url(decisionlab_home: Path):
    port = _free_port()
    proc = subprocess.Popen(dashboard_command(port), env={**os.environ, "DECISIONLAB_HOME": str(decisionlab_home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise AssertionError("the dashboard did not start")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_home_and_inventory_pages_in_chromium(dashboard_url: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("no chromium binary")
    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(dashboard_url)
        page.get_by_role("heading", name="decisionlab").first.wait_for(timeout=60_000)
        page.get_by_text("inventory", exact=True).first.wait_for(state="attached", timeout=60_000)
        page.goto(f"{dashboard_url}/inventory")  # pages are generated at /<domain>
        page.get_by_role("button", name="Run").first.click(timeout=60_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=180_000)
        page.screenshot(path=str(tmp_path / "inventory.png"), full_page=True)
        assert "cost" in page.content().lower()
        browser.close()
