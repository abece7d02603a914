"""Off-policy evaluation of a ranker from the log of another: what ``decisionlab ope recommendation`` runs.

The logging policy serves Plackett–Luce slates of its scores at ``temperature`` (its propensity is exact) to
``episodes`` simulated users over the scenario's horizon. Per logged request the hook keeps the click and the
revenue, the log-probability of the logged slate under both policies (a deterministic target: 0 when it would
have served the same slate, −inf otherwise), the reward model's predictions for doubly robust estimates, the
per-position marginals of the slate estimator and the user (the cluster: a user's requests are dependent, so the
intervals are cluster-robust).

The estimand is the target's value *per request on the logged contexts*: its expected click and revenue had it
ranked each logged request. The simulator computes it exactly (:meth:`RecommendationSim.expected_response` on
the target's slate): that is the truth the intervals are checked against. It is not the value of running the
target for the whole horizon (whose users would reach other states); the simulated A/B test in the same report
measures that, on split users.

Reward model (doubly robust): ``ctr_greedy``'s click model, fitted on the platform's random-exposure log (never
on the log being evaluated), predicts the probability of a click of any slate; revenue is predicted as that
probability times the mean revenue per click in the same random-exposure log.
"""

from __future__ import annotations

import numpy as np
import torch

from decisionlab.core import ABTestResult, OffPolicyLog, Policy, Step, ab_test, derive_seed, make_generator, run
from decisionlab.domains.recommendation.metrics import episode_metrics
from decisionlab.domains.recommendation.policies import fitted_click_model, platform_models
from decisionlab.domains.recommendation.ranking import (
    Sampled,
    position_marginals,
    slate_log_probability,
    top_k,
)
from decisionlab.domains.recommendation.scenario import RecommendationScenario
from decisionlab.domains.recommendation.sim import RecommendationSim

MARGINAL_SAMPLES = 128
"""Plackett–Luce draws per request for the logging policy's per-position marginals (the slate estimator)."""
AB_METRICS = ("ctr", "revenue", "retention")


class _OffPolicyRecorder:
    """The engine hook that keeps the rows of the log (module docstring)."""

    def __init__(self, sim: RecommendationSim, logger: Sampled, target: Policy, revenue_per_click: float,
                 generator: torch.Generator) -> None:
        self.sim, self.logger, self.target = sim, logger, target
        self.model = fitted_click_model(sim.scenario, str(sim.device))
        self.revenue_per_click, self.generator = revenue_per_click, generator
        self.rows: list[dict[str, torch.Tensor]] = []

    def _clicks(self, obs: dict[str, torch.Tensor], slate: torch.Tensor) -> torch.Tensor:
        items = torch.gather(obs["items"], 1, slate[..., None].expand(-1, -1, obs["items"].shape[-1]))
        with torch.no_grad():
            return 1.0 - self.model.click_probabilities(obs["user"], items)[:, 0]

    def __call__(self, step: Step) -> None:
        live = step.state.alive if step.alive is None else step.state.alive & step.alive
        logged = step.action.long()
        k = logged.shape[1]
        present = step.obs["present"]
        logging_scores = self.logger.scores(step.obs).double()
        target_scores = self.target.scores(step.obs).double()
        chosen = top_k(target_scores, present, k)
        truth = self.sim.expected_response(step.state, chosen)
        predicted_logged, predicted_target = self._clicks(step.obs, logged), self._clicks(step.obs, chosen)
        part = {
            "click": step.result.info["clicks"], "revenue": step.result.info["revenue"],
            "logging_logp": self.logger.last_logp,
            "target_logp": slate_log_probability(target_scores, present, logged, 0.0),
            "truth_click": truth["click"], "truth_revenue": truth["revenue"],
            "model_click_logged": predicted_logged, "model_click_target": predicted_target,
            "target_marginals": (chosen == logged).double(),
            "logging_marginals": position_marginals(logging_scores, present, logged, self.logger.temperature,
                                                    MARGINAL_SAMPLES, self.generator),
            "user": torch.arange(logged.shape[0], device=logged.device),
        }
        rows = live.nonzero()[:, 0]
        self.rows.append({name: value[rows].detach().double().cpu() for name, value in part.items()})


def off_policy_log(scenario: RecommendationScenario, logging: Policy, target: Policy, episodes: int, seed: int,
                   device: torch.device, temperature: float = 1.0) -> OffPolicyLog:
    """The log of ``logging`` (Plackett–Luce at ``temperature``) and the estimands of ``target`` (module
    docstring), with a simulated A/B test of the two (deterministic) rankings on split users."""
    sim = RecommendationSim(scenario, device)
    logger = Sampled(logging, scenario.slate_size, temperature,
                     make_generator(derive_seed(seed, "logging"), device), f"{getattr(logging, 'name', 'logging')}")
    recorder = _OffPolicyRecorder(sim, logger, target, platform_models(scenario).revenue_per_click,
                                  make_generator(derive_seed(seed, "marginals"), device))
    run(sim, logger, batch=episodes, generator=make_generator(seed, device), hooks=[recorder])
    rows = {name: torch.cat([part[name] for part in recorder.rows]).numpy() for name in recorder.rows[0]}
    # the user's requests are one cluster; users of the log are its rows 0..episodes − 1
    per_click = recorder.revenue_per_click
    half = max(1, episodes // 2)
    a = episode_metrics(scenario, logging, half, derive_seed(seed, "ab-a"), device)
    b = episode_metrics(scenario, target, half, derive_seed(seed, "ab-b"), device)
    tests: dict[str, ABTestResult] = {name: ab_test(a[name], b[name]) for name in AB_METRICS}
    return OffPolicyLog(
        rewards={"ctr": rows["click"], "revenue": rows["revenue"]},
        target_logp=rows["target_logp"], logging_logp=rows["logging_logp"],
        truth={"ctr": float(np.mean(rows["truth_click"])), "revenue": float(np.mean(rows["truth_revenue"]))},
        predicted={"ctr": (rows["model_click_logged"], rows["model_click_target"]),
                   "revenue": (rows["model_click_logged"] * per_click, rows["model_click_target"] * per_click)},
        slate=(rows["target_marginals"], rows["logging_marginals"]),
        clusters=rows["user"], ab_test=tests)
