"""Inventory control: the reference domain.

Single store with lost sales and a lead time, with an exact DP optimum, the base-stock family,
the myopic policy and HDPO-trained networks; and ``real_series`` (:mod:`.series`): many store-items
whose demand is replayed from sales history, with the newsvendor family on a quantile forecast,
a just-in-time oracle and a data-driven HDPO network over the demand window. Shared policy names
(``base_stock``, ``capped_base_stock``, ``myopic``, the ``hdpo`` algorithm, metrics, simulator,
registry loading) dispatch on the scenario's class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.policy import Policy
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import AlgoSpec, DomainSpec, PolicySpec, TrainOutcome, register_domain
from decisionlab.domains.inventory.contextual_train import ContextualHDPOOptions
from decisionlab.domains.inventory.metrics import METRICS, episode_metrics
from decisionlab.domains.inventory.network.metrics import NETWORK_METRICS
from decisionlab.domains.inventory.network.scenario import NETWORK_SCENARIOS, NetworkScenario
from decisionlab.domains.inventory.policies import MyopicPolicy, OptimalLostSalesPolicy, OrderMLP
from decisionlab.domains.inventory.scenario import SCENARIOS, LostSalesScenario
from decisionlab.domains.inventory.search import best_base_stock, best_capped_base_stock
from decisionlab.domains.inventory.series.scenario import SCENARIOS as SERIES_SCENARIOS
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario
from decisionlab.domains.inventory.sim import SingleStoreSim
from decisionlab.domains.inventory.train import HDPOOptions


def _lost_sales(scenario: Scenario) -> LostSalesScenario:
    if not isinstance(scenario, LostSalesScenario):
        raise DecisionlabError(f"this policy needs a lost_sales scenario, not {type(scenario).__name__}")
    return scenario


def _network(scenario: Scenario) -> NetworkScenario:
    if not isinstance(scenario, NetworkScenario):
        raise DecisionlabError(
            "this policy needs a network scenario (backlog, serial, one_warehouse, transshipment, "
            f"multi_warehouse), not {type(scenario).__name__}"
        )
    return scenario


def _network_policy(name: str):
    """Builder of the network baseline ``name`` (imported lazily: the level search runs on first use)."""

    def build(scenario: Scenario, device: torch.device) -> Policy:
        from decisionlab.domains.inventory.network.baselines import network_baseline

        return network_baseline(name, _network(scenario), device)

    return build


def _series(scenario: Scenario) -> RealSeriesScenario:
    if not isinstance(scenario, RealSeriesScenario):
        raise DecisionlabError(f"this policy needs a real_series scenario, not {type(scenario).__name__}")
    return scenario


def _series_policy(name: str):
    """Builder of the ``real_series`` baseline ``name`` (imported lazily: the fits run on first use)."""

    def build(scenario: Scenario, device: torch.device) -> Policy:
        from decisionlab.domains.inventory.series.baselines import SERIES_POLICIES

        return SERIES_POLICIES[name][1](_series(scenario), device)

    return build


def _by_scenario(single, name: str):
    """A shared policy name: the single-store builder, or the ``real_series`` one of the same name."""
    series = _series_policy(name)
    network = _network_policy(name) if name == "base_stock" else None

    def build(scenario: Scenario, device: torch.device) -> Policy:
        if network is not None and isinstance(scenario, NetworkScenario):
            return network(scenario, device)
        return series(scenario, device) if isinstance(scenario, RealSeriesScenario) else single(scenario, device)

    return build


def _episode_metrics(scenario: Scenario, policy: Policy, episodes: int, seed: int, device: torch.device):
    if isinstance(scenario, NetworkScenario):
        from decisionlab.domains.inventory.network.metrics import network_episode_metrics

        return network_episode_metrics(scenario, policy, episodes, seed, device)
    if isinstance(scenario, RealSeriesScenario):
        from decisionlab.domains.inventory.series.sim import episode_metrics as series_episode_metrics

        return series_episode_metrics(scenario, policy, episodes, seed, device)
    return episode_metrics(_lost_sales(scenario), policy, episodes, seed, device)


def _make_simulator(scenario: Scenario, device: torch.device):
    if isinstance(scenario, NetworkScenario):
        from decisionlab.domains.inventory.network.sim import NetworkSim

        return NetworkSim(scenario, device)
    if isinstance(scenario, RealSeriesScenario):
        from decisionlab.domains.inventory.series.sim import SeriesSim

        return SeriesSim(scenario, device, split="train")  # generic training never sees held-out data
    return SingleStoreSim(_lost_sales(scenario), device)


def _train_hdpo(
    scenario: Scenario, seed: int, device: torch.device, progress: bool, options: Mapping[str, Any]
) -> TrainOutcome:
    from decisionlab.core.scenario import resolve_options
    from decisionlab.domains.inventory.train import NETWORK_ONLY_OPTIONS, HDPOOptions, HDPOSettings, train_hdpo

    chosen = resolve_options(HDPOOptions, options, "hdpo option")
    if isinstance(scenario, RealSeriesScenario):
        from decisionlab.domains.inventory.series.train import settings_from_options, train_series_hdpo

        settings = settings_from_options(chosen.model_dump())
        return train_series_hdpo(scenario, seed, device, progress, settings=settings)
    if isinstance(scenario, NetworkScenario):
        from decisionlab.domains.inventory.network.train import network_settings_from_options, train_network_hdpo

        settings = network_settings_from_options(scenario, chosen.model_dump())
        return train_network_hdpo(scenario, seed, device, progress, settings=settings)
    overrides = chosen.model_dump(exclude={"quality"}, exclude_none=True)
    network_only = [key for key in NETWORK_ONLY_OPTIONS if key in overrides]
    if network_only:
        raise DecisionlabError(f"hdpo option(s) {', '.join(network_only)} apply to network scenarios only")
    settings = HDPOSettings.preset(chosen.quality, **overrides)
    return train_hdpo(_lost_sales(scenario), seed, device, progress, settings=settings)


def _train_hdpo_contextual(
    scenario: Scenario, seed: int, device: torch.device, progress: bool, options: Mapping[str, Any]
) -> TrainOutcome:
    from decisionlab.domains.inventory.contextual_train import train_contextual_for_scenario

    return train_contextual_for_scenario(_lost_sales(scenario), seed, device, progress, options)


def load_policy(
    config: dict[str, Any], weights: dict[str, torch.Tensor], scenario: Scenario, device: torch.device
) -> Policy:
    """Rebuild a registered network and check it can act in ``scenario``."""
    if config.get("kind") == "series_order_mlp":
        from decisionlab.domains.inventory.series.train import load_series_policy

        return load_series_policy(config, weights, _series(scenario), device)
    if config.get("kind") in ("network_mlp", "network_symmetry", "network_gnn"):
        from decisionlab.domains.inventory.network.train import load_network_policy

        return load_network_policy(config, weights, scenario, device)  # checks the scenario's network
    if config.get("kind") == "contextual_order_mlp":
        from decisionlab.domains.inventory.contextual import load_contextual_policy

        return load_contextual_policy(config, weights, _lost_sales(scenario), device)
    if config.get("kind") != "order_mlp":
        raise DecisionlabError(f"unknown inventory network kind {config.get('kind')!r}")
    scenario = _lost_sales(scenario)
    if int(config["lead_time"]) != scenario.lead_time:
        raise DecisionlabError(
            f"this policy was trained for lead_time={config['lead_time']}, the scenario has "
            f"lead_time={scenario.lead_time}: train one for this lead time"
        )
    net = OrderMLP(
        config["lead_time"], config["demand_scale"], tuple(config["hidden"]),
        integer_orders=bool(config.get("integer_orders", False)),
        order_offset=float(config.get("order_offset", 0.0)),
    )
    net.load_state_dict(weights)
    return net.to(device).eval()


def _router():
    from decisionlab.domains.inventory.api import build_router

    return build_router()


SPEC = register_domain(
    DomainSpec(
        name="inventory",
        title="Inventory control",
        description="Order stock under lead times and uncertain demand; lost sales or backlog.",
        scenarios={**SCENARIOS, **SERIES_SCENARIOS, **NETWORK_SCENARIOS},
        policies={
            "base_stock": PolicySpec(
                "base_stock", "order up to the best base-stock level (found by simulation search; per series "
                "on the training span for real_series)",
                _by_scenario(lambda s, d: best_base_stock(_lost_sales(s)), "base_stock"),
            ),
            "capped_base_stock": PolicySpec(
                "capped_base_stock", "base-stock with an order cap; best (level, cap) by search",
                _by_scenario(lambda s, d: best_capped_base_stock(_lost_sales(s)), "capped_base_stock"),
            ),
            "myopic": PolicySpec(
                "myopic", "minimise the expected cost of the period the order arrives in",
                _by_scenario(lambda s, d: MyopicPolicy(_lost_sales(s), d), "myopic"),
            ),
            "fixed_quantile": PolicySpec(
                "fixed_quantile", "real_series: order up to one quantile of forecast lead-time demand "
                "(level fitted on the training span)", _series_policy("fixed_quantile"),
            ),
            "newsvendor_quantile": PolicySpec(
                "newsvendor_quantile", "real_series: order up to the p/(p+h) quantile of forecast lead-time demand",
                _series_policy("newsvendor_quantile"),
            ),
            "transformed_quantile": PolicySpec(
                "transformed_quantile", "real_series: order up to the σ(a + b·logit(p/(p+h))) quantile of forecast "
                "lead-time demand ((a, b) fitted on the training span)", _series_policy("transformed_quantile"),
            ),
            "just_in_time": PolicySpec(
                "just_in_time", "real_series oracle: reads the future and orders the arrival period's demand "
                "(lower bound, non-admissible)", _series_policy("just_in_time"), admissible=False,
            ),
            "optimal": PolicySpec(
                "optimal", "exact dynamic-programming optimum (Poisson demand, small lead times)",
                lambda s, d: OptimalLostSalesPolicy(_lost_sales(s), d),
            ),
            "echelon_stock": PolicySpec(
                "echelon_stock", "networks: warehouses/centres order up to an echelon level (their stock + "
                "everything downstream, in transit included), stores up to a local level; levels by "
                "coordinate search on common random numbers", _network_policy("echelon_stock"),
            ),
            "capped_echelon_stock": PolicySpec(
                "capped_echelon_stock", "one_warehouse / multi_warehouse: echelon_stock with a cap on each "
                "store's order; levels and caps by coordinate search", _network_policy("capped_echelon_stock"),
            ),
            "newsvendor_echelon": PolicySpec(
                "newsvendor_echelon", "networks, no search: echelon_stock at newsvendor-style levels (mean + z std "
                "of the demand each echelon position covers)", _network_policy("newsvendor_echelon"),
            ),
            "newsvendor_local": PolicySpec(
                "newsvendor_local", "networks, no search: base_stock on local positions at newsvendor-style levels",
                _network_policy("newsvendor_local"),
            ),
            "critical_fractile": PolicySpec(
                "critical_fractile", "backlog: the closed-form base-stock level mu(L+1) + z sigma sqrt(L+1)",
                _network_policy("critical_fractile"),
            ),
        },
        algos={
            "hdpo": AlgoSpec(
                "hdpo", "pathwise gradients through the simulator (HDPO); networks: vanilla MLP, symmetry-aware or GNN "
                "policy (--algo-set architecture=...)", _train_hdpo, HDPOOptions
            ),
            "hdpo_contextual": AlgoSpec(
                "hdpo_contextual", "one HDPO policy over a range of lead times, costs and demand means "
                "(context as features); serves any lost_sales scenario in that range",
                _train_hdpo_contextual, ContextualHDPOOptions,
            ),
        },
        metrics={**METRICS, "backlog_cost_per_period": NETWORK_METRICS["backlog_cost_per_period"]},
        primary_metric="cost_per_period",
        episode_metrics=_episode_metrics,
        make_simulator=_make_simulator,
        load_policy=load_policy,
        default_episodes=64,
        default_scenario="lost_sales",
        default_algo="hdpo",
        router=_router,
        dashboard="decisionlab.domains.inventory.dashboard",
    )
)
