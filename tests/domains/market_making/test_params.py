"""Scenario validation of the quoting parameters and the model setting's presets."""

from __future__ import annotations

import pytest

from decisionlab.core.errors import ScenarioError
from decisionlab.core.scenario import resolve_scenario
from decisionlab.domains.market_making.model.scenario import PRESETS, ModelScenario
from decisionlab.domains.market_making.quotes import depth_bounds


def test_standard_set_up_is_the_default() -> None:
    s = PRESETS["avellaneda_stoikov"]
    assert (s.sigma, s.fill_intensity_a, s.fill_decay_k, s.risk_aversion) == (2.0, 140.0, 1.5, 0.1)
    assert (s.horizon, s.dt, s.steps, s.initial_price, s.initial_inventory) == (1.0, 0.005, 200, 100.0, 0)
    assert s.max_inventory is None and s.closed_form_exact
    assert PRESETS["glft_bounded"].max_inventory == 10
    assert not any(PRESETS[name].closed_form_exact for name in ("trending", "mean_reverting", "jumpy"))


def test_presets_round_trip_through_overrides() -> None:
    for preset in PRESETS.values():
        assert resolve_scenario(ModelScenario, preset, {}) == preset
        assert ModelScenario.model_validate(preset.describe()) == preset


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"dt": 0.003}, "whole number of steps"),
        ({"horizon": 1000.0, "dt": 0.001}, "between 1 and 100,000"),
        ({"max_inventory": 3, "initial_inventory": 4}, "initial_inventory"),
        ({"max_inventory": 0}, "max_inventory"),
        ({"jump_intensity": 5.0}, "jump_size must be > 0"),
        ({"mean_reversion": 300.0}, "mean_reversion·dt"),
        ({"jump_intensity": 300.0, "jump_size": 1.0}, "jump_intensity·dt"),
        ({"fill_decay_k": 0.0}, "fill_decay_k"),
        ({"fill_decay_k": 1e-300}, "fill_decay_k"),  # its depth bounds (~6/k) overflowed float32: a 500
        ({"sigma": float("nan")}, "sigma"),
        ({"sigma": "2"}, "expected a number"),
        ({"max_inventory": True}, "expected a number"),
        ({"spread": 1.0}, "unknown parameter"),
    ],
)
def test_invalid_scenarios_name_the_problem(overrides: dict[str, object], words: str) -> None:
    with pytest.raises(ScenarioError, match=words):
        resolve_scenario(ModelScenario, PRESETS["avellaneda_stoikov"], overrides)


def test_steps_tolerate_float_rounding() -> None:
    s = ModelScenario(horizon=0.3, dt=0.1)  # 0.3/0.1 = 2.9999999999999996
    assert s.steps == 3
    assert ModelScenario(horizon=1.0, dt=1.0).steps == 1


def test_depth_bounds_bracket_certain_and_negligible_fills() -> None:
    low, high = depth_bounds(PRESETS["avellaneda_stoikov"])
    assert low == pytest.approx((-0.35667494 - 2) / 1.5) and high == pytest.approx(4.0)
    # a large A·dt moves both bounds so that low still fills surely and high almost never
    s = ModelScenario(fill_intensity_a=5000.0)
    low, high = depth_bounds(s)
    adt, k = 5000.0 * s.dt, s.fill_decay_k
    assert adt * 2.718281828 ** (-k * low) > 1 and adt * 2.718281828 ** (-k * high) == pytest.approx(2.478752e-3)
