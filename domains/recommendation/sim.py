"""The recommendation simulator: one user per batch row, one decision per request, over ``days`` days.

Order of events at a request (one ``step``):

1. The platform has retrieved ``C`` candidate items (candidate ``k`` from the ``k``-th of ``C`` equal strata of the
   ids, so they are distinct; a ``related_share`` of them by authors the user already interacted with, the rest
   uniform) and the policy ranks ``K`` of them: the
   action is a :class:`~decisionlab.core.Slate` of candidate positions, int64 ``[B, K]``.
2. The user clicks at most one item, by a multinomial logit with a no-click option: item ``k`` of the slate has
   utility ``relevance·(interest · style) + quality·q + bait·b + affinity·aff − position·log(1 + k) +
   satisfaction·sat`` against ``click_none`` (exact probabilities: :meth:`RecommendationSim.click_probabilities`).
3. After a click: a follow (if the user does not follow the author yet) with log-odds ``follow_base +
   follow_affinity·aff``; a gift with log-odds ``gift_base + gift_affinity·aff + gift_following·follows``, of an
   exponential value with mean ``gift_value``. The user–author affinity grows by ``affinity_click·quality``
   (+ ``affinity_follow``, + ``affinity_gift``), times ``1 − affinity / affinity_max``, and decays with a
   half-life between interactions; the user keeps the ``pair_slots`` strongest relationships. The interest drifts
   toward the clicked style. Satisfaction rises with quality above 0.5 (up to ``satisfaction_max``) and falls
   with clickbait; a request without a click costs ``satisfaction_skip``.
4. The session continues with log-odds ``session_continue + session_satisfaction·sat − session_fatigue·n``
   (``n`` requests so far), the next request ``request_gap_h`` later; otherwise the next session starts after an
   exponential gap (mean ``visit_gap_h / sat``), during which satisfaction relaxes toward ``satisfaction_rest``.
5. The user leaves for good when satisfaction reaches 0 (``terminated``); the episode is cut at ``days`` days
   (``truncated``: the user lives on). Rows that ended are inert (no reward, no change).

Reward: the gift revenue of the request. ``elapsed``: hours from this request to the next (event time,
``spaces.time_unit = "hours"``). Exogenous randomness ``[B, T, 7]`` float64 uniforms: the click, the follow, the
gift, its value, the session's continuation, the gap, and the key of the next request's candidates (hashed
per candidate, so two policies see the same candidates while their users' histories agree).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

import torch

from decisionlab.core import Box, Composite, Slate, Spaces, StepResult, hash_uniform, mix
from decisionlab.domains.recommendation.catalog import ItemTraits, catalog_of
from decisionlab.domains.recommendation.scenario import RecommendationScenario

USER_FEATURES = 6
"""session requests so far /10, log1p(requests)/5, the user's click rate, log1p(follows), clicks in this session
/5, the place in the horizon."""
ITEM_FEATURES = 7
"""popularity and completion (the platform's item statistics), relevance to the platform's estimate of the user's
interest, follows the author, log1p(clicks on the author), recency of the last interaction with the author
(exp(−hours / 168)), the author is one of the user's relationships."""
EXOGENOUS = 7
ESTIMATE_RATE = 0.2
"""How fast the platform's estimate of a user's interest moves toward what the user clicked."""
_CANDIDATE_SALTS = (21, 22, 23, 24)


@dataclass(frozen=True)
class UserState:
    """One user per row. ``user [B]`` id; ``interest``, ``estimate [B, D]`` (the true interest, the platform's
    estimate); ``satisfaction [B]``; ``time_h [B]`` float64; ``session_requests``, ``session_clicks``,
    ``requests``, ``clicks``, ``follows``, ``sessions [B]`` int64; ``churned``, ``over [B]`` bool;
    the relationships ``slot_author [B, M]`` (−1: empty), ``slot_affinity``, ``slot_clicks [B, M]`` float32,
    ``slot_time [B, M]`` float64 (hour of the last interaction), ``slot_follow [B, M]`` bool; the request's
    ``candidates [B, C]`` int64 with ``present [B, C]`` bool (False: padding of a served request with fewer
    candidates; the simulator's are all present), ``candidate_author [B, C]`` int64 and
    ``candidate_signals [B, C, 2]`` (popularity, completion)."""

    user: torch.Tensor
    interest: torch.Tensor
    estimate: torch.Tensor
    satisfaction: torch.Tensor
    time_h: torch.Tensor
    session_requests: torch.Tensor
    session_clicks: torch.Tensor
    requests: torch.Tensor
    clicks: torch.Tensor
    follows: torch.Tensor
    sessions: torch.Tensor
    churned: torch.Tensor
    over: torch.Tensor
    slot_author: torch.Tensor
    slot_affinity: torch.Tensor
    slot_clicks: torch.Tensor
    slot_time: torch.Tensor
    slot_follow: torch.Tensor
    candidates: torch.Tensor
    present: torch.Tensor
    candidate_author: torch.Tensor
    candidate_signals: torch.Tensor

    @property
    def alive(self) -> torch.Tensor:
        return ~(self.churned | self.over)


@dataclass(frozen=True)
class Pairs:
    """The user's relationship with the author of each of ``[B, N]`` items: the slot it is in (−1: none),
    its affinity now, clicks, hours since the last interaction and whether the user follows."""

    slot: torch.Tensor
    affinity: torch.Tensor
    clicks: torch.Tensor
    since_h: torch.Tensor
    follows: torch.Tensor


class RequestObservation(Mapping[str, torch.Tensor]):
    """What the platform sees at a request (:meth:`RecommendationSim.observe`). The candidates' ids, authors,
    presence and item statistics (``signals [B, C, 2]``) are at hand; the features that look up the user's
    history and relationships (``user``, ``items``, ``features``) are computed the first time one of them is
    read: a policy that ranks by the item statistics alone, or a uniform logger, never pays for them."""

    FEATURES = ("user", "items", "features")

    def __init__(self, ready: dict[str, torch.Tensor], features: Callable[[], dict[str, torch.Tensor]]) -> None:
        self._values, self._features = dict(ready), features

    def __getitem__(self, key: str) -> torch.Tensor:
        if key in self.FEATURES and key not in self._values:
            self._values.update(self._features())
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter((*self.FEATURES, *(k for k in self._values if k not in self.FEATURES)))

    def __len__(self) -> int:
        return len(self.FEATURES) + sum(k not in self.FEATURES for k in self._values)


class RecommendationSim:
    """Batched users of a :class:`RecommendationScenario` (module docstring)."""

    differentiable = False

    def __init__(self, scenario: RecommendationScenario, device: torch.device | str = "cpu") -> None:
        self.scenario, self.device = scenario, torch.device(device)
        self.catalog = catalog_of(scenario, self.device)
        s = scenario
        self.horizon = s.max_requests
        self.decay_per_h = math.log(2.0) / (24.0 * s.affinity_halflife_days)
        self.strata = torch.div(torch.arange(s.n_candidates + 1, device=self.device) * s.n_items, s.n_candidates,
                                rounding_mode="floor")  # [C + 1] id bounds of the candidates' strata
        widths = (self.strata[1:] - self.strata[:-1])[None, :]  # [1, C]
        self.strata_mod = torch.remainder(self.strata[:-1], s.n_authors)[None, :]  # [1, C] r: lo ≡ r (mod A)
        self.strata_quotient = torch.div(widths, s.n_authors, rounding_mode="floor")  # q: width = q·A + m
        self.strata_rest = widths - self.strata_quotient * s.n_authors  # m
        self.positions = torch.log1p(torch.arange(s.slate_size, dtype=torch.float32, device=self.device))
        c = s.n_candidates
        self.spaces = Spaces(
            observation=Composite({
                "user": Box((USER_FEATURES,), description="the user's history as the platform sees it"),
                "items": Box((c, ITEM_FEATURES), description="each candidate's features (ITEM_FEATURES)"),
                "candidates": Box((c,), low=0.0, dtype="int64", description="candidate item ids"),
                "authors": Box((c,), low=0.0, dtype="int64", description="the candidates' author ids"),
                "present": Box((c,), dtype="bool", description="the candidate may be shown"),
                "signals": Box((c, 2), description="the candidates' popularity and completion (the platform's "
                               "item statistics, the first two item features)"),
                "features": Box((USER_FEATURES + c * ITEM_FEATURES,)),
            }),
            action=Slate(c, s.slate_size, masked=True, description="candidate positions, in rank order"),
            features=Box((USER_FEATURES + c * ITEM_FEATURES,), description="user and candidate features, flat"),
            time_unit="hours",
        )

    # --- randomness and the start ---------------------------------------------------------------------------

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.rand(batch, periods, EXOGENOUS, generator=generator, device=self.device, dtype=torch.float64)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> UserState:
        s, dev = self.scenario, self.device
        draws = torch.rand(batch, 2, generator=generator, device=dev, dtype=torch.float64)
        users = (draws[:, 0] * s.n_users).long().clamp(max=s.n_users - 1)
        return self.start(users, draws[:, 1])

    def start(self, users: torch.Tensor, key: torch.Tensor) -> UserState:
        """The state of users ``users [B]`` at their first request; ``key [B]`` uniforms pick its candidates."""
        s, dev, b, m = self.scenario, self.device, users.shape[0], self.scenario.pair_slots
        zeros = torch.zeros(b, dtype=torch.long, device=dev)
        no = torch.zeros(b, dtype=torch.bool, device=dev)
        state = UserState(
            user=users, interest=self.catalog.interest(users),
            estimate=torch.zeros(b, s.style_dim, device=dev),
            satisfaction=torch.full((b,), s.satisfaction_start, device=dev),
            time_h=torch.zeros(b, dtype=torch.float64, device=dev),
            session_requests=zeros, session_clicks=zeros, requests=zeros, clicks=zeros, follows=zeros, sessions=zeros,
            churned=no, over=no,
            slot_author=torch.full((b, m), -1, dtype=torch.long, device=dev),
            slot_affinity=torch.zeros(b, m, device=dev), slot_clicks=torch.zeros(b, m, device=dev),
            slot_time=torch.zeros(b, m, dtype=torch.float64, device=dev),
            slot_follow=torch.zeros(b, m, dtype=torch.bool, device=dev),
            candidates=torch.zeros(b, s.n_candidates, dtype=torch.long, device=dev),
            present=torch.ones(b, s.n_candidates, dtype=torch.bool, device=dev),
            candidate_author=torch.zeros(b, s.n_candidates, dtype=torch.long, device=dev),
            candidate_signals=torch.zeros(b, s.n_candidates, 2, device=dev))
        return self.retrieve(state, key)

    # --- retrieval -------------------------------------------------------------------------------------------

    def retrieve(self, state: UserState, key: torch.Tensor) -> UserState:
        """New candidates for the next request from uniforms ``key [B]`` (hashed per candidate)."""
        s, c = self.scenario, self.scenario.n_candidates
        base = (key * float(1 << 52)).long()[:, None] * 4099 + torch.arange(c, device=self.device)[None, :]
        item_u = hash_uniform(base, _CANDIDATE_SALTS[0])
        bits = mix(base + _CANDIDATE_SALTS[1])  # two 24-bit uniforms from one hash: related?, which author
        pick = (bits & 0xFFFFFF).float() * (1.0 / (1 << 24))
        slot_u = ((bits >> 24) & 0xFFFFFF).float() * (1.0 / (1 << 24))
        filled = state.slot_author >= 0  # [B, M]
        n_filled = filled.sum(1, keepdim=True)  # [B, 1]
        related = (pick < s.related_share) & (n_filled > 0)
        # the k-th filled slot, k uniform among the filled ones: the filled slots' indices first, in order
        rank = (slot_u * n_filled.float()).long().clamp(max=(n_filled - 1).clamp_min(0))  # [B, C]
        compact = torch.argsort((~filled).byte(), dim=1, stable=True)  # [B, M]
        slot = torch.gather(compact, 1, rank)
        author = torch.gather(state.slot_author, 1, slot).clamp_min(0)
        # candidate k is drawn from the k-th of C equal strata of the ids: distinct by construction; a related
        # one is an item of its author in that stratum (a uniform one of the stratum when the author has none)
        lo, hi = self.strata[:-1][None, :], self.strata[1:][None, :]  # [1, C]
        # the author's first item in the stratum is lo + d, d = (author − lo) mod A, and it has ⌈(width − d)/A⌉
        # items there: with lo ≡ r and width = q·A + m (mod A, precomputed), d = author − r (+ A when negative)
        # and the count is q + [d < m], the same integers without a division per candidate
        d = author - self.strata_mod
        d = d + s.n_authors * (d < 0)
        first = lo + d
        count = self.strata_quotient + (d < self.strata_rest)
        related = related & (count > 0)
        own = first + s.n_authors * (item_u * count.clamp_min(1).double()).long().clamp(max=(count - 1).clamp_min(0))
        uniform = lo + (item_u * (hi - lo).double()).long().clamp(max=hi - lo - 1)
        items = torch.where(related, own, uniform)
        return replace(state, candidates=items, candidate_author=torch.remainder(items, s.n_authors),
                       candidate_signals=self.catalog.signals(items))

    # --- what the platform sees ----------------------------------------------------------------------------

    def pairs(self, state: UserState, authors: torch.Tensor) -> Pairs:
        """The user's relationship with ``authors [B, N]`` (module docstring)."""
        # a user's authors are distinct (an author has at most one slot): look each one up in the sorted slots
        # (O(N log M) per row, not the O(N·M) of comparing every pair)
        sorted_authors, order = torch.sort(state.slot_author, dim=1)  # [B, M]
        at = torch.searchsorted(sorted_authors, authors).clamp(max=sorted_authors.shape[1] - 1)  # [B, N]
        found = torch.gather(sorted_authors, 1, at) == authors
        slot = torch.where(found, torch.gather(order, 1, at), -1)
        safe = slot.clamp_min(0)
        since = (state.time_h[:, None] - torch.gather(state.slot_time, 1, safe)).float()
        affinity = torch.gather(state.slot_affinity, 1, safe) * torch.exp(-self.decay_per_h * since)
        zero = torch.zeros_like(affinity)
        return Pairs(slot, torch.where(found, affinity, zero), torch.where(found, torch.gather(state.slot_clicks, 1,
                     safe), zero), torch.where(found, since, torch.full_like(since, 1e6)),
                     found & torch.gather(state.slot_follow, 1, safe))

    def item_features(self, state: UserState, authors: torch.Tensor, signals: torch.Tensor,
                      out: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, N, ITEM_FEATURES]`` of items by ``authors [B, N]`` with ``signals [B, N, 2]`` in ``state``,
        written into ``out`` when given (a view into the flat features: no concatenation to copy)."""
        pairs = self.pairs(state, authors)
        if out is None:
            out = torch.empty(*authors.shape, ITEM_FEATURES, device=authors.device, dtype=signals.dtype)
        out[..., :2] = signals
        out[..., 2] = torch.einsum("bd,bnd->bn", state.estimate, self.catalog.style[authors])
        out[..., 3] = pairs.follows
        out[..., 4] = torch.log1p(pairs.clicks)
        out[..., 5] = torch.exp(-pairs.since_h / 168.0)
        out[..., 6] = pairs.slot >= 0
        return out

    def user_features(self, state: UserState) -> torch.Tensor:
        """``[B, USER_FEATURES]``."""
        requests = state.requests.float()
        return torch.stack([state.session_requests.float() / 10.0, torch.log1p(requests) / 5.0,
                            state.clicks.float() / requests.clamp_min(1.0), torch.log1p(state.follows.float()),
                            state.session_clicks.float() / 5.0, (state.time_h / self.scenario.horizon_h).float()], -1)

    def observe(self, state: UserState) -> RequestObservation:
        """A :class:`RequestObservation`: ``candidates``, ``authors`` ``[B, C]`` int64, ``present [B, C]`` bool,
        ``signals [B, C, 2]``; read on demand: ``user [B, USER_FEATURES]``, ``items [B, C, ITEM_FEATURES]``
        and ``features [B, USER_FEATURES + C·ITEM_FEATURES]`` (the first two are views into the last)."""
        ready = {"candidates": state.candidates, "authors": state.candidate_author, "present": state.present,
                 "signals": state.candidate_signals}
        return RequestObservation(ready, lambda: self.features(state))

    def features(self, state: UserState) -> dict[str, torch.Tensor]:
        """``user``, ``items`` and the flat ``features`` of :meth:`observe`, computed now."""
        b, c = state.candidates.shape
        features = torch.empty(b, USER_FEATURES + c * ITEM_FEATURES, device=self.device,
                               dtype=state.candidate_signals.dtype)
        user = features[:, :USER_FEATURES]
        user.copy_(self.user_features(state))
        items = self.item_features(state, state.candidate_author, state.candidate_signals,
                                   out=features[:, USER_FEATURES:].view(b, c, ITEM_FEATURES))  # [B, C, F]
        return {"user": user, "items": items, "features": features}

    def flat_observation(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return obs["features"]

    def action_mask(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return obs["present"]

    # --- the user's response -------------------------------------------------------------------------------

    def shown(self, state: UserState, slate: torch.Tensor) -> tuple[torch.Tensor, ItemTraits, Pairs]:
        """The items of ``slate [B, K]`` (candidate positions): ids, traits, and the user's pairs with their authors."""
        items = torch.gather(state.candidates, 1, slate.long())
        traits = self.catalog.items(items)
        return items, traits, self.pairs(state, traits.author)

    def click_probabilities(self, state: UserState, slate: torch.Tensor) -> torch.Tensor:
        """``[B, K + 1]``: the probability of no click (column 0) and of a click on each slate position."""
        _, traits, pairs = self.shown(state, slate)
        return torch.softmax(self._utilities(state, traits, pairs), -1)

    def _utilities(self, state: UserState, traits: ItemTraits, pairs: Pairs) -> torch.Tensor:
        s = self.scenario
        relevance = torch.einsum("bd,bkd->bk", state.interest, self.catalog.style[traits.author])
        items = (s.click_relevance * relevance + s.click_quality * traits.quality + s.click_bait * traits.bait
                 + s.click_affinity * pairs.affinity - s.click_position * self.positions[: traits.author.shape[1]]
                 + s.click_satisfaction * state.satisfaction[:, None])
        none = torch.full_like(items[:, :1], s.click_none)
        return torch.cat([none, items], 1)

    def expected_response(self, state: UserState, slate: torch.Tensor) -> dict[str, torch.Tensor]:
        """Exact expectations of this request's ``click``, ``follow`` and ``revenue`` under ``slate [B, K]``
        (the truth off-policy estimates are checked against)."""
        s = self.scenario
        _, traits, pairs = self.shown(state, slate)
        p = torch.softmax(self._utilities(state, traits, pairs), -1)[:, 1:]
        follow = torch.where(pairs.follows, 0.0, torch.sigmoid(s.follow_base + s.follow_affinity * pairs.affinity))
        gift_logit = s.gift_base + s.gift_affinity * pairs.affinity
        gift = follow * torch.sigmoid(gift_logit + s.gift_following) + (1 - follow) * torch.sigmoid(
            gift_logit + s.gift_following * pairs.follows.float())
        return {"click": p.sum(1), "follow": (p * follow).sum(1), "revenue": (p * gift).sum(1) * s.gift_value}

    def step(self, state: UserState, action: torch.Tensor, exogenous: torch.Tensor) -> StepResult[UserState]:
        s, dev = self.scenario, self.device
        live = state.alive
        slate = action.long()
        items, traits, pairs = self.shown(state, slate)
        p = torch.softmax(self._utilities(state, traits, pairs), -1)  # [B, K + 1]
        u = exogenous.to(dev, torch.float64)
        choice = (torch.cumsum(p.double(), 1) < u[:, :1]).sum(1).clamp(max=s.slate_size)  # 0: no click
        clicked = live & (choice > 0)
        k = (choice - 1).clamp_min(0)[:, None]
        author = torch.gather(traits.author, 1, k)[:, 0]
        quality = torch.gather(traits.quality, 1, k)[:, 0]
        bait = torch.gather(traits.bait, 1, k)[:, 0]
        affinity = torch.gather(pairs.affinity, 1, k)[:, 0]
        follows_before = torch.gather(pairs.follows, 1, k)[:, 0]
        slot_before = torch.gather(pairs.slot, 1, k)[:, 0]
        p_follow = torch.sigmoid(torch.as_tensor(s.follow_base, device=dev) + s.follow_affinity * affinity)
        followed = clicked & ~follows_before & (u[:, 1] < p_follow)
        following = follows_before | followed
        p_gift = torch.sigmoid(s.gift_base + s.gift_affinity * affinity + s.gift_following * following.float())
        gifted = clicked & (u[:, 2] < p_gift)
        revenue = torch.where(gifted, -s.gift_value * torch.log1p(-u[:, 3].clamp(max=1 - 1e-12)), 0.0)

        # the relationship: its slot (the author's, or the weakest one), the affinity gained
        slot_affinity_now = state.slot_affinity * torch.exp(-self.decay_per_h * (state.time_h[:, None]
                                                                                  - state.slot_time).float())
        weakest = torch.where(state.slot_author < 0, -1.0, slot_affinity_now).argmin(1)
        slot = torch.where(slot_before >= 0, slot_before, weakest)
        gain = s.affinity_click * quality + s.affinity_follow * followed.float() + s.affinity_gift * gifted.float()
        kept = torch.where(slot_before >= 0, affinity, 0.0)
        new_affinity = kept + gain * (1.0 - kept / s.affinity_max).clamp_min(0.0)
        at = torch.nn.functional.one_hot(slot, s.pair_slots).bool() & clicked[:, None]  # [B, M]
        kept_clicks = torch.where(slot_before >= 0, torch.gather(state.slot_clicks, 1, slot[:, None])[:, 0], 0.0)
        slot_author = torch.where(at, author[:, None], state.slot_author)
        slot_affinity = torch.where(at, new_affinity[:, None], state.slot_affinity)
        slot_clicks = torch.where(at, (kept_clicks + 1)[:, None], state.slot_clicks)
        slot_time = torch.where(at, state.time_h[:, None], state.slot_time)
        slot_follow = torch.where(at, following[:, None], state.slot_follow)

        # interests and satisfaction
        style = self.catalog.style[author]
        interest = _unit(state.interest + s.interest_drift * (style - state.interest))
        estimate = _unit(state.estimate + ESTIMATE_RATE * (style - state.estimate))
        interest = torch.where(clicked[:, None], interest, state.interest)
        estimate = torch.where(clicked[:, None], estimate, state.estimate)
        change = torch.where(clicked, s.satisfaction_quality * (quality - 0.5) - s.satisfaction_bait * bait,
                             -s.satisfaction_skip)
        satisfaction = torch.where(live, (state.satisfaction + change).clamp(max=s.satisfaction_max),
                                   state.satisfaction)
        churned = state.churned | (live & (satisfaction <= 0))

        # the next request: in this session, or after a gap
        sat = satisfaction.clamp_min(0.0)
        p_continue = torch.sigmoid(s.session_continue + s.session_satisfaction * sat
                                   - s.session_fatigue * state.session_requests.float())
        goes_on = u[:, 4] < p_continue.double()
        gap = -s.visit_gap_h / sat.clamp_min(0.05).double() * torch.log1p(-u[:, 5].clamp(max=1 - 1e-12))
        elapsed = torch.where(goes_on, torch.full_like(gap, s.request_gap_h), gap)
        relax = torch.exp(-gap / s.satisfaction_recovery_h).float()
        rested = s.satisfaction_rest + (satisfaction - s.satisfaction_rest) * relax
        satisfaction = torch.where(live & ~goes_on & ~churned, rested, satisfaction)
        elapsed = torch.where(live & ~churned, elapsed, 0.0)
        time_h = state.time_h + elapsed
        over = state.over | (live & ~churned & (time_h >= s.horizon_h))
        step_live = live.long()
        nxt = UserState(
            user=state.user, interest=interest, estimate=estimate, satisfaction=satisfaction, time_h=time_h,
            # a row that ended keeps its counts (inert): the session open at its end is still counted
            session_requests=torch.where(goes_on | ~live, state.session_requests + step_live, 0),
            session_clicks=torch.where(goes_on | ~live, state.session_clicks + clicked.long(), 0),
            requests=state.requests + step_live, clicks=state.clicks + clicked.long(),
            follows=state.follows + followed.long(), sessions=state.sessions + (live & ~goes_on).long(),
            churned=churned, over=over, slot_author=slot_author, slot_affinity=slot_affinity,
            slot_clicks=slot_clicks, slot_time=slot_time, slot_follow=slot_follow,
            candidates=state.candidates, present=state.present,
            candidate_author=state.candidate_author, candidate_signals=state.candidate_signals)
        nxt = self.retrieve(nxt, u[:, 6])
        info = {
            "requests": live.double(), "clicks": clicked.double(), "follows": followed.double(),
            "gifts": gifted.double(), "revenue": revenue, "session_end": (live & ~goes_on).double(),
            "churned": (churned & ~state.churned).double(), "satisfaction": satisfaction.double(),
            "clicked_position": torch.where(clicked, choice - 1, -1).double(),
        }
        return StepResult(nxt, revenue.to(torch.get_default_dtype()), info, terminated=churned,
                          truncated=over & ~churned, elapsed=elapsed)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-9)
