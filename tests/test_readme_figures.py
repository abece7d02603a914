"""The README's quick figures are what their commands print.

In README.md a command (in a ``bash`` block, continued with ``\\``) followed by a line
``# → <policy> <metric>=<value> ...; <policy> <metric>=<value> ...`` promises those figures; this test
runs the command with ``--json`` and compares each figure to the printed precision (one unit of its
last digit, for floating-point differences between machines). Only quick commands carry a ``# →``
line; the long benchmarks behind the other figures are listed in the README's "Figures" section with
their commands. Run with ``pytest -m readme`` (``make figures``).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
PROMISE = re.compile(r"^#\s*→\s*(?P<body>.+)$")
FIGURE = re.compile(r"(?P<metric>[a-z_0-9]+)=(?P<value>[-+]?[\d,]*\.?\d+)")


def promises(text: str) -> list[tuple[str, dict[str, dict[str, str]]]]:
    """``[(command, {policy: {metric: printed value}})]`` of every ``# →`` line in ``text``'s bash blocks."""
    found, command_lines, in_bash = [], [], False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("```"):
            in_bash, command_lines = line == "```bash", []
            continue
        if not in_bash:
            continue
        match = PROMISE.match(line)
        if match:
            figures: dict[str, dict[str, str]] = {}
            for part in match["body"].split(";"):
                policy, _, rest = part.strip().partition(" ")
                figures[policy] = {m["metric"]: m["value"] for m in FIGURE.finditer(rest)}
            found.append((" ".join(command_lines), figures))
            command_lines = []
        elif not line or line.startswith("#"):
            command_lines = [] if not line else command_lines
        elif command_lines and command_lines[-1].endswith("\\"):
            command_lines[-1] = command_lines[-1][:-1].strip()
            command_lines.append(line.split("  #")[0].strip())
        else:
            command_lines = [line.split("  #")[0].strip()]
    return found


def argv(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "decisionlab":
        return [sys.executable, "-m", "decisionlab.apps.cli", *words[1:], "--json"]
    if words[:2] == ["python", "-m"]:
        return [sys.executable, *words[1:], "--json"]
    raise AssertionError(f"a README figure's command must be `decisionlab ...` or `python -m ...`: {command}")


def within_printed_precision(actual: float, printed: str) -> bool:
    text = printed.replace(",", "")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(actual - float(text)) <= 10.0 ** -decimals * 1.0001


PROMISES = promises(README.read_text())


def test_the_readme_promises_figures() -> None:
    assert len(PROMISES) >= 4 and all(figures for _, figures in PROMISES)


@pytest.mark.readme
@pytest.mark.parametrize(("command", "figures"), PROMISES, ids=[c[:60] for c, _ in PROMISES])
def test_a_readme_figure_is_what_its_command_prints(command: str, figures: dict, tmp_path: Path) -> None:
    done = subprocess.run(argv(command), capture_output=True, text=True, timeout=900, cwd=README.parent,
                          env={**__import__("os").environ, "DECISIONLAB_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    results = {r["policy"]: r["metrics"] for r in json.loads(done.stdout)["results"]}
    wrong = [f"{policy} {metric}: README {printed}, command {results[policy][metric]:.6g}"
             for policy, wanted in figures.items() for metric, printed in wanted.items()
             if not within_printed_precision(float(results[policy][metric]), printed)]
    assert not wrong, "; ".join(wrong)
