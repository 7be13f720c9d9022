"""Writing outputs: atomic, only when content changed, never outside the output folder."""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from sop_compiler.errors import OutputError
from sop_compiler.files import replace_file

__all__ = ["check_relative", "remove_stale_temps", "sync_outputs", "write_outputs"]

# The temp names of files.replace_file (mkstemp: prefix ".<name>.", 8 random characters, ".tmp").
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def check_relative(relative: str) -> PurePosixPath:
    """The path as a relative POSIX path that stays inside its folder, or an OutputError."""
    if not relative or any(ord(char) < 32 or 0x7F <= ord(char) < 0xA0 for char in relative):
        raise OutputError("output path is empty or holds control characters", path=repr(relative))
    path = PurePosixPath(relative)
    if (
        "\\" in relative
        or path.is_absolute()
        or (len(relative) > 1 and relative[1] == ":")
        or any(part in {"", ".", ".."} for part in relative.split("/"))
    ):
        raise OutputError("output path must stay inside the output folder", path=relative)
    return path


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno in {errno.EACCES, errno.EPERM, errno.EROFS}:
        return "permission denied (is the output folder read-only?)"
    return exc.strerror or str(exc)


def _inside(root: Path, target: Path) -> None:
    """Refuse a target whose real folder is outside the output folder (a symlinked folder)."""
    folder = target.parent
    while not folder.exists() and folder != root:
        folder = folder.parent
    if not folder.resolve().is_relative_to(root):
        raise OutputError("output path leaves the output folder through a symlink", path=target)


def _write_atomic(target: Path, data: bytes) -> None:
    # Temp file + rename: a crash (or a full disk) never leaves a half-written output, whatever
    # the moment. There is no fsync per file (it cost ~2.5 ms each and held up a compile of many
    # routines); `sync_outputs` flushes a run's folders once at the end instead. So a power loss
    # may lose the routines written in the last seconds, or leave such a file empty: sopc.lock
    # records every output's hash, and the next compile rewrites any file that does not match.
    replace_file(target, data)


def _prune(root: Path, folder: Path) -> None:
    """Remove folders left empty by a removal, up to (not including) the output folder."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _provably_ours(target: Path, recorded: str) -> bool:
    """True when `target` is a regular file whose bytes hash to what sopc recorded writing."""
    if target.is_symlink() or not target.is_file():
        return False
    digest = hashlib.sha256()
    with target.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == recorded


def write_outputs(
    out: Path,
    files: dict[str, bytes],
    *,
    remove: Mapping[str, str] | None = None,
    protect: Iterable[str] = (),
    kept: list[str] | None = None,
) -> list[str]:
    """Write changed files atomically and remove stale ones; return the changed relative paths.

    A file whose bytes are already on disk is not rewritten, so a no-op run changes nothing.
    `remove` maps each stale path to the sha256 sopc recorded writing: a file is removed only if
    its bytes still hash to that (sopc can prove it wrote it), and never a file named in
    `protect` (the implementation module); every other one is left alone and added to `kept`.
    Every path must stay inside `out`; any failure is an OutputError naming the path.
    """
    remove = remove or {}
    protected = {name.casefold() for name in protect}
    checked = {relative: check_relative(relative) for relative in files}
    folded: dict[str, str] = {}
    for relative in sorted(files):
        other = folded.setdefault(relative.casefold(), relative)
        if other != relative:
            raise OutputError(f"two outputs differ only in case: {other}", path=relative)
    stale = [r for r in sorted(remove) if r not in files]
    for relative in stale:
        check_relative(relative)
    changed: list[str] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        root = out.resolve()
    except OSError as exc:
        raise OutputError(f"cannot create the output folder: {_reason(exc)}", path=out) from None
    for relative in sorted(files):
        target = root.joinpath(*checked[relative].parts)
        data = files[relative]
        try:
            if target.is_dir():
                raise OutputError("a folder is in the way of an output file", path=target)
            if target.is_file() and not target.is_symlink() and target.read_bytes() == data:
                continue
            _inside(root, target)
            _write_atomic(target, data)
        except OSError as exc:
            raise OutputError(
                f"cannot write {relative}: {_reason(exc)}", path=out / relative
            ) from None
        changed.append(relative)
    for relative in stale:
        target = root.joinpath(*PurePosixPath(relative).parts)
        try:
            if not (target.is_file() or target.is_symlink()):
                continue
            _inside(root, target)
            if target.name.casefold() in protected or not _provably_ours(target, remove[relative]):
                if kept is not None:
                    kept.append(relative)
                continue
            target.unlink()
        except OSError as exc:
            raise OutputError(
                f"cannot remove {relative}: {_reason(exc)}", path=out / relative
            ) from None
        changed.append(relative)
        _prune(root, target.parent)
    return sorted(changed)


def sync_outputs(out: Path, changed: Iterable[str]) -> None:
    """Flush the folders of files written or removed to disk: one fsync per folder, at the end.

    On the usual journalling file systems (ext4 in its default ordered mode, APFS, NTFS) committing
    a folder's entries also commits the data of the files renamed into it.
    """
    folders = {out} | {out.joinpath(*PurePosixPath(rel).parent.parts) for rel in changed}
    for folder in sorted(folders):
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            continue  # removed (pruned) or never created
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems cannot fsync a folder
        finally:
            os.close(fd)


def remove_stale_temps(out: Path) -> list[str]:
    """Remove temp files a killed run left in `out` (only sopc's own temp names); return them.

    Called under the run lock, so no other compile is writing: any such file is left over.
    """
    removed: list[str] = []
    if not out.is_dir() or out.is_symlink():
        return removed
    for folder, dirnames, filenames in os.walk(out):
        dirnames[:] = sorted(d for d in dirnames if not Path(folder, d).is_symlink())
        for name in sorted(filenames):
            path = Path(folder, name)
            if _TEMP_NAME.match(name) and path.is_file() and not path.is_symlink():
                try:
                    path.unlink()
                except OSError:
                    continue
                removed.append(path.relative_to(out).as_posix())
    return removed
