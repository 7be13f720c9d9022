"""The lock file on disk: its models, reading, atomic writing, and the run lock."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sop_compiler.errors import OutputError
from sop_compiler.files import replace_file
from sop_compiler.models import (
    Issue,
)

LOCK_NAME = "sopc.lock"
RUN_LOCK_NAME = ".sopc-run.lock"
LOCK_VERSION = 1
# Bumped when a sopc change alters generated output (ingest, generate, validate or emit code);
# a release that only changes the CLI keeps it, so upgrading does not regenerate every routine.
OUTPUT_VERSION = "3"
# Bumped when emit or validate code changes how a routine is rendered or reported: outputs are
# re-rendered from the routine JSON already on disk, with no model call.
RENDER_VERSION = "4"

FileState = Literal["ok", "missing", "edited"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dependencies(_Model):
    """What a generated routine's validity depends on besides its input key (see staleness.py)."""

    tools: dict[str, str] = Field(
        default_factory=dict,
        description="Catalog tools it names -> hash of each one's definition ('' = not in it).",
    )
    agents: list[str] = Field(default_factory=list, description="Agents it hands off to.")
    proposed: dict[str, str] = Field(
        default_factory=dict,
        description="Tools it proposed that no catalog tool covered -> their description.",
    )


class ProcedureEntry(_Model):
    """One procedure of one SOP: what its routine was built from and what it produced."""

    agent: str
    index: int = Field(default=0, description="Position of the procedure in its SOP.")
    base_id: str = Field(description="The id segment gave, before run-wide de-duplication.")
    title: str
    text: str = Field(description="Hash of the procedure's cleaned text, as of the last run.")
    input: str = Field(default="", description="Key the routine was generated from ('' = pending).")
    render: str = Field(default="", description="Key the outputs were rendered from.")
    depends: Dependencies = Field(default_factory=Dependencies)
    outputs: dict[str, str] = Field(default_factory=dict, description="relpath -> sha256")
    issues: list[Issue] = Field(default_factory=list)
    coverage: float | None = None


class SopEntry(_Model):
    """One SOP file."""

    sha256: str = Field(description="Hash of the file ('' when refused unread: too large).")
    key: str = Field(description="Hash of the file, the sopc version and the reading settings.")
    error: str | None = Field(default=None, description="Why the file could not be read, if so.")
    procedures: dict[str, ProcedureEntry] = Field(default_factory=dict)
    ocr: str | None = Field(
        default=None, description="OCR engine and version its scanned pages were read with."
    )


class BatchRequest(_Model):
    """One request of a submitted Batch API job: whose routine it is and what it was built from."""

    source: str = Field(description="The SOP file.")
    procedure: str = Field(description="The routine id.")
    input: str = Field(description="The procedure's input key when submitted.")
    attempt: int = Field(default=1, description="1 for the first request, 2+ for repairs.")


class PendingBatch(_Model):
    """A Batch API job submitted by `sopc compile --batch` and not yet collected."""

    requests: dict[str, BatchRequest] = Field(default_factory=dict, description="custom_id -> it")


class LockFile(_Model):
    """The whole `sopc.lock`."""

    version: int = LOCK_VERSION
    sopc: str = OUTPUT_VERSION
    backend: dict[str, Any] = Field(default_factory=dict)
    catalog: str = ""
    templates: str = ""
    settings: str = ""
    prompts: str = ""
    schema_sha: str = ""
    agents: str = ""
    tools: dict[str, str] = Field(default_factory=dict, description="Catalog tool -> its hash.")
    sops: dict[str, SopEntry] = Field(default_factory=dict)
    shared: dict[str, str] = Field(default_factory=dict, description="Network and review files.")
    shared_key: str = ""
    not_deployed: dict[str, str] = Field(
        default_factory=dict,
        description="Routines the network runs without (`<agent>/<id>` -> why), as last rendered.",
    )
    batches: dict[str, PendingBatch] = Field(
        default_factory=dict, description="Batch API jobs submitted and not yet collected."
    )

    def recorded_outputs(self) -> set[str]:
        """Every output path the lock accounts for."""
        paths = set(self.shared)
        for sop in self.sops.values():
            for proc in sop.procedures.values():
                paths.update(proc.outputs)
        return paths


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_json(value: object) -> str:
    """Hex SHA-256 of a JSON-serialisable value, independent of dict order."""
    payload = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_bytes(payload.encode())


def dump_lock(lock: LockFile) -> bytes:
    """The lock file's bytes: sorted keys, indent 2, trailing newline."""
    text = json.dumps(lock.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode()


def read_lock(out: Path) -> tuple[LockFile, str | None]:
    """The lock in `out` (empty when absent), and why it was unusable if it was."""
    path = out / LOCK_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return LockFile(), None
    except OSError as exc:
        return LockFile(), f"cannot read {LOCK_NAME}: {exc.strerror or exc}"
    try:
        lock = LockFile.model_validate_json(data)  # pydantic's parser: fast on a big lock
        if lock.version == LOCK_VERSION:
            outside = _outside_path(lock)
            if outside is not None:
                # Never acted on: a hand-edited or merged lock would make sopc write or remove
                # there. Ignored whole, as a lock in the wrong format is (everything is rebuilt).
                return LockFile(), (
                    f"{LOCK_NAME} lists the output {outside!r}, which is not a path inside the "
                    "output folder (edited by hand?): the lock is ignored"
                )
            return lock, None
    except ValidationError:
        pass
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        # Typically a merge conflict: everything is rebuilt (the response cache keeps it cheap).
        return LockFile(), f"{LOCK_NAME} is not valid JSON (a merge conflict?)"
    if not isinstance(raw, dict) or raw.get("version") != LOCK_VERSION:
        return LockFile(), f"{LOCK_NAME} has an unsupported version"
    return LockFile(), f"{LOCK_NAME} does not match the expected format"


def _outside_path(lock: LockFile) -> str | None:
    """The first output path the lock records that could leave the output folder, or None."""
    from sop_compiler.emit.write import check_relative

    for relative in sorted(lock.recorded_outputs()):
        try:
            check_relative(relative)
        except OutputError:
            return relative
    return None


def write_lock(out: Path, lock: LockFile) -> bool:
    """Atomically write the lock when its bytes changed; True when written."""
    return write_atomic(out / LOCK_NAME, dump_lock(lock))


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> bool:
    """Replace `path` with `data` atomically unless it already holds exactly that; True if written.

    `durable` also flushes the bytes and the folder entry to disk (the final lock of a run).
    """
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    try:
        replace_file(path, data, durable=durable)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path=path) from None
    return True


@contextlib.contextmanager
def run_lock(out: Path, *, timeout: float) -> Iterator[None]:
    """Hold `<out>/.sopc-run.lock`: a second compile on the folder waits, then fails clearly."""
    from filelock import FileLock, Timeout

    if out.exists() and not out.is_dir():
        raise OutputError("the output path exists and is not a folder", path=out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the output folder: {exc.strerror or exc}", path=out
        ) from None
    lock = FileLock(out / RUN_LOCK_NAME, timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise OutputError(
            f"another sopc compile is running on {out}",
            hint="wait for it to finish, then run again",
        ) from None
    except OSError as exc:
        raise OutputError(
            f"cannot lock the output folder: {exc.strerror or exc}", path=out
        ) from None
    try:
        yield
    finally:
        lock.release()
