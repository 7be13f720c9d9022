"""Markdown reader (markdown-it-py, CommonMark plus tables); raw HTML is never rendered."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sop_compiler.config import Settings
from sop_compiler.ingest._text_decode import BlockBuilder, decode_text
from sop_compiler.ingest.base import Reader, Source
from sop_compiler.ingest.flowchart import FLOWCHART_LANGUAGES, is_mermaid_flowchart
from sop_compiler.ingest.html import html_fragment_text, load_image
from sop_compiler.ingest.text import numbered_pieces, split_heading_number
from sop_compiler.models import Document

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

__all__ = ["MarkdownReader"]

_OPEN_HIDDEN = re.compile(r"^<\s*(script|style|template|noscript|iframe|object)\b", re.I)
_SPACES = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)")
_CLOSE_HIDDEN = re.compile(r"</\s*(script|style|template|noscript|iframe|object)\s*>", re.I)


_TASK_BOX = re.compile(r"^\[[ xX]\]\s+")


class MarkdownReader(Reader):
    """Reads .md/.markdown files with a real CommonMark parser."""

    format = "markdown"
    suffixes = (".md", ".markdown")

    def read(self, source: Source, *, settings: Settings) -> Document:
        """Parse the Markdown and turn its block tokens into blocks in reading order."""
        from markdown_it import MarkdownIt

        text, notices = decode_text(source)
        pieces = Pieces(text)  # let go as the parse passes them: the text is not held whole
        del text
        parser = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
        builder = BlockBuilder(source, self.format)
        builder.document.notices.extend(notices)
        walker = _TokenWalker(builder)
        for tokens in parse_pieces(parser, pieces):
            walker.run(tokens)
        walker.finish()
        return builder.document


# Characters of Markdown parsed at once. A big file is parsed piece by piece, so that its
# tokens (about 30x the text they come from) are never all in memory at once (issue 17).
WINDOW = 1 << 14


# Characters of the decoded text held as one piece (see Pieces).
PIECE = 1 << 16


class Pieces:
    """A text cut in pieces, each let go once the parse has passed it.

    A big file's document grows as its text is read: the text it came from is let go as it
    does, so the two are never both whole in memory (issue 17).
    """

    def __init__(self, text: str, size: int | None = None) -> None:
        self.size = size = size or PIECE
        self._pieces = [text[i : i + size] for i in range(0, len(text), size)]
        self._length = len(text)
        self._forgotten = 0  # what comes before it is let go
        self.defines_links = "]:" in text  # see parse_pieces

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, where: slice) -> str:
        start, end = where.start, min(where.stop, self._length)
        if start >= end:
            return ""
        first, last = start // self.size, (end - 1) // self.size
        parts = self._pieces[first : last + 1]
        if start < 0 or not parts[0]:
            raise ValueError(f"text before {self._forgotten} was let go; {start} is before it")
        text = parts[0] if len(parts) == 1 else "".join(parts)
        return text[start - first * self.size : end - first * self.size]

    def newline(self, start: int) -> int:
        """The offset of the first line end at or after `start`; -1 when there is none."""
        for k in range(start // self.size, len(self._pieces)):
            found = self._pieces[k].find("\n", max(0, start - k * self.size))
            if found >= 0:
                return k * self.size + found
        return -1

    def forget_before(self, pos: int) -> None:
        """Let go of every piece that ends before `pos`: nothing reads before it again."""
        for k in range(pos // self.size - 1, -1, -1):
            if not self._pieces[k]:
                break
            self._pieces[k] = ""
            self._forgotten = max(self._forgotten, (k + 1) * self.size)


def parse_pieces(
    parser: MarkdownIt, text: str | Pieces, *, window: int | None = None
) -> Iterator[list[Token]]:
    """The tokens of `text`, in consecutive pieces that together equal one parse of it.

    CommonMark builds blocks line by line and never reopens a closed one, so every top-level
    block of a window (and every item of a top-level list) but the last is what a parse of the
    whole text makes of it; the last may be cut by the window's end and is parsed again as the
    start of the next window. A list cut between its items is closed and reopened there, which
    changes no block read from it. A piece bigger than the window doubles the window until it
    fits. Link reference definitions hold for the whole document, so when the text may hold one
    they are collected first, in a pass that only parses blocks; lines are numbered as in the
    whole text.
    """
    window = window or WINDOW
    env: dict[str, Any] = {}
    pieces = Pieces(text) if isinstance(text, str) else text
    del text
    if pieces.defines_links:  # `[label]: url` is the only syntax whose meaning reaches other blocks
        for _ in _windows(parser, pieces, env, window=window, inline=False):
            pass
    yield from _windows(parser, pieces, env, window=window, inline=True)


def _windows(
    parser: MarkdownIt, text: Pieces, env: dict[str, Any], *, window: int, inline: bool
) -> Iterator[list[Token]]:
    from markdown_it.rules_core import block, normalize
    from markdown_it.rules_core.state_core import StateCore

    later = [rule for rule in parser.core.ruler.getRules("") if rule not in (normalize, block)]
    pos, line, size = 0, 0, window
    while pos < len(text):
        end = text.newline(pos + size)
        end = len(text) if end < 0 else end + 1
        state = StateCore(text[pos:end], parser, env)
        known = len(env.get("references", {}))
        normalize(state)
        block(state)
        if end == len(text):
            cut, lines = len(state.tokens), 0
        else:
            cut, lines = _last_piece(state.tokens)
            # A definition in the part parsed again (which may end mid-definition) is defined
            # when that part is: the first definition of a label is the one that holds.
            references = env.get("references", {})
            # Newest first, and only those: a file may hold many definitions.
            added = list(itertools.islice(reversed(references), len(references) - known))
            for label in added:
                if references[label]["map"][0] >= lines:
                    del references[label]
            if lines == 0:  # one block fills the window: parse a bigger one
                size *= 2
                continue
        tokens = state.tokens[:cut]
        if cut < len(state.tokens) and state.tokens[cut].type == "list_item_open":
            tokens.append(_close_list(state.tokens, cut))
        del state.tokens[cut:]
        if inline:
            state.tokens = tokens
            for rule in later:
                rule(state)
            for token in tokens:
                if token.map:
                    token.map = [token.map[0] + line, token.map[1] + line]
            yield tokens
        del tokens, state  # the piece is walked: its tokens go before the next is parsed
        if end == len(text):
            return
        pos = _skip_lines(text, pos, lines)
        if inline:  # the last pass: what comes before `pos` is parsed for good
            text.forget_before(pos)
        line += lines
        size = window


def _last_piece(tokens: list[Token]) -> tuple[int, int]:
    """Index and line of the last top-level block or top-level list item (line 0: none)."""
    for index in range(len(tokens) - 1, -1, -1):
        token = tokens[index]
        starts = token.level == 0 and token.nesting >= 0
        item = token.level == 1 and token.type == "list_item_open"
        if (starts or item) and token.map and token.map[0] > 0:
            return index, token.map[0]
    return 0, 0


def _close_list(tokens: list[Token], item: int) -> Token:
    """The closing token of the top-level list that holds the item at index `item`."""
    from markdown_it.token import Token

    for index in range(item - 1, -1, -1):
        kind = tokens[index].type
        if tokens[index].level == 0 and kind in ("bullet_list_open", "ordered_list_open"):
            return Token(kind.replace("_open", "_close"), tokens[index].tag, -1)
    raise AssertionError("a list item outside a list")  # pragma: no cover


def _skip_lines(text: Pieces, pos: int, lines: int) -> int:
    """The offset in `text` of the line `lines` lines after the one starting at `pos`."""
    for _ in range(lines):
        end = text.newline(pos)
        pos = len(text) if end < 0 else end + 1
    return pos


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
        """Walk one piece of the document's tokens (see `parse_pieces`)."""
        i = 0
        while i < len(tokens):
            i = self._token(tokens, i)

    def finish(self) -> None:
        """The document is walked: images still waiting for their text are added."""
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
            for line, piece in numbered_pieces(text):  # "3.1 ...\n3.2 ...": no blank line
                self.b.paragraph(piece, None if index is None else index + line)
        if not self.quote_depth and not (self.items and not self.items[-1].emitted):
            self._emit_images()

    def _flush_item(self) -> None:
        """Emit the innermost open list item once its own text is complete."""
        if self.items and not self.items[-1].emitted:
            item = self.items[-1]
            item.emitted = True
            self.b.list_item(
                # "- [ ] Pull up the account": a checklist's box is no part of the step
                _TASK_BOX.sub("", "\n".join(item.texts), count=1),
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
