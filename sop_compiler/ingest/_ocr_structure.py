"""OCR lines -> blocks: the plain-text reader's line rules, fed by what OCR measured.

`structure_lines` applies the text reader's rules (parse_marker, ListNester, looks_like_title) to
give headings (large print, standalone titles, ALL CAPS, numbered sections), nested list items and
paragraphs that join wrapped lines. `to_model_blocks` turns those into Document blocks with
provenance and heading paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from sop_compiler.ingest._ocr_layout import BBox, OcrLine
from sop_compiler.ingest.text import (
    ListNester,
    Marker,
    looks_like_title,
    parse_marker,
    split_heading_number,
)
from sop_compiler.models import Heading, ListItem, Paragraph, Provenance

__all__ = ["OcrBlock", "structure_lines", "to_model_blocks"]

_LARGE = 1.3  # a line this many median line heights tall is a heading by its size


@dataclass(frozen=True, slots=True)
class OcrBlock:
    """A heading, list item or paragraph found in OCR lines (engine-neutral, pixels)."""

    kind: Literal["heading", "list_item", "paragraph"]
    text: str
    line: int  # index of its first OCR line
    level: int = 0  # heading level (1..9) or list nesting depth (0 = top)
    marker: str = ""
    ordered: bool = False
    number: str | None = None
    bbox: BBox | None = None
    sized: bool = False  # a heading by its large print (its level is not relative)

    def scaled(self, factor: float) -> OcrBlock:
        """The same block with its box multiplied by `factor` (pixels -> points)."""
        if self.bbox is None:
            return self
        x0, y0, x1, y1 = (round(v * factor, 1) for v in self.bbox)
        return replace(self, bbox=(x0, y0, x1, y1))


@dataclass
class _Open:
    kind: Literal["heading", "list_item", "paragraph"]
    start: int
    lines: list[OcrLine] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    level: int = 0
    marker: Marker | None = None
    number: str | None = None
    sized: bool = False


class _Structurer:
    def __init__(self, lines: Sequence[OcrLine]) -> None:
        self.lines = lines
        self.out: list[OcrBlock] = []
        self.nester = ListNester()
        self.open: _Open | None = None
        self.ranks = _size_ranks(lines)
        self.base = len(set(self.ranks.values()))  # body-size headings sit under sized ones
        self.seen_large = False

    def run(self) -> list[OcrBlock]:
        for i, line in enumerate(self.lines):
            self._line(i, line)
        self._flush()
        return self.out

    def _line(self, i: int, line: OcrLine) -> None:
        text, current = line.text, self.open
        if line.gap_before and current is not None and current.kind == "paragraph":
            self._flush()
            current = None
        rank = self.ranks.get(line.size) if _heading_shaped(text) else None
        if rank is not None:
            if (
                current is not None
                and current.kind == "heading"
                and current.level == rank
                and not line.gap_before
                and len(current.lines) < 3
            ):
                current.lines.append(line)
                current.texts.append(text)
                return
            self.seen_large = True
            number, title = split_heading_number(text)
            self._start(_Open("heading", i, [line], [title], level=rank, number=number, sized=True))
            return
        marker = parse_marker(text)
        if marker is not None and self._numbered_heading(i, line, marker):
            level = self.base + marker.depth
            number = marker.marker.rstrip(".)")
            self._start(_Open("heading", i, [line], [marker.text], level=level, number=number))
        elif marker is None and self._label(i, line):
            self._start(_Open("heading", i, [line], [text], level=self.base + 1))
        elif marker is not None:
            level = self.nester.level(line.indent, marker)
            self._start(_Open("list_item", i, [line], [marker.text], level=level, marker=marker))
        elif current is not None and self._continues(current, line):
            current.lines.append(line)
            current.texts.append(text)
        else:
            self._start(_Open("paragraph", i, [line], [text]))

    def _continues(self, block: _Open, line: OcrLine) -> bool:
        """A wrapped paragraph line (no gap above), or a wrapped step: indented under its
        marker, or not starting a new sentence."""
        if block.kind != "list_item":
            return block.kind == "paragraph"  # a gap above has already closed the paragraph
        item = block
        if line.indent > item.lines[0].indent:
            return True
        if line.gap_before:
            return False
        previous = item.texts[-1]
        return not line.text[:1].isupper() or not previous.endswith((".", "!", "?", ":"))

    def _label(self, i: int, line: OcrLine) -> bool:
        """A short line standing alone at the margin that reads as a title."""
        text = line.text
        if line.indent or line.full or not line.gap_before:
            return False
        if self.ranks and not self.seen_large:
            return False  # letterhead above the title is not a section of the procedure
        if not (_caps(text) or looks_like_title(text)):
            return False
        following = self.lines[i + 1] if i + 1 < len(self.lines) else None
        # "Customer Service Agents" followed by "must always ..." is a wrapped sentence
        return following is None or following.gap_before or not following.text[:1].islower()

    def _numbered_heading(self, i: int, line: OcrLine, marker: Marker) -> bool:
        """ "1. PURPOSE" or "2.1 Refund Rules" at the margin, not a Title Case step in a list."""
        numbered = marker.style.startswith("dotted") or (
            marker.style == "num" and marker.marker.endswith(".")
        )
        if not numbered or line.indent or not looks_like_title(marker.text):
            return False
        if marker.text.isupper():
            return True
        if self.open is not None and self.open.kind == "list_item" and not line.gap_before:
            return False
        following = self.lines[i + 1].text if i + 1 < len(self.lines) else ""
        after = parse_marker(following)
        return after is None or after.style != marker.style

    def _start(self, block: _Open) -> None:
        self._flush()
        if block.kind == "heading":
            self.nester.reset()
        self.open = block

    def _flush(self) -> None:
        block, self.open = self.open, None
        if block is None:
            return
        boxes = [line.bbox for line in block.lines if line.bbox is not None]
        bbox = (
            (
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            )
            if boxes
            else None
        )
        if block.kind == "heading":
            text = " ".join(block.texts)
            level = max(1, min(block.level, 9))
            self.out.append(
                OcrBlock(
                    "heading",
                    text,
                    block.start,
                    level=level,
                    number=block.number,
                    bbox=bbox,
                    sized=block.sized,
                )
            )
        elif block.kind == "list_item" and block.marker is not None:
            self.out.append(
                OcrBlock(
                    "list_item",
                    "\n".join(block.texts),
                    block.start,
                    level=block.level,
                    marker=block.marker.marker,
                    ordered=block.marker.ordered,
                    bbox=bbox,
                )
            )
        else:
            self.out.append(OcrBlock("paragraph", "\n".join(block.texts), block.start, bbox=bbox))


def structure_lines(lines: Sequence[OcrLine]) -> list[OcrBlock]:
    """Headings, nested list items and paragraphs from OCR lines, by the text reader's rules."""
    return _Structurer(lines).run()


def _heading_shaped(text: str) -> bool:
    """Short enough for a title and not a sentence (large print can be a lead paragraph)."""
    words = text.split()
    if not words or len(words) > 12 or len(text) > 100:
        return False
    return not (text.endswith(".") and len(words) > 8) and any(ch.isalpha() for ch in text)


def _size_ranks(lines: Sequence[OcrLine]) -> dict[float, int]:
    """Heading level by line size for lines large enough to be headings by their size alone."""
    sizes = sorted({ln.size for ln in lines if ln.size >= _LARGE and _heading_shaped(ln.text)})
    ranks: dict[float, int] = {}
    level = 0
    previous: float | None = None
    for size in reversed(sizes):
        # sizes within a tenth of a line height are one heading style read slightly differently
        if previous is None or previous - size > 0.1:
            level += 1
            previous = size
        ranks[size] = min(level, 6)
    return ranks


def _caps(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return (
        len(letters) >= 2
        and len(text) <= 80
        and all(ch.isupper() for ch in letters)
        and text[-1] not in ".;,"
        and len(text.split()) <= 10
    )


# --- blocks -> Document blocks --------------------------------------------------------------


def to_model_blocks(
    blocks: Sequence[OcrBlock],
    *,
    file: str,
    page: int | None,
    headings: list[tuple[int, str]],
    with_bbox: bool = False,
) -> list[Heading | ListItem | Paragraph]:
    """Document blocks (ids left empty for the caller) with provenance and heading paths.

    Args:
        blocks: from `structure_lines`.
        file: the SOP file, as provenance shows it.
        page: the 1-based page (scanned PDF pages) or None (images).
        headings: the enclosing (level, title) stack; updated as headings are added. When the
            blocks hold no heading by size, their heading levels are taken as relative to it.
        with_bbox: keep each block's box in provenance (PDF pages, in points).
    """
    out: list[Heading | ListItem | Paragraph] = []
    # A page without large print continues the document's outline (page 2 of a scan): its
    # headings go under the document's top heading instead of replacing it.
    shift = 0
    if headings and not any(block.sized for block in blocks):
        shift = min(level for level, _ in headings)
    for block in blocks:
        if block.kind == "heading":
            level = min(block.level + shift, 9)
            while headings and headings[-1][0] >= level:
                headings.pop()
        prov = Provenance(
            file=file,
            page=page,
            paragraph=block.line,
            heading_path=[title for _, title in headings],
            bbox=block.bbox if with_bbox else None,
        )
        if block.kind == "heading":
            out.append(Heading(id="", prov=prov, text=block.text, level=level, number=block.number))
            headings.append((level, block.text))
        elif block.kind == "list_item":
            out.append(
                ListItem(
                    id="",
                    prov=prov,
                    text=block.text,
                    level=block.level,
                    marker=block.marker,
                    ordered=block.ordered,
                )
            )
        else:
            out.append(Paragraph(id="", prov=prov, text=block.text))
    return out
