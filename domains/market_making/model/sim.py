"""Batched simulator of the model setting: Avellaneda–Stoikov quoting with the mis-specifications of
:class:`~decisionlab.domains.market_making.model.scenario.ModelScenario`.

Order of events in step ``k`` (0-based, ``k = state.step``; the same order reproduces the published
Avellaneda–Stoikov simulations):

1. the policy quotes depths (δ^b, δ^a) from the observation of the state at the start of the step
   (time left ``(N − k)·dt``, inventory q, mid offset x = s − s0, last return);
2. the bid fills with probability ``p_b = clip(A·exp(−k·δ^b)·dt, 0, 1)`` (fill iff ``u_b < p_b``), the
   ask independently with ``p_a`` (iff ``u_a < p_a``); both may fill; one unit per fill. A side at the
   inventory bound does not quote and cannot fill (the bid when q ≥ Q, the ask when q ≤ −Q);
3. a bid fill buys one unit at s − δ^b and pays the fee: cash −= s − δ^b + fee, q += 1; an ask fill
   sells at s + δ^a: cash += s + δ^a − fee, q −= 1;
4. the mid moves: ``s += μ·dt − κ·(s − s0)·dt + σ·√dt·ξ (+ 1[u_j < λ·dt]·jump_size·z)``;
5. penalties of the step on the inventory q' held over the move (after the fills): ``φ·q'²·dt``, and
   at the last step (k = N − 1) also ``terminal_penalty·q'²``.

Reward of the step: the change of mark-to-market wealth W = cash + q·s minus the step's penalties,
``r = fill_b·(δ^b − fee) + fill_a·(δ^a − fee) + q'·Δs − penalties``, so an episode's rewards sum to its
P&L (W_T − W_0, the inventory marked at the mid) less its penalties. Steps past the horizon keep the
same dynamics with ``time_left`` clamped at 0 and no further terminal penalty.

Prices are kept as the offset x = s − s0 and wealth as the P&L since the start, so float32 keeps cents
at any price level. Exogenous paths ``[B, T, C]`` (:data:`EXOGENOUS_CHANNELS`): the bid and ask uniforms
u_b, u_a, the mid's standard normal ξ and, only when ``jump_intensity > 0``, the jump uniform u_j and
the jump's standard normal z (C = 3 or 5). Nothing reacts to the quotes except the fills, so all of it
is pre-sampled: two policies on one seed face the same uniforms and the same mid path.

Pathwise gradients: with ``surrogate_gradients=True`` each fill is straight-through, its value the
Bernoulli draw and its gradient that of the fill probability (``hard + p − p.detach()``), so gradients
flow from the depths through the expected fills while the forward pass keeps the realised inventory.
Without it the fills are constants and only the captured depth carries gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from decisionlab.core import StepResult
from decisionlab.domains.market_making.model.scenario import ModelScenario
from decisionlab.domains.market_making.quotes import (
    ACT_ASK,
    ACT_BID,
    OBS_INVENTORY,
    OBS_LAST_RETURN,
    OBS_MID_OFFSET,
    OBS_TIME_LEFT,
    OBSERVATION_SIZE,
    depth_bounds,
    quoting_spaces,
    time_left,
)

EXOGENOUS_CHANNELS = ("bid_uniform", "ask_uniform", "mid_normal", "jump_uniform", "jump_normal")
EXO_BID, EXO_ASK, EXO_MID, EXO_JUMP_UNIFORM, EXO_JUMP_NORMAL = range(5)


@dataclass(frozen=True)
class ModelState:
    """Batched state, every field ``[B]``.

    ``step`` (long): steps taken (the next step's index k); ``inventory``: q (units; float so that
    straight-through fills carry gradient, whole numbers in value); ``pnl``: W − W_0, the mark-to-market
    P&L since the start before penalties (currency); ``mid_offset``: s − s0 (price units);
    ``last_return``: the mid move of the last step s_k − s_{k−1} (0 at the start).
    """

    step: torch.Tensor
    inventory: torch.Tensor
    pnl: torch.Tensor
    mid_offset: torch.Tensor
    last_return: torch.Tensor

    def cash(self, scenario: ModelScenario) -> torch.Tensor:
        """Cash account ``[B]`` (currency, float64; 0 at the start): ``pnl − q·x − (q − q0)·s0``."""
        q = self.inventory.double()
        return (self.pnl.double() - q * self.mid_offset.double()
                - (q - scenario.initial_inventory) * scenario.initial_price)

    def detach(self) -> ModelState:
        return ModelState(*(getattr(self, f).detach() for f in self.__dataclass_fields__))


class ModelSim:
    """``B`` independent quoting episodes of a :class:`ModelScenario`, stepped together (module docstring).

    ``action_low`` / ``action_high`` are :func:`~decisionlab.domains.market_making.quotes.depth_bounds`:
    the span of the action space, where adapters and squashed policies map their actions (−1.57 and
    4.0 in the standard set-up).
    """

    differentiable = True  # depths → rewards; the fills too with ``surrogate_gradients=True``

    def __init__(
        self,
        scenario: ModelScenario,
        device: torch.device | str = "cpu",
        *,
        dtype: torch.dtype = torch.float32,
        surrogate_gradients: bool = False,
    ) -> None:
        self.scenario = scenario
        self.device = torch.device(device)
        self.dtype = dtype
        self.surrogate_gradients = surrogate_gradients
        s = scenario
        self.horizon = s.steps
        self.action_low, self.action_high = depth_bounds(s)
        self.spaces = quoting_spaces(self.action_low, self.action_high)
        self.exogenous_channels = 5 if s.jump_intensity > 0 else 3
        # per-step constants as Python floats: scalar operands cost nothing in the step's kernels
        self._log_adt = math.log(s.fill_intensity_a * s.dt)
        self._k = float(s.fill_decay_k)
        self._fee = float(s.maker_fee)
        self._vol = float(s.sigma * math.sqrt(s.dt))
        self._drift = float(s.drift * s.dt)
        self._reversion = float(s.mean_reversion * s.dt)
        self._jump_probability = float(s.jump_intensity * s.dt)
        self._jump_size = float(s.jump_size)
        self._running = float(s.running_penalty * s.dt)
        self._terminal = float(s.terminal_penalty)
        # a 0-d tensor, not a Python float: torch.where would otherwise give the default dtype
        self._last_weight = torch.tensor(self._running + self._terminal, dtype=dtype, device=self.device)
        self._bound = None if s.max_inventory is None else float(s.max_inventory)
        self._initial_price = float(s.initial_price)

    # --- randomness -----------------------------------------------------------------------

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[B, periods, C]``: u_b, u_a ~ U[0, 1), ξ ~ N(0, 1), then u_j ~ U[0, 1), z ~ N(0, 1) only with
        jumps (C = 3 or 5), channels in that order, drawn in that order (one seed, the same paths).

        The result is a permuted view of a channel-major ``[C, periods, B]`` block: each step's slice
        ``[:, t]`` then holds every channel contiguous over the batch, which the step reads several
        times faster than rows strided by ``periods·C`` (its shape and values are what the protocol says;
        ``.reshape`` rather than ``.view`` it)."""
        c = self.exogenous_channels
        block = torch.empty(c, periods, batch, device=self.device, dtype=self.dtype)
        block[EXO_BID:EXO_ASK + 1].uniform_(generator=generator)  # contiguous: the fast fill
        block[EXO_MID].normal_(generator=generator)
        if c == 5:
            block[EXO_JUMP_UNIFORM].uniform_(generator=generator)
            block[EXO_JUMP_NORMAL].normal_(generator=generator)
        return block.permute(2, 1, 0)

    # --- state and observation ------------------------------------------------------------

    def reset(self, batch: int, generator: torch.Generator | None = None) -> ModelState:
        """Every episode at the start: step 0, inventory q0, no P&L, mid at s0, no last move."""
        zeros = torch.zeros(batch, dtype=self.dtype, device=self.device)
        return ModelState(
            step=torch.zeros(batch, dtype=torch.long, device=self.device),
            inventory=torch.full((batch,), float(self.scenario.initial_inventory), dtype=self.dtype,
                                 device=self.device),
            pnl=zeros,
            mid_offset=zeros,
            last_return=zeros,
        )

    def observe(self, state: ModelState) -> torch.Tensor:
        """``[B, 6]`` (see :mod:`~decisionlab.domains.market_making.quotes`); flow imbalance and market
        spread are 0 in the model setting."""
        obs = torch.zeros(state.step.shape[0], OBSERVATION_SIZE, dtype=self.dtype, device=self.device)
        obs[:, OBS_TIME_LEFT] = time_left(state.step, self.scenario, self.dtype)
        obs[:, OBS_INVENTORY] = state.inventory
        obs[:, OBS_MID_OFFSET] = state.mid_offset
        obs[:, OBS_LAST_RETURN] = state.last_return
        return obs

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    # --- dynamics -------------------------------------------------------------------------

    def _fill(self, depth: torch.Tensor, uniform: torch.Tensor, quoting: torch.Tensor | None) -> torch.Tensor:
        """Fills ``[B]`` (0/1 in value) of quotes at ``depth`` given the step's uniforms; ``quoting`` [B]
        bool (None: both sides always quote)."""
        # A·dt·exp(−k·δ) as one exp of ln(A·dt) − k·δ
        intensity = torch.exp(torch.add(depth, self._log_adt / -self._k).mul_(-self._k))
        if not self.surrogate_gradients:
            hit = uniform < intensity  # u < 1 always: probabilities above 1 need no clipping
            return (hit if quoting is None else hit & quoting).to(self.dtype)
        # straight-through: not in place, autograd keeps exp's output
        probability = intensity.clamp(max=1.0)
        if quoting is not None:
            probability = probability * quoting
        hard = (uniform < probability).to(self.dtype)
        return hard + (probability - probability.detach())

    def step(self, state: ModelState, action: torch.Tensor, exogenous: torch.Tensor) -> StepResult[ModelState]:
        """One step (module docstring). ``action``: depths ``[B, 2]`` (price units); ``exogenous``: this
        step's ``[B, C]``. Returns the new state, the reward ``[B]`` (currency) and ``info`` ``{name: [B]}``:
        ``bid_fill``/``ask_fill`` (0/1), ``bid_quoted``/``ask_quoted`` (bool), ``inventory`` (after the
        step), ``pnl`` (W − W_0 after the step, before penalties), ``spread`` (δ^b + δ^a, NaN where a side
        did not quote), ``mid`` (price units), ``mid_change`` (s_{k+1} − s_k); ``terminated`` at step N."""
        bid_depth, ask_depth = action[:, ACT_BID], action[:, ACT_ASK]
        q, x = state.inventory, state.mid_offset
        if self._bound is None:
            bid_quoted = ask_quoted = None
        else:
            bid_quoted, ask_quoted = q < self._bound, q > -self._bound
        bid_fill = self._fill(bid_depth, exogenous[:, EXO_BID], bid_quoted)
        ask_fill = self._fill(ask_depth, exogenous[:, EXO_ASK], ask_quoted)
        inventory = q + bid_fill - ask_fill

        # the depths captured by the fills (the fills happen at the mid before the move)
        if self._fee == 0:
            gain = torch.addcmul(bid_fill * bid_depth, ask_fill, ask_depth)
        else:
            gain = torch.addcmul(bid_fill * (bid_depth - self._fee), ask_fill, ask_depth - self._fee)

        move = exogenous[:, EXO_MID] * self._vol
        if self._drift != 0 or self._reversion != 0:
            move = move + (x * -self._reversion + self._drift)
        if self._jump_probability > 0:
            jumps = exogenous[:, EXO_JUMP_UNIFORM] < self._jump_probability
            move = move + jumps * (exogenous[:, EXO_JUMP_NORMAL] * self._jump_size)
        wealth_change = torch.addcmul(gain, inventory, move)

        step = state.step + 1
        done = step >= self.horizon
        reward = wealth_change
        if self._terminal != 0:  # the terminal penalty at step N itself, not on steps past the horizon
            weight = torch.where(step == self.horizon, self._last_weight, self._running)
            reward = wealth_change - inventory * inventory * weight
        elif self._running != 0:
            reward = wealth_change - inventory * inventory * self._running

        mid_offset = x + move
        new_state = ModelState(step=step, inventory=inventory, pnl=state.pnl + wealth_change,
                               mid_offset=mid_offset, last_return=move)
        spread = bid_depth + ask_depth
        if self._bound is None:
            quoted = torch.ones((), dtype=torch.bool, device=self.device).expand(q.shape[0])
            bid_quoted = ask_quoted = quoted
        else:
            spread = torch.where(bid_quoted & ask_quoted, spread, torch.nan)
        info = {
            "bid_fill": bid_fill,
            "ask_fill": ask_fill,
            "bid_quoted": bid_quoted,
            "ask_quoted": ask_quoted,
            "inventory": inventory,
            "pnl": new_state.pnl,
            "spread": spread,
            "mid": mid_offset + self._initial_price,
            "mid_change": move,
        }
        return StepResult(new_state, reward, info, terminated=done)
