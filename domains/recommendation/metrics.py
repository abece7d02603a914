"""KPIs of a recommendation policy: one episode per user, from the core rollout engine.

Per user: ``ctr`` (clicks per request, the user's own rate), ``follows_per_user_day``, ``gifts_per_user_day``,
``revenue`` (gift revenue per user-day), ``retention`` (1 if the user has not left by the end), ``satisfaction``
(the simulator's hidden state at the end, 0 for a user who left), ``session_length`` (requests per session).
``exposure_gini`` is a statistic of the whole sample, the Gini coefficient of the slates' impressions over the
authors (over ``EXPOSURE_BINS`` bins of author ids when there are more authors): each chunk returns its users'
impressions per bin and :func:`finalize_metrics` turns them into per-user influence values (the linearisation
of the Gini at the sample's mean), so its confidence interval is honest like the others'.
"""

from __future__ import annotations

import numpy as np
import torch

from decisionlab.core import Last, MetricSpec, Policy, Step, Sum, make_generator, run
from decisionlab.domains.recommendation.scenario import RecommendationScenario
from decisionlab.domains.recommendation.sim import RecommendationSim

EXPOSURE_BINS = 4096

METRICS = {
    "revenue": MetricSpec("revenue", "gift revenue per user per day", "higher", "currency"),
    "ctr": MetricSpec("ctr", "clicks per request (each user's rate, averaged over users)", "higher"),
    "follows_per_user_day": MetricSpec("follows_per_user_day", "new follows per user per day", "higher", "follows"),
    "gifts_per_user_day": MetricSpec("gifts_per_user_day", "gifts per user per day", "higher", "gifts"),
    "retention": MetricSpec("retention", "share of users still on the platform at the end of the horizon", "higher"),
    "satisfaction": MetricSpec("satisfaction", "the users' hidden satisfaction at the end (0: left)", "higher"),
    "session_length": MetricSpec("session_length", "requests per session", "higher", "requests"),
    "exposure_gini": MetricSpec("exposure_gini", "Gini coefficient of impressions over authors (0: even)", "lower"),
}


def exposure_bins(scenario: RecommendationScenario) -> int:
    return min(scenario.n_authors, EXPOSURE_BINS)


def _exposures(bins: int) -> Sum:
    """Impressions per author bin ``[B, bins]``, summed over the live requests."""

    def read(step: Step) -> torch.Tensor:
        authors = torch.gather(step.state.candidate_author, 1, step.action.long())
        live = step.state.alive.float()[:, None].expand_as(authors)
        counts = torch.zeros(authors.shape[0], bins, device=authors.device)
        return counts.scatter_add_(1, torch.remainder(authors, bins), live)

    return Sum(read)


def episode_metrics(scenario: RecommendationScenario, policy: Policy, episodes: int, seed: int,
                    device: torch.device, start: int = 0) -> dict[str, np.ndarray]:
    sim = RecommendationSim(scenario, device)
    done = run(sim, policy, batch=episodes, generator=make_generator(seed, device), reducers={
        "requests": Sum("requests"), "clicks": Sum("clicks"), "follows": Sum("follows"), "gifts": Sum("gifts"),
        "revenue": Sum("revenue"), "sessions": Sum("session_end"), "churned": Sum("churned"),
        "satisfaction": Last("satisfaction"), "exposure": _exposures(exposure_bins(scenario)),
    })
    t = {name: value.double() for name, value in done.totals.items()}
    final = done.final_state
    # a session still open at the end counts as a session
    sessions = t["sessions"] + (final.session_requests > 0).double()
    churned = t["churned"].clamp(max=1.0)
    out = {
        "revenue": t["revenue"] / scenario.days,
        "ctr": t["clicks"] / t["requests"].clamp_min(1.0),
        "follows_per_user_day": t["follows"] / scenario.days,
        "gifts_per_user_day": t["gifts"] / scenario.days,
        "retention": 1.0 - churned,
        "satisfaction": torch.where(churned > 0, 0.0, t["satisfaction"].clamp_min(0.0)),
        "session_length": t["requests"] / sessions.clamp_min(1.0),
    }
    values = {name: value.cpu().numpy() for name, value in out.items()}
    values["exposure"] = t["exposure"].cpu().numpy()
    return values


def gini_influence(counts: np.ndarray) -> np.ndarray:
    """Per-row influence values ``[E]`` of the Gini coefficient of ``counts.sum(0)`` (``counts [E, n]``): their
    mean is the Gini of the total, their spread its sampling variability (a linearisation at the mean row)."""
    counts = np.asarray(counts, dtype=np.float64)
    mean = counts.mean(0)
    n = mean.size
    total = mean.sum()
    if n < 2 or total <= 0:
        return np.zeros(counts.shape[0])
    ordered = np.sort(mean)
    gaps = 2.0 * np.sum((2.0 * np.arange(n) - n + 1.0) * ordered)  # Σ_a Σ_b |x_a − x_b|
    gini = gaps / (2.0 * n * total)
    below = np.searchsorted(ordered, mean, side="left")
    above = n - np.searchsorted(ordered, mean, side="right")
    gradient = 2.0 * (below - above) / (2.0 * n * total) - gini / total  # ∂G/∂x_a
    return gini + (counts - mean) @ gradient


def finalize_metrics(scenario: RecommendationScenario, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {name: value for name, value in values.items() if name != "exposure"}
    out["exposure_gini"] = gini_influence(values["exposure"])
    return out
