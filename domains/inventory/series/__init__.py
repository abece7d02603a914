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
- :mod:`.baselines`: base-stock, capped base-stock, myopic, the newsvendor family (fixed,
  newsvendor and transformed quantile) and the just-in-time oracle (non-admissible).
- :mod:`.train`: the data-driven HDPO policy (an MLP over the window, shared by all series).
"""

from __future__ import annotations

from decisionlab.domains.inventory.series.scenario import SCENARIOS, RealSeriesScenario

__all__ = ["SCENARIOS", "RealSeriesScenario"]
