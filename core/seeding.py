"""Seeding and common random numbers.

Every source of exogenous randomness takes an explicit ``torch.Generator``. Evaluations give
each policy a generator built from the same seed, so all policies face identical demand (or
price, or arrival) paths and their differences are paired.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch's global generators (for code that does not take a generator)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh generator on ``device`` seeded with ``seed``: the unit of common random numbers."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(int(seed))
    return gen


def derive_seed(seed: int, *tags: str | int) -> int:
    """A stable child seed for a named stream (e.g. ``derive_seed(0, "train")``), independent of hash salt."""
    acc = int(seed) & 0xFFFFFFFF
    for position, tag in enumerate(tags):
        # 0xFF never occurs in UTF-8, so it marks where one tag ends: ("a", "b") != ("ab",).
        for byte in (b"\xff" if position else b"") + str(tag).encode():
            acc = (acc * 1_000_003 + byte) & 0xFFFFFFFFFFFF
    return acc % (2**63 - 1)


def child_generator(generator: torch.Generator | None, device: torch.device | str) -> torch.Generator:
    """A generator on ``device`` seeded by one draw from ``generator`` (torch's global generator when
    None): a trainer's own randomness (exploration, shuffling) derived from the caller's stream."""
    seed_device = generator.device if generator is not None else "cpu"
    seed = int(torch.randint(2**62, (1,), generator=generator, device=seed_device))
    return make_generator(seed, device)
