"""The single-store setting: one store, one product, lost sales, a fixed lead time, i.i.d. demand.

- :mod:`.scenario`: :class:`LostSalesScenario` and the ``lost_sales`` preset (Zipkin 2008);
- :mod:`.sim`: the batched simulator (the shared store-period of :mod:`..dynamics`);
- :mod:`.policies`: base-stock, capped base-stock, myopic, the exact DP optimum (:mod:`.dp`,
  :mod:`.demand`; levels by :mod:`.search`) and the HDPO order network;
- :mod:`.contextual`: one network for a whole range of lead times, costs and demand means;
- :mod:`.train` / :mod:`.contextual_train`: HDPO and contextual HDPO;
- :mod:`.metrics`, :mod:`.serve`, :mod:`.view`: KPIs, the serving converters, the dashboard tab.
"""

from __future__ import annotations

from decisionlab.core import AlgoSpec, NotTractableError, PolicySpec, SettingSpec, ViewSpec
from decisionlab.domains.inventory.single_store.contextual_train import ContextualHDPOOptions, algo_hdpo_contextual
from decisionlab.domains.inventory.single_store.dp import check_budget
from decisionlab.domains.inventory.single_store.metrics import METRICS, episode_metrics
from decisionlab.domains.inventory.single_store.policies import MyopicPolicy, OptimalLostSalesPolicy, myopic_over_budget
from decisionlab.domains.inventory.single_store.scenario import SCENARIOS, LostSalesScenario
from decisionlab.domains.inventory.single_store.search import best_base_stock, best_capped_base_stock
from decisionlab.domains.inventory.single_store.serve import SERVING
from decisionlab.domains.inventory.single_store.sim import SingleStoreSim
from decisionlab.domains.inventory.single_store.train import HDPOOptions, algo_hdpo

HERE = "decisionlab.domains.inventory.single_store"


def dp_serves(scenario: LostSalesScenario) -> str | None:
    """Why the exact DP cannot serve ``scenario``: continuous demand, or more memory than the budget."""
    if scenario.demand_distribution != "poisson":
        return "the exact DP ('optimal') needs integer demand: set demand_distribution=poisson"
    try:
        check_budget(scenario.lead_time, scenario.holding_cost, scenario.underage_cost, scenario.demand_mean)
    except NotTractableError as err:
        return str(err)
    return None


SETTING = SettingSpec(
    name="single_store",
    title="Single store",
    description="one store, lost sales, lead time L >= 0, Poisson or normal demand; exact DP optimum",
    scenario_model=LostSalesScenario,
    presets=SCENARIOS,
    make_simulator=lambda scenario, device: SingleStoreSim(scenario, device),
    episode_metrics=episode_metrics,
    metrics=METRICS,
    primary_metric="cost_per_period",
    policies={
        "base_stock": PolicySpec("base_stock", "order up to the best base-stock level (found by simulation search)",
                                 lambda s, d: best_base_stock(s), expensive=True),
        "capped_base_stock": PolicySpec("capped_base_stock", "base-stock with an order cap; best (level, cap) by "
                                        "search", lambda s, d: best_capped_base_stock(s), expensive=True),
        "myopic": PolicySpec("myopic", "minimise the expected cost of the period the order arrives in",
                             lambda s, d: MyopicPolicy(s, d), check=myopic_over_budget),
        "optimal": PolicySpec("optimal", "exact dynamic-programming optimum (Poisson demand, small lead times)",
                              lambda s, d: OptimalLostSalesPolicy(s, d), check=dp_serves, expensive=True),
    },
    algos={
        "hdpo": AlgoSpec("hdpo", "pathwise gradients through the simulator (HDPO), MLP order policy", algo_hdpo,
                         HDPOOptions, smoke_options={"max_steps": 3, "batch_size": 32}),
        "hdpo_contextual": AlgoSpec(
            "hdpo_contextual", "one HDPO policy over a range of lead times, costs and demand means (context as "
            "features); serves any lost_sales scenario in that range", algo_hdpo_contextual, ContextualHDPOOptions,
            smoke_options={"max_steps": 3, "batch_size": 32}),
    },
    policy_kinds={
        "order_mlp": f"{HERE}.policies:OrderMLP",
        "contextual_order_mlp": f"{HERE}.contextual:ContextualOrderMLP",
    },
    serving=SERVING,
    views=(
        ViewSpec("Paths and order curve", f"{HERE}.view:paths_tab"),
        ViewSpec("Cost breakdown", "decisionlab.domains.inventory.views:cost_breakdown_tab"),
    ),
    default_policies=("optimal", "base_stock", "myopic"),
    default_episodes=64,
    quick={"horizon_periods": 1000, "warmup_periods": 200},
    smoke={"horizon_periods": 300, "warmup_periods": 50},
    input_limits={"lead_time": (0, 8)},  # the exact DP and the myopic policy stay quick up to here
)
