"""The backend of a run, and small names shared by planning and the build."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sop_compiler.config import Settings, agent_group_for
from sop_compiler.generate.base import Backend
from sop_compiler.models import InspectResult

ProcState = Literal["current", "rerender", "generate"]
ProcStatus = Literal["generated", "unchanged", "failed", "would_generate"]
Reader = Callable[..., InspectResult]


@dataclass(frozen=True)
class ChosenBackend:
    """The backend of a run, or (for --check and --dry-run) just what identifies it."""

    name: str
    fingerprint: dict[str, Any]
    uses_model: bool
    note: str | None = None
    backend: Backend | None = None
    whole_catalog: bool = True  # its key holds the whole catalog (see staleness.Keys)


def backend_for(
    settings: Settings,
    *,
    given: Backend | None,
    recorded: dict[str, Any],
    build: bool,
    refresh: bool = False,
) -> ChosenBackend:
    """The run's backend; without `build`, only its fingerprint (no key needed, nothing connects).

    With `backend = "auto"`, --check compares against the backend recorded in the lock: whether a
    CI job happens to have an API key must not decide whether outputs are current.
    """
    from sop_compiler.generate import BACKEND_NAMES, backend_class, resolve_backend_name

    if given is not None:
        return ChosenBackend(
            given.name, given.fingerprint(), given.uses_model, None, given, given.whole_catalog
        )
    name = resolve_backend_name(settings)
    note = None
    if settings.backend == "auto":
        note = (
            "no API key or base URL set" if name == "offline" else "an API key or base URL is set"
        )
        if not build and recorded.get("backend") in BACKEND_NAMES:
            name, note = str(recorded["backend"]), "as recorded in sopc.lock"
    cls = backend_class(name)
    chosen = settings.model_copy(update={"backend": name})
    if build:
        backend = cls(chosen)
        if refresh and hasattr(backend, "refresh"):
            backend.refresh = True  # re-ask the model instead of reusing cached answers
        return ChosenBackend(
            name, backend.fingerprint(), backend.uses_model, note, backend, cls.whole_catalog
        )
    return ChosenBackend(
        name, cls.fingerprint_for(chosen), cls.uses_model, note, None, cls.whole_catalog
    )


def agent_for(source: str, settings: Settings) -> str:
    """An SOP's agent group: an `[agents.X] include` match, else its folder (`general` at top)."""
    return agent_group_for(source, settings) or source.rpartition("/")[0] or "general"


def routine_json_path(outputs: dict[str, str]) -> str | None:
    """The routine's structured JSON among its outputs."""
    return next(
        (rel for rel in sorted(outputs) if rel.startswith("routines/") and rel.endswith(".json")),
        None,
    )
