"""Recommendation scenarios: a platform, its users, authors and items, and the users' behaviour.

Units: hours (time), requests (one slate served), currency (gift revenue). An episode is one user's life on
the platform over ``days`` days, from a first visit: sessions of requests separated by long random gaps.
Users, authors and items are integer ids; their latent traits are hashes of ``(catalog_seed, id)``
(``catalog.py``), so a catalog of tens of millions of items costs no memory.

The behavioural parameters (the choice model, the funnel, satisfaction, visits) are the simulator's; the
defaults give funnel rates of the order platforms report (a click on ~15–25% of requests, a follow on
~2–4% of clicks, a gift on well under 1% of clicks) and are what ``calibration.py`` refits to a log.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from decisionlab.core import Scenario

MAX_AUTHORS = 1_000_000
"""Authors' styles are a table ``[n_authors, style_dim]`` (items are hashed, authors are stored)."""
MAX_STYLE_ENTRIES = 1 << 23
"""At most this many numbers in that table (32 MB; ~3 s to build on one core): 1M authors in 8 dimensions, 131,072
in 64. Every served scenario builds one, so its size bounds a request's work and a cached scenario's memory."""


class RecommendationScenario(Scenario):
    """A short-video platform: users, authors, items and the behaviour model (module docstring)."""

    n_users: int = Field(100_000, ge=1, le=10**12, description="users on the platform (ids 0 .. n_users − 1)")
    n_authors: int = Field(2_000, ge=1, le=MAX_AUTHORS, description="authors (ids 0 .. n_authors − 1)")
    n_items: int = Field(200_000, ge=1, le=10**13, description="items (ids 0 .. n_items − 1; item i is by "
                         "author i mod n_authors)")
    slate_size: int = Field(5, ge=1, le=50, description="items shown per request")
    n_candidates: int = Field(50, ge=1, le=1000, description="candidates retrieved per request")
    days: int = Field(14, ge=1, le=365, description="days simulated per user (the evaluation horizon)")
    catalog_seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the users', authors' and items' traits")
    style_dim: int = Field(8, ge=1, le=64, description="dimensions of interests and content styles")
    pair_slots: int = Field(8, ge=1, le=64, description="user–author relationships a user keeps (the strongest)")
    related_share: float = Field(0.3, ge=0, le=1, description="share of candidates retrieved from the authors the "
                                 "user already interacted with")
    bait_share: float = Field(0.15, ge=0, le=1, description="share of items that are clickbait")
    # choice model: multinomial logit over the slate and a no-click option
    click_none: float = Field(4.5, ge=-20, le=20, description="utility of not clicking")
    click_relevance: float = Field(2.0, ge=0, le=20, description="utility per unit of interest–style match")
    click_quality: float = Field(1.0, ge=0, le=20, description="utility per unit of item quality")
    click_bait: float = Field(1.5, ge=0, le=20, description="utility per unit of clickbait")
    click_affinity: float = Field(0.8, ge=0, le=20, description="utility per unit of user–author affinity")
    click_position: float = Field(0.5, ge=0, le=20, description="utility lost per log(1 + rank)")
    click_satisfaction: float = Field(1.0, ge=0, le=20, description="utility of every item per unit of satisfaction")
    # funnel: follow and gift, given a click
    follow_base: float = Field(-4.0, ge=-20, le=20, description="log-odds of a follow after a click, no affinity")
    follow_affinity: float = Field(1.0, ge=0, le=20, description="follow log-odds per unit of affinity")
    gift_base: float = Field(-7.0, ge=-20, le=20, description="log-odds of a gift after a click, no affinity")
    gift_affinity: float = Field(0.5, ge=0, le=20, description="gift log-odds per unit of affinity")
    gift_following: float = Field(1.5, ge=0, le=20, description="gift log-odds added when the user follows")
    gift_value: float = Field(10.0, gt=0, le=1e6, description="mean value of a gift (currency)")
    affinity_click: float = Field(0.3, ge=0, le=10, description="affinity gained per click, times the item's quality")
    affinity_follow: float = Field(1.0, ge=0, le=10, description="affinity gained by a follow")
    affinity_gift: float = Field(0.5, ge=0, le=10, description="affinity gained by a gift")
    affinity_max: float = Field(3.0, gt=0, le=100, description="the most affinity a pair can reach (gains shrink "
                                "as it nears it)")
    affinity_halflife_days: float = Field(7.0, gt=0, le=365, description="half-life of affinity without interaction")
    # the user: interests, satisfaction, visits
    interest_drift: float = Field(0.05, ge=0, le=1, description="step of the interest toward a clicked style")
    satisfaction_start: float = Field(1.0, gt=0, le=10, description="satisfaction at the first visit")
    satisfaction_max: float = Field(2.0, gt=0, le=20, description="the most satisfaction a user can reach")
    satisfaction_rest: float = Field(1.0, gt=0, le=10, description="level satisfaction returns to between sessions")
    satisfaction_recovery_h: float = Field(72.0, gt=0, le=10_000, description="time constant of that return (h)")
    satisfaction_quality: float = Field(0.12, ge=0, le=10, description="satisfaction per click, per unit of "
                                        "quality above 0.5")
    satisfaction_bait: float = Field(0.06, ge=0, le=10, description="satisfaction lost per click, per unit of "
                                     "clickbait")
    satisfaction_skip: float = Field(0.01, ge=0, le=10, description="satisfaction lost by a request without a click")
    session_continue: float = Field(2.0, ge=-20, le=20, description="log-odds of another request in the session")
    session_satisfaction: float = Field(1.0, ge=0, le=20, description="continue log-odds per unit of satisfaction")
    session_fatigue: float = Field(0.15, ge=0, le=10, description="continue log-odds lost per request so far")
    visit_gap_h: float = Field(10.0, gt=0, le=1000, description="mean gap between sessions at satisfaction 1 (h)")
    request_gap_h: float = Field(0.02, gt=0, le=10, description="time between requests in a session (h)")
    max_requests_per_day: int = Field(120, ge=1, le=10_000, description="a cap on a user's requests per day (the "
                                      "episode's decision budget)")

    @model_validator(mode="after")
    def _consistent(self) -> RecommendationScenario:
        if self.slate_size > self.n_candidates:
            raise ValueError(f"slate_size ({self.slate_size}) must not exceed n_candidates ({self.n_candidates})")
        if self.n_items < 4 * self.n_candidates:
            raise ValueError(f"n_items ({self.n_items}) must be at least 4 × n_candidates = {4 * self.n_candidates} "
                             "(candidates of a request are distinct items)")
        if self.n_items < self.n_authors:
            raise ValueError(f"n_items ({self.n_items}) must be at least n_authors ({self.n_authors}): every author "
                             "has an item")
        if self.n_authors * self.style_dim > MAX_STYLE_ENTRIES:
            raise ValueError(f"n_authors × style_dim ({self.n_authors:,} × {self.style_dim}) must be at most "
                             f"{MAX_STYLE_ENTRIES:,}: the authors' styles are a table (fewer authors or dimensions)")
        for name in ("satisfaction_start", "satisfaction_rest"):
            if getattr(self, name) > self.satisfaction_max:
                raise ValueError(f"{name} ({getattr(self, name)}) must not exceed satisfaction_max "
                                 f"({self.satisfaction_max}), the most satisfaction a user can reach")
        return self

    @property
    def horizon_h(self) -> float:
        return 24.0 * self.days

    @property
    def max_requests(self) -> int:
        """Decisions per episode at most (the rollout's step budget)."""
        return self.days * self.max_requests_per_day


PRESETS: dict[str, RecommendationScenario] = {
    "short_video": RecommendationScenario(),
    "small": RecommendationScenario(n_users=10_000, n_authors=200, n_items=20_000, slate_size=3, n_candidates=20,
                                    days=7),
}
