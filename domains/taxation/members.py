"""One agent group's actor-critic as a registered member of a taxation pair (planner or workers), for any
scenario whose simulator gives the group the same shapes. A setting's members name their simulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from decisionlab.core import ActorCriticPolicy, PPOConfig


class GroupMember(ActorCriticPolicy):
    """The core PPO actor-critic of group ``group_name``, read and written through ``simulator``'s spaces."""

    kind: ClassVar[str] = ""
    group_name: ClassVar[str] = ""
    default_hidden: ClassVar[int] = 64
    simulator: ClassVar[Callable[[Any, Any], Any]]
    """``(scenario, device) -> simulator`` the member acts in (each setting's members set it, a ``staticmethod``)."""

    def config(self) -> dict[str, Any]:
        return {**super().config(), "kind": self.kind}

    @classmethod
    def initial(cls, scenario: Any, device: Any, hidden: int | None = None, log_std: float = -1.0,
                min_log_std: float | None = None) -> GroupMember:
        """A fresh member: two hidden layers of ``hidden`` units (``default_hidden``), initial log-std ``log_std``
        (floored at ``min_log_std`` when given)."""
        sim = cls.simulator(scenario, device)
        width = hidden or cls.default_hidden
        config = PPOConfig(hidden=(width, width), init_log_std=log_std, min_log_std=min_log_std)
        return cls(config.build_network(sim.spaces.agents[cls.group_name]), sim, cls.group_name, cls.group_name)

    def for_scenario(self, scenario: Any) -> GroupMember:
        return self.bind(self.simulator(scenario, next(self.net.parameters()).device))
