"""The sidebar generated from the scenario models (decisionlab.core.ui) and the policy picker of the
inventory page, for every preset."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import torch

from decisionlab.core import ui
from decisionlab.core.dashboard import compare
from decisionlab.core.spec import get_domain
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory import SINGLE_STORE
from decisionlab.domains.inventory.network import efficiency
from decisionlab.domains.inventory.network.scenario import MultiWarehouseScenario, SerialScenario
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario
from decisionlab.domains.inventory.single_store.policies import OrderMLP

SPEC = get_domain("inventory")


@pytest.fixture(autouse=True)
def no_efficiency_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(efficiency, "DATA_EFFICIENCY_CSV", tmp_path / "no_data_efficiency.csv")


def test_field_kinds_follow_the_model() -> None:
    kinds = {i.name: i for i in ui.field_inputs(MultiWarehouseScenario)}
    assert kinds["n_stores"].kind == "int" and (kinds["n_stores"].min_value, kinds["n_stores"].max_value) == (1, 200)
    assert kinds["correlation"].kind == "float" and kinds["correlation"].max_value == 1
    assert kinds["lost_sales"].kind == "bool"
    assert kinds["demand_mean_range"].kind == "text" and not kinds["demand_mean_range"].nullable
    assert kinds["adjacency"].kind == "text" and kinds["adjacency"].nullable
    series = {i.name: i for i in ui.field_inputs(RealSeriesScenario)}
    assert series["shortage"].kind == "choice" and series["shortage"].options == ("lost_sales", "backlog")
    assert series["data_path"].raw_string and series["data_path"].nullable
    assert series["test_start"].kind == "text" and not series["test_start"].raw_string
    assert ui.parse_text(series["data_path"], "  ") is None
    assert ui.parse_text(series["data_path"], "sales.csv") == "sales.csv"
    assert ui.parse_text(series["test_start"], "2024-05-01") == "2024-05-01"
    assert ui.to_text(dt.date(2024, 5, 1)) == "2024-05-01"
    assert ui.parse_text(kinds["adjacency"], "null") is None
    assert ui.parse_text(kinds["store_lead_times"], "[2, 4]") == [2, 4]
    assert [ui.float_step(v) for v in (9.0, 20.0, 0.3, 0.0)] == [0.5, 5.0, 0.05, 0.1]


@pytest.mark.parametrize("preset", list(SPEC.scenarios))
def test_widget_values_of_every_preset_resolve_to_the_preset(preset: str) -> None:
    """Preset → widget values → overrides → the same scenario (nothing lost in the round trip)."""
    scenario = SPEC.scenarios[preset]
    values = ui.preset_values(scenario)
    inputs = {i.name: i for i in ui.field_inputs(type(scenario))}
    overrides = {name: ui.model_value(inputs[name], value) for name, value in values.items()}
    assert SPEC.scenario(preset, overrides) == scenario
    assert all(type(v) is int for n, v in values.items() if inputs[n].kind == "int")
    assert all(type(v) is float for n, v in values.items() if inputs[n].kind == "float")


def test_edited_text_is_validated_by_the_model() -> None:
    inputs = {i.name: i for i in ui.field_inputs(SerialScenario)}
    overrides = {"lead_times": ui.parse_text(inputs["lead_times"], "[1, 2]"),
                 "holding_costs": ui.parse_text(inputs["holding_costs"], "[0.5, 1]")}
    assert SPEC.scenario("serial", overrides).topology().lead_times == (1, 2)
    with pytest.raises(Exception, match="lead_times and holding_costs"):
        SPEC.scenario("serial", {"lead_times": [1, 2, 3]})


def test_policy_choices_follow_the_setting(decisionlab_home: Path) -> None:
    net = OrderMLP(2, 5.0)
    registry = PolicyRegistry()
    registry.save("inventory", "ls", net.state_dict(), {"scenario_name": "lost_sales", "policy_config": net.config(),
                                                        "metrics": {}})
    for preset, scenario in SPEC.scenarios.items():
        choices = compare.policy_choices(SPEC, scenario, registry)
        assert set(compare.default_selection(SPEC, scenario, registry)) <= set(choices), preset
        assert ("inventory/ls@1" in choices) == (preset == "lost_sales")  # the single-store kind only there
    assert "critical_fractile" in compare.policy_choices(SPEC, SPEC.scenarios["backlog"], registry)
    assert "critical_fractile" not in compare.policy_choices(SPEC, SPEC.scenarios["serial"], registry)
    assert "capped_echelon_stock" not in compare.policy_choices(SPEC, SPEC.scenarios["transshipment"], registry)
    network = SPEC.setting("network")
    assert network.policies["base_stock"].expensive and not network.policies["newsvendor_echelon"].expensive
    assert not network.policies["critical_fractile"].expensive
    assert SPEC.setting("series").policies["transformed_quantile"].expensive
    assert not SPEC.setting("series").policies["myopic"].expensive
    # The defaults of every network setting build without a level search.
    for preset in ("serial", "one_warehouse", "transshipment", "multi_warehouse"):
        scenario = SPEC.scenarios[preset]
        defaults = compare.default_selection(SPEC, scenario, registry)
        assert not any(network.policies[name].expensive for name in defaults)
        built, skipped = compare.build_selected(SPEC, scenario, defaults, torch.device("cpu"))
        assert not skipped and len(built) == 2


def test_the_default_registered_policy_is_preselected(decisionlab_home: Path) -> None:
    net = OrderMLP(2, 5.0)
    registry = PolicyRegistry()
    card = {"scenario_name": "lost_sales", "policy_config": net.config(), "metrics": {}}
    registry.save("inventory", "hdpo_lost_sales", net.state_dict(), card)  # what `make run` trains
    registry.save("inventory", "hdpo_lost_sales", net.state_dict(), card)
    assert compare.default_selection(SPEC, SPEC.scenarios["lost_sales"], registry) == [
        *SINGLE_STORE.default_policies, "inventory/hdpo_lost_sales@2"]
    assert "inventory/hdpo_lost_sales@2" not in compare.default_selection(SPEC, SPEC.scenarios["backlog"], registry)


def test_switching_presets_reloads_fields_and_policies(domain_page) -> None:
    at = domain_page("inventory").run()
    assert at.number_input(key="inventory_lead_time").value == 2
    at.number_input(key="inventory_lead_time").set_value(5).run(timeout=60)
    at.selectbox(key="inventory_preset").set_value("serial").run(timeout=60)
    assert not at.exception, at.exception
    assert at.text_input(key="inventory_lead_times").value == "[2, 4, 3, 4]"
    assert at.number_input(key="inventory_demand_std").value == 2.0
    assert at.number_input(key="inventory_horizon_periods").value == SPEC.setting("network").quick["horizon_periods"]
    assert at.multiselect(key="inventory_policies").value == ["newsvendor_echelon", "newsvendor_local"]
    assert any("Network" in tab.label for tab in at.tabs)
    at.selectbox(key="inventory_preset").set_value("lost_sales").run(timeout=60)
    assert not at.exception, at.exception
    assert at.number_input(key="inventory_lead_time").value == 2  # the preset again, not the edit
    assert at.multiselect(key="inventory_policies").value == list(SINGLE_STORE.default_policies)
