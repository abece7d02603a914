"""The recommendation domain's named HTTP route, mounted under ``/v1/recommendation`` next to the core's ``/act``,
``/schema`` and ``/policies``: a thin wrapper over the core serving path.

- ``POST /rank``: a user's request (the user, its history and relationships, up to 1,000 candidate item ids) →
  the ranked slate with each item's score and propensity and the slate's propensity (``serve.py``).

Client mistakes are 422s naming the field: no candidates or more than 1,000 (``candidates``), a repeated or
unknown item (``candidates[3]``), a slate larger than the candidates (``slate_size``), an unknown user
(``user_id``), an unknown or repeated author (``relationships[0].author_id``).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from fastapi import APIRouter, Depends
from pydantic import ConfigDict, Field

from decisionlab.core import Answered, PolicyCache, act_one, device_of, envelope, policies_of, serve_request
from decisionlab.domains.recommendation import SPEC
from decisionlab.domains.recommendation.serve import SERVING, RankedItem, RankState

RankEnvelope = envelope(SPEC, policy="popularity", scenario="short_video")


class RankRequest(RankEnvelope, RankState):  # type: ignore[misc, valid-type]
    """The envelope and one request: the request *is* the state the policy answers."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "scenario": "short_video", "policy": "popularity", "user_id": 42,
        "candidates": [1001, 2002, 3003, 4004, 5005, 6006], "slate_size": 3, "requests": 12, "clicks": 3,
        "relationships": [{"author_id": 1, "clicks": 2, "follows": False, "hours_since": 20.0}]}]})


class RankResponse(Answered):
    slate: list[RankedItem] = Field(description="the ranked slate, best first")
    slate_propensity: float = Field(description="probability of the whole slate (the product of the propensities)")
    decision_ms: float = Field(description="server time to rank (milliseconds)")


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/rank", response_model=RankResponse)
    async def rank_route(request: RankRequest, policies: PolicyCache = Depends(policies_of),
                         device: torch.device = Depends(device_of)) -> RankResponse:
        """The ranked slate of a request's candidates.

        Errors: 404 unknown policy or scenario; 422 invalid parameters or request (names the field); 503 with
        Retry-After while an expensive policy (``ctr_greedy``: fitted once per scenario) is being built."""

        def work() -> tuple[dict[str, Any], dict[str, Any], float]:
            start = time.perf_counter()
            head, ranking = act_one(SPEC, request, request, policies, device)
            return head, ranking, (time.perf_counter() - start) * 1000.0

        head, ranking, elapsed_ms = await serve_request(work, SERVING.request_cost([request]))
        return RankResponse(**head, **ranking, decision_ms=elapsed_ms)

    return router
