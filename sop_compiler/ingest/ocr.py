"""Optional OCR for images and scanned pages: rapidocr (the `ocr` extra) or the tesseract binary.

Both work offline: rapidocr-onnxruntime ships its models inside the wheel, tesseract is a system
package. Neither is required; without them `ocr_image` returns None and the caller reports the
image as not read.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

__all__ = ["ocr_engine", "ocr_image"]

_TESSERACT_TIMEOUT = 120.0


def ocr_engine(engine: str = "auto") -> str | None:
    """The OCR engine `ocr_image` would use for this setting ("rapidocr", "tesseract"), or None."""
    if engine == "off":
        return None
    if engine in ("auto", "rapidocr") and _rapidocr() is not None:
        return "rapidocr"
    if engine in ("auto", "tesseract") and shutil.which("tesseract"):
        return "tesseract"
    return None


def ocr_image(data: bytes, *, engine: str = "auto") -> str | None:
    """Text read from PNG/JPEG bytes, lines top-to-bottom; None when no OCR engine is available.

    Args:
        data: the encoded image.
        engine: the `ocr` setting: "auto" (rapidocr, else tesseract), "rapidocr", "tesseract"
            or "off".
    """
    chosen = ocr_engine(engine)
    if chosen == "rapidocr":
        return _read_rapidocr(data)
    if chosen == "tesseract":
        return _read_tesseract(data)
    return None


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


def _read_rapidocr(data: bytes) -> str | None:
    engine = _rapidocr()
    if engine is None:
        return None
    try:
        result, _elapsed = engine(data)
    except Exception:
        return None
    return _lines_from_boxes(result or [])


def _lines_from_boxes(result: Sequence[Sequence[Any]]) -> str:
    """Join RapidOCR's [box, text, score] results into lines: top-to-bottom, then left-to-right."""
    words: list[tuple[float, float, float, str]] = []  # (center y, x0, height, text)
    for item in result:
        box, text = item[0], str(item[1]).strip()
        if not text:
            continue
        xs = [float(point[0]) for point in box]
        ys = [float(point[1]) for point in box]
        words.append(((min(ys) + max(ys)) / 2, min(xs), max(ys) - min(ys), text))
    words.sort()
    lines: list[list[tuple[float, float, float, str]]] = []
    for word in words:
        # same line when the centres are closer than half a box height
        if lines and abs(word[0] - lines[-1][0][0]) <= max(word[2], lines[-1][0][2]) / 2:
            lines[-1].append(word)
        else:
            lines.append([word])
    return "\n".join(" ".join(w[3] for w in sorted(line, key=lambda w: w[1])) for line in lines)


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
    text = done.stdout.decode("utf-8", errors="replace")
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line.strip())
