"""One pass over the body XML of a .docx, in reading order, emitting blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sop_compiler.ingest._text_decode import BlockBuilder
from sop_compiler.ingest.docx import _ns as ns
from sop_compiler.ingest.docx._styles import Marker, Numbering, Styles, int_attr, num_pr, on
from sop_compiler.ingest.text import (
    ListNester,
    looks_like_title,
    numbered_pieces,
    parse_marker,
    split_heading_number,
)
from sop_compiler.models import Figure, Table

_TEXT_TAGS = (
    ns.T, ns.TAB, ns.BR, ns.CR, ns.NO_BREAK_HYPHEN, ns.DRAWING, ns.PICT, ns.TXBX_CONTENT,
    ns.FALLBACK, ns.DEL, ns.MOVE_FROM,
)  # fmt: skip
_SKIPPED_SUBTREES = frozenset({ns.FALLBACK, ns.DEL, ns.MOVE_FROM, ns.TXBX_CONTENT})
_CAPTION_TEXT = re.compile(r"^(figure|fig\.?|diagram|flowchart|image)\s*\d", re.I)
_TABLE_CAPTION = re.compile(r"^table\s*\d", re.I)
_LIST_STYLE_DEPTH = re.compile(r"^list(?: bullet| number| continue)?\s*([2-9])$", re.I)
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/bmp", "image/tiff"})


@dataclass(frozen=True)
class _Image:
    rel_id: str
    linked: bool
    alt: str


@dataclass
class _Runs:
    text: str
    images: list[_Image]
    boxes: list[Any]


class BodyWalker:
    """Walks `w:body` once: paragraphs, tables, content controls and text boxes in order."""

    def __init__(self, builder: BlockBuilder, part: Any, styles: Styles, numbering: Numbering):
        self.b = builder
        self.part = part
        self.styles = styles
        self.numbering = numbering
        self.nester = ListNester()
        self.index = -1
        self.recent_figures: list[Figure] = []
        self.linked_images = 0
        self.table_caption: str | None = None

    def walk(self, container: Any) -> None:
        """Emit the blocks of a body, content control or text box, in order."""
        for child in container.iterchildren():
            tag = child.tag
            if tag == ns.P:
                self.index += 1
                self._paragraph(child)
            elif tag == ns.TBL:
                self.index += 1
                self._table(child)
            elif tag in (ns.SDT, ns.CUSTOM_XML):
                content = child.find(ns.SDT_CONTENT) if tag == ns.SDT else child
                if content is not None:
                    self.walk(content)

    # -- paragraphs ---------------------------------------------------------------------------

    def _runs(self, p: Any) -> _Runs:
        parts: list[str] = []
        images: list[_Image] = []
        boxes: list[Any] = []
        skip: set[Any] = set()
        for el in p.iter(*_TEXT_TAGS):
            if skip and el in skip:
                continue
            tag = el.tag
            if tag == ns.T:
                parts.append(el.text or "")
            elif tag == ns.TAB:
                parts.append("\t")
            elif tag == ns.BR:
                if el.get(ns.TYPE) in (None, "textWrapping"):
                    parts.append("\n")
            elif tag == ns.CR:
                parts.append("\n")
            elif tag == ns.NO_BREAK_HYPHEN:
                parts.append("-")
            elif tag in _SKIPPED_SUBTREES:
                # Fallback repeats the Choice content; deleted text is not what a reader sees.
                if tag == ns.TXBX_CONTENT:
                    boxes.append(el)
                skip.update(el.iter(*_TEXT_TAGS))
            else:
                images += _images(el)
        return _Runs(_tidy("".join(parts)), images, boxes)

    def _paragraph(self, p: Any) -> None:
        ppr = p.find(ns.PPR)
        style_el = ppr.find(ns.PSTYLE) if ppr is not None else None
        style_id = style_el.get(ns.VAL) if style_el is not None else self.styles.default_paragraph
        runs = self._runs(p)
        text = runs.text
        level = self.styles.heading_level(style_id)
        outline = ppr.find(ns.OUTLINE_LVL) if ppr is not None else None
        if outline is not None:
            value = outline.get(ns.VAL, "9")
            level = int(value) + 1 if value.isdigit() and int(value) < 9 else level
        marker, ilvl = self._list_marker(ppr, style_id)
        if level is not None and text.strip():
            if marker is not None and marker.ordered:
                self._heading(text.strip(), level, marker.text, style_id)
            else:
                number, title = split_heading_number(text.replace("\n", " "))
                self._heading(title, level, number, style_id)
        elif marker is not None:
            self.b.list_item(
                text, level=ilvl, marker=marker.text, ordered=marker.ordered, index=self.index
            )
        elif text.strip() and not self._caption(p, text, style_id):
            self._plain(p, ppr, text, style_id)
        if runs.images:
            self.recent_figures = [self._figure(image) for image in runs.images]
        elif text.strip():
            self.recent_figures = []
        for box in runs.boxes:
            self.walk(box)

    def _list_marker(self, ppr: Any, style_id: str | None) -> tuple[Marker | None, int]:
        """The Word list number of a paragraph (own numPr, else its style's) and its level."""
        num_id, ilvl = num_pr(ppr)
        if num_id is None:
            num_id, style_ilvl = self.styles.numbering(style_id)
            if ilvl is None:
                ilvl = style_ilvl
        if num_id is None or num_id == "0":  # numId 0 switches inherited numbering off
            return None, 0
        if ilvl is None:
            ilvl = self.numbering.level_of_style(num_id, style_id)
        marker = self.numbering.next(num_id, ilvl)
        # "List Bullet 2" has its own one-level list; its depth is in the style's name.
        depth = _LIST_STYLE_DEPTH.match(self.styles.name(style_id))
        return marker, max(ilvl, int(depth[1]) - 1) if depth else ilvl

    def _heading(self, title: str, level: int, number: str | None, style_id: str | None) -> None:
        self.nester.reset()
        number = number.rstrip(".)") or None if number is not None else None
        if self.styles.name(style_id).lower() == "title" and self.b.document.title is None:
            self.b.document.title = title
        self.b.heading(title, level, self.index, number=number)

    def _caption(self, p: Any, text: str, style_id: str | None) -> bool:
        """Attach a caption paragraph to the figure above it or a table next to it."""
        is_caption_style = self.styles.name(style_id).lower() == "caption"
        if self.recent_figures and (is_caption_style or _CAPTION_TEXT.match(text)):
            for figure in self.recent_figures:
                figure.caption = text.strip()
            self.recent_figures = []
            return True
        if is_caption_style or _TABLE_CAPTION.match(text):
            blocks = self.b.document.blocks
            following = p.getnext()
            if following is not None and following.tag == ns.TBL:
                self.table_caption = text.strip()
                return True
            if blocks and isinstance(blocks[-1], Table) and blocks[-1].caption is None:
                blocks[-1].caption = text.strip()
                return True
        return False

    def _plain(self, p: Any, ppr: Any, text: str, style_id: str | None) -> None:
        """A paragraph without Word numbering; a typed marker ("1. Do x") makes it a list item."""
        pieces = numbered_pieces(text)
        if len(pieces) > 1:  # "3.1 Do x", a line break, "3.2 Do y": a paragraph each
            for _, piece in pieces:
                self._plain(p, ppr, piece, style_id)
            return
        first, _, rest = text.partition("\n")
        typed = parse_marker(first.strip())
        if typed is None:
            self.b.paragraph(text, self.index)
            return
        body = typed.text + ("\n" + rest if rest else "")
        numbered = typed.style == "num" or typed.style.startswith("dotted")
        if numbered and not rest and looks_like_title(typed.text) and self._all_bold(p, style_id):
            self._heading(typed.text, typed.depth, typed.marker, style_id)  # a typed "2. SCOPE"
            return
        indent = 0
        ind = ppr.find(ns.IND) if ppr is not None else None
        if ind is not None:
            raw = ind.get(ns.LEFT) or ind.get(ns.START_ATTR) or "0"
            indent = int(raw) if raw.lstrip("-").isdigit() else 0
        level = self.nester.level(indent, typed)
        self.b.list_item(
            body, level=level, marker=typed.marker, ordered=typed.ordered, index=self.index
        )

    def _all_bold(self, p: Any, style_id: str | None) -> bool:
        """Every run with text is bold (directly, by character style, or by paragraph style)."""
        style_bold = self.styles.bold(style_id)
        seen = False
        for run in p.iter(ns.R):
            if not any((t.text or "").strip() for t in run.iterchildren(ns.T)):
                continue
            seen = True
            rpr = run.find(ns.RPR)
            bold = rpr.find(ns.B) if rpr is not None else None
            if bold is not None:
                if not on(bold):
                    return False
                continue
            rstyle = rpr.find(ns.RSTYLE) if rpr is not None else None
            if not (style_bold or (rstyle is not None and self.styles.bold(rstyle.get(ns.VAL)))):
                return False
        return seen

    def _figure(self, image: _Image) -> Figure:
        ref = None
        rel = self.part.rels.get(image.rel_id)
        if rel is None or rel.is_external or image.linked:
            self.linked_images += 1
        else:
            target = rel.target_part
            mime = target.content_type
            if mime in _IMAGE_TYPES or mime.startswith("image/"):
                ref = self.b.document.add_image(target.blob, mime)
        return self.b.figure(self.index, image=ref, caption=image.alt or None)

    # -- tables -------------------------------------------------------------------------------

    def _table(self, tbl: Any) -> None:
        rows: list[list[str]] = []
        images: list[_Image] = []
        first_row_header = False
        for n, tr in enumerate(_children(tbl, ns.TR)):
            trpr = tr.find(ns.TRPR)
            row: list[str] = []
            if trpr is not None:
                before = trpr.find(ns.GRID_BEFORE)
                if before is not None:
                    row += [""] * max(0, min(int_attr(before, 0), 100))
            cells = list(_children(tr, ns.TC))
            for tc in cells:
                tcpr = tc.find(ns.TCPR)
                span, continued = 1, False
                if tcpr is not None:
                    grid_span = tcpr.find(ns.GRID_SPAN)
                    if grid_span is not None:
                        span = max(1, min(int_attr(grid_span, 1), 100))
                    merge = tcpr.find(ns.V_MERGE)
                    continued = merge is not None and merge.get(ns.VAL) != "restart"
                text = "" if continued else self._cell_text(tc, images)
                row += [text] + [""] * (span - 1)
            if n == 0:
                first_row_header = (trpr is not None and on(trpr.find(ns.TBL_HEADER))) or (
                    bool(cells) and self._row_bold(tr)
                )
            rows.append(row)
        header = rows.pop(0) if rows and first_row_header else None
        caption, self.table_caption = self.table_caption, None
        self.b.table(rows, self.index, header=header, caption=caption)
        self.recent_figures = [self._figure(image) for image in images]

    def _cell_text(self, tc: Any, images: list[_Image]) -> str:
        lines: list[str] = []
        for child in tc.iterchildren():
            if child.tag == ns.P:
                runs = self._runs(child)
                images += runs.images
                marker, _ = self._list_marker(child.find(ns.PPR), _style_of(child))
                text = runs.text
                if marker is not None:
                    text = f"{marker.text} {text}"
                if text.strip():
                    lines.append(text)
                for box in runs.boxes:
                    lines += [self._runs(p).text for p in box.iter(ns.P)]
            elif child.tag == ns.TBL:  # nested tables are flattened to `a | b` lines
                for tr in _children(child, ns.TR):
                    cells = [self._cell_text(tc2, images) for tc2 in _children(tr, ns.TC)]
                    lines.append(" | ".join(c.replace("\n", " ") for c in cells))
            elif child.tag in (ns.SDT, ns.CUSTOM_XML):
                content = child.find(ns.SDT_CONTENT) if child.tag == ns.SDT else child
                if content is not None:
                    lines.append(self._cell_text(content, images))
        return "\n".join(line for line in lines if line.strip())

    def _row_bold(self, tr: Any) -> bool:
        paragraphs = [p for p in tr.iter(ns.P) if any((t.text or "").strip() for t in p.iter(ns.T))]
        return bool(paragraphs) and all(self._all_bold(p, _style_of(p)) for p in paragraphs)


def _style_of(p: Any) -> str | None:
    ppr = p.find(ns.PPR)
    style = ppr.find(ns.PSTYLE) if ppr is not None else None
    return style.get(ns.VAL) if style is not None else None


def _children(parent: Any, tag: str) -> Any:
    """Children with `tag`, looking through content controls and custom XML wrappers."""
    for child in parent.iterchildren():
        if child.tag == tag:
            yield child
        elif child.tag == ns.SDT:
            content = child.find(ns.SDT_CONTENT)
            if content is not None:
                yield from _children(content, tag)
        elif child.tag == ns.CUSTOM_XML:
            yield from _children(child, tag)


def _images(el: Any) -> list[_Image]:
    """Images in a `w:drawing` (DrawingML blip) or `w:pict` (VML imagedata)."""
    doc_pr = next(el.iter(ns.DOC_PR), None)
    alt = ""
    if doc_pr is not None:
        alt = (doc_pr.get("descr") or doc_pr.get("title") or "").strip()
    found: list[_Image] = []
    for blip in el.iter(ns.BLIP):
        embed, link = blip.get(ns.R_EMBED), blip.get(ns.R_LINK)
        if embed:
            found.append(_Image(embed, False, alt))
        elif link:
            found.append(_Image(link, True, alt))
    for data in el.iter(ns.IMAGEDATA):
        rel_id = data.get(ns.R_ID)
        if rel_id:
            found.append(_Image(rel_id, False, alt or (data.get("title") or "").strip()))
    return found


def _tidy(text: str) -> str:
    """Trim spaces at line ends; keep the line breaks a writer typed."""
    if "\n" not in text:
        return text.strip()
    return "\n".join(line.strip() for line in text.strip().split("\n"))
