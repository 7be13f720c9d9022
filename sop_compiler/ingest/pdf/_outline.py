"""Outlines of a PDF drawing: continuous sub-paths, the shape they draw, and plane geometry.

Used by `_diagram` to read flowcharts: `pieces` splits a `get_drawings()` path into sub-paths
(Bezier curves sampled), `shape_name` names a closed outline (box, round, stadium, ellipse,
diamond, parallelogram, hexagon, polygon).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

__all__ = [
    "BBox",
    "Point",
    "bbox_of",
    "box_gap",
    "dist",
    "pieces",
    "segment_gap",
    "segments",
    "shape_name",
    "union",
    "vertices",
]

Point = tuple[float, float]
BBox = tuple[float, float, float, float]


def pieces(path: dict[str, Any]) -> list[tuple[str, list[Point], bool]]:
    """A drawing's continuous sub-paths: (item kinds, points sampled along it, closed)."""
    out: list[tuple[str, list[Point], bool]] = []
    kinds = ""
    points: list[Point] = []
    for item in path["items"]:
        op = item[0]
        if op == "re":
            rect = item[1]
            out.append(
                (
                    "r",
                    [
                        (rect.x0, rect.y0),
                        (rect.x1, rect.y0),
                        (rect.x1, rect.y1),
                        (rect.x0, rect.y1),
                    ],
                    True,
                )
            )
            continue
        if op == "qu":
            quad = item[1]
            corners = [quad.ul, quad.ur, quad.lr, quad.ll]
            out.append(("llll", [(p.x, p.y) for p in corners], True))
            continue
        first = (item[1].x, item[1].y)
        if points and dist(points[-1], first) > 0.5:
            out.append((kinds, points, _closed(points, path)))
            kinds, points = "", []
        if not points:
            points = [first]
        if op == "l":
            points.append((item[2].x, item[2].y))
            kinds += "l"
        elif op == "c":
            p0, c1, c2, p3 = item[1], item[2], item[3], item[4]
            for step in range(1, 9):
                t = step / 8
                points.append(_bezier(t, p0, c1, c2, p3))
            kinds += "c"
    if points:
        out.append((kinds, points, _closed(points, path)))
    return out


def _closed(points: list[Point], path: dict[str, Any]) -> bool:
    return len(points) >= 3 and (bool(path.get("closePath")) or dist(points[0], points[-1]) < 1.0)


def _bezier(t: float, p0: Any, c1: Any, c2: Any, p3: Any) -> Point:
    u = 1 - t
    x = u**3 * p0.x + 3 * u * u * t * c1.x + 3 * u * t * t * c2.x + t**3 * p3.x
    y = u**3 * p0.y + 3 * u * u * t * c1.y + 3 * u * t * t * c2.y + t**3 * p3.y
    return (x, y)


def vertices(points: list[Point]) -> list[Point]:
    """The distinct vertices of a closed outline."""
    out: list[Point] = []
    for point in points:
        if not out or dist(out[-1], point) > 0.5:
            out.append(point)
    if len(out) > 1 and dist(out[0], out[-1]) <= 0.5:
        out.pop()
    return out


def shape_name(kinds: str, points: list[Point], box: BBox) -> str:
    """The shape a closed outline draws, from its item kinds (`l`, `c`, `r`) and points."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    tol_x, tol_y = max(1.5, 0.04 * (x1 - x0)), max(1.5, 0.04 * (y1 - y0))
    if kinds == "r":
        return "box"
    lines, curves = kinds.count("l"), kinds.count("c")
    if curves and not lines:
        return "ellipse"
    corners = vertices(points)
    if not curves:
        if len(corners) == 4:
            mid = all(abs(px - cx) < tol_x or abs(py - cy) < tol_y for px, py in corners)
            if mid:
                return "diamond"
            level = all(abs(px - x0) < tol_x or abs(px - x1) < tol_x for px, _ in corners) and all(
                abs(py - y0) < tol_y or abs(py - y1) < tol_y for _, py in corners
            )
            return "box" if level else "parallelogram"
        if len(corners) == 6:
            return "hexagon"
        return "polygon"
    # straight sides and rounded corners: an outline far from its box's corners is a diamond
    corners_gap = min(
        min(dist(corner, p) for p in points) for corner in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    )
    if corners_gap > 0.3 * min(x1 - x0, y1 - y0):
        return "diamond"
    if lines == 2 and curves >= 2:
        return "stadium"
    return "round"


def dist(a: Point, b: Point) -> float:
    """Distance between two points."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


def bbox_of(points: list[Point]) -> BBox:
    """The box around some points."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def box_gap(box: BBox, point: Point) -> float:
    """Distance from a point to a box (0 inside it)."""
    dx = max(box[0] - point[0], 0.0, point[0] - box[2])
    dy = max(box[1] - point[1], 0.0, point[1] - box[3])
    return math.hypot(dx, dy)


def segments(points: list[Point]) -> list[tuple[Point, Point]]:
    """The straight segments of a sampled path (one degenerate segment for a single point)."""
    return list(itertools.pairwise(points)) or [(points[0], points[0])]


def segment_gap(box: BBox, centre: Point, a: Point, b: Point) -> float:
    """Distance from a label to a segment: from its box, or its centre, whichever is nearer."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = dx * dx + dy * dy
    t = (
        0.0
        if length == 0
        else max(0.0, min(1.0, ((centre[0] - a[0]) * dx + (centre[1] - a[1]) * dy) / length))
    )
    nearest = (a[0] + t * dx, a[1] + t * dy)
    return min(box_gap(box, nearest), dist(centre, nearest))


def union(boxes: list[BBox]) -> BBox:
    """The box around some boxes."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
