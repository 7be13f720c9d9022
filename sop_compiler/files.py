"""Small file helpers every stage shares: atomic replacement, and the templates sopc ships."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path


def _templates_folder() -> Path:
    """Where `sop_compiler.templates` is: inside the installed package, the repository's
    top-level templates/ in an editable install (setup.py maps one onto the other), or beside
    the package in a source checkout run without installing."""
    spec = importlib.util.find_spec("sop_compiler.templates")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    checkout = Path(__file__).resolve().parent.parent / "templates"
    if checkout.is_dir():
        return checkout
    raise ImportError("sop_compiler.templates is missing: reinstall sop-compiler")


TEMPLATES = _templates_folder()


def replace_file(
    path: Path, data: bytes, *, mode: int | None = None, durable: bool = False
) -> None:
    """Replace `path` with `data` through a temp file and a rename: no reader sees half a file.

    `mode` defaults to the existing file's (0o644 for a new one). `durable` also flushes the
    bytes and the folder entry to disk. Raises OSError; callers say what the file was for.
    """
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = 0o644
    for attempt in range(3):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            break
        except FileNotFoundError:
            # A concurrent prune removed the folder, empty for an instant, in between; once the
            # temp file is in it, it is no longer empty and stays.
            if attempt == 2:
                raise
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if durable:
        with contextlib.suppress(OSError):
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)


@functools.cache  # the shipped templates do not change while sopc runs
def templates_sha(*, under: str | None = None) -> str:
    """Hash of the templates shipped with sopc (all, or one sub-folder such as `prompts`)."""
    root = TEMPLATES / under if under else TEMPLATES
    digest = hashlib.sha256()
    # The template files alone: not the package marker (nor bytecode), whatever the install.
    files = (p for p in root.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc"))
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode())
    return digest.hexdigest()
