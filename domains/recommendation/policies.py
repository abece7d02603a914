"""Baselines: ``random``, ``popularity`` and ``ctr_greedy`` (a click model fitted to the platform's logs).

Each scores the candidates of a request (``scores(obs) -> [B, C]``) and serves their top-K (``ranking.py``).
``ctr_greedy`` is trained as a platform would: on a log of random exposure (every slate uniformly random, as
KuaiRand's random-exposure part) of ``LOG_USERS`` simulated users over at most ``LOG_DAYS`` days, the
conditional-logit click model of ``click_model.py`` is fitted by maximum likelihood; the policy ranks by the
predicted click utility, which maximises the predicted click probability of the request.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import torch

from decisionlab.domains.recommendation.catalog import hash_uniform
from decisionlab.domains.recommendation.click_model import ClickModel
from decisionlab.domains.recommendation.collect import Interactions, collect
from decisionlab.domains.recommendation.ranking import Ranked, Sampled
from decisionlab.domains.recommendation.scenario import RecommendationScenario
from decisionlab.domains.recommendation.sim import RecommendationSim

LOG_USERS = 2_000
LOG_DAYS = 7
LOG_SEED = 20_261_206


class RandomScores:
    """Scores that are a hash of the candidate's id and the request (the same request gets the same slate:
    paired evaluations and the API are deterministic)."""

    def scores(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        request = (obs["user"] * 1_000.0).round().long().sum(-1, keepdim=True)
        return hash_uniform(obs["candidates"] * 1_000_003 + request, 41).float()


class PopularityScores:
    """The aggregate engagement the platform has seen for each item (``signals[..., 0]``, the first item
    feature): no feature of the user is read."""

    def scores(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return obs["signals"][..., 0]


class ClickScores:
    """A click model's utility of each candidate for this user."""

    def __init__(self, model: ClickModel) -> None:
        self.model = model

    def scores(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return self.model.item_utility(obs["user"], obs["items"])


def random_policy(scenario: RecommendationScenario, device: torch.device) -> Ranked:
    return Ranked(RandomScores(), scenario.slate_size, "random")


def popularity(scenario: RecommendationScenario, device: torch.device) -> Ranked:
    return Ranked(PopularityScores(), scenario.slate_size, "popularity")


def ctr_greedy(scenario: RecommendationScenario, device: torch.device) -> Ranked:
    return Ranked(ClickScores(fitted_click_model(scenario, str(device))), scenario.slate_size, "ctr_greedy")


def exposure_log(scenario: RecommendationScenario, device: torch.device | str, users: int = LOG_USERS,
                 seed: int = LOG_SEED) -> Interactions:
    """The platform's random-exposure log: uniformly random slates for ``users`` users over at most
    ``LOG_DAYS`` days."""
    log_scenario = scenario.model_copy(update={"days": min(scenario.days, LOG_DAYS)})
    sim = RecommendationSim(log_scenario, device)
    logger = Sampled(_Flat(), scenario.slate_size, 1.0, torch.Generator(device).manual_seed(seed), "random exposure")
    return collect(sim, logger, users, seed)


class _Flat:
    """Equal scores: the Plackett–Luce ranking of them is a uniformly random slate."""

    def scores(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.zeros(obs["candidates"].shape, device=obs["candidates"].device)


@dataclass(frozen=True)
class PlatformModels:
    """What the platform fits to its random-exposure log once per scenario: ``ctr_greedy``'s click model and
    the mean revenue per click (the revenue model of doubly robust estimates, ``ope.py``)."""

    click_model: ClickModel
    revenue_per_click: float


@lru_cache(maxsize=8)
def platform_models(scenario: RecommendationScenario) -> PlatformModels:
    """The scenario's :class:`PlatformModels`, fitted once (on CPU) from one random-exposure log."""
    log = exposure_log(scenario, "cpu")
    model = ClickModel(scenario.slate_size)
    model.fit(log.slate_log())
    clicks = max(float((log.clicked >= 0).sum()), 1.0)
    return PlatformModels(model.eval(), float(log.revenue.sum()) / clicks)


@lru_cache(maxsize=8)
def fitted_click_model(scenario: RecommendationScenario, device: str) -> ClickModel:
    """``ctr_greedy``'s click model on ``device``."""
    return copy.deepcopy(platform_models(scenario).click_model).to(device).eval()
