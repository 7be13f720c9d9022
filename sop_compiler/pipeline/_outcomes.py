"""What a run reports: per-SOP outcomes, the exit code, token estimates, printable text."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sop_compiler.config import Settings
from sop_compiler.errors import ExitCode
from sop_compiler.escape import terminal_text
from sop_compiler.lock import (
    Plan,
    PlannedSop,
)
from sop_compiler.lock import agent_for as agent_for
from sop_compiler.models import (
    Procedure,
    ProcedureOutcome,
    RunResult,
    SopOutcome,
    ToolCatalog,
    Usage,
)


def _estimate(plan: Plan, *, catalog: ToolCatalog, settings: Settings, uses_model: bool) -> None:
    """Dry run: estimated prompt tokens (chars / 4) of each procedure that would reach the model."""
    prefix: int | None = None
    for proc in plan.procedures("generate"):
        proc.status = "would_generate"
        if not uses_model or proc.procedure is None:
            continue
        if prefix is None:
            prefix = _prompt_prefix_chars(catalog, plan.agents(), settings.structured_output)
        proc.estimated_tokens = (prefix + _procedure_chars(proc.procedure, settings)) // 4


def _prompt_prefix_chars(
    catalog: ToolCatalog, agents: tuple[str, ...], settings_format: str = "json_schema"
) -> int:
    try:
        from sop_compiler.generate import prompts
    except ImportError:  # pragma: no cover - prompts ship with sopc
        return 6000
    schema = settings_format != "json_schema"
    return len(prompts.system_prompt(schema=schema)) + len(prompts.catalog_prompt(catalog, agents))


def _procedure_chars(procedure: Procedure, settings: Settings) -> int:
    try:
        from sop_compiler.generate import prompts
    except ImportError:  # pragma: no cover
        return len(procedure.text())
    rendered = prompts.render_procedure(procedure, images=procedure.images, vision=settings.vision)
    # An image costs roughly what a page of text does; providers bill them by tile.
    return len(rendered.text) + 3000 * len(rendered.images)


def _summarise(
    sops: list[PlannedSop], result: RunResult, *, strict: bool, stopped: bool = False
) -> None:
    """Per-SOP outcomes, usage and the exit code (severity order in compile_folder's docstring)."""
    for sop in sops:
        result.sops.append(_sop_outcome(sop))
    result.usage = _total(sop.usage for sop in result.sops)
    outcomes = [proc for sop in result.sops for proc in sop.procedures]
    failing = {"error", "warning"} if strict else {"error"}
    if stopped:
        result.exit_code = int(ExitCode.USAGE)
    elif any(proc.status == "failed" for proc in outcomes):
        result.exit_code = int(ExitCode.PARTIAL)
    elif result.stale or any(i.severity in failing for proc in outcomes for i in proc.issues):
        result.exit_code = int(ExitCode.FAILED)
    elif any(sop.status == "input_error" for sop in result.sops):
        result.exit_code = int(ExitCode.INPUT)
    else:
        result.exit_code = int(ExitCode.OK)


def _sop_outcome(sop: PlannedSop) -> SopOutcome:
    source = terminal_text(sop.source)
    if sop.error is not None:
        return SopOutcome(source=source, status="input_error", error=terminal_text(sop.error))
    procedures = [
        ProcedureOutcome(
            procedure_id=proc.id,
            title=terminal_text(proc.title),
            agent=proc.agent,
            status=proc.status,
            error=terminal_text(proc.error) if proc.error else None,
            issues=list(proc.report.issues) if proc.report else [],
            coverage=proc.report.coverage if proc.report else None,
            usage=proc.usage,
            estimated_prompt_tokens=proc.estimated_tokens,
            reason=terminal_text(proc.why) if proc.why else None,
        )
        for proc in sop.procs
    ]
    statuses = {proc.status for proc in procedures}
    if "failed" in statuses:
        status = "failed" if statuses == {"failed"} else "partial"
    elif statuses <= {"unchanged"}:
        status = "unchanged"
    else:
        status = "ok"
    usage = _total(proc.usage for proc in procedures)
    return SopOutcome(source=source, status=status, procedures=procedures, usage=usage)


def _total(usages: Iterable[Usage]) -> Usage:
    """The sum of usages; the zero ones (every procedure of a no-op run) are skipped cheaply."""
    total = Usage()
    for usage in usages:
        if usage != _NO_USAGE:
            total = total + usage
    return total


_NO_USAGE = Usage()


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix() or "."
    except ValueError:
        return path.as_posix()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
