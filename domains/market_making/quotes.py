"""Observation and action layouts shared by every market-making setting, and quote helpers.

Observation ``[B, 6]`` (float), in this column order (:data:`OBSERVATION_FIELDS`):

====================  ===========  ===================================================================
field                 unit         meaning
====================  ===========  ===================================================================
``time_left``         time units   T − t at the start of the step (``(N − step)·dt``, never below 0)
``inventory``         units        q held before the step's fills
``mid_offset``        price units  s − s0: the mid since the start of the episode
``last_return``       price units  s_t − s_{t−1}: the mid move of the previous step (0 at the start)
``flow_imbalance``    in [−1, 1]   order-flow imbalance of the market (0 in the model setting)
``market_spread``     price units  best ask − best bid of the market (0 in the model setting)
====================  ===========  ===================================================================

Action ``[B, 2]`` (price units, :data:`ACTION_FIELDS`): the bid depth δ^b = s − bid and the ask depth
δ^a = ask − s. Depths may be negative: Avellaneda–Stoikov quotes through the mid at large |q|; the
fill probability is clipped to [0, 1], so a very negative depth fills for sure and only pays more.
"""

from __future__ import annotations

import math

import torch

from decisionlab.core import Box, Spaces
from decisionlab.domains.market_making.params import QuotingScenario

OBSERVATION_FIELDS = ("time_left", "inventory", "mid_offset", "last_return", "flow_imbalance", "market_spread")
OBS_TIME_LEFT, OBS_INVENTORY, OBS_MID_OFFSET, OBS_LAST_RETURN, OBS_FLOW_IMBALANCE, OBS_MARKET_SPREAD = range(6)
OBSERVATION_SIZE = len(OBSERVATION_FIELDS)

ACTION_FIELDS = ("bid_depth", "ask_depth")
ACT_BID, ACT_ASK = range(2)
ACTION_SIZE = len(ACTION_FIELDS)


def time_left(steps_done: torch.Tensor, scenario: QuotingScenario, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[B]`` T − t from the steps already taken ``[B]`` (long): ``(N − step)·dt``, clamped at 0.

    Every producer of observations (simulators, :func:`~decisionlab.domains.market_making.baselines.depth_table`)
    computes the time left this one way, so a (t, q) policy sees bit-identical inputs everywhere."""
    return (scenario.steps - steps_done).clamp_min(0).to(dtype) * scenario.dt


def observation(
    time_left: torch.Tensor,
    inventory: torch.Tensor,
    mid_offset: torch.Tensor | None = None,
    last_return: torch.Tensor | None = None,
    flow_imbalance: torch.Tensor | None = None,
    market_spread: torch.Tensor | None = None,
) -> torch.Tensor:
    """The observation ``[B, 6]`` from per-row values ``[B]`` (missing fields are 0), in the dtype and on
    the device of ``time_left``."""
    obs = torch.zeros(time_left.shape[0], OBSERVATION_SIZE, dtype=time_left.dtype, device=time_left.device)
    obs[:, OBS_TIME_LEFT] = time_left
    obs[:, OBS_INVENTORY] = inventory
    for column, value in ((OBS_MID_OFFSET, mid_offset), (OBS_LAST_RETURN, last_return),
                          (OBS_FLOW_IMBALANCE, flow_imbalance), (OBS_MARKET_SPREAD, market_spread)):
        if value is not None:
            obs[:, column] = value
    return obs


def quote_prices(mid: torch.Tensor, depths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bid, ask)`` prices ``[B]`` from the mid ``[B]`` and the depths ``[B, 2]``: bid = s − δ^b, ask = s + δ^a."""
    return mid - depths[:, ACT_BID], mid + depths[:, ACT_ASK]


def depths_from_prices(mid: torch.Tensor, bid: torch.Tensor, ask: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`quote_prices`: depths ``[B, 2]`` of the bid and ask prices ``[B]``."""
    return torch.stack([mid - bid, ask - mid], dim=1)


def depth_bounds(scenario: QuotingScenario) -> tuple[float, float]:
    """``(low, high)`` depth bounds (price units) for adapters and squashed policies; the simulators
    themselves take any depth.

    The fill probability of a depth δ is ``min(1, A·dt·exp(−k·δ))``. ``low = (min(ln(A·dt), 0) − 2)/k``
    lies 2/k below the depth where a fill becomes certain (and at most −2/k): deeper quotes fill no
    more often and only pay more. ``high = (max(ln(A·dt), 0) + 6)/k`` fills with probability at most
    e⁻⁶ ≈ 0.25% per step: effectively not quoting (what the GLFT baselines post on a side that the
    inventory bound closes). In the standard set-up (A·dt = 0.7, k = 1.5): about −1.57 and 4.0.
    """
    log_adt = math.log(scenario.fill_intensity_a * scenario.dt)
    k = scenario.fill_decay_k
    return (min(log_adt, 0.0) - 2.0) / k, (max(log_adt, 0.0) + 6.0) / k


def quoting_spaces(depth_low: float, depth_high: float) -> Spaces:
    """The spaces of every quoting simulator: the observation ``[6]`` and the depths ``[2]``, which
    the simulators take at any value; ``[depth_low, depth_high]`` is where learners and adapters
    squash their actions (:func:`depth_bounds`)."""
    return Spaces(
        observation=Box((OBSERVATION_SIZE,), description="time left, inventory, mid offset, last return, flow "
                        "imbalance, market spread"),
        action=Box((ACTION_SIZE,), unit="price units", span=(depth_low, depth_high),
                   description="bid depth s − bid, ask depth ask − s"),
    )
