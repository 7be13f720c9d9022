"""Opening a .docx safely: zip and zip-bomb checks before anything is inflated."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any

from sop_compiler.config import Limits
from sop_compiler.errors import InputError
from sop_compiler.ingest.base import Source

_MIB = 1024 * 1024
_HYPERLINK = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink"
_MAIN_TYPES = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        "application/vnd.ms-word.document.macroEnabled.main+xml",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
        "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
    }
)


@dataclass(frozen=True)
class PackageFacts:
    """What the zip listing says about a .docx, known before any member is read."""

    macros: bool
    embedded_objects: int


def check_package(source: Source, limits: Limits) -> PackageFacts:
    """Reject what is not a zip, is a zip bomb, or has no main document; from the listing only."""
    buffer = io.BytesIO(source.data)
    if not zipfile.is_zipfile(buffer):
        raise InputError("is not a valid .docx (not a zip archive)", path=source.name)
    try:
        with zipfile.ZipFile(buffer) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        message = f"is not a valid .docx: corrupt zip archive ({exc})"
        raise InputError(message, path=source.name) from None
    total = sum(info.file_size for info in infos)
    if total > limits.max_unzipped_mb * _MIB:
        raise InputError(
            f"unzips to {total / _MIB:.0f} MiB, over the {limits.max_unzipped_mb:g} MiB limit "
            "(limits.max_unzipped_mb; possible zip bomb)",
            path=source.name,
            hint="raise limits.max_unzipped_mb in sopc.toml if this file is genuine",
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _MIB and ratio > limits.max_zip_ratio:
            raise InputError(
                f"member {info.filename!r} expands {ratio:.0f}x, over the "
                f"{limits.max_zip_ratio:g}x limit (limits.max_zip_ratio; possible zip bomb)",
                path=source.name,
                hint="raise limits.max_zip_ratio in sopc.toml if this file is genuine",
            )
    names = [info.filename for info in infos]
    lowered = [name.lower() for name in names]
    if not any(n.startswith("word/document") and n.endswith(".xml") for n in lowered):
        raise InputError("is not a valid .docx (no word/document.xml)", path=source.name)
    return PackageFacts(
        macros=any(n.endswith("vbaproject.bin") for n in lowered),
        embedded_objects=sum(
            1 for n in lowered if n.startswith(("word/embeddings/", "word/activex/"))
        ),
    )


def open_document_part(source: Source) -> Any:
    """The python-docx DocumentPart, or InputError when the package or its XML is broken."""
    from docx.package import Package

    try:
        part = Package.open(io.BytesIO(source.data)).main_document_part
    except Exception as exc:  # lxml, zipfile and python-docx raise many types on a broken file
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError(f"is not a valid .docx: {detail}", path=source.name) from None
    if part.content_type not in _MAIN_TYPES:
        raise InputError(
            f"is not a valid .docx: main part has content type {part.content_type!r}",
            path=source.name,
        )
    return part


def external_targets(package: Any) -> list[str]:
    """Relationship types that point outside the file (never fetched), hyperlinks aside."""
    kinds: set[str] = set()
    for part in [package, *package.iter_parts()]:
        for rel in part.rels.values():
            if rel.is_external and rel.reltype != _HYPERLINK:
                kinds.add(rel.reltype.rsplit("/", 1)[-1])
    return sorted(kinds)
