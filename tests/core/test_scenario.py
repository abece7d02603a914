"""Scenario contract: ``--set key=value`` parsing, validation messages that name the field, frozen presets."""

from __future__ import annotations

import pydantic
import pytest

from decisionlab.core.errors import DecisionlabError, ScenarioError
from decisionlab.core.scenario import parse_overrides, resolve_scenario
from decisionlab.domains.inventory.single_store.scenario import SCENARIOS, LostSalesScenario

PRESET = SCENARIOS["lost_sales"]


def test_parse_overrides_reads_json_values_and_falls_back_to_strings() -> None:
    """Numbers, booleans and strings come out typed; an '=' inside the value is kept."""
    parsed = parse_overrides(["a=1", "x=abc", " b = 2.5 ", "flag=true", "expr=k=v", "demand_distribution=normal"])
    assert parsed == {"a": 1, "x": "abc", "b": 2.5, "flag": True, "expr": "k=v", "demand_distribution": "normal"}
    assert isinstance(parsed["a"], int)
    assert isinstance(parsed["b"], float)


@pytest.mark.parametrize("item", ["bad", "=3", "  =x"])
def test_parse_overrides_rejects_items_without_a_key(item: str) -> None:
    """Anything that is not ``key=value`` is a user error that shows the offending item."""
    with pytest.raises(ScenarioError, match="key=value") as info:
        parse_overrides([item])
    assert item in str(info.value)
    assert isinstance(info.value, DecisionlabError)


def test_resolve_scenario_applies_overrides_to_the_preset() -> None:
    """Overridden fields change, the others keep the preset's values."""
    scenario = resolve_scenario(LostSalesScenario, PRESET, {"lead_time": 3, "underage_cost": 19})
    assert scenario.lead_time == 3
    assert scenario.underage_cost == 19.0
    assert scenario.demand_mean == PRESET.demand_mean
    assert scenario.horizon_periods == PRESET.horizon_periods


def test_resolve_scenario_accepts_a_plain_mapping_as_preset() -> None:
    """API callers may pass a dict instead of a preset instance."""
    scenario = resolve_scenario(LostSalesScenario, {"lead_time": 1}, {"underage_cost": 4})
    assert (scenario.lead_time, scenario.underage_cost) == (1, 4.0)


def test_unknown_key_lists_the_valid_keys() -> None:
    """A typo names itself and every valid parameter."""
    with pytest.raises(ScenarioError) as info:
        resolve_scenario(LostSalesScenario, PRESET, {"lead_tme": 2})
    message = str(info.value)
    assert "lead_tme" in message
    for field in LostSalesScenario.model_fields:
        assert field in message


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"lead_time": -1}, "lead_time"),
        ({"lead_time": 2.5}, "lead_time"),
        ({"holding_cost": 0}, "holding_cost"),
        ({"demand_mean": float("nan")}, "demand_mean"),
        ({"demand_distribution": "gamma"}, "demand_distribution"),
    ],
)
def test_bad_value_message_names_the_field(overrides: dict[str, object], field: str) -> None:
    """Validation failures become ScenarioError (not pydantic's error) and name the field."""
    with pytest.raises(ScenarioError) as info:
        resolve_scenario(LostSalesScenario, PRESET, overrides)
    assert field in str(info.value)


def test_lead_time_minus_one_message_shows_the_value() -> None:
    """The message says what was given, so the user can find it in a long command line."""
    with pytest.raises(ScenarioError, match=r"lead_time.*-1"):
        resolve_scenario(LostSalesScenario, PRESET, {"lead_time": -1})


@pytest.mark.parametrize(("warmup", "horizon"), [(100, 100), (200, 100)])
def test_warmup_not_shorter_than_horizon_is_rejected(warmup: int, horizon: int) -> None:
    """Warm-up must leave periods to measure; the message names both fields."""
    with pytest.raises(ScenarioError) as info:
        resolve_scenario(LostSalesScenario, PRESET, {"warmup_periods": warmup, "horizon_periods": horizon})
    assert "warmup_periods" in str(info.value)
    assert "horizon_periods" in str(info.value)


def test_presets_are_immutable_and_untouched_by_resolution() -> None:
    """Assigning to a preset fails; resolving overrides returns a new object."""
    before = PRESET.describe()
    with pytest.raises(pydantic.ValidationError):
        PRESET.lead_time = 7  # type: ignore[misc]
    resolved = resolve_scenario(LostSalesScenario, PRESET, {"lead_time": 4})
    assert resolved is not PRESET
    assert PRESET.describe() == before
    assert PRESET.lead_time != 4


def test_unknown_keys_are_rejected_by_the_model_itself() -> None:
    """``extra='forbid'``: constructing a scenario with a stray key fails too."""
    with pytest.raises(pydantic.ValidationError):
        LostSalesScenario(lead_tme=2)  # type: ignore[call-arg]


def test_describe_is_plain_json() -> None:
    """``describe()`` returns every field with JSON-native values."""
    described = PRESET.describe()
    assert set(described) == set(LostSalesScenario.model_fields)
    assert described["demand_distribution"] == "poisson"
    assert all(isinstance(v, int | float | str) for v in described.values())
