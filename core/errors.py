"""User-facing errors and the one mapping from error type to HTTP status.

Everything a user can get wrong (a name, a parameter, a state, a file) raises a subclass of
:class:`DecisionlabError`. The CLI prints its message without a traceback and exits 2; the API
server answers with the class's ``http_status`` (the table below, the same in every domain and
documented in ``docs/api.md``). Anything else is a bug and surfaces as a generic 500.

=========================  ======  ==============================================================
error                      status  raised when
=========================  ======  ==============================================================
``DecisionlabError``       400     a request that cannot be carried out as given (generic)
``UnknownNameError``       404     a domain, setting, scenario, policy or algorithm that does not
                                   exist (the message lists the choices)
``PolicyNotFoundError``    404     a well-formed registry reference that names no policy
``RegistryError``          400     a malformed registry reference or name
``ScenarioError``          422     scenario parameters or options that are unknown or invalid
``StateError``             422     request states that fail validation (one problem per field)
``PolicyMismatchError``    422     a policy that exists but cannot serve this scenario
``NotTractableError``      422     a solver asked for outside the range where it can run, or one
                                   whose memory would exceed the build budget
``ArtefactError``          503     stored weights or a card that cannot be used (missing, corrupt,
                                   wrong shapes, non-finite): a server-side fault
``BuildPendingError``      503     an expensive baseline still being built off the request path
                                   (``Retry-After`` says when to try again)
=========================  ======  ==============================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class DecisionlabError(Exception):
    """A mistake the user can fix; ``str(err)`` says what and how."""

    http_status: int = 400


class UnknownNameError(DecisionlabError):
    """A domain, scenario, policy, algorithm or registry reference that does not exist."""

    http_status = 404

    def __init__(self, kind: str, name: str, choices: list[str] | None = None, hint: str = "") -> None:
        self.kind, self.name, self.choices = kind, name, sorted(choices or [])
        listed = f"; choose one of: {', '.join(self.choices)}" if self.choices else ""
        super().__init__(f"unknown {kind} '{name}'{listed}{hint}")


class ScenarioError(DecisionlabError):
    """Scenario parameters (or algorithm options) that are unknown or fail validation."""

    http_status = 422


class NotTractableError(DecisionlabError):
    """A solver asked for outside the range where it can run (e.g. the exact DP at long lead times)."""

    http_status = 422


class PolicyMismatchError(DecisionlabError):
    """A policy that exists but cannot serve the scenario (another setting, lead time, network...)."""

    http_status = 422


class BuildPendingError(DecisionlabError):
    """An expensive baseline (a search, an exact solver) that is being built off the request path and
    did not finish within the request's wait: 503 with ``retry_after`` seconds."""

    http_status = 503

    def __init__(self, message: str, retry_after: int = 5) -> None:
        self.retry_after = int(retry_after)
        super().__init__(message)


class RegistryError(DecisionlabError):
    """A registry or run-store problem the user caused (bad reference, bad name)."""


class ArtefactError(RegistryError):
    """A stored artefact that cannot be used (missing or corrupt weights, tensors that do not fit their
    policy kind, non-finite weights). A server-side fault, not the client's: 503, naming the policy and
    never a server path; the other policies keep serving."""

    http_status = 503


class PolicyNotFoundError(RegistryError):
    """A well-formed registry reference that names no registered policy."""

    http_status = 404


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with a request state: where (``loc`` relative to the state list, e.g.
    ``(3, "pipeline")``), a short machine-readable ``kind``, a message and the offending value."""

    loc: tuple[str | int, ...]
    kind: str
    message: str
    value: Any = None


class StateError(DecisionlabError):
    """Request states that cannot be turned into an observation; each problem names its field.

    Domains raise it from their serving converters with locations relative to the list of states
    (``(i, "field", ...)``); the serving path prefixes the request field that holds them."""

    http_status = 422

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = list(problems)
        shown = "; ".join(f"{'.'.join(str(p) for p in problem.loc)}: {problem.message}" for problem in self.problems)
        super().__init__(f"invalid states: {shown}")


def problem(loc: tuple[str | int, ...], kind: str, message: str, value: Any = None) -> FieldProblem:
    """Shorthand for a :class:`FieldProblem`."""
    return FieldProblem(tuple(loc), kind, message, value)
