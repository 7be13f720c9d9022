"""Image reader: a .png/.jpg (a scan, a flowchart) becomes a Figure, plus the blocks OCR reads.

With an OCR engine, a scanned SOP comes out as the Figure followed by headings, numbered steps and
paragraphs, so that segment and the compilers can work on it like on any other SOP.
"""

from __future__ import annotations

import importlib
import struct
from typing import Any

from sop_compiler.config import Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest.base import Reader, Source
from sop_compiler.ingest.ocr import ocr_read, structure_lines, to_model_blocks
from sop_compiler.models import Document, Figure, Heading, Notice, Provenance

__all__ = ["ImageReader", "check_pixels", "image_size", "ocr_hint"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageReader(Reader):
    """Reads a PNG or JPEG file into a Figure and, with OCR, the structure of its text."""

    format = "image"
    suffixes = (".png", ".jpg", ".jpeg")

    def read(self, source: Source, *, settings: Settings) -> Document:
        """The Figure with the image bytes first, then the blocks OCR read from it, if any."""
        size = image_size(source.data)
        if size is None:
            raise InputError("not a valid PNG/JPEG image", path=source.name)
        mime, width, height = size
        # before any decoding: a few KB of PNG can declare a 30000x30000 canvas (gigabytes)
        check_pixels(width, height, settings=settings, path=source.name)
        if not _complete(source.data) or not _decodes(source.data):
            raise InputError("not a valid PNG/JPEG image", path=source.name)
        document = Document(
            source=source.name, format=self.format, sha256=source.sha256, page_count=1
        )
        ref = document.add_image(source.data, mime, width, height)
        result = ocr_read(source.data, engine=settings.ocr)
        prov = Provenance(file=source.name, page=1)
        text = result.text if result is not None else ""
        figure = Figure(id="b1", prov=prov, image=ref, text=text or None, read=result is not None)
        document.blocks.append(figure)
        if result is None:
            message = f"{source.name} was not read: {ocr_hint(settings)}"
            document.notices.append(Notice(code="figure_unread", message=message, prov=prov))
            return document
        # page 1 of 1, as for a scanned PDF page: `clean` then finds the page number and furniture
        blocks = structure_lines(result.lines)
        for block in to_model_blocks(blocks, file=source.name, page=1, headings=[]):
            block.id = f"b{len(document.blocks) + 1}"
            document.blocks.append(block)
        document.title = _title(document)
        message = (
            f"text read by OCR ({result.engine}): check it against the image"
            if result.lines
            else f"OCR ({result.engine}) found no text in the image"
        )
        document.notices.append(Notice(code="ocr", message=message, prov=prov))
        return document


def _title(document: Document) -> str | None:
    """The first top-level heading OCR found (or the first heading of any level)."""
    headings = [b for b in document.blocks if isinstance(b, Heading)]
    top = min((h.level for h in headings), default=None)
    return next((h.text for h in headings if h.level == top), None)


def ocr_hint(settings: Settings) -> str:
    """Why an image was kept without its text, and how to get it read."""
    if settings.ocr == "off":
        return "OCR is off (setting `ocr`)"
    return "install the `ocr` extra (rapidocr-onnxruntime) or tesseract"


def check_pixels(width: int, height: int, *, settings: Settings, path: str) -> None:
    """Refuse an image larger than `limits.max_image_pixels`, from its header alone."""
    limit = settings.limits.max_image_pixels
    if width * height > limit:
        raise InputError(
            f"image is {width}x{height} pixels ({width * height:,}), more than the limit of "
            f"{limit:,} (setting `limits.max_image_pixels`; possible decompression bomb)",
            path=path,
            hint="raise `limits.max_image_pixels` in sopc.toml if this image is genuine",
        )


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
