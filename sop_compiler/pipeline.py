"""The only place that knows the order of the stages.

    ingest -> clean -> segment -> generate -> validate -> emit

`compile_folder` runs them incrementally: `sopc.lock` (see lock.py) says which procedures are
current, and only the rest reach a backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
import signal
import sys
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from sop_compiler.clean import clean
from sop_compiler.config import Settings
from sop_compiler.errors import ExitCode, InputError, OutputError
from sop_compiler.generate import Backend, GenerationContext, GenerationResult, to_routine
from sop_compiler.ingest import discover, ingest
from sop_compiler.lock import (
    LOCK_NAME,
    ChosenBackend,
    CleanRun,
    FileStates,
    LockFile,
    NoopRecord,
    NoopRunResult,
    Plan,
    PlannedProcedure,
    PlannedSop,
    SopEntry,
    backend_for,
    read_lock,
    run_lock,
    sha256_bytes,
    start_plan,
    unchanged_sops,
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
    root = sops.resolve() if sops.is_dir() else sops.resolve().parent
    out = settings.output
    writes = not (check or dry_run)
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
        if writes:
            assert chosen.backend is not None
            build = _Build(plan, out=out, catalog=catalog, settings=settings, fmt=fmt)
            build.run(chosen.backend, result)
            stopped = build.stopped
        else:
            for _ in plan.stream():
                pass
            if check:
                result.stale = plan.stale(lock_problem)
                for proc in plan.procedures("generate"):
                    proc.status = "would_generate"
            else:
                _estimate(plan, catalog=catalog, settings=settings, uses_model=chosen.uses_model)
        result.notes = [
            _printable(note)
            for note in [
                *plan.notes,
                *(f"{source}: {message}" for source, _, message in sorted(notices)),
                *([lock_problem] if lock_problem else []),
                *([stopped] if stopped else []),
            ]
        ]
        _summarise(plan.sops, result, strict=strict, stopped=stopped is not None)
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

    def expand() -> list[SopOutcome]:
        lock = LockFile.model_validate_json(lock_bytes)
        return [_sop_outcome(sop) for sop in unchanged_sops(lock)]

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
    record.save(
        fingerprint,
        sources=[sop.source for sop in plan.sops],
        outputs=plan.old.recorded_outputs(),
        notes=list(result.notes),
        errors=any(issue.severity == "error" for issue in issues),
        warnings=any(issue.severity == "warning" for issue in issues),
        input_errors=any(sop.error is not None for sop in plan.sops),
    )


class _Build:
    """The writing half of a compile: SOPs planned, re-rendered and generated as they are read.

    Planning (which ingests changed SOPs) runs in a worker thread and hands each SOP over as soon
    as it is decided, so the model is busy from the first SOP on. Each answer is validated,
    rendered and written in a worker thread too, keeping the event loop free to send requests.
    `mutex` guards the lock, the written set and the stat cache, which those threads share.
    """

    def __init__(
        self, plan: Plan, *, out: Path, catalog: ToolCatalog, settings: Settings, fmt: str
    ) -> None:
        self.plan = plan
        self.out = out
        self.catalog = catalog
        self.settings = settings
        self.fmt = fmt
        self.lock: LockFile = plan.start_lock()
        self.written: set[str] = set()
        self.changed: list[str] = []  # written or removed, for the final flush to disk
        self.dirty = False
        self.saved_at = 0.0
        self.mutex = threading.Lock()
        self.saving = threading.Lock()
        self.stopped: str | None = None  # why generation stopped early (a fatal backend error)

    def run(self, backend: Backend, result: RunResult) -> None:
        """Bring the output folder up to date; every completed routine is kept on interrupt."""
        try:
            _run_cancellable(self._build(backend))
            removed = self._remove_vanished()
            if self.stopped is None:
                self._shared(force=bool(removed))
            self._flush()
            self._save_lock(now=True, durable=True)
        except BaseException:
            # Interrupted or failed: record every routine completed so far, then re-raise.
            with contextlib.suppress(OutputError):
                self._save_lock(now=True)
            raise
        finally:
            self.plan.files.save()
            result.written = sorted(self.written)

    async def _build(self, backend: Backend) -> None:
        from sop_compiler.render.run import progress

        plan = self.plan
        # Handoff targets in prompts are the run's agent groups, known for sure only once every
        # SOP is read; generation starts with the folders of every SOP that may hold procedures.
        agents = tuple(sorted({agent_for(sop.source) for sop in plan.sops if _may_have_procs(sop)}))
        context = GenerationContext(catalog=self.catalog, settings=self.settings, agents=agents)
        limit = asyncio.Semaphore(self.settings.jobs)
        prefetch = asyncio.ensure_future(asyncio.to_thread(_prefetch_client, backend))
        stream = plan.stream()
        tasks: list[asyncio.Task[None]] = []
        finished: list[str] = []  # progress labels, shown once the total is known
        advance = finished.append

        async def one(proc: PlannedProcedure, context: GenerationContext) -> None:
            async with limit:
                if self._stop_check(backend, proc):
                    return
                result = await self._call(backend, proc, context)
            if self._stop_check(backend, proc, result):
                return
            # Shielded: an answer that arrived is written and recorded even if the run is
            # interrupted meanwhile (the loop waits for worker threads before it closes).
            loop = asyncio.get_running_loop()
            await asyncio.shield(loop.run_in_executor(None, self._finish, proc, result))
            advance(f"{proc.status} {proc.agent}/{proc.id}")

        try:
            while (sop := await asyncio.to_thread(self._next_sop, stream)) is not None:
                tasks += [
                    asyncio.ensure_future(one(proc, context))
                    for proc in sop.procs
                    if proc.state == "generate"
                ]
            with progress(len(tasks), fmt=self.fmt) as show:
                for label in finished:
                    show(label)
                advance = show
                await asyncio.gather(*tasks)
                if plan.agents() != agents and self.stopped is None:
                    # A folder held no procedure after all: what its absence changes in the
                    # prompts must show in the routines, as if it had been known from the start.
                    context = replace(context, agents=plan.agents())
                    again = [p for p in plan.procedures("generate") if p.status == "generated"]
                    await asyncio.gather(*(one(proc, context) for proc in again))
        finally:
            for task in tasks:
                task.cancel()
            prefetch.cancel()
            await backend.aclose()

    def _next_sop(self, stream: Iterator[PlannedSop]) -> PlannedSop | None:
        """Plan the next SOP (in a worker thread), enter it in the lock, re-render its routines."""
        sop = next(stream, None)
        if sop is None:
            return None
        entry = self.plan.sop_entry(sop, keep_vanished=True)
        if entry is not None:
            with self.mutex:
                if entry != self.lock.sops.get(sop.source):
                    self.lock.sops[sop.source] = entry
                    self.dirty = True
        for proc in sop.procs:
            if proc.state == "rerender":
                self._rerender(proc)
        return sop

    def _stop_check(
        self, backend: Backend, proc: PlannedProcedure, result: GenerationResult | None = None
    ) -> bool:
        """True when a fatal backend error (bad key, unknown model, no quota) stops this one."""
        fatal = getattr(backend, "fatal_error", None)
        if fatal is None or (result is not None and result.error != fatal.message):
            return False
        # Told once for the run, not once per procedure; the next compile generates the rest.
        proc.status = "would_generate"
        if self.stopped is None:
            self.stopped = f"generation stopped: {_one_line(fatal)}" + (
                f" ({fatal.hint})" if fatal.hint else ""
            )
        if result is not None:
            proc.usage = result.usage
        return True

    def _remove_vanished(self) -> list[str]:
        """Drop deleted SOPs and vanished procedures from the lock, and remove their outputs."""
        with self.mutex:
            kept: dict[str, SopEntry] = {}
            for sop in self.plan.sops:
                entry = self.lock.sops.get(sop.source)
                if not sop.sha256 or entry is None:
                    continue
                ids = {p.id for p in sop.procs}
                if set(entry.procedures) != ids:
                    procedures = {k: e for k, e in entry.procedures.items() if k in ids}
                    entry = entry.model_copy(update={"procedures": procedures})
                kept[sop.source] = entry
            if kept != self.lock.sops:
                self.lock.sops = kept
                self.dirty = True
            # Never a path this run's entries claim (on a case-insensitive disk either).
            claimed = {rel.casefold() for rel in self.lock.recorded_outputs()}
        gone = [rel for rel in self.plan.removals() if rel.casefold() not in claimed]
        return self._write({}, remove=gone)

    def _write(self, files: dict[str, bytes], *, remove: list[str] = ()) -> list[str]:  # type: ignore[assignment]
        from sop_compiler.emit import write_outputs

        try:
            changed = write_outputs(self.out, files, remove=remove)
        except OSError as exc:
            raise OutputError(
                f"cannot write the output folder: {exc.strerror or exc}", path=self.out
            ) from None
        with self.mutex:
            self.written.update(changed)
            self.changed += changed
            states = self.plan.files
            for rel in remove:
                states.removed(rel)
            for rel, data in files.items():
                states.written(rel, sha256_bytes(data))
        return changed

    def _flush(self) -> None:
        """Make this run's writes durable: one pass at the end instead of an fsync per file."""
        from sop_compiler.emit.write import sync_outputs

        with contextlib.suppress(OSError):
            sync_outputs(self.out, self.changed)

    def _save_lock(self, *, now: bool = False, durable: bool = False) -> None:
        """Write the lock if it changed; during generation at most every LOCK_INTERVAL seconds.

        Outputs are always written before their entry, so a lock that lags behind only costs
        regenerating (from the response cache) what it does not list yet, never a wrong entry.
        """
        from sop_compiler.lock import dump_lock, write_atomic

        if not now and time.monotonic() - self.saved_at < LOCK_INTERVAL:
            return
        if not self.saving.acquire(blocking=now):
            return  # another thread is saving it
        try:
            with self.mutex:
                if not self.dirty and self.lock != self.plan.old:
                    self.dirty = True
                if not self.dirty:
                    return
                data = dump_lock(self.lock)
                self.dirty, self.saved_at = False, time.monotonic()
            try:
                if write_atomic(self.out / LOCK_NAME, data, durable=durable):
                    with self.mutex:
                        self.written.add(LOCK_NAME)
            except BaseException:
                self.dirty = True
                raise
        finally:
            self.saving.release()

    def _record(self, proc: PlannedProcedure, files: dict[str, bytes]) -> None:
        """Write one routine's files at once, then its lock entry, then (now and then) the lock."""
        stale = sorted(set(proc.old.outputs) - set(files)) if proc.old else []
        self._write(files, remove=stale)
        assert proc.report is not None
        proc.entry = proc.make_entry(
            outputs={rel: sha256_bytes(data) for rel, data in files.items()}, report=proc.report
        )
        with self.mutex:
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
        """Validate, render and write one answer (in a worker thread)."""
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


def _may_have_procs(sop: PlannedSop) -> bool:
    """False only for an SOP the lock vouches for that has no procedure (or could not be read)."""
    return sop.error is None and (bool(sop.procs) or sop.old is None or sop.old.key != sop.key)


def _prefetch_client(backend: Backend) -> None:
    """Import the backend's HTTP client while SOPs are read (openai alone takes ~0.5 s)."""
    if backend.name == "openai":
        with contextlib.suppress(ImportError):
            importlib.import_module("openai")


def _run_cancellable(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` in a new event loop where SIGTERM (and Ctrl-C) cancel it cleanly.

    Like `asyncio.run`, plus SIGTERM: the signal cancels the main task from the loop, also when
    SIGINT is ignored (a background job of a non-interactive shell), and the cancellation leaves
    as KeyboardInterrupt, the CLI's clean "interrupted" exit. Worker threads finish their file
    before the loop closes. A second signal stops waiting for them.
    """
    in_main = threading.current_thread() is threading.main_thread()
    signals = [signal.SIGTERM] if in_main else []
    if in_main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signals.append(signal.SIGINT)  # an ignored Ctrl-C stays ignored
    previous = {signum: signal.getsignal(signum) for signum in signals}
    # Worker threads (reading SOPs, writing routines) hold the GIL for up to the switch interval
    # (5 ms) whenever the loop thread wakes for a response; a shorter one keeps requests going out.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.0005))
    loop = asyncio.new_event_loop()
    task = loop.create_task(main)
    stopping = False

    def stop() -> None:
        nonlocal stopping
        if stopping:
            raise KeyboardInterrupt
        stopping = True
        task.cancel()

    try:
        for signum in signals:
            loop.add_signal_handler(signum, stop)
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            if stopping:
                raise KeyboardInterrupt from None
            raise
        finally:
            pending = asyncio.all_tasks(loop)
            for other in pending:
                other.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
        sys.setswitchinterval(interval)
        # Closing the loop reset its signals to the defaults: the caller's handlers apply again.
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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
