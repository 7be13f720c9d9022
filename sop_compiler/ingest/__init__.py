"""ingest: find SOP files and read each into a Document (the only stage that reads SOP files)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from sop_compiler.config import Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest.base import SUFFIXES, Reader, Source, get_reader
from sop_compiler.models import Document, Notice

__all__ = [
    "Reader",
    "Source",
    "discover",
    "discover_sources",
    "has_sop_files",
    "ingest",
    "sniff_format",
]

# Files that live beside SOPs but are not SOPs.
_NOT_SOPS = {"tools.yaml", "tools.yml", "tools.json", "sopc.toml", "readme.md"}
# A folder holding this file is sopc's output folder (lock.LOCK_NAME), never SOPs.
_OUTPUT_MARK = "sopc.lock"


def _is_yaml(name: str) -> bool:
    """YAML beside SOPs is a tool catalog or an eval scenario (`scenarios/`), never an SOP."""
    return name.lower().endswith((".yaml", ".yml"))


def discover(
    root: Path, *, exclude: Path | None = None
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """SOP files under `root`, sorted; and (path, reason) for files skipped.

    Symlinks are followed only when they resolve inside `root`; loops are never entered. Output
    folders are passed over: `exclude` and any sub-folder holding a `sopc.lock`.
    """
    found, skipped = discover_sources(root, exclude=exclude)
    return [path for path, _ in found], skipped


def has_sop_files(root: Path, *, exclude: Path | None = None) -> bool:
    """Whether `discover` would find an SOP file in a folder; stops at the first one."""
    root = root.resolve()
    walk = _Walk(str(root), first_only=True)
    if exclude is not None and exclude.resolve() != root:
        walk.seen.add(str(exclude.resolve()))
    walk.folder(root, str(root), "")
    return bool(walk.found)


def discover_sources(
    root: Path, *, exclude: Path | None = None
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Like `discover`, with each file's name as `ingest` gives it (its real path, relative).

    One `os.scandir` per folder and no per-file system call for regular files: deciding that
    nothing changed in a big SOP folder should cost little more than reading the files.
    """
    root = root.resolve()
    if root.is_file():
        return [(root, root.name)], []
    if not root.is_dir():
        raise InputError("no such file or folder", path=root)
    walk = _Walk(str(root))
    if exclude is not None and exclude.resolve() != root:
        # Marked as seen: the walk never enters the output folder, even before its first lock.
        walk.seen.add(str(exclude.resolve()))
    walk.folder(root, str(root), "")
    found = sorted(walk.found, key=lambda item: item[1])
    return [(path, source) for path, _, source in found], walk.skipped


class _Walk:
    """Depth-first, sorted, like `os.walk(followlinks=True)`, keeping relative names as it goes."""

    def __init__(self, root: str, *, first_only: bool = False) -> None:
        self.root = root
        self.first_only = first_only  # stop at the first SOP file found
        self.prefix = root.rstrip(os.sep) + os.sep
        self.seen: set[str] = set()
        # (path, path relative to root as listed, real path relative to root)
        self.found: list[tuple[Path, str, str]] = []
        self.skipped: list[tuple[Path, str]] = []

    def _inside(self, real: str) -> str | None:
        """`real` relative to the root with / separators, or None when outside it."""
        if real == self.root:
            return ""
        if not real.startswith(self.prefix):
            return None
        return real[len(self.prefix) :].replace(os.sep, "/")

    def folder(self, here: Path, real: str, listed: str) -> None:
        if self.first_only and self.found:
            return
        real_rel = self._inside(real)
        if real in self.seen or real_rel is None:
            if real_rel is None:
                self.skipped.append((here, "symlink points outside the SOP folder"))
            return
        self.seen.add(real)
        try:
            with os.scandir(here) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            return  # like os.walk: an unreadable folder is passed over
        if real_rel and any(entry.name == _OUTPUT_MARK for entry in entries):
            return  # an output folder inside the SOP folder: its Markdown is sopc's own
        folders: list[tuple[str, bool]] = []
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not name.startswith((".", "_")):
                    folders.append((name, entry.is_symlink()))
                continue
            if name.startswith(".") or name.lower() in _NOT_SOPS or _is_yaml(name):
                continue
            path = here / name
            # d_type: no system call for plain files. Links are checked when read (loops and
            # dangling links are then named as unreadable, and a link to a FIFO is refused).
            if not entry.is_symlink() and not entry.is_file(follow_symlinks=False):
                self.skipped.append((path, "not a regular file (a pipe, device or socket)"))
                continue
            if entry.is_symlink():
                source = self._inside(os.path.realpath(entry.path))
                if source is None:
                    self.skipped.append((path, "symlink points outside the SOP folder"))
                    continue
            else:
                source = f"{real_rel}/{name}" if real_rel else name
            dot = name.rfind(".")
            suffix = name[dot:] if 0 < dot < len(name) - 1 else ""  # as Path.suffix
            if suffix.lower() in SUFFIXES:
                self.found.append((path, f"{listed}/{name}" if listed else name, source))
                if self.first_only:
                    return
            else:
                self.skipped.append((path, f"unsupported file type {suffix or '(none)'}"))
        for name, is_link in folders:
            target = os.path.join(real, name)
            if is_link:
                target = os.path.realpath(target)
            self.folder(here / name, target, f"{listed}/{name}" if listed else name)


def sniff_format(data: bytes, suffix: str) -> str:
    """The format the bytes really are, trusting content over a suffix that may lie."""
    claimed = SUFFIXES.get(suffix.lower())
    head = data[:2048]
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff"):
        return "image"
    if head.startswith(b"PK\x03\x04"):
        return "docx"
    if claimed in {"pdf", "docx", "image"}:
        return claimed  # wrong magic: the reader reports the file as corrupt
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if claimed == "text" and lowered.startswith((b"<!doctype html", b"<html")):
        return "html"
    return claimed or "text"


def ingest(path: Path, *, root: Path | None = None, settings: Settings | None = None) -> Document:
    """Read one SOP file into a Document; raise InputError naming the file and the problem."""
    settings = settings or Settings()
    root = (root or path.parent).resolve()
    try:
        name = path.resolve().relative_to(root).as_posix()
    except ValueError:
        name = path.name
    if path.suffix.lower() not in SUFFIXES:
        known = ", ".join(sorted(SUFFIXES))
        raise InputError(
            f"unsupported file type {path.suffix or '(none)'} (supported: {known})", path=name
        )
    limit = int(settings.limits.max_file_mb * 1024 * 1024)
    try:
        data = _read_regular_file(path, limit=limit, name=name)
        if len(data) > limit:
            size = max(path.stat().st_size, len(data))  # a regular file: st_size is its size
            raise InputError(
                f"file is {size / 1048576:.1f} MiB, "
                f"over the {settings.limits.max_file_mb:g} MiB limit (limits.max_file_mb)",
                path=name,
                hint="raise limits.max_file_mb in sopc.toml",
            )
    except FileNotFoundError:
        raise InputError("no such file", path=name) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a file", path=name) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path=name) from None
    if not data.strip():
        raise InputError("file is empty", path=name)
    source = Source(path=path, name=name, data=data, sha256=hashlib.sha256(data).hexdigest())
    fmt = sniff_format(data, path.suffix)
    del data  # the source holds the bytes, and a text reader lets them go once decoded
    try:
        document = get_reader(fmt).read(source, settings=settings)
    except RecursionError:
        # A reader's walk follows the input's nesting; no input may end the run for that.
        raise InputError("structure nests too deeply to read", path=name) from None
    if not document.blocks:
        raise InputError("no readable text or images found", path=name)
    if fmt != SUFFIXES[path.suffix.lower()]:
        message = f"named {path.suffix} but the content is {fmt}; read as {fmt}"
        document.notices.insert(0, Notice(code="format_mismatch", message=message))
    return document


def _read_regular_file(path: Path, *, limit: int, name: str) -> bytes:
    """At most `limit + 1` bytes of a regular file; FIFOs, devices and sockets are refused.

    The file is opened non-blocking and checked with fstat on the open descriptor, so a FIFO
    named `x.md` neither hangs the run nor passes a check made before it was swapped in, and the
    read is bounded by the limit, not by `st_size` (a character device reports 0).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "is a directory")
        if not stat.S_ISREG(mode):
            raise InputError(f"not a regular file ({_kind(mode)}); not read", path=name)
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"
