"""The catalog: latent traits of users, authors and items as pure functions of their integer ids.

Item ``i`` is by author ``i mod n_authors`` (so the items of an author are ``a, a + A, a + 2A, …``). Authors
have a content ``style`` (a unit vector, stored as a table ``[A, D]``) and a ``craft`` (their items' mean
quality). An item's ``quality`` in [0, 1], ``bait`` (clickbait, 0 for most), ``completion`` (the share of
views watched to the end the platform has measured: quality plus noise, lower for clickbait) and ``popularity`` (the
aggregate engagement the platform has seen, log scale) are hashes of ``(catalog_seed, item id)``: no
table, so ids up to 10^13 cost nothing (catalogs up to ``TABLE_ITEMS`` tabulate the same values once, for
speed). A user's initial interest is a hash of its id too: the same user id always starts with the same tastes.

Hashing is the core's SplitMix64 on int64 tensors (:mod:`decisionlab.core.hashing`), exact and the same on every
device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from decisionlab.core import hash_uniform
from decisionlab.domains.recommendation.scenario import RecommendationScenario


def hash_normal(key: torch.Tensor, salt: int) -> torch.Tensor:
    """A standard normal per ``key`` (Box–Muller on two hashed uniforms)."""
    u1 = hash_uniform(key, 2 * salt + 1).clamp_min(1e-300)
    u2 = hash_uniform(key, 2 * salt + 2)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)


TABLE_ITEMS = 1 << 22
"""Catalogs up to this many items keep their traits in a table (64 MB at most): a gather is ~20× cheaper than
the hashes, and the values are the same."""

# salts of the independent streams
_STYLE, _CRAFT, _QUALITY, _BAIT, _BAIT_LEVEL, _POPULAR, _INTEREST, _COMPLETION = 11, 12, 13, 14, 15, 16, 17, 18


_SIGNAL_ROWS = (2, 3)
"""The rows of a tabulated catalog (``Catalog.table``, in ``_hashed``'s order: quality, bait, popularity,
completion) that the platform sees: popularity and completion."""

_CATALOGS: dict[tuple[str, str], Catalog] = {}


@dataclass(frozen=True)
class ItemTraits:
    """Traits of items ``[...]``: ``author [...]`` int64, ``quality``, ``bait``, ``popularity``, ``completion``
    float32 (the last two are what the platform sees: :attr:`signals`)."""

    author: torch.Tensor
    quality: torch.Tensor
    bait: torch.Tensor
    popularity: torch.Tensor
    completion: torch.Tensor

    @property
    def signals(self) -> torch.Tensor:
        """``[..., 2]``: popularity and completion, the item statistics the platform has."""
        return torch.stack([self.popularity, self.completion], -1)


def catalog_of(scenario: RecommendationScenario, device: torch.device | str = "cpu") -> Catalog:
    """The scenario's catalog, built once per scenario and device (its tables take a moment)."""
    key = (scenario.fingerprint(), str(torch.device(device)))
    if key not in _CATALOGS:
        if len(_CATALOGS) >= 4:
            _CATALOGS.pop(next(iter(_CATALOGS)))
        _CATALOGS[key] = Catalog(scenario, device)
    return _CATALOGS[key]


class Catalog:
    """The traits of a scenario's users, authors and items on ``device`` (module docstring)."""

    def __init__(self, scenario: RecommendationScenario, device: torch.device | str = "cpu") -> None:
        self.scenario, self.device = scenario, torch.device(device)
        s = scenario
        self.seed = int(s.catalog_seed) * 1_000_003 + 7
        authors = torch.arange(s.n_authors, dtype=torch.long, device=self.device)
        dims = torch.arange(s.style_dim, dtype=torch.long, device=self.device)
        keys = (self.seed + authors[:, None]) * 64 + dims[None, :]
        style = hash_normal(keys, _STYLE)
        self.style = (style / style.norm(dim=1, keepdim=True).clamp_min(1e-9)).float()  # [A, D]
        self.craft = (0.25 + 0.5 * hash_uniform(self.seed + authors, _CRAFT)).float()  # [A] mean item quality
        self.table: torch.Tensor | None = None  # [4, n_items]: quality, bait, popularity, completion
        if s.n_items <= TABLE_ITEMS:
            ids = torch.arange(s.n_items, dtype=torch.long, device=self.device)
            self.table = torch.stack(self._hashed(ids, torch.remainder(ids, s.n_authors)))

    def items(self, ids: torch.Tensor) -> ItemTraits:
        """Traits of item ``ids [...]`` (int64): read from the tables of a small catalog, hashed otherwise."""
        author = torch.remainder(ids, self.scenario.n_authors)
        if self.table is not None:  # one flat gather per trait: ~2.5× faster than indexing the [4, n] table
            return ItemTraits(author, *(torch.take(trait, ids) for trait in self.table))
        return ItemTraits(author, *self._hashed(ids, author))

    def signals(self, ids: torch.Tensor) -> torch.Tensor:
        """``[..., 2]``: the popularity and completion of item ``ids [...]`` (:attr:`ItemTraits.signals`), without
        the traits the platform does not see."""
        if self.table is not None:
            return torch.stack([torch.take(self.table[row], ids) for row in _SIGNAL_ROWS], -1)
        return self.items(ids).signals

    def _hashed(self, ids: torch.Tensor, author: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s = self.scenario
        key = ids * 31 + self.seed
        bait = torch.where(hash_uniform(key, _BAIT) < s.bait_share, 0.5 + 0.5 * hash_uniform(key, _BAIT_LEVEL), 0.0)
        # clickbait is made cheaply: its quality is lower
        quality = (self.craft[author] + 0.3 * (hash_uniform(key, _QUALITY) - 0.5) - 0.3 * bait).clamp(0.0, 1.0)
        # what the platform has seen: engagement grows with quality and with bait, and is noisy
        popularity = s.click_quality * quality + s.click_bait * bait + 0.5 * hash_normal(key, _POPULAR)
        completion = (quality + 0.1 * hash_normal(key, _COMPLETION)).clamp(0.0, 1.0)
        return quality.float(), bait.float(), popularity.float(), completion.float()

    def interest(self, users: torch.Tensor) -> torch.Tensor:
        """The initial interest (a unit vector) of user ``users [B]``: ``[B, D]``."""
        dims = torch.arange(self.scenario.style_dim, dtype=torch.long, device=self.device)
        keys = (self.seed + users[:, None] * 7) * 64 + dims[None, :]
        raw = hash_normal(keys, _INTEREST)
        return (raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-9)).float()

    def items_of(self, authors: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """A uniformly chosen item of each author ``authors [...]`` from uniforms ``u [...]``."""
        s = self.scenario
        count = torch.div(s.n_items - authors + s.n_authors - 1, s.n_authors, rounding_mode="floor")
        k = (u * count.double()).long().clamp(max=count - 1)
        return authors + s.n_authors * k
