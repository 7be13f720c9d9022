"""Pass 2 of the PDF reader: page records become heading, list, paragraph, table, figure blocks.

Body size, heading sizes and line pitch are only known once every page has been seen, which is why
this runs after pass 1 over the small per-page records.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from sop_compiler.ingest.ocr import to_model_blocks
from sop_compiler.ingest.pdf._page import (
    SECTION_NUMBER,
    BBox,
    FigureItem,
    FlowchartItem,
    Item,
    Line,
    PageRecord,
    Stats,
    TableItem,
)
from sop_compiler.models import (
    Document,
    Figure,
    Flowchart,
    Heading,
    ListItem,
    Paragraph,
    Provenance,
    Table,
)

_BULLETS = "•◦▪▫■□●○‣⁃∙·–—*o\uf0b7\uf0a7\uf076\uf0d8\uf0fc➢►✓-"
MARKER = re.compile(
    r"^(?:(?P<num>\d{1,3}(?:\.\d{1,3})*)(?P<np>[.)])?"
    r"|\((?P<paren>\d{1,3}|[a-zA-Z]|[ivxlcdm]{1,6})\)"
    r"|(?P<alpha>[a-zA-Z]|[ivxlcdm]{1,6}|[IVXLCDM]{1,6})[.)]"
    r"|(?P<bullet>[" + re.escape(_BULLETS) + r"]))\s+(?=\S)"
)
_CAPTION = {
    FigureItem: re.compile(r"^(?:Figure|Fig\.)\s*\d*"),
    FlowchartItem: re.compile(r"^(?:Figure|Fig\.|Flowchart|Diagram)\s*\d*"),
    TableItem: re.compile(r"^Table\s+\d"),
}
_SENTENCE_END = (".", "!", "?", ":", ";")
# "Refunds . . . . . 4": a table-of-contents entry, kept on its own for `clean` to find
_DOT_LEADER = re.compile(r"(?:\.\s?){4,}\s*\S{0,6}$|…\s*\S{0,6}$")


@dataclass(frozen=True, slots=True)
class Style:
    """Document-wide facts derived from pass 1's statistics."""

    body: float
    large: float  # lines at least this size are headings
    ranks: dict[float, int]  # heading font size -> level
    base: int  # level offset of numbered headings ("1 Purpose" under a title is level 2)
    pitch: float  # body line spacing as a multiple of the font size
    repeats: frozenset[tuple[str, int]]  # text repeated at one place on most pages
    toc: dict[int, list[tuple[int, str]]]  # page -> outline (level, normalised title)


def make_style(stats: Stats, toc: list[list[object]]) -> Style:
    """Body size (most characters), heading size ranks, numbering offset, pitch and outline."""
    body = max(stats.sizes, key=lambda s: (stats.sizes[s], -s)) if stats.sizes else 11.0
    large = body + max(1.0, 0.1 * body)
    sizes = sorted((s for s in stats.short_sizes if s >= large), reverse=True)
    ranks = {s: min(i + 1, 6) for i, s in enumerate(sizes)}
    offsets = [ranks[s] - depth for s, depth in stats.numbered if s in ranks]
    base = max(0, min(offsets, default=0))
    # the tightest common spacing between body lines: paragraph gaps are the rarer, wider ones
    body_pitches = {dy: n for (s, dy), n in stats.pitches.items() if s == body}
    most = max(body_pitches.values(), default=0)
    pitch = min((d for d, n in body_pitches.items() if n >= 0.3 * most), default=1.3 * body) / body
    needed = max(2, math.ceil(0.5 * stats.pages))
    repeats = (
        frozenset(k for k, n in stats.repeats.items() if n >= needed)
        if stats.pages > 1
        else frozenset()
    )
    outline: dict[int, list[tuple[int, str]]] = {}
    for entry in toc:
        level, title, page = entry[0], entry[1], entry[2]
        if (
            isinstance(level, int)
            and isinstance(page, int)
            and page >= 1
            and isinstance(title, str)
        ):
            outline.setdefault(page, []).append((level, _norm(title)))
    return Style(body, large, ranks, base, min(max(pitch, 1.0), 1.8), repeats, outline)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _strip_number(text: str) -> str:
    return SECTION_NUMBER.sub("", text, count=1)


@dataclass(frozen=True, slots=True)
class _Kind:
    kind: str  # "furniture" | "heading" | "item" | "text"
    level: int = 0
    number: str | None = None
    text: str = ""
    marker: str = ""
    ordered: bool = False
    depth: int = 0
    outline: str | None = None  # the outline title still to match, for wrapped outline headings
    structural: bool = False  # from size, numbering or outline: bold sub-headings nest under it


_TEXT = _Kind("text")
_FURNITURE = _Kind("furniture")


@dataclass(slots=True)
class _Group:
    kind: _Kind
    lines: list[Line]
    page: int
    list_level: int = 0
    min_x0: float = 0.0
    pending_title: str | None = None
    extra: list[str] = field(default_factory=list)


class Builder:
    """Builds blocks page by page, tracking the heading path and list nesting."""

    def __init__(self, document: Document, style: Style) -> None:
        self.document = document
        self.style = style
        self.file = document.source
        self.headings: list[tuple[int, str]] = []
        self.list_stack: list[float] = []
        self.group: _Group | None = None
        self.last_level = 0  # level of the last heading from size, numbering or outline
        self.record: PageRecord | None = None

    # --- pages ---

    def add_page(self, record: PageRecord) -> None:
        """Turn one page's items into blocks."""
        self.record = record
        captions = _captions(record.items)
        used = {i for lines in captions.values() for i in lines}
        for index, item in enumerate(record.items):
            if index in used:
                continue
            if isinstance(item, Line):
                self._line(item)
                continue
            self._flush()
            caption = " ".join(_text(record.items[i]) for i in captions.get(index, []))
            prov = self._prov(record.number, item.bbox)
            if isinstance(item, FlowchartItem):
                self._append(
                    Flowchart(
                        id="",
                        prov=prov,
                        notation="pdf",
                        title=caption or None,
                        nodes=item.nodes,
                        edges=item.edges,
                        entry=item.entry,
                        unread=item.unread,
                    )
                )
                continue
            if isinstance(item, TableItem):
                self._append(
                    Table(
                        id="",
                        prov=prov,
                        header=item.header,
                        rows=item.rows,
                        caption=caption or None,
                    )
                )
            else:
                self._append(
                    Figure(
                        id="",
                        prov=prov,
                        image=item.image,
                        caption=caption or None,
                        text=item.text,
                        read=item.read,
                        scanned_page=item.scanned,
                    )
                )
                if item.ocr:
                    self._ocr(item, record.number)
        self._flush()

    def _ocr(self, item: FigureItem, page: int) -> None:
        """The headings, steps and paragraphs OCR read on a scanned page, after its Figure."""
        self.list_stack.clear()
        blocks = to_model_blocks(
            item.ocr, file=self.file, page=page, headings=self.headings, with_bbox=True
        )
        for block in blocks:
            self._append(block)

    def _append(self, block: Table | Figure | Heading | Paragraph | ListItem | Flowchart) -> None:
        block.id = f"b{len(self.document.blocks) + 1}"
        self.document.blocks.append(block)

    def _prov(self, page: int, bbox: BBox) -> Provenance:
        return Provenance(
            file=self.file,
            page=page,
            bbox=(round(bbox[0], 1), round(bbox[1], 1), round(bbox[2], 1), round(bbox[3], 1)),
            heading_path=[title for _, title in self.headings],
        )

    # --- lines ---

    def _line(self, line: Line) -> None:
        kind = self._classify(line)
        group = self.group
        if group is not None:
            if (
                group.pending_title is not None
                and _norm(line.text)
                and group.pending_title.startswith(_norm(line.text))
            ):
                group.pending_title = group.pending_title[len(_norm(line.text)) :].strip() or None
                group.lines.append(line)
                return
            if self._continues(group, line, kind):
                group.lines.append(line)
                group.min_x0 = min(group.min_x0, line.x0)
                return
        self._flush()
        group = _Group(
            kind=kind, lines=[line], page=self.record.number if self.record else 0, min_x0=line.x0
        )
        if kind.kind == "item":
            group.list_level = self._list_level(line.x0, kind.depth)
        elif kind.kind == "heading":
            self.list_stack.clear()
            group.pending_title = kind.outline
            if kind.structural:  # set now: the next line is classified before this group is flushed
                self.last_level = kind.level
        elif kind.kind == "text" and self.list_stack and line.x0 <= self.list_stack[0] + 3:
            self.list_stack.clear()
        self.group = group

    def _classify(self, line: Line) -> _Kind:
        record = self.record
        assert record is not None
        style = self.style
        text = line.text
        if (
            line.y1 <= 0.08 * record.height
            or line.y0 >= 0.92 * record.height
            or (text, round(line.y0 / 6)) in style.repeats
            or _DOT_LEADER.search(text)
        ):
            return _FURNITURE
        outline = style.toc.get(record.number)
        if outline:
            matched = self._match_outline(text, outline)
            if matched is not None:
                return matched
        number_match = SECTION_NUMBER.match(text)
        number = number_match.group(1).rstrip(".") if number_match else None
        title = text[number_match.end() :] if number_match else text
        depth = number.count(".") + 1 if number else 0
        marker = MARKER.match(text)
        if line.size >= style.large and len(text) <= 150 and not _sentence(text):
            if self._title_page_line(line, number):
                return _TEXT
            return self._heading(title, number, depth, structural=True, size=line.size)
        if self._standalone_label(line):
            if self._title_page_line(line, number):
                return _TEXT
            if number and depth > 1 and not (marker and marker.group("np") == ")"):
                return self._heading(title, number, depth, structural=True, size=line.size)
            if not marker:
                return self._heading(text, None, 0, structural=False, size=line.size)
        if marker:
            ordered = marker.group("bullet") is None
            printed = marker.group(0).strip()
            item_depth = printed.rstrip(".)").count(".") + 1 if marker.group("num") else 0
            return _Kind(
                "item", text=text[marker.end() :], marker=printed, ordered=ordered, depth=item_depth
            )
        return _TEXT

    def _title_page_line(self, line: Line, number: str | None) -> bool:
        """Large print around the title ("ACME RETAIL", "SOP CC-BIL-004"): a paragraph.

        With an outline, the outline names the sections, so before its first entry only the
        page's largest line is a heading (the title). Without one, a plain (not bold) line right
        under the title, before any text, that would skip a heading level is its subtitle.
        """
        record = self.record
        assert record is not None
        if number is not None:
            return False
        if self.style.toc:
            if self.last_level:
                return False
            largest = max((i.size for i in record.items if isinstance(i, Line)), default=0.0)
            return line.size < largest
        if line.bold:
            return False
        level = self.style.ranks.get(line.size, self.last_level + 1)
        if level <= self.last_level + 1:
            return False
        # Only the title so far (a finished block, or the open group this line may not join);
        # checked without walking the blocks, which would make long documents quadratic.
        blocks, group = self.document.blocks, self.group
        if group is None:
            return len(blocks) == 1 and blocks[0].kind == "heading"
        return not blocks and group.kind.kind == "heading"

    def _standalone_label(self, line: Line) -> bool:
        """A short bold (or ALL-CAPS) line at body size that reads as a title, not a sentence."""
        text = line.text
        if len(text) > 80 or len(text.split()) > 12 or text.endswith((".", ",", ";", "!", "?")):
            return False
        if not (text[0].isupper() or text[0].isdigit()):
            return False
        if line.bold:
            return True
        return text.isupper() and sum(ch.isalpha() for ch in text) >= 4 and len(text.split()) <= 8

    def _heading(
        self, title: str, number: str | None, depth: int, *, structural: bool, size: float
    ) -> _Kind:
        if self.style.toc:
            level = self.last_level + 1  # under the outline heading it follows
            structural = False
        elif number and structural:
            level = depth + self.style.base
        elif structural:
            level = self.style.ranks.get(size, self.last_level + 1)
        else:
            level = self.last_level + 1
        level = max(1, min(level, 9))
        return _Kind("heading", level=level, number=number, text=title, structural=structural)

    def _match_outline(self, text: str, outline: list[tuple[int, str]]) -> _Kind | None:
        norm = _norm(text)
        bare = _strip_number(norm)
        for index, (level, title) in enumerate(outline):
            rest: str | None = None
            if norm == title or bare == _strip_number(title):
                rest = ""
            elif len(norm) >= 8 and title.startswith(norm + " "):
                rest = title[len(norm) :].strip()
            if rest is None:
                continue
            del outline[index]
            match = SECTION_NUMBER.match(text)
            number = match.group(1).rstrip(".") if match else None
            heading = text[match.end() :] if match else text
            return _Kind(
                "heading",
                level=max(1, min(level, 9)),
                number=number,
                text=heading,
                outline=rest or None,
                structural=True,
            )
        return None

    def _continues(self, group: _Group, line: Line, kind: _Kind) -> bool:
        gk = group.kind.kind
        prev = group.lines[-1]
        if gk == "furniture" or line.col != prev.col or abs(line.size - prev.size) > 1:
            return False
        dy = line.y0 - prev.y0
        if dy <= 0 or dy > self.style.pitch * max(line.size, prev.size) * 1.25 + 1:
            return False
        if gk == "heading":  # a heading wrapped onto a second or third line
            return (
                kind.kind == "heading"
                and kind.number is None
                and line.size == prev.size
                and line.bold == prev.bold
                and len(group.lines) < 3
                and not self.style.toc
            )
        if kind.kind != "text":
            return False
        full = self._is_full(prev, group.min_x0)
        if gk == "item":
            marker_x0 = group.lines[0].x0
            return marker_x0 + 3 < line.x0 < marker_x0 + 80 or (
                abs(line.x0 - marker_x0) <= 3 and full
            )
        indent = 40 if len(group.lines) == 1 else 3
        if not group.min_x0 - indent <= line.x0 <= group.min_x0 + 40:
            return False
        # a short line ending a sentence, or a switch to bold after one, ends the paragraph
        return not (prev.text.endswith(_SENTENCE_END) and (not full or line.bold != prev.bold))

    def _is_full(self, line: Line, left: float) -> bool:
        assert self.record is not None
        right = self.record.right_edges[line.col]
        return line.x1 >= right - 0.15 * max(right - left, 1.0)

    def _list_level(self, x0: float, depth: int) -> int:
        stack = self.list_stack
        while stack and x0 < stack[-1] - 3:
            stack.pop()
        if not stack or x0 > stack[-1] + 3:
            stack.append(x0)
        level = len(stack) - 1
        if depth > 1:
            level = max(level, depth - 1)
        return min(level, 8)

    def _flush(self) -> None:
        group, self.group = self.group, None
        if group is None:
            return
        lines = group.lines
        bbox = (
            min(ln.x0 for ln in lines),
            min(ln.y0 for ln in lines),
            max(ln.x1 for ln in lines),
            max(ln.y1 for ln in lines),
        )
        kind = group.kind
        if kind.kind == "heading":
            text = " ".join([kind.text, *(ln.text for ln in lines[1:])])
            while self.headings and self.headings[-1][0] >= kind.level:
                self.headings.pop()
            prov = self._prov(group.page, bbox)
            self._append(Heading(id="", prov=prov, text=text, level=kind.level, number=kind.number))
            self.headings.append((kind.level, text))
            return
        prov = self._prov(group.page, bbox)
        if kind.kind == "item":
            text = "\n".join([kind.text, *(ln.text for ln in lines[1:])])
            self._append(
                ListItem(
                    id="",
                    prov=prov,
                    text=text,
                    level=group.list_level,
                    marker=kind.marker,
                    ordered=kind.ordered,
                )
            )
            return
        self._append(Paragraph(id="", prov=prov, text="\n".join(ln.text for ln in lines)))


def _sentence(text: str) -> bool:
    """Large print that reads as prose (a lead paragraph), not as a title."""
    return text.endswith(".") and len(text.split()) > 8


def _text(item: Item) -> str:
    return item.text if isinstance(item, Line) else ""


def _captions(items: list[Item]) -> dict[int, list[int]]:
    """Indices of caption lines ("Figure 2: ...", "Table 1 ...") next to each figure or table."""
    out: dict[int, list[int]] = {}
    taken: set[int] = set()
    for index, item in enumerate(items):
        pattern = _CAPTION.get(type(item))
        if pattern is None:
            continue
        after = index + 1
        if after < len(items):
            line = items[after]
            if (
                isinstance(line, Line)
                and pattern.match(line.text)
                and 0 <= line.y0 - item.bbox[3] < 36
            ):
                out[index] = [after]
                taken.add(after)
                continue
        before = index - 1
        if before >= 0 and before not in taken:
            line = items[before]
            if (
                isinstance(line, Line)
                and pattern.match(line.text)
                and 0 <= item.bbox[1] - line.y1 < 36
            ):
                out[index] = [before]
                taken.add(before)
    return out
