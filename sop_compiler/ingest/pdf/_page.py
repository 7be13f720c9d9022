"""Pass 1 of the PDF reader: one page's text lines, tables and images, in reading order.

Each page is read with a single `get_text("dict")` call and reduced to small records, so the
page's dict (and the page itself) can be freed before the next page is loaded.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sop_compiler.ingest.ocr import OcrBlock
from sop_compiler.ingest.pdf import _grid
from sop_compiler.models import FlowEdge, FlowNode, ImageRef

BBox = tuple[float, float, float, float]

SECTION_NUMBER = re.compile(r"^(\d{1,3}(?:\.\d{1,3})+\.?|\d{1,2}\.?)\s+(?=\S)")
_MIN_IMAGE_PX = 24
_BOLD_WORDS = ("bold", "black", "heavy", "semibold", "demibold", "demi")
_bold_fonts: dict[str, bool] = {}


@dataclass(slots=True)
class Line:
    """One visual line of text: its words, box, dominant font size and whether it is all bold."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    size: float
    bold: bool
    col: int = 0  # 1 for the right column of a two-column page

    @property
    def bbox(self) -> BBox:
        """The line's box (x0, y0, x1, y1)."""
        return (self.x0, self.y0, self.x1, self.y1)


@dataclass(frozen=True, slots=True)
class TableItem:
    """A table found by pymupdf's table finder."""

    bbox: BBox
    header: list[str] | None
    rows: list[list[str]]


@dataclass(frozen=True, slots=True)
class FigureItem:
    """An embedded image, or a rendered scanned page."""

    bbox: BBox
    image: ImageRef
    scanned: bool = False
    text: str | None = None
    read: bool = False
    ocr: tuple[OcrBlock, ...] = ()  # what OCR read on a scanned page, boxes in points


@dataclass(frozen=True, slots=True)
class FlowchartItem:
    """A vector flowchart recovered from the page's drawings (`_diagram`)."""

    bbox: BBox
    nodes: list[FlowNode]
    edges: list[FlowEdge]
    entry: str | None
    unread: list[str]


Item = Line | TableItem | FigureItem | FlowchartItem


@dataclass(slots=True)
class PageRecord:
    """What pass 2 needs from one page."""

    number: int
    width: float
    height: float
    items: list[Item]
    right_edges: tuple[float, float]  # right edge of the text in column 0 and column 1


@dataclass(slots=True)
class Stats:
    """Document-wide counts gathered per page; pass 2 derives body size and levels from them."""

    sizes: Counter[float] = field(default_factory=Counter)  # characters per font size
    short_sizes: Counter[float] = field(default_factory=Counter)  # short lines per font size
    numbered: set[tuple[float, int]] = field(
        default_factory=set
    )  # (size, depth) of "3.2 Title" lines
    pitches: Counter[tuple[float, float]] = field(
        default_factory=Counter
    )  # (size, line-to-line dy)
    repeats: Counter[tuple[str, int]] = field(default_factory=Counter)  # (text, y bucket) -> pages
    pages: int = 0


def bbox_of(item: Item) -> BBox:
    """The box of any page item."""
    return item.bbox


def page_lines(
    page_dict: dict[str, Any],
) -> tuple[list[Line], list[dict[str, Any]], list[dict[str, Any]]]:
    """Text lines, image blocks and vector blocks of a page's `get_text("dict")` output."""
    lines: list[Line] = []
    images: list[dict[str, Any]] = []
    vectors: list[dict[str, Any]] = []
    for block in page_dict["blocks"]:
        kind = block["type"]
        if kind != 0:
            if kind == 1:
                images.append(block)
            elif kind == 3:
                vectors.append(block)
            continue
        for raw in block["lines"]:
            line = _line(raw["spans"], raw["bbox"])
            if line is not None:
                lines.append(line)
    return lines, images, vectors


def _line(spans: list[dict[str, Any]], bbox: Iterable[float]) -> Line | None:
    parts: list[str] = []
    prev_x1 = 0.0
    best_size, best_len, bold_chars, total = 0.0, -1, 0, 0
    for span in spans:
        text = span["text"]
        n = len(text.strip())
        if not n:
            if parts:
                parts.append(" ")
            continue
        # spans placed apart without a space character still read as separate words
        if parts and span["bbox"][0] - prev_x1 > 0.25 * span["size"]:
            parts.append(" ")
        parts.append(text)
        prev_x1 = span["bbox"][2]
        total += n
        if span["flags"] & 16 or _is_bold_font(span["font"]):
            bold_chars += n
        if n > best_len:
            best_len, best_size = n, span["size"]
    if not total:
        return None
    x0, y0, x1, y1 = bbox
    text = " ".join("".join(parts).split())
    return Line(text, x0, y0, x1, y1, round(best_size * 2) / 2, bold_chars >= 0.9 * total)


def _is_bold_font(name: str) -> bool:
    bold = _bold_fonts.get(name)
    if bold is None:
        lowered = name.lower()
        bold = _bold_fonts[name] = any(word in lowered for word in _BOLD_WORDS)
    return bold


def count(stats: Stats, lines: list[Line], height: float) -> None:
    """Add a page's lines (in reading order) to the document statistics."""
    stats.pages += 1
    prev: Line | None = None
    seen: set[tuple[str, int]] = set()
    for line in lines:
        n = len(line.text)
        stats.sizes[line.size] += n
        if n <= 150:
            stats.short_sizes[line.size] += 1
            match = SECTION_NUMBER.match(line.text)
            if match:
                stats.numbered.add((line.size, match.group(1).rstrip(".").count(".") + 1))
        if line.y1 < 0.15 * height or line.y0 > 0.85 * height:
            seen.add((line.text, round(line.y0 / 6)))
        if prev is not None and prev.size == line.size and prev.col == line.col:
            dy = round((line.y0 - prev.y0) * 2) / 2
            if 0 < dy < 3 * line.size:
                stats.pitches[(line.size, dy)] += 1
        prev = line
    stats.repeats.update(seen)


# --- tables ------------------------------------------------------------------------------------


def table_area(vectors: list[dict[str, Any]]) -> BBox | None:
    """The area of the page's rules when there are enough horizontal and vertical ones for a grid.

    `vectors` are the type-3 blocks `get_text` adds with TEXT_COLLECT_VECTORS. The table finder
    costs ~50-150 ms on a whole page, so text pages must never reach it, and pages with rules
    only search the ruled area.
    """
    horizontal = vertical = 0
    x0s, y0s, x1s, y1s = [], [], [], []
    for block in vectors:
        x0, y0, x1, y1 = block["bbox"]
        w, h = x1 - x0, y1 - y0
        if h < 3 and w >= 10:
            horizontal += 1
        elif w < 3 and h >= 10:
            vertical += 1
        elif w >= 10 and h >= 10 and block.get("isrect"):
            horizontal += 2  # a cell drawn as a rectangle
            vertical += 2
        else:
            continue
        x0s.append(x0)
        y0s.append(y0)
        x1s.append(x1)
        y1s.append(y1)
    if horizontal < 3 or vertical < 3:
        return None
    return (min(x0s) - 3, min(y0s) - 3, max(x1s) + 3, max(y1s) + 3)


def extract_tables(page: Any, lines: list[Line], area: BBox) -> tuple[list[TableItem], list[BBox]]:
    """Tables in the ruled area, and the areas whose text belongs to them (not to paragraphs).

    Fully ruled grids are built from the page's rules and lines (`_grid`, well under a
    millisecond); anything irregular goes to pymupdf's table finder (about 10 ms a table).
    """
    grids = _grid.ruled_tables(page, lines, area)
    if grids is None:
        return _found_tables(page, lines, area)
    tables: list[TableItem] = []
    areas: list[BBox] = []
    for grid in grids:
        table = _table(grid.rows, grid.bbox, grid.header_bbox, lines)
        if table is not None:
            areas.append(grid.bbox)
            tables.append(table)
    return tables, areas


def _found_tables(page: Any, lines: list[Line], area: BBox) -> tuple[list[TableItem], list[BBox]]:
    tables: list[TableItem] = []
    areas: list[BBox] = []
    for found in page.find_tables(clip=area).tables:
        bbox: BBox = tuple(found.bbox)
        raw = found.extract()
        if found.header.external:
            table = _table(raw, bbox, None, lines)
            if table is None:
                continue
            header = [_cell(name) for name in found.header.names]
            table = TableItem(bbox=bbox, header=header, rows=table.rows)
            areas.append(tuple(found.header.bbox))
        else:
            table = _table(raw, bbox, tuple(found.header.bbox), lines)
            if table is None:
                continue
        areas.append(bbox)
        tables.append(table)
    return tables, areas


def _table(
    raw: list[list[str | None]], bbox: BBox, header_bbox: BBox | None, lines: list[Line]
) -> TableItem | None:
    """The table's rows without empty ones; the first row as header when it reads like one.

    `header_bbox` is the first row's box, or None when the header lies outside the table.
    """
    rows = [[_cell(cell) for cell in row] for row in raw]
    rows = [row for row in rows if any(row)]
    if len(rows) < 2 or max(len(row) for row in rows) < 2:
        return None  # a framed note or a single box is not a table
    header: list[str] | None = None
    if header_bbox is not None and _looks_like_header(rows[0], _inside(lines, [header_bbox])):
        header, rows = rows[0], rows[1:]
    return TableItem(bbox=bbox, header=header, rows=rows)


def _cell(value: object) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _looks_like_header(row: list[str], header_lines: list[Line]) -> bool:
    if not all(row):
        return False
    if header_lines and all(line.bold for line in header_lines):
        return True
    return all(
        len(cell) <= 40 and not any(ch.isdigit() for ch in cell) for cell in row
    ) and not any(cell.endswith(".") for cell in row)


def _inside(lines: list[Line], areas: list[BBox]) -> list[Line]:
    return [line for line in lines if _in_any(line, areas)]


def _in_any(line: Line, areas: list[BBox]) -> bool:
    cx, cy = (line.x0 + line.x1) / 2, (line.y0 + line.y1) / 2
    return any(a[0] - 1 <= cx <= a[2] + 1 and a[1] - 1 <= cy <= a[3] + 1 for a in areas)


def outside(lines: list[Line], areas: list[BBox]) -> list[Line]:
    """The lines whose centre lies in none of the areas."""
    return [line for line in lines if not _in_any(line, areas)] if areas else lines


# --- images ------------------------------------------------------------------------------------


def image_figures(
    images: list[dict[str, Any]], add_image: Callable[[bytes, str, int, int], ImageRef]
) -> list[FigureItem]:
    """Figures for the page's image blocks, skipping tiny decorations."""
    figures: list[FigureItem] = []
    for block in images:
        width, height, data = block.get("width", 0), block.get("height", 0), block.get("image")
        if not data or width < _MIN_IMAGE_PX or height < _MIN_IMAGE_PX:
            continue
        ext = str(block.get("ext", "png")).lower()
        mime = "image/jpeg" if ext in ("jpg", "jpeg") else f"image/{ext}"
        ref = add_image(bytes(data), mime, int(width), int(height))
        figures.append(FigureItem(bbox=tuple(block["bbox"]), image=ref))
    return figures


def is_scanned(
    lines: list[Line], images: list[dict[str, Any]], width: float, height: float
) -> bool:
    """Almost no text and an image covering much of the page: a scan without a text layer."""
    if sum(len(line.text) for line in lines) >= 20:
        return False
    area = width * height
    for block in images:
        x0, y0, x1, y1 = block["bbox"]
        if (x1 - x0) * (y1 - y0) >= 0.4 * area:
            return True
    return False


# --- reading order ---------------------------------------------------------------------------


def reading_order(
    lines: list[Line], others: list[Item], width: float, height: float
) -> tuple[list[Item], tuple[float, float]]:
    """Items top to bottom; on two-column pages, each band's left column before its right one."""
    mid = width / 2
    if not _two_columns(lines, mid, width):
        rows = _rows(lines)
        right = max((line.x1 for line in rows), default=width)
        return sorted([*rows, *others], key=_top_left), (right, right)
    top, bottom = 0.08 * height, 0.92 * height
    entries: list[Item] = sorted([*lines, *others], key=_top_left)
    out: list[Item] = []
    left: list[Item] = []
    right_col: list[Item] = []
    for entry in entries:
        x0, y0, x1, y1 = entry.bbox
        if (x0 < mid - 4 and x1 > mid + 4) or y1 <= top or y0 >= bottom:
            out += _column(left) + _column(right_col)
            left, right_col = [], []
            out.append(entry)
        elif x0 >= mid - 4:
            if isinstance(entry, Line):
                entry.col = 1
            right_col.append(entry)
        else:
            left.append(entry)
    out += _column(left) + _column(right_col)
    edge0 = max((e.x1 for e in out if isinstance(e, Line) and e.col == 0), default=mid)
    edge1 = max((e.x1 for e in out if isinstance(e, Line) and e.col == 1), default=width)
    return out, (edge0, edge1)


def _top_left(item: Item) -> tuple[float, float]:
    return (item.bbox[1], item.bbox[0])


def _column(entries: list[Item]) -> list[Item]:
    lines = [e for e in entries if isinstance(e, Line)]
    others = [e for e in entries if not isinstance(e, Line)]
    return sorted([*_rows(lines), *others], key=_top_left)


def _two_columns(lines: list[Line], mid: float, width: float) -> bool:
    """Side-by-side wide lines on both halves of the page, on at least three rows."""
    wide = 0.3 * width
    left_rows = {
        round((ln.y0 + ln.y1) / 12) for ln in lines if ln.x1 <= mid + 4 and ln.x1 - ln.x0 >= wide
    }
    if len(left_rows) < 3:
        return False
    pairs = 0
    for line in lines:
        if line.x0 >= mid - 4 and line.x1 - line.x0 >= wide:
            bucket = round((line.y0 + line.y1) / 12)
            if bucket in left_rows or bucket - 1 in left_rows or bucket + 1 in left_rows:
                pairs += 1
    return pairs >= 3


def _rows(lines: list[Line]) -> list[Line]:
    """Merge lines that sit on the same row (a list marker and its text, label and value)."""
    if len(lines) < 2:
        return lines
    ordered = sorted(lines, key=lambda ln: (ln.y0, ln.x0))
    out: list[Line] = []
    row: list[Line] = [ordered[0]]
    for line in ordered[1:]:
        first = row[0]
        overlap = min(first.y1, line.y1) - max(first.y0, line.y0)
        if overlap >= 0.5 * min(first.y1 - first.y0, line.y1 - line.y0):
            row.append(line)
        else:
            out.append(_merge(row))
            row = [line]
    out.append(_merge(row))
    return out


def _merge(row: list[Line]) -> Line:
    if len(row) == 1:
        return row[0]
    row.sort(key=lambda ln: ln.x0)
    main = max(row, key=lambda ln: len(ln.text))
    return Line(
        text=" ".join(ln.text for ln in row),
        x0=row[0].x0,
        y0=min(ln.y0 for ln in row),
        x1=max(ln.x1 for ln in row),
        y1=max(ln.y1 for ln in row),
        size=main.size,
        bold=all(ln.bold for ln in row),
        col=row[0].col,
    )
