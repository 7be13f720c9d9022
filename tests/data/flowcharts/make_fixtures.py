"""Regenerate the flowchart fixture PDFs from the DOT sources beside this script.

    python tests/data/flowcharts/make_fixtures.py     (needs Graphviz's `dot` on PATH)

Two PDFs per DOT file, both committed so that the tests need no Graphviz:
- `<name>.pdf`: Graphviz's own PDF export (`dot -Tpdf`): Bezier connectors, filled arrowheads,
  rounded boxes and diamonds as curves;
- `<name>.drawn.pdf`: the same layout drawn with pymupdf as a diagram tool exports it: a title
  and an intro line above the chart, rectangles, polygon diamonds, ellipses, each connector as
  separate straight segments with a separate filled triangle as its arrowhead, and labels as
  free text beside the connectors.
The DOT file is the ground truth of both.
"""

from __future__ import annotations

import math
import shlex
import subprocess
import sys
from pathlib import Path

import pymupdf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from sop_compiler.ingest.flowchart import parse_flowchart  # noqa: E402

_PT = 72.0
_MARGIN = 36.0
_TOP = 70.0  # room for the title and the intro line


def main() -> None:
    for source in sorted(HERE.glob("*.dot")):
        subprocess.run(
            ["dot", "-Tpdf", str(source), "-o", str(source.with_suffix(".pdf"))], check=True
        )
        plain = subprocess.run(
            ["dot", "-Tplain", str(source)], check=True, capture_output=True, text=True
        ).stdout
        _draw(source, plain, source.with_suffix(".drawn.pdf"))
        print("wrote", source.with_suffix(".pdf").name, source.with_suffix(".drawn.pdf").name)


def _draw(source: Path, plain: str, out: Path) -> None:
    chart = parse_flowchart(source.read_text(), "dot")
    texts = {node.id: node.text for node in chart.nodes}
    labels = {(edge.source, edge.target): edge.label for edge in chart.edges}
    lines = [shlex.split(line) for line in plain.splitlines() if line.strip()]
    _, _, width, height = lines[0][:4]
    page_w = float(width) * _PT + 2 * _MARGIN
    page_h = float(height) * _PT + 2 * _MARGIN + _TOP
    doc = pymupdf.open()
    page = doc.new_page(width=page_w, height=page_h)

    def at(x: str, y: str) -> pymupdf.Point:
        return pymupdf.Point(float(x) * _PT + _MARGIN, page_h - _MARGIN - float(y) * _PT)

    title = source.stem.replace("_", " ").capitalize()
    page.insert_text((_MARGIN, 40), title, fontsize=16, fontname="hebo")
    page.insert_text(
        (_MARGIN, 60), "Follow the chart from the top; each diamond is a question.", fontsize=10
    )
    for row in lines:
        if row[0] == "node":
            name, x, y, w, h, shape = row[1], row[2], row[3], row[4], row[5], row[8]
            centre = at(x, y)
            half_w, half_h = float(w) * _PT / 2, float(h) * _PT / 2
            rect = pymupdf.Rect(
                centre.x - half_w, centre.y - half_h, centre.x + half_w, centre.y + half_h
            )
            if shape == "diamond":
                corners = [
                    pymupdf.Point(centre.x, rect.y0),
                    pymupdf.Point(rect.x1, centre.y),
                    pymupdf.Point(centre.x, rect.y1),
                    pymupdf.Point(rect.x0, centre.y),
                ]
                page.draw_polyline([*corners, corners[0]], color=(0, 0, 0), closePath=True)
            elif shape in ("ellipse", "oval", "circle", "doublecircle"):
                page.draw_oval(rect, color=(0, 0, 0))
            elif shape in ("parallelogram", "hexagon"):
                inset = min(12.0, rect.width / 6)
                outline = (
                    [(rect.x0 + inset, rect.y0), (rect.x1, rect.y0)]
                    + [(rect.x1 - inset, rect.y1), (rect.x0, rect.y1)]
                    if shape == "parallelogram"
                    else [(rect.x0 + inset, rect.y0), (rect.x1 - inset, rect.y0)]
                    + [(rect.x1, centre.y), (rect.x1 - inset, rect.y1)]
                    + [(rect.x0 + inset, rect.y1), (rect.x0, centre.y)]
                )
                page.draw_polyline([*outline, outline[0]], color=(0, 0, 0), closePath=True)
            else:
                page.draw_rect(rect, color=(0, 0, 0))
            _centred(page, texts.get(name, name), centre, fontsize=8)
        elif row[0] == "edge":
            count = int(row[3])
            points = [at(row[4 + 2 * i], row[5 + 2 * i]) for i in range(count)]
            corners = points[::3] if len(points) >= 4 else points
            if corners[-1] != points[-1]:
                corners.append(points[-1])
            for a, b in zip(corners, corners[1:], strict=False):
                page.draw_line(a, b, color=(0, 0, 0))  # each segment its own path
            _arrowhead(page, corners[-2], corners[-1])
            rest = row[4 + 2 * count :]
            if len(rest) >= 3 and rest[0] not in ("solid", "dashed", "dotted", "invis", "bold"):
                label, lx, ly = rest[0], rest[1], rest[2]
                _centred(page, label, at(lx, ly), fontsize=7)
            elif labels.get((row[1], row[2])):
                # an xlabel (plain output leaves it out): beside the connector's first segment
                a, b = corners[0], corners[1]
                spot = pymupdf.Point((a.x + b.x) / 2 + 9, (a.y + b.y) / 2)
                _centred(page, labels[(row[1], row[2])], spot, fontsize=7)
    doc.set_metadata({"title": title, "producer": "sopc test fixtures", "creationDate": ""})
    doc.save(str(out), deflate=True, garbage=3, no_new_id=True)


def _centred(page: pymupdf.Page, text: str, centre: pymupdf.Point, *, fontsize: float) -> None:
    # wrap at about 24 characters, as a diagram tool wraps a box's text
    words, rows, row = text.split(), [], ""
    for word in words:
        if row and len(row) + 1 + len(word) > 24:
            rows.append(row)
            row = word
        else:
            row = f"{row} {word}".strip()
    rows.append(row)
    top = centre.y - (len(rows) - 1) * fontsize * 0.6 + fontsize * 0.35
    for index, line in enumerate(rows):
        width = pymupdf.get_text_length(line, fontsize=fontsize)
        page.insert_text(
            (centre.x - width / 2, top + index * fontsize * 1.2), line, fontsize=fontsize
        )


def _arrowhead(page: pymupdf.Page, a: pymupdf.Point, b: pymupdf.Point) -> None:
    dx, dy = b.x - a.x, b.y - a.y
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    tip = pymupdf.Point(b.x + 8 * ux, b.y + 8 * uy)
    left = pymupdf.Point(b.x - 3.5 * uy, b.y + 3.5 * ux)
    right = pymupdf.Point(b.x + 3.5 * uy, b.y - 3.5 * ux)
    page.draw_polyline([tip, left, right, tip], color=(0, 0, 0), fill=(0, 0, 0), closePath=True)


if __name__ == "__main__":
    main()
