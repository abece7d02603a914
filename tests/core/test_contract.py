"""The domain contract v2 in the core: dispatch on settings, typed options, policy kinds, chunked
evaluation and the environment hooks of the domain registry."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch
from pydantic import Field

from decisionlab.core.algos.pathwise import PathwiseConfig
from decisionlab.core.errors import (
    ArtefactError,
    DecisionlabError,
    PolicyMismatchError,
    ScenarioError,
    UnknownNameError,
)
from decisionlab.core.evaluation import check_memory, chunk_seed, evaluate_policies
from decisionlab.core.options import TrainContext, apply_options, options_model
from decisionlab.core.policy import policy_class, rebuild_policy, register_policy_kind
from decisionlab.core.scenario import Scenario, parse_overrides
from decisionlab.core.seeding import derive_seed, make_generator
from decisionlab.core.spec import DOMAINS_ENV, discover_domains, get_domain, unregister_domain
from decisionlab.domains.execution.metrics import summarize
from decisionlab.domains.inventory.single_store.policies import BaseStockPolicy, OrderMLP

CPU = torch.device("cpu")


# --- settings -------------------------------------------------------------------------------------


def test_the_core_finds_each_scenarios_setting_once() -> None:
    inventory = get_domain("inventory")
    assert [s.name for s in inventory.settings] == ["single_store", "series", "network"]
    for name, preset in inventory.scenarios.items():
        assert name in inventory.setting_of(preset).presets
    with pytest.raises(DecisionlabError, match="not a scenario of the inventory domain"):
        inventory.setting_of(get_domain("execution").scenario("almgren_chriss"))
    with pytest.raises(UnknownNameError, match="lost_sales"):
        inventory.setting_of_preset("nope")


def test_a_baseline_of_another_setting_names_where_it_is() -> None:
    inventory = get_domain("inventory")
    with pytest.raises(PolicyMismatchError) as info:
        inventory.policy("echelon_stock").build(inventory.scenario("lost_sales"), CPU)
    message = str(info.value)
    assert "Inventory networks" in message and "one_warehouse" in message and "Single store" in message
    assert info.value.http_status == 422
    assert inventory.policy("base_stock").settings == tuple(inventory.settings)  # one name, three builders


def test_checks_narrow_the_baselines_of_a_setting() -> None:
    inventory = get_domain("inventory")
    single = inventory.setting("single_store")
    assert "optimal" in single.available_policies(inventory.scenario("lost_sales"))
    normal = inventory.scenario("lost_sales", {"demand_distribution": "normal"})
    assert "optimal" not in single.available_policies(normal)
    with pytest.raises(PolicyMismatchError, match="poisson"):
        inventory.policy("optimal").build(normal, CPU)


def test_settings_validate_their_declarations() -> None:
    single = get_domain("inventory").setting("single_store")
    with pytest.raises(ValueError, match="primary metric"):
        dataclasses.replace(single, primary_metric="profit")
    with pytest.raises(ValueError, match="default policies"):
        dataclasses.replace(single, default_policies=("nope",))
    with pytest.raises(TypeError, match="not a LostSalesScenario"):
        dataclasses.replace(single, presets={"x": get_domain("execution").scenario("almgren_chriss")})


# --- typed options --------------------------------------------------------------------------------


class ToySettings(PathwiseConfig):
    hidden: tuple[int, ...] = Field((8,), description="hidden widths")
    paths: int = Field(64, ge=2, description="training paths")


def test_options_are_derived_from_the_settings_and_merged_with_their_constraints() -> None:
    Options = options_model("ToyOptions", ToySettings, ("max_steps", "paths", "hidden"))
    assert Options.model_fields["paths"].description == "training paths"
    assert Options().model_dump() == {"max_steps": None, "paths": None, "hidden": None}
    with pytest.raises(Exception, match="greater than or equal to 2"):
        Options(paths=1)
    with pytest.raises(Exception, match="Extra inputs"):
        Options(batches=3)
    merged = apply_options(ToySettings(), Options(max_steps=7, hidden=(4, 4)))
    assert (merged.max_steps, merged.hidden, merged.paths) == (7, (4, 4), 64)  # unset options keep the settings


def test_the_training_context_gives_the_named_streams() -> None:
    ctx = TrainContext(5, CPU)
    assert ctx.stream("train") == derive_seed(5, "train")
    a, b = ctx.generator("eval"), make_generator(derive_seed(5, "eval"))
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
    ctx.seed_init()
    first = torch.rand(2)
    ctx.seed_init()
    assert torch.equal(first, torch.rand(2))


def test_an_unknown_algorithm_option_is_refused_before_training() -> None:
    inventory = get_domain("inventory")
    with pytest.raises(ScenarioError, match="architecture"):
        inventory.algo("hdpo").train(inventory.scenario("lost_sales"), options={"architecture": "gnn"})


# --- policy kinds ---------------------------------------------------------------------------------


def test_learned_policies_rebuild_through_the_registry_of_kinds() -> None:
    scenario = get_domain("inventory").scenario("lost_sales")
    net = OrderMLP.initial(scenario, CPU)
    assert policy_class("order_mlp") is OrderMLP
    rebuilt = rebuild_policy(net.config(), net.state_dict(), scenario, CPU)
    obs = torch.rand(16, 3) * 10
    with torch.no_grad():
        assert torch.equal(rebuilt.act(obs), net.act(obs))
    with pytest.raises(UnknownNameError, match="policy kind 'transformer'"):
        rebuild_policy({"kind": "transformer"}, {}, scenario, CPU)
    with pytest.raises(ArtefactError) as info:
        rebuild_policy(net.config(), {"net.0.weight": torch.zeros(1)}, scenario, CPU)
    assert info.value.http_status == 503
    with pytest.raises(ArtefactError, match="config"):
        rebuild_policy({"kind": "order_mlp"}, net.state_dict(), scenario, CPU)
    with pytest.raises(PolicyMismatchError, match="lead_time=2"):
        rebuild_policy(net.config(), net.state_dict(), scenario.model_copy(update={"lead_time": 3}), CPU)


def test_a_kind_cannot_be_registered_twice_for_two_classes() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_policy_kind("order_mlp", "somewhere.else:OrderMLP")


def test_a_domain_refuses_a_registered_kind_of_another_setting() -> None:
    inventory = get_domain("inventory")
    net = OrderMLP.initial(inventory.scenario("lost_sales"), CPU)
    with pytest.raises(PolicyMismatchError, match="order_mlp policy cannot serve the Inventory networks"):
        inventory.load_policy(net.config(), net.state_dict(), inventory.scenario("backlog"), CPU)


# --- evaluation -----------------------------------------------------------------------------------


def test_evaluation_runs_in_chunks_and_the_first_chunk_is_the_plain_seed() -> None:
    inventory = get_domain("inventory")
    scenario = inventory.scenario("lost_sales", {"horizon_periods": 120, "warmup_periods": 20})
    small = dataclasses.replace(inventory.setting("single_store"), eval_chunk=4)
    chunked = dataclasses.replace(inventory, name="inventory_chunked", settings=(small,))
    policy = [("bs", BaseStockPolicy(12.0))]
    whole = evaluate_policies(inventory, scenario, policy, episodes=4, seed=3, device=CPU)
    parts = evaluate_policies(chunked, scenario, policy, episodes=10, seed=3, device=CPU)
    costs = parts.per_episode["bs"]["cost_per_period"]
    assert costs.shape == (10,)
    np.testing.assert_array_equal(costs[:4], whole.per_episode["bs"]["cost_per_period"])
    assert chunk_seed(3, 0) == 3 and chunk_seed(3, 1) != chunk_seed(3, 2)
    assert not np.array_equal(costs[:4], costs[4:8])  # each chunk draws its own paths


def test_whole_sample_statistics_survive_chunking() -> None:
    execution = get_domain("execution")
    scenario = execution.scenario("latent_liquidity")
    small = dataclasses.replace(execution.setting("execution"), eval_chunk=100)
    chunked = dataclasses.replace(execution, name="execution_chunked", settings=(small,))
    policy = execution.policy("twap").build(scenario, CPU)
    report = evaluate_policies(chunked, scenario, [("twap", policy)], episodes=350, seed=1, device=CPU)
    values = report.per_episode["twap"]
    shortfall = values["mean_shortfall"]  # the influence values of the mean are the shortfalls themselves
    stats = summarize(shortfall, scenario.risk_aversion)
    for metric in ("mean_variance_objective", "std_shortfall", "cvar95_shortfall"):
        assert values[metric].mean() == pytest.approx(stats[metric], rel=1e-9), metric


def test_evaluations_that_would_not_fit_in_memory_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    setting = get_domain("inventory").setting("single_store")
    check_memory(setting, 4, 1_000_000)  # 160 MB of values: fine
    with pytest.raises(DecisionlabError, match=r"GiB.*DECISIONLAB_MAX_EVAL_BYTES"):
        check_memory(setting, 4, 100_000_000)
    monkeypatch.setenv("DECISIONLAB_MAX_EVAL_BYTES", "1000")
    with pytest.raises(DecisionlabError, match="episodes"):
        check_memory(setting, 1, 100)


# --- scenarios ------------------------------------------------------------------------------------


def test_non_finite_parameters_are_refused_as_such() -> None:
    """NaN and infinity are refused as non-finite (from the CLI's ``--set`` text too); numbers sent
    as strings or booleans are refused as not numbers."""
    inventory = get_domain("inventory")
    for value in (float("nan"), float("inf"), *parse_overrides(["a=nan", "b=-inf", "c=Infinity"]).values()):
        with pytest.raises(ScenarioError, match="demand_mean: Input should be a finite number"):
            inventory.scenario("lost_sales", {"demand_mean": value})
    for value in ("nan", "5", True):
        with pytest.raises(ScenarioError, match="demand_mean: expected a number, got the (str|bool)"):
            inventory.scenario("lost_sales", {"demand_mean": value})
    assert inventory.scenario("lost_sales", parse_overrides(["demand_mean=5"])).demand_mean == 5.0
    assert issubclass(type(inventory.scenario("lost_sales")), Scenario)


# --- discovery ------------------------------------------------------------------------------------


def test_domains_named_in_the_environment_are_discovered(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / "plugin_domain.py").write_text("import newsvendor_domain\n\nnewsvendor_domain.register()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(DOMAINS_ENV, "plugin_domain")
    try:
        assert "newsvendor" in discover_domains()  # imported by the discovery, which registered it
    finally:
        unregister_domain("newsvendor")
        sys.modules.pop("plugin_domain", None)
    monkeypatch.setenv(DOMAINS_ENV, "no.such.module")
    with pytest.raises(DecisionlabError, match="DECISIONLAB_DOMAINS: cannot import domain module 'no.such.module'"):
        discover_domains()
