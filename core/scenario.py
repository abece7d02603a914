"""Scenario base: validated parameters, named presets and ``--set key=value`` overrides.

A scenario is an immutable pydantic model. Domains subclass :class:`Scenario`, give every field
a description (shown by the CLI and the API schema) and register named presets. Overrides arrive
as strings from the command line or as JSON values from the API; both go through
:func:`resolve_scenario`, which names the offending field in every error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from decisionlab.core.errors import ScenarioError, UnknownNameError


def _numeric(annotation: Any) -> bool:
    """Whether a field holds a number (``int``, ``float``, optionally ``None``)."""
    if annotation in (int, float):
        return True
    args = [a for a in get_args(annotation) if a is not type(None)]
    return get_origin(annotation) in (Union, UnionType) and bool(args) and all(a in (int, float) for a in args)


SERVER_PATH = "x-decisionlab-server-path"
SHIPPED = (None, "sample")
"""Values of a server-path field that name no file of the server's: unset, or the data shipped in the package."""


def server_path(description: str, default: Any = None, **constraints: Any) -> Any:
    """A scenario field holding a path on the machine that runs decisionlab (trip records, sales history,
    order-book files): the CLI and the dashboard read it; the API refuses any value but the shipped ones
    (:data:`SHIPPED`), since a client has no business naming the server's files."""
    return Field(default, description=description, json_schema_extra={SERVER_PATH: True}, **constraints)


def server_path_problems(model: type[BaseModel], parameters: Mapping[str, Any]) -> list[str]:
    """The ``parameters`` of ``model`` that name a server path (what the API refuses)."""
    return [name for name, value in parameters.items() if name in model.model_fields
            and (model.model_fields[name].json_schema_extra or {}).get(SERVER_PATH) and value not in SHIPPED]


class Scenario(BaseModel):
    """Base class of every domain's scenario parameters (immutable, unknown keys rejected)."""

    # Non-finite numbers are never parameters: "nan" or "inf" is refused as "a finite number".
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_numbers(cls, data: Any) -> Any:
        """pydantic reads ``true`` as 1 and ``"3"`` as 3 for numeric fields; a scenario parameter
        never means that (the CLI's ``--set`` values are parsed as JSON before they get here)."""
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key)
                if field is not None and _numeric(field.annotation) and isinstance(value, bool | str):
                    shown = str(value).lower() if isinstance(value, bool) else repr(value[:40])
                    raise ValueError(f"{key}: expected a number, got the {type(value).__name__} {shown}")
        return data

    def describe(self) -> dict[str, Any]:
        """All resolved parameters as plain JSON values."""
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        """16 hex digits that identify the resolved scenario (its type and every parameter): what a
        serving response names, and the key of builds persisted for it."""
        return scenario_fingerprint(self)


class EpisodicScenario(Scenario):
    """A scenario evaluated on long episodes whose first periods are a warm-up, not scored."""

    horizon_periods: int = Field(5000, ge=2, le=1_000_000, description="periods per evaluation episode")
    warmup_periods: int = Field(1000, ge=0, description="first periods of an episode excluded from metrics")

    @model_validator(mode="after")
    def _warmup_shorter_than_horizon(self) -> EpisodicScenario:
        if self.warmup_periods >= self.horizon_periods:
            raise ValueError(
                f"warmup_periods ({self.warmup_periods}) must be smaller than horizon_periods ({self.horizon_periods})"
            )
        return self


S = TypeVar("S", bound=Scenario)


@lru_cache(maxsize=1024)
def scenario_fingerprint(scenario: Scenario) -> str:
    """See :meth:`Scenario.fingerprint` (cached: scenarios are immutable)."""
    text = json.dumps({"type": type(scenario).__qualname__, **scenario.describe()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


NON_FINITE = frozenset({"nan", "inf", "infinity"})


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["lead_time=2", "demand_mean=5.5"]`` into a dict; values are parsed as JSON when they can be."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ScenarioError(f"override '{item}' must look like key=value")
        raw = raw.strip()
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            # "nan" and "inf" are numbers the scenario refuses as non-finite, not strings
            value = float(raw) if raw.lower().lstrip("+-") in NON_FINITE else raw
        out[key] = value
    return out


def format_validation_error(err: ValidationError) -> str:
    """One line per problem, each naming the field: ``lead_time: must be >= 0 (got -1)``."""
    lines = []
    for problem in err.errors():
        field = ".".join(str(p) for p in problem.get("loc", ()))
        msg = str(problem.get("msg", "invalid value")).removeprefix("Value error, ")
        got = problem.get("input")
        if not field:  # a check of the whole scenario: its message names the fields
            lines.append(msg)
            continue
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{field}: {msg}{shown}")
    return "; ".join(lines)


def resolve_scenario(
    model: type[S], preset: S | Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> S:
    """Apply ``overrides`` to ``preset`` and validate the result as ``model``.

    Raises :class:`ScenarioError` naming unknown keys (with the valid ones) or invalid values.
    """
    base = preset.model_dump() if isinstance(preset, BaseModel) else dict(preset)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(model.model_fields))
    if unknown:
        raise ScenarioError(
            f"unknown parameter(s) {', '.join(unknown)}; valid parameters: "
            + ", ".join(sorted(model.model_fields))
        )
    try:
        return model.model_validate({**base, **overrides})
    except ValidationError as err:
        raise ScenarioError(f"invalid scenario: {format_validation_error(err)}") from None


M = TypeVar("M", bound=BaseModel)


def resolve_options(model: type[M], options: Mapping[str, Any], what: str = "option") -> M:
    """Validate algorithm settings (e.g. ``--algo-set max_steps=100``) against ``model``."""
    unknown = sorted(set(options) - set(model.model_fields))
    if unknown:
        raise ScenarioError(
            f"unknown {what}(s) {', '.join(unknown)}; valid: {', '.join(sorted(model.model_fields))}"
        )
    try:
        return model.model_validate(dict(options))
    except ValidationError as err:
        raise ScenarioError(f"invalid {what}: {format_validation_error(err)}") from None


def pick(mapping: Mapping[str, Any], name: str, kind: str) -> Any:
    """``mapping[name]`` or an :class:`UnknownNameError` that lists the choices."""
    if name not in mapping:
        raise UnknownNameError(kind, name, list(mapping))
    return mapping[name]
