"""One error root, named by who is at fault, mapped to exit codes in one place."""

from __future__ import annotations

import re
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Process exit codes (documented in the README)."""

    OK = 0
    FAILED = 1  # validation errors remain, or `--check` found stale outputs
    USAGE = 2  # bad command line or configuration
    PARTIAL = 3  # some procedures could not be generated
    INPUT = 4  # an SOP file could not be read
    OUTPUT = 5  # the output folder could not be written
    INTERRUPTED = 130


class SopcError(Exception):
    """Root of every error sopc reports; printed as one line, never as a traceback."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(
        self, message: str, *, path: str | Path | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InputError(SopcError):
    """An SOP file is missing, unreadable, unsupported, or hostile."""

    exit_code = ExitCode.INPUT


class ConfigError(SopcError):
    """Settings, the command line, the tool catalog, or a missing key."""

    exit_code = ExitCode.USAGE


class GenerationError(SopcError):
    """The model (or its server) failed to produce a valid routine."""

    exit_code = ExitCode.PARTIAL


class OutputError(SopcError):
    """The output folder cannot be written (read-only, full, locked by another run)."""

    exit_code = ExitCode.OUTPUT


def redact_url(url: str) -> str:
    """`url` without user info, query or fragment, even when it is malformed.

    The one redaction of a base URL for every message sopc prints: `user:password@` and
    `?key=` / `api_key=` parameters may be credentials.
    """
    url = re.sub(r"^([A-Za-z][A-Za-z0-9+.\-]*://)?[^/?#]*@", r"\1", url.strip())
    return re.split(r"[?#]", url, maxsplit=1)[0]
