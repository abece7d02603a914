"""The conformance suite runs over every registered domain and setting, plus the worked example
(``tests/fixtures/newsvendor_domain``), registered here for the session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # checks.py

import newsvendor_domain  # noqa: E402

from decisionlab.core.spec import discover_domains, register_domain, unregister_domain  # noqa: E402


def all_settings() -> list[tuple[str, str]]:
    """``(domain, setting)`` of every registered domain and of the worked example."""
    domains = {**discover_domains(), newsvendor_domain.SPEC.name: newsvendor_domain.SPEC}
    return [(name, setting.name) for name, spec in sorted(domains.items()) for setting in spec.settings]


@pytest.fixture(scope="session", autouse=True)
def example_domain() -> Iterator[None]:
    register_domain(newsvendor_domain.SPEC)
    yield
    unregister_domain(newsvendor_domain.SPEC.name)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if {"domain_name", "setting_name"} <= set(metafunc.fixturenames):
        cases = all_settings()
        metafunc.parametrize(("domain_name", "setting_name"), cases, ids=[f"{d}.{s}" for d, s in cases])
