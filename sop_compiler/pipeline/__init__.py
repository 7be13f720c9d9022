"""The only place that knows the order of the stages.

    ingest -> clean -> segment -> generate -> validate -> emit

`compile_folder` runs them incrementally: `sopc.lock` (see lock.py) says which procedures are
current, and only the rest reach a backend.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sop_compiler.catalog import sop_root
from sop_compiler.clean import clean
from sop_compiler.config import Settings
from sop_compiler.errors import ConfigError, ExitCode, InputError
from sop_compiler.escape import terminal_text
from sop_compiler.generate import Backend
from sop_compiler.ingest import discover, has_sop_files, ingest
from sop_compiler.ingest.base import SUFFIXES
from sop_compiler.lock import (
    ChosenBackend,
    CleanRun,
    FileStates,
    LockFile,
    NoopRecord,
    NoopRunResult,
    Plan,
    backend_for,
    read_lock,
    run_lock,
    start_plan,
    unchanged_sops,
)
from sop_compiler.models import (
    Figure,
    InspectResult,
    Procedure,
    RunResult,
    SopOutcome,
    ToolCatalog,
    Usage,
    block_text,
)
from sop_compiler.pipeline._build import _Build
from sop_compiler.pipeline._outcomes import (
    _estimate,
    _shown,
    _sop_outcome,
    _summarise,
    agent_for,
)
from sop_compiler.pipeline._signals import _sigterm_as_interrupt
from sop_compiler.segment import classify, segment, unused_sections

__all__ = ["CompileInterrupted", "agent_for", "compile_folder", "inspect_path", "read_procedures"]


class CompileInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a compile, after what was kept was written: `result` says what."""

    def __init__(self, result: RunResult) -> None:
        super().__init__("interrupted")
        self.result = result


def read_procedures(path: Path, *, root: Path, settings: Settings) -> InspectResult:
    """Ingest, clean and segment one file; an InputError becomes the result's error."""
    try:
        document = clean(ingest(path, root=root, settings=settings))
    except InputError as exc:
        return InspectResult(source=exc.path or path.name, error=str(exc))
    procedures: list[Procedure] = segment(document, agent=agent_for(document.source, settings))
    too_big = _too_big(procedures, settings)
    if too_big:
        error = InputError(too_big, path=document.source)
        return InspectResult(source=document.source, error=str(error))
    for procedure in procedures:
        # Figures carry only a reference; the bytes travel with the procedure so that a vision
        # model can read flowcharts and scanned pages.
        procedure.images = {
            block.image.sha256: document.images[block.image.sha256]
            for block in [*procedure.context, *procedure.blocks]
            if isinstance(block, Figure) and block.image and block.image.sha256 in document.images
        }
    sections = classify(document, procedures)
    document.notices += unused_sections(document, sections)
    return InspectResult(
        source=document.source, document=document, procedures=procedures, sections=sections
    )


def _too_big(procedures: list[Procedure], settings: Settings) -> str | None:
    """Why a procedure is refused for its size (limits.max_procedure_kb), or None."""
    limit = settings.limits.max_procedure_kb
    for procedure in procedures:
        size = sum(len(block_text(b)) for b in [*procedure.context, *procedure.blocks])
        if size > limit * 1024:
            return (
                f"the procedure {procedure.title!r} holds {size / 1024:,.0f} KiB of text, "
                f"over the {limit:,g} KiB limit (limits.max_procedure_kb): split it under "
                "headings, or raise the limit"
            )
    return None


def inspect_path(path: Path, *, settings: Settings) -> list[InspectResult]:
    """What sopc understood of a file, or of every SOP file in a folder."""
    from sop_compiler.catalog import load_catalog

    if not path.exists():
        raise InputError("no such file or folder", path=path)
    root = sop_root(path)
    files, skipped = discover(path)
    results = [read_procedures(file, root=root, settings=settings) for file in files]
    results += [
        InspectResult(
            source=p.resolve().relative_to(root).as_posix()
            if p.resolve().is_relative_to(root)
            else str(p),
            error=f"{p.name}: skipped: {why}",
        )
        for p, why in skipped
    ]
    _count_steps(results, catalog=load_catalog(settings.tools, sop_root=root))
    return sorted(results, key=lambda r: r.source)


def _count_steps(results: list[InspectResult], *, catalog: ToolCatalog) -> None:
    """The steps the offline compiler writes for each procedure: what `compile` finds offline."""
    from sop_compiler.generate.offline import build_draft
    from sop_compiler.models.routine import walk_steps

    for result in results:
        agents = tuple(sorted({procedure.agent for procedure in result.procedures}))
        for procedure in result.procedures:
            draft = build_draft(procedure, catalog=catalog, agents=agents)
            result.steps[procedure.id] = sum(1 for _ in walk_steps(draft.steps))


def compile_folder(
    sops: Path,
    *,
    settings: Settings,
    check: bool = False,
    strict: bool = False,
    refresh: bool = False,
    dry_run: bool = False,
    fmt: str = "text",
    backend: Backend | None = None,
    lock_timeout: float = 10.0,
    explain: bool = False,
    batch: bool = False,
) -> RunResult:
    """Compile a folder of SOPs into `settings.output`, regenerating only what changed.

    `check` and `dry_run` write nothing and call no model; with `check`, `explain` lists the
    parts of each stale routine's keys. With `batch`, the procedures that need the model go
    through the OpenAI Batch API (pipeline/_batch.py): a run submits and ends with exit 3 while
    answers are pending; the next run collects them. The exit code in the result is the most
    severe outcome, in this order: 2 (the backend cannot work at all: bad key, unknown model, no
    quota; generation stopped), 3 (some procedures could not be generated), 1 (validation errors
    remain, or warnings with `strict`, or `check` found stale, missing, orphaned or edited outputs),
    4 (only input errors: some SOP files could not be read), 0. Configuration errors raise
    ConfigError (2), an unwritable or locked output folder raises OutputError (5), and SIGINT or
    SIGTERM raise KeyboardInterrupt after keeping every completed routine.
    """
    from sop_compiler.catalog import load_catalog

    if not sops.exists():
        raise InputError("no such file or folder", path=sops)
    root = sop_root(sops)
    out = settings.output
    if sops.is_dir() and out.resolve() == root:
        raise ConfigError(
            "the output folder is the SOP folder: its outputs would be read as SOPs",
            path=out,
            hint="give another folder with -o (a sub-folder such as -o sops/out is passed over)",
        )
    writes = not (check or dry_run)
    if not check and sops.is_dir() and not has_sop_files(sops, exclude=out):
        raise InputError(
            "no SOP files in this folder: nothing was compiled or written",
            path=sops,
            hint=f"sopc reads {', '.join(sorted(SUFFIXES))} files, in sub-folders too",
        )
    if not writes:
        catalog = load_catalog(settings.tools, sop_root=root)
    guard = run_lock(out, timeout=lock_timeout) if writes else contextlib.nullcontext()
    notices: list[tuple[str, int, str]] = []

    def reader(path: Path, *, root: Path, settings: Settings) -> InspectResult:
        # What a reader noticed (scanned pages, decoding, macros or links ignored) is told on
        # every run that reads the file, as a note: it is not a problem of any one routine.
        found = read_procedures(path, root=root, settings=settings)
        for index, notice in enumerate(found.document.notices if found.document else []):
            notices.append((found.source, index, " ".join(notice.message.split())))
        return found

    with _sigterm_as_interrupt(), guard:
        record: NoopRecord | None = None
        if writes:
            # The backend first: its client's imports overlap reading the SOPs.
            chosen = backend_for(settings, given=backend, recorded={}, build=True, refresh=refresh)
            files = FileStates.for_compile(
                out, cache_dir=settings.cache_dir if settings.cache else None
            )
            if sops.is_dir():
                record = NoopRecord.for_compile(
                    out, root=root, settings=settings, stat_file=files.cache_file
                )
            clean = record.check(chosen.fingerprint) if record and not refresh else None
            if clean is not None:
                return _noop_result(
                    clean, sops=sops, settings=settings, chosen=chosen, strict=strict
                )
            if record is not None:
                record.begin()
            catalog = load_catalog(settings.tools, sop_root=root)
            old, lock_problem = read_lock(out)
        else:
            old, lock_problem = read_lock(out)
            files = FileStates(out)  # --check and --dry-run hash every output
            chosen = backend_for(settings, given=backend, recorded=old.backend, build=False)
        plan = start_plan(
            sops,
            root=root,
            out=out,
            settings=settings,
            catalog=catalog,
            old=old,
            backend=chosen,
            refresh=refresh,
            read_all=writes,
            reader=reader,
            files=files,
        )
        result = RunResult(
            command="check" if check else "compile",
            backend=chosen.name,
            backend_note=chosen.note,
            model=settings.model if chosen.uses_model else None,
            sops_dir=_shown(sops),
            output_dir=_shown(out),
            dry_run=dry_run,
        )
        stopped: str | None = None
        kept: list[str] = []
        waiting, batch_notes = 0, []
        told: list[str] = []  # what the backend learned about its server (images rejected, ...)
        interrupted = False
        set_aside: list[tuple[str, str]] = []
        imports: list[str] = []  # the written network does not import, or was not imported
        if writes:
            assert chosen.backend is not None
            build = _Build(plan, out=out, catalog=catalog, settings=settings, fmt=fmt, batch=batch)
            try:
                build.run(chosen.backend, result)
            except KeyboardInterrupt:  # what was kept is written: summarise it, then stop
                interrupted = True
            stopped = build.stopped
            kept = sorted(build.kept)
            waiting, batch_notes = build.waiting, build.batch_notes
            told = chosen.backend.run_notes()
            set_aside = sorted(build.set_aside)
            if build.import_error:
                from sop_compiler.render.run import error_note

                imports.append(error_note(build.import_error))
            elif build.import_note:
                imports.append(build.import_note)
        else:
            for _ in plan.stream():
                pass
            if check:
                result.stale = plan.stale(lock_problem, explain=explain)
                for proc in plan.procedures("generate"):
                    proc.status = "would_generate"
            else:
                _estimate(plan, catalog=catalog, settings=settings, uses_model=chosen.uses_model)
        result.notes = [
            terminal_text(note)
            for note in [
                *plan.notes,
                *(f"{source}: {message}" for source, _, message in sorted(notices)),
                *([lock_problem] if lock_problem else []),
                *told,
                *([stopped] if stopped else []),
                *([_kept_note(kept)] if kept else []),
                *batch_notes,
                *([_aside_note(set_aside)] if set_aside else []),
                *imports,
            ]
        ]
        _summarise(plan.sops, result, strict=strict, stopped=stopped is not None)
        if writes and build.import_error and result.exit_code in (ExitCode.OK, ExitCode.INPUT):
            result.exit_code = int(ExitCode.FAILED)  # the outputs stay on disk for review
        if waiting and result.exit_code != int(ExitCode.USAGE):
            result.exit_code = int(ExitCode.PARTIAL)  # answers pending: outputs are not complete
        if writes:
            result = build.scrubbed_result(result)
        if interrupted:
            if record is not None:
                record.forget()
            result.exit_code = int(ExitCode.INTERRUPTED)
            raise CompileInterrupted(result)
        if record is not None:
            _remember_noop(
                record,
                plan,
                result,
                fingerprint=chosen.fingerprint,
                clean=not (lock_problem or notices or result.written or stopped),
            )
        return result


def _noop_result(
    clean: CleanRun, *, sops: Path, settings: Settings, chosen: ChosenBackend, strict: bool
) -> RunResult:
    """The result of a no-op found by the fast path; per-SOP outcomes are built when read."""
    if clean.errors or (strict and clean.warnings):
        code = ExitCode.FAILED
    elif clean.input_errors:
        code = ExitCode.INPUT
    else:
        code = ExitCode.OK
    lock_bytes = clean.lock_bytes

    def expand() -> tuple[list[SopOutcome], list[str]]:
        lock = LockFile.model_validate_json(lock_bytes)
        outcomes = [_sop_outcome(sop) for sop in unchanged_sops(lock)]
        return outcomes, [f"{key}: {why}" for key, why in lock.not_deployed.items()]

    return NoopRunResult.lazy(
        expand,
        command="compile",
        backend=chosen.name,
        backend_note=chosen.note,
        model=settings.model if chosen.uses_model else None,
        sops_dir=_shown(sops),
        output_dir=_shown(settings.output),
        dry_run=False,
        notes=list(clean.notes),
        stale=[],
        written=[],
        usage=Usage(),
        exit_code=int(code),
    )


def _remember_noop(
    record: NoopRecord, plan: Plan, result: RunResult, *, fingerprint: dict[str, Any], clean: bool
) -> None:
    """After a compile: record it if it was a clean no-op (so the next one is fast), else forget."""
    procs = plan.procedures()
    clean = (
        clean
        and all(
            not sop.read and sop.sha256 and (sop.old is not None and sop.old.key == sop.key)
            for sop in plan.sops
        )
        and all(proc.state == "current" and proc.status == "unchanged" for proc in procs)
    )
    if not clean or set(plan.old.sops) != {sop.source for sop in plan.sops}:
        record.forget()
        return
    issues = [issue for proc in procs if proc.report for issue in proc.report.issues]
    recorded = {rel: sha for proc in procs if proc.old for rel, sha in proc.old.outputs.items()}
    recorded.update(plan.old.shared)
    record.save(
        fingerprint,
        sops=[(sop.source, sop.sha256) for sop in plan.sops],
        outputs={rel: plan.files.verified(rel, sha) for rel, sha in recorded.items()},
        notes=list(result.notes),
        errors=any(issue.severity == "error" for issue in issues),
        warnings=any(issue.severity == "warning" for issue in issues),
        input_errors=any(sop.error is not None for sop in plan.sops),
    )


def _aside_note(pairs: list[tuple[str, str]]) -> str:
    """One line naming the files sopc never wrote that its outputs would have overwritten."""
    shown = ", ".join(f"{old} -> {new}" for old, new in pairs[:5])
    more = f" and {len(pairs) - 5} more" if len(pairs) > 5 else ""
    return (
        f"renamed {len(pairs)} file(s) sopc did not write, whose names its outputs use: "
        f"{shown}{more}"
    )


def _kept_note(kept: list[str]) -> str:
    """One line naming the stale paths left in place because sopc cannot prove it wrote them."""
    shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
    return (
        f"kept {len(kept)} file(s) sopc.lock listed as outputs but sopc did not write as they are "
        f"(changed since, or the implementation module): {shown}"
    )
