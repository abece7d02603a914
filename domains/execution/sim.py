"""Batched discrete Almgren–Chriss simulator, differentiable in the child-order sizes.

Order of events in step k (0-based index ``k = steps_done``, the paper's step k + 1): the policy sees the
observation and chooses ``n`` shares; ``n`` is clamped to ``[0, remaining]`` and forced to ``remaining``
at the last step; the child order fills at ``S̃ = S − s·(ε·1[n>0] + η_k n)`` (``s`` = +1 sell, −1 buy);
then the price moves ``S ← S + σξ − s·γn``. Its contribution to the implementation shortfall is
``n·s·(S₀ − S̃)`` in currency, so over a completed episode ``IS = s·(X·S₀ − Σ n S̃)``.

Prices are kept as the move since arrival ``d = S − S₀`` (float32 keeps cents at any price level).
Exogenous paths ``[B, T, 3]`` hold, per step: the price shock ξ ~ N(0, 1), the impact multiplier
``η_k/η = p_k·L_k`` (deterministic profile times the latent liquidity factor) and the stress regime (0/1).
Liquidity does not react to trades, so all of it is pre-sampled (common random numbers, pathwise gradients).

Reward of a step (bps of the arrival notional X·S₀): ``−(shortfall + λσ²x²)·10⁴/(X S₀)`` where x is the
holdings after the step. The risk term makes the rewards additive for E + λV: for a static schedule the
expected return is −(E + λV) in bps; pass ``risk_penalty_in_reward=False`` for the raw shortfall only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from decisionlab.core import Box, Spaces, StepResult
from decisionlab.domains.execution.scenario import ExecutionScenario

OBSERVATION_FIELDS = (
    "time_left",  # (N − k)/N
    "inventory_left",  # remaining / X
    "twap_rate",  # 1/(N − k): the fraction of the remaining shares TWAP would trade now (0 when done)
    "last_return",  # signed price change of the last step / σ (0 at the start); + is favourable
    "price_move",  # signed price change since arrival / (σ√N); + is favourable
    "observed_impact",  # impact per share of the last filled child order / η (1 before any fill)
    "expected_impact",  # deterministic profile p_k of the coming step (E[η_k]/η)
)
OBS_TIME_LEFT, OBS_INVENTORY, OBS_TWAP_RATE, OBS_LAST_RETURN, OBS_PRICE_MOVE, OBS_OBSERVED_IMPACT = range(6)
OBSERVATION_SIZE = len(OBSERVATION_FIELDS)
EXOGENOUS_CHANNELS = ("price_shock", "impact_multiplier", "stress_regime")
MIN_OBSERVED_TRADE = 1e-4  # fills below this fraction of X are too small to read η from (float32)


@dataclass(frozen=True)
class ExecutionState:
    """Batched state, every field ``[B]``.

    ``steps_done`` (long): child orders sent so far; ``remaining``: shares still to trade; ``price_move``:
    S − S₀ (currency); ``last_return``: S_k − S_{k−1}; ``observed_eta``: impact per share of the last
    filled child order divided by η (what the agent can see); ``liquidity``: the latent η_k/η of the last
    step (never observed); ``shortfall``: implementation shortfall so far (currency).
    """

    steps_done: torch.Tensor
    remaining: torch.Tensor
    price_move: torch.Tensor
    last_return: torch.Tensor
    observed_eta: torch.Tensor
    liquidity: torch.Tensor
    shortfall: torch.Tensor

    def detach(self) -> ExecutionState:
        return ExecutionState(*(getattr(self, f).detach() for f in self.__dataclass_fields__))


class ExecutionSim:
    """The discrete Almgren–Chriss market for one parent order, ``B`` paths at once."""

    differentiable = True

    def __init__(
        self,
        scenario: ExecutionScenario,
        device: torch.device | str = "cpu",
        *,
        dtype: torch.dtype = torch.float32,
        risk_penalty_in_reward: bool = True,
    ) -> None:
        self.scenario = scenario
        self.device = torch.device(device)
        self.dtype = dtype
        self.risk_penalty_in_reward = risk_penalty_in_reward
        s = scenario
        self.horizon = s.horizon_steps
        self.shares, self.sign = float(s.shares), s.sign
        self.sigma, self.eta, self.gamma, self.epsilon = float(s.sigma), float(s.eta), float(s.gamma), float(s.epsilon)
        self.risk_aversion = float(s.risk_aversion)
        self.reward_scale = 1e4 / s.notional  # currency -> bps of arrival notional
        self.spaces = Spaces(
            observation=Box((OBSERVATION_SIZE,), description=", ".join(OBSERVATION_FIELDS)),
            action=Box((), 0.0, unit="shares", span=(0.0, self.shares),
                       description="shares to trade now (at most the remaining ones are traded)"),
        )
        # p_k per step, padded with the last value for steps past the horizon (nothing left to trade there)
        self.profile = torch.tensor(s.profile_multipliers(), dtype=dtype, device=self.device)
        self._profile_padded = torch.cat([self.profile, self.profile[-1:]])

    # --- randomness -----------------------------------------------------------------------

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[B, periods, 3]``: price shock ξ, impact multiplier η_k/η, stress regime (see the module docstring).

        Draw order is fixed (ξ, then the log-liquidity noise, then the regime uniforms) so one seed gives
        the same paths to every policy.
        """
        s, dev, dt = self.scenario, self.device, self.dtype
        shock = torch.randn(batch, periods, generator=generator, device=dev, dtype=dt)
        steps = torch.arange(periods, device=dev).clamp_max(self.horizon)
        profile = self._profile_padded[steps].expand(batch, periods)
        if not s.stochastic:
            return torch.stack([shock, profile.clone(), torch.zeros_like(shock)], dim=2)
        noise = torch.randn(batch, periods, generator=generator, device=dev, dtype=dt)
        uniform = torch.rand(batch, periods, generator=generator, device=dev, dtype=dt)
        phi, vol = s.liquidity_persistence, s.liquidity_vol
        innovation = vol * (1.0 - phi**2) ** 0.5
        levels = torch.tensor([1.0, s.stress_multiplier], dtype=dt, device=dev)
        levels = levels / (1.0 - s.stress_probability + s.stress_probability * s.stress_multiplier)
        log_liq = vol * noise[:, 0]  # stationary start
        regime = (uniform[:, 0] < s.stress_probability).long()
        log_path, regime_path = [log_liq], [regime]
        for t in range(1, periods):
            log_liq = phi * log_liq + innovation * noise[:, t]
            stay_stressed = uniform[:, t] >= s.stress_exit_prob
            enter = uniform[:, t] < s.stress_entry_prob
            regime = torch.where(regime == 1, stay_stressed, enter).long()
            log_path.append(log_liq)
            regime_path.append(regime)
        log_liq_all = torch.stack(log_path, dim=1)
        regimes = torch.stack(regime_path, dim=1)
        factor = torch.exp(log_liq_all - 0.5 * vol**2) * levels[regimes]
        return torch.stack([shock, profile * factor, regimes.to(dt)], dim=2)

    # --- state and observation ------------------------------------------------------------

    def reset(self, batch: int, generator: torch.Generator | None = None) -> ExecutionState:
        """All paths at arrival: X shares left, price S₀, no fill seen yet (observed impact = prior 1)."""
        zeros = torch.zeros(batch, dtype=self.dtype, device=self.device)
        return ExecutionState(
            steps_done=torch.zeros(batch, dtype=torch.long, device=self.device),
            remaining=torch.full((batch,), self.shares, dtype=self.dtype, device=self.device),
            price_move=zeros,
            last_return=zeros,
            observed_eta=torch.ones_like(zeros),
            liquidity=torch.ones_like(zeros),
            shortfall=zeros,
        )

    def observation(
        self,
        steps_done: torch.Tensor,
        remaining: torch.Tensor,
        price_move: torch.Tensor,
        last_return: torch.Tensor,
        observed_eta: torch.Tensor,
    ) -> torch.Tensor:
        """``[B, 7]`` features (see ``OBSERVATION_FIELDS``) from raw per-path values ``[B]`` (also used by the API)."""
        n = self.horizon
        steps_left = (n - steps_done).clamp_min(0).to(self.dtype)
        twap_rate = torch.where(steps_left > 0, 1.0 / steps_left.clamp_min(1.0), torch.zeros_like(steps_left))
        sigma = self.sigma if self.sigma > 0 else 1.0
        expected = self._profile_padded[steps_done.clamp(0, n)]
        return torch.stack(
            [
                steps_left / n,
                remaining / self.shares,
                twap_rate,
                self.sign * last_return / sigma,
                self.sign * price_move / (sigma * n**0.5),
                observed_eta,
                expected,
            ],
            dim=1,
        )

    def observe(self, state: ExecutionState) -> torch.Tensor:
        """``[B, 7]``: what the trader sees. The latent liquidity (``state.liquidity``) is not in it."""
        return self.observation(state.steps_done, state.remaining, state.price_move, state.last_return,
                                state.observed_eta)

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    # --- dynamics -------------------------------------------------------------------------

    def step(self, state: ExecutionState, action: torch.Tensor, exogenous: torch.Tensor) -> StepResult[ExecutionState]:
        """One child order. ``action``: shares to trade ``[B]`` or ``[B, 1]`` (differentiable); ``exogenous``:
        this step's ``[B, 3]``. Steps after the horizon trade nothing and cost nothing."""
        k = state.steps_done
        active = k < self.horizon
        last = k >= self.horizon - 1
        x = state.remaining
        trade = torch.minimum(action.reshape(-1).to(self.dtype).clamp_min(0.0), x)
        trade = torch.where(last, x, trade)  # forced completion (and x = 0 after the horizon)
        shock, multiplier = exogenous[:, 0], exogenous[:, 1]
        eta_k = self.eta * multiplier
        traded = trade > 0
        slippage = self.epsilon * traded.to(self.dtype) + eta_k * trade  # per share vs the pre-trade price
        shortfall = trade * (slippage - self.sign * state.price_move)
        move = torch.where(active, self.sigma * shock, torch.zeros_like(shock)) - self.sign * self.gamma * trade
        remaining = x - trade
        risk = torch.where(active, self.risk_aversion * self.sigma**2 * remaining**2, torch.zeros_like(remaining))
        seen = trade > MIN_OBSERVED_TRADE * self.shares
        # what the trader can infer from its own fill: (slippage − ε)/n = η_k, reported relative to η
        observed = torch.where(seen, ((slippage - self.epsilon) / trade.clamp_min(1e-30)) / self.eta,
                               state.observed_eta).detach()
        new_state = ExecutionState(
            steps_done=k + active.long(),
            remaining=remaining,
            price_move=state.price_move + move,
            last_return=torch.where(active, move, state.last_return),
            observed_eta=observed,
            liquidity=torch.where(active, multiplier, state.liquidity),
            shortfall=state.shortfall + shortfall,
        )
        cost = shortfall + risk if self.risk_penalty_in_reward else shortfall
        info = {
            "shortfall": shortfall,
            "risk_penalty": risk,
            "trade": trade,
            "remaining": remaining,
            "execution_price": self.scenario.initial_price + state.price_move - self.sign * slippage,
            "price": self.scenario.initial_price + new_state.price_move,
            "eta": eta_k,
            "regime": exogenous[:, 2],
        }
        return StepResult(new_state, -cost * self.reward_scale, info)


def implementation_shortfall(state: ExecutionState) -> torch.Tensor:
    """Shortfall of completed episodes ``[B]`` (currency)."""
    return state.shortfall
