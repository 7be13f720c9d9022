"""One SOP and one procedure of a run, as planning and the build see them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from sop_compiler.lock._file import (
    Dependencies,
    ProcedureEntry,
    SopEntry,
)
from sop_compiler.lock._keys import (
    ProcState,
    ProcStatus,
    routine_json_path,
)
from sop_compiler.models import (
    Procedure,
    Routine,
    StaleEntry,
    Usage,
    ValidationReport,
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
