"""Output file states, with a stat cache that lets a no-op compile skip re-hashing its outputs.

`sopc.lock` records what every output should hash to. Re-hashing all of them on every compile is
what made a no-op run slow, so a compile remembers, per output, the `(size, mtime_ns, ctime_ns,
inode)` it saw together with the hash it verified, and trusts an unchanged stat next time (as git's
index does). The cache lives in the (git-ignored) response cache folder, never in `sopc.lock`,
which must stay byte-stable. `--check` never uses it: it is the hand-edit detector and hashes.

A file whose mtime is not older than the cache file itself is "racily clean" (an edit in the same
timestamp tick would not show in its stat), so it is hashed again, as git does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from sop_compiler.files import replace_file
from sop_compiler.lock._file import FileState

_VERSION = 1
Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def stat_key(st: os.stat_result) -> Stat:
    """What says a file is unchanged since it was hashed: size, times and inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class FileStates:
    """Whether output files hold their recorded hashes; with a cache file, trusting stats."""

    def __init__(self, out: Path, *, cache_file: Path | None = None) -> None:
        self.out = out
        self._base = str(out)
        self._cache_file = cache_file
        self._owner = str(out.resolve()) if cache_file is not None else ""
        self._records: dict[str, tuple[Stat, str]] = {}
        self._loaded: dict[str, tuple[Stat, str]] = {}
        self._pending = cache_file is not None  # loaded on first use: a fast no-op never needs it

    def _ensure_loaded(self) -> None:
        if self._pending and self._cache_file is not None:
            self._pending = False
            self._records = self._load(self._cache_file)
            self._loaded = dict(self._records)

    @classmethod
    def for_compile(cls, out: Path, *, cache_dir: Path | None) -> FileStates:
        """States trusting the stat cache kept under `cache_dir` (None: always hash)."""
        if cache_dir is None:
            return cls(out)
        name = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:32]
        return cls(out, cache_file=cache_dir / "stat" / f"{name}.json")

    @property
    def cache_file(self) -> Path | None:
        """Where the stat cache is kept (None: no cache, every output is hashed)."""
        return self._cache_file

    def state(self, relpath: str, sha256: str) -> FileState:
        """`ok` when the file holds `sha256`, else `missing` or `edited`."""
        self._ensure_loaded()
        path = os.path.join(self._base, relpath)
        record = self._records.get(relpath)
        if record is not None and record[1] == sha256:
            try:
                if stat_key(os.stat(path)) == record[0]:
                    return "ok"
            except OSError:
                pass
        self._records.pop(relpath, None)
        try:
            with open(path, "rb") as handle:
                # The stat taken before reading describes the bytes hashed: a later edit moves it.
                st = os.fstat(handle.fileno())
                digest = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            return "missing"
        if digest != sha256:
            return "edited"
        if self._cache_file is not None:
            self._records[relpath] = (stat_key(st), sha256)
        return "ok"

    def verified(self, relpath: str, sha256: str) -> Stat | None:
        """The stat under which this run found `relpath` holding `sha256` (None: not verified)."""
        self._ensure_loaded()
        record = self._records.get(relpath)
        return record[0] if record is not None and record[1] == sha256 else None

    def written(self, relpath: str, sha256: str) -> None:
        """Remember a file this run has just written with `sha256`."""
        if self._cache_file is None:
            return
        self._ensure_loaded()
        try:
            self._records[relpath] = (stat_key(os.stat(os.path.join(self._base, relpath))), sha256)
        except OSError:
            self._records.pop(relpath, None)

    def removed(self, relpath: str) -> None:
        """Forget a file this run removed."""
        self._ensure_loaded()
        self._records.pop(relpath, None)

    def save(self) -> None:
        """Write the stat cache if it changed; a failure only costs re-hashing next time."""
        if self._cache_file is None or self._pending or self._records == self._loaded:
            return
        payload = {
            "version": _VERSION,
            "out": self._owner,
            "files": {rel: [*st, sha] for rel, (st, sha) in sorted(self._records.items())},
        }
        with contextlib.suppress(OSError):
            data = json.dumps(payload, separators=(",", ":")).encode()
            replace_file(self._cache_file, data, mode=0o600)
            self._loaded = dict(self._records)

    def _load(self, cache_file: Path) -> dict[str, tuple[Stat, str]]:
        try:
            with open(cache_file, "rb") as handle:
                written_at = os.fstat(handle.fileno()).st_mtime_ns
                payload = json.loads(handle.read())
            if payload.get("version") != _VERSION or payload.get("out") != self._owner:
                return {}
            records: dict[str, tuple[Stat, str]] = {}
            for rel, (size, mtime, ctime, ino, sha) in payload["files"].items():
                if mtime < written_at:  # else racily clean: hash it again
                    records[rel] = ((size, mtime, ctime, ino), sha)
            return records
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}
