"""Contextual single-store lost-sales inventory: one batch, one policy, many set-ups.

Every row ``b`` of a batch carries its own *context*: lead time ``L_b ∈ {0..L_max}``, holding cost
``h_b``, lost-sales penalty ``p_b``, demand mean ``μ_b`` and standard deviation ``σ_b`` (one demand
family, Poisson or normal, per simulator). The pipeline is padded to ``L_max`` slots: row ``b``
uses slots ``0..L_b−1`` (oldest first) and keeps the others at zero, and a new order enters slot
``L_b − 1`` (with ``L_b = 0`` it arrives at once). Row by row the dynamics are exactly those of
:class:`~decisionlab.domains.inventory.single_store.sim.SingleStoreSim`; the batch is stepped without any loop
over rows.

:class:`ContextualOrderMLP` maps (state, context) to an order in units of mean demand;
:func:`policy_for` fixes the context of one :class:`LostSalesScenario` so the network acts on that
scenario's ordinary ``[B, 1 + L]`` observation (evaluation, the registry, the API).
Training lives in :mod:`.contextual_train`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from decisionlab.core import Box, PolicyMismatchError, Spaces, StepResult, make_generator, mlp
from decisionlab.domains.inventory.dynamics import receive_per_row, serve
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario

KIND = "contextual_order_mlp"
CONTEXT_FIELDS = ("lead_time", "holding_cost", "underage_cost", "demand_mean", "demand_std")
CONTEXT_SIZE = len(CONTEXT_FIELDS)


class ContextRanges(BaseModel):
    """The distribution contexts are drawn from (training) and the set a trained policy accepts.

    Lead times uniformly from ``lead_times``; ``h``, ``p`` and the demand mean log-uniformly on
    their ranges (a range ``(a, a)`` fixes the value); for normal demand the coefficient of
    variation uniformly on ``demand_cv``. Poisson demand has ``σ = √μ``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lead_times: tuple[int, ...] = Field((1, 2, 3, 4), min_length=1, description="lead times L drawn uniformly")
    holding_cost: tuple[float, float] = Field((1.0, 1.0), description="h, log-uniform on [lo, hi]")
    underage_cost: tuple[float, float] = Field((3.0, 50.0), description="p, log-uniform on [lo, hi]")
    demand_mean: tuple[float, float] = Field((3.0, 8.0), description="mean demand, log-uniform on [lo, hi]")
    demand_distribution: Literal["poisson", "normal"] = "poisson"
    demand_cv: tuple[float, float] = Field((0.2, 0.6), description="normal demand: coefficient of variation")

    @model_validator(mode="after")
    def _check(self) -> ContextRanges:
        if min(self.lead_times) < 0 or max(self.lead_times) > 30:
            raise ValueError("lead_times must lie in 0..30")
        for name in ("holding_cost", "underage_cost", "demand_mean", "demand_cv"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be a range 0 < lo <= hi, got ({lo}, {hi})")
        return self

    @property
    def max_lead_time(self) -> int:
        return max(self.lead_times)

    def sample(self, batch: int, generator: torch.Generator | None, device: torch.device | str) -> Context:
        """``batch`` contexts drawn from the ranges (one generator call per field, fixed order)."""

        def log_uniform(bounds: tuple[float, float]) -> torch.Tensor:
            u = torch.rand(batch, generator=generator, device=device)
            lo, hi = math.log(bounds[0]), math.log(bounds[1])
            return torch.exp(lo + (hi - lo) * u)

        choices = torch.tensor(self.lead_times, device=device)
        lead = choices[torch.randint(len(self.lead_times), (batch,), generator=generator, device=device)]
        holding, penalty, mean = log_uniform(self.holding_cost), log_uniform(self.underage_cost), log_uniform(
            self.demand_mean)
        cv_u = torch.rand(batch, generator=generator, device=device)
        if self.demand_distribution == "poisson":
            std = mean.sqrt()
        else:
            std = mean * (self.demand_cv[0] + (self.demand_cv[1] - self.demand_cv[0]) * cv_u)
        return Context(lead, holding, penalty, mean, std)

    def problem(self, scenario: LostSalesScenario) -> str | None:
        """Why a policy trained on these ranges should not serve ``scenario`` (``None``: it may).

        Actions depend on ``p / h`` only (costs scale with ``h``), so the ratio is what is checked."""
        ratio = scenario.underage_cost / scenario.holding_cost
        lo = self.underage_cost[0] / self.holding_cost[1]
        hi = self.underage_cost[1] / self.holding_cost[0]
        tol = 1e-6
        if scenario.demand_distribution != self.demand_distribution:
            return f"demand_distribution={scenario.demand_distribution}, trained on {self.demand_distribution}"
        if scenario.lead_time not in self.lead_times:
            return f"lead_time={scenario.lead_time}, trained on lead times {list(self.lead_times)}"
        if not lo * (1 - tol) <= ratio <= hi * (1 + tol):
            return f"underage_cost/holding_cost={ratio:g}, trained on [{lo:g}, {hi:g}]"
        if not self.demand_mean[0] * (1 - tol) <= scenario.demand_mean <= self.demand_mean[1] * (1 + tol):
            lo_mean, hi_mean = self.demand_mean
            return f"demand_mean={scenario.demand_mean:g}, trained on [{lo_mean:g}, {hi_mean:g}]"
        if self.demand_distribution == "normal" and not (
            self.demand_cv[0] * (1 - tol) <= scenario.demand_cv <= self.demand_cv[1] * (1 + tol)
        ):
            return f"demand_cv={scenario.demand_cv:g}, trained on [{self.demand_cv[0]:g}, {self.demand_cv[1]:g}]"
        return None


@dataclass(frozen=True)
class Context:
    """Per-row set-up, every field ``[B]``: lead time (long), h, p, demand mean and std (float)."""

    lead_time: torch.Tensor
    holding_cost: torch.Tensor
    underage_cost: torch.Tensor
    demand_mean: torch.Tensor
    demand_std: torch.Tensor

    @classmethod
    def of_scenario(cls, scenario: LostSalesScenario, batch: int, device: torch.device | str = "cpu") -> Context:
        """``scenario``'s set-up repeated on ``batch`` rows."""
        values = [scenario.holding_cost, scenario.underage_cost, scenario.demand_mean, scenario.demand_std]
        floats = [torch.full((batch,), float(v), device=device) for v in values]
        return cls(torch.full((batch,), scenario.lead_time, dtype=torch.long, device=device), *floats)

    @classmethod
    def from_columns(cls, columns: torch.Tensor) -> Context:
        """Inverse of :meth:`columns`: ``[B, 5]`` -> context."""
        lead, *rest = columns.unbind(1)
        return cls(torch.round(lead).long(), *rest)

    def columns(self) -> torch.Tensor:
        """``[B, 5]`` float: L, h, p, μ, σ (the order of :data:`CONTEXT_FIELDS`)."""
        return torch.stack([self.lead_time.to(self.demand_mean.dtype), self.holding_cost, self.underage_cost,
                            self.demand_mean, self.demand_std], dim=1)

    def where(self, mask: torch.Tensor, other: Context) -> Context:
        """Rows of ``other`` where ``mask [B]`` is true, else this context's rows."""
        return Context(*(torch.where(mask, b, a) for a, b in zip(self._fields(), other._fields(), strict=True)))

    def _fields(self) -> tuple[torch.Tensor, ...]:
        return (self.lead_time, self.holding_cost, self.underage_cost, self.demand_mean, self.demand_std)


def cost_scale(context: Context) -> torch.Tensor:
    """``[B]`` reference cost per period: the normal-approximation optimum of the *backlog* system
    with the same (L, h, p, σ), ``(h + p)·φ(z)·σ·√(L+1)`` with ``z = Φ⁻¹(p/(p+h))``.

    Dividing each row's cost by it makes every context weigh about the same in a loss averaged over
    contexts (the acceptance is a relative gap per context), instead of high-p, long-L rows
    dominating."""
    h, p = context.holding_cost, context.underage_cost
    z = math.sqrt(2.0) * torch.erfinv(2 * p / (p + h) - 1)
    density = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return (h + p) * density * context.demand_std * torch.sqrt(context.lead_time.to(h.dtype) + 1)


@dataclass(frozen=True)
class ContextState:
    """``on_hand [B]``; ``pipeline [B, L_max]`` (row b uses slots ``0..L_b−1``, oldest first, the
    rest stay 0); ``context``: each row's set-up (fixed during an episode)."""

    on_hand: torch.Tensor
    pipeline: torch.Tensor
    context: Context

    def detach(self) -> ContextState:
        return ContextState(self.on_hand.detach(), self.pipeline.detach(), self.context)


class ContextualStoreSim:
    """Single-store lost-sales simulator whose rows each have their own context (module docstring).

    The contexts are the simulator's parameters: a simulator bound to contexts
    (:meth:`with_contexts`, ``[n]`` rows) gives row ``b`` of any batch the context ``b mod n``; an
    unbound one draws its contexts from the ranges with ``context_seed`` (the same contexts for the
    same batch size), so :meth:`reset` and :meth:`sample_exogenous` agree within the simulator
    protocol. The state carries each row's context too, so :meth:`step` is a pure function of the
    state. Observation ``[B, 1 + L_max + 5]``: on hand, the padded pipeline, then the context columns
    ``L, h, p, μ, σ``. Demand ``[B, T]`` is drawn row by row from the row's mean (and std)."""

    differentiable = True

    def __init__(
        self, ranges: ContextRanges, device: torch.device | str = "cpu", contexts: Context | None = None,
        context_seed: int = 0,
    ) -> None:
        self.ranges = ranges
        self.device = torch.device(device)
        self.contexts = contexts
        self.context_seed = int(context_seed)
        self.max_lead_time = ranges.max_lead_time
        self.observation_size = 1 + self.max_lead_time + CONTEXT_SIZE
        top = ranges.demand_mean[1]
        spread = top**0.5 if ranges.demand_distribution == "poisson" else top * ranges.demand_cv[1]
        self.spaces = Spaces(
            observation=Box((self.observation_size,), description="on hand, the padded pipeline, then the context "
                            "columns L, h, p, μ, σ"),
            action=Box((), 0.0, unit="units", span=(0.0, float(top + 5 * spread + 1)), description="order quantity"),
        )
        self._slots = torch.arange(self.max_lead_time + 1, device=self.device)

    def with_contexts(self, contexts: Context) -> ContextualStoreSim:
        """The same simulator bound to ``contexts`` (one per row)."""
        return ContextualStoreSim(self.ranges, self.device, contexts, self.context_seed)

    def sample_contexts(self, batch: int, generator: torch.Generator | None = None) -> Context:
        return self.ranges.sample(batch, generator, self.device)

    def contexts_for(self, batch: int) -> Context:
        """The contexts of a batch of ``batch`` rows (see the class docstring)."""
        if self.contexts is None:
            return self.sample_contexts(batch, make_generator(self.context_seed, self.device))
        n = self.contexts.lead_time.shape[0]
        if n == batch:
            return self.contexts
        rows = torch.arange(batch, device=self.device) % n
        return Context(*(column[rows] for column in self.contexts._fields()))

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Demand ``[B, periods]`` with each row's mean (and std)."""
        context = self.contexts_for(batch)
        mean = context.demand_mean[:, None].expand(batch, periods)
        if self.ranges.demand_distribution == "poisson":
            return torch.poisson(mean.contiguous(), generator=generator)
        noise = torch.randn(batch, periods, generator=generator, device=self.device)
        return (mean + context.demand_std[:, None] * noise).clamp_min(0.0)

    def empty(self, context: Context) -> ContextState:
        """Empty store and pipeline for each row of ``context``."""
        batch = context.lead_time.shape[0]
        return ContextState(torch.zeros(batch, device=self.device),
                            torch.zeros(batch, self.max_lead_time, device=self.device), context)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> ContextState:
        """Empty stores with the batch's contexts."""
        return self.empty(self.contexts_for(batch))

    def spread_start(self, context: Context, generator: torch.Generator | None = None) -> ContextState:
        """On hand and each used pipeline slot ``~ U[0, 2μ_b]`` (unused slots 0): start states that a
        warm-up or a persistent batch washes out."""
        batch = context.lead_time.shape[0]
        scale = 2.0 * context.demand_mean
        on_hand = torch.rand(batch, generator=generator, device=self.device) * scale
        pipeline = torch.rand(batch, self.max_lead_time, generator=generator, device=self.device) * scale[:, None]
        return ContextState(on_hand, pipeline * self.slot_mask(context), context)

    def slot_mask(self, context: Context) -> torch.Tensor:
        """``[B, L_max]`` float: 1 on the pipeline slots row b uses."""
        return (self._slots[None, :-1] < context.lead_time[:, None]).to(context.demand_mean.dtype)

    def observe(self, state: ContextState) -> torch.Tensor:
        return torch.cat([state.on_hand[:, None], state.pipeline, state.context.columns()], dim=1)

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def step(self, state: ContextState, action: torch.Tensor, demand: torch.Tensor) -> StepResult[ContextState]:
        """One period for every row (:mod:`decisionlab.domains.inventory.dynamics`). ``action``: orders
        ``[B]`` or ``[B, 1]`` (negative read as 0); ``demand [B]``. Reward is minus the period's cost."""
        order = action.reshape(-1).clamp_min(0.0)
        ctx = state.context
        arriving, pipeline = receive_per_row(state.pipeline, order, ctx.lead_time, self._slots)
        on_hand, info = serve(state.on_hand, arriving, demand, ctx.holding_cost, ctx.underage_cost)
        info["order"] = order
        return StepResult(ContextState(on_hand, pipeline, ctx), -info["cost"], info)


class ContextualOrderMLP(nn.Module):
    """One order network for every context in ``ranges``.

    Input: the contextual observation ``[B, 1 + L_max + 5]``. Features (all quantities in units of
    the row's mean demand μ, so scale drops out): on hand and padded pipeline, inventory position,
    the slot mask, ``L / L_max``; the cost ratio as ``log(p/h)``, the fractile ``p/(p+h)`` and
    ``z = Φ⁻¹(p/(p+h))``; the coefficient of variation ``σ/μ``; a normal-approximation base-stock
    level ``(L+1) + z·(σ/μ)·√(L+1)`` and the inventory position minus it (base-stock-like rules
    are nearly right, so the network mostly learns a correction). Only ``p/h`` enters, not ``h``:
    scaling both costs scales the cost of every policy alike.

    ``forward``: continuous order ``softplus(mlp(features)) · μ`` ``[B]`` (what training
    differentiates). ``integer_orders``: :meth:`act` places ``round(forward + order_offset)``
    units, as :class:`~decisionlab.domains.inventory.single_store.policies.OrderMLP` does for integer demand.
    """

    name = "hdpo_contextual"
    kind = KIND

    def __init__(
        self,
        ranges: ContextRanges | dict[str, Any],
        hidden: tuple[int, ...] = (64, 64, 64),
        integer_orders: bool = False,
        order_offset: float = 0.0,
    ) -> None:
        super().__init__()
        self.ranges = ranges if isinstance(ranges, ContextRanges) else ContextRanges.model_validate(ranges)
        self.max_lead_time = self.ranges.max_lead_time
        self.hidden = tuple(int(h) for h in hidden)
        self.integer_orders = bool(integer_orders)
        self.order_offset = float(order_offset)
        self.net = mlp(self.feature_size, self.hidden, 1, activation="elu")
        with torch.no_grad():
            last = self.net[-1]
            last.weight.mul_(0.1)
            last.bias.fill_(math.log(math.e - 1.0))  # softplus(bias) = 1: order ≈ mean demand

    @property
    def feature_size(self) -> int:
        return 2 * self.max_lead_time + 9

    def config(self) -> dict[str, Any]:
        return {"kind": KIND, "ranges": self.ranges.model_dump(mode="json"), "hidden": list(self.hidden),
                "integer_orders": self.integer_orders, "order_offset": self.order_offset}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ContextualOrderMLP:
        return cls(config["ranges"], tuple(config["hidden"]), integer_orders=bool(config.get("integer_orders", False)),
                   order_offset=float(config.get("order_offset", 0.0)))

    @classmethod
    def initial(cls, scenario: LostSalesScenario, device: torch.device | str = "cpu") -> ContextualOrderMLP:
        """An untrained network over the default context ranges widened to contain ``scenario``."""
        return cls(ranges_covering(scenario)).to(device)

    def for_scenario(self, scenario: LostSalesScenario) -> ScenarioPolicy:
        """This network with its context fixed to ``scenario`` (checked to be within its training contexts)."""
        return policy_for(self, scenario)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        # Weights saved from a ScenarioPolicy carry a "network." prefix.
        return super().load_state_dict({k.removeprefix("network."): v for k, v in state_dict.items()}, strict, assign)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, 1 + L_max + 5]`` -> ``[B, 2·L_max + 9]``."""
        width = 1 + self.max_lead_time
        stock, ctx = obs[:, :width], obs[:, width:]
        lead, h, p, mean, std = ctx.unbind(1)
        scaled = stock / mean[:, None]
        position = scaled.sum(dim=1)
        slots = torch.arange(self.max_lead_time, device=obs.device)
        mask = (slots[None, :] < lead[:, None]).to(obs.dtype)
        ratio = p / h
        fractile = ratio / (1 + ratio)
        z = math.sqrt(2.0) * torch.erfinv(2 * fractile - 1)
        cv = std / mean
        level = (lead + 1) + z * cv * torch.sqrt(lead + 1)
        columns = [lead / max(1, self.max_lead_time), torch.log(ratio) - 2.3, fractile, z, cv, level / 4,
                   position / 4, (position - level)]
        return torch.cat([scaled, mask, torch.stack(columns, dim=1)], dim=1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mean = obs[:, 1 + self.max_lead_time + 3]
        return nn.functional.softplus(self.net(self.features(obs))).squeeze(1) * mean

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.integer_orders:
            return self(obs)
        return torch.round(self(obs) + self.order_offset).clamp_min(0.0)


class ScenarioPolicy(nn.Module):
    """A contextual network with its context fixed to one scenario: acts on that scenario's
    ``[B, 1 + L]`` observation (pads the pipeline to ``L_max`` and appends the context)."""

    def __init__(self, network: ContextualOrderMLP, scenario: LostSalesScenario) -> None:
        super().__init__()
        self.network = network
        self.name = network.name
        self.lead_time = scenario.lead_time
        columns = Context.of_scenario(scenario, 1).columns()
        self.register_buffer("context", columns, persistent=False)  # [1, 5]

    def config(self) -> dict[str, Any]:
        return self.network.config()

    def contextual_observation(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, 1 + L]`` -> ``[B, 1 + L_max + 5]``."""
        batch = obs.shape[0]
        pad = obs.new_zeros(batch, self.network.max_lead_time - self.lead_time)
        return torch.cat([obs, pad, self.context.to(obs.dtype).expand(batch, -1)], dim=1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.network(self.contextual_observation(obs))

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.network.act(self.contextual_observation(obs))


def policy_for(network: ContextualOrderMLP, scenario: LostSalesScenario, check: bool = True) -> ScenarioPolicy:
    """The contextual ``network`` as an ordinary single-store policy for ``scenario``.

    ``check``: refuse a scenario outside the contexts the network was trained on (its lead time
    must be one of them; no extrapolation in ``p/h`` or the demand mean)."""
    if scenario.lead_time > network.max_lead_time:
        raise PolicyMismatchError(
            f"this contextual policy handles lead times up to {network.max_lead_time}, the scenario has "
            f"lead_time={scenario.lead_time}"
        )
    problem = network.ranges.problem(scenario) if check else None
    if problem is not None:
        raise PolicyMismatchError(f"scenario outside this contextual policy's training contexts: {problem}")
    return ScenarioPolicy(network, scenario).to(next(network.parameters()).device)


def ranges_covering(scenario: LostSalesScenario, ranges: ContextRanges | None = None) -> ContextRanges:
    """``ranges`` (default :class:`ContextRanges`) widened just enough to contain ``scenario``, with
    its demand family: a policy trained on them serves the scenario and everything around it."""
    ranges = ranges or ContextRanges()

    def widen(bounds: tuple[float, float], value: float) -> tuple[float, float]:
        return (min(bounds[0], value), max(bounds[1], value))

    ratio = scenario.underage_cost / scenario.holding_cost
    penalty = widen(ranges.underage_cost, ratio * ranges.holding_cost[0])
    penalty = widen(penalty, ratio * ranges.holding_cost[1])
    return ContextRanges.model_validate({
        **ranges.model_dump(),
        "lead_times": tuple(sorted({*ranges.lead_times, scenario.lead_time})),
        "underage_cost": penalty,
        "demand_mean": widen(ranges.demand_mean, scenario.demand_mean),
        "demand_distribution": scenario.demand_distribution,
        "demand_cv": widen(ranges.demand_cv, scenario.demand_cv),
    })
