"""Shared plumbing of the Streamlit domain pages: widget keys, session state, preset values and
scenario inputs generated from a pydantic model.

Pure python; Streamlit is imported lazily inside the few functions that touch ``st.session_state``
or draw widgets, so everything else is testable without it. No domain imports: a page passes its
own prefix (``"inventory"``), scenario presets and field names.

Widget values live in ``st.session_state`` under ``"<prefix>_<name>"``: :func:`init_state` seeds
them once per session, :func:`set_values` overwrites them (the ``on_change`` of a preset box), and
the widgets read them back by key, so a rerun never resets what the user typed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

Kind = Literal["int", "float", "bool", "choice", "text"]


def widget_key(prefix: str, name: str) -> str:
    """The session-state key of widget ``name`` on the page ``prefix``."""
    return f"{prefix}_{name}"


def palette() -> list[str]:
    """The qualitative colour cycle every page uses for policies."""
    import plotly.express as px

    return list(px.colors.qualitative.Plotly)


LEGEND_ROW_PX = 22  # one row of a horizontal legend (12 px font)
AXIS_BELOW_PX = 55  # x tick labels and axis title under the plot area


def legend_entries(fig: Any) -> int:
    """How many entries plotly draws in ``fig``'s legend (0 when it hides the legend)."""
    shown = [t for t in fig.data if t.showlegend is not False]
    if fig.layout.showlegend is False or (fig.layout.showlegend is None and len(fig.data) < 2):
        return 0
    return len(shown)


def legend_layout(entries: int, plot_height: int, per_row: int = 1, top: int = 50,
                  axis_px: int = AXIS_BELOW_PX) -> dict[str, Any]:
    """Layout that puts a legend of ``entries`` under the plot area, ``per_row`` entries a row, and
    grows the figure by the legend's height: the plot area keeps ``plot_height`` px whatever the
    number or length of the labels (a legend on the side, or one plotly fits by auto-margins,
    squashes the plot instead)."""
    rows = math.ceil(entries / max(1, per_row)) if entries else 0
    bottom = axis_px + (rows * LEGEND_ROW_PX + 8 if rows else 0)
    return {
        "height": top + plot_height + bottom,
        "margin": {"t": top, "b": bottom},
        "legend": {"orientation": "h", "x": 0.0, "xanchor": "left", "yref": "paper", "yanchor": "top",
                   "y": -axis_px / plot_height, "entrywidthmode": "fraction", "entrywidth": 1.0 / max(1, per_row),
                   "tracegroupgap": 0},
    }


def legend_below(fig: Any, plot_height: int = 320, per_row: int = 1, top: int = 50,
                 axis_px: int = AXIS_BELOW_PX) -> Any:
    """Apply :func:`legend_layout` to plotly figure ``fig`` for the entries it shows; returns ``fig``."""
    fig.update_layout(**legend_layout(legend_entries(fig), plot_height, per_row, top, axis_px))
    return fig


def short_label(label: str, domain: str | None = None, most: int = 40) -> str:
    """``label`` for a legend: a registered reference without its ``<domain>/`` prefix (the page
    names the domain), cut in the middle with an ellipsis beyond ``most`` characters."""
    if domain and label.startswith(f"{domain}/"):
        label = label[len(domain) + 1:]
    if len(label) <= most:
        return label
    head = (most - 1) // 2
    return f"{label[:head]}…{label[len(label) - (most - 1 - head):]}"


def build_selected_policies(
    spec: Any, scenario: Any, names: Sequence[str], device: Any, registry: Any = None,
) -> tuple[list[tuple[str, Any]], dict[str, str]]:
    """Build each named policy of ``spec`` (a ``DomainSpec``) for ``scenario``; those that cannot
    serve it are skipped with the reason. Returns ``([(label, policy), ...], {name: error message})``:
    a policy is skipped when building it raises a ``DecisionlabError`` (the exact DP beyond its
    tractable range, a registered network trained for another setting, a reference that no longer
    exists)."""
    from decisionlab.core.errors import DecisionlabError
    from decisionlab.core.resolve import build_policy

    built: list[tuple[str, Any]] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            built.append(build_policy(spec, scenario, name, device, registry))
        except DecisionlabError as err:
            skipped[name] = str(err)
    return built, skipped


def require_runnable(policies: Sequence[Any], skipped: Mapping[str, str]) -> None:
    """Raise a ``DecisionlabError`` listing why each chosen policy was skipped when none can run."""
    from decisionlab.core.errors import DecisionlabError

    if not policies:
        raise DecisionlabError("none of the chosen policies can run on this scenario: "
                               + "; ".join(f"{name}: {msg}" for name, msg in skipped.items()))


# --------------------------------------------------------------------------------------------
# Scenario fields as inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldInput:
    """How one model field is edited: a number box (``int``/``float``, optional bounds), a checkbox
    (``bool``), a select box (``choice`` over ``options``) or a text box (``text``: tuples, optional
    values, dates and paths, parsed by :func:`parse_text` and validated by the model)."""

    name: str
    kind: Kind
    label: str
    help: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    options: tuple[Any, ...] = ()
    step: float = 1.0
    nullable: bool = False
    raw_string: bool = False  # a str field: the text is the value, never parsed as JSON


def _bounds(info: Any) -> tuple[float | None, float | None]:
    low = high = None
    for item in getattr(info, "metadata", ()):
        if getattr(item, "ge", None) is not None:
            low = item.ge
        if getattr(item, "gt", None) is not None:
            low = item.gt  # number boxes cannot be strict: the model rejects the bound itself
        if getattr(item, "le", None) is not None:
            high = item.le
        if getattr(item, "lt", None) is not None:
            high = item.lt
    return low, high


def float_step(value: float) -> float:
    """A number box step of the order of ``value`` (0.5 for 1..9.9, 0.05 for 0.1..0.99, ...)."""
    if not value or not math.isfinite(value):
        return 0.1
    return 10.0 ** math.floor(math.log10(abs(value))) / 2.0


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def field_input(name: str, info: Any) -> FieldInput:
    """The input of model field ``name`` (``info``: its pydantic ``FieldInfo``)."""
    annotation = info.annotation
    label, help_text = _label(name), info.description
    if annotation is bool:
        return FieldInput(name, "bool", label, help_text)
    if annotation in (int, float):
        low, high = _bounds(info)
        if annotation is int:
            return FieldInput(name, "int", label, help_text, low, high)
        default = info.default if isinstance(info.default, int | float) else 0.0
        return FieldInput(name, "float", label, help_text, low, high, step=float_step(float(default)))
    if get_origin(annotation) is Literal:
        return FieldInput(name, "choice", label, help_text, options=get_args(annotation))
    union = get_origin(annotation) in (Union, types.UnionType)
    members = get_args(annotation) if union else (annotation,)
    return FieldInput(name, "text", label, help_text, nullable=type(None) in members, raw_string=str in members)


def field_inputs(model: type[BaseModel], exclude: Iterable[str] = ()) -> list[FieldInput]:
    """One input per field of ``model`` (declaration order), except ``exclude``."""
    skip = set(exclude)
    return [field_input(name, info) for name, info in model.model_fields.items() if name not in skip]


def to_text(value: Any) -> str:
    """A field value as editable text: JSON for tuples and numbers, ISO for dates, '' for None."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    return json.dumps(value)


def parse_text(spec: FieldInput, text: str) -> Any:
    """Text back into a value for the model to validate: '' is None (when allowed), str fields stay
    text, anything else is read as JSON when it parses (``[2, 3]``, ``null``) and left as text
    otherwise (a date), so the model names the field when the value is wrong."""
    text = text.strip()
    if text == "" and spec.nullable:
        return None
    if spec.raw_string:
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def widget_value(spec: FieldInput, value: Any) -> Any:
    """A model value as its widget holds it (int, float, text, ...)."""
    if spec.kind == "int":
        return int(value)
    if spec.kind == "float":
        return float(value)
    if spec.kind == "text":
        return to_text(value)
    return value


def model_value(spec: FieldInput, value: Any) -> Any:
    """A widget value as an override for the model."""
    if spec.kind == "int":
        return int(value)
    if spec.kind == "text":
        return parse_text(spec, str(value))
    return value


def preset_values(
    scenario: BaseModel, fields: Sequence[str] | None = None, limits: Mapping[str, tuple[float, float]] | None = None
) -> dict[str, Any]:
    """The preset's fields (all by default) typed as their widgets expect them, clipped to ``limits``."""
    model = type(scenario)
    names = list(model.model_fields) if fields is None else list(fields)
    values: dict[str, Any] = {}
    for name in names:
        value = widget_value(field_input(name, model.model_fields[name]), getattr(scenario, name))
        if limits and name in limits:
            low, high = limits[name]
            value = type(value)(min(max(value, low), high))
        values[name] = value
    return values


# --------------------------------------------------------------------------------------------
# Session state and widgets (Streamlit, imported lazily)
# --------------------------------------------------------------------------------------------


def init_state(prefix: str, defaults: Mapping[str, Any]) -> None:
    """Seed the widget values once per session (widgets then read them from session state)."""
    import streamlit as st

    for name, value in defaults.items():
        if widget_key(prefix, name) not in st.session_state:
            st.session_state[widget_key(prefix, name)] = value


def set_values(prefix: str, values: Mapping[str, Any]) -> None:
    """Overwrite widget values (for an ``on_change`` callback, e.g. loading a preset)."""
    import streamlit as st

    for name, value in values.items():
        st.session_state[widget_key(prefix, name)] = value


def draw_inputs(
    container: Any, prefix: str, inputs: Sequence[FieldInput], limits: Mapping[str, tuple[float, float]] | None = None
) -> dict[str, Any]:
    """Draw ``inputs`` in ``container`` (``st.sidebar``, an expander, ...) from their session-state
    values and return ``{field: override value}``; ``limits`` narrows a number box's bounds."""
    import streamlit as st

    out: dict[str, Any] = {}
    for spec in inputs:
        key = widget_key(prefix, spec.name)
        if spec.kind in ("int", "float"):
            low, high = limits[spec.name] if limits and spec.name in limits else (spec.min_value, spec.max_value)
            cast = int if spec.kind == "int" else float
            container.number_input(
                spec.label, key=key, help=spec.help, step=cast(spec.step),
                min_value=None if low is None else cast(low), max_value=None if high is None else cast(high),
                **({} if spec.kind == "int" else {"format": "%g"}),
            )
        elif spec.kind == "bool":
            container.checkbox(spec.label, key=key, help=spec.help)
        elif spec.kind == "choice":
            container.selectbox(spec.label, list(spec.options), key=key, help=spec.help)
        else:
            how = "text" if spec.raw_string else "JSON, e.g. [2, 3]"
            unset = "; empty = unset" if spec.nullable else ""
            container.text_input(spec.label, key=key, help=f"{spec.help or spec.name} ({how}{unset})")
        out[spec.name] = model_value(spec, st.session_state[key])
    return out
