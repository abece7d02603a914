"""The conformance suite runs over every registered domain and setting, plus the two worked examples
(``tests/fixtures/newsvendor_domain`` and ``tests/fixtures/courier_domain``), registered here for the session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # checks.py

import courier_domain  # noqa: E402
import newsvendor_domain  # noqa: E402

from decisionlab.core.spec import discover_domains, register_domain, unregister_domain  # noqa: E402


def all_settings() -> list[tuple[str, str]]:
    """``(domain, setting)`` of every registered domain and of the worked examples."""
    domains = {**discover_domains(), **{spec.name: spec for spec in EXAMPLES}}
    return [(name, setting.name) for name, spec in sorted(domains.items()) for setting in spec.settings]


EXAMPLES = (newsvendor_domain.SPEC, courier_domain.SPEC)


@pytest.fixture(scope="session", autouse=True)
def example_domain() -> Iterator[None]:
    for spec in EXAMPLES:
        register_domain(spec)
    yield
    for spec in EXAMPLES:
        unregister_domain(spec.name)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if {"domain_name", "setting_name"} <= set(metafunc.fixturenames):
        cases = all_settings()
        metafunc.parametrize(("domain_name", "setting_name"), cases, ids=[f"{d}.{s}" for d, s in cases])
