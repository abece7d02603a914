"""decisionlab's shared RL core: its public API.

A domain imports what it needs from here, and only from here (``from decisionlab.core import
SettingSpec, Box, run``); an import-linter contract in ``make test`` holds it to that, so the modules
behind these names can move without touching a domain. Names load on first use (a dashboard page
that needs the spec does not pay for the trainers).

The groups (docs/architecture.md lists every name with what it does):

- **spec**: ``DomainSpec``, ``SettingSpec``, ``PolicySpec``, ``AlgoSpec``, ``MetricSpec``, ``ViewSpec``,
  ``TrainOutcome``, the domain registry;
- **scenarios and options**: ``Scenario``, ``EpisodicScenario``, ``TrainContext``, option models;
- **spaces and simulators**: ``Box``, ``Discrete``, ``Slate``, ``Composite``, ``AgentGroup``,
  ``Spaces``, ``StepResult``, ``BatchedSimulator``, ``RandomPolicy``;
- **rollout engine**: ``run``, ``Step``, ``Run``, reducers (``Sum``, ``Mean``, ``Last``, ``Max``,
  ``Min``, ``Discounted``, ``Custom``), ``rollout``, ``accumulate``, ``period_sums``;
- **policies**: ``Policy``, ``LearnedPolicy``, ``policy_class``, ``rebuild_policy``;
- **errors**: ``DecisionlabError`` and its subclasses, ``FieldProblem``, ``problem``;
- **serving**: ``ServingSpec``, ``Envelope``, ``EntityId``, ``WholeNumber``, ``Answered``, ``act``,
  ``act_one``, the FastAPI dependencies;
- **nets** and **algorithms**: MLPs, heads, actor-critic, value functions; PPO, DQN, pathwise, TD;
- **adapters**: ``make_env``, ``make_vec_env``, ``make_parallel_env``;
- **off-policy evaluation**: ``Estimate``, ``ips``, ``snips``, ``doubly_robust``, ``direct_method``,
  ``pseudo_inverse`` (slates), ``estimate_all``, ``ab_test``, ``ABTestResult``;
- **evaluation, seeding (and counter-based hashes: ``hash_uniform``, ``hash_rows``, ``mix``), devices, stores,
  dashboard helpers**.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    "decisionlab.core.spec": (
        "DomainSpec", "SettingSpec", "PolicySpec", "AlgoSpec", "MetricSpec", "ViewSpec", "TrainOutcome",
        "EpisodeMetrics", "register_domain", "unregister_domain", "discover_domains", "get_domain", "list_domains",
    ),
    "decisionlab.core.scenario": (
        "Scenario", "EpisodicScenario", "resolve_scenario", "resolve_options", "format_validation_error",
        "parse_overrides", "server_path",
    ),
    "decisionlab.core.options": ("TrainContext", "NoOptions", "options_model", "optional_field", "apply_options",
                                 "Widths"),
    "decisionlab.core.spaces": (
        "Box", "Discrete", "Slate", "Composite", "AgentGroup", "Spaces", "RandomPolicy", "SINGLE", "action_problems",
        "sample_action", "as_fields", "batch_size",
    ),
    "decisionlab.core.sim": ("StepResult", "BatchedSimulator", "Reshaped", "horizon_of", "action_mask"),
    "decisionlab.core.engine": (
        "run", "Step", "Run", "Hook", "Read", "Exogenous", "Reducer", "Sum", "Mean", "Last", "Max", "Min",
        "Discounted", "Custom", "rollout", "accumulate", "period_sums", "Trajectory",
    ),
    "decisionlab.core.policy": (
        "Policy", "LearnedPolicy", "JointPolicy", "MergedPolicy", "ConstantPolicy", "register_policy_kind",
        "policy_class", "rebuild_policy", "split_member",
    ),
    "decisionlab.core.errors": (
        "DecisionlabError", "UnknownNameError", "ScenarioError", "StateError", "PolicyMismatchError",
        "NotTractableError", "ArtefactError", "BuildPendingError", "RegistryError", "PolicyNotFoundError",
        "FieldProblem", "problem",
    ),
    "decisionlab.core.seeding": ("make_generator", "derive_seed", "child_generator", "seed_everything"),
    "decisionlab.core.hashing": ("hash_rows", "hash_uniform", "mix"),
    "decisionlab.core.device": ("get_device", "torch_threads", "configure_threads", "configure_allocator"),
    "decisionlab.core.progress": ("Progress", "listening", "duration"),
    "decisionlab.core.evaluation": (
        "evaluate_policies", "mean_ci95", "EvaluationReport", "check_episodes", "default_episodes",
    ),
    "decisionlab.core.ope": (
        "Estimate", "ips", "snips", "doubly_robust", "direct_method", "pseudo_inverse", "estimate_all", "ab_test",
        "ABTestResult", "OffPolicyLog", "off_policy_report",
    ),
    "decisionlab.core.store.builds": ("persisted",),
    "decisionlab.core.store.budget": ("BUDGET_ENV", "build_budget_bytes"),
    "decisionlab.core.store.atomic": ("atomic_write_with", "atomic_write_bytes", "atomic_path", "file_lock"),
    "decisionlab.core.store.home": ("cache_home",),
    "decisionlab.core.nets.mlp": ("mlp", "ACTIVATIONS", "count_parameters"),
    "decisionlab.core.nets.heads": ("QNetwork", "HLGaussSupport", "LinearHead", "DuelingHead", "hl_gauss_probs"),
    "decisionlab.core.nets.actor_critic": ("ActorCritic", "orthogonal_init", "MaskedCategorical", "SquashedGaussian"),
    "decisionlab.core.nets.value": ("TabularValue", "NeuralValue", "value_table", "value_from_config", "bin_centres"),
    "decisionlab.core.algos.ppo": (
        "train_ppo", "PPOConfig", "PPOResult", "ActorCriticPolicy", "NETWORK_FIELDS",
    ),
    "decisionlab.core.algos.dqn": ("train_dqn", "DQNConfig", "QNetworkConfig", "GreedyQPolicy"),
    "decisionlab.core.algos.pathwise": ("train_pathwise", "PathwiseConfig"),
    "decisionlab.core.algos.td": (
        "Transitions", "FittedTDConfig", "FittedTDResult", "td0_update", "fitted_td", "blend", "blend_",
        "discount_for",
    ),
    "decisionlab.core.serving_spec": (
        "ServingSpec", "Envelope", "envelope", "EntityId", "WholeNumber", "Answered", "answered", "PolicyOutputError",
        "MAX_BATCH", "entries",
    ),
    "decisionlab.core.serving": (
        "act", "act_one", "serve_request", "request_cost", "device_of", "policies_of", "registry_of",
        "request_scenario", "prepared",
        "query_parameters", "decide", "located", "parse_states", "schema",
    ),
    "decisionlab.core.policy_cache": ("PolicyCache", "Answerer"),
    "decisionlab.core.workpool": ("WorkPool", "work_pool", "OverloadedError", "TooMuchWorkError"),
    "decisionlab.core.resolve": ("build_policy", "record_kind"),
    "decisionlab.core.store.registry": ("PolicyRegistry",),
    "decisionlab.core.store.runs": ("RunStore", "RunRecord"),
    "decisionlab.core.dashboard.compare": ("ViewContext",),
    "decisionlab.core.ui": ("palette", "legend_below", "legend_layout", "short_label"),
    "decisionlab.core.agents": ("GroupRows", "group_rows", "assemble"),
    "decisionlab.core.gym": ("make_env", "make_simulator", "SimulatorEnv", "to_simulator_action",
                             "to_normalized_action"),
    "decisionlab.core.vec_env": ("make_vec_env", "SimulatorVecEnv"),
    "decisionlab.core.parallel_env": ("make_parallel_env", "SimulatorParallelEnv"),
}

_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"decisionlab.core has no public name {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__
