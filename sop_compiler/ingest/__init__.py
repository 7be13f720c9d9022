"""ingest: find SOP files and read each into a Document (the only stage that reads SOP files)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sop_compiler.config import Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest.base import SUFFIXES, Reader, Source, get_reader
from sop_compiler.models import Document

__all__ = ["Reader", "Source", "discover", "ingest", "sniff_format"]

# Files that live beside SOPs but are not SOPs.
_NOT_SOPS = {"tools.yaml", "tools.yml", "tools.json", "sopc.toml", "readme.md"}


def discover(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """SOP files under `root`, sorted; and (path, reason) for files skipped.

    Symlinks are followed only when they resolve inside `root`; loops are never entered.
    """
    root = root.resolve()
    if root.is_file():
        return [root], []
    if not root.is_dir():
        raise InputError("no such file or folder", path=root)
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    seen_dirs: set[Path] = set()
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(folder)
        real = here.resolve()
        if real in seen_dirs or not real.is_relative_to(root):
            dirnames[:] = []
            if not real.is_relative_to(root):
                skipped.append((here, "symlink points outside the SOP folder"))
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            path = here / name
            if name.startswith(".") or name.lower() in _NOT_SOPS:
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                skipped.append((path, "symlink points outside the SOP folder"))
            elif path.suffix.lower() in SUFFIXES:
                found.append(path)
            else:
                skipped.append((path, f"unsupported file type {path.suffix or '(none)'}"))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix()), skipped


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
    try:
        size = path.stat().st_size
        limit = int(settings.limits.max_file_mb * 1024 * 1024)
        if size > limit:
            raise InputError(
                f"file is {size / 1048576:.1f} MiB, "
                f"over the {settings.limits.max_file_mb:g} MiB limit",
                path=name,
                hint="raise limits.max_file_mb in sopc.toml",
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", path=name) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a file", path=name) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path=name) from None
    if not data.strip():
        raise InputError("file is empty", path=name)
    source = Source(path=path, name=name, data=data, sha256=hashlib.sha256(data).hexdigest())
    document = get_reader(sniff_format(data, path.suffix)).read(source, settings=settings)
    if not document.blocks:
        raise InputError("no readable text or images found", path=name)
    return document
