"""Training ``rliv``: the funnel critic from logged interactions, refined online, its value weight chosen under a
click-rate guard.

1. **Offline**: the platform's random-exposure log (the same log ``ctr_greedy`` is fitted to) becomes training
   tuples, one per shown item: the pair's features now, the response (click, follow, gift), and the same pair's
   features at the user's next request with the hours until it (the adjacent-request approximation). Each epoch
   fits the auxiliary heads by maximum likelihood (the slate's conditional logit; follow and gift given a click)
   and the value heads by temporal differences against a target network copied at the start of the epoch.
2. **Online**: ``online_rounds`` times, fresh users are served by the current critic (Plackett–Luce exploration at
   ``temperature``), their interactions join the data and training goes on.
3. **The value weight** (the score's ``value_weight``) is chosen on validation users drawn from the training
   stream (never the evaluation's): the weight of ``value_weights`` with the most revenue among those whose click
   rate stays within ``ctr_tolerance`` of the critic's own click utility alone (weight 0); when the largest weight
   wins, larger ones (×4, ``weight_growth`` times at most) are tried, so the grid is not a ceiling.
"""

from __future__ import annotations

import polars as pl
import torch
from pydantic import BaseModel, Field
from torch import nn

from decisionlab.core import (
    Progress,
    Sum,
    TrainContext,
    TrainOutcome,
    Widths,
    apply_options,
    make_generator,
    options_model,
    run,
)
from decisionlab.domains.recommendation.collect import Interactions, collect
from decisionlab.domains.recommendation.policies import exposure_log
from decisionlab.domains.recommendation.ranking import Sampled
from decisionlab.domains.recommendation.rliv import FunnelCritic
from decisionlab.domains.recommendation.scenario import RecommendationScenario
from decisionlab.domains.recommendation.sim import RecommendationSim


class RlivSettings(BaseModel):
    heads: str = Field("funnel", pattern="^(funnel|gift|click)$", description="value heads: funnel (click, follow, "
                       "gift), gift (the sparse head alone) or click (the dense head alone)")
    hidden: Widths = Field((32, 32), description="widths of the shared trunk")
    learning_rate: float = Field(3e-3, gt=0, le=1, description="Adam step size")
    batch_size: int = Field(2048, ge=16, le=1 << 20, description="requests per minibatch")
    epochs: int = Field(20, ge=1, le=1000, description="passes over the offline log")
    online_rounds: int = Field(2, ge=0, le=100, description="rounds of online refinement")
    online_epochs: int = Field(4, ge=1, le=1000, description="passes over all data after each online round")
    online_users: int = Field(1000, ge=1, le=10**7, description="fresh users served per online round")
    log_users: int = Field(2000, ge=1, le=10**7, description="users of the random-exposure log")
    temperature: float = Field(0.5, gt=0, le=100, description="exploration temperature of the online rounds")
    discount_per_day: float = Field(0.9, gt=0, lt=1, description="the value's discount per day of elapsed time")
    aux_weight: float = Field(1.0, ge=0, le=100, description="weight of the auxiliary supervised losses")
    value_weights: tuple[float, ...] = Field((0.0, 2.0, 8.0, 32.0), min_length=1,
                                             description="value weights tried on validation users")
    ctr_tolerance: float = Field(0.05, ge=0, le=1, description="largest relative click-rate loss allowed "
                                 "against the weight-0 ranking")
    weight_growth: int = Field(3, ge=0, le=10, description="while the largest weight tried wins, try 4× it, at "
                               "most this many times (the grid is not a ceiling)")
    validation_users: int = Field(500, ge=1, le=10**7, description="users simulated per candidate weight")


RlivOptions = options_model("RlivOptions", RlivSettings, tuple(RlivSettings.model_fields))


def future_returns(data: Interactions, rewards: torch.Tensor, per_hour: float) -> torch.Tensor:
    """``[N, H]``: each request's discounted sum of its user's ``rewards [N, H]`` over the *later* requests of the
    same run, ``Σ_{t' > t} γ^{τ_t' − τ_t} r_t'`` (γ ``per_hour``, τ the request's hour)."""
    rho = -torch.log(torch.tensor(per_hour, dtype=torch.float64))
    order = torch.argsort(data.episode.double() * 1e7 + data.time_h)
    episode, tau = data.episode[order], data.time_h[order]
    weighted = rewards.double()[order] * torch.exp(-rho * tau)[:, None]  # discounted to the run's start
    suffix = torch.flip(torch.cumsum(torch.flip(weighted, [0]), 0), [0])  # from each row to the end of the run
    starts = torch.ones_like(episode, dtype=torch.bool)
    starts[1:] = episode[1:] != episode[:-1]
    first = starts.nonzero()[:, 0]
    ends = torch.cat([first[1:], torch.tensor([len(order)], device=first.device)])
    after_end = torch.cat([suffix, torch.zeros_like(suffix[:1])])[torch.repeat_interleave(ends, ends - first)]
    later = (suffix - after_end - weighted) * torch.exp(rho * tau)[:, None]
    out = torch.empty_like(later)
    out[order] = later
    return out.float()


def tuples(data: Interactions, critic: FunnelCritic, gift_value: float) -> dict[str, torch.Tensor]:
    """The training tensors of ``data``: per request ``[N, ...]`` (the auxiliary losses) and the value targets of
    the clicked item (``value_target [N, H]``: the click's own funnel events plus the user's discounted later ones)."""
    clicked = data.clicked >= 0
    events = {"click": clicked.float(), "follow": data.followed.float(), "gift": data.revenue.float() / gift_value}
    now = torch.stack([events[h] for h in critic.value_heads], -1)  # [N, H]
    later = future_returns(data, now, critic.gamma_per_hour())
    return {"user": data.user, "features": data.features, "clicked": data.clicked,
            "followed": data.followed.float(), "gifted": data.gifted.float(), "value_target": now + later}


def loss(critic: FunnelCritic, batch: dict[str, torch.Tensor], aux_weight: float, scale: torch.Tensor
         ) -> tuple[torch.Tensor, dict[str, float]]:
    """The value heads' regression (on the clicked items, targets divided by ``scale [H]``; per-head mean squared
    errors, summed) plus ``aux_weight`` × the auxiliary losses, and their parts."""
    now, value = critic(batch["user"], batch["features"])  # [B, K, 3], [B, K, H]
    clicked = batch["clicked"] >= 0
    rows = torch.arange(now.shape[0], device=now.device)
    position = batch["clicked"].clamp_min(0)
    picked_value = value[rows, position][clicked]  # [n, H]
    # each head's mean squared error, summed over the heads: every head (the sparse gift head too) weighs what it
    # weighs alone, and the dense heads add their gradients to the shared trunk (a mean over heads would give
    # the funnel critic's gift head a third of the single-head ablation's weight)
    regression = ((picked_value - batch["value_target"][clicked] / scale) ** 2).mean(0).sum() if bool(
        clicked.any()) else value.sum() * 0.0
    click_nll = nn.functional.cross_entropy(critic.slate_logits(now), batch["clicked"] + 1)
    picked = now[rows, position]  # [B, 3]
    bce = nn.functional.binary_cross_entropy_with_logits
    mask = clicked.float()
    funnel = ((bce(picked[:, 1], batch["followed"], reduction="none")
               + bce(picked[:, 2], batch["gifted"], reduction="none")) * mask).sum() / mask.sum().clamp_min(1)
    total = regression + aux_weight * (click_nll + funnel)
    return total, {"value_mse": float(regression.detach()), "click_nll": float(click_nll.detach()),
                   "funnel_nll": float(funnel.detach())}


def fit(critic: FunnelCritic, data: dict[str, torch.Tensor], settings: RlivSettings, epochs: int,
        optimizer: torch.optim.Optimizer, generator: torch.Generator, history: list[dict[str, float]],
        progress: Progress | None = None) -> None:
    """``epochs`` passes over ``data`` in minibatches of requests."""
    n = data["clicked"].shape[0]
    clicked = data["clicked"] >= 0
    # each head's targets in units of their spread, so the dense and the sparse head weigh alike
    scale = data["value_target"][clicked].std(0).clamp_min(1e-6) if bool(clicked.any()) else \
        torch.ones(data["value_target"].shape[1], device=clicked.device)
    critic.value_scale.copy_(scale)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(data["clicked"].device)
        parts: dict[str, float] = {}
        batches = 0
        for start in range(0, n, settings.batch_size):
            rows = order[start:start + settings.batch_size]
            total, part = loss(critic, {name: value[rows] for name, value in data.items()}, settings.aux_weight,
                               scale)
            optimizer.zero_grad()
            total.backward()
            nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
            optimizer.step()
            for name, value in part.items():
                parts[name] = parts.get(name, 0.0) + value
            batches += 1
        history.append({"epoch": len(history) + 1, "requests": n, **{k: v / batches for k, v in parts.items()}})
        if progress is not None:
            progress.update(1)


def validate(scenario: RecommendationScenario, critic: FunnelCritic, weight: float, users: int, seed: int,
             device: torch.device) -> dict[str, float]:
    """Click rate, revenue per user-day and retention of the critic ranking with ``weight`` (validation users)."""
    sim = RecommendationSim(scenario, device)
    critic.value_weight = float(weight)
    done = run(sim, critic, batch=users, generator=make_generator(seed, device), reducers={
        "requests": Sum("requests"), "clicks": Sum("clicks"), "revenue": Sum("revenue"), "churned": Sum("churned")})
    t = {name: float(value.double().sum()) for name, value in done.totals.items()}
    return {"ctr": t["clicks"] / max(t["requests"], 1.0), "revenue": t["revenue"] / (users * scenario.days),
            "retention": 1.0 - t["churned"] / users}


def choose_weight(scenario: RecommendationScenario, critic: FunnelCritic, settings: RlivSettings, seed: int,
                  device: torch.device) -> tuple[float, list[dict[str, float]]]:
    """The value weight with the most validation revenue whose click rate is within ``ctr_tolerance`` of weight 0's;
    while the largest weight tried wins, 4× it is tried too (``weight_growth`` times at most)."""

    def tried(weight: float) -> dict[str, float]:
        return {"value_weight": weight, **validate(scenario, critic, weight, settings.validation_users, seed, device)}

    def best_of(rows: list[dict[str, float]]) -> dict[str, float]:
        floor = (1.0 - settings.ctr_tolerance) * rows[0]["ctr"]
        allowed = [row for row in rows if row["ctr"] >= floor] or rows[:1]
        return max(allowed, key=lambda row: row["revenue"])

    rows = [tried(w) for w in sorted({0.0, *settings.value_weights})]
    best = best_of(rows)
    for _ in range(settings.weight_growth):
        largest = rows[-1]["value_weight"]
        if best["value_weight"] != largest or largest <= 0.0:
            break
        rows.append(tried(4.0 * largest))
        best = best_of(rows)
    critic.value_weight = best["value_weight"]
    return best["value_weight"], rows


def train_rliv(scenario: RecommendationScenario, options: BaseModel, ctx: TrainContext) -> TrainOutcome:
    settings = apply_options(RlivSettings(), options)
    ctx.seed_init()
    device = ctx.device
    critic = FunnelCritic.initial(scenario, device, heads=settings.heads, hidden=settings.hidden,
                                  discount_per_day=settings.discount_per_day)
    optimizer = torch.optim.Adam(critic.parameters(), lr=settings.learning_rate)
    batches = ctx.cpu_generator("batches")
    history: list[dict[str, float]] = []
    log = exposure_log(scenario, device, users=settings.log_users)
    data = tuples(log, critic, scenario.gift_value)
    total = settings.epochs + settings.online_rounds * settings.online_epochs
    with Progress(total, "rliv: fitting the critic", unit="epoch", enabled=ctx.progress) as bar:
        fit(critic, data, settings, settings.epochs, optimizer, batches, history, bar)
        validation_seed = ctx.stream("validation")
        weight, _ = choose_weight(scenario, critic, settings, validation_seed, device)
        explore = torch.Generator(device).manual_seed(ctx.stream("explore"))
        for round_ in range(settings.online_rounds):
            served = Sampled(critic, scenario.slate_size, settings.temperature, explore, "rliv (exploring)")
            fresh = collect(RecommendationSim(scenario, device), served, settings.online_users,
                            ctx.stream(f"online-{round_}"))
            data = {name: torch.cat([data[name], value]) for name, value in
                    tuples(fresh, critic, scenario.gift_value).items()}
            fit(critic, data, settings, settings.online_epochs, optimizer, batches, history, bar)
        weight, rows = choose_weight(scenario, critic, settings, validation_seed, device)
    chosen = next(row for row in rows if row["value_weight"] == weight)
    metrics = {"validation_revenue": chosen["revenue"], "validation_ctr": chosen["ctr"],
               "validation_retention": chosen["retention"], "value_weight": weight,
               "requests_trained": float(data["clicked"].shape[0])}
    critic.eval()
    return TrainOutcome(critic, critic.config(), metrics, pl.DataFrame(history), settings.model_dump())
