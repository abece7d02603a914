"""The market-making domain's named HTTP route, mounted under ``/v1/market-making`` next to the
core's ``/act``, ``/schema`` and ``/policies``.

- ``POST /quotes``: quoting states (mid, inventory, time left, recent flow features) → bid and ask
  prices and sizes, from a baseline (``avellaneda_stoikov``, ``symmetric``, ``glft``,
  ``glft_approx``) or a registered policy: the core serving path (``/act``) with the response
  fields spelled out per side.

Every client error is a 4xx naming the field (``states[2].inventory``, ``parameters: ...``); GLFT
without ``max_inventory`` is a 422 that says to set it.
"""

from __future__ import annotations

import torch
from fastapi import APIRouter, Depends
from pydantic import ConfigDict, Field

from decisionlab.core import (
    Answered,
    PolicyCache,
    act,
    answered,
    device_of,
    envelope,
    policies_of,
    request_cost,
    serve_request,
)
from decisionlab.domains.market_making import SPEC
from decisionlab.domains.market_making.serve import QuoteState

MAX_BATCH = 10_000


class QuotesRequest(envelope(SPEC, policy="avellaneda_stoikov", scenario="avellaneda_stoikov")):  # type: ignore[misc]
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{
            "policy": "glft", "scenario": "glft_bounded", "parameters": {"risk_aversion": 0.1},
            "states": [{"mid": 100.3, "inventory": 2, "time_left": 0.6, "previous_mid": 100.25}],
        }]},
    )

    states: list[QuoteState] = Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH:,} states")


class QuotesResponse(Answered):
    """Quotes for each state, in order, and what decided them."""

    bid_prices: list[float] = Field(description="bid price per state")
    ask_prices: list[float] = Field(description="ask price per state")
    bid_sizes: list[int] = Field(description="units bid per state (0: no bid, e.g. at +max_inventory)")
    ask_sizes: list[int] = Field(description="units offered per state (0: no ask, e.g. at −max_inventory)")


def build_router() -> APIRouter:
    """The market-making routes (mounted under ``/v1/market-making`` by the server)."""
    router = APIRouter()

    @router.post("/quotes", response_model=QuotesResponse)
    async def quotes_route(
        request: QuotesRequest,
        policies: PolicyCache = Depends(policies_of),
        device: torch.device = Depends(device_of),
    ) -> QuotesResponse:
        """Bid and ask prices and sizes for each state, from a baseline or a registered policy.

        Errors: 404 unknown policy or scenario; 422 invalid parameters or states (names the field), or a
        policy that cannot serve the scenario (GLFT without max_inventory).
        """
        body = await serve_request(
            lambda: act(SPEC, request.scenario, request.parameters, request.policy, request.states, policies,
                        device, allow_extrapolation=request.allow_extrapolation),
            request_cost(SPEC, request.scenario, request.parameters, request.states))
        actions = body["actions"]
        return QuotesResponse(
            **answered(body),
            bid_prices=[a["bid_price"] for a in actions], ask_prices=[a["ask_price"] for a in actions],
            bid_sizes=[a["bid_size"] for a in actions], ask_sizes=[a["ask_size"] for a in actions],
        )

    return router
