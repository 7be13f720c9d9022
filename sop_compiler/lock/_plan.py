"""Planning a run: every SOP and procedure checked against the lock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sop_compiler.config import Settings
from sop_compiler.ingest import discover_sources
from sop_compiler.lock._file import (
    LOCK_NAME,
    RUN_LOCK_NAME,
    FileState,
    LockFile,
    ProcedureEntry,
    SopEntry,
    sha256_bytes,
    sha256_json,
)
from sop_compiler.lock._planned import (
    ChosenBackend,
    PlannedProcedure,
    PlannedSop,
    ProcState,
    Reader,
    agent_for,
    routine_json_path,
)
from sop_compiler.lock._stat import FileStates
from sop_compiler.lock.staleness import Keys, decide
from sop_compiler.lock.staleness import explain as explain_keys
from sop_compiler.models import (
    Figure,
    Routine,
    StaleEntry,
    ToolCatalog,
    ValidationReport,
)

_IGNORED_NAMES = frozenset({LOCK_NAME, RUN_LOCK_NAME, "__pycache__"})


@dataclass(frozen=True)
class _Reading:
    """How `Plan.stream` reads SOPs."""

    root: Path
    reader: Reader
    refresh: bool
    read_all: bool


class Plan:
    """Every SOP and procedure of a run, each checked against the lock."""

    def __init__(
        self,
        *,
        out: Path,
        settings: Settings,
        old: LockFile,
        keys: Keys,
        files: FileStates | None = None,
    ) -> None:
        self.out = out
        self.files = files or FileStates(out)
        self.settings = settings
        self.old = old
        self.keys = keys
        self.sops: list[PlannedSop] = []
        self.notes: list[str] = []
        self.agent_set: tuple[str, ...] = ()
        self._reading: _Reading | None = None

    def stream(self) -> Iterator[PlannedSop]:
        """Decide each SOP in source order, reading it when needed; final once yielded.

        A routine id depends only on the SOPs before it (first come, first served), so each SOP
        is final as soon as it is decided: a compile starts generating the first SOP's routines
        while later SOPs are still being read.
        """
        reading = self._reading
        assert reading is not None, "stream() needs a plan made by start_plan()"
        used: set[str] = set()
        for sop in self.sops:
            changed = reading.refresh or sop.old is None or sop.old.key != sop.key
            if sop.error is None and not sop.read and changed:
                self._read(sop, reading)
            taken = assign_ids(sop, used)
            self._decide(sop, reading.refresh)
            if (
                not sop.read
                and sop.error is None
                and any(
                    p.stored_id != p.id or (reading.read_all and p.state != "current")
                    for p in sop.procs
                )
            ):
                # Its ids moved (an earlier SOP took one) or its procedures are needed: read it.
                used.difference_update(taken)
                self._read(sop, reading)
                assign_ids(sop, used)
                self._decide(sop, reading.refresh)
            yield sop

    def _read(self, sop: PlannedSop, reading: _Reading) -> None:
        read_sop(
            sop, keys=self.keys, root=reading.root, settings=self.settings, reader=reading.reader
        )

    def _decide(self, sop: PlannedSop, refresh: bool) -> None:
        for proc in sop.procs:
            decide(proc, keys=self.keys, old_lock=self.old, files=self.files, refresh=refresh)

    def procedures(self, state: ProcState | None = None) -> list[PlannedProcedure]:
        """All procedures in source order, or those in `state`."""
        return [p for sop in self.sops for p in sop.procs if state is None or p.state == state]

    def agents(self) -> tuple[str, ...]:
        """The agent groups of the run, sorted: those of every SOP found, known before reading.

        Not only the groups that turn out to hold procedures: that would be known only once
        every SOP is read, and a routine generated earlier would depend on the build's history.
        """
        return self.agent_set

    def removals(self) -> dict[str, str]:
        """Outputs recorded for deleted SOPs and vanished procedures, with their recorded hashes."""
        keep: set[str] = set()
        for proc in self.procedures():
            if proc.old is not None:
                keep.update(proc.old.outputs)
        gone: dict[str, str] = {}
        current = {sop.source: sop for sop in self.sops}
        for source, entry in self.old.sops.items():
            ids = {p.id for p in current[source].procs} if source in current else set()
            for proc_id, recorded in entry.procedures.items():
                if proc_id not in ids:
                    gone.update(recorded.outputs)
        return {rel: gone[rel] for rel in sorted(set(gone) - keep)}

    def start_lock(self) -> LockFile:
        """This run's header over the old entries: what a compile updates SOP by SOP."""
        keys = self.keys
        return LockFile(
            backend=keys.backend,
            catalog=keys.catalog,
            templates=keys.templates,
            settings=keys.settings,
            prompts=keys.prompts,
            schema_sha=keys.schema,
            agents=keys.agents,
            tools=dict(sorted(keys.tools.items())),
            sops=dict(self.old.sops),
            shared=dict(self.old.shared),
            shared_key=self.old.shared_key,
            not_deployed=dict(self.old.not_deployed),
            batches=dict(self.old.batches),
        )

    def sop_entry(self, sop: PlannedSop, *, keep_vanished: bool) -> SopEntry | None:
        """The SOP's lock entry before anything is generated (None: unreadable, not recorded).

        With `keep_vanished`, procedures that left the SOP stay listed: their outputs are only
        removed at the end of the run, and until then the lock must account for them.
        """
        if not sop.key:
            return None
        procedures: dict[str, ProcedureEntry] = {}
        if keep_vanished and sop.old is not None:
            ids = {p.id for p in sop.procs}
            procedures = {k: e for k, e in sop.old.procedures.items() if k not in ids}
        for proc in sop.procs:
            proc.entry = proc.make_entry()
            procedures[proc.id] = proc.entry
        return SopEntry(
            sha256=sop.sha256, key=sop.key, error=sop.error, procedures=procedures, ocr=sop.ocr
        )

    def shared_key(self) -> str:
        """Key of what the network and review page show: every routine's render key, its issues
        (an issue need not change the routine: a figure the backend could not read) and failures."""
        k = self.keys

        def issues(p: PlannedProcedure) -> str:
            found = p.report.issues if p.report is not None else p.old.issues if p.old else []
            return sha256_json([issue.model_dump(mode="json") for issue in found])

        def content(p: PlannedProcedure) -> str:
            """The routine as written: a --refresh that changes it changes what both show."""
            entry = p.entry or p.old
            rel = routine_json_path(entry.outputs) if entry else None
            return entry.outputs[rel] if entry and rel else ""

        members = sorted(
            (
                p.sop.source,
                p.id,
                f"failed: {p.error}" if p.status == "failed" else p.render,
                issues(p),
                content(p),
            )
            for p in self.procedures()
        )
        return sha256_json([k.sopc, k.templates, k.settings, k.catalog, members])

    def shared_files(self) -> dict[str, FileState]:
        """State of each recorded network and review file."""
        state = self.files.state
        return {rel: state(rel, sha) for rel, sha in sorted(self.old.shared.items())}

    def routines(self) -> tuple[list[Routine], dict[str, ValidationReport]]:
        """Every routine of the run (new or loaded from disk), by agent and id.

        Reports are keyed `<agent>/<id>`: ids are unique only within an agent.
        """
        routines: list[Routine] = []
        reports: dict[str, ValidationReport] = {}
        for proc in sorted(self.procedures(), key=lambda p: (p.agent, p.id)):
            if proc.status == "failed":
                continue
            if proc.routine is None:
                proc.routine = proc.load_routine(self.out)
            if proc.routine is not None and proc.report is not None:
                routines.append(proc.routine)
                reports[f"{proc.routine.agent}/{proc.id}"] = proc.report
        return routines, reports

    def failures(self) -> dict[str, str]:
        """`<id> (<source>)` -> error, for every procedure that could not be generated."""
        return {
            f"{p.id} ({p.sop.source})": p.error or ""
            for p in self.procedures()
            if p.status == "failed"
        }

    def stale(self, lock_problem: str | None, *, explain: bool = False) -> list[StaleEntry]:
        """Why the outputs are not current (empty when they are): what `--check` reports.

        With `explain`, each stale or new routine's entry lists the parts of its keys.
        """
        entries: list[StaleEntry] = []
        if lock_problem:
            entries.append(StaleEntry(path=LOCK_NAME, reason="stale", detail=lock_problem))
        for sop in self.sops:
            if sop.old is None and sop.procs:
                entries.append(
                    StaleEntry(
                        path=sop.source,
                        where="sops",
                        reason="new",
                        detail=f"no outputs yet ({len(sop.procs)} procedures)",
                    )
                )
                continue
            for proc in sop.procs:
                if explain:
                    parts = explain_keys(proc, self.keys, self.old)
                    for found in proc.problems:
                        if found.where == "sops":
                            found.parts = parts
                entries += proc.problems
        current = {sop.source: sop for sop in self.sops}
        for source, entry in sorted(self.old.sops.items()):
            now = current.get(source)
            if now is None:
                entries.append(
                    StaleEntry(
                        path=source,
                        where="sops",
                        reason="orphaned",
                        detail="the SOP was deleted; its outputs remain",
                    )
                )
                continue
            ids = {p.id for p in now.procs}
            for proc_id, recorded in sorted(entry.procedures.items()):
                if proc_id not in ids:
                    entries += [
                        StaleEntry(
                            path=rel,
                            reason="orphaned",
                            detail=f"procedure {proc_id} is no longer in {source}",
                        )
                        for rel in sorted(recorded.outputs)
                    ]
        known = self.old.recorded_outputs()
        entries += [
            StaleEntry(path=rel, reason="orphaned", detail="not written by sopc for any SOP")
            for rel in self._files_on_disk()
            if rel not in known
        ]
        if not entries:
            entries += self._shared_problems()
        return entries

    def _shared_problems(self) -> list[StaleEntry]:
        entries = [
            StaleEntry(
                path=rel,
                reason=state,
                detail="deleted"
                if state == "missing"
                else "differs from what sopc wrote (hand-edited?)",
            )
            for rel, state in self.shared_files().items()
            if state != "ok"
        ]
        if not entries and self.shared_key() != self.old.shared_key and self.procedures():
            entries.append(
                StaleEntry(
                    path="REVIEW.md",
                    reason="stale",
                    detail="the agent network and review page are out of date",
                )
            )
        return entries

    def _files_on_disk(self) -> list[str]:
        if not self.out.is_dir():
            return []
        impl = f"{self.settings.implementation_module.rpartition('.')[2]}.py"
        found: list[str] = []
        for folder, dirnames, filenames in os.walk(self.out):
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".") and d not in _IGNORED_NAMES
            )
            base = Path(folder).relative_to(self.out)
            for name in sorted(filenames):
                if (
                    name.startswith(".")
                    or name in _IGNORED_NAMES
                    or name == impl
                    or name.endswith(".pyc")
                ):
                    continue
                found.append((base / name).as_posix())
        return sorted(found)


def relative_source(path: Path, root: Path, folders: dict[Path, Path]) -> str:
    """The SOP's name as ingest gives it (symlinks resolved), resolving each folder only once."""
    try:
        if path.is_symlink():
            return path.resolve().relative_to(root).as_posix()
    except (OSError, RuntimeError, ValueError):
        pass  # a looping link, or one out of the folder (skipped): named by where it lies
    try:
        real = folders.get(path.parent)
        if real is None:
            real = folders[path.parent] = path.parent.resolve()
    except (OSError, RuntimeError, ValueError):
        return path.name
    base = str(real)
    if base == str(root):
        return path.name
    prefix = str(root).rstrip(os.sep) + os.sep
    if not base.startswith(prefix):
        return path.name
    return f"{base[len(prefix) :].replace(os.sep, '/')}/{path.name}"


def open_sop(
    path: Path, source: str, *, keys: Keys, old: LockFile, limit: int, settings: Settings
) -> PlannedSop:
    entry = old.sops.get(source)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                # Refused before reading, as ingest refuses it: hashing a multi-GB file only to
                # refuse it would load all of it. Recorded with its error and no hash; its key
                # (size and settings) changes when it shrinks or the limit is raised.
                mib = settings.limits.max_file_mb
                error = (
                    f"{source}: file is {size / 1048576:.1f} MiB, over the {mib:g} MiB limit "
                    "(limits.max_file_mb)"
                )
                sop = PlannedSop(source, path, "", keys.sop(f"size {size}"), entry, error=error)
                return sop
            sha = sha256_bytes(handle.read())
    except OSError as exc:
        return PlannedSop(
            source, path, "", "", entry, error=f"{source}: cannot read file: {exc.strerror}"
        )
    # An SOP read with OCR last time is trusted only under the same engine and version.
    ocr = keys.ocr if entry is not None and entry.ocr else None
    sop = PlannedSop(source, path, sha, keys.sop(sha, ocr=ocr), entry)
    if entry is not None and entry.key == sop.key:
        sop.error, sop.ocr = entry.error, entry.ocr
        sop.procs = _procs_from_lock(sop, entry)
    return sop


def _procs_from_lock(sop: PlannedSop, entry: SopEntry) -> list[PlannedProcedure]:
    ordered = sorted(entry.procedures.items(), key=lambda item: (item[1].index, item[0]))
    return [
        PlannedProcedure(sop, e.index, e.base_id, e.agent, e.title, e.text, None, stored_id=proc_id)
        for proc_id, e in ordered
    ]


def unchanged_sops(lock: LockFile) -> list[PlannedSop]:
    """Every SOP of `lock` as a no-op run plans it: procedures current, reports from the lock."""
    sops: list[PlannedSop] = []
    for source, entry in sorted(lock.sops.items()):
        sop = PlannedSop(source, Path(source), entry.sha256, entry.key, entry, error=entry.error)
        sop.procs = _procs_from_lock(sop, entry)
        for proc in sop.procs:
            assert proc.stored_id is not None
            proc.id, proc.state = proc.stored_id, "current"
            proc.old = old = entry.procedures[proc.id]
            proc.report = ValidationReport(
                routine_id=proc.id, issues=old.issues, coverage=old.coverage
            )
        sops.append(sop)
    return sops


def read_sop(
    sop: PlannedSop, *, keys: Keys, root: Path, settings: Settings, reader: Reader
) -> None:
    """Ingest, clean and segment the SOP; its key records the OCR engine if a page needed it."""
    result = reader(sop.path, root=root, settings=settings)
    sop.read, sop.error = True, result.error
    document = result.document
    if document is not None and (
        document.format == "image"
        or any(isinstance(b, Figure) and b.scanned_page for b in document.blocks)
    ):
        sop.ocr = keys.ocr
    if sop.sha256:
        sop.key = keys.sop(sop.sha256, ocr=sop.ocr)
    sop.procs = [
        PlannedProcedure(sop, index, p.id, p.agent, p.title, "", p)
        for index, p in enumerate(result.procedures if result.error is None else [])
    ]


def assign_ids(sop: PlannedSop, used: set[str]) -> list[str]:
    """Routine ids unique within their agent (case-insensitively), first come first served.

    Only within one agent: outputs live under `routines/<agent>/`, so an SOP added to another
    folder never renames an existing routine (`Refunds.md` and `refunds.md` of one folder still
    never overwrite each other). `used` holds `<agent folder>/<id>` of every SOP before this one;
    the keys taken here are added and returned.
    """
    from sop_compiler.emit._plan import agent_dir

    taken: list[str] = []
    for proc in sop.procs:
        folder = agent_dir(proc.agent).casefold()
        candidate, n = proc.base_id, 1
        while f"{folder}/{candidate.casefold()}" in used:
            n += 1
            candidate = f"{proc.base_id}-{n}"
        key = f"{folder}/{candidate.casefold()}"
        used.add(key)
        taken.append(key)
        proc.id = candidate
        if proc.procedure is not None:
            if proc.procedure.id != candidate:
                proc.procedure = proc.procedure.model_copy(update={"id": candidate})
            proc.stored_id = candidate
            proc.text = proc.procedure.text_sha256()
    return taken


def _under(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def start_plan(
    sops: Path,
    *,
    root: Path,
    out: Path,
    settings: Settings,
    catalog: ToolCatalog,
    old: LockFile,
    backend: ChosenBackend,
    refresh: bool,
    read_all: bool,
    reader: Reader,
    files: FileStates | None = None,
) -> Plan:
    """Find and hash every SOP (cheap); `plan.stream()` then decides them in source order."""
    found, skipped = discover_sources(sops, exclude=out)
    if sops.is_file():  # one file keeps its place under the SOP root: its folder's agent group
        found = [(path, _under(path, root)) for path, _ in found]
    agents = sorted({agent_for(source, settings) for _, source in found})
    keys = Keys.compute(
        settings=settings,
        catalog=catalog,
        backend=backend.fingerprint,
        agents=agents,
        whole_catalog=backend.whole_catalog,
    )
    plan = Plan(out=out, settings=settings, old=old, keys=keys, files=files)
    plan.agent_set = tuple(agents)
    plan._reading = _Reading(root=root, reader=reader, refresh=refresh, read_all=read_all)
    folders: dict[Path, Path] = {}
    plan.notes += [
        f"{relative_source(path, root, folders)}: skipped: {why}" for path, why in skipped
    ]
    seen: set[str] = set()
    limit = int(settings.limits.max_file_mb * 1024 * 1024)
    for path, source in found:
        if source in seen:  # a symlink to another SOP of the folder
            continue
        seen.add(source)
        sop = open_sop(path, source, keys=keys, old=old, limit=limit, settings=settings)
        plan.sops.append(sop)
    plan.sops.sort(key=lambda sop: sop.source)
    return plan
