"""Reading one agent group's rows out of a simulator's batched values, and writing its actions back.

Generic learners see every acting entity as a row: a single-agent simulator has one pseudo-group
(:data:`~decisionlab.core.spaces.SINGLE`) whose rows are the batch ``[B, ...]``; an agent group of
``count`` agents has ``B · count`` rows (``[B, count, ...]`` flattened, row ``b · count + i`` is agent
``i`` of environment ``b``), so parameters are shared across the group for free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from decisionlab.core.spaces import SINGLE, AgentGroup, Box, Discrete, Spaces


@dataclass(frozen=True)
class GroupRows:
    """How the rows of group ``name`` are read from and written to a simulator's values."""

    name: str
    group: AgentGroup
    multi: bool  # the simulator has agent groups: values are {group: [B, count, ...]}

    @property
    def count(self) -> int:
        return self.group.count if self.multi else 1

    def rows(self, value: Any) -> torch.Tensor:
        """``value`` (the simulator's, for all groups) as this group's rows ``[R, ...]``."""
        if not self.multi:
            return value
        part = value[self.name]
        return part.reshape(part.shape[0] * part.shape[1], *part.shape[2:])

    def per_row(self, flag: torch.Tensor) -> torch.Tensor:
        """A per-environment ``[B]`` tensor repeated for each agent of the group ``[R]``."""
        return flag if not self.multi else flag.repeat_interleave(self.count)

    def features(self, sim: Any, obs: Any) -> torch.Tensor:
        return self.rows(sim.flat_observation(obs)).to(torch.get_default_dtype())

    def mask(self, sim: Any, obs: Any) -> torch.Tensor | None:
        if not getattr(self.group.action, "masked", False):
            return None
        return self.rows(sim.action_mask(obs))

    def reward(self, reward: Any) -> torch.Tensor:
        return self.rows(reward)

    def to_env(self, raw: torch.Tensor) -> torch.Tensor:
        """A learner's actions of the rows (continuous ``[R, A]`` or indices ``[R]``) in the simulator's
        form: ``[B, *shape]`` (``[B, count, *shape]`` for a group), choices offset by ``start``."""
        space = self.group.action
        lead = (raw.shape[0],) if not self.multi else (raw.shape[0] // self.count, self.count)
        if isinstance(space, Box):
            return raw.reshape(*lead, *space.shape)
        if isinstance(space, Discrete) and not space.shape:
            return (raw + space.start if space.start else raw).reshape(lead)
        raise TypeError(f"agent group {self.name!r}: generic learners act in a Box or a single-choice Discrete "
                        f"space, not {space}")


def group_rows(spaces: Spaces) -> dict[str, GroupRows]:
    """Every group of ``spaces`` (one :data:`SINGLE` pseudo-group for a single agent)."""
    return {name: GroupRows(name, group, spaces.multi_agent) for name, group in spaces.groups().items()}


def assemble(spaces: Spaces, parts: Mapping[str, torch.Tensor]) -> Any:
    """The simulator's action from each group's: the single agent's as is, else ``{group: action}``."""
    return dict(parts) if spaces.multi_agent else parts[SINGLE]
