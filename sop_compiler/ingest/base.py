"""The Reader interface and the registry of readers by format."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from sop_compiler.config import Settings
from sop_compiler.errors import InputError
from sop_compiler.models import Document


@dataclass(frozen=True)
class Source:
    """A file to read: its path on disk, its name relative to the SOP folder, and its bytes."""

    path: Path
    name: str  # relative to the SOP folder, with / separators; what provenance shows
    data: bytes
    sha256: str

    def release(self) -> None:
        """Let the bytes go: a text reader holds the decoded text, and a big file not twice."""
        object.__setattr__(self, "data", b"")  # frozen for everything else


class Reader(ABC):
    """Reads one format into a Document. Readers never clean or segment."""

    format: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]

    @abstractmethod
    def read(self, source: Source, *, settings: Settings) -> Document:
        """Parse `source` into blocks in reading order, or raise InputError naming what is wrong."""


# format -> "module:Class"; modules are imported on first use so that pymupdf loads only for PDFs.
_READERS: dict[str, str] = {
    "pdf": "sop_compiler.ingest.pdf:PdfReader",
    "docx": "sop_compiler.ingest.docx:DocxReader",
    "markdown": "sop_compiler.ingest.markdown:MarkdownReader",
    "text": "sop_compiler.ingest.text:TextReader",
    "html": "sop_compiler.ingest.html:HtmlReader",
    "image": "sop_compiler.ingest.image:ImageReader",
    "dot": "sop_compiler.ingest.dot:DotReader",
}

SUFFIXES: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".dot": "dot",
    ".gv": "dot",
}


def get_reader(fmt: str) -> Reader:
    """The reader for a format name; the error lists the known ones."""
    try:
        target = _READERS[fmt]
    except KeyError:
        known = ", ".join(sorted(_READERS))
        raise InputError(f"unknown format {fmt!r} (known: {known})") from None
    module, _, cls = target.partition(":")
    reader: Reader = getattr(importlib.import_module(module), cls)()
    return reader
