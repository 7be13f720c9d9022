"""Vector flowcharts on a PDF page: shapes, connectors, arrowheads and words into a graph.

`read_diagram(page, vectors)` returns the flowchart a page draws, or None when the page is not
mainly a diagram. Rules:
- a closed path big enough to hold text is a node; its shape is read from its outline: a
  rectangle (box), straight sides with rounded corners (round), two straight sides and two
  arcs (stadium), curves only (ellipse), four slanted sides meeting at the middle of each side of
  its box (diamond), two level sides and two slanted ones (parallelogram), six sides (hexagon);
  shapes that hold other shapes (frames, swimlanes) are containers, not nodes;
- a word belongs to the node whose outline (not just its box) holds the word's centre, so a
  "Yes" written beside a diamond's corner is never glued onto the diamond's text;
- a small closed triangle, or two short strokes meeting at a point (a chevron), is an
  arrowhead; an open path is a connector (touching pieces of a polyline are joined); the end
  whose arrowhead carries the line on is the target, the arrowhead's tip the point that touches
  the node; a connector without an arrowhead is read top to bottom and said so in `unread`;
- fill-only white shapes (label and page backdrops) are neither nodes nor connectors;
- a word (or a run of words) outside every node is the label of the nearest connector, each
  connector taking at most one label;
- the chart is the nodes that connectors join (a box nothing joins, such as a callout, is page
  text); it is read when at least three of them hold text, two connectors join them, and its
  nodes and labels hold most of the words in its region; text above, below or beside the chart
  stays text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sop_compiler.ingest.flowchart import kind_of
from sop_compiler.ingest.pdf._outline import (
    BBox,
    Point,
    bbox_of,
    box_gap,
    dist,
    pieces,
    segment_gap,
    segments,
    shape_name,
    union,
    vertices,
)
from sop_compiler.models import FlowEdge, FlowNode

__all__ = ["Diagram", "looks_drawn", "read_diagram"]


_MIN_W, _MIN_H = 18.0, 10.0  # smallest node outline
_ARROW_MAX = 18.0  # an arrowhead fits in a box this size
_JOIN = 1.5  # pieces of one polyline meet within this distance
_ATTACH = 12.0  # a connector end touches a node within this distance of its outline
_LABEL_MAX = 30.0  # a label lies within this distance of its connector
_MAX_SHAPES = 400  # more outlines than this on one page is a grid or a drawing, not a flowchart


@dataclass
class Diagram:
    """A flowchart read from one page: graph, page box, and the words it used."""

    nodes: list[FlowNode]
    edges: list[FlowEdge]
    entry: str | None
    bbox: BBox
    used: list[BBox]  # boxes of the words that are node text or labels
    unread: list[str] = field(default_factory=list)


@dataclass
class _Shape:
    bbox: BBox
    shape: str
    words: list[tuple[float, float, float, float, str]] = field(default_factory=list)

    def holds(self, x: float, y: float) -> bool:
        x0, y0, x1, y1 = self.bbox
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        if not (x0 - 1 <= x <= x1 + 1 and y0 - 1 <= y <= y1 + 1):
            return False
        if self.shape == "diamond":
            return abs(x - cx) / rx + abs(y - cy) / ry <= 1.02
        if self.shape in ("ellipse", "circle"):
            return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.05
        return True


@dataclass
class _Head:
    points: list[Point]
    tip: Point | None = None  # known for an open (chevron) head: where its strokes meet


@dataclass
class _Connector:
    points: list[Point]  # sampled along the path, start to end

    @property
    def start(self) -> Point:
        return self.points[0]

    @property
    def end(self) -> Point:
        return self.points[-1]


def looks_drawn(vectors: list[dict[str, Any]]) -> bool:
    """Cheap gate on `get_text` vector blocks: enough non-rectangular outlines for a diagram."""
    shapes = 0
    for block in vectors:
        x0, y0, x1, y1 = block["bbox"]
        if x1 - x0 >= _MIN_W and y1 - y0 >= _MIN_H:
            shapes += 1
    return shapes >= 3


def read_diagram(page: Any, words: list[tuple[Any, ...]]) -> Diagram | None:
    """The flowchart the page draws, or None when it is not mainly a diagram."""
    shapes: list[_Shape] = []
    heads: list[_Head] = []
    connectors: list[_Connector] = []
    for path in page.get_drawings():
        if _background(path):
            continue
        for kind, points, closed in pieces(path):
            _sort_piece(kind, points, closed, shapes, heads, connectors)
    if len(shapes) > _MAX_SHAPES or len(connectors) < 2:
        return None  # a grid of cells, or shapes nothing joins: not a flowchart
    shapes = _drop_containers(shapes)
    if len(shapes) < 3:
        return None
    loose = _place_words(shapes, words)
    nodes_with_text = [s for s in shapes if s.words]
    if len(nodes_with_text) < 3:
        return None
    connectors = _join(connectors, shapes)
    unread: list[str] = []
    ends = [_End(c, *_ends(c, heads)) for c in connectors]
    for end in ends:
        end.source, end.target = _nearest(shapes, end.tail), _nearest(shapes, end.tip)
    _through_junctions(ends)
    raw_edges: list[tuple[int, int, _Connector]] = []
    undirected: list[tuple[int, int]] = []
    for end in ends:
        source, target, connector = end.source, end.target, end.connector
        if end.trunk:
            continue  # the shared part of merged connectors: its branches carry the edges
        if source is None or target is None:
            known = source if source is not None else target
            if known is not None:
                unread.append(
                    f"a connector at {_text(shapes[known].words)[:40]!r} leads to no node"
                )
            continue
        if not end.directed:
            if source == target:
                continue
            if (shapes[source].bbox[1], shapes[source].bbox[0]) > (
                shapes[target].bbox[1],
                shapes[target].bbox[0],
            ):
                source, target = target, source
            undirected.append((source, target))
        raw_edges.append((source, target, connector))
    joined = sorted({s for s, _, _ in raw_edges} | {t for _, t, _ in raw_edges})
    if len(raw_edges) < 2 or sum(1 for i in joined if shapes[i].words) < 3:
        return None
    # the chart's region: its joined nodes and connectors; words elsewhere are the page's text
    box = union([shapes[i].bbox for i in joined] + [bbox_of(c.points) for _, _, c in raw_edges])
    region = (box[0] - 8, box[1] - 8, box[2] + 8, box[3] + 8)
    members = set(joined)
    near = [w for w in loose if _inside(w, region)]
    near += [
        w for i, s in enumerate(shapes) if i not in members for w in s.words if _inside(w, box)
    ]
    labels = _labels(near, [c for _, _, c in raw_edges], [s for s, _, _ in raw_edges], shapes)
    node_words = sum(len(shapes[i].words) for i in joined)
    placed = node_words + sum(len(group) for group in labels.values())
    if placed < 0.7 * (node_words + len(near)):
        return None  # mostly text among a few boxes and arrows: read as text
    # node ids in reading order: top to bottom, then left to right
    order = sorted(joined, key=lambda i: (shapes[i].bbox[1], shapes[i].bbox[0]))
    ids = {index: f"n{rank + 1}" for rank, index in enumerate(order)}
    for source, target in undirected:
        unread.append(
            f"the connector {ids[source]} - {ids[target]} has no arrowhead; read top to bottom"
        )
    incoming: dict[int, int] = {}
    outgoing: dict[int, int] = {}
    for source, target, _ in raw_edges:
        outgoing[source] = outgoing.get(source, 0) + 1
        incoming[target] = incoming.get(target, 0) + 1
    nodes: list[FlowNode] = []
    for index in order:
        shape = shapes[index]
        x0, y0, x1, y1 = shape.bbox
        nodes.append(
            FlowNode(
                id=ids[index],
                kind=kind_of(
                    shape.shape,
                    incoming=incoming.get(index, 0),
                    outgoing=outgoing.get(index, 0),
                ),
                text=_text(shape.words),
                shape=shape.shape,
                bbox=(round(x0, 1), round(y0, 1), round(x1, 1), round(y1, 1)),
            )
        )
    edges = []
    # edges in reading order of their source, then clockwise from the bottom
    ranked = sorted(
        enumerate(raw_edges),
        key=lambda item: (order.index(item[1][0]), _angle_key(item[1][2], shapes[item[1][0]])),
    )
    for position, (source, target, _) in ranked:
        group = labels.get(position)
        edges.append(
            FlowEdge(
                source=ids[source],
                target=ids[target],
                label=_text(group) if group else None,
            )
        )
    used_labels = {id(w) for group in labels.values() for w in group}
    stray_inside = [w for w in near if id(w) not in used_labels and _inside(w, box)]
    if stray_inside:
        unread.append(
            "text inside the diagram that is neither a node nor a label: "
            + repr(_text(stray_inside)[:80])
        )
    sources, targets = {e.source for e in edges}, {e.target for e in edges}
    starts = [n for n in nodes if n.kind == "start" and n.id in sources]
    roots = [n for n in nodes if n.id not in targets and n.id in sources]
    entry = (starts or roots or nodes)[0].id if nodes else None
    used = [(w[0], w[1], w[2], w[3]) for i in joined for w in shapes[i].words]
    used += [(w[0], w[1], w[2], w[3]) for group in labels.values() for w in group]
    used += [(w[0], w[1], w[2], w[3]) for w in stray_inside]
    return Diagram(nodes=nodes, edges=edges, entry=entry, bbox=box, used=used, unread=unread)


# --- outlines ----------------------------------------------------------------------------------


def _sort_piece(
    kinds: str,
    points: list[Point],
    closed: bool,
    shapes: list[_Shape],
    heads: list[_Head],
    connectors: list[_Connector],
) -> None:
    box = bbox_of(points)
    w, h = box[2] - box[0], box[3] - box[1]
    if closed:
        if w <= _ARROW_MAX and h <= _ARROW_MAX and len(vertices(points)) <= 4:
            heads.append(_Head(points))
        elif w >= _MIN_W and h >= _MIN_H:
            shapes.append(_Shape(box, shape_name(kinds, points, box)))
        return
    if kinds == "ll" and w <= _ARROW_MAX and h <= _ARROW_MAX and _is_chevron(points):
        heads.append(_Head(points, tip=points[1]))  # an open arrowhead: two strokes, one point
        return
    if len(points) >= 2 and (w > 2 or h > 2):
        connectors.append(_Connector(points))


def _background(path: dict[str, Any]) -> bool:
    """A fill-only white shape: the backdrop of a label or of the page, never a node."""
    fill = path.get("fill")
    return (
        path.get("color") is None and fill is not None and all(channel >= 0.95 for channel in fill)
    )


def _is_chevron(points: list[Point]) -> bool:
    a, tip, b = points
    first, second = dist(a, tip), dist(tip, b)
    if not (2 <= first <= 15 and 2 <= second <= 15):
        return False
    cos = ((a[0] - tip[0]) * (b[0] - tip[0]) + (a[1] - tip[1]) * (b[1] - tip[1])) / (first * second)
    return cos > -0.5  # the strokes meet at an angle under 120 degrees


def _drop_containers(shapes: list[_Shape]) -> list[_Shape]:
    """Shapes without other shapes inside them (a frame or swimlane holds nodes, is none)."""
    out = []
    for shape in shapes:
        held = sum(
            1 for other in shapes if other is not shape and _contains(shape.bbox, other.bbox)
        )
        if held == 0:
            out.append(shape)
    # the same outline drawn twice (fill, then stroke) is one node
    unique: list[_Shape] = []
    for shape in out:
        if not any(_same(shape.bbox, kept.bbox) for kept in unique):
            unique.append(shape)
    return unique


def _contains(outer: BBox, inner: BBox) -> bool:
    return (
        outer[0] <= inner[0] + 0.5
        and outer[1] <= inner[1] + 0.5
        and outer[2] >= inner[2] - 0.5
        and outer[3] >= inner[3] - 0.5
        and not _same(outer, inner)
    )


def _same(a: BBox, b: BBox) -> bool:
    return all(abs(p - q) < 1.0 for p, q in zip(a, b, strict=True))


def _join(connectors: list[_Connector], shapes: list[_Shape]) -> list[_Connector]:
    """Join the pieces of one polyline: two pieces that meet away from every node are one."""
    pieces = list(connectors)
    changed = True
    while changed:
        changed = False
        for i, a in enumerate(pieces):
            for j, b in enumerate(pieces):
                if i >= j:
                    continue
                joined = _meet(a, b, pieces, shapes)
                if joined is not None:
                    pieces[i] = joined
                    del pieces[j]
                    changed = True
                    break
            if changed:
                break
    return pieces


def _meet(
    a: _Connector, b: _Connector, pieces: list[_Connector], shapes: list[_Shape]
) -> _Connector | None:
    for a_end, b_end in ((a.end, b.start), (a.end, b.end), (a.start, b.start), (a.start, b.end)):
        if dist(a_end, b_end) > _JOIN:
            continue
        near_node = any(box_gap(s.bbox, a_end) < 3 for s in shapes)
        others = sum(
            1
            for c in pieces
            if c is not a and c is not b and min(dist(c.start, a_end), dist(c.end, a_end)) <= _JOIN
        )
        if near_node or others:
            return None
        first = a.points if a_end == a.end else list(reversed(a.points))
        second = b.points if b_end == b.start else list(reversed(b.points))
        return _Connector(first + second[1:])
    return None


@dataclass
class _End:
    """A connector with its ends read: tail and tip points, and the nodes they touch."""

    connector: _Connector
    tail: Point
    tip: Point
    directed: bool
    source: int | None = None
    target: int | None = None
    trunk: bool = False  # the shared part of merged connectors


def _through_junctions(ends: list[_End]) -> None:
    """Connectors that merge into one arrow (or split from one line) before a node.

    A connector with one end on a node and the other on another connector's path continues
    along it: merging branches take the node the shared part points at, split branches the node
    it comes from. The shared part itself is no edge.
    """
    for end in ends:
        if (end.source is None) == (end.target is None):
            continue
        free = end.tip if end.target is None else end.tail
        points = end.connector.points
        spots = (free, min((points[0], points[-1]), key=lambda p: dist(p, free)))
        for other in ends:
            if other is end or not other.connector.points:
                continue
            pairs = segments(other.connector.points)
            gap = min(segment_gap((*q, *q), q, a, b) for a, b in pairs for q in spots)
            if gap > _JOIN + 1.5:
                continue
            if end.target is None and other.target is not None:
                end.target, end.tip, end.directed = other.target, other.tip, True
                other.trunk = other.source is None
                break
            if end.source is None and other.source is not None and end.directed:
                end.source, end.tail = other.source, other.tail
                other.trunk = other.target is None
                break


def _ends(connector: _Connector, heads: list[_Head]) -> tuple[Point, Point, bool]:
    """(tail, tip, directed): the tip is an arrowhead's point at the end that has one."""
    points = connector.points
    at_end = _head_at(points[-1], points[-2], heads)
    if at_end is not None:
        return points[0], at_end, True
    at_start = _head_at(points[0], points[1], heads)
    if at_start is not None:
        return points[-1], at_start, True
    return points[0], points[-1], False


def _head_at(end: Point, before: Point, heads: list[_Head]) -> Point | None:
    """The tip of the arrowhead at a connector's end, if one carries the line on from there.

    A head that only lies near the end (another connector's, at the same node) points
    elsewhere: its tip must lie ahead of the line, not beside or behind it.
    """
    best: tuple[float, Point] | None = None
    for head in heads:
        gap = box_gap(bbox_of(head.points), end)
        if gap > 2.0:
            continue
        tip = head.tip or max(vertices(head.points) or head.points, key=lambda p: dist(p, end))
        if dist(before, tip) < dist(before, end) - 1.0:
            continue
        if best is None or gap < best[0]:
            best = (gap, tip)
    return best[1] if best else None


def _nearest(shapes: list[_Shape], point: Point) -> int | None:
    best: tuple[float, int] | None = None
    for index, shape in enumerate(shapes):
        gap = _outline_gap(shape, point)
        if gap <= _ATTACH and (best is None or gap < best[0]):
            best = (gap, index)
    return best[1] if best else None


def _outline_gap(shape: _Shape, point: Point) -> float:
    """Distance from a point to a node (0 inside; for a diamond, to its slanted sides)."""
    gap = box_gap(shape.bbox, point)
    if shape.shape != "diamond" or gap > 0:
        return gap
    x0, y0, x1, y1 = shape.bbox
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    outside = abs(point[0] - cx) / rx + abs(point[1] - cy) / ry - 1
    return max(0.0, outside) * min(rx, ry)


def _angle_key(connector: _Connector, shape: _Shape) -> float:
    """Order of edges out of one node: clockwise from the bottom, so Yes/No keep drawing order."""
    x0, y0, x1, y1 = shape.bbox
    far = connector.points[min(len(connector.points) - 1, 3)]
    return math.atan2(far[0] - (x0 + x1) / 2, far[1] - (y0 + y1) / 2)


# --- words -------------------------------------------------------------------------------------

_Word = tuple[float, float, float, float, str]


def _place_words(shapes: list[_Shape], words: list[tuple[Any, ...]]) -> list[_Word]:
    """Give each word to the node whose outline holds its centre; return the others."""
    loose: list[_Word] = []
    for raw in words:
        word: _Word = (float(raw[0]), float(raw[1]), float(raw[2]), float(raw[3]), str(raw[4]))
        cx, cy = (word[0] + word[2]) / 2, (word[1] + word[3]) / 2
        holder = [s for s in shapes if s.holds(cx, cy)]
        if holder:
            smallest = min(holder, key=lambda s: (s.bbox[2] - s.bbox[0]) * (s.bbox[3] - s.bbox[1]))
            smallest.words.append(word)
        else:
            loose.append(word)
    return loose


def _groups(words: list[_Word]) -> list[list[_Word]]:
    """Words outside nodes as runs: same line and close together, or stacked lines."""
    groups: list[list[_Word]] = []
    for word in sorted(words, key=lambda w: (round(w[1]), w[0])):
        height = word[3] - word[1]
        for group in groups:
            last = group[-1]
            same_line = abs(last[1] - word[1]) < 0.5 * height and 0 <= word[0] - last[2] < height
            stacked = (
                0 <= word[1] - last[3] < 0.5 * height
                and min(last[2], word[2]) - max(group[0][0], word[0]) > -height
            )
            if same_line or stacked:
                group.append(word)
                break
        else:
            groups.append([word])
    return groups


def _labels(
    loose: list[_Word], connectors: list[_Connector], sources: list[int], shapes: list[_Shape]
) -> dict[int, list[_Word]]:
    """Each connector's label: the nearest run of loose words, at most one per connector."""
    pairs: list[tuple[float, int, int]] = []
    groups = _groups(loose)
    for g, group in enumerate(groups):
        box = bbox_of([(w[0], w[1]) for w in group] + [(w[2], w[3]) for w in group])
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        for c, connector in enumerate(connectors):
            gap = min(segment_gap(box, centre, a, b) for a, b in segments(connector.points))
            if gap <= _LABEL_MAX:
                pairs.append((gap, g, c))
    out: dict[int, list[_Word]] = {}
    taken: set[int] = set()
    for _, g, c in sorted(pairs):
        if g in taken or c in out:
            continue
        out[c] = groups[g]
        taken.add(g)
    return out


def _text(words: list[_Word]) -> str:
    """Words in reading order: lines top to bottom, words left to right."""
    rows: list[list[_Word]] = []
    for word in sorted(words, key=lambda w: (w[1], w[0])):
        if rows and abs(rows[-1][0][1] - word[1]) < 0.5 * (word[3] - word[1]):
            rows[-1].append(word)
        else:
            rows.append([word])
    return " ".join(w[4] for row in rows for w in sorted(row, key=lambda w: w[0]))


def _inside(word: _Word, box: BBox) -> bool:
    cx, cy = (word[0] + word[2]) / 2, (word[1] + word[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]
