"""Inventory policies: baselines and the learned order network.

All act on the simulator's observation ``obs [B, 1 + L]`` (on hand, then the pipeline oldest
first) and return order quantities ``[B]`` on the same device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from decisionlab.core import PolicyMismatchError, mlp
from decisionlab.domains.inventory.single_store.demand import grid_demand
from decisionlab.domains.inventory.single_store.dp import solve_lost_sales
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario


def inventory_position(obs: torch.Tensor) -> torch.Tensor:
    """On hand plus on order ``[B]``."""
    return obs.sum(dim=1)


class BaseStockPolicy:
    """Order up to ``level``: ``q = (S − inventory position)⁺``."""

    def __init__(self, level: float | torch.Tensor, name: str = "base_stock") -> None:
        # A tensor ``level [B]`` gives every environment its own level (used by the search).
        self.level, self.name = level, name

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.level - inventory_position(obs))

    def describe(self) -> dict[str, float]:
        return {"level": float(self.level)}


class CappedBaseStockPolicy:
    """Base-stock with a cap on each order: ``q = min((S − IP)⁺, cap)`` (Xin 2021)."""

    def __init__(
        self, level: float | torch.Tensor, cap: float | torch.Tensor, name: str = "capped_base_stock"
    ) -> None:
        self.level, self.cap, self.name = level, cap, name

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.relu(self.level - inventory_position(obs)), torch.as_tensor(self.cap))

    def describe(self) -> dict[str, float]:
        return {"level": float(self.level), "cap": float(self.cap)}


class MyopicPolicy:
    """One-period myopic policy: choose the order minimising the expected cost of the period in
    which it arrives, given the exact distribution of the stock left at that time.

    The distribution of leftover stock is propagated through the L periods before the order
    arrives (pipeline arrivals in, demand out, lost sales clip at zero) on the demand grid,
    batched over states: ``dist [B, K]``.
    """

    name = "myopic"

    def __init__(self, scenario: LostSalesScenario, device: torch.device | str = "cpu") -> None:
        problem = myopic_over_budget(scenario)
        if problem is not None:
            from decisionlab.core import NotTractableError

            raise NotTractableError(problem)
        demand = grid_demand(scenario)
        self.unit = demand.unit
        self.lead_time = scenario.lead_time
        top = demand.pmf.size * (scenario.lead_time + 2) + 8
        self.size = top
        pmf = torch.tensor(demand.pmf, dtype=torch.float64, device=device)
        # T[y, z] = P((y − D)⁺ = z) on the grid 0..top−1
        y = torch.arange(top, device=device)
        d = torch.arange(pmf.numel(), device=device)
        left = (y[:, None] - d[None, :]).clamp_min(0)
        leftover = torch.zeros(top, top, dtype=torch.float64, device=device)
        leftover.scatter_add_(1, left, pmf.expand(top, -1).contiguous())
        self.leftover = leftover
        # Expected period cost c(y) for y on the grid, and for y + q for each candidate q.
        h, p = scenario.holding_cost, scenario.underage_cost
        stock = y[:, None].double()
        dem = d[None, :].double()
        self.period_cost = (pmf * (h * (stock - dem).clamp_min(0) + p * (dem - stock).clamp_min(0))).sum(1)
        self.max_order_cells = top // 2

    def _to_cells(self, values: torch.Tensor) -> torch.Tensor:
        return torch.round(values / self.unit).long().clamp(0, self.size - 1)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        batch = obs.shape[0]
        cells = self._to_cells(obs)
        dist = torch.zeros(batch, self.size, dtype=torch.float64, device=obs.device)
        dist[torch.arange(batch, device=obs.device), cells[:, 0]] = 1.0
        grid = torch.arange(self.size, device=obs.device)
        for k in range(self.lead_time):
            # shift by the arriving order, then serve one period's demand
            src = (grid[None, :] - cells[:, 1 + k : 2 + k]).clamp_min(0)
            shifted = torch.gather(dist, 1, src) * (grid[None, :] >= cells[:, 1 + k : 2 + k])
            overflow = dist.sum(1, keepdim=True) - shifted.sum(1, keepdim=True)
            shifted[:, -1:] += overflow  # mass pushed off the grid stays at the top cell
            dist = shifted @ self.leftover
        orders = torch.arange(self.max_order_cells, device=obs.device)
        stock = (grid[:, None] + orders[None, :]).clamp_max(self.size - 1)  # [K, Q]
        expected = dist @ self.period_cost[stock]  # [B, Q]
        return expected.argmin(dim=1).to(obs.dtype) * self.unit


def myopic_memory_bytes(scenario: LostSalesScenario, batch: int = 10_000) -> float:
    """Bytes the myopic policy holds: its leftover matrix and order table (``K²`` on a grid of ``K``
    cells) and, acting on ``batch`` states, their distributions (``batch·K``), in float64."""
    cells = grid_demand(scenario).pmf.size * (scenario.lead_time + 2) + 8
    return 8.0 * (1.5 * cells * cells + 2.0 * batch * cells)


def myopic_over_budget(scenario: LostSalesScenario) -> str | None:
    """Why the myopic policy would not fit the build budget for ``scenario`` (``None`` when it does)."""
    from decisionlab.core import BUDGET_ENV, build_budget_bytes

    needed, limit = myopic_memory_bytes(scenario), build_budget_bytes()
    if needed <= limit:
        return None
    return (f"the myopic policy for lead_time={scenario.lead_time}, demand_mean={scenario.demand_mean:g} would need "
            f"about {needed / 1024**3:,.1f} GiB (the build budget is {limit / 1024**3:.1f} GiB, {BUDGET_ENV})")


class OptimalLostSalesPolicy:
    """The exact DP optimum as a lookup table on the device (Poisson demand, small L)."""

    name = "optimal"

    def __init__(self, scenario: LostSalesScenario, device: torch.device | str = "cpu") -> None:
        from decisionlab.core import NotTractableError

        if scenario.demand_distribution != "poisson":
            raise NotTractableError(
                "the exact DP ('optimal') needs integer demand: set demand_distribution=poisson"
            )
        solution = solve_lost_sales(
            scenario.lead_time, scenario.holding_cost, scenario.underage_cost, scenario.demand_mean
        )
        self.solution = solution
        self.lead_time = scenario.lead_time
        self.table = torch.as_tensor(np.ascontiguousarray(solution.order), dtype=torch.float32, device=device)
        self.dims = tuple(self.table.shape)
        strides = np.cumprod((1,) + self.dims[::-1])[:-1][::-1].copy()
        self.strides = torch.as_tensor(strides, dtype=torch.long, device=device)
        self.flat = self.table.reshape(-1)

    @property
    def average_cost(self) -> float:
        return self.solution.average_cost

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        counts = torch.round(obs).long().clamp_min(0)
        if self.lead_time == 0:
            index = counts[:, :1]
        else:
            # DP state: stock after this period's arrival, then the rest of the pipeline.
            index = torch.cat([counts[:, :1] + counts[:, 1:2], counts[:, 2:]], dim=1)
        limits = torch.tensor(self.dims, device=obs.device) - 1
        index = torch.minimum(index, limits)
        return self.flat[(index * self.strides).sum(dim=1)].to(obs.dtype)


class OrderMLP(nn.Module):
    """Vanilla HDPO policy: an MLP from the scaled state to a non-negative order.

    Inputs are divided by the mean demand so one set of hyper-parameters fits any scale; the
    inventory position is appended as a feature because base-stock-like rules depend on it.
    ``forward``: ``softplus(net(x)) · demand_mean``, the continuous order ``[B]`` that training
    differentiates through. The last layer starts near zero with the bias set so the initial
    policy orders about the mean demand every period.

    ``integer_orders`` (for integer demand, e.g. Poisson): :meth:`act` places
    ``round(forward(obs) + order_offset)`` units. Fractional orders against integer demand waste
    money (the continuous-order optimum is ~0.2% worse than the integer one); rounding the
    trained continuous policy recovers most of it, and ``order_offset`` (in units, fitted after
    training on held-out paths) moves the rounding thresholds to recover the rest.
    """

    name = "hdpo_mlp"
    kind = "order_mlp"

    def __init__(
        self,
        lead_time: int,
        demand_scale: float,
        hidden: tuple[int, ...] = (32, 32, 32),
        integer_orders: bool = False,
        order_offset: float = 0.0,
    ) -> None:
        super().__init__()
        self.lead_time = int(lead_time)
        self.demand_scale = float(demand_scale)
        self.hidden = tuple(int(h) for h in hidden)
        self.integer_orders = bool(integer_orders)
        self.order_offset = float(order_offset)
        self.net = mlp(2 + self.lead_time, self.hidden, 1, activation="elu")
        with torch.no_grad():
            last = self.net[-1]
            last.weight.mul_(0.1)
            last.bias.fill_(math.log(math.e - 1.0))  # softplus(bias) = 1: order ≈ mean demand

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "lead_time": self.lead_time, "demand_scale": self.demand_scale,
                "hidden": list(self.hidden), "integer_orders": self.integer_orders,
                "order_offset": self.order_offset}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OrderMLP:
        return cls(config["lead_time"], config["demand_scale"], tuple(config["hidden"]),
                   integer_orders=bool(config.get("integer_orders", False)),
                   order_offset=float(config.get("order_offset", 0.0)))

    @classmethod
    def initial(cls, scenario: LostSalesScenario, device: torch.device | str = "cpu") -> OrderMLP:
        return cls(scenario.lead_time, scenario.demand_mean).to(device)

    def for_scenario(self, scenario: LostSalesScenario) -> OrderMLP:
        """``self`` for a scenario with the lead time it was trained for (its input width)."""
        if self.lead_time != scenario.lead_time:
            raise PolicyMismatchError(
                f"this policy was trained for lead_time={self.lead_time}, the scenario has "
                f"lead_time={scenario.lead_time}: train one for this lead time"
            )
        return self

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        scaled = obs / self.demand_scale
        features = torch.cat([scaled, scaled.sum(dim=1, keepdim=True)], dim=1)
        return nn.functional.softplus(self.net(features)).squeeze(1) * self.demand_scale

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.integer_orders:
            return self(obs)
        return torch.round(self(obs) + self.order_offset).clamp_min(0.0)
