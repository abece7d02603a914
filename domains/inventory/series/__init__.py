"""The ``real_series`` inventory setting: one store-item per series, demand from time series.

Many independent store-item series are simulated as one batch. Demand is a real (or realistic)
daily sales history instead of an i.i.d. distribution, so a policy that looks at the recent past
(a window of demand, the calendar, the promotion plan) can beat one that does not.

Modules:

- :mod:`.generator`: a documented, seeded generator of daily unit sales (level × trend × weekly
  and yearly seasonality × promotion uplift, negative-binomial noise, intermittent series).
- :mod:`.loader`: read a user's sales file (CSV or parquet) with clear errors; turn it into
  ``demand [n_series, T]`` tensors.
- :mod:`.scenario`: the validated parameters (costs, lead time, window, train/held-out split) and
  the data they point at.
- :mod:`.sim`: the batched simulator over (series, period) and the held-out evaluation.
- :mod:`.forecast`: an empirical seasonal quantile forecast of lead-time demand from the window.
- :mod:`.policies`: base-stock, capped base-stock, myopic, the newsvendor family (fixed,
  newsvendor and transformed quantile), the just-in-time oracle (non-admissible) and the HDPO
  network over the demand window (shared by all series); :mod:`.fit`: the baselines' fits on the
  training span.
- :mod:`.train`: data-driven HDPO.
- :mod:`.metrics`, :mod:`.serve`, :mod:`.view`: held-out KPIs, serving converters, the dashboard tab.
"""

from __future__ import annotations

from decisionlab.core import AlgoSpec, PolicySpec, SettingSpec, ViewSpec
from decisionlab.domains.inventory.series.metrics import METRICS, episode_metrics
from decisionlab.domains.inventory.series.policies import SERIES_POLICIES
from decisionlab.domains.inventory.series.scenario import SCENARIOS, RealSeriesScenario
from decisionlab.domains.inventory.series.serve import SERVING
from decisionlab.domains.inventory.series.sim import SeriesSim
from decisionlab.domains.inventory.series.train import SeriesHDPOOptions, algo_hdpo

HERE = "decisionlab.domains.inventory.series"
FITTED = ("base_stock", "capped_base_stock", "fixed_quantile", "transformed_quantile")  # searched on first use

SETTING = SettingSpec(
    name="series",
    title="Real series",
    description="many store-items with demand replayed from sales history (your own CSV/parquet included); "
    "held-out evaluation after a date split",
    scenario_model=RealSeriesScenario,
    presets=SCENARIOS,
    # Generic training (the gymnasium adapter) never sees held-out data.
    make_simulator=lambda scenario, device: SeriesSim(scenario, device, split="train"),
    episode_metrics=episode_metrics,
    metrics=METRICS,
    primary_metric="cost_per_period",
    policies={
        name: PolicySpec(name, description, build, admissible=admissible, expensive=name in FITTED)
        for name, (description, build, admissible) in SERIES_POLICIES.items()
    },
    algos={
        "hdpo": AlgoSpec("hdpo", "pathwise gradients through the replayed history (HDPO), one network over the demand "
                         "window shared by every series", algo_hdpo, SeriesHDPOOptions,
                         smoke_options={"max_steps": 3, "batch_size": 16}),
    },
    policy_kinds={"series_order_mlp": f"{HERE}.policies:SeriesOrderNet"},
    serving=SERVING,
    views=(
        ViewSpec("Forecast vs orders", f"{HERE}.view:series_tab"),
        ViewSpec("Cost breakdown", "decisionlab.domains.inventory.views:cost_breakdown_tab"),
    ),
    default_policies=("newsvendor_quantile", "myopic", "just_in_time"),
    default_episodes=256,
    episode_label="Series scored",
    smoke={"synthetic_items": 2, "synthetic_stores": 2, "synthetic_days": 400},
)

__all__ = ["SCENARIOS", "SETTING", "RealSeriesScenario"]
