"""Results of `sopc inspect`, `sopc compile` and `sopc check`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sop_compiler.models.document import Document
from sop_compiler.models.procedure import Procedure, SectionClass
from sop_compiler.models.report import Issue, Usage


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InspectResult(_Model):
    """What sopc understood of one file."""

    source: str
    document: Document | None = None
    procedures: list[Procedure] = Field(default_factory=list)
    error: str | None = None
    sections: list[SectionClass] = Field(default_factory=list)
    steps: dict[str, int] = Field(
        default_factory=dict,
        description="Steps the offline compiler writes for each procedure, by procedure id.",
    )


class ProcedureOutcome(_Model):
    """One procedure in a compile run."""

    procedure_id: str
    title: str
    status: Literal["generated", "unchanged", "failed", "would_generate"]
    error: str | None = None
    issues: list[Issue] = Field(default_factory=list)
    coverage: float | None = None
    usage: Usage = Field(default_factory=Usage)
    estimated_prompt_tokens: int | None = None
    agent: str = Field(default="", description="Agent group of the routine.")
    reason: str | None = Field(
        default=None, description="Why it was (or would be) generated or re-validated."
    )


class StaleEntry(_Model):
    """Why an output is not current (`--check`)."""

    path: str = Field(description="Output or SOP path, relative to its folder.")
    reason: Literal["stale", "missing", "orphaned", "edited", "new"]
    detail: str
    where: Literal["sops", "output"] = Field(
        default="output",
        description="Whether `path` is relative to the SOP folder or the output folder.",
    )
    parts: list[str] = Field(
        default_factory=list, description="The parts of the routine's keys (`--explain`)."
    )


class SopOutcome(_Model):
    """One SOP file in a compile run."""

    source: str
    status: Literal["ok", "unchanged", "partial", "failed", "input_error"]
    error: str | None = None
    procedures: list[ProcedureOutcome] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)


class RunResult(_Model):
    """A whole compile or check run."""

    command: Literal["compile", "check"]
    backend: str
    model: str | None = None
    sops: list[SopOutcome] = Field(default_factory=list)
    stale: list[StaleEntry] = Field(default_factory=list)
    written: list[str] = Field(default_factory=list, description="Output files written or removed.")
    usage: Usage = Field(default_factory=Usage)
    exit_code: int = 0
    backend_note: str | None = Field(
        default=None, description="Why this backend, e.g. `no API key or base URL set`."
    )
    sops_dir: str = Field(default="", description="The SOP folder as given (for annotations).")
    output_dir: str = Field(default="", description="The output folder as given.")
    dry_run: bool = False
    notes: list[str] = Field(
        default_factory=list, description="Skipped files and other warnings about the run."
    )
    not_deployed: list[str] = Field(
        default_factory=list,
        description="Routines left out of the agent network (`<agent>/<id>: why`).",
    )
