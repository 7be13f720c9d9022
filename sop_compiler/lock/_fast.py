"""The no-op fast path: recognise a compile that would change nothing without planning it.

A clean no-op compile (every SOP current, nothing read, written or removed) leaves a small record
beside the output stat cache (`<cache_dir>/stat/<name>.noop.json`, never in `sopc.lock`, which
must stay byte-stable). The next compile hashes every SOP file (the floor any no-op must pay),
stats the SOP folders, the lock and every output, and compares digests with the record. When all
of it matches, the previous run's decisions still hold, so the run ends at once: no lock
parsing, no per-SOP planning, no validation. Its per-SOP outcomes are built from the lock's bytes
(read while the run lock is held) only if someone looks at them.

Any doubt means the normal path: a symlink in the SOP tree, a timestamp in the same tick as the
record (git's racy-clean rule), a changed sopc installation, a file over the size limit.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from sop_compiler.config import Settings
from sop_compiler.files import replace_file
from sop_compiler.lock._file import LOCK_NAME, sha256_json
from sop_compiler.lock._stat import Stat, stat_key
from sop_compiler.lock.staleness import Keys
from sop_compiler.models import RunResult, SopOutcome, ToolCatalog

_VERSION = 1


@dataclass(frozen=True)
class CleanRun:
    """What the fast path found: the run is a no-op; its notes, issue flags and lock bytes."""

    notes: list[str]
    errors: bool
    warnings: bool
    input_errors: bool
    lock_bytes: bytes


class NoopRecord:
    """The record of the last clean no-op of one output folder, in the stat cache folder."""

    def __init__(self, path: Path, *, out: Path, root: Path, settings: Settings) -> None:
        self.path = path
        self.out = out
        self.root = root
        self.settings = settings
        self._dirs_before: list[list[Any]] | None = None

    @classmethod
    def for_compile(
        cls, out: Path, *, root: Path, settings: Settings, stat_file: Path | None
    ) -> NoopRecord | None:
        """The record beside the output stat cache file (None: no cache, no fast path)."""
        if stat_file is None:
            return None
        return cls(stat_file.with_suffix(".noop.json"), out=out, root=root, settings=settings)

    def _identity(self, fingerprint: dict[str, Any]) -> str | None:
        """Everything run-wide that decides the outputs, or None if it cannot be told cheaply."""
        catalog = _catalog_identity(self.settings, self.root)
        if catalog is None:
            return None
        # Keys without the catalog (parsing it costs more than the rest of a no-op); the raw
        # catalog file stands in for it, which is safe because the sopc code is fingerprinted.
        keys = Keys.compute(settings=self.settings, catalog=ToolCatalog(), backend=fingerprint)
        keys = replace(keys, catalog=catalog)
        return sha256_json(
            [
                _code_fingerprint(),
                str(self.out.resolve()),
                str(self.root),
                int(self.settings.limits.max_file_mb * 1024 * 1024),
                [keys.sopc, keys.backend_sha, keys.catalog, keys.schema, keys.prompts],
                [keys.templates, keys.settings],
                keys.ocr,
            ]
        )

    def check(self, fingerprint: dict[str, Any]) -> CleanRun | None:
        """A CleanRun when nothing changed since the recorded clean no-op, else None."""
        try:
            with open(self.path, "rb") as handle:
                written_at = os.fstat(handle.fileno()).st_mtime_ns
                record = json.loads(handle.read())
            if record.get("version") != _VERSION:
                return None
            if record["identity"] != self._identity(fingerprint):
                return None
            newest = 0
            for rel, *recorded in record["dirs"]:
                st = os.stat(os.path.join(self.root, rel))
                if stat_key(st) != tuple(recorded):
                    return None
                newest = max(newest, st.st_mtime_ns)
            with open(self.out / LOCK_NAME, "rb") as handle:
                lock_st = os.fstat(handle.fileno())
                if list(stat_key(lock_st)) != record["lock"]:
                    return None
                lock_bytes = handle.read()
            newest = max(newest, lock_st.st_mtime_ns)
            outputs = record["outputs"].split("\n") if record["outputs"] else []
            digest, latest = _stat_digest(self.out, outputs)
            if digest != record["outputs_digest"] or max(newest, latest) >= written_at:
                return None  # changed, or racily clean: an edit in the same tick would not show
            sops = record["sops"].split("\n") if record["sops"] else []
            limit = int(self.settings.limits.max_file_mb * 1024 * 1024)
            if _sop_digest(self.root, sops, limit=limit) != record["sops_digest"]:
                return None
            return CleanRun(
                notes=list(record["notes"]),
                errors=bool(record["errors"]),
                warnings=bool(record["warnings"]),
                input_errors=bool(record["input_errors"]),
                lock_bytes=lock_bytes,
            )
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def begin(self) -> None:
        """Note the SOP folders before a normal run plans; a change meanwhile voids the record."""
        self._dirs_before = _dir_stats(self.root, exclude=self.out)

    def save(
        self,
        fingerprint: dict[str, Any],
        *,
        sops: Iterable[tuple[str, str]],
        outputs: dict[str, Stat | None],
        notes: list[str],
        errors: bool,
        warnings: bool,
        input_errors: bool,
    ) -> None:
        """Record a clean no-op from what the run verified: (source, sha256) of every SOP it hashed
        and the stat under which every output was found intact. Anything unusual (a symlink, a
        folder that changed during the run, an output not verified by stat) records nothing.
        """
        self.forget()
        identity = self._identity(fingerprint)
        dirs = self._dirs_before
        if identity is None or dirs is None or any(st is None for st in outputs.values()):
            return
        try:
            if _dir_stats(self.root, exclude=self.out) != dirs:
                return  # an SOP was added, removed or renamed while the run planned
            ordered = sorted(sops)
            digest = hashlib.sha256()
            for source, sha in ordered:
                digest.update(source.encode() + b"\0" + bytes.fromhex(sha))
            stats = hashlib.sha256()
            for rel in sorted(outputs):
                size, mtime, ctime, inode = outputs[rel] or (0, 0, 0, 0)
                stats.update(b"%d %d %d %d\n" % (size, mtime, ctime, inode))
            lock_st = os.stat(self.out / LOCK_NAME)
            record = {
                "version": _VERSION,
                "identity": identity,
                "dirs": dirs,
                "lock": list(stat_key(lock_st)),
                "outputs": "\n".join(sorted(outputs)),
                "outputs_digest": stats.hexdigest(),
                "sops": "\n".join(source for source, _ in ordered),
                "sops_digest": digest.hexdigest(),
                "notes": notes,
                "errors": errors,
                "warnings": warnings,
                "input_errors": input_errors,
            }
            data = json.dumps(record, separators=(",", ":")).encode()
            replace_file(self.path, data, mode=0o600)
        except (OSError, ValueError):
            return  # a failure only costs the normal path next time

    def forget(self) -> None:
        """Drop the record: the next compile plans normally."""
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class NoopRunResult(RunResult):
    """A no-op run's result whose per-SOP outcomes are built from the lock only when read.

    A compile of 1,000 unchanged SOPs decides in a few milliseconds that nothing changed;
    building 1,000 outcomes with their issues would cost more than that, and a caller that only
    wants the exit code never needs them.
    """

    _expand: Callable[[], tuple[list[SopOutcome], list[str]]] | None = PrivateAttr(default=None)

    @classmethod
    def lazy(
        cls, expand: Callable[[], tuple[list[SopOutcome], list[str]]], **fields: Any
    ) -> NoopRunResult:
        """A result whose `sops` and `not_deployed` are `expand()`, called on first use."""
        result = cls.model_construct(**fields, sops=[], not_deployed=[])  # no default factories
        del result.__dict__["sops"], result.__dict__["not_deployed"]
        result._expand = expand
        return result

    def _sops(self) -> list[SopOutcome]:
        sops: list[SopOutcome] | None = self.__dict__.get("sops")
        if sops is None:
            assert self._expand is not None
            sops, not_deployed = self._expand()
            self.__dict__["sops"], self.__dict__["not_deployed"] = sops, not_deployed
        return sops

    def __getattr__(self, name: str) -> Any:
        if name in ("sops", "not_deployed"):
            self._sops()
            return self.__dict__[name]
        return super().__getattr__(name)  # type: ignore[misc]

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        """As RunResult.model_dump, with the outcomes built first."""
        self._sops()
        return super().model_dump(**kwargs)

    def model_dump_json(self, **kwargs: Any) -> str:
        """As RunResult.model_dump_json, with the outcomes built first."""
        self._sops()
        return super().model_dump_json(**kwargs)

    def model_copy(self, **kwargs: Any) -> NoopRunResult:
        """As RunResult.model_copy, with the outcomes built first."""
        self._sops()
        return super().model_copy(**kwargs)

    def __eq__(self, other: object) -> bool:
        self._sops()
        if isinstance(other, NoopRunResult):
            other._sops()
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr_args__(self) -> Any:
        self._sops()
        return super().__repr_args__()

    def __iter__(self) -> Any:
        self._sops()
        return super().__iter__()


def _stat_digest(out: Path, outputs: list[str]) -> tuple[str, int]:
    """Digest of every output's stat, and the newest mtime; OSError when one is missing."""
    digest = hashlib.sha256()
    newest = 0
    fd = os.open(out, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        stat = os.stat
        for rel in outputs:
            st = stat(rel, dir_fd=fd, follow_symlinks=False)
            digest.update(b"%d %d %d %d\n" % stat_key(st))
            newest = max(newest, st.st_mtime_ns)
    finally:
        os.close(fd)
    return digest.hexdigest(), newest


def _sop_digest(root: Path, sources: list[str], *, limit: int) -> str | None:
    """Digest of every SOP's name and content hash; None when one is over the size limit.

    Plain system calls relative to the SOP folder: this loop is most of a no-op's time.
    """
    digest = hashlib.sha256()
    sha256, fstat, read, close, open_ = hashlib.sha256, os.fstat, os.read, os.close, os.open
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    folder = open_(root, os.O_RDONLY)
    try:
        for source in sources:
            fd = open_(source, flags, dir_fd=folder)
            try:
                size = fstat(fd).st_size
                if size > limit:
                    return None
                data = read(fd, size + 1)
                while len(data) <= size:  # a short read, or a file growing as we read
                    more = read(fd, size + 1 - len(data))
                    if not more:
                        break
                    data += more
            finally:
                close(fd)
            digest.update(source.encode() + b"\0" + sha256(data).digest())
    finally:
        close(folder)
    return digest.hexdigest()


def _dir_stats(root: Path, *, exclude: Path) -> list[list[Any]] | None:
    """[relative folder, *stat] for every folder of the SOP tree; None if it holds a link."""
    dirs = _sop_dirs(root, exclude=exclude)
    if dirs is None:
        return None
    return [[rel, *stat_key(os.stat(os.path.join(root, rel)))] for rel in dirs]


def _sop_dirs(root: Path, *, exclude: Path) -> list[str] | None:
    """Every folder of the SOP tree (hidden ones aside), relative; None if any entry is a link.

    Discovery reads a subset of these folders. A folder's mtime moves whenever an entry is added,
    removed or renamed in it, so unchanged folder stats mean discovery would find the same files.
    As in discovery, the output folder is left out (each run writes in it) and a folder holding
    a `sopc.lock` is not entered (its own stat still shows the lock being removed).
    """
    skip = os.path.realpath(exclude)
    found = [""]
    pending = [""]
    while pending:
        rel = pending.pop()
        children: list[str] = []
        with os.scandir(os.path.join(root, rel)) as listing:
            for entry in listing:
                if entry.is_symlink():
                    return None  # links may point anywhere: let discovery decide every time
                if rel and entry.name == LOCK_NAME:
                    children = []
                    break
                if (
                    entry.is_dir(follow_symlinks=False)
                    and not entry.name.startswith(".")
                    and os.path.realpath(entry.path) != skip
                ):
                    children.append(f"{rel}/{entry.name}" if rel else entry.name)
        found += children
        pending += children
    return sorted(found)


def _catalog_identity(settings: Settings, root: Path) -> str | None:
    """The tool catalog file that `load_catalog` would read, by path and content hash."""
    from sop_compiler.catalog import CATALOG_NAMES

    path = settings.tools
    if path is None:
        path = next((root / name for name in CATALOG_NAMES if (root / name).is_file()), None)
        if path is None:
            return "none"
    try:
        data = path.read_bytes()
    except OSError:
        return None  # the normal path reports it
    return f"{path.resolve()}\0{hashlib.sha256(data).hexdigest()}"


@functools.cache
def _code_fingerprint() -> str:
    """The installed sopc (every file's size and mtime), Python and pydantic: fixed per process.

    A record made by other code proves nothing, even when the version number did not change.
    """
    import pydantic

    package = Path(__file__).resolve().parent.parent
    parts = [sys.version, pydantic.VERSION]
    for folder, dirnames, filenames in os.walk(package):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            st = os.stat(os.path.join(folder, name))
            parts.append(f"{os.path.relpath(os.path.join(folder, name), package)}:{st.st_size}")
            parts.append(str(st.st_mtime_ns))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
