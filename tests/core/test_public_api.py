"""The core's public API: every exported name resolves, and domains (and the example domains) import the
core only through it (``lint-imports`` in ``make test`` holds the package's layers; this holds the
example domains under tests/, which import-linter does not see)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import decisionlab.core as core

ROOT = Path(__file__).resolve().parents[2]


def test_every_public_name_resolves_and_unknown_names_say_so() -> None:
    missing = [name for name in core.__all__ if getattr(core, name, None) is None]
    assert not missing
    with pytest.raises(AttributeError, match="no public name"):
        core.train_everything  # noqa: B018


def core_modules_imported(path: Path) -> list[str]:
    """``decisionlab.core.<module>`` imports in a file (the package root itself is allowed)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("decisionlab.core."):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
        elif isinstance(node, ast.Import):
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {a.name}" for a in node.names
                      if a.name.startswith("decisionlab.core.")]
    return found


def test_domains_and_examples_import_only_the_public_api() -> None:
    files = [*(ROOT / "domains").rglob("*.py"), *(ROOT / "tests" / "fixtures" / "newsvendor_domain").glob("*.py"),
             *(ROOT / "tests" / "fixtures" / "courier_domain").glob("*.py")]
    assert len(files) > 50
    offending = [line for path in files for line in core_modules_imported(path)]
    assert not offending, offending[:5]
