"""The planner as the AI Economist has it: each bracket's rate is one choice on the scenario's rate grid.

:class:`GridPlannerSim` shows a one-step simulator's planner group as ``K`` agents, one per bracket, each
choosing ``Discrete(len(rate_grid))``: a factorised categorical over the ``21^7`` schedules of the 5%
grid, with one network shared by the brackets (a bracket's one-hot is in its features). The Gaussian
planner has to find a corner of a 7-dimensional box through a squashing function; a categorical puts
mass on any grid rate at once, so a bracket the optimum leaves free and one it taxes at 55% are equally
easy to reach. Choices above the simulator's ``max_rate`` (the annealed cap of the curriculum) are
masked, as the Foundation's planner masks its rate bins above the annealed maximum.

Everything else (the workers, the state, the rewards) is the wrapped simulator's; the planner's reward,
the period's objective, is given to each bracket's agent.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from decisionlab.core import AgentGroup, Box, Composite, Discrete, Spaces, StepResult
from decisionlab.domains.taxation.members import GroupMember
from decisionlab.domains.taxation.scenario import OneStepScenario
from decisionlab.domains.taxation.sim import PLANNER, PLANNER_FEATURES, WORKERS, OneStepSim


class GridPlannerSim:
    """``sim`` (a :class:`OneStepSim`) with the planner group as one agent per bracket on the rate grid.

    The planner's action is ``[B, K]`` grid indices; the wrapped simulator receives the rates
    ``rate_grid[index] / max_rate`` (its action form: it multiplies by ``max_rate``)."""

    def __init__(self, sim: OneStepSim) -> None:
        self.sim = sim
        scenario = sim.scenario
        k = scenario.n_brackets
        self.grid = torch.tensor(scenario.rate_grid, dtype=torch.float64, device=sim.device)
        features = PLANNER_FEATURES + k
        self.spaces = Spaces(agents={
            PLANNER: AgentGroup(k, Composite({"features": Box((features,))}),
                                Discrete(len(scenario.rate_grid), masked=True,
                                         description="the bracket's rate, as an index of the rate grid"),
                                Box((features,))),
            WORKERS: sim.spaces.agents[WORKERS],
        })
        self.bracket = torch.eye(k, device=sim.device)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    def flat_observation(self, obs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The wrapped simulator's features; the planner's ``[B, 1, F]`` repeated per bracket with the
        bracket's one-hot: ``[B, K, F + K]``."""
        flat = self.sim.flat_observation(obs)
        planner = flat[PLANNER]
        batch, k = planner.shape[0], self.bracket.shape[0]
        bracket = self.bracket.to(planner.dtype).expand(batch, k, k)
        return {**flat, PLANNER: torch.cat([planner.expand(batch, k, -1), bracket], -1)}

    def legal(self) -> torch.Tensor:
        """``[G]`` bool: the grid rates at or below the wrapped simulator's ``max_rate``."""
        return self.grid <= self.sim.max_rate + 1e-9

    def action_mask(self, obs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        batch = obs[PLANNER]["features"].shape[0]
        return {PLANNER: self.legal().expand(batch, self.bracket.shape[0], -1)}

    def sim_action(self, index: torch.Tensor) -> torch.Tensor:
        """Grid indices ``[B, K]`` as the wrapped simulator's planner action ``[B, 1, K]``."""
        return (self.grid[index.long()] / self.sim.max_rate).to(torch.get_default_dtype())[:, None, :]

    def step(self, state: Any, action: dict[str, torch.Tensor], exogenous: torch.Tensor) -> StepResult[Any]:
        result = self.sim.step(state, {**action, PLANNER: self.sim_action(action[PLANNER])}, exogenous)
        k = self.bracket.shape[0]
        reward = {**result.reward, PLANNER: result.reward[PLANNER].expand(-1, k)}
        return StepResult(result.state, reward, result.info, result.terminated, result.truncated, result.elapsed)


def grid_training_sim(scenario: OneStepScenario, device: Any, **curriculum: float) -> GridPlannerSim:
    return GridPlannerSim(OneStepSim(scenario, device, **curriculum))


class TaxationGridPlanner(GroupMember):
    """A planner choosing each bracket's rate on the grid. Bound to a plain :class:`OneStepSim` it wraps it,
    and it acts in the plain simulator's form (rates over ``max_rate``), so it serves, evaluates and
    pairs with workers as the Gaussian planner does."""

    kind: ClassVar[str] = "taxation_grid_planner"
    group_name: ClassVar[str] = PLANNER
    simulator = staticmethod(grid_training_sim)

    def bind(self, sim: Any) -> TaxationGridPlanner:
        super().bind(sim if isinstance(sim, GridPlannerSim) else GridPlannerSim(sim))
        return self

    @torch.no_grad()
    def group_action(self, obs: Any) -> torch.Tensor:
        """``[B, 1, K]``: the most probable legal grid rate of each bracket, in the plain simulator's form."""
        return self.sim.sim_action(super().group_action(obs))
