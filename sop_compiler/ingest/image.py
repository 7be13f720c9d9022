"""Image reader: a .png/.jpg (a scan, a flowchart) becomes one Figure, read by OCR if available."""

from __future__ import annotations

import importlib
import struct
from typing import Any

from sop_compiler.config import Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest.base import Reader, Source
from sop_compiler.ingest.ocr import ocr_image
from sop_compiler.models import Document, Figure, Notice, Provenance

__all__ = ["ImageReader", "image_size", "ocr_hint"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageReader(Reader):
    """Reads a PNG or JPEG file into a Document holding one Figure."""

    format = "image"
    suffixes = (".png", ".jpg", ".jpeg")

    def read(self, source: Source, *, settings: Settings) -> Document:
        """One Figure with the image bytes; its text comes from OCR when an engine is available."""
        size = image_size(source.data)
        if size is None or not _complete(source.data) or not _decodes(source.data):
            raise InputError("not a valid PNG/JPEG image", path=source.name)
        mime, width, height = size
        document = Document(
            source=source.name, format=self.format, sha256=source.sha256, page_count=1
        )
        ref = document.add_image(source.data, mime, width, height)
        text = ocr_image(source.data, engine=settings.ocr)
        prov = Provenance(file=source.name, page=1)
        document.blocks.append(
            Figure(id="b1", prov=prov, image=ref, text=text or None, read=text is not None)
        )
        if text is None:
            document.notices.append(
                Notice(
                    code="figure_unread",
                    message=f"{source.name} was not read: {ocr_hint(settings)}",
                    prov=prov,
                )
            )
        return document


def ocr_hint(settings: Settings) -> str:
    """Why an image was kept without its text, and how to get it read."""
    if settings.ocr == "off":
        return "OCR is off (setting `ocr`)"
    return "install the `ocr` extra (rapidocr-onnxruntime) or tesseract"


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """(mime, width, height) from a PNG or JPEG header, or None if the bytes are neither."""
    if data.startswith(_PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", data[16:24])
        return ("image/png", width, height) if width and height else None
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[str, int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return ("image/jpeg", width, height) if width and height else None
        pos += 2 + length
    return None


def _complete(data: bytes) -> bool:
    """The end marker is present: decoders quietly pad a cut-off image with blank pixels."""
    if data.startswith(_PNG_MAGIC):
        return data.rfind(b"IEND") > 8
    return data.rfind(b"\xff\xd9") > 2


def _decodes(data: bytes) -> bool:
    """True when pymupdf can decode the whole image (a header alone can hide a truncated body)."""
    pymupdf: Any = importlib.import_module("pymupdf")
    display = pymupdf.TOOLS.mupdf_display_errors()
    pymupdf.TOOLS.mupdf_display_errors(False)
    try:
        pixmap = pymupdf.Pixmap(data)
    except Exception:
        return False
    finally:
        pymupdf.TOOLS.mupdf_display_errors(display)
    return bool(pixmap.width and pixmap.height)
