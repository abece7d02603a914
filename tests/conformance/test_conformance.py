"""Every registered domain and setting (the worked example included) honours the domain contract.

Parametrised at collection time over ``discover_domains()``: a new domain is checked the day it
registers. The checks themselves are in ``checks.py``.
"""

from __future__ import annotations

from pathlib import Path

import checks
import pytest
from fastapi.testclient import TestClient

from decisionlab.apps.api import create_app
from decisionlab.core.policy_cache import PolicyCache
from decisionlab.core.spec import DomainSpec, SettingSpec, get_domain
from decisionlab.core.store.registry import PolicyRegistry


@pytest.fixture
def case(domain_name: str, setting_name: str) -> tuple[DomainSpec, SettingSpec]:
    domain = get_domain(domain_name)
    return domain, domain.setting(setting_name)


@pytest.fixture
def client(home: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    # Large enough that the batch limit, not the body-size limit, refuses one state too many.
    monkeypatch.setenv("DECISIONLAB_API_MAX_BODY_BYTES", str(64 * 1024**2))
    return TestClient(create_app(), raise_server_exceptions=False)  # a server fault is a failed check


def test_presets_validate_and_round_trip_through_set(case) -> None:
    checks.check_presets_round_trip(*case)


def test_same_seed_same_metrics_and_zero_self_difference(case) -> None:
    checks.check_same_seed_same_metrics(*case)


def test_adapters_pass_gymnasium_sb3_and_pettingzoo_checks(case) -> None:
    checks.check_adapters(*case)


def test_actions_stay_inside_the_declared_spaces(case) -> None:
    checks.check_actions_inside_the_spaces(*case)


def test_client_ids_round_trip_exactly(case, client: TestClient, home: Path) -> None:
    checks.check_ids_round_trip(*case, client, PolicyCache(PolicyRegistry(home)))


def test_every_baseline_runs_through_the_cli(case, home: Path) -> None:
    checks.check_baselines_through_the_cli(*case)


def test_every_baseline_runs_through_the_api(case, client: TestClient) -> None:
    checks.check_baselines_through_the_api(*case, client)


def test_every_baseline_runs_in_the_dashboard(case, home: Path, domain_page) -> None:
    checks.check_baselines_in_the_dashboard(*case, domain_page)


def test_states_reject_bad_values_naming_the_field(case, client: TestClient) -> None:
    checks.check_states_reject_bad_values(*case, client)


def test_every_policy_kind_round_trips_through_the_registry(case, home: Path) -> None:
    checks.check_policy_kinds_round_trip(*case, PolicyRegistry(home))


def test_every_algorithm_trains_into_a_declared_kind(case, home: Path) -> None:
    checks.check_algorithms_train_and_register(*case, PolicyRegistry(home))
