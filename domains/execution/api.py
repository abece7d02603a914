"""HTTP routes of the execution domain, mounted by the API server under ``/v1/execution``.

- ``POST /schedule``: an order, a horizon and model parameters → the child-order schedule of a static policy
  (``static_expected``, ``ac_optimal``, ``twap``, ``vwap``) with its expected shortfall E and variance V.
- ``POST /next-trade``: live states of orders in flight → the next child order of each, from a baseline or a
  registered network (``execution/pathwise_latent_liquidity@1``, ``pathwise_latent_liquidity``).
- ``GET /policies``: baselines and registered execution networks.

The registry and the device come from ``request.app.state`` when the API server mounts the router, else
``$DECISIONLAB_HOME`` and :func:`~decisionlab.core.device.get_device`. Every client error is a 4xx naming
the field (``states[2].remaining_shares``, ``parameters: ...``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core.policy import Policy
from decisionlab.core.serving import device_of, policy_listing, registry_of, request_scenario, serving_policy
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.execution import SPEC, oracles
from decisionlab.domains.execution.policies import SchedulePolicy
from decisionlab.domains.execution.scenario import ExecutionScenario
from decisionlab.domains.execution.sim import ExecutionSim

MAX_BATCH = 10_000
STATIC_POLICIES = ("static_expected", "static_best", "ac_optimal", "twap", "vwap")
Price = Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)]


class OrderFields(BaseModel):
    """Scenario selection shared by both requests; ``shares``/``side``/``horizon_steps`` are shortcuts for
    the parameters of the same names."""

    model_config = ConfigDict(extra="forbid")

    scenario: str = Field("almgren_chriss", min_length=1, max_length=100, description="scenario preset name")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="scenario parameter overrides, e.g. {\"sigma\": 0.3, \"risk_aversion\": 1e-6}",
    )
    shares: float | None = Field(None, gt=0, le=1e12, allow_inf_nan=False, description="parent order size X")
    side: Literal["sell", "buy"] | None = Field(None, description="'sell' or 'buy'")
    horizon_steps: int | None = Field(None, ge=1, le=1000, description="number of child orders N")


class ScheduleRequest(OrderFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"scenario": "almgren_chriss", "shares": 1e6, "horizon_steps": 5,
                                         "parameters": {"risk_aversion": 1e-6}, "policy": "ac_optimal"}]},
    )

    policy: Literal["static_expected", "static_best", "ac_optimal", "twap", "vwap"] = Field(
        "static_expected", description="static policy whose schedule to return"
    )


class ScheduleResponse(BaseModel):
    policy: str
    scenario: dict[str, Any] = Field(description="all resolved scenario parameters")
    holdings: list[float] = Field(description="shares left after each step, x_0 = X … x_N = 0 (N + 1 values)")
    trades: list[float] = Field(description="child order of each step (N values, shares)")
    expected_shortfall: float = Field(description="E, expected implementation shortfall (currency)")
    variance: float = Field(description="V, variance of the shortfall (currency²; impact variance included)")
    std_shortfall: float = Field(description="√V (currency)")
    mean_variance_objective: float = Field(description="E + λ·V")
    expected_shortfall_bps: float = Field(description="E in basis points of the arrival value X·S0")


class LastFill(BaseModel):
    """The previous child order's fill: reveals the current temporary impact (η ≈ (slippage − ε)/shares)."""

    model_config = ConfigDict(extra="forbid")

    shares: float = Field(gt=0, le=1e12, allow_inf_nan=False, description="shares filled")
    price: Price = Field(description="average fill price")
    mid_before: Price = Field(description="mid price just before the child order")


class LiveState(BaseModel):
    """An order in flight at the moment of deciding its next child order."""

    model_config = ConfigDict(extra="forbid")

    steps_done: int = Field(ge=0, le=1000, description="child orders already sent (0 at arrival)")
    remaining_shares: float = Field(ge=0, le=1e12, allow_inf_nan=False, description="shares still to trade")
    price: Price | None = Field(None, description="current mid price (default: the arrival price)")
    previous_price: Price | None = Field(None, description="mid price one step ago (default: price)")
    last_fill: LastFill | None = Field(None, description="fill of the previous child order, if any")


class NextTradeRequest(OrderFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "policy": "static_expected", "scenario": "latent_liquidity",
            "states": [{"steps_done": 2, "remaining_shares": 6.5e5, "price": 49.8, "previous_price": 49.9,
                        "last_fill": {"shares": 1.8e5, "price": 49.2, "mid_before": 49.9}}],
        }]},
    )

    policy: str = Field(
        "static_expected", min_length=1, max_length=200,
        description="a baseline (see GET /v1/execution/policies) or a registry reference: execution/name@version, "
        "name@version or name",
    )
    states: list[LiveState] = Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH:,} live states")


class NextTradeResponse(BaseModel):
    policy: str
    scenario: dict[str, Any]
    trades: list[float] = Field(description="next child order per state (shares, in the order's direction)")
    remaining_after: list[float] = Field(description="shares left after that child order")


# --- dependencies -----------------------------------------------------------------------------


# --- the work ---------------------------------------------------------------------------------


def resolve_scenario(request: OrderFields) -> ExecutionScenario:
    """The preset with ``parameters`` and the order shortcuts applied; errors name the field."""
    overrides = dict(request.parameters)
    for name in ("shares", "side", "horizon_steps"):
        value = getattr(request, name)
        if value is None:
            continue
        if name in overrides and overrides[name] != value:
            raise RequestValidationError([{
                "type": "conflict", "loc": ("body", name), "input": value,
                "msg": f"given as {value!r} and as parameters.{name}={overrides[name]!r}: give it once",
            }])
        overrides[name] = value
    scenario = request_scenario(SPEC, request.scenario, overrides)
    assert isinstance(scenario, ExecutionScenario)
    return scenario


def schedule(policy: str, scenario: ExecutionScenario) -> ScheduleResponse:
    """The static schedule of ``policy`` with its E and V under ``scenario``."""
    built = SPEC.policy(policy).build(scenario, torch.device("cpu"))
    assert isinstance(built, SchedulePolicy)
    moments = oracles.moments(scenario, built.holdings)
    return ScheduleResponse(
        policy=policy,
        scenario=scenario.describe(),
        holdings=built.holdings.tolist(),
        trades=built.trades.tolist(),
        expected_shortfall=moments.expected,
        variance=moments.variance,
        std_shortfall=moments.std,
        mean_variance_objective=moments.objective(scenario.risk_aversion),
        expected_shortfall_bps=moments.expected / scenario.notional * 1e4,
    )


def check_states(states: list[LiveState], scenario: ExecutionScenario, limit: int = 10) -> None:
    """422 naming ``states[i].<field>`` for states that cannot occur in ``scenario``."""
    errors = []
    for i, state in enumerate(states):
        if state.steps_done >= scenario.horizon_steps:
            errors.append({"type": "out_of_horizon", "loc": ("body", "states", i, "steps_done"),
                           "input": state.steps_done,
                           "msg": f"must be below horizon_steps={scenario.horizon_steps} (the order is complete)"})
        if state.remaining_shares > scenario.shares * (1 + 1e-9):
            errors.append({"type": "too_many_shares", "loc": ("body", "states", i, "remaining_shares"),
                           "input": state.remaining_shares,
                           "msg": f"cannot exceed the order size shares={scenario.shares:g}"})
    if errors:
        raise RequestValidationError(errors[:limit])


def observations(states: list[LiveState], scenario: ExecutionScenario, device: torch.device) -> torch.Tensor:
    """``[B, 7]`` observations in the simulator's layout from live states."""
    s = scenario
    arrival = s.initial_price
    price = np.array([st.price if st.price is not None else arrival for st in states])
    previous = np.array([st.previous_price if st.previous_price is not None else now
                         for st, now in zip(states, price, strict=True)])
    observed = np.ones(len(states))
    for i, st in enumerate(states):
        if st.last_fill is not None:
            slippage = s.sign * (st.last_fill.mid_before - st.last_fill.price)  # per share, + = cost
            observed[i] = max(slippage - s.epsilon, 0.0) / st.last_fill.shares / s.eta

    def col(values: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values), dtype=dtype, device=device)

    sim = ExecutionSim(scenario, device)
    return sim.observation(
        col([st.steps_done for st in states], torch.long),
        col([st.remaining_shares for st in states]),
        col(price - arrival),
        col(price - previous),
        col(observed),
    )


@torch.no_grad()
def next_trades(policy: Policy, states: list[LiveState], scenario: ExecutionScenario,
                device: torch.device) -> tuple[list[float], list[float]]:
    """Child orders for ``states``: the policy's choice clamped to [0, remaining], all of it at the last step."""
    obs = observations(states, scenario, device)
    trades = policy.act(obs).reshape(-1).double().cpu()
    if trades.numel() != len(states) or not bool(torch.isfinite(trades).all()):
        raise RuntimeError(f"policy {getattr(policy, 'name', policy)!r} returned invalid trades")
    remaining = torch.tensor([st.remaining_shares for st in states], dtype=torch.float64)
    last = torch.tensor([st.steps_done == scenario.horizon_steps - 1 for st in states])
    trades = torch.where(last, remaining, torch.minimum(trades.clamp_min(0.0), remaining))
    return trades.tolist(), (remaining - trades).tolist()


# --- routes -----------------------------------------------------------------------------------


def build_router() -> APIRouter:
    """The execution routes (mounted under ``/v1/execution`` by the server)."""
    router = APIRouter()

    @router.post("/schedule", response_model=ScheduleResponse)
    def schedule_route(request: ScheduleRequest) -> ScheduleResponse:
        """Child-order schedule of a static policy with its expected shortfall E and variance V.

        Errors: 404 unknown scenario; 422 invalid parameters or order fields (names the field).
        """
        return schedule(request.policy, resolve_scenario(request))

    @router.post("/next-trade", response_model=NextTradeResponse)
    def next_trade_route(
        request: NextTradeRequest,
        registry: PolicyRegistry = Depends(registry_of),
        device: torch.device = Depends(device_of),
    ) -> NextTradeResponse:
        """The next child order for each live state, from a baseline or a registered network.

        Errors: 404 unknown policy or scenario; 422 invalid parameters or states (names the field), or a
        registered network trained for another horizon.
        """
        scenario = resolve_scenario(request)
        check_states(request.states, scenario)
        label, policy = serving_policy(SPEC, request.policy, scenario, device, registry)
        trades, left = next_trades(policy, request.states, scenario, device)
        return NextTradeResponse(policy=label, scenario=scenario.describe(), trades=trades, remaining_after=left)

    @router.get("/policies")
    def policies(registry: PolicyRegistry = Depends(registry_of)) -> dict[str, Any]:
        """Baselines (by name) and registered execution networks (by reference)."""
        listing = policy_listing(SPEC, registry)
        for name, entry in listing["baselines"].items():
            entry["static"] = name in STATIC_POLICIES
        return listing

    return router
