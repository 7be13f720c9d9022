"""The writing half of a compile: SOPs planned, re-rendered and generated as they are read."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

from sop_compiler.config import Settings
from sop_compiler.errors import OutputError
from sop_compiler.generate import Backend, GenerationContext, GenerationResult, to_routine
from sop_compiler.interrupt import abandonable
from sop_compiler.lock import (
    LOCK_NAME,
    LockFile,
    Plan,
    PlannedProcedure,
    PlannedSop,
    SopEntry,
    sha256_bytes,
)
from sop_compiler.lock.staleness import depends_of, new_errors
from sop_compiler.models import (
    Issue,
    Routine,
    RoutineDraft,
    RunResult,
    ToolCatalog,
    ValidationReport,
)
from sop_compiler.pipeline._outcomes import _one_line
from sop_compiler.pipeline._signals import _run_cancellable

log = logging.getLogger("sop_compiler.pipeline")
_T = TypeVar("_T")

# Seconds between lock-file writes while routines complete (always written on exit and interrupt):
# rewriting a big lock after every routine would make a large first build quadratic.
LOCK_INTERVAL = 1.0


class _Build:
    """The writing half of a compile: SOPs planned, re-rendered and generated as they are read.

    Planning (which ingests changed SOPs) runs in a worker thread and hands each SOP over as soon
    as it is decided, so the model is busy from the first SOP on. Each answer is validated,
    rendered and written in a worker thread too, keeping the event loop free to send requests.
    `mutex` guards the lock, the written set and the stat cache, which those threads share.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        out: Path,
        catalog: ToolCatalog,
        settings: Settings,
        fmt: str,
        batch: bool = False,
    ) -> None:
        self.plan = plan
        self.out = out
        self.catalog = catalog
        self.settings = settings
        self.fmt = fmt
        self.lock: LockFile = plan.start_lock()
        self.written: set[str] = set()
        self.kept: set[str] = set()  # stale paths left alone: not provably written by sopc
        self.known = plan.old.recorded_outputs()  # paths an earlier run wrote
        self.set_aside: list[tuple[str, str]] = []  # files sopc never wrote, renamed out of the way
        self.changed: list[str] = []  # written or removed, for the final flush to disk
        self.dirty = False
        self.saved_at = 0.0
        self.mutex = threading.Lock()
        self.saving = threading.Lock()
        self.stopped: str | None = None  # why generation stopped early (a fatal backend error)
        self.secrets: list[bytes] = []  # the API key and URL credentials: never written
        self.not_deployed: dict[str, str] = {}  # `<agent>/<id>` -> why the network lacks it
        self.batch = batch  # through the Batch API (pipeline/_batch.py) instead of one by one
        self.batch_notes: list[str] = []
        self.waiting = 0  # procedures left waiting in a batch
        self.planned_all = False  # every SOP decided (the network can be rendered on interrupt)
        self.import_error: str | None = None  # the written network does not import
        self.import_note: str | None = None  # why the network was not imported

    def _scrubbed(self, files: dict[str, bytes]) -> dict[str, bytes]:
        """`files` with every secret (a model answer may echo the key) replaced by `***`."""
        return {rel: self._scrub(data) for rel, data in files.items()}

    def _scrub(self, data: bytes) -> bytes:
        for secret in self.secrets:
            data = data.replace(secret, b"***")
        return data

    def scrubbed_result(self, result: RunResult) -> RunResult:
        """`result` with every secret replaced by `***`: what stdout and `--format json` show."""
        if not self.secrets:
            return result
        data = result.model_dump_json().encode("utf-8")
        for secret in self.secrets:
            # As JSON spells it: a password may hold a quote or a backslash.
            spelled = json.dumps(secret.decode("utf-8"), ensure_ascii=False)[1:-1]
            data = data.replace(spelled.encode("utf-8"), b"***")
        return type(result).model_validate_json(data)

    def run(self, backend: Backend, result: RunResult) -> None:
        """Bring the output folder up to date; every completed routine is kept on interrupt."""
        from sop_compiler.generate.llm import LLMBackend

        if isinstance(backend, LLMBackend):
            found = {secret.encode("utf-8") for secret in backend.secrets() if len(secret) >= 4}
            # A base URL's user:password travels as Basic auth: a server echoing the header
            # shows it in base64.
            found |= {
                base64.b64encode(unquote(secret).encode("utf-8"))
                for secret in backend.secrets()
                if ":" in secret and "://" not in secret
            }
            self.secrets = sorted(found, key=lambda v: (-len(v), v))  # longest first
            if backend.cache is not None:
                backend.cache.secrets = [secret.decode("utf-8") for secret in self.secrets]
        from sop_compiler.emit.write import remove_stale_temps

        remove_stale_temps(self.out)
        try:
            _run_cancellable(self._build(backend))
            removed = self._remove_vanished()
            if self.stopped is None:
                self._shared(force=bool(removed))
            self._flush()
            self._save_lock(now=True, durable=True)
        except KeyboardInterrupt:
            with contextlib.suppress(OutputError):
                self._save_lock(now=True)
            self._after_interrupt()
            raise
        except BaseException:
            # Failed: record every routine completed so far, then re-raise.
            with contextlib.suppress(OutputError):
                self._save_lock(now=True)
            raise
        finally:
            self.plan.files.save()
            result.written = sorted(self.written)
            result.not_deployed = [f"{key}: {why}" for key, why in self.not_deployed.items()]

    async def _build(self, backend: Backend) -> None:
        from sop_compiler.render.run import progress

        plan = self.plan
        # Every SOP's agent group, known before any is read: a routine never depends on which
        # folders an earlier build had (the agent set is part of every routine's input key).
        context = GenerationContext(
            catalog=self.catalog, settings=self.settings, agents=plan.agents()
        )
        # The backend says how many at once (a local server's slots) when the first one starts,
        # so that a run with nothing to generate asks the server nothing.
        limit: asyncio.Future[asyncio.Semaphore] | None = None

        async def slots() -> asyncio.Semaphore:
            nonlocal limit
            if limit is None:
                limit = asyncio.ensure_future(_semaphore(backend, jobs=self.settings.jobs))
            return await asyncio.shield(limit)

        prefetch = asyncio.ensure_future(asyncio.to_thread(_prepare, backend))
        stream = plan.stream()
        tasks: list[asyncio.Task[None]] = []
        finished: list[str] = []  # progress labels, shown once the total is known
        advance = finished.append

        async def one(proc: PlannedProcedure, context: GenerationContext) -> None:
            async with await slots():
                if self._stop_check(backend, proc):
                    return
                result = await self._call(backend, proc, context)
            if self._stop_check(backend, proc, result):
                return
            # Shielded: an answer that arrived is written and recorded even if the run is
            # interrupted meanwhile (the loop waits for worker threads before it closes).
            loop = asyncio.get_running_loop()
            finish = loop.run_in_executor(None, self._finish, proc, result)
            # Once the run stops (a full disk, a signal) nobody awaits this answer any more: its
            # error is looked at here, so asyncio never prints it as a stray traceback at exit.
            finish.add_done_callback(_retrieve)
            await asyncio.shield(finish)
            why = f": {proc.why}" if proc.why else ""
            advance(f"{proc.status} {proc.agent}/{proc.id}{why}")

        batched: list[PlannedProcedure] = []
        try:
            while (sop := await asyncio.to_thread(self._next_sop, stream)) is not None:
                if self.batch:
                    batched += [proc for proc in sop.procs if proc.state == "generate"]
                    continue
                tasks += [
                    asyncio.ensure_future(one(proc, context))
                    for proc in sop.procs
                    if proc.state == "generate"
                ]
            if self.batch:
                await self._batch_round(backend, batched, context)
            with progress(len(tasks), fmt=self.fmt, tokens=lambda: backend.tokens_received) as show:
                for label in finished:
                    show(label)
                advance = show
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            # A thread cannot be cancelled: wait, so that no client is built after aclose().
            await asyncio.wait({prefetch})
            await backend.aclose()

    def _next_sop(self, stream: Iterator[PlannedSop]) -> PlannedSop | None:
        """Plan the next SOP (in a worker thread), enter it in the lock, re-render its routines."""
        with abandonable():  # reading, cleaning and segmenting: a signal may end it at once
            sop = next(stream, None)
        if sop is None:
            self.planned_all = True
            return None
        entry = self.plan.sop_entry(sop, keep_vanished=True)
        if entry is not None:
            with self.mutex:
                # Always the new entry: routines completing later are recorded in it, and the
                # old lock's entries (shared until now) must never change under the plan.
                if entry != self.lock.sops.get(sop.source):
                    self.dirty = True
                self.lock.sops[sop.source] = entry
        for proc in sop.procs:
            if proc.state == "rerender":
                self._rerender(proc)
        return sop

    async def _batch_round(
        self, backend: Backend, procs: list[PlannedProcedure], context: GenerationContext
    ) -> None:
        from sop_compiler.errors import ConfigError
        from sop_compiler.generate.llm import LLMBackend
        from sop_compiler.pipeline._batch import BatchRound
        from sop_compiler.validate import check_draft

        if not isinstance(backend, LLMBackend) or not hasattr(backend, "client"):
            raise ConfigError("--batch needs the openai backend (the OpenAI Batch API)")

        def validate(proc: PlannedProcedure) -> Callable[[RoutineDraft], list[Issue]]:
            procedure = proc.procedure
            assert procedure is not None
            return lambda draft: check_draft(
                draft,
                procedure=procedure,
                catalog=self.catalog,
                settings=self.settings,
                agents=context.agents,
            )

        def save() -> None:
            with self.mutex:
                self.dirty = True
            self._save_lock(now=True)

        rounds = BatchRound(
            backend, context, self.lock.batches, finish=self._finish, validate=validate, save=save
        )
        await rounds.run(procs)
        self.batch_notes, self.waiting = rounds.notes, rounds.waiting

    def _after_interrupt(self) -> None:
        """Interrupted: what was not generated waits for the next compile; the review page and
        the network are written for the routines kept, once every SOP was decided (else a
        routine of an SOP not yet read would vanish from them)."""
        for proc in self.plan.procedures():
            if proc.state == "generate" and proc.status == "unchanged":
                proc.status = "would_generate"
        if not self.planned_all:
            return
        with contextlib.suppress(OutputError):
            self._shared(force=False)
            self._flush()
            self._save_lock(now=True, durable=True)

    def _stop_check(
        self, backend: Backend, proc: PlannedProcedure, result: GenerationResult | None = None
    ) -> bool:
        """True when a fatal backend error (bad key, unknown model, no quota) stops this one."""
        fatal = backend.fatal_error
        if fatal is None or (result is not None and result.error != fatal.message):
            return False
        # Told once for the run, not once per procedure; the next compile generates the rest.
        proc.status = "would_generate"
        if self.stopped is None:
            from sop_compiler.render.run import stop_note

            self.stopped = stop_note(_one_line(fatal), fatal.hint)
        if result is not None:
            proc.usage = result.usage
        return True

    def _remove_vanished(self) -> list[str]:
        """Drop deleted SOPs and vanished procedures from the lock, and remove their outputs."""
        with self.mutex:
            kept: dict[str, SopEntry] = {}
            for sop in self.plan.sops:
                entry = self.lock.sops.get(sop.source)
                if not sop.key or entry is None:
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
        gone = {
            rel: sha for rel, sha in self.plan.removals().items() if rel.casefold() not in claimed
        }
        return self._write({}, remove=gone)

    def _write(
        self, files: dict[str, bytes], *, remove: Mapping[str, str] | None = None
    ) -> list[str]:
        from sop_compiler.emit import write_outputs

        remove = remove or {}
        kept: list[str] = []
        aside: list[tuple[str, str]] = []
        try:
            changed = write_outputs(
                self.out,
                files,
                remove=remove,
                protect=[_impl_file(self.settings), LOCK_NAME],
                kept=kept,
                known=self.known,
                set_aside=aside,
            )
        except OSError as exc:
            raise OutputError(
                f"cannot write the output folder: {exc.strerror or exc}", path=self.out
            ) from None
        with self.mutex:
            self.written.update(changed)
            self.changed += changed
            states = self.plan.files
            self.kept.update(kept)
            self.set_aside += aside
            for rel in remove:
                if rel not in kept:
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
                data = self._scrub(dump_lock(self.lock))
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
        files = self._scrubbed(files)
        stale = (
            {rel: sha for rel, sha in proc.old.outputs.items() if rel not in files}
            if proc.old
            else {}
        )
        self._write(files, remove=stale)
        assert proc.report is not None and proc.routine is not None
        keys = self.plan.keys
        depends = depends_of(proc.routine, keys)
        errors = any(issue.severity == "error" for issue in proc.report.issues)
        proc.render = keys.render(proc.input, depends, errors=errors)
        proc.entry = proc.make_entry(
            outputs={rel: sha256_bytes(data) for rel, data in files.items()},
            report=proc.report,
            depends=depends,
        )
        with self.mutex:
            self.lock.sops[proc.sop.source].procedures[proc.id] = proc.entry
            self.dirty = True
        self._save_lock()

    def _validate(self, proc: PlannedProcedure, routine: Routine) -> ValidationReport:
        from sop_compiler.validate import validate

        assert proc.procedure is not None
        return validate(
            routine,
            procedure=proc.procedure,
            catalog=self.catalog,
            settings=self.settings,
            agents=self.plan.agents(),
        )

    def _rerender(self, proc: PlannedProcedure) -> None:
        from sop_compiler.emit import render_routine

        routine = proc.load_routine(self.out)
        if routine is None:  # unreadable after all: regenerate it instead
            proc.state = "generate"
            return
        # the figures the backend could not read when it wrote the routine stay unread
        report = _with_unread(self._validate(proc, routine), proc.old.issues if proc.old else [])
        errors = new_errors(proc.old, report)
        if errors:
            # What changed (a tool's schema, a removed agent) broke it: only now ask the model.
            proc.state = "generate"
            proc.why = f"{proc.why or 'it was re-validated'}, and it now fails ({errors[0]})"
            return
        if proc.why:
            proc.why += ": re-validated, no model call"
        proc.routine, proc.report = routine, report
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
                validate=lambda draft: _abandonable_call(
                    check_draft,
                    draft,
                    procedure=procedure,
                    catalog=self.catalog,
                    settings=self.settings,
                    agents=context.agents,
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
            with abandonable():  # a signal may end the computation, never the writing below
                routine = to_routine(result.draft, proc.procedure, self.catalog)
                # The routine is a copy of the draft: a big SOP's draft (a step per line, many
                # times the file's size) is not kept while the routine is validated and
                # rendered (issue 17). Nothing reads an answer's draft after this.
                result.draft = None
                report = _with_unread(self._validate(proc, routine), result.issues)
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
        from sop_compiler.emit import deployable, render_network, render_review
        from sop_compiler.validate import check_calls

        key = self.plan.shared_key()
        intact = all(state == "ok" for state in self.plan.shared_files().values())
        if not force and intact and key == self.lock.shared_key:
            self.not_deployed = dict(self.lock.not_deployed)  # still true: nothing it shows changed
            return
        routines, reports = self.plan.routines()
        # `call` steps are checked once every routine is known; the issues join their reports.
        for where, issues in check_calls(routines).items():
            report = reports.get(where)
            if report is not None:
                report.issues += [issue for issue in issues if issue not in report.issues]
        # A routine with errors never ships: its agent runs without it (and the run exits 1).
        deployed, self.not_deployed = deployable(routines, reports, self.settings)
        self.lock.not_deployed = dict(self.not_deployed)
        files = render_network(deployed, catalog=self.catalog, settings=self.settings)
        files.update(
            render_review(
                routines,
                reports,
                failures=self.plan.failures(),
                settings=self.settings,
                not_deployed=self.not_deployed,
            )
        )
        files = self._scrubbed(files)
        _check_python(files)
        changed = self._write(
            files, remove={rel: sha for rel, sha in self.lock.shared.items() if rel not in files}
        )
        if self.settings.check_import and any(
            rel.startswith("agent_network/") and rel.endswith(".py") and rel in files
            for rel in changed
        ):
            self._check_import()
        self.lock.shared = {rel: sha256_bytes(data) for rel, data in sorted(files.items())}
        self.lock.shared_key = key
        self.dirty = True

    def _check_import(self) -> None:
        """Import the network just written in a fresh interpreter (emit/imports.py)."""
        from sop_compiler.emit.imports import can_import, check_import

        if not can_import():
            self.import_note = (
                "openai-agents is not installed: agent_network/ was compiled, not imported "
                '(pip install "sop-compiler[agents]")'
            )
            return
        self.import_error = check_import(self.out)


def _with_unread(report: ValidationReport, issues: list[Issue]) -> ValidationReport:
    """`report` with the figures the backend could not read (`figure_unread`, a fact about the
    answer, not about the routine's text) among its issues."""
    unread = [issue for issue in issues if issue.code == "figure_unread"]
    report.issues = [*unread, *(issue for issue in report.issues if issue not in unread)]
    return report


def _check_python(files: dict[str, bytes]) -> None:
    """Every emitted Python file must compile before it is written (an import would fail)."""
    for rel, data in sorted(files.items()):
        if not rel.endswith(".py"):
            continue
        try:
            compile(data.decode("utf-8"), rel, "exec", dont_inherit=True)
        except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
            raise OutputError(
                f"sopc emitted Python that does not compile ({type(exc).__name__}: "
                f"{_one_line(exc)}); nothing of the network was written",
                path=rel,
                hint="a bug in sopc: please report it with the tool catalog",
            ) from None


def _abandonable_call(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """`function(*args, **kwargs)` as a computation a signal may end at once."""
    with abandonable():
        return function(*args, **kwargs)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a finished future's exception as seen (the awaiting task may be gone)."""
    if not future.cancelled():
        future.exception()


def _impl_file(settings: Settings) -> str:
    """The implementation module's file name: sopc never removes a file of that name."""
    return f"{settings.implementation_module.rpartition('.')[2]}.py"


async def _semaphore(backend: Backend, *, jobs: int) -> asyncio.Semaphore:
    """At most the backend's `concurrency()` procedures at once (`jobs` if it cannot tell)."""
    try:
        jobs = await backend.concurrency()
    except Exception:  # a probe that fails leaves the first request to report the fault
        log.debug("backend.concurrency() failed", exc_info=True)
    return asyncio.Semaphore(max(1, jobs))


def _prepare(backend: Backend) -> None:
    """Let the backend import and build its client while SOPs are read (openai takes ~0.5 s)."""
    try:
        backend.prepare()
    except Exception:  # the first request reports the same fault, for the procedure it stops
        log.debug("backend.prepare() failed", exc_info=True)
