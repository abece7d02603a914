"""A click model learned from logged slates: a conditional (multinomial) logit with a no-click option.

For a request with user features ``u [U]`` and the shown items' features ``x_k [F]`` at positions ``k``, the
model's utility of item ``k`` is ``w · φ(u, x_k) + p_k`` (``φ``: the item's features and their products with
the user's, ``p_k``: a learned position effect, ``p_0 = 0``) against a no-click utility ``b``; the probability
of a click on ``k`` is ``exp(u_k) / (exp(b) + Σ_j exp(u_j))``. It is the choice model the simulator uses, with
the platform's features in place of the user's hidden state, fitted by maximum likelihood (L-BFGS, a small
ridge) on the logged slates. Ranking by ``w · φ`` puts the best item at the best position: the greedy slate
maximises the predicted click probability (the rearrangement inequality, for position effects that fall).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from decisionlab.domains.recommendation.sim import ITEM_FEATURES, USER_FEATURES


def pair_features(user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """``φ [..., N, F + F·U]``: item features ``items [..., N, F]`` and their products with ``user [..., U]``."""
    cross = (items[..., :, :, None] * user[..., None, None, :]).flatten(-2)
    return torch.cat([items, cross], -1)


PAIR_FEATURES = ITEM_FEATURES * (1 + USER_FEATURES)


@dataclass(frozen=True)
class SlateLog:
    """Logged requests: ``user [N, U]``, ``items [N, K, F]`` (the shown items' features in slate order),
    ``clicked [N]`` int64 (the clicked position, −1: none)."""

    user: torch.Tensor
    items: torch.Tensor
    clicked: torch.Tensor


class ClickModel(nn.Module):
    """The conditional logit of the module docstring (the learned part of ``ctr_greedy`` and the reward model of
    doubly robust estimates)."""

    kind: ClassVar[str] = "recommendation_click_model"

    def __init__(self, slate_size: int) -> None:
        super().__init__()
        self.slate_size = slate_size
        self.weight = nn.Parameter(torch.zeros(PAIR_FEATURES))
        self.position = nn.Parameter(torch.zeros(slate_size))  # position 0's effect is fixed at 0
        self.none = nn.Parameter(torch.tensor(2.0))

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "slate_size": self.slate_size}

    def item_utility(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``[..., N]``: ``w · φ`` of each item (no position effect): what ranking sorts by."""
        return pair_features(user, items) @ self.weight

    def slate_logits(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``[B, K + 1]``: the no-click logit and each position's."""
        offsets = self.position - self.position[0]
        utility = self.item_utility(user, items) + offsets[: items.shape[-2]]
        return torch.cat([self.none.expand(utility.shape[0], 1), utility], -1)

    def click_probabilities(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``[B, K + 1]``: predicted probabilities of no click and of a click at each position."""
        return torch.softmax(self.slate_logits(user, items), -1)

    def fit(self, log: SlateLog, ridge: float = 1e-3, iterations: int = 60) -> float:
        """Maximum likelihood on ``log`` (in place); returns the final mean negative log-likelihood."""
        target = (log.clicked + 1).long()  # 0: no click
        optimizer = torch.optim.LBFGS(self.parameters(), lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            nll = nn.functional.cross_entropy(self.slate_logits(log.user, log.items), target)
            loss = nll + ridge * self.weight.square().sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        with torch.no_grad():
            return float(nn.functional.cross_entropy(self.slate_logits(log.user, log.items), target))
