"""The ``lob_replay`` scenario: quoting against a replay of order-book data.

**Data.** ``data_path = "sample"`` reads the SYNTHETIC sample shipped in ``replay/sample/`` (see
:mod:`.generate_sample`; four hours of a simulated 1-s book in tardis format, and half an hour in
LOBSTER format); ``"synthetic_days"`` the longer SYNTHETIC data set of the same generator (32.5 h
in tardis format, generated into the cache on first use, :mod:`.synthetic_days`); anything else is
the user's own folder or file in ``data_format`` (:mod:`.data` describes both formats and every check).

**Time.** The data is replayed on a clock of ``step_seconds``; one step of the scenario is ``dt`` of
its time units, so a time unit is ``step_seconds / dt`` seconds of data and an episode is
``steps = horizon / dt`` steps, i.e. ``horizon · step_seconds / dt`` seconds. The preset takes
``dt = step_seconds = 1``: time in seconds, ``horizon = 600`` is a 10-minute episode, σ is per
√second and A is fills per second. σ, A and k only feed the closed-form baselines (AS, GLFT); the
replay itself never reads them, so after changing ``step_seconds``, ``dt`` or the data, re-estimate
them with :func:`.calibration.calibrated`.

**Split.** The first ``train_fraction`` of the snapshots is the training part, the rest is held
out: a simulator built for ``split="test"`` holds only held-out rows, and one for ``"train"`` only
training rows, so nothing trained on one can read the other (:mod:`.sim`).

**Evaluation windows.** Training draws episodes at random start rows (they may overlap); the
evaluation tiles the held-out part into disjoint windows (:func:`held_out_windows` of them) and
scores one episode per window, so its episodes are as independent as the data allows and its
confidence intervals mean what they say. Asking for more episodes than windows is refused.

``initial_price`` is not used by the replay (the mid comes from the data); the preset sets it to the
sample's first mid for the serving examples.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from decisionlab.core import ScenarioError, server_path
from decisionlab.domains.market_making.params import QuotingScenario
from decisionlab.domains.market_making.replay.data import DataFormat, ReplayData, infer_tick, load_replay
from decisionlab.domains.market_making.replay.generate_sample import SAMPLE_DIR
from decisionlab.domains.market_making.replay.synthetic_days import SYNTHETIC_DAYS, ensure_days

SAMPLE = "sample"
QueueModel = Literal["pessimistic", "proportional"]


class ReplayScenario(QuotingScenario):
    """Quoting against replayed order-book data (see the module docstring for time, data and split)."""

    data_path: str = server_path("'sample': the shipped SYNTHETIC sample; 'synthetic_days': 32.5 h of the same "
                                 "generator (tardis; generated into the cache on first use); else a folder holding "
                                 "one pair of files, or one file of the pair, in data_format", SAMPLE, min_length=1,
                                 max_length=4096)
    data_format: DataFormat = Field("tardis", description="'tardis' (incremental_book_L2 + trades CSVs) or "
                                    "'lobster' (message + orderbook files)")
    book_levels: int = Field(15, ge=1, le=100, description="levels per side read from the data (LOBSTER: at most "
                             "the file's)")
    tick_size: float | None = Field(None, gt=0, le=1e6, allow_inf_nan=False,
                                    description="price tick (price units); null = the data's own tick")
    step_seconds: float = Field(1.0, gt=0, le=3600, allow_inf_nan=False,
                                description="seconds of data per step (the replay clock); a step is dt time units")
    latency_steps: int = Field(0, ge=0, le=1000, description="quotes decided at step t are active from step "
                               "t + latency_steps (0: at once)")
    quote_size: float = Field(1.0, gt=0, le=1e9, allow_inf_nan=False, description="units per quote on each side")
    taker_fee_rate: float = Field(0.002, ge=0, le=0.1, allow_inf_nan=False,
                                  description="taker fee (fraction of notional) paid when flatten_at_end "
                                  "liquidates the inventory")
    flatten_at_end: bool = Field(False, strict=True,
                                 description="liquidate the inventory left at the end against the book (crossing "
                                 "the spread, paying taker_fee_rate) instead of marking it at the mid")
    queue_model: QueueModel = Field("pessimistic", description="'pessimistic': only trades advance a quote in its "
                                    "queue; 'proportional': cancellations at its level advance it in proportion too")
    train_fraction: float = Field(0.7, gt=0, lt=1, allow_inf_nan=False,
                                  description="first fraction of the data used for training; the rest is held out "
                                  "for evaluation")

    @model_validator(mode="after")
    def _latency_within_episode(self) -> ReplayScenario:
        if self.latency_steps >= self.steps:
            raise ValueError(f"latency_steps ({self.latency_steps}) must be shorter than the episode "
                             f"({self.steps} steps = horizon/dt)")
        return self

    @property
    def seconds_per_time_unit(self) -> float:
        """Seconds of data in one time unit: ``step_seconds / dt``."""
        return self.step_seconds / self.dt

    @property
    def episode_seconds(self) -> float:
        """Seconds of data an episode replays: ``steps · step_seconds``."""
        return self.steps * self.step_seconds


def data_location(scenario: ReplayScenario) -> Path:
    """Where the scenario's files are: the sample folder for ``"sample"``, the cached (generated on first
    use) folder for ``"synthetic_days"``, else ``data_path``."""
    if scenario.data_path == SAMPLE:
        return SAMPLE_DIR
    if scenario.data_path == SYNTHETIC_DAYS:
        return ensure_days()
    return Path(scenario.data_path)


def replay_data(scenario: ReplayScenario) -> ReplayData:
    """The scenario's data on its clock (cached by :func:`.data.load_replay`)."""
    return load_replay(data_location(scenario), scenario.data_format, scenario.step_seconds, scenario.book_levels)


def split_row(train_fraction: float, snapshots: int) -> int:
    """First held-out snapshot: ``floor(train_fraction · N)``. Training rows ``[0, split)``, held-out
    rows ``[split, N)``."""
    return int(math.floor(train_fraction * snapshots))


def tick_of(scenario: ReplayScenario, data: ReplayData) -> float:
    """``tick_size``, or the data's own tick when unset."""
    return float(scenario.tick_size) if scenario.tick_size is not None else infer_tick(data)


def disjoint_windows(rows: int, steps: int) -> int:
    """Disjoint episodes of ``steps`` steps in ``rows`` snapshots: window w plays rows ``w·steps .. (w + 1)·steps``
    (consecutive windows share a boundary snapshot, no step)."""
    return max(0, (rows - 1) // steps)


def held_out_windows(scenario: ReplayScenario) -> int:
    """Disjoint episodes of the held-out part: the most an evaluation scores (``ScenarioError`` naming the
    fields when not even one fits, :func:`check_data`)."""
    check_data(scenario)
    data = replay_data(scenario)
    return disjoint_windows(data.snapshots - split_row(scenario.train_fraction, data.snapshots), scenario.steps)


@lru_cache(maxsize=16)
def check_data(scenario: ReplayScenario) -> None:
    """Load the data and check that both parts hold an episode (``ScenarioError`` naming the fields)."""
    data = replay_data(scenario)
    split = split_row(scenario.train_fraction, data.snapshots)
    parts = {"training": split, "held-out": data.snapshots - split}
    for part, rows in parts.items():
        if rows < scenario.steps + 1:
            raise ScenarioError(
                f"horizon/dt/train_fraction: an episode of {scenario.steps} steps needs {scenario.steps + 1} "
                f"snapshots but the {part} part has {rows} (the data has {data.snapshots} snapshots of "
                f"{scenario.step_seconds:g} s; train_fraction={scenario.train_fraction:g})")


PRESETS: dict[str, ReplayScenario] = {
    # The shipped SYNTHETIC sample (4 h of a 1-s book, tick 0.01, 15 levels): 10-minute episodes,
    # time in seconds, |q| ≤ 10, one unit per quote, no latency, no fees; the first 70% (2.8 h)
    # trains, the last 1.2 h is held out. σ, A and k are :func:`.calibration.calibrate` of the
    # training part (σ from the 1-s mid moves, A and k from the fills of quotes held at fixed depths);
    # γ is set so that Avellaneda–Stoikov skews by about a tick at |q| = 5 halfway through an episode
    # (q·γ·σ²·(T − t) = 5 · 0.25 · 0.005265² · 300 ≈ 0.0104).
    "lob_replay": ReplayScenario(
        data_path=SAMPLE, data_format="tardis", horizon=600.0, dt=1.0, step_seconds=1.0,
        sigma=0.005265, fill_intensity_a=0.1112, fill_decay_k=86.15, risk_aversion=0.25,
        max_inventory=10, initial_price=100.0,
    ),
    # The long SYNTHETIC data set (:mod:`.synthetic_days`: 5 × 6.5 h of the same generator, another seed;
    # generated into the cache on first use, about 16 s): the same episodes and bounds; the first 70%
    # (22.75 h) trains, the last 9.75 h is held out: 58 disjoint 10-minute windows. σ, A and k are
    # :func:`.calibration.calibrate` of its training part, recomputed with
    #   python -c "from decisionlab.domains.market_making.replay.calibration import calibrate; \
    #   from decisionlab.domains.market_making.replay.scenario import PRESETS, replay_data; \
    #   p = PRESETS['lob_replay_days']; print(calibrate(replay_data(p), p))"
    # (σ = 0.0057795, A = 0.097379, k = 72.350); γ by the lob_replay rule: a tick of skew at |q| = 5
    # halfway through an episode, 5 · 0.2 · 0.00578² · 300 ≈ 0.0100.
    "lob_replay_days": ReplayScenario(
        data_path=SYNTHETIC_DAYS, data_format="tardis", horizon=600.0, dt=1.0, step_seconds=1.0,
        sigma=0.005780, fill_intensity_a=0.09738, fill_decay_k=72.35, risk_aversion=0.2,
        max_inventory=10, initial_price=100.0,
    ),
}
