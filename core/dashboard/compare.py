"""The comparison view every setting gets for free, and the page of a domain.

Pure part (no Streamlit, tested directly): :func:`policy_choices` (the baselines that serve a
scenario and the registered policies of a kind its setting serves), :func:`default_selection`,
:func:`run_comparison` (build the chosen policies, skipping those that cannot serve the scenario with
the reason, and evaluate them on common random numbers through
:func:`~decisionlab.core.evaluation.evaluate_policies`) and :func:`difference_figure` (each policy's
paired difference to the reference with its 95% CI: the number a user decides on) and
:func:`separation_notes` (which of those differences are too uncertain to rank the two policies).

:func:`domain_page` draws a domain: the sidebar generated from the chosen preset's scenario model
(:mod:`decisionlab.core.ui`), the policy picker and Run button, then tabs: the comparison (CI table
and difference chart) and the setting's own views (:class:`~decisionlab.core.spec.ViewSpec`), each
called with a :class:`ViewContext`. Results are kept in ``st.session_state`` so widget reruns do
not recompute them.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl
import torch

from decisionlab.core import ui
from decisionlab.core.errors import DecisionlabError
from decisionlab.core.evaluation import EvaluationReport, default_episodes, evaluate_policies
from decisionlab.core.policy import Policy
from decisionlab.core.resolve import record_kind
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import DomainSpec, SettingSpec, ViewSpec

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core.store.registry import PolicyRegistry


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def registered_choices(domain: DomainSpec, setting: SettingSpec, registry: PolicyRegistry) -> list[str]:
    """References of the registered policies of a kind ``setting`` serves (oldest first)."""
    return [str(r.ref) for r in registry.list(domain.name) if record_kind(r) in setting.policy_kinds]


def policy_choices(domain: DomainSpec, scenario: Scenario, registry: PolicyRegistry) -> list[str]:
    """The baselines that can serve ``scenario``, then the registered policies of its setting's kinds."""
    setting = domain.setting_of(scenario)
    return [*setting.available_policies(scenario), *registered_choices(domain, setting, registry)]


def default_registered(domain: DomainSpec, setting: SettingSpec, registry: PolicyRegistry) -> str | None:
    """The policy ``make run`` trains for the domain (:attr:`DomainSpec.default_policy_name`): the
    version its ``prod`` alias points at, else the latest, when it is of a kind ``setting`` serves."""
    name = domain.default_policy_name
    if name is None:
        return None
    matches = [r for r in registry.list(domain.name) if r.ref.name == name and record_kind(r) in setting.policy_kinds]
    promoted = [r for r in matches if "prod" in r.aliases]
    chosen = promoted or matches
    return str(chosen[-1].ref) if chosen else None


def default_selection(domain: DomainSpec, scenario: Scenario, registry: PolicyRegistry) -> list[str]:
    """What the page picks for ``scenario``: the setting's quick baselines that serve it, plus the
    domain's default registered policy (see :func:`default_registered`)."""
    setting = domain.setting_of(scenario)
    available = set(setting.available_policies(scenario))
    chosen = [name for name in setting.default_policies if name in available]
    default = default_registered(domain, setting, registry)
    return [*chosen, default] if default else chosen


def build_selected(
    domain: DomainSpec, scenario: Scenario, names: Sequence[str], device: torch.device,
    registry: PolicyRegistry | None = None,
) -> tuple[list[tuple[str, Policy]], dict[str, str]]:
    """Build each named policy for ``scenario``; those that cannot serve it are skipped with the
    reason (a ``DecisionlabError`` while building: the exact DP beyond its range, a registered policy
    of another setting or lead time, a reference that no longer exists)."""
    from decisionlab.core.resolve import build_policy

    built: list[tuple[str, Policy]] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            built.append(build_policy(domain, scenario, name, device, registry))
        except DecisionlabError as err:
            skipped[name] = str(err)
    return built, skipped


@dataclass
class ComparisonResult:
    """Everything the page shows after one press of Run; views keep what they compute on demand
    in ``cache``."""

    request: dict[str, Any]
    scenario: Scenario
    setting: str
    report: EvaluationReport
    table: pl.DataFrame
    policies: list[tuple[str, Policy]]
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    cache: dict[str, Any] = field(default_factory=dict)


def run_comparison(
    domain: DomainSpec,
    preset: str,
    overrides: Mapping[str, Any],
    names: Sequence[str],
    *,
    episodes: int,
    seed: int = 0,
    device: torch.device | None = None,
    registry: PolicyRegistry | None = None,
) -> ComparisonResult:
    """Resolve the scenario, build the policies, evaluate them on common random numbers.

    Raises :class:`DecisionlabError` for an invalid scenario, no policy chosen, or no chosen policy
    able to run; policies that merely cannot serve this scenario are listed in ``skipped``.
    """
    from decisionlab.core.device import get_device

    start = time.perf_counter()
    device = device if device is not None else get_device()
    request = {"preset": preset, "overrides": dict(overrides), "policies": list(names), "episodes": int(episodes),
               "seed": int(seed)}
    scenario = domain.scenario(preset, overrides)
    setting = domain.setting_of(scenario)
    if not names:
        raise DecisionlabError("choose at least one policy to compare")
    policies, skipped = build_selected(domain, scenario, names, device, registry)
    if not policies:
        raise DecisionlabError("none of the chosen policies can run on this scenario: "
                               + "; ".join(f"{name}: {msg}" for name, msg in skipped.items()))
    report = evaluate_policies(domain, scenario, policies, episodes=int(episodes), seed=int(seed), device=device)
    return ComparisonResult(request=request, scenario=scenario, setting=setting.name, report=report,
                            table=report.wide(setting.primary_metric), policies=policies, skipped=skipped,
                            seconds=time.perf_counter() - start)


def difference_figure(report: EvaluationReport, metric: str, better: str = "lower") -> go.Figure:
    """Each policy's paired difference to the reference (the first policy) in ``metric``, with its
    95% CI: on the same random numbers the difference is far tighter than the two CIs suggest."""
    import plotly.graph_objects as go

    table = report.table().filter(pl.col("metric") == metric)
    reference = report.labels[0]
    rows = [row for row in table.iter_rows(named=True) if row["policy"] != reference]
    colors = ui.palette()
    fig = go.Figure()
    for i, row in enumerate(rows):
        fig.add_trace(go.Scatter(
            x=[row["diff_vs_first"]], y=[row["policy"]], mode="markers", name=row["policy"],
            marker={"size": 12, "color": colors[(i + 1) % len(colors)]},
            error_x={"type": "data", "array": [row["diff_ci95"]], "visible": True, "thickness": 2},
            hovertemplate=f"{row['policy']}: %{{x:.4g}} ± {row['diff_ci95']:.3g}<extra></extra>",
        ))
    fig.add_vline(x=0.0, line={"color": "#444", "dash": "dash"})
    direction = "left" if better == "lower" else "right"
    fig.update_layout(
        title=f"{metric}: difference to {reference} (paired, 95% CI); better is to the {direction}",
        xaxis_title=f"{metric} − {metric} of {reference}", yaxis={"autorange": "reversed"},
        showlegend=False, height=max(260, 90 + 60 * max(1, len(rows))), margin={"t": 50, "b": 40},
    )
    return fig


def unseparated(report: EvaluationReport, metric: str) -> list[tuple[str, float, float]]:
    """``(policy, diff_vs_first, diff_ci95)`` of each policy whose paired 95% CI of the difference to
    the reference (the first policy) in ``metric`` includes 0: these runs cannot tell the two apart."""
    table = report.table().filter((pl.col("metric") == metric) & (pl.col("policy") != report.labels[0]))
    return [(row["policy"], row["diff_vs_first"], row["diff_ci95"]) for row in table.iter_rows(named=True)
            if abs(row["diff_vs_first"]) <= row["diff_ci95"]]


def separation_notes(report: EvaluationReport, metric: str) -> list[str]:
    """Markdown lines to show under the results: which policies ``metric`` does not separate from
    the reference at these episodes (one line each), or that one episode gives no CI at all."""
    if len(report.labels) < 2:
        return []
    if report.episodes < 2:
        return ["One episode gives no confidence interval: run more episodes to separate the policies."]
    reference = report.labels[0]
    return [f"**{policy}** vs **{reference}**: the 95% CIs overlap (paired difference in {metric} "
            f"{diff:.4g} ± {half:.3g} includes 0): these two are not separated; run more episodes."
            for policy, diff, half in unseparated(report, metric)]


# --------------------------------------------------------------------------------------------
# The page (Streamlit, imported lazily)
# --------------------------------------------------------------------------------------------


@dataclass
class ViewContext:
    """What a setting's view receives: the domain and setting, the sidebar's current scenario (or
    its preset while the inputs are invalid), the kept comparison when it was computed for this
    setting (``None`` otherwise), the device and registry, and widget keys unique to the page."""

    domain: DomainSpec
    setting: SettingSpec
    scenario: Scenario
    result: ComparisonResult | None
    device: torch.device
    registry: PolicyRegistry

    def key(self, name: str) -> str:
        return ui.widget_key(self.domain.name, name)


def results_key(domain: DomainSpec) -> str:
    """Where the page keeps its last comparison in ``st.session_state``."""
    return f"{domain.name}_results"


def view_function(view: ViewSpec) -> Callable[[ViewContext], None]:
    module, _, name = view.render.partition(":")
    return getattr(importlib.import_module(module), name)


def evaluation_fields(setting: SettingSpec) -> list[str]:
    """The scenario fields the sidebar shows under "Evaluation": those of ``setting.quick``."""
    return [name for name in setting.quick if name in setting.scenario_model.model_fields]


def preset_state(domain: DomainSpec, preset: str, registry: PolicyRegistry) -> dict[str, Any]:
    """Widget values of a preset: its fields (the setting's quick overrides applied), the setting's
    default episodes and the default policy selection."""
    setting = domain.setting_of_preset(preset)
    scenario = setting.presets[preset]
    quick = {k: v for k, v in setting.quick.items() if k in type(scenario).model_fields}
    scenario = scenario.model_copy(update=quick) if quick else scenario
    values = ui.preset_values(scenario, limits=setting.input_limits)
    values["episodes"] = default_episodes(setting, scenario)  # capped where the data holds fewer
    values["policies"] = default_selection(domain, scenario, registry)
    return values


def _sidebar(domain: DomainSpec, registry: PolicyRegistry) -> tuple[str, dict[str, Any], int, int]:
    """Draw the settings; returns ``(preset, overrides, episodes, seed)``."""
    import streamlit as st

    key = lambda name: ui.widget_key(domain.name, name)  # noqa: E731
    settings = {name: domain.setting_of_preset(name) for name in domain.scenarios}

    def load_preset() -> None:
        ui.set_values(domain.name, preset_state(domain, st.session_state[key("preset")], registry))

    bar = st.sidebar
    bar.header("Scenario")
    bar.selectbox("Preset", list(domain.scenarios), key=key("preset"), on_change=load_preset,
                  format_func=lambda name: f"{name} ({settings[name].title})",
                  help="named scenario; changing it reloads the parameters below and the default policies")
    preset = st.session_state[key("preset")]
    setting = settings[preset]
    base = setting.presets[preset]
    evaluation = evaluation_fields(setting)
    inputs = ui.field_inputs(type(base), exclude=evaluation)
    overrides = ui.draw_inputs(bar, domain.name, [i for i in inputs if i.kind != "text"], setting.input_limits)
    text = [i for i in inputs if i.kind == "text"]
    if text:
        overrides.update(ui.draw_inputs(bar.expander("More parameters (text)"), domain.name, text,
                                        setting.input_limits))
    bar.header("Evaluation")
    bar.number_input(setting.episode_label, min_value=1, max_value=1_000_000, step=8, key=key("episodes"),
                     help="episodes per policy; every policy sees the same random numbers")
    evaluated = [i for i in ui.field_inputs(type(base)) if i.name in evaluation]
    overrides.update(ui.draw_inputs(bar, domain.name, evaluated, setting.input_limits))
    bar.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=key("seed"),
                     help="seed of the common random numbers")
    state = st.session_state
    return preset, overrides, int(state[key("episodes")]), int(state[key("seed")])


def _comparison_tab(domain: DomainSpec, result: ComparisonResult | None, current: dict[str, Any]) -> None:
    import streamlit as st

    if result is None:
        st.info("Press **Run** to evaluate the chosen policies.")
        return
    if result.request != current:
        st.info("The settings changed since these results were computed: press **Run** to update them.")
    setting = domain.setting(result.setting)
    oracles = [label for label, _ in result.policies
               if label in setting.policies and not setting.policies[label].admissible]
    reference = result.report.labels[0]
    st.caption(
        f"{setting.title}: {result.report.episodes:,} episodes ({result.report.effective_episodes:,} effective: "
        f"independent), seed {result.report.seed}, computed in "
        f"{result.seconds:.1f} s. `diff_vs_first` is the paired difference to **{reference}** on the same random "
        "numbers (95% CI)." + (f" {', '.join(oracles)} reads the future: a bound, not a policy." if oracles else "")
    )
    shown = result.table.with_columns(pl.col(pl.Float64, pl.Float32).round(4))
    st.dataframe(shown, hide_index=True, key=ui.widget_key(domain.name, "results_table"))
    for note in separation_notes(result.report, setting.primary_metric):
        st.caption(note)
    if len(result.report.labels) > 1:
        metrics = list(setting.metrics)
        metric = st.selectbox("Metric of the difference chart", metrics, index=metrics.index(setting.primary_metric),
                              key=ui.widget_key(domain.name, "difference_metric"))
        st.plotly_chart(difference_figure(result.report, metric, setting.metrics[metric].better),
                        key=ui.widget_key(domain.name, "difference_chart"))


def domain_page(name: str) -> None:
    """Draw the page of domain ``name`` (one of the pages the shell generates from the registry)."""
    import streamlit as st

    from decisionlab.core.device import configure_threads, get_device
    from decisionlab.core.spec import get_domain
    from decisionlab.core.store.registry import PolicyRegistry

    configure_threads()  # Streamlit runs pages in its own process: set torch threads there too
    try:
        domain = get_domain(name)
        registry = PolicyRegistry()
        device = get_device()
    except DecisionlabError as err:
        st.error(str(err))
        return
    st.title(domain.title)
    settings = ", ".join(s.title for s in domain.settings)
    st.markdown(f"{domain.description} Settings: {settings}. Choose a scenario in the sidebar, pick policies and "
                "press **Run**: every policy is simulated on the same random numbers, so their differences are paired.")
    key = lambda part: ui.widget_key(domain.name, part)  # noqa: E731
    ui.init_state(domain.name, {"preset": domain.default_scenario,
                                **preset_state(domain, domain.default_scenario, registry), "seed": 0})
    preset, overrides, episodes, seed = _sidebar(domain, registry)
    setting = domain.setting_of_preset(preset)
    scenario: Scenario | None = None
    try:
        scenario = domain.scenario(preset, overrides)
    except DecisionlabError as err:  # shown until fixed; Run does nothing meanwhile
        st.error(str(err))
    current = scenario if scenario is not None else setting.presets[preset]
    choices = policy_choices(domain, current, registry)
    st.session_state[key("policies")] = [n for n in st.session_state.get(key("policies"), []) if n in choices]
    names = st.multiselect("Policies (the first is the reference)", choices, key=key("policies"),
                           help="baselines that serve this scenario, then registered policies of this setting")
    unavailable = {n: spec.problem(current) for n, spec in setting.policies.items() if spec.problem(current)}
    for unserved, reason in unavailable.items():
        st.caption(f"Not offered: {unserved} cannot serve this scenario: {reason}")
    slow = [n for n in names if n in setting.policies and setting.policies[n].expensive]
    if slow:
        st.caption(f"Slow first use: {', '.join(slow)}: parameters searched or solved on first use (seconds; "
                   "cached afterwards).")
    request = {"preset": preset, "overrides": dict(overrides), "policies": list(names), "episodes": episodes,
               "seed": seed}
    if st.button("Run", type="primary", key=key("run")) and scenario is not None:
        try:
            with st.spinner("Building the policies, then simulating…"):
                st.session_state[results_key(domain)] = run_comparison(
                    domain, preset, overrides, names, episodes=episodes, seed=seed, device=device, registry=registry)
        except DecisionlabError as err:
            st.error(str(err))
    result: ComparisonResult | None = st.session_state.get(results_key(domain))
    if result is not None:
        for skipped, message in result.skipped.items():
            st.warning(f"Skipped **{skipped}**: {message}")
    matching = result if result is not None and result.setting == setting.name else None
    tabs = st.tabs(["Policy comparison", *[view.title for view in setting.views]])
    with tabs[0]:
        _comparison_tab(domain, result, request)
    context = ViewContext(domain, setting, current, matching, device, registry)
    for tab, view in zip(tabs[1:], setting.views, strict=True):
        with tab:
            try:
                view_function(view)(context)
            except DecisionlabError as err:  # e.g. a data file that cannot be read
                st.error(str(err))
