"""The domain contract: a domain is a list of settings; a setting is a family of scenarios.

A **setting** (:class:`SettingSpec`) is a family of scenarios that share one simulator, one
observation and request-state schema, one set of baselines, algorithms, learned-policy kinds,
metrics and dashboard views: inventory has three (single store, networks, real series), execution
one. A **domain** (:class:`DomainSpec`) names its settings and its own HTTP routes; each domain
package builds one in its ``__init__`` and calls :func:`register_domain`.

The core dispatches once on the scenario's setting (:meth:`DomainSpec.setting_of`: the setting
whose ``scenario_model`` the scenario is an instance of), so no domain checks scenario types and
which policies, algorithms and policy kinds serve which scenario is declared once, in the setting.
Apps call :func:`discover_domains` (every package under ``decisionlab.domains``, packages named by
the ``decisionlab.domains`` entry-point group and by ``$DECISIONLAB_DOMAINS``) and look domains up
by name, so no app ever branches on a domain.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel

from decisionlab.core.errors import DecisionlabError, PolicyMismatchError, UnknownNameError
from decisionlab.core.options import NoOptions, TrainContext
from decisionlab.core.policy import Policy, rebuild_policy, register_policy_kind
from decisionlab.core.scenario import Scenario, pick, resolve_options, resolve_scenario
from decisionlab.core.sim import BatchedSimulator

if TYPE_CHECKING:
    import polars as pl
    from fastapi import APIRouter

    from decisionlab.core.serving_spec import ServingSpec


@dataclass(frozen=True)
class MetricSpec:
    """A KPI a setting reports per episode. ``measured``: a wall-clock measurement (a decision time), not
    a function of the seed, so reproducibility checks leave it out."""

    name: str
    description: str
    better: Literal["lower", "higher"]
    unit: str = ""
    measured: bool = False


EpisodeMetrics = Callable[..., dict[str, np.ndarray]]
"""``(scenario, policy, episodes, seed, device, start=0) -> {metric: [n]}``: KPIs of ``episodes``
episodes whose randomness all comes from ``seed``, so policies share random numbers (the evaluation
asks for chunks of episodes, each with its own seed). Settings that replay data instead of drawing it
(``real_series``) read ``start`` and ``episodes`` as rows of the data and may return fewer
(``n < episodes``) when the data has no more. Statistics that are not episode averages (a standard deviation, a CVaR,
mean + λ·var) are returned as per-episode influence values whose average is the statistic, so the
t-interval and paired differences stay valid (see domains/execution/metrics.py)."""


@dataclass(frozen=True, eq=False)  # identity hash: built baselines are cached per spec
class PolicySpec:
    """A named baseline: ``build(scenario, device)`` returns a ready :class:`Policy`.

    ``admissible=False`` marks policies that cheat (see the future) and exist only as bounds: they
    are evaluated but never served. ``check(scenario)`` says why the baseline cannot serve a
    scenario of its setting (``None`` when it can), before anything is built. ``expensive`` marks
    baselines whose build searches or solves (seconds; cached afterwards). ``extra`` is added to the
    baseline's entry in the policy listings.
    """

    name: str
    description: str
    build: Callable[[Scenario, torch.device], Policy]
    admissible: bool = True
    check: Callable[[Scenario], str | None] | None = None
    expensive: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def problem(self, scenario: Scenario) -> str | None:
        return self.check(scenario) if self.check is not None else None


@dataclass
class TrainOutcome:
    """What an algorithm returns: a learned policy plus its record."""

    policy: torch.nn.Module
    policy_config: dict[str, Any]
    metrics: dict[str, float]
    curve: pl.DataFrame | None = None
    algo_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class AlgoSpec:
    """A training method wired to a setting: ``train(scenario, options, context) -> TrainOutcome``.

    ``options`` arrive validated as ``options_model`` (the user's ``--algo-set key=value``);
    ``context`` carries the seed, device, progress flag and seed streams. ``smoke_options`` make a
    run of a few seconds (the conformance suite trains with them)."""

    name: str
    description: str
    train: Callable[[Scenario, BaseModel, TrainContext], TrainOutcome]
    options_model: type[BaseModel] = NoOptions
    smoke_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ViewSpec:
    """A dashboard tab of a setting: ``render`` is ``"package.module:function"``, called with a
    :class:`decisionlab.core.dashboard.compare.ViewContext` (imported only when the page draws)."""

    title: str
    render: str


@dataclass(frozen=True, eq=False)  # identity equality and hash: one object per setting
class SettingSpec:
    """A family of scenarios with one simulator, one state schema, one set of policies and views.

    Attributes:
        scenario_model: every scenario of the setting is an instance of this class (presets may
            be instances of subclasses); the core finds a scenario's setting by it.
        presets: named scenarios (preset names are unique within the domain).
        make_simulator: the batched simulator of a scenario (evaluation, the gymnasium adapter,
            benchmarks).
        episode_metrics: per-episode KPIs of a policy (see :data:`EpisodeMetrics`).
        policies: baselines; ``algos``: training methods; ``policy_kinds``: the learned-policy
            kinds this setting serves, ``{kind: "package.module:Class"}`` (imported on first use) or
            ``{kind: Class}``.
        serving: the request-state model and converters of the serving path.
        views: the setting's own dashboard tabs (the comparison view comes from the core).
        default_policies: what the dashboard picks (quick baselines).
        quick: overrides of the evaluation-length parameters the dashboard starts from (shown there
            under "Evaluation"), e.g. a shorter horizon than a report would use.
        smoke: overrides that make a scenario small enough for smoke tests (the conformance suite
            applies ``quick`` and ``smoke`` to every preset).
        eval_chunk: episodes simulated at once by the evaluation (bounds its memory).
        finalize_metrics: ``(scenario, values) -> metrics``: turns the per-episode values of all
            chunks, concatenated, into the setting's metrics; for statistics of the whole sample
            (a standard deviation, a CVaR) that chunks cannot compute alone. ``None``: the values
            are the metrics.
        input_limits: narrower bounds of the dashboard's number boxes (``{field: (low, high)}``),
            where the model's bounds admit values too slow for an interactive page.
        episode_label: what the dashboard calls an episode ("Series scored" for data replays).
        max_episodes: ``scenario -> int | None``, the most episodes an evaluation of ``scenario`` may
            ask for (``None``: no limit). For settings whose episodes are disjoint parts of a finite
            data set (held-out windows of a replay): the evaluation's confidence intervals treat
            episodes as independent, so it scores only disjoint parts and refuses more episodes than
            fit (:func:`decisionlab.core.evaluation.check_episodes`, a ``ScenarioError`` naming
            ``episodes`` and the maximum); the default episode count is capped at it
            (:func:`decisionlab.core.evaluation.default_episodes`). ``None`` (the default): episodes
            are drawn independently, as many as asked.
        off_policy: ``(scenario, logging, target, episodes, seed, device, temperature) -> OffPolicyLog``: a
            log of ``logging`` made stochastic (Plackett–Luce over its scores at ``temperature``) over
            ``episodes`` episodes, with both policies' propensities and the simulator's truth (``decisionlab
            ope``; :mod:`decisionlab.core.ope`). ``None``: the setting has no off-policy evaluation.
    """

    name: str
    title: str
    description: str
    scenario_model: type[Scenario]
    presets: Mapping[str, Scenario]
    make_simulator: Callable[[Scenario, torch.device], BatchedSimulator[Any]]
    episode_metrics: EpisodeMetrics
    metrics: Mapping[str, MetricSpec]
    primary_metric: str
    policies: Mapping[str, PolicySpec]
    serving: ServingSpec
    algos: Mapping[str, AlgoSpec] = field(default_factory=dict)
    policy_kinds: Mapping[str, str | type] = field(default_factory=dict)
    views: Sequence[ViewSpec] = ()
    default_policies: Sequence[str] = ()
    default_episodes: int = 64
    quick: Mapping[str, Any] = field(default_factory=dict)
    smoke: Mapping[str, Any] = field(default_factory=dict)
    eval_chunk: int = 4096
    finalize_metrics: Callable[[Scenario, dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    input_limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    episode_label: str = "Episodes"
    max_episodes: Callable[[Scenario], int | None] | None = None
    off_policy: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        for name, preset in self.presets.items():
            if not isinstance(preset, self.scenario_model):
                raise TypeError(f"preset {name!r} of setting {self.name!r} is not a {self.scenario_model.__name__}")
        if self.primary_metric not in self.metrics:
            raise ValueError(f"setting {self.name!r}: primary metric {self.primary_metric!r} is not one of its metrics")
        unknown = [p for p in self.default_policies if p not in self.policies]
        if unknown:
            raise ValueError(f"setting {self.name!r}: default policies {unknown} are not among its baselines")

    def policy(self, name: str) -> PolicySpec:
        return pick(self.policies, name, f"{self.title} baseline")

    def algo(self, name: str) -> AlgoSpec:
        return pick(self.algos, name, f"{self.title} algorithm")

    def available_policies(self, scenario: Scenario) -> list[str]:
        """The baselines that can serve ``scenario`` (their ``check`` passes)."""
        return [name for name, spec in self.policies.items() if spec.problem(scenario) is None]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "scenarios": list(self.presets),
            "policies": list(self.policies),
            "algos": list(self.algos),
            "policy_kinds": list(self.policy_kinds),
            "metrics": list(self.metrics),
            "primary_metric": self.primary_metric,
        }


def described(settings: Sequence[SettingSpec]) -> str:
    """``"the Real series setting (scenarios: real_series)"`` for messages that point elsewhere."""
    parts = [f"{s.title} (scenarios: {', '.join(s.presets)})" for s in settings]
    return ("the " + " and ".join(parts) + (" settings" if len(parts) > 1 else " setting")) if parts else "no setting"


@dataclass(frozen=True)
class _Entry:
    """A baseline or algorithm name across a domain's settings: the settings that have it, and the
    member of the scenario's setting (a ``PolicyMismatchError`` naming where it is when elsewhere)."""

    name: str
    domain: DomainSpec
    settings: tuple[SettingSpec, ...]
    members: ClassVar[str]  # the SettingSpec field: "policies" or "algos"
    noun: ClassVar[str]
    plural: ClassVar[str]

    def _of(self, setting: SettingSpec) -> Mapping[str, Any]:
        return getattr(setting, self.members)

    @property
    def description(self) -> str:
        return "; ".join(dict.fromkeys(self._of(s)[self.name].description for s in self.settings))

    def spec_for(self, scenario: Scenario) -> Any:
        setting = self.domain.setting_of(scenario)
        members = self._of(setting)
        if self.name not in members:
            raise PolicyMismatchError(
                f"{self.noun} '{self.name}' is in {described(self.settings)}, not {setting.title}; {setting.title} "
                f"{self.plural}: {', '.join(members) or 'none'}"
            )
        return members[self.name]


@dataclass(frozen=True)
class PolicyEntry(_Entry):
    """What ``DomainSpec.policy`` returns: its description and admissibility, the settings it serves,
    and ``build`` for any of them."""

    members: ClassVar[str] = "policies"
    noun: ClassVar[str] = "baseline"
    plural: ClassVar[str] = "baselines"

    @property
    def admissible(self) -> bool:
        return all(s.policies[self.name].admissible for s in self.settings)

    def build(self, scenario: Scenario, device: torch.device) -> Policy:
        """The baseline for ``scenario`` (a ``PolicyMismatchError`` when it cannot serve it)."""
        spec: PolicySpec = self.spec_for(scenario)
        problem = spec.problem(scenario)
        if problem is not None:
            raise PolicyMismatchError(f"policy '{self.name}' cannot serve this scenario: {problem}")
        return spec.build(scenario, device)


@dataclass(frozen=True)
class AlgoEntry(_Entry):
    """What ``DomainSpec.algo`` returns: an algorithm across the settings that have it."""

    members: ClassVar[str] = "algos"
    noun: ClassVar[str] = "algorithm"
    plural: ClassVar[str] = "algorithms"

    def train(
        self, scenario: Scenario, seed: int = 0, device: torch.device | str = "cpu", progress: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> TrainOutcome:
        """Train on ``scenario`` with the user's ``options`` (validated; nothing is registered: see
        :func:`decisionlab.core.training.train_and_register` for that)."""
        spec: AlgoSpec = self.spec_for(scenario)
        chosen = resolve_options(spec.options_model, dict(options or {}), f"{self.name} option")
        return spec.train(scenario, chosen, TrainContext(int(seed), torch.device(device), progress))


@dataclass(frozen=True, eq=False)  # identity equality and hash: one spec object per domain
class DomainSpec:
    """A domain: its settings and its named HTTP routes.

    Attributes:
        settings: the domain's settings (preset names are unique across them).
        default_scenario / default_algo: what ``make run`` trains and what the CLI uses when
            ``--scenario`` is left out.
        routes: builds the domain's own FastAPI router of named routes (thin wrappers over the core
            serving path; imported lazily). ``/act``, ``/schema`` and ``/policies`` come from the core.
    """

    name: str
    title: str
    description: str
    settings: Sequence[SettingSpec]
    default_scenario: str
    default_algo: str | None = None
    routes: Callable[[], APIRouter] | None = None

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for setting in self.settings:
            for preset in setting.presets:
                if preset in seen:
                    raise ValueError(f"preset {preset!r} is in settings {seen[preset]!r} and {setting.name!r}")
                seen[preset] = setting.name
        if self.default_scenario not in seen:
            raise ValueError(f"domain {self.name!r}: default scenario {self.default_scenario!r} is no preset")
        for setting in self.settings:
            for kind, target in setting.policy_kinds.items():
                register_policy_kind(kind, target)

    # --- look-ups ---------------------------------------------------------------------------

    @property
    def url_path(self) -> str:
        """Where the API mounts the domain: ``/v1/`` and the name with hyphens (``market_making`` is
        served under ``/v1/market-making``, as URLs usually spell words)."""
        return "/v1/" + self.name.replace("_", "-")

    @cached_property  # settings are immutable: computed once (serving reads these per request)
    def scenarios(self) -> dict[str, Scenario]:
        """Every preset of every setting, by name."""
        return {name: preset for setting in self.settings for name, preset in setting.presets.items()}

    @cached_property
    def policies(self) -> dict[str, PolicyEntry]:
        """Every baseline name of every setting (see :class:`PolicyEntry`)."""
        names = dict.fromkeys(name for setting in self.settings for name in setting.policies)
        return {name: self.policy(name) for name in names}

    @property
    def algos(self) -> dict[str, AlgoEntry]:
        names = dict.fromkeys(name for setting in self.settings for name in setting.algos)
        return {name: self.algo(name) for name in names}

    @property
    def metrics(self) -> dict[str, MetricSpec]:
        return {name: spec for setting in self.settings for name, spec in setting.metrics.items()}

    @property
    def primary_metric(self) -> str:
        return self.setting_of_preset(self.default_scenario).primary_metric

    @property
    def default_policy_name(self) -> str | None:
        """The registered name of the policy ``make run`` trains (``<algo>_<scenario>``), if any."""
        return f"{self.default_algo}_{self.default_scenario}" if self.default_algo else None

    def setting(self, name: str) -> SettingSpec:
        return pick({s.name: s for s in self.settings}, name, f"{self.name} setting")

    def setting_of(self, scenario: Scenario) -> SettingSpec:
        """The setting ``scenario`` belongs to: the one dispatch on scenario types, in the core."""
        for setting in self.settings:
            if isinstance(scenario, setting.scenario_model):
                return setting
        raise DecisionlabError(f"{type(scenario).__name__} is not a scenario of the {self.name} domain")

    def setting_of_preset(self, preset: str) -> SettingSpec:
        for setting in self.settings:
            if preset in setting.presets:
                return setting
        raise UnknownNameError(f"{self.name} scenario", preset, list(self.scenarios))

    def scenario(self, name: str, overrides: Mapping[str, Any] | None = None) -> Scenario:
        """The preset ``name`` with ``overrides`` applied and validated."""
        preset = self.setting_of_preset(name).presets[name]
        if not overrides:
            return preset  # presets are validated and immutable
        return resolve_scenario(type(preset), preset, overrides)

    def policy(self, name: str) -> PolicyEntry:
        serving = tuple(s for s in self.settings if name in s.policies)
        if not serving:
            names = dict.fromkeys(n for s in self.settings for n in s.policies)
            raise UnknownNameError(f"{self.name} policy", name, list(names))
        return PolicyEntry(name, self, serving)

    def algo(self, name: str) -> AlgoEntry:
        serving = tuple(s for s in self.settings if name in s.algos)
        if not serving:
            names = dict.fromkeys(n for s in self.settings for n in s.algos)
            raise UnknownNameError(f"{self.name} algorithm", name, list(names))
        return AlgoEntry(name, self, serving)

    def load_policy(
        self, config: dict[str, Any], weights: Mapping[str, torch.Tensor], scenario: Scenario, device: torch.device
    ) -> Policy:
        """A learned policy rebuilt from its JSON ``config`` and ``weights`` to act in ``scenario``
        (a ``PolicyMismatchError`` when its kind or shape does not fit the scenario)."""
        setting = self.setting_of(scenario)
        kind = str(config.get("kind"))
        if kind not in setting.policy_kinds:
            raise PolicyMismatchError(
                f"a {kind} policy cannot serve the {setting.title} setting; its policy kinds: "
                f"{', '.join(setting.policy_kinds) or 'none'}"
            )
        return rebuild_policy(config, weights, scenario, torch.device(device))

    def summary(self) -> dict[str, Any]:
        """JSON description used by ``decisionlab domains`` and ``GET /v1/domains``."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "settings": [setting.summary() for setting in self.settings],
            "scenarios": {k: v.describe() for k, v in self.scenarios.items()},
            "policies": {
                name: {"description": entry.description, "admissible": entry.admissible,
                       "settings": [s.name for s in entry.settings]}
                for name, entry in self.policies.items()
            },
            "algos": {name: entry.description for name, entry in self.algos.items()},
            "metrics": {
                k: {"description": v.description, "better": v.better, "unit": v.unit} for k, v in self.metrics.items()
            },
            "primary_metric": self.primary_metric,
            "default_scenario": self.default_scenario,
        }


_DOMAINS: dict[str, DomainSpec] = {}
DOMAINS_ENV = "DECISIONLAB_DOMAINS"
DOMAINS_PACKAGE = "decisionlab.domains"
ENTRY_POINT_GROUP = "decisionlab.domains"


def register_domain(spec: DomainSpec) -> DomainSpec:
    """Add ``spec`` to the registry (replaces a domain of the same name)."""
    _DOMAINS[spec.name] = spec
    return spec


def unregister_domain(name: str) -> None:
    """Remove a domain (tests register fixture domains and remove them again)."""
    _DOMAINS.pop(name, None)


def discover_domains() -> dict[str, DomainSpec]:
    """Import every domain package so each registers itself: the packages under
    ``decisionlab.domains``, the modules named by the ``decisionlab.domains`` entry points of
    installed distributions, and the comma-separated modules of ``$DECISIONLAB_DOMAINS``."""
    # found by name, not imported as code: the core depends on no domain
    found = importlib.util.find_spec(DOMAINS_PACKAGE)
    for module in pkgutil.iter_modules(found.submodule_search_locations if found is not None else []):
        if module.ispkg:
            importlib.import_module(f"{DOMAINS_PACKAGE}.{module.name}")
    for point in entry_points(group=ENTRY_POINT_GROUP):
        importlib.import_module(point.value.partition(":")[0])
    for name in filter(None, (part.strip() for part in os.environ.get(DOMAINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise DecisionlabError(f"{DOMAINS_ENV}: cannot import domain module {name!r} ({err})") from None
    return dict(_DOMAINS)


def get_domain(name: str) -> DomainSpec:
    """The registered domain ``name`` (discovering domains on first use); its URL form (``market-making``, as in
    ``/v1/market-making/...``) names it too."""
    if name not in _DOMAINS:
        discover_domains()
    if name not in _DOMAINS and name.replace("-", "_") in _DOMAINS:
        name = name.replace("-", "_")
    if name not in _DOMAINS:
        raise UnknownNameError("domain", name, list(_DOMAINS))
    return _DOMAINS[name]


def list_domains() -> list[DomainSpec]:
    return [spec for _, spec in sorted(discover_domains().items())]
