"""One SOP and one procedure of a run as planning and the build see them, and the run's backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from sop_compiler.config import Settings, agent_group_for
from sop_compiler.generate.base import Backend
from sop_compiler.lock._file import (
    Dependencies,
    ProcedureEntry,
    SopEntry,
)
from sop_compiler.models import (
    InspectResult,
    Procedure,
    Routine,
    StaleEntry,
    Usage,
    ValidationReport,
)

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


@dataclass(eq=False)
class PlannedSop:
    """One SOP file of the run."""

    source: str
    path: Path
    sha256: str
    key: str
    old: SopEntry | None
    error: str | None = None
    read: bool = False  # ingested in this run (else its procedure list came from the lock)
    ocr: str | None = None  # the OCR engine its scanned pages were read with, if it has any
    procs: list[PlannedProcedure] = field(default_factory=list)


@dataclass(eq=False)
class PlannedProcedure:
    """One procedure: where it stands against the lock, and (after a build) what became of it."""

    sop: PlannedSop
    index: int
    base_id: str
    agent: str
    title: str
    text: str
    procedure: Procedure | None  # None when known only from the lock
    stored_id: str | None = None
    id: str = ""
    input: str = ""
    render: str = ""
    old: ProcedureEntry | None = None
    state: ProcState = "generate"
    problems: list[StaleEntry] = field(default_factory=list)
    why: str = ""  # what changed, when it is new, stale or re-validated
    status: ProcStatus = "unchanged"
    error: str | None = None
    routine: Routine | None = None
    report: ValidationReport | None = None
    entry: ProcedureEntry | None = None
    usage: Usage = field(default_factory=Usage)
    estimated_tokens: int | None = None

    def make_entry(
        self,
        *,
        outputs: dict[str, str] | None = None,
        report: ValidationReport | None = None,
        depends: Dependencies | None = None,
    ) -> ProcedureEntry:
        """The lock entry: fresh keys with new outputs, or the old record with today's text hash.

        Keeping the old `input` while `text` moves on is what makes an interrupted run safe: the
        entry stays stale until its routine is really rewritten.
        """
        ident = {
            "agent": self.agent,
            "index": self.index,
            "base_id": self.base_id,
            "title": self.title,
            "text": self.text,
        }
        if outputs is not None and report is not None:
            return ProcedureEntry(
                **ident,
                input=self.input,
                render=self.render,
                outputs=outputs,
                depends=depends or Dependencies(),
                issues=report.issues,
                coverage=report.coverage,
            )
        old = self.old
        if old is not None:
            if all(getattr(old, name) == value for name, value in ident.items()):
                return old  # unchanged: shared with the old lock (entries are never mutated)
            return old.model_copy(update=ident)
        return ProcedureEntry(**ident)

    def load_routine(self, out: Path) -> Routine | None:
        """The routine from its JSON output (verified by the plan), or None if it will not parse."""
        entry = self.entry or self.old
        rel = routine_json_path(entry.outputs) if entry else None
        if rel is None:
            return None
        try:
            return Routine.model_validate_json((out / rel).read_bytes())
        except (OSError, ValidationError):
            return None

    def fail(self, error: str) -> None:
        """Record a generation failure (the old outputs, if any, stay until it succeeds)."""
        self.status, self.error, self.routine = "failed", error, None
