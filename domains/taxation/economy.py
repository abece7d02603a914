"""The one-step economy as pure torch functions, batched over economies (a leading axis) with an agent axis.

Shapes: skills ``w [N]`` (ascending), rates ``[B, K]`` (one marginal rate per bracket), cut-offs ``[K]``,
incomes ``z [B, N]``. Everything is exact: no learning, no sampling. A worker's best response is found
among the per-bracket optima (the utility is concave within a bracket) and the cut-offs; ties go to
the lower bracket. Metrics follow ../shared/domain-notes.md: the Gini has the N/(N − 1) correction and
welfare weighs worker ``i`` by ``ω_i ∝ 1/w_i`` (summing to 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from decisionlab.domains.taxation.scenario import OneStepScenario


def pareto_skills(n: int, alpha: float, skill_min: float, dtype: torch.dtype = torch.float64,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """``[N]`` skills at the Pareto quantiles ``u_i = (i − 0.5)/N``: ``skill_min · (1 − u_i)^(−1/α)``, ascending."""
    u = (torch.arange(1, n + 1, dtype=dtype, device=device) - 0.5) / n
    return skill_min * (1.0 - u) ** (-1.0 / alpha)


def bracket_tops(cutoffs: torch.Tensor) -> torch.Tensor:
    """``[K]`` upper ends of the brackets (the top one open: inf)."""
    return torch.cat([cutoffs[1:], cutoffs.new_tensor([torch.inf])])


def tax(z: torch.Tensor, rates: torch.Tensor, cutoffs: torch.Tensor) -> torch.Tensor:
    """Tax owed ``[B, N]`` on incomes ``z [B, N]`` under ``rates [B, K]``."""
    width = bracket_tops(cutoffs) - cutoffs
    inside = torch.minimum((z[..., None] - cutoffs).clamp_min(0.0), width)  # [B, N, K] income in each bracket
    return (inside * rates[..., None, :]).sum(-1)


def labour_cost(z: torch.Tensor, skills: torch.Tensor, c: float, delta: float) -> torch.Tensor:
    """The disutility ``(c/δ)·(z/w)^δ`` of earning ``z``."""
    return c / delta * (z / skills) ** delta


def untaxed_income(skills: torch.Tensor, c: float, delta: float) -> torch.Tensor:
    """``[N]`` each worker's income without tax: ``w · (w/c)^(1/(δ − 1))`` (no tax ever raises it)."""
    return skills * (skills / c) ** (1.0 / (delta - 1.0))


def bracket_optima(skills: torch.Tensor, rates: torch.Tensor, cutoffs: torch.Tensor, c: float,
                   delta: float) -> torch.Tensor:
    """``[B, N, K]`` (skills ``[N]`` or ``[B, N]``): each worker's best income inside each bracket (its interior optimum
    ``w·((1 − τ)·w/c)^(1/(δ − 1))`` clipped to the bracket)."""
    net = (1.0 - rates).clamp_min(0.0)[..., None, :]  # [B, 1, K]
    w = skills[..., None]
    interior = w * (net * w / c) ** (1.0 / (delta - 1.0))
    return torch.minimum(torch.maximum(interior, cutoffs), bracket_tops(cutoffs))


def best_response(skills: torch.Tensor, rates: torch.Tensor, cutoffs: torch.Tensor, c: float,
                  delta: float) -> torch.Tensor:
    """``[B, N]`` every worker's utility-maximising income under ``rates [B, K]`` (ties: the lower bracket).
    The rebate does not depend on a worker's own choice (it is one of many), so it is left out."""
    candidates = bracket_optima(skills, rates, cutoffs, c, delta)  # [B, N, K]
    batch, n, k = candidates.shape
    owed = tax(candidates.reshape(batch, n * k), rates, cutoffs).reshape(batch, n, k)
    utility = candidates - owed - labour_cost(candidates, skills[..., None], c, delta)
    best = utility.argmax(-1, keepdim=True)  # the first maximum: the lowest bracket on a tie
    return candidates.gather(-1, best).squeeze(-1)


def gini(x: torch.Tensor) -> torch.Tensor:
    """``[B]`` Gini coefficients of ``x [B, N]`` with the N/(N − 1) correction (0 for one worker, and
    where everyone has nothing)."""
    n = x.shape[-1]
    if n < 2:
        return x.new_zeros(x.shape[:-1])
    ordered = x.sort(-1).values
    rank = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
    # Σ_i Σ_j |x_i − x_j| = 2 Σ_i (2i − N − 1) x_(i) over the sorted values
    spread = 2.0 * ((2.0 * rank - n - 1.0) * ordered).sum(-1)
    total = ordered.sum(-1)
    return torch.where(total > 0, spread / (2.0 * n * total.clamp_min(1e-300)) * n / (n - 1.0), 0.0)


def welfare_weights(skills: torch.Tensor) -> torch.Tensor:
    """``[..., N]`` ω_i ∝ 1/w_i, summing to 1 over the workers."""
    inverse = 1.0 / skills
    return inverse / inverse.sum(-1, keepdim=True)


@dataclass(frozen=True)
class Outcome:
    """A period's outcome per economy: ``income``, ``tax``, ``net_income`` (after tax and rebate),
    ``utility`` ``[B, N]``; ``rebate [B]``."""

    income: torch.Tensor
    tax: torch.Tensor
    net_income: torch.Tensor
    utility: torch.Tensor
    rebate: torch.Tensor


def outcome(skills: torch.Tensor, rates: torch.Tensor, income: torch.Tensor, cutoffs: torch.Tensor, c: float,
            delta: float) -> Outcome:
    """What incomes ``[B, N]`` under ``rates [B, K]`` give each worker."""
    owed = tax(income, rates, cutoffs)
    rebate = owed.mean(-1)
    net = income - owed + rebate[:, None]
    return Outcome(income, owed, net, net - labour_cost(income, skills, c, delta), rebate)


def social_metrics(result: Outcome, skills: torch.Tensor) -> dict[str, torch.Tensor]:
    """``[B]`` per economy: productivity Σz, Gini and equality of net incomes, their product, welfare
    Σ ω_i U_i and revenue ΣT."""
    productivity = result.income.sum(-1)
    inequality = gini(result.net_income)
    equality = 1.0 - inequality
    return {
        "productivity": productivity,
        "equality": equality,
        "equality_times_productivity": equality * productivity,
        "welfare": (result.utility * welfare_weights(skills)).sum(-1),
        "gini": inequality,
        "revenue": result.tax.sum(-1),
    }


class Economy:
    """A :class:`OneStepScenario`'s fixed quantities as tensors on ``device`` (float64: best responses
    compare utilities that tie at the cut-offs)."""

    def __init__(self, scenario: OneStepScenario, device: torch.device | str = "cpu") -> None:
        self.scenario, self.device = scenario, torch.device(device)
        dtype = torch.float64
        self.skills = pareto_skills(scenario.n_agents, scenario.skill_pareto_alpha, scenario.skill_min, dtype,
                                    self.device)
        self.cutoffs = torch.tensor(scenario.bracket_cutoffs, dtype=dtype, device=self.device)
        self.c, self.delta = scenario.labour_cost, scenario.labour_exponent
        self.untaxed = untaxed_income(self.skills, self.c, self.delta)

    def untaxed_of(self, skills: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` the no-tax incomes of ``skills [B, N]``."""
        return untaxed_income(skills, self.c, self.delta)

    def respond(self, rates: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` exact best responses to ``rates [B, K]``."""
        return best_response(self.skills, rates.to(self.skills), self.cutoffs, self.c, self.delta)

    def outcome(self, rates: torch.Tensor, income: torch.Tensor | None = None) -> Outcome:
        rates = rates.to(self.skills)
        income = self.respond(rates) if income is None else income.to(self.skills)
        return outcome(self.skills, rates, income, self.cutoffs, self.c, self.delta)

    def metrics(self, rates: torch.Tensor, income: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Social metrics ``{name: [B]}`` of ``rates [B, K]`` (exact best responses unless ``income`` is given)."""
        return social_metrics(self.outcome(rates, income), self.skills)
