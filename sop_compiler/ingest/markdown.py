"""Markdown reader (markdown-it-py, CommonMark plus tables); raw HTML is never rendered."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sop_compiler.config import Settings
from sop_compiler.ingest._text_decode import BlockBuilder, decode_text
from sop_compiler.ingest.base import Reader, Source
from sop_compiler.ingest.flowchart import FLOWCHART_LANGUAGES, is_mermaid_flowchart
from sop_compiler.ingest.html import html_fragment_text, load_image
from sop_compiler.ingest.text import split_heading_number
from sop_compiler.models import Document

if TYPE_CHECKING:
    from markdown_it.token import Token

__all__ = ["MarkdownReader"]

_OPEN_HIDDEN = re.compile(r"^<\s*(script|style|template|noscript|iframe|object)\b", re.I)
_SPACES = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)")
_CLOSE_HIDDEN = re.compile(r"</\s*(script|style|template|noscript|iframe|object)\s*>", re.I)


class MarkdownReader(Reader):
    """Reads .md/.markdown files with a real CommonMark parser."""

    format = "markdown"
    suffixes = (".md", ".markdown")

    def read(self, source: Source, *, settings: Settings) -> Document:
        """Parse the Markdown and turn its block tokens into blocks in reading order."""
        from markdown_it import MarkdownIt

        text, notices = decode_text(source)
        parser = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
        builder = BlockBuilder(source, self.format)
        builder.document.notices.extend(notices)
        _TokenWalker(builder).run(parser.parse(text))
        return builder.document


@dataclass
class _Item:
    marker: str
    ordered: bool
    level: int
    index: int | None
    texts: list[str] = field(default_factory=list)
    emitted: bool = False


@dataclass(frozen=True)
class _Image:
    src: str
    alt: str
    index: int | None


class _TokenWalker:
    def __init__(self, builder: BlockBuilder) -> None:
        self.b = builder
        self.lists: list[bool] = []  # ordered flag of each open list
        self.items: list[_Item] = []
        self.quote_depth = 0
        self.quote_lines: list[str] = []
        self.quote_index: int | None = None
        self.quote_prefix = ""
        self.images: list[_Image] = []

    def run(self, tokens: list[Token]) -> None:
        from markdown_it.token import Token

        done = Token("sopc_walked", "", 0)
        i = 0
        while i < len(tokens):
            after = self._token(tokens, i)
            # The walk only looks ahead: each walked token is dropped, so that a big file's
            # tokens and its blocks are never all in memory at once (issue 17).
            tokens[i:after] = [done] * (min(after, len(tokens)) - i)
            i = after
        self._emit_images()

    def _token(self, tokens: list[Token], i: int) -> int:
        tok = tokens[i]
        kind = tok.type
        index = tok.map[0] if tok.map else None
        if kind == "heading_open":
            text = self._inline(tokens[i + 1], index)
            if self.quote_depth:
                self.quote_lines.append(text)
            elif text:
                self._flush_item()
                number, title = split_heading_number(text.replace("\n", " "))
                self.b.heading(title, int(tok.tag[1]), index, number=number)
            self._emit_images()
            return i + 3
        if kind == "paragraph_open":
            self._text(self._inline(tokens[i + 1], index), index)
            return i + 3
        if kind in ("bullet_list_open", "ordered_list_open"):
            self._flush_item()
            self.lists.append(kind == "ordered_list_open")
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
        elif kind == "list_item_open":
            self._flush_item()
            ordered = bool(self.lists and self.lists[-1])
            marker = f"{tok.info}{tok.markup}" if ordered else "•"
            if self.quote_depth:
                self.quote_prefix = "  " * (len(self.lists) - 1) + marker + " "
            else:
                self.items.append(_Item(marker, ordered, len(self.lists) - 1, index))
        elif kind == "list_item_close":
            if not self.quote_depth:
                self._flush_item()
                self.items.pop()
        elif kind in ("fence", "code_block"):
            body = tok.content.rstrip("\n")
            if self.quote_depth:
                self.quote_lines.append(body)
            else:
                self._flush_item()
                language = tok.info.split()[0] if tok.info.strip() else None
                if not self._flowchart(body, language, index):
                    self.b.code(body, index, language=language)
        elif kind == "blockquote_open":
            self._flush_item()
            if self.quote_depth == 0:
                self.quote_lines, self.quote_index = [], index
            self.quote_depth += 1
        elif kind == "blockquote_close":
            self.quote_depth -= 1
            if self.quote_depth == 0:
                self.b.quote("\n".join(line for line in self.quote_lines if line), self.quote_index)
                self._emit_images()
        elif kind == "html_block":
            self._text(html_fragment_text(tok.content), index)
        elif kind == "table_open":
            return self._table(tokens, i, index)
        return i + 1

    def _flowchart(self, body: str, language: str | None, index: int | None) -> bool:
        """A ```mermaid flowchart or ```dot fence as a flowchart block (True when added)."""
        notation = FLOWCHART_LANGUAGES.get((language or "").lower())
        if notation is None or (notation == "mermaid" and not is_mermaid_flowchart(body)):
            return False
        return self.b.flowchart(body, notation, index)

    def _text(self, text: str, index: int | None) -> None:
        """Paragraph-level text: part of a quote, of the open list item, or a paragraph."""
        if self.quote_depth:
            self.quote_lines.append(self.quote_prefix + text)
            self.quote_prefix = ""
        elif self.items and not self.items[-1].emitted:
            self.items[-1].texts.append(text)
        elif text:
            self.b.paragraph(text, index)
        if not self.quote_depth and not (self.items and not self.items[-1].emitted):
            self._emit_images()

    def _flush_item(self) -> None:
        """Emit the innermost open list item once its own text is complete."""
        if self.items and not self.items[-1].emitted:
            item = self.items[-1]
            item.emitted = True
            self.b.list_item(
                "\n".join(item.texts),
                level=item.level,
                marker=item.marker,
                ordered=item.ordered,
                index=item.index,
            )
            self._emit_images()

    def _emit_images(self) -> None:
        for image in self.images:
            ref = load_image(image.src, self.b.source, self.b, image.index) if image.src else None
            self.b.figure(image.index, image=ref, caption=image.alt or None)
        self.images = []

    def _inline(self, tok: Token, index: int | None) -> str:
        """Plain text of an inline token; code spans keep their backticks, HTML tags vanish."""
        out: list[str] = []
        hidden = False
        for child in tok.children or []:
            kind = child.type
            if kind == "html_inline":
                if _OPEN_HIDDEN.match(child.content) and not _CLOSE_HIDDEN.search(child.content):
                    hidden = True
                elif _CLOSE_HIDDEN.search(child.content):
                    hidden = False
                continue
            if hidden:
                continue
            if kind == "text":
                out.append(child.content)
            elif kind in ("softbreak", "hardbreak"):
                out.append("\n")
            elif kind == "code_inline":
                out.append(f"`{child.content}`")
            elif kind == "image":
                alt = "".join(c.content for c in child.children or []) or child.content
                src = str(child.attrGet("src") or "")
                self.images.append(_Image(src, alt.strip(), index))
        # Dropped tags leave doubled spaces behind ("a <script>..</script> b").
        return _SPACES.sub(" ", "".join(out)).strip()

    def _table(self, tokens: list[Token], i: int, index: int | None) -> int:
        self._flush_item()
        header: list[str] | None = None
        rows: list[list[str]] = []
        row: list[str] = []
        in_head = False
        while i < len(tokens) and tokens[i].type != "table_close":
            tok = tokens[i]
            if tok.type == "thead_open":
                in_head = True
            elif tok.type == "thead_close":
                in_head = False
            elif tok.type == "tr_open":
                row = []
            elif tok.type == "tr_close":
                if in_head and header is None:
                    header = row
                else:
                    rows.append(row)
            elif tok.type == "inline":
                row.append(self._inline(tok, index))
            i += 1
        self.b.table(rows, index, header=header)
        self._emit_images()
        return i + 1
