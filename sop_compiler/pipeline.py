"""The only place that knows the order of the stages.

    ingest -> clean -> segment -> generate -> validate -> emit

`compile_folder` runs them incrementally: `sopc.lock` (see lock.py) says which procedures are
current, and only the rest reach a backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sop_compiler.clean import clean
from sop_compiler.config import Settings
from sop_compiler.errors import ExitCode, InputError, OutputError
from sop_compiler.generate import Backend, GenerationContext, GenerationResult, to_routine
from sop_compiler.ingest import discover, ingest
from sop_compiler.lock import (
    LOCK_NAME,
    FileStates,
    LockFile,
    Plan,
    PlannedProcedure,
    PlannedSop,
    backend_for,
    make_plan,
    read_lock,
    run_lock,
    sha256_bytes,
)
from sop_compiler.models import (
    Figure,
    InspectResult,
    Procedure,
    ProcedureOutcome,
    Routine,
    RunResult,
    SopOutcome,
    ToolCatalog,
    Usage,
    ValidationReport,
)
from sop_compiler.segment import segment

__all__ = ["agent_for", "compile_folder", "inspect_path", "read_procedures"]

# Seconds between lock-file writes while routines complete (always written on exit and interrupt):
# rewriting a big lock after every routine would make a large first build quadratic.
LOCK_INTERVAL = 1.0


def agent_for(source: str) -> str:
    """The agent group of an SOP: its folder relative to the SOP root (`general` at the top)."""
    parent = source.rpartition("/")[0]
    return parent or "general"


def read_procedures(path: Path, *, root: Path, settings: Settings) -> InspectResult:
    """Ingest, clean and segment one file; an InputError becomes the result's error."""
    try:
        document = clean(ingest(path, root=root, settings=settings))
    except InputError as exc:
        return InspectResult(source=exc.path or path.name, error=str(exc))
    procedures: list[Procedure] = segment(document, agent=agent_for(document.source))
    for procedure in procedures:
        # Figures carry only a reference; the bytes travel with the procedure so that a vision
        # model can read flowcharts and scanned pages.
        procedure.images = {
            block.image.sha256: document.images[block.image.sha256]
            for block in [*procedure.context, *procedure.blocks]
            if isinstance(block, Figure) and block.image and block.image.sha256 in document.images
        }
    return InspectResult(source=document.source, document=document, procedures=procedures)


def inspect_path(path: Path, *, settings: Settings) -> list[InspectResult]:
    """What sopc understood of a file, or of every SOP file in a folder."""
    root = path.resolve() if path.is_dir() else path.resolve().parent
    if not path.exists():
        raise InputError("no such file or folder", path=path)
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
    return sorted(results, key=lambda r: r.source)


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
) -> RunResult:
    """Compile a folder of SOPs into `settings.output`, regenerating only what changed.

    `check` and `dry_run` write nothing and call no model. The exit code in the result is the most
    severe outcome, in this order: 3 (some procedures could not be generated), 1 (validation errors
    remain, or warnings with `strict`, or `check` found stale, missing, orphaned or edited outputs),
    4 (only input errors: some SOP files could not be read), 0. Configuration errors raise
    ConfigError (2), an unwritable or locked output folder raises OutputError (5), and SIGINT or
    SIGTERM raise KeyboardInterrupt after keeping every completed routine.
    """
    from sop_compiler.catalog import load_catalog

    if not sops.exists():
        raise InputError("no such file or folder", path=sops)
    root = sops.resolve() if sops.is_dir() else sops.resolve().parent
    out = settings.output
    catalog = load_catalog(settings.tools, sop_root=root)
    writes = not (check or dry_run)
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
        old, lock_problem = read_lock(out)
        # A compile may trust the stat cache; --check and --dry-run hash every output.
        files = (
            FileStates.for_compile(out, cache_dir=settings.cache_dir if settings.cache else None)
            if writes
            else FileStates(out)
        )
        chosen = backend_for(
            settings, given=backend, recorded=old.backend, build=writes, refresh=refresh
        )
        plan = make_plan(
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
            notes=[
                _printable(note)
                for note in [
                    *plan.notes,
                    *(f"{source}: {message}" for source, _, message in sorted(notices)),
                    *([lock_problem] if lock_problem else []),
                ]
            ],
        )
        if check:
            result.stale = plan.stale(lock_problem)
            for proc in plan.procedures("generate"):
                proc.status = "would_generate"
        elif dry_run:
            _estimate(plan, catalog=catalog, settings=settings, uses_model=chosen.uses_model)
        else:
            assert chosen.backend is not None
            _Build(plan, out=out, catalog=catalog, settings=settings, fmt=fmt).run(
                chosen.backend, result
            )
        _summarise(plan, result, strict=strict)
        return result


class _Build:
    """The writing half of a compile: removals, re-renders, generation, shared files, the lock."""

    def __init__(
        self, plan: Plan, *, out: Path, catalog: ToolCatalog, settings: Settings, fmt: str
    ) -> None:
        self.plan = plan
        self.out = out
        self.catalog = catalog
        self.settings = settings
        self.fmt = fmt
        self.lock: LockFile = plan.working_lock()
        self.written: set[str] = set()
        self.dirty = self.lock != plan.old  # a no-op run never serialises the lock
        self.saved_at = 0.0

    def run(self, backend: Backend, result: RunResult) -> None:
        """Bring the output folder up to date; every completed routine is kept on interrupt."""
        try:
            removed = self._write({}, remove=self.plan.removals())
            self._save_lock(now=True)
            for proc in self.plan.procedures("rerender"):
                self._rerender(proc)
            pending = self.plan.procedures("generate")
            if pending:
                asyncio.run(self._generate_all(pending, backend))
            self._shared(force=bool(removed))
            self._save_lock(now=True)
        except BaseException:
            # Interrupted or failed: record every routine completed so far, then re-raise.
            with contextlib.suppress(OutputError):
                self._save_lock(now=True)
            raise
        finally:
            self.plan.files.save()
            result.written = sorted(self.written)

    def _write(self, files: dict[str, bytes], *, remove: list[str] = ()) -> list[str]:  # type: ignore[assignment]
        from sop_compiler.emit import write_outputs

        try:
            changed = write_outputs(self.out, files, remove=remove)
        except OSError as exc:
            raise OutputError(
                f"cannot write the output folder: {exc.strerror or exc}", path=self.out
            ) from None
        self.written.update(changed)
        states = self.plan.files
        for rel in remove:
            states.removed(rel)
        for rel, data in files.items():
            states.written(rel, sha256_bytes(data))
        return changed

    def _save_lock(self, *, now: bool = False) -> None:
        """Write the lock if it changed; during generation at most every LOCK_INTERVAL seconds.

        Outputs are always written before their entry, so a lock that lags behind only costs
        regenerating (from the response cache) what it does not list yet, never a wrong entry.
        """
        from sop_compiler.lock import write_lock

        if not self.dirty or (not now and time.monotonic() - self.saved_at < LOCK_INTERVAL):
            return
        if write_lock(self.out, self.lock):
            self.written.add(LOCK_NAME)
        self.dirty, self.saved_at = False, time.monotonic()

    def _record(self, proc: PlannedProcedure, files: dict[str, bytes]) -> None:
        """Write one routine's files at once, then its lock entry, then the lock file."""
        stale = sorted(set(proc.old.outputs) - set(files)) if proc.old else []
        self._write(files, remove=stale)
        assert proc.report is not None
        proc.entry = proc.make_entry(
            outputs={rel: sha256_bytes(data) for rel, data in files.items()}, report=proc.report
        )
        self.lock.sops[proc.sop.source].procedures[proc.id] = proc.entry
        self.dirty = True
        self._save_lock()

    def _validate(self, proc: PlannedProcedure, routine: Routine) -> ValidationReport:
        from sop_compiler.validate import validate

        assert proc.procedure is not None
        return validate(
            routine, procedure=proc.procedure, catalog=self.catalog, settings=self.settings
        )

    def _rerender(self, proc: PlannedProcedure) -> None:
        from sop_compiler.emit import render_routine

        routine = proc.load_routine(self.out)
        if routine is None:  # unreadable after all: regenerate it instead
            proc.state = "generate"
            return
        proc.routine, proc.report = routine, self._validate(proc, routine)
        self._record(proc, render_routine(routine, proc.report))
        proc.status = "unchanged"

    async def _generate_all(self, pending: list[PlannedProcedure], backend: Backend) -> None:
        from sop_compiler.render.run import progress

        context = GenerationContext(
            catalog=self.catalog, settings=self.settings, agents=self.plan.agents()
        )
        limit = asyncio.Semaphore(self.settings.jobs)
        with progress(len(pending), fmt=self.fmt) as advance:

            async def one(proc: PlannedProcedure) -> None:
                async with limit:
                    result = await self._call(backend, proc, context)
                self._finish(proc, result)
                advance(f"{proc.status} {proc.agent}/{proc.id}")

            try:
                await asyncio.gather(*(one(proc) for proc in pending))
            finally:
                await backend.aclose()

    async def _call(
        self, backend: Backend, proc: PlannedProcedure, context: GenerationContext
    ) -> GenerationResult:
        from sop_compiler.validate import check_draft

        procedure = proc.procedure
        assert procedure is not None
        try:
            return await backend.generate(
                procedure,
                context=context,
                validate=lambda draft: check_draft(
                    draft, procedure=procedure, catalog=self.catalog, settings=self.settings
                ),
            )
        except Exception as exc:  # one procedure failing never stops the others
            return GenerationResult(procedure_id=proc.id, error=_one_line(exc))

    def _finish(self, proc: PlannedProcedure, result: GenerationResult) -> None:
        from sop_compiler.emit import render_routine

        proc.usage = result.usage
        if result.draft is None:
            proc.fail(result.error or "the backend returned no routine")
            return
        assert proc.procedure is not None
        try:
            routine = to_routine(result.draft, proc.procedure, self.catalog)
            report = self._validate(proc, routine)
            files = render_routine(routine, report)
        except (OutputError, KeyboardInterrupt):
            raise
        except Exception as exc:
            proc.fail(f"could not use the generated routine: {_one_line(exc)}")
            return
        proc.routine, proc.report = routine, report
        self._record(proc, files)
        proc.status = "generated"

    def _shared(self, *, force: bool) -> None:
        """Render the network and review page from every routine, if anything they show changed."""
        from sop_compiler.emit import render_network, render_review

        key = self.plan.shared_key()
        intact = all(state == "ok" for state in self.plan.shared_files().values())
        if not force and intact and key == self.lock.shared_key:
            return
        routines, reports = self.plan.routines()
        files = render_network(routines, catalog=self.catalog, settings=self.settings)
        files.update(
            render_review(routines, reports, failures=self.plan.failures(), settings=self.settings)
        )
        self._write(files, remove=sorted(set(self.lock.shared) - set(files)))
        self.lock.shared = {rel: sha256_bytes(data) for rel, data in sorted(files.items())}
        self.lock.shared_key = key
        self.dirty = True


def _estimate(plan: Plan, *, catalog: ToolCatalog, settings: Settings, uses_model: bool) -> None:
    """Dry run: estimated prompt tokens (chars / 4) of each procedure that would reach the model."""
    prefix: int | None = None
    for proc in plan.procedures("generate"):
        proc.status = "would_generate"
        if not uses_model or proc.procedure is None:
            continue
        if prefix is None:
            prefix = _prompt_prefix_chars(catalog, plan.agents())
        proc.estimated_tokens = (prefix + _procedure_chars(proc.procedure, settings)) // 4


def _prompt_prefix_chars(catalog: ToolCatalog, agents: tuple[str, ...]) -> int:
    try:
        from sop_compiler.generate import prompts
    except ImportError:  # pragma: no cover - prompts ship with sopc
        return 6000
    return len(prompts.system_prompt()) + len(prompts.catalog_prompt(catalog, agents))


def _procedure_chars(procedure: Procedure, settings: Settings) -> int:
    try:
        from sop_compiler.generate import prompts
    except ImportError:  # pragma: no cover
        return len(procedure.text())
    rendered = prompts.render_procedure(procedure, images=procedure.images, vision=settings.vision)
    # An image costs roughly what a page of text does; providers bill them by tile.
    return len(rendered.text) + 3000 * len(rendered.images)


def _summarise(plan: Plan, result: RunResult, *, strict: bool) -> None:
    """Per-SOP outcomes, usage and the exit code (severity order in compile_folder's docstring)."""
    for sop in plan.sops:
        result.sops.append(_sop_outcome(sop))
    result.usage = _total(sop.usage for sop in result.sops)
    outcomes = [proc for sop in result.sops for proc in sop.procedures]
    failing = {"error", "warning"} if strict else {"error"}
    if any(proc.status == "failed" for proc in outcomes):
        result.exit_code = int(ExitCode.PARTIAL)
    elif result.stale or any(i.severity in failing for proc in outcomes for i in proc.issues):
        result.exit_code = int(ExitCode.FAILED)
    elif any(sop.status == "input_error" for sop in result.sops):
        result.exit_code = int(ExitCode.INPUT)
    else:
        result.exit_code = int(ExitCode.OK)


def _sop_outcome(sop: PlannedSop) -> SopOutcome:
    source = _printable(sop.source)
    if sop.error is not None:
        return SopOutcome(source=source, status="input_error", error=_printable(sop.error))
    procedures = [
        ProcedureOutcome(
            procedure_id=proc.id,
            title=_printable(proc.title),
            agent=proc.agent,
            status=proc.status,
            error=_printable(proc.error) if proc.error else None,
            issues=list(proc.report.issues) if proc.report else [],
            coverage=proc.report.coverage if proc.report else None,
            usage=proc.usage,
            estimated_prompt_tokens=proc.estimated_tokens,
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


# Control and bidi characters of file names and SOP text must not reach a terminal (escape
# sequences, Trojan-Source reordering): the run result shows them escaped, as `\x1b`.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _printable(text: str) -> str:
    """`text` with control and bidi characters escaped."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


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


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C: a cancelled CI job keeps completed routines and a valid lock."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        # Run the Ctrl-C handler: inside asyncio.run it cancels the main task cleanly, where a
        # KeyboardInterrupt raised here would tear one task apart and print its traceback.
        on_ctrl_c = signal.getsignal(signal.SIGINT)
        if callable(on_ctrl_c) and on_ctrl_c is not signal.default_int_handler:
            on_ctrl_c(signal.SIGINT, frame)
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
