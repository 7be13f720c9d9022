"""Deciding one SOP: hash it, read it when needed, give routine ids, compare with the lock."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from sop_compiler.config import Settings
from sop_compiler.lock._file import (
    LockFile,
    ProcedureEntry,
    SopEntry,
    sha256_bytes,
)
from sop_compiler.lock._keys import (
    Keys,
    Reader,
    routine_json_path,
)
from sop_compiler.lock._planned import PlannedProcedure, PlannedSop
from sop_compiler.lock._stat import FileStates
from sop_compiler.models import (
    StaleEntry,
    ValidationReport,
)


def _relative(path: Path, root: Path, folders: dict[Path, Path]) -> str:
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


def _open_sop(
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
    sop = PlannedSop(source, path, sha, keys.sop(sha), entry)
    if entry is not None and entry.key == sop.key:
        sop.error = entry.error
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


def _read(sop: PlannedSop, *, root: Path, settings: Settings, reader: Reader) -> None:
    result = reader(sop.path, root=root, settings=settings)
    sop.read, sop.error = True, result.error
    sop.procs = [
        PlannedProcedure(sop, index, p.id, p.agent, p.title, "", p)
        for index, p in enumerate(result.procedures if result.error is None else [])
    ]


def _assign_ids(sop: PlannedSop, used: set[str]) -> list[str]:
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


def _decide(
    proc: PlannedProcedure, *, keys: Keys, old_lock: LockFile, files: FileStates, refresh: bool
) -> None:
    """Set the procedure's state (current, rerender, generate) and, for --check, why."""
    sop = proc.sop
    proc.input = keys.input(proc.text)
    proc.render = keys.render(proc.input)
    proc.old = old = sop.old.procedures.get(proc.id) if sop.old else None
    proc.problems, proc.report = [], None

    def problem(reason: Literal["stale", "new"], detail: str) -> None:
        proc.problems.append(
            StaleEntry(path=sop.source, where="sops", reason=reason, detail=f"{proc.id}: {detail}")
        )

    if old is None:
        proc.state = "generate"
        problem("new", "no outputs yet")
        return
    if refresh or old.input != proc.input:
        proc.state = "generate"
        problem("stale", _why_stale(old, proc, keys, old_lock))
        return
    proc.report = ValidationReport(routine_id=proc.id, issues=old.issues, coverage=old.coverage)
    states = {rel: files.state(rel, sha) for rel, sha in sorted(old.outputs.items())}
    for rel, state in states.items():
        if state != "ok":
            detail = (
                "deleted" if state == "missing" else "differs from what sopc wrote (hand-edited?)"
            )
            proc.problems.append(
                StaleEntry(path=rel, reason=state, detail=f"{detail}; from {sop.source}")
            )
    json_rel = routine_json_path(old.outputs)
    if json_rel is None or states[json_rel] != "ok":
        proc.state = "generate"
    elif proc.problems or old.render != proc.render:
        proc.state = "rerender"
        if old.render != proc.render:
            problem("stale", "templates or settings changed")
    else:
        proc.state = "current"


def _why_stale(old: ProcedureEntry, proc: PlannedProcedure, keys: Keys, lock: LockFile) -> str:
    if not old.input:
        return "the last compile did not finish it"
    if old.text != proc.text:
        return "the SOP text changed"
    if lock.backend != keys.backend:
        before, now = lock.backend.get("backend"), keys.backend.get("backend")
        return (
            f"the backend changed ({before} -> {now})"
            if before != now
            else "backend settings changed"
        )
    if lock.catalog != keys.catalog:
        return "the tool catalog changed"
    if lock.sopc != keys.sopc:
        return "the sopc output version changed"
    return "the prompt templates or routine schema changed"
