"""Logged interactions: every served slate with its propensity, the user's response, and the next request.

:func:`collect` runs a policy through the simulator with the core rollout engine and a hook that keeps, per
request (one row per user and request, the rows of users who left or whose horizon passed dropped): the ids,
the platform's features of the shown items, the response, the log-propensity of the slate under a stochastic
logging policy (``Sampled``; 0 for a deterministic one) and, for value learning with the adjacent-request
approximation, the same items' features at the user's *next* request with the hours until it.
:meth:`Interactions.to_frame` writes them in the KuaiRand layout (one row per impression, ``logs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import polars as pl
import torch

from decisionlab.core import Step, make_generator, run
from decisionlab.domains.recommendation.click_model import SlateLog
from decisionlab.domains.recommendation.sim import RecommendationSim, UserState

MS_PER_HOUR = 3_600_000


@dataclass(frozen=True)
class Interactions:
    """``N`` logged requests. Ids: ``user_id [N]``, ``items``, ``authors [N, K]`` int64; ``time_h [N]``
    float64; ``episode``, ``request [N]`` int64 (the user's row and the request's index in the run); the
    platform's features ``user [N, U]``, ``features [N, K, F]``; the response ``clicked [N]`` int64 (position,
    −1: none), ``followed``, ``gifted [N]`` bool, ``revenue [N]``; ``logging_logp [N]``; the next request:
    ``next_user [N, U]``, ``next_features [N, K, F]`` (the same items then), ``elapsed_h [N]`` and ``last [N]``
    bool (the user left or the horizon passed: there is no next request)."""

    user_id: torch.Tensor
    items: torch.Tensor
    authors: torch.Tensor
    time_h: torch.Tensor
    episode: torch.Tensor
    request: torch.Tensor
    user: torch.Tensor
    features: torch.Tensor
    clicked: torch.Tensor
    followed: torch.Tensor
    gifted: torch.Tensor
    revenue: torch.Tensor
    logging_logp: torch.Tensor
    next_user: torch.Tensor
    next_features: torch.Tensor
    elapsed_h: torch.Tensor
    last: torch.Tensor

    def __len__(self) -> int:
        return int(self.user_id.shape[0])

    def slate_log(self) -> SlateLog:
        return SlateLog(self.user, self.features, self.clicked)

    def to(self, device: torch.device | str) -> Interactions:
        return Interactions(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def to_frame(self, start_ms: int = 0) -> pl.DataFrame:
        """One row per impression in the KuaiRand layout with our optional columns (``request_id``,
        ``position``, ``logging_logp``, ``is_gift``, ``gift_value``)."""
        n, k = self.items.shape
        position = torch.arange(k).expand(n, k)
        clicked = position == self.clicked.cpu()[:, None]
        time_ms = (self.time_h.cpu() * MS_PER_HOUR).round().long() + start_ms
        request_id = torch.arange(n)
        return pl.DataFrame({
            "user_id": self.user_id.cpu()[:, None].expand(n, k).flatten().numpy(),
            "video_id": self.items.cpu().flatten().numpy(),
            "author_id": self.authors.cpu().flatten().numpy(),
            "time_ms": time_ms[:, None].expand(n, k).flatten().numpy(),
            "is_click": clicked.flatten().to(torch.int8).numpy(),
            "is_follow": (clicked & self.followed.cpu()[:, None]).flatten().to(torch.int8).numpy(),
            "request_id": request_id[:, None].expand(n, k).flatten().numpy(),
            "position": position.flatten().numpy(),
            "logging_logp": self.logging_logp.cpu().double()[:, None].expand(n, k).flatten().numpy(),
            "is_gift": (clicked & self.gifted.cpu()[:, None]).flatten().to(torch.int8).numpy(),
            "gift_value": torch.where(clicked, self.revenue.cpu().double()[:, None], 0.0).flatten().numpy(),
        })


class Recorder:
    """The engine hook that keeps the rows of :class:`Interactions` (module docstring)."""

    def __init__(self, sim: RecommendationSim, policy: object) -> None:
        self.sim, self.policy = sim, policy
        self.parts: list[dict[str, torch.Tensor]] = []

    def __call__(self, step: Step) -> None:
        state: UserState = step.state
        nxt: UserState = step.result.state
        live = state.alive if step.alive is None else state.alive & step.alive
        slate = step.action.long()
        items = torch.gather(state.candidates, 1, slate)
        authors = torch.gather(state.candidate_author, 1, slate)
        signals = torch.gather(state.candidate_signals, 1, slate[..., None].expand(-1, -1, 2))
        logp = getattr(self.policy, "last_logp", None)
        info = step.result.info
        rows = live.nonzero()[:, 0]
        part = {
            "user_id": state.user, "items": items, "authors": authors, "time_h": state.time_h,
            "episode": torch.arange(slate.shape[0], device=slate.device),
            "request": torch.full_like(state.user, step.t),
            "user": step.obs["user"], "features": torch.gather(
                step.obs["items"], 1, slate[..., None].expand(-1, -1, step.obs["items"].shape[-1])),
            "clicked": info["clicked_position"].long(), "followed": info["follows"].bool(),
            "gifted": info["gifts"].bool(), "revenue": info["revenue"].float(),
            "logging_logp": torch.zeros_like(state.time_h) if logp is None else logp.double(),
            "next_user": self.sim.user_features(nxt),
            "next_features": self.sim.item_features(nxt, authors, signals),
            "elapsed_h": step.result.elapsed.double(), "last": ~nxt.alive,
        }
        self.parts.append({name: value[rows] for name, value in part.items()})

    def interactions(self) -> Interactions:
        return Interactions(**{name: torch.cat([p[name] for p in self.parts]) for name in self.parts[0]})


def collect(sim: RecommendationSim, policy: object, users: int, seed: int, steps: int | None = None,
            state: UserState | None = None) -> Interactions:
    """The interactions of ``users`` simulated users (or those of ``state``) served by ``policy``."""
    recorder = Recorder(sim, policy)
    run(sim, policy, batch=None if state is not None else users, state=state,
        generator=make_generator(seed, sim.device), steps=steps, hooks=[recorder])
    return recorder.interactions()
