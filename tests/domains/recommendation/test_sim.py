"""The recommendation simulator, its catalog, the Plackett–Luce ranking and the exposure Gini, against oracles:
the choice model computed by hand from the scenario and the catalog, Monte Carlo frequencies within a few
standard errors of the exact probabilities, brute-force enumeration of slates, a pure-Python SplitMix64 and a
brute-force Gini with its jackknife standard error."""

from __future__ import annotations

import itertools
import math
from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from decisionlab.core import Sum, make_generator, run
from decisionlab.core.hashing import hash_uniform, mix
from decisionlab.domains.recommendation import catalog as catalog_module
from decisionlab.domains.recommendation.catalog import Catalog
from decisionlab.domains.recommendation.metrics import episode_metrics, gini_influence
from decisionlab.domains.recommendation.policies import popularity, random_policy
from decisionlab.domains.recommendation.ranking import sample_slate, slate_log_probability, top_k
from decisionlab.domains.recommendation.scenario import PRESETS, RecommendationScenario
from decisionlab.domains.recommendation.sim import EXOGENOUS, RecommendationSim, UserState

Z = 4.0  # tolerance of every Monte Carlo check, in standard errors


def scenario(**update: object) -> RecommendationScenario:
    """The ``small`` preset (200 authors, 20 000 items, 20 candidates, slates of 3) with ``update``, validated."""
    return RecommendationScenario.model_validate({**PRESETS["small"].model_dump(), "days": 2, **update})


def rows(state: UserState, index: torch.Tensor) -> UserState:
    """The rows ``index`` of every tensor of ``state`` (replicates users)."""
    return replace(state, **{f.name: getattr(state, f.name)[index] for f in fields(state)})


def clone(state: UserState) -> UserState:
    return replace(state, **{f.name: getattr(state, f.name).clone() for f in fields(state)})


def with_relationships(sim: RecommendationSim, state: UserState, slate: torch.Tensor) -> UserState:
    """``state`` where each user has met the authors of the first two items of its slate: the first one
    followed with affinity 1.5 last seen 10 h ago, the second not followed with affinity 0.8 seen 30 h ago."""
    items = torch.gather(state.candidates, 1, slate)
    authors = items % sim.scenario.n_authors
    slot_author, slot_affinity = state.slot_author.clone(), state.slot_affinity.clone()
    slot_time, slot_follow, slot_clicks = state.slot_time.clone(), state.slot_follow.clone(), state.slot_clicks.clone()
    time_h = torch.full_like(state.time_h, 50.0)
    slot_author[:, 0], slot_author[:, 1] = authors[:, 0], authors[:, 1]
    slot_affinity[:, 0], slot_affinity[:, 1] = 1.5, 0.8
    slot_time[:, 0], slot_time[:, 1] = 40.0, 20.0
    slot_follow[:, 0] = True
    slot_clicks[:, 0], slot_clicks[:, 1] = 4.0, 1.0
    # the same author twice on a slate would make the hand computation ambiguous: the test's users have none
    assert bool((authors[:, 0] != authors[:, 1]).all())
    return replace(state, time_h=time_h, slot_author=slot_author, slot_affinity=slot_affinity, slot_time=slot_time,
                   slot_follow=slot_follow, slot_clicks=slot_clicks)


# --- the choice model and the funnel, by hand ----------------------------------------------------------------


def hand_affinity(sim: RecommendationSim, state: UserState, authors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decayed affinity ``[B, K]`` and whether the user follows each author, from the slots by a loop."""
    s = sim.scenario
    decay = math.log(2.0) / (24.0 * s.affinity_halflife_days)
    affinity = np.zeros(authors.shape)
    follows = np.zeros(authors.shape, dtype=bool)
    slot_author = state.slot_author.numpy()
    for b, k in itertools.product(range(authors.shape[0]), range(authors.shape[1])):
        for m in range(s.pair_slots):
            if slot_author[b, m] == authors[b, k]:
                since = float(state.time_h[b]) - float(state.slot_time[b, m])
                affinity[b, k] = float(state.slot_affinity[b, m]) * math.exp(-decay * since)
                follows[b, k] = bool(state.slot_follow[b, m])
                break
    return affinity, follows


def hand_response(sim: RecommendationSim, state: UserState, slate: torch.Tensor) -> dict[str, np.ndarray]:
    """The multinomial logit ``[B, K + 1]`` (column 0: no click) and the expected click, follow and revenue,
    in float64 from the scenario's parameters and the catalog's traits."""
    s = sim.scenario
    items = np.take_along_axis(state.candidates.numpy(), slate.numpy(), 1)
    authors = items % s.n_authors
    traits = sim.catalog.items(torch.as_tensor(items))
    quality, bait = traits.quality.double().numpy(), traits.bait.double().numpy()
    style = sim.catalog.style.double().numpy()[authors]  # [B, K, D]
    relevance = np.einsum("bd,bkd->bk", state.interest.double().numpy(), style)
    affinity, follows = hand_affinity(sim, state, authors)
    position = np.log1p(np.arange(slate.shape[1]))
    utility = (s.click_relevance * relevance + s.click_quality * quality + s.click_bait * bait
               + s.click_affinity * affinity - s.click_position * position[None, :]
               + s.click_satisfaction * state.satisfaction.double().numpy()[:, None])
    logits = np.concatenate([np.full((items.shape[0], 1), s.click_none), utility], 1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)

    def sigmoid(x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-x))

    p_follow = np.where(follows, 0.0, sigmoid(s.follow_base + s.follow_affinity * affinity))
    gift_logit = s.gift_base + s.gift_affinity * affinity
    # following after the click: already, or newly with probability p_follow
    p_gift = np.where(follows, sigmoid(gift_logit + s.gift_following),
                      p_follow * sigmoid(gift_logit + s.gift_following) + (1 - p_follow) * sigmoid(gift_logit))
    click = p[:, 1:]
    return {"p": p, "click": click.sum(1), "follow": (click * p_follow).sum(1), "gift": (click * p_gift).sum(1),
            "revenue": (click * p_gift).sum(1) * s.gift_value}


@pytest.mark.parametrize("related", [False, True])
def test_click_probabilities_are_the_logit_computed_by_hand(related: bool) -> None:
    sim = RecommendationSim(scenario())
    state = sim.reset(6, torch.Generator().manual_seed(1))
    slate = torch.tensor([[0, 1, 2], [5, 3, 1], [19, 0, 7], [2, 4, 6], [8, 9, 10], [11, 12, 13]])
    if related:
        state = with_relationships(sim, state, slate)
    else:
        assert bool((state.slot_author == -1).all())  # a first visit: no relationship, affinity 0
    p = sim.click_probabilities(state, slate)
    hand = hand_response(sim, state, slate)
    assert p.shape == (6, 4)
    np.testing.assert_allclose(p.double().numpy(), hand["p"], rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(p.double().sum(1).numpy(), 1.0, atol=1e-6)
    expected = sim.expected_response(state, slate)
    for name in ("click", "follow", "revenue"):
        np.testing.assert_allclose(expected[name].double().numpy(), hand[name], rtol=5e-5, atol=1e-9)


def test_monte_carlo_clicks_follows_and_gifts_match_the_exact_response() -> None:
    s = scenario(click_none=3.0, follow_base=-1.0, gift_base=-2.5, gift_value=7.0)
    sim = RecommendationSim(s)
    users, copies = 4, 25_000
    base = sim.reset(users, torch.Generator().manual_seed(2))
    slate = torch.tensor([[0, 1, 2], [4, 2, 9], [13, 17, 3], [6, 5, 11]])
    base = with_relationships(sim, base, slate)
    index = torch.arange(users).repeat_interleave(copies)
    state, big_slate = rows(base, index), slate[index]
    u = torch.rand(users * copies, EXOGENOUS, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    result = sim.step(state, big_slate, u)
    info = {name: value.reshape(users, copies).double() for name, value in result.info.items()}
    p = sim.click_probabilities(base, slate).double()
    expected = sim.expected_response(base, slate)
    hand = hand_response(sim, base, slate)
    # exact: each position's frequency (−1: no click)
    for k in range(-1, s.slate_size):
        freq = (info["clicked_position"] == k).double().mean(1)
        pk = p[:, k + 1]
        se = torch.sqrt(pk * (1 - pk) / copies)
        assert bool(((freq - pk).abs() <= Z * se).all()), (k, freq, pk)
    assert bool((info["clicks"] == (info["clicked_position"] >= 0).double()).all())
    for name in ("clicks", "follows", "revenue"):
        mean = info[name].mean(1)
        se = info[name].std(1) / math.sqrt(copies)
        truth = expected[{"clicks": "click", "follows": "follow", "revenue": "revenue"}[name]].double()
        assert bool((mean > 0).all()), name  # the rates are measurable
        assert bool(((mean - truth).abs() <= Z * se).all()), (name, mean, truth, se)
    gifts = info["gifts"].mean(1).numpy()
    np.testing.assert_array_less(np.abs(gifts - hand["gift"]), Z * np.sqrt(hand["gift"] * (1 - hand["gift"]) / copies))
    # a gift's value is exponential with mean gift_value
    values = info["revenue"][info["gifts"] > 0]
    assert bool((info["revenue"][info["gifts"] == 0] == 0).all())
    assert abs(float(values.mean()) - s.gift_value) <= Z * s.gift_value / math.sqrt(values.numel())
    # a follow needs a click on an author not yet followed: never on the followed slot-0 author
    followed_first = (info["follows"] > 0) & (info["clicked_position"] == 0)
    assert not bool(followed_first.any())


# --- retrieval ----------------------------------------------------------------------------------------------


def check_candidates(sim: RecommendationSim, state: UserState) -> None:
    s = sim.scenario
    c = state.candidates
    assert c.dtype == torch.long and c.shape[1] == s.n_candidates
    assert bool(((c >= 0) & (c < s.n_items)).all())
    assert all(len(set(row)) == s.n_candidates for row in c.tolist())
    k = torch.arange(s.n_candidates)
    lo, hi = k * s.n_items // s.n_candidates, (k + 1) * s.n_items // s.n_candidates
    assert bool(((c >= lo) & (c < hi)).all())  # candidate k from the k-th stratum
    assert torch.equal(state.candidate_author, c % s.n_authors)
    # the platform sees each candidate's catalog popularity (its first item feature)
    assert torch.equal(sim.observe(state)["items"][..., 0], sim.catalog.items(c).popularity)


def test_candidates_are_distinct_catalog_items_with_their_authors() -> None:
    sim = RecommendationSim(scenario(days=1))
    state = sim.reset(64, torch.Generator().manual_seed(4))
    policy = random_policy(sim.scenario, sim.device)
    gen = torch.Generator().manual_seed(5)
    for _ in range(5):
        check_candidates(sim, state)
        state = sim.step(state, policy.act(sim.observe(state)), sim.sample_exogenous(64, 1, gen)[:, 0]).state
    check_candidates(sim, state)
    assert bool((state.slot_author >= 0).any())  # some relationships by now


def test_related_candidates_come_from_the_users_relationships() -> None:
    s = scenario(related_share=1.0)
    sim = RecommendationSim(s)
    b = 256
    state = sim.reset(b, torch.Generator().manual_seed(6))
    mine = torch.stack([torch.randperm(s.n_authors, generator=torch.Generator().manual_seed(i))[:3]
                        for i in range(b)])
    slot_author = state.slot_author.clone()
    slot_author[:, 2:5] = mine  # filled slots need not be the first ones
    state = sim.retrieve(replace(state, slot_author=slot_author),
                         torch.rand(b, generator=torch.Generator().manual_seed(7), dtype=torch.float64))
    check_candidates(sim, state)
    # every author has items in every stratum (1000 ids, 200 authors): all candidates are by the user's authors
    assert bool((state.candidate_author[:, :, None] == mine[:, None, :]).any(-1).all())
    # with no relationship, related_share does not apply
    fresh = sim.reset(8, torch.Generator().manual_seed(8))
    check_candidates(sim, fresh)


def test_a_related_author_without_items_in_the_stratum_falls_back_to_a_uniform_candidate() -> None:
    # strata of 20 ids over 200 authors: author 5 has items 5 and 205 (strata 0 and 10), author 25 has 25 and
    # 225 (strata 1 and 11); each candidate picks one of the two uniformly, and a uniform item of the stratum
    # when that author has none there
    s = scenario(n_items=400, n_authors=200, n_candidates=20, related_share=1.0)
    sim = RecommendationSim(s)
    b = 4000
    state = sim.reset(b, torch.Generator().manual_seed(9))
    slot_author = state.slot_author.clone()
    slot_author[:, 0], slot_author[:, 1] = 5, 25
    state = sim.retrieve(replace(state, slot_author=slot_author),
                         torch.rand(b, generator=torch.Generator().manual_seed(10), dtype=torch.float64))
    check_candidates(sim, state)
    p = 0.5 + 0.5 / 20  # its author's item, or a uniform one of 20 that happens to be it
    for stratum, item in ((0, 5), (10, 205), (1, 25), (11, 225)):
        freq = float((state.candidates[:, stratum] == item).double().mean())
        assert abs(freq - p) <= Z * math.sqrt(p * (1 - p) / b), (stratum, freq)
    # elsewhere neither author has an item: uniform over the stratum's 20 ids
    uniform = state.candidates[:, 5] - 100  # stratum 5 is ids 100..119
    assert bool(((uniform >= 0) & (uniform < 20)).all())
    counts = torch.bincount(uniform, minlength=20).double()
    assert float(((counts - b / 20) ** 2 / (b / 20)).sum()) < 45.3  # χ²₁₉ at 0.999


def test_the_related_share_of_candidates() -> None:
    s = scenario(related_share=0.3)
    sim = RecommendationSim(s)
    b = 2000
    state = sim.reset(b, torch.Generator().manual_seed(11))
    mine = torch.stack([torch.randperm(s.n_authors, generator=torch.Generator().manual_seed(100 + i))[:s.pair_slots]
                        for i in range(b)])
    state = sim.retrieve(replace(state, slot_author=mine),
                         torch.rand(b, generator=torch.Generator().manual_seed(12), dtype=torch.float64))
    hit = (state.candidate_author[:, :, None] == mine[:, None, :]).any(-1).double()
    # related with probability 0.3; otherwise uniform in a stratum of 1000 ids, 5 of each author's
    p = 0.3 + 0.7 * s.pair_slots / s.n_authors
    n = hit.numel()
    assert abs(float(hit.mean()) - p) <= Z * math.sqrt(p * (1 - p) / n)


# --- the catalog --------------------------------------------------------------------------------------------


def splitmix64(x: int) -> int:
    """SplitMix64's finaliser on Python integers modulo 2^64 (the reference of ``catalog.mix``)."""
    mask = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_mix_is_splitmix64_and_hash_uniform_is_uniform() -> None:
    keys = [0, 1, 2, 12345, 2**40 + 7, 2**62 + 3, -1, -(2**63), 2**63 - 1, -987654321]
    got = mix(torch.tensor(keys, dtype=torch.long)).tolist()
    assert [g & ((1 << 64) - 1) for g in got] == [splitmix64(k & ((1 << 64) - 1)) for k in keys]
    u = hash_uniform(torch.arange(200_000, dtype=torch.long) * 3 + 10**12, 5)
    assert u.dtype == torch.float64 and bool(((u >= 0) & (u < 1)).all())
    n = u.numel()
    assert abs(float(u.mean()) - 0.5) <= Z * math.sqrt(1 / 12 / n)
    assert abs(float(u.var()) - 1 / 12) <= Z * math.sqrt(1 / 180 / n)  # Var of (U − ½)² is 1/180
    counts = torch.histc(u.float(), bins=50, min=0.0, max=1.0)
    assert float(((counts - n / 50) ** 2 / (n / 50)).sum()) < 85.4  # χ²₄₉ at 0.999


def test_catalog_traits_are_functions_of_the_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    s = scenario()
    first, second = Catalog(s), Catalog(s)
    assert first.table is not None
    assert torch.equal(first.style, second.style) and torch.equal(first.craft, second.craft)
    assert torch.allclose(first.style.norm(dim=1), torch.ones(s.n_authors))
    ids = torch.randint(0, s.n_items, (7, 9), generator=torch.Generator().manual_seed(13))
    a, b = first.items(ids), second.items(ids.flip(0))
    traits = [f.name for f in fields(a)]
    assert {"author", "quality", "bait", "popularity"} <= set(traits)
    for name in traits:
        assert torch.equal(getattr(a, name), getattr(b, name).flip(0)), name
    assert torch.equal(a.author, ids % s.n_authors)
    # the hashed path gives the table's values
    monkeypatch.setattr(catalog_module, "TABLE_ITEMS", 100)
    hashed = Catalog(s)
    assert hashed.table is None
    every = torch.arange(s.n_items)
    table, hashes = first.items(every), hashed.items(every)
    for name in traits:
        assert torch.equal(getattr(table, name), getattr(hashes, name)), name
    # the traits' laws: a bait_share of clickbait with levels in [0.5, 1], quality in [0, 1]
    bait = table.bait > 0
    share = float(bait.double().mean())
    assert abs(share - s.bait_share) <= Z * math.sqrt(s.bait_share * (1 - s.bait_share) / s.n_items)
    assert bool(((table.bait[bait] >= 0.5) & (table.bait[bait] <= 1.0)).all())
    assert bool(((table.quality >= 0) & (table.quality <= 1)).all())
    # another catalog seed is another catalog
    other = Catalog(scenario(catalog_seed=1))
    assert not torch.equal(other.items(every).quality, table.quality)


def test_ids_near_10_to_the_12_are_hashed_exactly() -> None:
    s = scenario(n_items=10**12, n_users=10**12)
    cat = Catalog(s)
    assert cat.table is None
    ids = torch.tensor([10**12 - 1, 10**12 - 2, 999_999_999_937, 2**24 + 1, 2**24, 5], dtype=torch.long)
    traits = cat.items(ids)
    assert traits.author.tolist() == [i % s.n_authors for i in ids.tolist()]
    for f in fields(traits):
        assert bool(torch.isfinite(getattr(traits, f.name)).all()), f.name
    assert bool(((traits.quality >= 0) & (traits.quality <= 1)).all())
    again = Catalog(s).items(ids.flip(0))
    for f in fields(traits):
        assert torch.equal(getattr(again, f.name).flip(0), getattr(traits, f.name)), f.name
    # neighbours above 2^24 differ (float32 would have merged them)
    assert traits.popularity[3] != traits.popularity[4] or traits.quality[3] != traits.quality[4]
    sim = RecommendationSim(s)
    state = sim.reset(16, torch.Generator().manual_seed(14))
    check_candidates(sim, state)
    assert int(state.candidates.max()) > 9 * 10**11  # the top stratum holds ids near 10^12


# --- episodes -----------------------------------------------------------------------------------------------


def test_a_user_whose_satisfaction_reaches_zero_leaves_and_is_inert() -> None:
    s = scenario(click_none=20.0, satisfaction_skip=0.01)  # nobody clicks: every request costs 0.01
    sim = RecommendationSim(s)
    state = sim.reset(4, torch.Generator().manual_seed(15))
    state = replace(state, satisfaction=torch.tensor([0.005, 0.5, 0.005, 0.5]))
    slate = torch.tensor([[0, 1, 2]] * 4)
    gen = torch.Generator().manual_seed(16)
    result = sim.step(state, slate, sim.sample_exogenous(4, 1, gen)[:, 0])
    assert result.terminated.tolist() == [True, False, True, False]
    assert result.truncated.tolist() == [False] * 4
    assert result.info["churned"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert result.info["requests"].tolist() == [1.0] * 4  # the last request counts
    assert result.elapsed[0] == 0 and result.elapsed[1] > 0
    left = result.state
    assert left.alive.tolist() == [False, True, False, True]
    for _ in range(5):
        before = left
        result = sim.step(before, slate, sim.sample_exogenous(4, 1, gen)[:, 0])
        left = result.state
        dead = torch.tensor([True, False, True, False])
        assert bool(result.terminated[dead].all()) and not bool(result.truncated[dead].any())
        for name in ("requests", "clicks", "follows", "gifts", "revenue", "session_end", "churned"):
            assert bool((result.info[name][dead] == 0).all()), name
        assert bool((result.reward[dead] == 0).all()) and bool((result.elapsed[dead] == 0).all())
        for f in fields(UserState):
            if not f.name.startswith("candidate"):  # the next request's candidates are drawn regardless
                assert torch.equal(getattr(left, f.name)[dead], getattr(before, f.name)[dead]), f.name


def test_the_horizon_truncates_and_the_user_is_then_inert() -> None:
    s = scenario(days=1, session_continue=20.0)  # the session goes on: the next request is request_gap_h later
    sim = RecommendationSim(s)
    state = sim.reset(3, torch.Generator().manual_seed(17))
    state = replace(state, time_h=torch.tensor([23.99, 23.0, 23.985], dtype=torch.float64))
    slate = torch.tensor([[0, 1, 2]] * 3)
    gen = torch.Generator().manual_seed(18)
    result = sim.step(state, slate, sim.sample_exogenous(3, 1, gen)[:, 0])
    assert result.truncated.tolist() == [True, False, True]
    assert result.terminated.tolist() == [False] * 3
    np.testing.assert_allclose(result.state.time_h.numpy(), [24.01, 23.02, 24.005])
    before = result.state
    result = sim.step(before, slate, sim.sample_exogenous(3, 1, gen)[:, 0])
    assert result.truncated.tolist() == [True, False, True]
    assert result.info["requests"].tolist() == [0.0, 1.0, 0.0]
    assert result.elapsed[0] == 0 and result.elapsed[2] == 0
    assert result.state.time_h[0] == before.time_h[0] and result.state.requests[0] == before.requests[0]


def test_run_counts_the_requests_before_the_horizon_or_the_exit() -> None:
    s = scenario(days=1, max_requests_per_day=400, satisfaction_skip=0.08, n_users=1000)
    sim = RecommendationSim(s)
    b, horizon = 48, s.max_requests
    start = sim.reset(b, torch.Generator().manual_seed(19))
    paths = sim.sample_exogenous(b, horizon, torch.Generator().manual_seed(20))
    policy = popularity(s, sim.device)
    # by hand: step every row through the whole budget, counting the requests made before each row's end
    state, requests, clicks, revenue = start, torch.zeros(b), torch.zeros(b), torch.zeros(b, dtype=torch.float64)
    ended = torch.zeros(b, dtype=torch.bool)
    for t in range(horizon):
        counted = (state.time_h < 24.0) & ~state.churned & ~ended
        result = sim.step(state, policy.act(sim.observe(state)), paths[:, t])
        requests += counted.float()
        clicks += torch.where(counted, result.info["clicks"], 0.0).float()
        revenue += torch.where(counted, result.info["revenue"], 0.0)
        ended |= result.terminated | result.truncated
        state = result.state
    assert bool(ended.all())  # the budget is not what ended them
    assert bool(state.churned.any()) and bool(state.over.any())  # both ends occur
    done = run(sim, policy, state=start, exogenous=paths,
               reducers={"requests": Sum("requests"), "clicks": Sum("clicks"), "revenue": Sum("revenue"),
                         "reward": Sum("reward")})
    assert done.totals["requests"].tolist() == requests.double().tolist()
    assert done.totals["clicks"].tolist() == clicks.double().tolist()
    np.testing.assert_allclose(done.totals["revenue"].numpy(), revenue.numpy(), rtol=1e-12)
    np.testing.assert_allclose(done.totals["reward"].numpy(), revenue.numpy(), rtol=1e-6)
    assert done.steps < horizon  # the run stopped once every user had ended
    # the episode's requests are also the state's own count
    assert done.final_state.requests.double().tolist() == requests.double().tolist()


def test_step_is_pure() -> None:
    sim = RecommendationSim(scenario())
    state = sim.reset(32, torch.Generator().manual_seed(21))
    policy = random_policy(sim.scenario, sim.device)
    gen = torch.Generator().manual_seed(22)
    for _ in range(3):
        state = sim.step(state, policy.act(sim.observe(state)), sim.sample_exogenous(32, 1, gen)[:, 0]).state
    kept = clone(state)
    action = policy.act(sim.observe(state))
    u = sim.sample_exogenous(32, 1, gen)[:, 0]
    first = sim.step(state, action, u)
    for f in fields(UserState):
        assert torch.equal(getattr(state, f.name), getattr(kept, f.name)), f.name
    second = sim.step(state, action, u)  # and deterministic given its inputs
    for f in fields(UserState):
        assert torch.equal(getattr(first.state, f.name), getattr(second.state, f.name)), f.name
    assert torch.equal(first.reward, second.reward)


def test_users_above_2_24_keep_their_ids_and_their_tastes() -> None:
    s = scenario(n_users=10**12)
    sim = RecommendationSim(s)
    ids = [2**40 + 1, 2**40 + 2, 2**40 + 1, 2**24 + 1, 2**24]
    state = sim.start(torch.tensor(ids), torch.rand(5, generator=torch.Generator().manual_seed(23),
                                                    dtype=torch.float64))
    assert state.user.dtype == torch.long and state.user.tolist() == ids
    assert torch.equal(state.interest[0], state.interest[2])
    assert not torch.equal(state.interest[0], state.interest[1])
    assert not torch.equal(state.interest[3], state.interest[4])
    alone = sim.start(torch.tensor([2**40 + 2]), torch.zeros(1, dtype=torch.float64))
    assert torch.equal(alone.interest[0], state.interest[1])  # the same user in another batch
    assert torch.allclose(state.interest.norm(dim=1), torch.ones(5))
    # the ids survive a step
    after = sim.step(state, torch.tensor([[0, 1, 2]] * 5), sim.sample_exogenous(5, 1)[:, 0]).state
    assert after.user.tolist() == ids
    # drawn users: every id below n_users, not rounded to a float32's 2^16 steps near 10^12
    drawn = sim.reset(256, torch.Generator().manual_seed(24)).user
    assert bool(((drawn >= 0) & (drawn < s.n_users)).all())
    assert bool((drawn % 2**16 != 0).any())


# --- the exposure Gini ---------------------------------------------------------------------------------------


def brute_gini(x: np.ndarray) -> float:
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size * x.sum()))


def test_gini_influence_has_the_brute_force_gini_as_mean_and_the_jackknife_spread() -> None:
    rng = np.random.default_rng(25)
    e, n = 400, 30
    rates = rng.gamma(0.7, 2.0, size=n)
    counts = rng.poisson(rates[None, :] * rng.uniform(0.2, 3.0, size=(e, 1)))
    influence = gini_influence(counts)
    total = counts.sum(0)
    assert influence.shape == (e,)
    assert influence.mean() == pytest.approx(brute_gini(total.astype(float)), rel=1e-12)
    # the jackknife standard error of the Gini of the summed counts
    leave_one_out = np.array([brute_gini((total - counts[i]).astype(float)) for i in range(e)])
    jackknife = math.sqrt((e - 1) / e * ((leave_one_out - leave_one_out.mean()) ** 2).sum())
    linear = influence.std(ddof=1) / math.sqrt(e)
    assert 0.7 <= linear / jackknife <= 1.4, (linear, jackknife)
    # even exposure has Gini 0; all of it on one author has (n − 1) / n
    assert gini_influence(np.ones((5, 4))) == pytest.approx(np.zeros(5))
    one = np.zeros((3, 4))
    one[:, 2] = [1.0, 2.0, 3.0]
    assert gini_influence(one).mean() == pytest.approx(3 / 4)
    assert gini_influence(np.zeros((3, 4))).tolist() == [0.0] * 3


def test_episode_metrics_count_impressions_requests_and_sessions() -> None:
    """Per user: impressions are slate_size per request, each on the shown items' author bins; a session is a
    run of requests, the one still open at the end included (counted by hand over the same random numbers)."""
    s = scenario(days=1, n_users=1000, n_authors=50, n_items=5000, max_requests_per_day=200, satisfaction_skip=0.08)
    b, seed = 24, 26
    policy = popularity(s, torch.device("cpu"))
    values = episode_metrics(s, policy, b, seed=seed, device=torch.device("cpu"))
    sim = RecommendationSim(s)
    gen = make_generator(seed, "cpu")
    state = sim.reset(b, gen)
    paths = sim.sample_exogenous(b, s.max_requests, gen)  # the engine's one chunk of the same generator
    requests, clicks, sessions = np.zeros(b), np.zeros(b), np.zeros(b)
    exposure = np.zeros((b, s.n_authors))
    starts = np.ones(b, dtype=bool)  # the next request opens a session
    for t in range(s.max_requests):
        live = state.alive.numpy().copy()
        action = policy.act(sim.observe(state))
        result = sim.step(state, action, paths[:, t])
        authors = torch.gather(state.candidate_author, 1, action).numpy()
        for i in np.flatnonzero(live):
            requests[i] += 1
            clicks[i] += float(result.info["clicks"][i])
            sessions[i] += starts[i]
            starts[i] = bool(result.info["session_end"][i])
            np.add.at(exposure[i], authors[i], 1.0)
        state = result.state
        if not bool(state.alive.any()):
            break
    assert not bool(state.alive.any())
    np.testing.assert_array_equal(values["exposure"], exposure)
    np.testing.assert_array_equal(values["exposure"].sum(1), s.slate_size * requests)
    np.testing.assert_allclose(values["ctr"], clicks / requests, rtol=1e-12)
    np.testing.assert_allclose(values["session_length"], requests / sessions, rtol=1e-12)
    np.testing.assert_array_equal(values["retention"], 1.0 - state.churned.double().numpy())


# --- Plackett–Luce ------------------------------------------------------------------------------------------


def plackett_luce(weights: list[float], slate: tuple[int, ...]) -> float:
    left, p = sum(weights), 1.0
    for j in slate:
        p *= weights[j] / left
        left -= weights[j]
    return p


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_slate_log_probability_is_plackett_luce_by_enumeration(temperature: float) -> None:
    scores = torch.tensor([[0.3, -1.2, 2.0, 0.9]], dtype=torch.float64)
    present = torch.ones(1, 4, dtype=torch.bool)
    weights = [math.exp(x / temperature) for x in scores[0].tolist()]
    slates = list(itertools.permutations(range(4), 2))
    assert len(slates) == 12
    logp = slate_log_probability(scores.expand(12, 4), present.expand(12, 4), torch.tensor(slates), temperature)
    np.testing.assert_allclose(logp.exp().numpy(), [plackett_luce(weights, sl) for sl in slates], rtol=1e-10)
    assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-12)
    # an absent candidate is never chosen and takes no share
    absent = torch.tensor([[True, True, False, True]])
    masked = slate_log_probability(scores.expand(12, 4), absent.expand(12, 4), torch.tensor(slates), temperature)
    without = [w if j != 2 else 0.0 for j, w in enumerate(weights)]
    for sl, value in zip(slates, masked.exp().tolist(), strict=True):
        assert value == pytest.approx(0.0 if 2 in sl else plackett_luce(without, sl), rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_slate_log_probability_holds_at_a_low_temperature(dtype: torch.dtype) -> None:
    # one candidate holds nearly all the mass: the share left after it is a difference of nearly equal numbers,
    # which cancels to log(0) unless the log-sum-exp is taken over what is left
    scores = torch.tensor([[3.0, 1.0, 2.0, 0.5]], dtype=dtype)
    present = torch.ones(1, 4, dtype=torch.bool)
    temperature = 0.01
    logits = (scores[0] / temperature).double().tolist()

    def exact(slate: list[int]) -> float:  # Plackett–Luce in logs, by hand
        left, total = list(range(4)), 0.0
        for j in slate:
            top = max(logits[i] for i in left)
            total += logits[j] - top - math.log(sum(math.exp(logits[i] - top) for i in left))
            left.remove(j)
        return total

    slates = [[0, 2, 1], [0, 1, 2], [2, 0, 3]]
    logp = slate_log_probability(scores.expand(3, 4), present.expand(3, 4), torch.tensor(slates), temperature)
    assert bool(torch.isfinite(logp).all()) and bool((logp <= 0).all())
    np.testing.assert_allclose(logp.double().numpy(), [exact(sl) for sl in slates], rtol=1e-5)
    assert float(logp[0]) == pytest.approx(0.0, abs=1e-6)  # the deterministic order, probability ~1


def test_temperature_zero_is_the_top_k() -> None:
    scores = torch.tensor([[0.3, -1.2, 2.0, 0.9]])
    present = torch.ones(1, 4, dtype=torch.bool)
    slates = torch.tensor(list(itertools.permutations(range(4), 2)))
    logp = slate_log_probability(scores.expand(12, 4), present.expand(12, 4), slates, 0.0)
    best = slates.tolist().index([2, 3])
    assert logp[best] == 0.0
    assert bool(torch.isneginf(torch.cat([logp[:best], logp[best + 1:]])).all())
    assert top_k(scores, present, 2).tolist() == [[2, 3]]
    assert top_k(scores, torch.tensor([[True, True, False, True]]), 2).tolist() == [[3, 0]]
    assert sample_slate(scores, present, 2, 0.0).tolist() == [[2, 3]]


def test_sampled_slates_have_the_plackett_luce_frequencies() -> None:
    temperature, draws = 0.8, 120_000
    scores = torch.tensor([[0.3, -1.2, 2.0, 0.9]])
    present = torch.tensor([[True, True, True, True]])
    sampled = sample_slate(scores.expand(draws, 4), present.expand(draws, 4), 2, temperature,
                           torch.Generator().manual_seed(27))
    assert sampled.dtype == torch.long and bool((sampled[:, 0] != sampled[:, 1]).all())
    slates = list(itertools.permutations(range(4), 2))
    p = slate_log_probability(scores.double().expand(12, 4), present.expand(12, 4), torch.tensor(slates),
                              temperature).exp().numpy()
    code = (sampled[:, 0] * 4 + sampled[:, 1]).numpy()
    freq = np.array([(code == a * 4 + b).mean() for a, b in slates])
    se = np.sqrt(p * (1 - p) / draws)
    np.testing.assert_array_less(np.abs(freq - p), Z * se)
    chi2 = float((draws * (freq - p) ** 2 / p).sum())
    assert chi2 < 31.3  # χ²₁₁ at 0.999
    # absent candidates are never drawn
    some = sample_slate(scores.expand(5000, 4), torch.tensor([[True, False, True, True]]).expand(5000, 4), 3,
                        temperature, torch.Generator().manual_seed(28))
    assert not bool((some == 1).any())


@pytest.mark.parametrize(("update", "field"), [
    ({"slate_size": 51}, "slate_size"),
    ({"satisfaction_rest": 10.0, "satisfaction_max": 5.0}, "satisfaction_rest"),
    ({"satisfaction_start": 3.0}, "satisfaction_start"),  # above the default satisfaction_max of 2
    ({"n_authors": 1_000_000, "style_dim": 64, "n_items": 10**7}, "n_authors × style_dim"),
])
def test_inconsistent_scenarios_are_refused_naming_the_field(update: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RecommendationScenario(**{**PRESETS["short_video"].model_dump(), **update})


def test_top_k_breaks_ties_toward_the_earlier_candidate() -> None:
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    present = torch.ones(2, 5, dtype=torch.bool)
    assert top_k(scores, present, 3).tolist() == [[1, 2, 4], [0, 1, 2]]
    # an absent candidate is never picked, whatever its score
    assert top_k(scores, torch.tensor([[True, False, True, True, True]] * 2), 3).tolist() == [[2, 4, 3], [0, 2, 3]]
    # against torch.topk where there are no ties, on a batch with absent candidates
    generator = torch.Generator().manual_seed(5)
    scores, present = torch.randn(512, 30, generator=generator), torch.rand(512, 30, generator=generator) > 0.3
    present[:, :6] = True
    expected = torch.topk(torch.where(present, scores, -torch.inf), 5, dim=-1).indices
    assert torch.equal(top_k(scores, present, 5), expected)
    # fewer present candidates than slots: the present ones first, and no candidate twice
    few = torch.tensor([[True, False, False, True, False]])
    slate = top_k(torch.tensor([[0.5, 9.0, 8.0, 0.7, 7.0]]), few, 3)
    assert slate[0, :2].tolist() == [3, 0] and len(set(slate[0].tolist())) == 3
