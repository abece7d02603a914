"""Inventory control: the reference domain.

Single store with lost sales and a lead time (this slice), with an exact DP optimum, the
base-stock family, the myopic policy and HDPO-trained networks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.policy import Policy
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import AlgoSpec, DomainSpec, PolicySpec, TrainOutcome, register_domain
from decisionlab.domains.inventory.metrics import METRICS, episode_metrics
from decisionlab.domains.inventory.policies import MyopicPolicy, OptimalLostSalesPolicy, OrderMLP
from decisionlab.domains.inventory.scenario import SCENARIOS, LostSalesScenario
from decisionlab.domains.inventory.search import best_base_stock, best_capped_base_stock
from decisionlab.domains.inventory.sim import SingleStoreSim
from decisionlab.domains.inventory.train import HDPOOptions


def _lost_sales(scenario: Scenario) -> LostSalesScenario:
    if not isinstance(scenario, LostSalesScenario):
        raise DecisionlabError(f"this policy needs a lost_sales scenario, not {type(scenario).__name__}")
    return scenario


def _train_hdpo(
    scenario: Scenario, seed: int, device: torch.device, progress: bool, options: Mapping[str, Any]
) -> TrainOutcome:
    from decisionlab.core.scenario import resolve_options
    from decisionlab.domains.inventory.train import HDPOOptions, HDPOSettings, train_hdpo

    chosen = resolve_options(HDPOOptions, options, "hdpo option")
    overrides = chosen.model_dump(exclude={"quality"}, exclude_none=True)
    settings = HDPOSettings.preset(chosen.quality, **overrides)
    return train_hdpo(_lost_sales(scenario), seed, device, progress, settings=settings)


def load_policy(
    config: dict[str, Any], weights: dict[str, torch.Tensor], scenario: Scenario, device: torch.device
) -> Policy:
    """Rebuild a registered network and check it can act in ``scenario``."""
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
        scenarios=SCENARIOS,
        policies={
            "base_stock": PolicySpec(
                "base_stock", "order up to the best base-stock level (found by simulation search)",
                lambda s, d: best_base_stock(_lost_sales(s)),
            ),
            "capped_base_stock": PolicySpec(
                "capped_base_stock", "base-stock with an order cap; best (level, cap) by search",
                lambda s, d: best_capped_base_stock(_lost_sales(s)),
            ),
            "myopic": PolicySpec(
                "myopic", "minimise the expected cost of the period the order arrives in",
                lambda s, d: MyopicPolicy(_lost_sales(s), d),
            ),
            "optimal": PolicySpec(
                "optimal", "exact dynamic-programming optimum (Poisson demand, small lead times)",
                lambda s, d: OptimalLostSalesPolicy(_lost_sales(s), d),
            ),
        },
        algos={
            "hdpo": AlgoSpec(
                "hdpo", "pathwise gradients through the simulator (HDPO), MLP policy", _train_hdpo, HDPOOptions
            )
        },
        metrics=METRICS,
        primary_metric="cost_per_period",
        episode_metrics=episode_metrics,
        make_simulator=SingleStoreSim,
        load_policy=load_policy,
        default_episodes=64,
        default_scenario="lost_sales",
        default_algo="hdpo",
        router=_router,
        dashboard="decisionlab.domains.inventory.dashboard",
    )
)
