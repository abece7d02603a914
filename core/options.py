"""Typed training options and the training context.

An algorithm has two pydantic models: its *settings* (every hyper-parameter, with defaults and
constraints: ``HDPOSettings``) and its *options* (what a user may set from the CLI
``--algo-set key=value`` or the API; every field optional). :func:`options_model` derives the options
from the settings, so a field is declared, constrained and described once; :func:`apply_options`
merges validated options into settings (unset options keep the settings' values) and re-validates
the result.

:class:`TrainContext` is what every ``AlgoSpec.train`` receives besides the scenario and the
options: the seed, the device, whether to show progress, and the named seed streams every trainer
draws from (:meth:`TrainContext.seed_init`, :meth:`TrainContext.generator`,
:meth:`TrainContext.cpu_generator`), so two trainers never set up randomness differently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from decisionlab.core.errors import ScenarioError
from decisionlab.core.scenario import format_validation_error
from decisionlab.core.seeding import derive_seed, make_generator

S = TypeVar("S", bound=BaseModel)


Widths = Annotated[tuple[Annotated[int, Field(ge=1, le=4096)], ...], Field(min_length=1, max_length=16)]
"""Hidden-layer widths of a network option: 1 to 16 layers of 1 to 4,096 units (a width of 0 or less is no
network at all)."""


class NoOptions(BaseModel):
    """The options of an algorithm that takes none."""

    model_config = ConfigDict(extra="forbid")


def options_model(
    name: str,
    settings: type[BaseModel],
    fields: Iterable[str],
    extra: Mapping[str, tuple[Any, FieldInfo]] | None = None,
    doc: str | None = None,
) -> type[BaseModel]:
    """A model named ``name`` whose fields are ``settings``' ``fields`` made optional (default
    ``None`` = keep the settings' value; the same constraints and descriptions), plus ``extra``
    fields given as ``{name: (annotation, Field(...))}`` (e.g. a quality preset)."""
    definitions: dict[str, Any] = {field: optional_field(settings, field) for field in fields}
    for field, (annotation, info) in (extra or {}).items():
        definitions[field] = (annotation, info)
    # a learning rate or a target of inf passes gt=0 and would be trained on and stored in the card
    model = create_model(name, __config__=ConfigDict(extra="forbid", allow_inf_nan=False), **definitions)
    model.__doc__ = doc or f"User options of {settings.__name__} (unset: keep the default)."
    return model


def optional_field(model: type[BaseModel], field: str) -> tuple[Any, FieldInfo]:
    """``(annotation | None, FieldInfo)`` of ``model.field`` with default ``None`` and the field's
    constraints and description: the options-model version of a settings field."""
    info = model.model_fields[field]
    return info.annotation | None, FieldInfo.merge_field_infos(info, default=None)


def apply_options(settings: S, options: BaseModel, exclude: Iterable[str] = ()) -> S:
    """``settings`` with every option that is set (not ``None``) and not in ``exclude`` applied,
    validated again as the settings model (so its constraints hold on the merged values)."""
    skip = set(exclude)
    update = {k: v for k, v in options.model_dump(exclude_none=True).items() if k not in skip}
    unknown = sorted(set(update) - set(type(settings).model_fields))
    if unknown:
        raise ValueError(f"options {unknown} are not fields of {type(settings).__name__}")
    try:
        return type(settings).model_validate({**settings.model_dump(), **update})
    except ValidationError as err:
        raise ScenarioError(f"invalid option: {format_validation_error(err)}") from None


@dataclass(frozen=True)
class TrainContext:
    """The run-level inputs of a training call: seed, device, progress display and seed streams."""

    seed: int
    device: torch.device
    progress: bool = True

    def stream(self, name: str) -> int:
        """The child seed of the named stream (``derive_seed(seed, name)``)."""
        return derive_seed(self.seed, name)

    def seed_init(self, name: str = "init") -> None:
        """Seed torch's global generator for weight initialisation."""
        torch.manual_seed(self.stream(name))

    def generator(self, name: str) -> torch.Generator:
        """A generator on the training device for the named stream (``"train"``, ``"eval"``...)."""
        return make_generator(self.stream(name), self.device)

    def cpu_generator(self, name: str) -> torch.Generator:
        """A CPU generator for the named stream (e.g. minibatch order)."""
        return torch.Generator().manual_seed(self.stream(name))
