"""Optional OCR for images and scanned pages: rapidocr (the `ocr` extra) or the tesseract binary.

Both work offline: rapidocr-onnxruntime ships its models inside the wheel, tesseract is a system
package. Neither is required; without them `ocr_read` returns None and the caller reports the
image as not read. What OCR reads is laid out as lines (`_ocr_layout`) and structured into blocks
(`_ocr_structure`), so that a scanned SOP becomes headings, numbered steps and paragraphs.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from sop_compiler.ingest._ocr_layout import OcrLine, layout_boxes, layout_text
from sop_compiler.ingest._ocr_structure import OcrBlock, structure_lines, to_model_blocks

__all__ = [
    "OcrBlock",
    "OcrLine",
    "OcrResult",
    "layout_boxes",
    "layout_text",
    "ocr_engine",
    "ocr_identity",
    "ocr_image",
    "ocr_read",
    "structure_lines",
    "to_model_blocks",
]

_TESSERACT_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class OcrResult:
    """What an OCR engine read from one image: its lines in reading order."""

    engine: str  # "rapidocr" | "tesseract"
    lines: tuple[OcrLine, ...]

    @property
    def text(self) -> str:
        """The lines joined with newlines (empty when nothing was read)."""
        return "\n".join(line.text for line in self.lines)


def ocr_engine(engine: str = "auto") -> str | None:
    """The OCR engine `ocr_read` would use for this setting ("rapidocr", "tesseract"), or None."""
    if engine == "off":
        return None
    if engine in ("auto", "rapidocr") and _rapidocr() is not None:
        return "rapidocr"
    if engine in ("auto", "tesseract") and shutil.which("tesseract"):
        return "tesseract"
    return None


def ocr_identity(engine: str = "auto") -> str:
    """The engine and version `ocr_read` would use ("tesseract 5.3.0", "none"), told cheaply.

    What a scanned page's text depends on: sopc.lock records it for SOPs that hold one, so a
    machine with another engine (or none) reads them again instead of calling them current.
    """
    if engine == "off":
        return "none"
    if engine in ("auto", "rapidocr"):
        import importlib.metadata

        try:
            return f"rapidocr {importlib.metadata.version('rapidocr-onnxruntime')}"
        except importlib.metadata.PackageNotFoundError:
            pass
    if engine in ("auto", "tesseract") and shutil.which("tesseract"):
        return f"tesseract {_tesseract_version()}"
    return "none"


@functools.lru_cache(maxsize=1)
def _tesseract_version() -> str:
    binary = shutil.which("tesseract")
    try:
        done = subprocess.run(
            [binary or "tesseract", "--version"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    first = (done.stdout or done.stderr).decode("utf-8", errors="replace").split("\n")[0]
    return first.removeprefix("tesseract").strip() or "unknown"


def ocr_read(data: bytes, *, engine: str = "auto") -> OcrResult | None:
    """Lines read from PNG/JPEG bytes; None when no engine is available or the engine failed.

    Args:
        data: the encoded image.
        engine: the `ocr` setting: "auto" (rapidocr, else tesseract), "rapidocr", "tesseract"
            or "off".
    """
    chosen = ocr_engine(engine)
    if chosen == "rapidocr":
        boxes = _read_rapidocr(data)
        return None if boxes is None else OcrResult("rapidocr", tuple(layout_boxes(boxes)))
    if chosen == "tesseract":
        text = _read_tesseract(data)
        return None if text is None else OcrResult("tesseract", tuple(layout_text(text)))
    return None


def ocr_image(data: bytes, *, engine: str = "auto") -> str | None:
    """Text read from PNG/JPEG bytes, lines top-to-bottom; None when no OCR engine is available."""
    result = ocr_read(data, engine=engine)
    return None if result is None else result.text


@functools.lru_cache(maxsize=1)
def _rapidocr() -> Any | None:
    """One RapidOCR instance per process: loading its models takes about a second."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return None
    try:
        return RapidOCR()
    except Exception:  # a broken install (missing onnxruntime libs) means: no OCR
        return None


def _read_rapidocr(data: bytes) -> list[Any] | None:
    engine = _rapidocr()
    if engine is None:
        return None
    try:
        result, _elapsed = engine(data)
    except Exception:
        return None
    return list(result or [])


def _read_tesseract(data: bytes) -> str | None:
    binary = shutil.which("tesseract")
    if binary is None:
        return None
    try:
        done = subprocess.run(
            [binary, "stdin", "stdout"],
            input=data,
            capture_output=True,
            timeout=_TESSERACT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")
