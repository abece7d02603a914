"""Shared bits of the benchmark scripts: machine description and docs/benchmarks.md sections."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

from decisionlab.core import atomic_write_bytes, file_lock

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> str:
    """One line: CPU model, cores, torch version and threads, GPU if any."""
    model = cpu_model()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{model}, {os.cpu_count()} cores{gpu}; Python {platform.python_version()}, torch {torch.__version__}"
    )


def command_line() -> str:
    """How this benchmark was started (scripts here run as modules from the repository root)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is None and sys.argv[0] in ("-c", ""):  # ``python -c`` or a session: no command reproduces it
        return "python -c … (an interactive call, not a benchmark command)"
    module = spec.name if spec is not None and spec.name else f"benchmarks.{Path(sys.argv[0]).stem}"
    return " ".join(["python", "-m", module, *sys.argv[1:]])


def write_section(name: str, body: str, path: Path = DOCS) -> None:
    """Replace (or append) the section between ``<!-- BEGIN name -->`` and ``<!-- END name -->``."""
    stamp = time.strftime("%Y-%m-%d")
    block = (
        f"<!-- BEGIN {name} -->\n{body.rstrip()}\n\n"
        f"_Command: `{command_line()}` — run {stamp} on {machine()}._\n<!-- END {name} -->"
    )
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    # benchmarks run side by side: the read-modify-write is locked (another run's section is not lost)
    # and the file is replaced atomically (a reader never sees half of it)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    with file_lock(Path(tempfile.gettempdir()) / f"decisionlab-report-{digest}.lock"):
        text = path.read_text() if path.exists() else "# Benchmarks\n"
        text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, text.encode())


def publish(name: str, body: str, write: bool) -> None:
    """Print ``body`` and, with ``write``, make it section ``name`` of docs/benchmarks.md."""
    if write:
        write_section(name, body)
    print(body)
