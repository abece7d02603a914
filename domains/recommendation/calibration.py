"""The click and follow models calibrated to an interaction log by the method of simulated moments.

**Why simulated moments.** The simulator's click utility has terms a log does not show: each user's interest
(it drifts with every click), satisfaction, the item's quality and clickbait. A per-row regression of clicks on
what a log holds (the user's earlier clicks on the author, ...) would estimate a mixture of those terms and of
the selection they cause (a user clicks an author again *because* the author suits them), not the simulator's
``click_affinity``. Indirect inference sidesteps that: it summarises the log by statistics that the parameters
move (the *moments*), simulates logs under candidate parameters, summarises them the same way, and picks the
parameters whose simulated statistics are closest to the log's. The hidden terms are then integrated out by the
simulator itself, exactly as they act in it.

**The moments** (:func:`~.logs.funnel_moments`, per bucket "0", "1", "2-3", "4+" of the user's earlier clicks on
the author): the click-through rate per impression (``click_none`` sets its level, ``click_affinity`` its rise
with the history) and the follows per click (``follow_base`` sets its level, ``follow_affinity`` its rise).
Each moment is weighted by the inverse of its sampling variance: the log rate's, with the *users* as the sampled
units (a user who likes an author clicks it again and again, so at "4+" the binomial ``p(1 − p)/n`` is ~4 times
too small), floored by that binomial one (``p`` shrunk toward 1/2 by half a count, so an empty or all-zero cell
is not infinitely sure), plus the simulated rate's, taken to be the same per unit of its denominator. The
objective is then a chi-square-like sum: about (moments − parameters) at the best fit when the model is right.
Bucket "all" is not matched (it is the sum of the others); a bucket the log has no denominator for is left out.

**The fit.** :func:`calibrate` minimises that weighted squared distance with Nelder–Mead (``scipy.optimize``,
bounded by the scenario fields' bounds) from the scenario's current values, with common random numbers: every
candidate parameter vector is simulated with the same seed (the same users, slates and uniforms), so two
candidates differ by the parameters, not by the luck of the draw, and the objective is deterministic (though
rough at the scale of half a chi-square unit: a user whose history turns out otherwise draws fresh luck from then
on). The parameters act on very different scales (the click level moves the objective ~100 times more than the
follow slope), so the simplex's steps are scaled by each parameter's effect, measured at the start; and since a
Nelder–Mead simplex can collapse along a weak direction and stop short, each run ends with a probe half a step
each way in every parameter, and the fit restarts from a probe that is better by a chi-square unit. The fit uses
the first ``1 − holdout_fraction`` of the log's time span (:func:`~.logs.split_by_time`); the rest is held out
and compared afterwards, for the starting and the fitted parameters.

**Assumptions** (what a log must satisfy for the fit to mean anything):

- the logging policy is known and replayable: *random exposure* (every slate uniformly random among the
  candidates, as KuaiRand's ``log_random`` part). Where the log has ``is_rand``, only its rows with
  ``is_rand == 1`` are used (the histories are then those of random exposure too, as in the replay); a log
  without it is taken to be random exposure as a whole. A log served by a ranker would bias every moment (the
  ranker shows what it expects to be clicked) and cannot be replayed without its model;
- a request is one slate of the log's largest ``request_id`` size (1 without ``request_id``), out of the
  scenario's ``n_candidates``; everything else (catalog, satisfaction, sessions, ...) is the scenario's;
- the log starts with its users' first visits and covers them for its whole time span (as the simulator's
  episodes do): the simulated users all start at the log's first ``time_ms`` and are followed for its span;
- a ``user_id`` is one user: the replay's users are its batch rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
from scipy.optimize import minimize

from decisionlab.core import Progress, ScenarioError, Step, make_generator, run
from decisionlab.domains.recommendation.collect import MS_PER_HOUR
from decisionlab.domains.recommendation.logs import (
    BUCKETS,
    add_history_features,
    bucket_of,
    funnel_moments,
    split_by_time,
)
from decisionlab.domains.recommendation.scenario import RecommendationScenario
from decisionlab.domains.recommendation.sim import RecommendationSim, UserState

CALIBRATED: tuple[str, ...] = ("click_none", "click_affinity", "follow_base", "follow_affinity")
"""The parameters :func:`calibrate` fits by default: the click model's level and history slope, the follow
model's level and affinity slope."""
DEFAULT_USERS = 400
"""Simulated users per evaluation: ~0.5 s an evaluation on the ``small`` preset over 7 days, on one CPU core
(~36k requests, ~110k impressions). The simulation adds its own noise to the log's: with as many simulated users
as the log has, the fit's sampling error is ~1.4× the log's alone, with three times as many ~1.15×; so pass
``users`` ≈ 3× the log's users where the time allows (an evaluation's cost grows more slowly than its users)."""
MOMENTS: tuple[str, ...] = ("ctr", "follow_per_click")
"""The rates matched per bucket; their denominators are impressions and clicks."""
_DENOMINATOR = {"ctr": "impressions", "follow_per_click": "clicks"}
_NUMERATOR = {"ctr": "clicks", "follow_per_click": "follows"}
NEEDED_COLUMNS: tuple[str, ...] = ("user_id", "author_id", "time_ms", "is_click", "is_follow")
INITIAL_STEP = 0.5
"""The probe of each parameter's effect at the start: the calibrated parameters are utilities and log-odds, where
0.5 is a clear but not drastic change; the simplex's steps are scaled by the effects it measures."""
XATOL = 0.02
"""Parameters are resolved to this (well under the sampling error of any log worth calibrating to)."""
FATOL = 1.0
"""And the simplex's objective values to within this many chi-square units: a difference under one is no
evidence either way, and the simulated objective is rough at about half of that (a user whose history turns out
otherwise draws fresh luck from then on), so a tighter one only spends simulations on that roughness."""
EVALUATIONS_PER_PARAMETER = 60
RESTARTS = 3
"""Nelder-Mead restarts at most, from a point near where the previous run stopped that is better by at least
``RESTART_GAIN`` (:func:`calibrate`)."""
RESTART_GAIN = 1.0
"""An improvement of the objective that is evidence (a chi-square unit; less is the objective's roughness)."""
STEP_CHANGE = 3.0
"""A restart's simplex steps each parameter by what moves the weighted residuals by about this much (a change of
~9 in the objective near its minimum), so that the steps are alike in effect however weakly a parameter acts; the
checks for a restart probe half of it each way."""
STEP_RANGE = (0.05, 2.0)
CHUNK_STEPS = 32
"""The replay draws its uniforms this many requests at a time: a run over a longer horizon then draws the same
ones for the earlier requests (common random numbers between the fit's train window and the whole span)."""


@dataclass(frozen=True)
class Calibration:
    """The result of :func:`calibrate`.

    Attributes:
        scenario: the starting scenario with the fitted values (``model_copy(update=fitted)``).
        fitted, start: the calibrated parameters' values after and before the fit.
        moments: on the log's train part, per bucket ("0", "1", "2-3", "4+", then "all"): the log's counts
            ``impressions``, ``clicks``, ``follows``; ``log_X``, ``sim_X`` (fitted), ``start_X`` (the starting
            scenario) and ``X_error`` = ``|sim_X − log_X|`` for X in :data:`MOMENTS`; ``chi2`` and ``start_chi2``,
            each bucket's contribution to the score (null on "all", which is not fitted: it sums the others).
        held_out: the same on the held-out part (the last ``holdout_fraction`` of the log's time span), which
            the fit did not see; histories there include the train part's clicks.
        objective: the fitted train score (the minimised weighted squared distance); ``start_objective``: at
            the start.
        held_out_score, start_held_out_score: the held-out score of the fitted and of the starting scenario.
        evaluations: the fit's simulations of the train window (the start's included; not the two whole-span
            ones of the held-out check); ``converged``: the optimiser met its tolerances within its budget.
        users: simulated users per evaluation; ``log_users``, ``log_impressions``: the log's (train part);
        ``slate_size``, ``days``: the replay's slate and horizon; ``seconds``: the fit's wall time.
    """

    scenario: RecommendationScenario
    fitted: dict[str, float]
    start: dict[str, float]
    moments: pl.DataFrame
    held_out: pl.DataFrame
    objective: float
    start_objective: float
    held_out_score: float
    start_held_out_score: float
    evaluations: int
    converged: bool
    users: int
    log_users: int
    log_impressions: int
    slate_size: int
    days: int
    seconds: float


# ----- the log --------------------------------------------------------------------------------------------


def random_exposure(log: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``log`` served by random exposure: ``is_rand == 1`` where the column exists, else all."""
    return log.filter(pl.col("is_rand") == 1) if "is_rand" in log.columns else log


def slate_size_of(log: pl.DataFrame) -> int:
    """The log's largest slate: rows per ``request_id`` (a log without it has one row per request)."""
    if "request_id" not in log.columns or log.height == 0:
        return 1
    counts = log.filter(pl.col("request_id").is_not_null()).group_by("request_id").len()
    return int(counts["len"].max()) if counts.height else 1  # type: ignore[arg-type]


def _checked_log(scenario: RecommendationScenario, log: pl.DataFrame) -> pl.DataFrame:
    """``log``'s random-exposure rows, or :class:`ScenarioError` naming what makes the log unusable."""
    missing = [c for c in NEEDED_COLUMNS if c not in log.columns]
    if missing:
        raise ScenarioError(f"log: missing column(s) {', '.join(missing)} (calibration needs "
                            f"{', '.join(NEEDED_COLUMNS)}); the log has: {', '.join(log.columns) or 'none'}")
    rows = random_exposure(log)
    if rows.height == 0:
        raise ScenarioError("log: no random-exposure rows (is_rand == 1) to calibrate to" if "is_rand" in log.columns
                            else "log: no rows to calibrate to")
    nulls = [c for c in NEEDED_COLUMNS if rows[c].null_count()]
    if nulls:
        raise ScenarioError(f"log: column(s) {', '.join(nulls)} hold missing values")
    if int(rows["is_click"].cast(pl.Int64).sum()) == 0:
        raise ScenarioError("log: no clicks at all, so nothing identifies the click and follow models")
    slate = slate_size_of(rows)
    if slate > scenario.n_candidates:
        raise ScenarioError(f"log: slates of up to {slate} items, more than the scenario's n_candidates "
                            f"({scenario.n_candidates}) a request retrieves: raise n_candidates to at least {slate}")
    return rows


def _bounds(names: Sequence[str]) -> list[tuple[float, float]]:
    """Each parameter's (low, high) from the scenario field's constraints (``ge``/``gt``/``le``/``lt`` of its
    pydantic metadata; a strict bound moved inside)."""
    out = []
    for name in names:
        low, high = -math.inf, math.inf
        for rule in RecommendationScenario.model_fields[name].metadata:
            if getattr(rule, "ge", None) is not None:
                low = float(rule.ge)
            elif getattr(rule, "gt", None) is not None:
                low = float(rule.gt) + 1e-9
            elif getattr(rule, "le", None) is not None:
                high = float(rule.le)
            elif getattr(rule, "lt", None) is not None:
                high = float(rule.lt) - 1e-9
        out.append((low, high))
    return out


def _checked_parameters(parameters: Sequence[str]) -> tuple[str, ...]:
    names = tuple(parameters)
    if not names:
        raise ScenarioError("parameters: name at least one scenario parameter to calibrate")
    if len(set(names)) != len(names):
        raise ScenarioError(f"parameters: each at most once (got {', '.join(names)})")
    fields = RecommendationScenario.model_fields
    floats = sorted(name for name, field in fields.items() if field.annotation in (float, "float"))
    for name in names:
        if name not in fields or name not in floats:
            raise ScenarioError(f"parameters: {name!r} is not a real-valued scenario parameter; choose among "
                                f"{', '.join(floats)}")
    return names


# ----- the replay -----------------------------------------------------------------------------------------


class _Uniform:
    """Uniformly random slates of ``k`` of the present candidates (random exposure)."""

    def __init__(self, k: int, generator: torch.Generator) -> None:
        self.k, self.generator = k, generator

    def act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        keys = torch.rand(obs["candidates"].shape, generator=self.generator, device=obs["candidates"].device)
        return torch.topk(torch.where(obs["present"], keys, -1.0), self.k, dim=-1).indices


def simulated_log(scenario: RecommendationScenario, users: int, seed: int, *, slate_size: int | None = None,
                  days: int | None = None, start_ms: int = 0, device: torch.device | str = "cpu") -> pl.DataFrame:
    """A random-exposure log of ``users`` simulated users of ``scenario`` (slates of ``slate_size``, default
    the scenario's, over ``days``, default the scenario's), with the columns the moments need: ``user_id`` (the
    user's row: distinct users), ``author_id``, ``time_ms`` (from ``start_ms``), ``is_click``, ``is_follow``,
    ``request_id``. The same ``seed`` gives the same users, slates and uniforms (common random numbers)."""
    update: dict[str, Any] = {}
    if slate_size is not None:
        update["slate_size"] = slate_size
    if days is not None:
        update["days"] = days
    replayed = scenario.model_copy(update=update)
    if replayed.slate_size > replayed.n_candidates:
        raise ScenarioError(f"slate_size: {replayed.slate_size} is more than the {replayed.n_candidates} candidates "
                            "a request retrieves")
    sim = RecommendationSim(replayed, device)  # the uniform logger reads no feature: none is computed
    k = replayed.slate_size
    parts: list[tuple[torch.Tensor, ...]] = []

    def record(step: Step) -> None:
        state: UserState = step.state
        live = state.alive if step.alive is None else state.alive & step.alive
        rows = live.nonzero()[:, 0]
        authors = torch.gather(state.candidate_author, 1, step.action.long())
        info = step.result.info
        parts.append((rows, authors[rows], state.time_h[rows], info["clicked_position"][rows].long(),
                      info["follows"][rows].bool()))

    policy = _Uniform(k, torch.Generator(sim.device).manual_seed(seed))
    run(sim, policy, batch=users, generator=make_generator(seed, sim.device), hooks=[record], chunk=CHUNK_STEPS)
    user, authors, time_h, clicked, followed = (torch.cat(column).cpu() for column in zip(*parts, strict=True))
    n = user.shape[0]
    position = torch.arange(k)[None, :]
    click = position == clicked[:, None]  # [N, K]
    time_ms = (time_h * MS_PER_HOUR).round().long() + start_ms
    return pl.DataFrame({
        "user_id": user[:, None].expand(n, k).flatten().numpy(),
        "author_id": authors.flatten().numpy(),
        "time_ms": time_ms[:, None].expand(n, k).flatten().numpy(),
        "is_click": click.flatten().to(torch.int8).numpy(),
        "is_follow": (click & followed[:, None]).flatten().to(torch.int8).numpy(),
        "request_id": torch.arange(n)[:, None].expand(n, k).flatten().numpy(),
    })


# ----- moments and their distance -------------------------------------------------------------------------


def _counts(frame: pl.DataFrame) -> pl.DataFrame:
    """``bucket``, ``impressions``, ``clicks``, ``follows`` of :func:`~.logs.funnel_moments`."""
    return funnel_moments(frame).select("bucket", "impressions", "clicks", "follows")


def _minus(full: pl.DataFrame, part: pl.DataFrame) -> pl.DataFrame:
    """The counts of the rows of ``full`` not in ``part`` (counts add over rows, bucket by bucket)."""
    names = ("impressions", "clicks", "follows")
    return full.select("bucket", *(pl.col(c) - part[c] for c in names))


def _user_counts(frame: pl.DataFrame) -> pl.DataFrame:
    """``impressions``, ``clicks``, ``follows`` per ``user_id`` and ``bucket`` (the four and "all"): the counts
    of :func:`~.logs.funnel_moments` before they are summed over the users."""
    rows = add_history_features(frame).select(
        "user_id", bucket_of(pl.col("prior_author_clicks")).alias("bucket"),
        pl.col("is_click").cast(pl.Int64).alias("clicks"), pl.col("is_follow").cast(pl.Int64).alias("follows"))
    sums = [pl.len().cast(pl.Int64).alias("impressions"), pl.col("clicks").sum(), pl.col("follows").sum()]
    return pl.concat([rows.group_by("user_id", "bucket").agg(sums),
                      rows.group_by("user_id").agg(sums).select("user_id", pl.lit("all").alias("bucket"),
                                                                "impressions", "clicks", "follows")])


def _user_minus(full: pl.DataFrame, part: pl.DataFrame) -> pl.DataFrame:
    """:func:`_user_counts` of the rows of ``full`` not in ``part``."""
    names = ("impressions", "clicks", "follows")
    joined = full.join(part, on=["user_id", "bucket"], how="left", suffix="_part")
    return joined.select("user_id", "bucket", *(pl.col(c) - pl.col(f"{c}_part").fill_null(0) for c in names))


def _rates(counts: pl.DataFrame, users: pl.DataFrame | None = None) -> dict[str, np.ndarray]:
    """Per moment, the rate per bucket (``nan`` where its denominator is 0), its numerators and denominators,
    and with the per-user counts ``users`` the rate's variance (:func:`_variances`)."""
    out = {}
    for moment in MOMENTS:
        num = counts[_NUMERATOR[moment]].to_numpy().astype(float)
        den = counts[_DENOMINATOR[moment]].to_numpy().astype(float)
        out[moment] = np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)
        out[_DENOMINATOR[moment]] = den
        out[_NUMERATOR[moment]] = num
    if users is not None:
        out.update(_variances(counts, users))
    return out


def _variances(counts: pl.DataFrame, users: pl.DataFrame) -> dict[str, np.ndarray]:
    """``variance_X`` per bucket: the sampling variance of the log's rate X, with the users as the sampled units.

    A user's impressions are not independent draws (a user who likes an author clicks it again and again; at
    "4+" the binomial variance is ~4 times too small), so the variance is the ratio estimator's over users,
    ``Σ_u (y_u − R·n_u)² / N²``; floored by the binomial ``p(1 − p)/N``, with ``p`` shrunk by half a count
    toward 1/2 (an empty or all-zero cell is never infinitely sure)."""
    out = {}
    for moment in MOMENTS:
        num, den = _NUMERATOR[moment], _DENOMINATOR[moment]
        spread = users.group_by("bucket").agg(  # the sums inside agg are the bucket's: R = S / N
            ((pl.col(num) - pl.col(num).sum() / pl.col(den).sum() * pl.col(den)) ** 2).sum().alias("_ss"))
        ss = counts.select("bucket").join(spread, on="bucket", how="left", maintain_order="left")["_ss"]
        n = counts[den].to_numpy().astype(float)
        p = (counts[num].to_numpy().astype(float) + 0.5) / (n + 1.0)
        safe = np.maximum(n, 1.0)
        clustered = ss.fill_null(0.0).to_numpy().astype(float) / safe**2
        out[f"variance_{moment}"] = np.maximum(clustered, p * (1.0 - p) / safe)
    return out


def _residuals(log: dict[str, np.ndarray], sim: dict[str, np.ndarray],
               sim_denominators: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per moment and bucket, ``(log − sim) / sqrt(v·(1 + n_log/n_sim))``, ``v`` the log rate's variance: the
    simulated rate's is taken to be the same per unit of its denominator ``n_sim``. 0 where the log has no
    denominator (nothing to match); a simulated rate without a denominator counts as 0. ``sim_denominators``
    fixes ``n_sim`` (the fit's weights stay the same for every candidate)."""
    out = {}
    for moment in MOMENTS:
        den = _DENOMINATOR[moment]
        n_log, n_sim = log[den], (sim_denominators or sim)[den]
        ratio = np.divide(n_log, n_sim, out=np.zeros_like(n_log), where=n_sim > 0)
        gap = np.nan_to_num(log[moment]) - np.nan_to_num(sim[moment])
        out[moment] = np.where(n_log > 0, gap / np.sqrt(log[f"variance_{moment}"] * (1.0 + ratio)), 0.0)
    return out


def _chi2(log: dict[str, np.ndarray], sim: dict[str, np.ndarray],
          sim_denominators: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The squares of :func:`_residuals`: each moment's contribution to the score."""
    return {moment: r**2 for moment, r in _residuals(log, sim, sim_denominators).items()}


def _fitted_residuals(log: dict[str, np.ndarray], sim: dict[str, np.ndarray],
                      sim_denominators: dict[str, np.ndarray]) -> np.ndarray:
    """The residuals the fit minimises, flat: the four buckets of every moment."""
    residuals = _residuals(log, sim, sim_denominators)
    return np.concatenate([residuals[m][: len(BUCKETS)] for m in MOMENTS])


def _score(chi2: dict[str, np.ndarray]) -> float:
    """The sum over the four buckets (not "all", the rows' total) and the moments."""
    return float(sum(chi2[m][: len(BUCKETS)].sum() for m in MOMENTS))


def _comparison(log_counts: pl.DataFrame, log_users: pl.DataFrame, fitted: pl.DataFrame, start: pl.DataFrame,
                denominators: dict[str, np.ndarray] | None = None) -> tuple[pl.DataFrame, float, float]:
    """The per-bucket table of :class:`Calibration` and the fitted and starting scores (``log_users``: the log's
    per-user counts; ``denominators``: the simulated ``n`` of the weights, as in :func:`_chi2`)."""
    log, sim, begin = _rates(log_counts, log_users), _rates(fitted), _rates(start)
    chi2, start_chi2 = _chi2(log, sim, denominators), _chi2(log, begin, denominators)
    fitted_rows = np.arange(log_counts.height) < len(BUCKETS)

    def column(values: np.ndarray) -> pl.Series:
        return pl.Series([None if not math.isfinite(v) else float(v) for v in values], dtype=pl.Float64)

    table = log_counts.select("bucket", "impressions", "clicks", "follows")
    for moment in MOMENTS:
        table = table.with_columns(column(log[moment]).alias(f"log_{moment}"), column(sim[moment]).alias(
            f"sim_{moment}"), column(begin[moment]).alias(f"start_{moment}"),
            column(np.abs(sim[moment] - log[moment])).alias(f"{moment}_error"))
    total = sum(chi2[m] for m in MOMENTS)
    start_total = sum(start_chi2[m] for m in MOMENTS)
    table = table.with_columns(column(np.where(fitted_rows, total, np.nan)).alias("chi2"),
                               column(np.where(fitted_rows, start_total, np.nan)).alias("start_chi2"))
    return table, _score(chi2), _score(start_chi2)


# ----- the fit ----------------------------------------------------------------------------------------------


def calibrate(scenario: RecommendationScenario, log: pl.DataFrame, parameters: Sequence[str] = CALIBRATED, *,
              users: int = DEFAULT_USERS, seed: int = 0, holdout_fraction: float = 0.2,
              max_evaluations: int | None = None, tolerance: float = XATOL, device: torch.device | str = "cpu",
              progress: bool = True) -> Calibration:
    """Fit ``parameters`` of ``scenario`` to the random-exposure part of ``log`` (module docstring).

    Args:
        scenario: the start of the fit and everything the fit does not change.
        log: a KuaiRand-layout frame (:func:`~.logs.read_log`): ``user_id``, ``author_id``, ``time_ms``,
            ``is_click``, ``is_follow``; ``request_id`` (slates), ``is_rand`` where present.
        parameters: real-valued scenario fields to fit (:data:`CALIBRATED`).
        users: simulated users per evaluation (:data:`DEFAULT_USERS`).
        seed: the simulations' seed, the same for every evaluation (common random numbers).
        holdout_fraction: the last share of the log's time span held out of the fit and checked after it.
        max_evaluations: the optimiser's budget of simulations (default 60 per parameter).
        tolerance: the fit stops when the simplex is this small in every parameter (:data:`XATOL`) and its
            objective values within :data:`FATOL`; a log with few follows hardly pins the follow model closer
            than ~0.1, and a looser tolerance saves simulations.
        progress: show a progress bar (or plain lines when the output is not a terminal).

    Raises:
        ScenarioError: the log lacks a needed column, holds no clicks (or no random-exposure rows), or has
            slates larger than the scenario's ``n_candidates``; an unknown or non-real parameter; ``users`` < 1
            or ``holdout_fraction`` outside (0, 1).
    """
    began = time.monotonic()
    names = _checked_parameters(parameters)
    if users < 1:
        raise ScenarioError(f"users: at least 1 simulated user (got {users})")
    if not tolerance > 0:
        raise ScenarioError(f"tolerance: must be positive (got {tolerance})")
    if not 0.0 < holdout_fraction < 1.0:
        raise ScenarioError(f"holdout_fraction: must be between 0 and 1, exclusive (got {holdout_fraction})")
    rows = _checked_log(scenario, log)
    slate = slate_size_of(rows)
    t0, t1 = int(rows["time_ms"].min()), int(rows["time_ms"].max())  # type: ignore[arg-type]
    cutoff = t0 + math.floor((t1 - t0) * (1.0 - holdout_fraction))  # split_by_time's cut
    days = max(1, math.ceil((t1 - t0) / (24 * MS_PER_HOUR)))
    train_days = max(1, math.ceil((cutoff - t0) / (24 * MS_PER_HOUR)))
    if days > 365:
        raise ScenarioError(f"log: spans {days} days, more than the 365 a scenario simulates")
    train, _ = split_by_time(rows, holdout_fraction)
    if int(train["is_click"].cast(pl.Int64).sum()) == 0:
        raise ScenarioError("log: no clicks in its train part (the first "
                            f"{1 - holdout_fraction:.0%} of its time span), so nothing identifies the models")
    log_train, log_train_users = _counts(train), _user_counts(train)
    log_rates = _rates(log_train, log_train_users)

    def simulate(values: Sequence[float], horizon_days: int) -> pl.DataFrame:
        candidate = scenario.model_copy(update=dict(zip(names, map(float, values), strict=True)))
        return simulated_log(candidate, users, seed, slate_size=slate, days=horizon_days, start_ms=t0, device=device)

    def train_part(frame: pl.DataFrame) -> pl.DataFrame:
        # the replay's requests up to the log's cut (a request after it is held out, as in split_by_time)
        return frame.filter(pl.col("time_ms") <= cutoff)

    start = [float(getattr(scenario, name)) for name in names]
    budget = max_evaluations if max_evaluations is not None else EVALUATIONS_PER_PARAMETER * len(names)
    bar = Progress(budget + 2, f"calibrating {', '.join(names)} to {rows.height:,} impressions",
                   enabled=progress, unit="simulation")
    seen: dict[tuple[float, ...], np.ndarray] = {}  # residuals per simulated point (Nelder-Mead revisits points)
    bounds = _bounds(names)
    try:
        # the fit simulates the train window only; the weights are fixed at the start's simulated denominators,
        # so the objective is one quadratic form for every candidate
        denominators = _rates(_counts(train_part(simulate(start, train_days))))
        seen[tuple(start)] = _fitted_residuals(log_rates, denominators, denominators)
        bar.update()

        def residuals(values: Sequence[float]) -> np.ndarray:
            key = tuple(min(max(float(v), low), high) for v, (low, high) in zip(values, bounds, strict=True))
            if key not in seen:
                counts = _counts(train_part(simulate(key, train_days)))
                seen[key] = _fitted_residuals(log_rates, _rates(counts), denominators)
                bar.update()
                bar.show(objective=float(np.sum(seen[key] ** 2)), best=min(float(np.sum(r**2)) for r in seen.values()))
            return seen[key]

        def objective(values: np.ndarray) -> float:
            return float(np.sum(residuals(values) ** 2))

        effects = _effects(start, bounds, residuals)
        # the first simplex spans about half the way to the log's moments (a smaller one only spends its first
        # simulations expanding), the later ones the objective's scale near its minimum
        steps = _steps(effects, STEP_CHANGE)
        far = _steps(effects, max(STEP_CHANGE, 0.5 * float(np.linalg.norm(residuals(start)))))
        best, converged = list(start), False
        for attempt in range(1 + RESTARTS):
            left = budget - len(seen)
            if left <= 2 * len(names):
                break
            simplex = [best] + [_stepped(best, i, step, bounds) for i, step in enumerate(steps if attempt else far)]
            result = minimize(objective, np.asarray(best), method="Nelder-Mead", bounds=bounds,
                              options={"initial_simplex": np.asarray(simplex), "xatol": tolerance, "fatol": FATOL,
                                       "maxfev": left - 2 * len(names)})
            best = [float(v) for v in result.x]
            # Nelder-Mead's simplex can collapse along a direction the objective hardly moves in (the follow
            # model's slope, next to the click model's level) and stop short of the minimum: half a step each
            # way in every parameter checks (2 simulations a parameter, far cheaper than a restart), and the
            # fit restarts from a probe that is clearly better
            probes = [_stepped(best, i, sign * step / 2, bounds) for i, step in enumerate(steps) for sign in (1, -1)]
            better = min(probes, key=objective)
            if objective(better) > float(result.fun) - RESTART_GAIN:
                converged = bool(result.success)
                break
            best = better
        fitted_values = [float(v) for v in best]
        # the whole span for the start and the fitted values: the train window of these runs is the fit's own
        # (the uniforms are drawn in blocks of CHUNK_STEPS, so a longer horizon does not change the earlier ones)
        full_start = simulate(start, days)
        full_fitted = simulate(fitted_values, days)
        bar.update(2)
        if bar.done < bar.total:
            bar.stop_early("converged" if converged else "the evaluation budget is spent")
    finally:
        bar.close()
    evaluations = len(seen)
    moments, score, start_score = _comparison(log_train, log_train_users, _counts(train_part(full_fitted)),
                                              _counts(train_part(full_start)), denominators)
    # held out: the whole log's counts less the train part's (its histories include the train part's clicks)
    held_out, held_score, start_held_score = _comparison(
        _minus(_counts(rows), log_train), _user_minus(_user_counts(rows), log_train_users),
        _held(full_fitted, train_part), _held(full_start, train_part))
    fitted = dict(zip(names, fitted_values, strict=True))
    return Calibration(
        scenario=scenario.model_copy(update=fitted), fitted=fitted, start=dict(zip(names, start, strict=True)),
        moments=moments, held_out=held_out, objective=score, start_objective=start_score,
        held_out_score=held_score, start_held_out_score=start_held_score, evaluations=evaluations,
        converged=converged, users=users, log_users=int(train["user_id"].n_unique()),
        log_impressions=train.height, slate_size=slate, days=days, seconds=time.monotonic() - began)


def _stepped(point: Sequence[float], i: int, step: float, bounds: list[tuple[float, float]]) -> list[float]:
    """``point`` moved by ``step`` in parameter ``i``; the other way where that leaves the bounds."""
    low, high = bounds[i]
    moved = list(point)
    moved[i] = point[i] + step if low <= point[i] + step <= high else point[i] - step
    moved[i] = min(max(moved[i], low), high)
    return moved


def _effects(start: Sequence[float], bounds: list[tuple[float, float]],
             residuals: Callable[[Sequence[float]], np.ndarray]) -> np.ndarray:
    """Per parameter, how far the residuals move per unit of it at the start, from a probe of
    :data:`INITIAL_STEP` (one simulation each)."""
    at_start = residuals(start)
    effects = []
    for i in range(len(start)):
        probe = _stepped(start, i, INITIAL_STEP, bounds)
        distance = abs(probe[i] - start[i])
        effects.append(float(np.linalg.norm(residuals(probe) - at_start)) / distance if distance > 0 else 0.0)
    return np.asarray(effects)


def _steps(effects: np.ndarray, change: float) -> list[float]:
    """The step in each parameter that moves the residuals by ``change``, within :data:`STEP_RANGE`: equal
    steps in badly scaled parameters (the click level moves the objective a hundred times more than the follow
    slope) make a long, thin simplex from the start."""
    low, high = STEP_RANGE
    return [min(max(change / e, low), high) if e > 0 else high for e in effects]


def _held(frame: pl.DataFrame, train_part: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    return _minus(_counts(frame), _counts(train_part(frame)))


def fit_report(calibration: Calibration) -> dict[str, Any]:
    """``calibration`` as plain JSON types: the parameters (start, fitted, change), the scores, the per-bucket
    tables (``train``, ``held_out``: lists of rows, null where a rate has no denominator) and the run's sizes."""
    c = calibration
    buckets = c.moments.head(len(BUCKETS))
    fitted_moments = sum(int(buckets[f"log_{moment}"].is_not_null().sum()) for moment in MOMENTS)
    return {
        "parameters": {name: {"start": c.start[name], "fitted": value, "change": value - c.start[name]}
                       for name, value in c.fitted.items()},
        "objective": c.objective,
        "start_objective": c.start_objective,
        "held_out_score": c.held_out_score,
        "start_held_out_score": c.start_held_out_score,
        "moments_fitted": fitted_moments,
        "evaluations": c.evaluations,
        "converged": c.converged,
        "train": c.moments.to_dicts(),
        "held_out": c.held_out.to_dicts(),
        "simulated_users": c.users,
        "log_users": c.log_users,
        "log_impressions": c.log_impressions,
        "slate_size": c.slate_size,
        "days": c.days,
        "seconds": round(c.seconds, 3),
    }
