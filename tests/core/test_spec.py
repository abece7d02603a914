"""Domain registry and DomainSpec look-ups: names resolve, unknown names list the choices."""

from __future__ import annotations

import json

import pytest

from decisionlab.core.errors import ScenarioError, UnknownNameError
from decisionlab.core.spec import DomainSpec, discover_domains, get_domain, list_domains
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario


def test_get_domain_inventory() -> None:
    """The inventory domain registers itself and is found by name."""
    spec = get_domain("inventory")
    assert isinstance(spec, DomainSpec)
    assert spec.name == "inventory"
    assert spec.primary_metric in spec.metrics
    assert spec.default_scenario in spec.scenarios
    assert spec.default_algo in spec.algos


def test_discovery_lists_inventory() -> None:
    """``discover_domains`` and ``list_domains`` include every domain package."""
    assert "inventory" in discover_domains()
    assert "inventory" in [spec.name for spec in list_domains()]


def test_unknown_domain_lists_the_known_ones() -> None:
    """A typo in the domain name lists the registered domains (a 404 in the API)."""
    with pytest.raises(UnknownNameError) as info:
        get_domain("nope")
    assert "inventory" in info.value.choices
    assert "inventory" in str(info.value)
    assert "nope" in str(info.value)
    assert info.value.http_status == 404


def test_unknown_scenario_lists_the_presets() -> None:
    spec = get_domain("inventory")
    with pytest.raises(UnknownNameError) as info:
        spec.scenario("nope")
    assert "lost_sales" in str(info.value)
    assert info.value.choices == sorted(spec.scenarios)


def test_unknown_policy_and_algo_list_the_choices() -> None:
    spec = get_domain("inventory")
    with pytest.raises(UnknownNameError) as info:
        spec.policy("nope")
    for name in ("base_stock", "capped_base_stock", "myopic", "optimal"):
        assert name in str(info.value)
    with pytest.raises(UnknownNameError) as info:
        spec.algo("nope")
    assert "hdpo" in str(info.value)


def test_scenario_applies_overrides_and_validates() -> None:
    """``spec.scenario(name, overrides)`` resolves against the preset's model."""
    spec = get_domain("inventory")
    scenario = spec.scenario("lost_sales", {"lead_time": 3})
    assert isinstance(scenario, LostSalesScenario)
    assert scenario.lead_time == 3
    assert spec.scenarios["lost_sales"].lead_time != 3
    with pytest.raises(ScenarioError, match="lead_time"):
        spec.scenario("lost_sales", {"lead_time": -1})


def test_policy_and_algo_lookup() -> None:
    spec = get_domain("inventory")
    assert spec.policy("optimal").name == "optimal"
    assert spec.policy("optimal").admissible
    assert spec.algo("hdpo").name == "hdpo"


def test_summary_is_json_serialisable_and_complete() -> None:
    """``summary()`` survives a JSON round trip and lists scenarios, policies, algos and metrics."""
    spec = get_domain("inventory")
    summary = json.loads(json.dumps(spec.summary()))
    assert summary["name"] == "inventory"
    assert set(summary["scenarios"]) == set(spec.scenarios)
    assert summary["scenarios"]["lost_sales"]["lead_time"] == spec.scenarios["lost_sales"].lead_time
    assert set(summary["policies"]) == set(spec.policies)
    assert set(summary["algos"]) == set(spec.algos)
    assert set(summary["metrics"]) == set(spec.metrics)
    assert summary["metrics"]["cost_per_period"]["better"] == "lower"
    assert summary["metrics"]["fill_rate"]["better"] == "higher"
    assert summary["primary_metric"] == "cost_per_period"
