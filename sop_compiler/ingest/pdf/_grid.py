"""Fully ruled tables built from the page's rules and text lines, without pymupdf's table finder.

pymupdf's `find_tables` costs about 10 ms on a page with a small ruled table; a grid lookup costs a
fraction of that. This module repeats the steps of pymupdf's "lines" strategy that decide a ruled
grid (edges from the drawings, snapping and joining within 3 pt, the enclosing boxes it adds,
intersections) so that it finds the same cells, and it only answers for the cases it can rebuild
exactly: every row rule spans the table, every column rule runs from one row rule to another (a
missing piece merges cells across columns), and every text line sits inside one cell with no
text right above the table (which pymupdf may read as an external header). For anything else
`ruled_tables` returns None and the caller runs `find_tables`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # _page imports this module
    from sop_compiler.ingest.pdf._page import Line

BBox = tuple[float, float, float, float]

# pymupdf's defaults: snap, join and intersection tolerances, and the shortest edge kept
_TOL = 3.0
_MIN_EDGE = 3.0
_MAX_PATHS = 200  # past this many drawings, grouping them costs more than the table finder
_LIGATURES = {"ﬀ": "ff", "ﬃ": "ffi", "ﬄ": "ffl", "ﬁ": "fi", "ﬂ": "fl", "ﬆ": "st", "ﬅ": "st"}

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class GridTable:
    """A ruled grid: its box, its first row's box and its cell texts (None where merged)."""

    bbox: BBox
    header_bbox: BBox
    rows: list[list[str | None]]


class _Irregular(Exception):
    """The rules or text do not form a grid this module rebuilds exactly."""


@dataclass(slots=True)
class _HEdge:
    y: float
    x0: float
    x1: float


@dataclass(slots=True)
class _VEdge:
    x: float
    y0: float
    y1: float


def ruled_tables(page: Any, lines: Sequence[Line], clip: BBox) -> list[GridTable] | None:
    """The ruled grids in `clip`, top to bottom; None when pymupdf's table finder is needed."""
    if page.rotation:
        return None
    paths: list[dict[str, Any]] = page.get_cdrawings()
    if len(paths) > _MAX_PATHS:
        return None
    try:
        hs, vs = _edges(paths, page, lines, clip)
        return _tables(hs, vs, lines, paths)
    except _Irregular:
        return None


# --- edges, as pymupdf's make_edges and merge_edges make them -----------------------------------


def _edges(
    paths: list[dict[str, Any]], page: Any, lines: Sequence[Line], clip: BBox
) -> tuple[list[_HEdge], list[_VEdge]]:
    hs: list[_HEdge] = []
    vs: list[_VEdge] = []
    for path in paths:
        items = path["items"]
        if path.get("closePath") and items[0][0] == "l" and items[-1][0] == "l":
            items = [*items, ("l", items[-1][2], items[0][1])]
        for item in items:
            kind = item[0]
            if kind == "l":
                _add(hs, vs, item[1], item[2], clip)
            elif kind == "re":
                _add_rect(hs, vs, item[1], clip)
            elif kind == "qu":
                ul, ur, ll, lr = item[1]
                for p1, p2 in ((ul, ll), (ll, lr), (lr, ur), (ur, ul)):
                    _add(hs, vs, p1, p2, clip)
    sure, unsure = _enclosing_boxes([tuple(path["rect"]) for path in paths], page, lines, clip)
    for x0, y0, x1, y1 in sure:
        for p1, p2 in (((x0, y0), (x1, y0)), ((x0, y1), (x1, y1))):
            _add(hs, vs, p1, p2, clip)
        for p1, p2 in (((x0, y0), (x0, y1)), ((x1, y0), (x1, y1))):
            _add(hs, vs, p1, p2, clip)
    hs, vs = _merge_h(hs), _merge_v(vs)
    if not all(_outlined(box, hs, vs) for box in unsure):
        raise _Irregular
    return hs, vs


def _outlined(box: BBox, hs: list[_HEdge], vs: list[_VEdge]) -> bool:
    """Each side of the box is already a rule, so adding it as pymupdf may would change nothing."""
    x0, y0, x1, y1 = box

    def across(y: float) -> bool:
        return any(abs(h.y - y) <= _TOL and h.x0 <= x0 + _TOL and h.x1 >= x1 - _TOL for h in hs)

    def down(x: float) -> bool:
        return any(abs(v.x - x) <= _TOL and v.y0 <= y0 + _TOL and v.y1 >= y1 - _TOL for v in vs)

    return across(y0) and across(y1) and down(x0) and down(x1)


def _add_rect(hs: list[_HEdge], vs: list[_VEdge], rect: BBox, clip: BBox) -> None:
    x0, x1 = min(rect[0], rect[2]), max(rect[0], rect[2])
    y0, y1 = min(rect[1], rect[3]), max(rect[1], rect[3])
    w, h = x1 - x0, y1 - y0
    if w <= _MIN_EDGE and w < h:  # a filled bar drawn as a vertical rule
        x = abs(x1 + x0) / 2
        _add(hs, vs, (x, y0), (x, y1), clip)
    elif h <= _MIN_EDGE and h < w:
        y = abs(y1 + y0) / 2
        _add(hs, vs, (x0, y), (x1, y), clip)
    else:
        for p1, p2 in (
            ((x0, y0), (x0, y1)),
            ((x0, y1), (x1, y1)),
            ((x1, y1), (x1, y0)),
            ((x1, y0), (x0, y0)),
        ):
            _add(hs, vs, p1, p2, clip)


def _add(hs: list[_HEdge], vs: list[_VEdge], p1: Point, p2: Point, clip: BBox) -> None:
    """pymupdf's make_line, line_to_edge and first length filter for one segment."""
    if abs(p1[0] - p2[0]) > _TOL and abs(p1[1] - p2[1]) > _TOL:
        return  # not axis-parallel
    x0, x1 = min(p1[0], p2[0]), max(p1[0], p2[0])
    y0, y1 = min(p1[1], p2[1]), max(p1[1], p2[1])
    if x0 > clip[2] or x1 < clip[0] or y0 > clip[3] or y1 < clip[1]:
        return
    x0, x1 = max(x0, clip[0]), min(x1, clip[2])
    y0, y1 = max(y0, clip[1]), min(y1, clip[3])
    if y0 == y1:  # pymupdf calls every other segment vertical, even a slightly slanted one
        if x1 - x0 >= 1:
            hs.append(_HEdge(y0, x0, x1))
    elif y1 - y0 >= 1:
        vs.append(_VEdge(x0, y0, y1))


def _enclosing_boxes(
    rects: list[tuple[float, ...]], page: Any, lines: Sequence[Line], clip: BBox
) -> tuple[list[BBox], list[BBox]]:
    """pymupdf's clean_graphics: groups of touching drawings that hold text add their outline.

    pymupdf tests "holds text" against characters whose y is measured from the page bottom, so
    the outline is added when text sits at the mirrored place. Returns the outlines surely added
    and those that may be (a text line only partly overlaps the test).
    """
    pending = sorted(set(rects), key=lambda r: (r[3], r[0]))
    boxes: list[BBox] = []
    unsure: list[BBox] = []
    flip: tuple[float, float] | None = None
    while pending:
        x0, y0, x1, y1 = pending[0]
        grown = True
        while grown:
            grown = False
            for i in range(len(pending) - 1, 0, -1):
                if _neighbours((x0, y0, x1, y1), pending[i]):
                    r = pending[i]
                    x0, y0 = min(x0, r[0], r[2]), min(y0, r[1], r[3])
                    x1, y1 = max(x1, r[0], r[2]), max(y1, r[1], r[3])
                    del pending[i]
                    grown = True
        del pending[0]
        if flip is None:
            flip = _flip(page)
        held = _holds_text((x0, y0, x1, y1), lines, clip, flip)
        if held is None:
            unsure.append((x0, y0, x1, y1))
        elif held:
            boxes.append((x0, y0, x1, y1))
    return boxes, unsure


def _neighbours(r1: tuple[float, ...], r2: tuple[float, ...]) -> bool:
    def near(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        return (b[0] - _TOL <= a[0] <= b[2] + _TOL or b[0] - _TOL <= a[2] <= b[2] + _TOL) and (
            b[1] - _TOL <= a[1] <= b[3] + _TOL or b[1] - _TOL <= a[3] <= b[3] + _TOL
        )

    return near(r1, r2) or near(r2, r1)


def _flip(page: Any) -> tuple[float, float]:
    a, b, c, d, _, f = tuple(page.transformation_matrix)
    if (a, b, c, d) != (1, 0, 0, -1):
        raise _Irregular
    return d, f


def _holds_text(
    box: BBox, lines: Sequence[Line], clip: BBox, flip: tuple[float, float]
) -> bool | None:
    d, f = flip
    found = False
    width, height = box[2] - box[0], box[3] - box[1]
    for line in lines:
        if width < 0.5 or height < line.size - 0.5:
            continue  # too thin to hold a character of this line: a rule's own outline
        lx0, lx1 = line.x0, line.x1
        ly0, ly1 = d * line.y1 + f, d * line.y0 + f
        if lx1 <= box[0] or lx0 >= box[2] or ly1 <= box[1] or ly0 >= box[3]:
            continue  # no character of this line can be inside
        in_clip = (
            line.x0 >= clip[0] and line.x1 <= clip[2] and line.y0 >= clip[1] and line.y1 <= clip[3]
        )
        inside = box[0] <= lx0 and lx1 <= box[2] and box[1] <= ly0 and ly1 <= box[3]
        if not (in_clip and inside):
            return None
        found = True
    return found


def _clusters(values: list[float]) -> dict[float, int]:
    """pymupdf's cluster_list: sorted distinct values chained within the tolerance."""
    ids: dict[float, int] = {}
    last: float | None = None
    group = -1
    for value in sorted(set(values)):
        if last is None or value > last + _TOL:
            group += 1
        ids[value] = group
        last = value
    return ids


def _snapped(values: list[float]) -> list[float]:
    """Each value moved to the mean of its cluster, summed in pymupdf's order."""
    ids = _clusters(values)
    sums: dict[int, list[float]] = {}
    for value in values:
        sums.setdefault(ids[value], []).append(value)
    means = {group: sum(members) / len(members) for group, members in sums.items()}
    return [value + (means[ids[value]] - value) for value in values]


def _merge_h(edges: list[_HEdge]) -> list[_HEdge]:
    for edge, y in zip(edges, _snapped([e.y for e in edges]), strict=True):
        edge.y = y
    out: list[_HEdge] = []
    for edge in sorted(edges, key=lambda e: (e.y, e.x0)):
        last = out[-1] if out else None
        if last is not None and last.y == edge.y and edge.x0 <= last.x1 + _TOL:
            last.x1 = max(last.x1, edge.x1)
        else:
            out.append(_HEdge(edge.y, edge.x0, edge.x1))
    return [e for e in out if e.x1 - e.x0 >= _MIN_EDGE]


def _merge_v(edges: list[_VEdge]) -> list[_VEdge]:
    for edge, x in zip(edges, _snapped([e.x for e in edges]), strict=True):
        edge.x = x
    out: list[_VEdge] = []
    for edge in sorted(edges, key=lambda e: (e.x, e.y0)):
        last = out[-1] if out else None
        if last is not None and last.x == edge.x and edge.y0 <= last.y1 + _TOL:
            last.y1 = max(last.y1, edge.y1)
        else:
            out.append(_VEdge(edge.x, edge.y0, edge.y1))
    return [e for e in out if e.y1 - e.y0 >= _MIN_EDGE]


# --- grids -----------------------------------------------------------------------------------


def _meets(h: _HEdge, v: _VEdge) -> bool:
    return v.y0 <= h.y + _TOL and v.y1 >= h.y - _TOL and h.x0 - _TOL <= v.x <= h.x1 + _TOL


def _tables(
    hs: list[_HEdge], vs: list[_VEdge], lines: Sequence[Line], paths: list[dict[str, Any]]
) -> list[GridTable]:
    """One table per connected group of rules that can hold two rows and two columns."""
    parent = list(range(len(hs) + len(vs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, h in enumerate(hs):
        for j, v in enumerate(vs):
            if _meets(h, v):
                parent[root(i)] = root(len(hs) + j)
    groups: dict[int, tuple[list[_HEdge], list[_VEdge]]] = {}
    for i, h in enumerate(hs):
        groups.setdefault(root(i), ([], []))[0].append(h)
    for j, v in enumerate(vs):
        groups.setdefault(root(len(hs) + j), ([], []))[1].append(v)
    tables: list[GridTable] = []
    for group_h, group_v in groups.values():
        if len({h.y for h in group_h}) < 3 or len({v.x for v in group_v}) < 3:
            continue  # at most one row or one column: pymupdf keeps no table either
        tables.append(_grid(group_h, group_v, lines, paths))
    tables.sort(key=lambda t: (t.bbox[1], t.bbox[0]))
    return tables


def _grid(
    hs: list[_HEdge], vs: list[_VEdge], lines: Sequence[Line], paths: list[dict[str, Any]]
) -> GridTable:
    ys = sorted(h.y for h in hs)
    xs = sorted({v.x for v in vs})
    if len(set(ys)) != len(ys):
        raise _Irregular  # a row rule in pieces
    if any(b - a <= 2 * _TOL for a, b in pairwise(ys)) or any(
        b - a <= 2 * _TOL for a, b in pairwise(xs)
    ):
        raise _Irregular  # rules this close make pymupdf's tolerances matter
    left, right = xs[0], xs[-1]
    if any(h.x0 > left + _TOL or h.x1 < right - _TOL for h in hs):
        raise _Irregular  # a row rule that does not span the table: merged rows
    bands = len(ys) - 1
    walls: dict[float, list[bool]] = {x: [False] * bands for x in xs}
    for v in vs:
        hit = [k for k, y in enumerate(ys) if v.y0 - _TOL <= y <= v.y1 + _TOL]
        first, last = hit[0], hit[-1]
        if last == first:
            raise _Irregular  # a tick, not a column rule
        if (first > 0 and v.y0 < ys[first] - _TOL) or (last < bands and v.y1 > ys[last] + _TOL):
            raise _Irregular  # a column rule ending inside a row
        for band in range(first, last):
            walls[v.x][band] = True
    if not (all(walls[left]) and all(walls[right])):
        raise _Irregular
    cells: list[list[BBox]] = []
    for band in range(bands):
        edges = [x for x in xs if walls[x][band]]
        cells.append([(a, ys[band], b, ys[band + 1]) for a, b in pairwise(edges)])
    bbox: BBox = (left, ys[0], right, ys[-1])
    first_row: BBox = (left, ys[0], right, ys[1])
    if _text_close_above(bbox, lines) and not _shaded(first_row, paths):
        raise _Irregular
    texts = _cell_texts(cells, bbox, lines)
    slots = {x: i for i, x in enumerate(xs[:-1])}
    rows: list[list[str | None]] = []
    for band, band_cells in enumerate(cells):
        row: list[str | None] = [None] * len(slots)
        for index, cell in enumerate(band_cells):
            row[slots[cell[0]]] = texts.get((band, index), "")
        rows.append(row)
    return GridTable(bbox=bbox, header_bbox=first_row, rows=rows)


def _text_close_above(bbox: BBox, lines: Sequence[Line]) -> bool:
    """Text within a line's height above the table, which pymupdf may make an external header."""
    top = bbox[1]
    for line in lines:
        # pymupdf measures with glyph boxes one font size tall, inside the line's box
        if (
            line.y0 < top - 0.5
            and line.x1 > bbox[0]
            and line.x0 < bbox[2]
            and top - line.y1 < line.size + 0.5
        ):
            return True
    return False


def _shaded(row: BBox, paths: list[dict[str, Any]]) -> bool:
    """The first row is filled with a colour and the strip above it is not.

    pymupdf then keeps the first row as the header (it compares the commonest pixel colour of
    the two strips) before it looks at text above the table. Only a single opaque rectangle
    filling the row, with no fill at all above it, is trusted to decide that without rendering.
    """
    x0, y0, x1, y1 = row
    height = y1 - y0
    area = (x1 - x0) * height
    above = (x0, y0 - height, x1, y0)
    fill: dict[str, Any] | None = None
    for path in paths:
        if "f" not in path["type"]:
            continue
        rect = tuple(path["rect"])
        if _overlap(rect, above) > 0.01 * area:
            return False
        if _overlap(rect, row) > 0.01 * area:
            if fill is not None:
                return False
            fill = path
    if fill is None:
        return False
    items, colour = fill["items"], fill.get("fill")
    return (
        len(items) == 1
        and items[0][0] == "re"
        and _overlap(tuple(fill["rect"]), row) >= 0.9 * area
        and (fill.get("fill_opacity") or 0) >= 0.5
        and isinstance(colour, tuple)
        and not all(c >= 0.98 for c in colour)
    )


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _cell_texts(
    cells: list[list[BBox]], bbox: BBox, lines: Sequence[Line]
) -> dict[tuple[int, int], str]:
    """Each line's text in the cell holding it; lines read top to bottom, then left to right."""
    found: dict[tuple[int, int], list[Line]] = {}
    for line in lines:
        if line.x1 <= bbox[0] or line.x0 >= bbox[2] or line.y1 <= bbox[1] or line.y0 >= bbox[3]:
            continue
        height = line.y1 - line.y0
        if height > 2.5 * line.size:
            raise _Irregular  # rotated text: pymupdf orders its characters differently
        band = _band(cells, line)
        for index, cell in enumerate(cells[band]):
            if cell[0] - 0.5 <= line.x0 and line.x1 <= cell[2] + 0.5:
                found.setdefault((band, index), []).append(line)
                break
        else:
            raise _Irregular  # across a column rule: pymupdf splits it by character
    return {key: _join(cell_lines) for key, cell_lines in found.items()}


def _band(cells: list[list[BBox]], line: Line) -> int:
    """The row holding the whole line, with room for pymupdf's smaller glyph boxes."""
    cy = (line.y0 + line.y1) / 2
    margin = 0.3 * (line.y1 - line.y0)
    for band, band_cells in enumerate(cells):
        if band_cells[0][1] + margin <= cy <= band_cells[0][3] - margin:
            return band
    raise _Irregular  # on a rule, or outside the grid


def _join(lines: list[Line]) -> str:
    """pymupdf's extract_text: lines grouped by top within 3 pt, words left to right."""
    ids = _clusters([line.y0 for line in lines])
    ordered = sorted(lines, key=lambda line: (ids[line.y0], line.x0))
    text = " ".join(line.text for line in ordered)
    if any(ch in _LIGATURES for ch in text):
        text = "".join(_LIGATURES.get(ch, ch) for ch in text)
    return text
