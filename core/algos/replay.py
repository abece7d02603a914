"""A circular replay buffer on the simulator's device, and n-step returns with terminal cuts.

The buffer stores already-aggregated n-step transitions ``(obs, action, return, discount,
next_obs, next_mask)``: the target is ``return + discount · Q_target(next_obs)``, where
``discount = γ^m`` when the m-step window ran to a non-terminal state (a truncation bootstraps)
and ``0`` when it hit a terminal step. Storing the discount rather than a ``done`` flag lets one
buffer hold windows of different lengths (the last ``n − 1`` steps of an episode are shorter).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def n_step_returns(
    rewards: torch.Tensor, dones: torch.Tensor, gamma: float, n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n-step returns for every start of a segment of consecutive steps.

    Args:
        rewards: ``[B, L]`` rewards ``r_s`` of steps ``s = 0..L-1``.
        dones: ``[B, L]`` bool, True where step ``s`` ended in a terminal state.
        gamma: discount factor.
        n: window length; windows are cut at the end of the segment (truncation) and after a
            terminal step.

    Returns:
        ``returns [B, L]``: ``G_s = Σ_{k<m} γ^k r_{s+k} ∏_{j<k} (1 − d_{s+j})`` with ``m = min(n, L − s)``;
        ``discounts [B, L]``: ``γ^m ∏_{j<m} (1 − d_{s+j})`` (0 once the window met a terminal);
        ``bootstrap [L]`` (long): the step ``min(s + n, L) − 1`` whose next observation to bootstrap from.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    batch, length = rewards.shape
    pad = rewards.new_zeros(batch, n)
    padded_r = torch.cat([rewards, pad], dim=1)
    padded_alive = torch.cat([(~dones.bool()).to(rewards.dtype), pad], dim=1)
    starts = torch.arange(length, device=rewards.device)
    returns = torch.zeros_like(rewards)
    discount = torch.ones_like(rewards)  # γ^k ∏_{j<k}(1 − d_{s+j}) at the top of iteration k
    for k in range(n):
        returns = returns + discount * padded_r[:, k : k + length]
        in_window = (starts + k < length).unsqueeze(0)
        discount = torch.where(in_window, discount * gamma * padded_alive[:, k : k + length], discount)
    bootstrap = (starts + n).clamp_max(length) - 1
    return returns, discount, bootstrap


@dataclass
class ReplaySample:
    """A minibatch of ``N`` transitions."""

    obs: torch.Tensor  # [N, D]
    action: torch.Tensor  # [N] long
    reward: torch.Tensor  # [N] n-step return (already scaled)
    discount: torch.Tensor  # [N] γ^m, or 0 after a terminal
    next_obs: torch.Tensor  # [N, D]
    next_mask: torch.Tensor | None  # [N, A] bool, legal actions in next_obs


class ReplayBuffer:
    """Preallocated circular storage of ``capacity`` transitions on ``device``.

    ``add`` writes a batch of rows at the cursor (wrapping around, oldest overwritten); ``sample``
    draws uniformly with replacement among the rows written so far. No Python loop over rows.
    """

    def __init__(
        self, capacity: int, obs_dim: int, n_actions: int, device: torch.device | str, *, masks: bool = False
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity, self.device = int(capacity), torch.device(device)
        self.obs = torch.zeros(capacity, obs_dim, device=self.device)
        self.next_obs = torch.zeros(capacity, obs_dim, device=self.device)
        self.action = torch.zeros(capacity, dtype=torch.long, device=self.device)
        self.reward = torch.zeros(capacity, device=self.device)
        self.discount = torch.zeros(capacity, device=self.device)
        self.next_mask = torch.ones(capacity, n_actions, dtype=torch.bool, device=self.device) if masks else None
        self.cursor = 0  # next row to write
        self.size = 0  # rows holding data

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        discount: torch.Tensor,
        next_obs: torch.Tensor,
        next_mask: torch.Tensor | None = None,
    ) -> None:
        """Append ``k`` rows (``obs [k, D]``, ``action [k]``, ``reward [k]``, ``discount [k]``,
        ``next_obs [k, D]``, ``next_mask [k, A]``)."""
        count = action.shape[0]
        if count == 0:
            return
        if count > self.capacity:  # only the newest rows survive a write larger than the buffer
            keep = slice(count - self.capacity, count)
            obs, action, reward, discount, next_obs = (x[keep] for x in (obs, action, reward, discount, next_obs))
            next_mask = next_mask[keep] if next_mask is not None else None
            count = self.capacity
        rows = (self.cursor + torch.arange(count, device=self.device)) % self.capacity
        self.obs[rows] = obs.to(self.obs.dtype)
        self.next_obs[rows] = next_obs.to(self.obs.dtype)
        self.action[rows] = action.long()
        self.reward[rows] = reward.to(self.reward.dtype)
        self.discount[rows] = discount.to(self.discount.dtype)
        if self.next_mask is not None:
            if next_mask is None:
                raise ValueError("this buffer stores action masks: pass next_mask")
            self.next_mask[rows] = next_mask.bool()
        self.cursor = (self.cursor + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> ReplaySample:
        """``batch_size`` rows drawn uniformly with replacement (``generator`` on the buffer's device)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        index = torch.randint(self.size, (batch_size,), generator=generator, device=self.device)
        return ReplaySample(
            obs=self.obs[index],
            action=self.action[index],
            reward=self.reward[index],
            discount=self.discount[index],
            next_obs=self.next_obs[index],
            next_mask=self.next_mask[index] if self.next_mask is not None else None,
        )
