"""OCR output -> lines: rapidocr's boxes (or tesseract's text) as lines in reading order.

rapidocr answers with one box per run of words. `layout_boxes` straightens a skewed scan, groups
boxes into lines by vertical overlap and measures each line (indentation step, white space above,
height against the page's median line, whether it runs to the right edge). `layout_text` does the
same, as far as plain text allows, for tesseract. `_ocr_structure` turns the lines into blocks.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sop_compiler.ingest.text import parse_marker

__all__ = ["BBox", "OcrLine", "layout_boxes", "layout_text"]

BBox = tuple[float, float, float, float]

# Specks that OCR reads as punctuation in front of a marker: ". a. If there is ..."
_NOISE = re.compile(r"^[.,:;·'`\"_~]+\s*(?=\S)")
# A marker glued to its text, as OCR reads a narrow space: "3.If", "2.1Check", "a.Send"
_GLUED = re.compile(r"^(?P<marker>\d{1,3}(?:\.\d{1,3})+[.)]?|\d{1,3}[.)]|[a-z][.)])(?=[A-Z(])")
_MAX_SKEW = 0.1  # tan of ~6 degrees: steeper "skew" is a rotated photo, not a crooked scan
_GAP = 0.35  # white space above a line, in median line heights, that ends a paragraph
_INDENT = 0.4  # a wider jump between line starts, in median line heights, is a new indent
_FULL = 0.2  # a line ending within this share of the text width from the right edge is full


@dataclass(frozen=True, slots=True)
class OcrLine:
    """One line of OCR text and what the structure rules need to know about its place."""

    text: str
    indent: int = 0  # indentation step from the left margin: 0 at the margin
    gap_before: bool = False  # white space or a blank line above it (a paragraph break)
    size: float = 1.0  # height relative to the page's median line height
    full: bool = False  # runs to the right edge of the text: its sentence may wrap
    bbox: BBox | None = None  # in image pixels, as on the image (not straightened)


@dataclass(frozen=True, slots=True)
class _Word:
    text: str
    x0: float  # straightened box
    y0: float
    x1: float
    y1: float
    bbox: BBox  # as on the image

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def layout_boxes(result: Sequence[Sequence[Any]]) -> list[OcrLine]:
    """Lines in reading order from rapidocr's `[box, text, score]` results (box: 4 corners)."""
    quads: list[tuple[list[tuple[float, float]], str]] = []
    for item in result:
        text = " ".join(str(item[1]).split())
        points = [(float(p[0]), float(p[1])) for p in item[0]]
        if text and len(points) >= 4:
            quads.append((points, text))
    slope = _skew([points for points, _ in quads])
    cos, sin = math.cos(math.atan(slope)), math.sin(math.atan(slope))
    words = []
    for points, text in quads:
        # The box by its edges' midpoints, rotated back by the page's skew: the corners of a
        # short box tilt more than the page does, and would make it look taller than it is.
        tl, tr, br, bl = points[:4]
        left = _rotate(((tl[0] + bl[0]) / 2, (tl[1] + bl[1]) / 2), cos, sin)
        right = _rotate(((tr[0] + br[0]) / 2, (tr[1] + br[1]) / 2), cos, sin)
        height = (math.dist(tl, bl) + math.dist(tr, br)) / 2
        middle = (left[1] + right[1]) / 2
        ox = [round(x, 1) for x, _ in points]
        oy = [round(y, 1) for _, y in points]
        words.append(
            _Word(
                text,
                round(left[0], 1),
                round(middle - height / 2, 1),
                round(right[0], 1),
                round(middle + height / 2, 1),
                (min(ox), min(oy), max(ox), max(oy)),
            )
        )
    words.sort(key=lambda w: ((w.y0 + w.y1) / 2, w.x0, w.text))
    rows: list[list[_Word]] = []
    for word in words:
        if rows and _same_row(rows[-1], word):
            rows[-1].append(word)
        else:
            rows.append([word])
    return _measure([sorted(row, key=lambda w: (w.x0, w.y0, w.text)) for row in rows])


def _skew(quads: list[list[tuple[float, float]]]) -> float:
    """The median slope of the top edges of wide boxes (0 when there are none or it is wild)."""
    slopes = []
    for points in quads:
        (ax, ay), (bx, by) = points[0], points[1]
        height = abs(points[3][1] - points[0][1])
        if bx - ax > 2 * max(height, 1.0):
            slopes.append((by - ay) / (bx - ax))
    if not slopes:
        return 0.0
    slope = round(statistics.median(slopes), 4)
    return slope if abs(slope) <= _MAX_SKEW else 0.0


def _rotate(point: tuple[float, float], cos: float, sin: float) -> tuple[float, float]:
    x, y = point
    return (x * cos + y * sin, y * cos - x * sin)


def _same_row(row: list[_Word], word: _Word) -> bool:
    top, bottom = min(w.y0 for w in row), max(w.y1 for w in row)
    overlap = min(bottom, word.y1) - max(top, word.y0)
    return overlap >= 0.5 * min(bottom - top, word.height)


def _measure(rows: list[list[_Word]]) -> list[OcrLine]:
    """Text, indentation step, gap above, relative size and fullness of each row."""
    if not rows:
        return []
    texts, x0s = [], []
    for row in rows:
        text, dropped = _normalise(" ".join(w.text for w in row))
        texts.append(text)
        x0s.append(_x0_after(row, dropped))
    tops = [min(w.y0 for w in row) for row in rows]
    bottoms = [max(w.y1 for w in row) for row in rows]
    rights = [max(w.x1 for w in row) for row in rows]
    heights = [b - t for t, b in zip(tops, bottoms, strict=True)]
    median = max(statistics.median(heights), 1.0)
    # the margin of body text: a stray speck or punched hole left of it must not shift it
    body = [x for x, text in zip(x0s, texts, strict=True) if len(text) >= 10] or x0s
    margin = min(body)
    right = max(rights)
    steps = _indent_steps([max(0.0, x - margin) for x in x0s], _INDENT * median)
    lines = []
    for i, row in enumerate(rows):
        bbox = (
            min(w.bbox[0] for w in row),
            min(w.bbox[1] for w in row),
            max(w.bbox[2] for w in row),
            max(w.bbox[3] for w in row),
        )
        lines.append(
            OcrLine(
                text=texts[i],
                indent=steps[i],
                gap_before=i == 0 or tops[i] - bottoms[i - 1] > _GAP * median,
                size=round(heights[i] / median, 2),
                full=rights[i] >= right - _FULL * max(right - margin, 1.0),
                bbox=bbox,
            )
        )
    return lines


def _x0_after(row: list[_Word], dropped: int) -> float:
    """Where the row's text starts once `dropped` leading characters of noise are gone."""
    if dropped <= 0:
        return row[0].x0
    consumed = 0
    for word in row:
        if dropped < consumed + len(word.text):
            share = (dropped - consumed) / max(len(word.text), 1)
            return round(word.x0 + share * (word.x1 - word.x0), 1)
        consumed += len(word.text) + 1  # the joining space
    return row[-1].x0


def _indent_steps(offsets: list[float], step: float) -> list[int]:
    """Indentation steps: offsets from the margin, split where sorted neighbours differ by more
    than `step` (the noise within one indent is smaller than the distance between two)."""
    levels: dict[float, int] = {}
    previous: float | None = None
    for value in sorted(set(offsets)):
        if previous is not None:
            levels[value] = levels[previous] + (value - previous > step)
        else:
            levels[value] = 0
        previous = value
    return [levels[value] for value in offsets]


def layout_text(text: str) -> list[OcrLine]:
    """Lines from plain OCR text (tesseract): blank lines are gaps, leading spaces the indent."""
    lines: list[OcrLine] = []
    gap = True
    for raw in text.splitlines():
        if not raw.strip():
            gap = True
            continue
        expanded = raw.expandtabs(4)
        cleaned, _ = _normalise(expanded)
        indent = len(expanded) - len(expanded.lstrip())
        lines.append(OcrLine(text=cleaned, indent=indent, gap_before=gap))
        gap = False
    return lines


def _normalise(text: str) -> tuple[str, int]:
    """Collapse spaces, drop specks before a marker and free a glued marker; (text, dropped)."""
    text = " ".join(text.split())
    dropped = 0
    noise = _NOISE.match(text)
    if noise is not None and parse_marker(_unglue(text[noise.end() :])) is not None:
        dropped, text = noise.end(), text[noise.end() :]
    return _unglue(text), dropped


def _unglue(text: str) -> str:
    return _GLUED.sub(r"\g<marker> ", text, count=1)
