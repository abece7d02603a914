"""Serving recommendation policies: a user's request with its candidate items → the ranked slate.

A request state is what the platform knows at a request: the user (an id of the scenario's population), the
user's history as counts, the platform's estimate of the user's interest, the user's relationships with
authors, and the candidate item ids (catalog ids: their authors and traits come from the scenario's catalog).
The answer is the slate (item ids, best first) with each item's score and propensity: the probability that
the ranking put that item at that position given the ones above it (Plackett–Luce at ``temperature``; 1 for
the deterministic top-K), and the slate's propensity, their product, which a log keeps for off-policy
evaluation.

Ids are catalog ids (they name a user or an item of the scenario), int64 end to end: ids above 2^53 are refused
by the JSON model, every other one comes back exactly as sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator

from decisionlab.core import Policy, ServingSpec, StateError, WholeNumber, entries, problem
from decisionlab.domains.recommendation.ranking import position_log_shares, sample_slate, top_k
from decisionlab.domains.recommendation.scenario import RecommendationScenario
from decisionlab.domains.recommendation.sim import RecommendationSim, UserState

MAX_CANDIDATES = 1000
MAX_RELATIONSHIPS = 64
MAX_ID = 2**53
MIN_TEMPERATURE = 0.01
"""The lowest exploring temperature (as the CLI's): below it, ``score / temperature`` overflows."""
CatalogId = Annotated[WholeNumber, Field(ge=0, le=MAX_ID)]
"""A user, author or item id: int64 end to end, refused above 2^53 (JSON numbers beyond it are not exact)."""


class Relationship(BaseModel):
    """The user's record with one author."""

    model_config = ConfigDict(extra="forbid", strict=True)

    author_id: CatalogId = Field(description="the author (an id of the scenario's authors)")
    clicks: WholeNumber = Field(ge=0, le=10**9, description="the user's clicks on the author's items")
    follows: bool = Field(False, description="the user follows the author")
    hours_since: float = Field(ge=0, le=1e6, allow_inf_nan=False, description="hours since the last interaction")


class RankState(BaseModel):
    """One request: the user, its history, its relationships and the candidates to rank."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "user_id": 42, "candidates": [1001, 2002, 3003, 4004, 5005], "slate_size": 3, "requests": 12, "clicks": 3,
        "relationships": [{"author_id": 1, "clicks": 2, "follows": False, "hours_since": 20.0}]}]})

    user_id: CatalogId = Field(description="the user (an id of the scenario's users)")
    candidates: list[CatalogId] = Field(min_length=1, max_length=MAX_CANDIDATES,
                                        description="candidate item ids (distinct, of the scenario's catalog)")
    slate_size: WholeNumber | None = Field(None, ge=1, le=50, description="items to return (default: the "
                                           "scenario's slate_size; at most the number of candidates)")
    requests: WholeNumber = Field(0, ge=0, le=10**9, description="the user's requests so far")
    clicks: WholeNumber = Field(0, ge=0, le=10**9, description="the user's clicks so far")
    follows: WholeNumber = Field(0, ge=0, le=10**9, description="authors the user follows")
    session_requests: WholeNumber = Field(0, ge=0, le=10**6, description="requests so far in this session")
    session_clicks: WholeNumber = Field(0, ge=0, le=10**6, description="clicks so far in this session")
    hours_on_platform: float = Field(0.0, ge=0, le=1e6, allow_inf_nan=False,
                                     description="hours since the user's first visit")
    interest: list[FiniteFloat] | None = Field(None, max_length=64, description="the platform's estimate of the "
                                               "user's interest (style_dim numbers; default: unknown)")
    relationships: list[Relationship] = Field(default_factory=list, max_length=MAX_RELATIONSHIPS,
                                              description="the user's record with authors (at most pair_slots)")
    temperature: float = Field(0.0, ge=0, le=100, allow_inf_nan=False, description="0: the deterministic ranking; "
                               f"from {MIN_TEMPERATURE} up: a Plackett–Luce sample of softmax(score / temperature) "
                               "(exploration)")
    seed: WholeNumber = Field(0, ge=0, le=2**63 - 1, description="seed of the sample (temperature > 0)")

    @field_validator("temperature")
    @classmethod
    def _exploring_or_not(cls, value: float) -> float:
        if 0 < value < MIN_TEMPERATURE:
            raise ValueError(f"0 (the deterministic ranking) or at least {MIN_TEMPERATURE}")
        return value


class RankedItem(BaseModel):
    item_id: int = Field(description="a candidate item")
    score: float = Field(description="the policy's score (higher ranks first)")
    propensity: float = Field(description="probability of this item at this position given the ones above")


class Ranking(BaseModel):
    slate: list[RankedItem] = Field(description="the ranked slate, best first")
    slate_propensity: float = Field(description="probability of the whole slate (the product of the propensities)")


def check(sim: RecommendationSim, states: Sequence[RankState]) -> None:
    s = sim.scenario
    problems = []
    for i, state in enumerate(states):
        if state.user_id >= s.n_users:
            problems.append(problem((i, "user_id"), "unknown_user", f"users are 0..{s.n_users - 1}", state.user_id))
        seen: set[int] = set()
        for j, item in enumerate(state.candidates):
            if item >= s.n_items:
                problems.append(problem((i, "candidates", j), "unknown_item", f"items are 0..{s.n_items - 1}", item))
            elif item in seen:
                problems.append(problem((i, "candidates", j), "duplicate", "candidates are distinct", item))
            seen.add(item)
        size = state.slate_size or s.slate_size
        if size > len(state.candidates):
            problems.append(problem((i, "slate_size"), "too_large", f"a slate of {size} needs at least {size} "
                                    f"candidates, got {len(state.candidates)}", size))
        if len(state.relationships) > s.pair_slots:
            problems.append(problem((i, "relationships"), "too_long", f"at most pair_slots={s.pair_slots}"))
        authors: set[int] = set()
        for j, pair in enumerate(state.relationships):
            if pair.author_id >= s.n_authors:
                problems.append(problem((i, "relationships", j, "author_id"), "unknown_author",
                                        f"authors are 0..{s.n_authors - 1}", pair.author_id))
            elif pair.author_id in authors:
                problems.append(problem((i, "relationships", j, "author_id"), "duplicate", "one record per author",
                                        pair.author_id))
            authors.add(pair.author_id)
        if state.interest is not None and len(state.interest) != s.style_dim:
            problems.append(problem((i, "interest"), "length", f"style_dim={s.style_dim} numbers"))
        elif state.interest is not None and any(abs(x) > 1e3 for x in state.interest):
            problems.append(problem((i, "interest"), "too_large", "each number within ±1000"))
    if problems:
        raise StateError(problems)


def user_state(sim: RecommendationSim, states: Sequence[RankState]) -> UserState:
    """The simulator state of ``states`` (candidates padded to the longest list, the padding not present)."""
    s, dev, b = sim.scenario, sim.device, len(states)
    c, m = max(len(x.candidates) for x in states), s.pair_slots
    state = sim.start(torch.tensor([x.user_id for x in states], dtype=torch.long, device=dev),
                      torch.zeros(b, dtype=torch.float64, device=dev))
    candidates = torch.tensor([x.candidates + [0] * (c - len(x.candidates)) for x in states], dtype=torch.long,
                              device=dev)
    present = torch.tensor([[True] * len(x.candidates) + [False] * (c - len(x.candidates)) for x in states],
                           device=dev)
    pad = [(-1, 0, False, 0.0)] * m
    records = [[(r.author_id, r.clicks, r.follows, r.hours_since) for r in x.relationships] for x in states]
    records = [(rows + pad)[:m] for rows in records]
    now = torch.tensor([x.hours_on_platform for x in states], dtype=torch.float64, device=dev)
    estimate = torch.tensor([x.interest if x.interest is not None else [0.0] * s.style_dim for x in states],
                            dtype=torch.float32, device=dev)
    traits = sim.catalog.items(candidates)

    def column(k: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor([[row[k] for row in rows] for rows in records], dtype=dtype, device=dev)

    def counts(name: str) -> torch.Tensor:
        return torch.tensor([getattr(x, name) for x in states], dtype=torch.long, device=dev)

    return UserState(
        user=state.user, interest=state.interest, estimate=estimate, satisfaction=state.satisfaction, time_h=now,
        session_requests=counts("session_requests"), session_clicks=counts("session_clicks"),
        requests=counts("requests"), clicks=counts("clicks"), follows=counts("follows"), sessions=state.sessions,
        churned=state.churned, over=state.over, slot_author=column(0, torch.long),
        slot_affinity=torch.zeros(b, m, device=dev), slot_clicks=column(1, torch.float32),
        slot_time=now[:, None] - column(3, torch.float64), slot_follow=column(2, torch.bool),
        candidates=candidates, present=present, candidate_author=traits.author,
        candidate_signals=traits.signals)


def decide(sim: RecommendationSim, states: Sequence[RankState], policy: Policy) -> dict[str, torch.Tensor]:
    """Scores, the slates (candidate positions) and each position's propensity, for the longest slate asked."""
    obs = sim.observe(user_state(sim, states))
    scorer = getattr(policy, "scores", None)
    if scorer is None:
        raise StateError([problem(("policy",), "not_a_ranker", "this policy does not score candidates")])
    scores = scorer(obs).double()  # [B, C]
    k = max(x.slate_size or sim.scenario.slate_size for x in states)
    temperature = torch.tensor([x.temperature for x in states], dtype=torch.float64, device=sim.device)
    slates = top_k(scores, obs["present"], k)
    for i, state in enumerate(states):
        if state.temperature > 0:
            generator = torch.Generator(sim.device).manual_seed(state.seed)
            slates[i] = sample_slate(scores[i:i + 1], obs["present"][i:i + 1], k, state.temperature, generator)[0]
    chosen = torch.gather(scores, 1, slates)
    # each position's Plackett–Luce share of what is left (1 for the deterministic ranking)
    warm = temperature > 0
    logits = torch.where(obs["present"], scores / torch.where(warm, temperature, 1.0)[:, None], -torch.inf)
    share = torch.exp(position_log_shares(logits, slates))
    propensity = torch.where(warm[:, None], share, 1.0)
    return {"slate": slates, "scores": chosen, "propensity": propensity}


def respond(sim: RecommendationSim, actions: dict[str, torch.Tensor], states: Sequence[RankState]
            ) -> list[dict[str, Any]]:
    out = []
    slates, scores, propensities = (actions[name].cpu().tolist() for name in ("slate", "scores", "propensity"))
    for state, slate, score, propensity in zip(states, slates, scores, propensities, strict=True):
        size = state.slate_size or sim.scenario.slate_size
        items = [{"item_id": state.candidates[p], "score": float(v), "propensity": float(q)}
                 for p, v, q in zip(slate[:size], score[:size], propensity[:size], strict=True)]
        total = 1.0
        for item in items:
            total *= item["propensity"]
        out.append({"slate": items, "slate_propensity": total})
    return out


def example(sim: RecommendationSim) -> dict[str, Any]:
    s: RecommendationScenario = sim.scenario
    step = max(1, s.n_items // (s.slate_size + 3))
    candidates = [min(s.n_items - 1, 1 + step * k) for k in range(s.slate_size + 2)]
    return {"user_id": min(42, s.n_users - 1), "candidates": sorted(set(candidates)), "requests": 12, "clicks": 3,
            "relationships": [{"author_id": min(1, s.n_authors - 1), "clicks": 2, "follows": False,
                               "hours_since": 20.0}]}


SERVING = ServingSpec(
    state_model=RankState, action_model=Ranking, prepare=lambda scenario, device: RecommendationSim(scenario, device),
    check=check, observe=lambda sim, states, policy: sim.observe(user_state(sim, states)), respond=respond,
    example=example, decide=decide,
    describe=lambda sim: {"users": sim.scenario.n_users, "authors": sim.scenario.n_authors,
                          "items": sim.scenario.n_items, "slate_size": sim.scenario.slate_size},
    cost=lambda states: sum(max(1.0, entries(x, "candidates") / 50.0) for x in states),
)
