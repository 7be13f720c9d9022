"""HTML reader (BeautifulSoup with the stdlib parser): nothing is executed, fetched or rendered."""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sop_compiler.config import Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest._text_decode import BlockBuilder, decode_text, format_number
from sop_compiler.ingest.base import Reader, Source
from sop_compiler.ingest.text import numbered_pieces, split_heading_number
from sop_compiler.models import Document, ImageRef

if TYPE_CHECKING:
    from bs4 import BeautifulSoup
    from bs4.element import Tag

__all__ = ["HtmlReader", "html_fragment_text", "load_image"]

# Never rendered: code, embedded content, form controls, and site chrome around the SOP.
_SKIP = frozenset(
    {"script", "style", "template", "noscript", "iframe", "frame", "frameset", "object", "embed"}
    | {"applet", "param", "head", "link", "meta", "base", "input", "select", "textarea", "button"}
    | {"option", "optgroup", "datalist", "output", "canvas", "audio", "video", "source", "track"}
    | {"map", "svg", "math", "nav", "header", "footer", "dialog"}
)
_QUIET_SKIP = frozenset({"head", "link", "meta", "base", "param", "source", "track", "optgroup"})
_BLOCK = frozenset(
    {"html", "body", "main", "article", "section", "div", "aside", "address", "p", "hr"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd", "pre", "center"}
    | {"table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "blockquote", "figure"}
    | {"figcaption", "form", "fieldset", "legend", "details", "summary", "header", "footer"}
)
_CONTAINERS_KEEP_CHROME = ("article", "main")
_SPACE = re.compile(r"[ \t\n\r\f\v]+")
_LINE_SPACE = re.compile(r"[ \t\f\v\r]+")
_OL_TYPES = {"1": "decimal", "a": "lower-alpha", "A": "upper-alpha", "i": "lower-roman"}
_OL_TYPES["I"] = "upper-roman"
_IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
_IMAGE_MAGIC[b"GIF8"] = "image/gif"
_MAX_IMAGE_BYTES = 20 * 1024 * 1024
# Real pages nest a few dozen elements deep; the reading walk recurses, so depth is capped.
MAX_DEPTH = 150


class HtmlReader(Reader):
    """Reads .html/.htm files: headings, paragraphs, lists, tables, figures, code, quotes."""

    format = "html"
    suffixes = (".html", ".htm")

    def read(self, source: Source, *, settings: Settings) -> Document:
        """Parse the HTML and walk its elements in document order."""
        text, notices = decode_text(source)
        soup = _parse(text)
        depth = _depth(soup)
        if depth > MAX_DEPTH:
            raise InputError(
                f"HTML elements nest {depth} deep, over the {MAX_DEPTH} this reader follows",
                path=source.name,
            )
        builder = BlockBuilder(source, self.format)
        builder.document.notices.extend(notices)
        walker = _Walker(builder, soup)
        walker.walk(soup)
        walker.flush()
        if soup.title is not None and soup.title.string and soup.title.string.strip():
            builder.document.title = _SPACE.sub(" ", soup.title.string).strip()
        if walker.skipped:
            names = ", ".join(f"<{name}>" for name in sorted(walker.skipped))
            builder.notice("html_skipped", f"skipped {names} (never run, fetched or shown)")
        return builder.document


def _depth(soup: Any) -> int:
    """How deep elements nest, found without recursion (the walk that reads them recurses)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(soup, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in getattr(node, "contents", ()))
    return deepest


def _parse(markup: str) -> BeautifulSoup:
    """Parse with the stdlib parser; markup it rejects (a broken `<![` section) is escaped."""
    from bs4 import BeautifulSoup
    from bs4.exceptions import ParserRejectedMarkup

    for escaped in (markup, markup.replace("<!", "&lt;!"), markup.replace("<", "&lt;")):
        try:
            return BeautifulSoup(escaped, "html.parser")
        except ParserRejectedMarkup:
            continue
    raise AssertionError("unreachable: markup without tags is always accepted")


def html_fragment_text(fragment: str) -> str:
    """The visible text of an HTML fragment: tags stripped, script/style content dropped."""
    soup = _parse(fragment)
    out: list[str] = []
    _Walker(None, soup).inline(soup, out)
    return _tidy("".join(out))


def load_image(
    src: str, source: Source, builder: BlockBuilder, index: int | None
) -> ImageRef | None:
    """Image bytes for `src` when they are in a data: URI or a file inside the SOP's folder.

    Remote images are never fetched; anything not read is reported as a notice.
    """
    src = src.strip()
    parts = urlsplit(src)
    if parts.scheme == "data":
        return _data_uri_image(src, builder, index)
    if parts.scheme or src.startswith("//"):
        builder.notice("image_not_fetched", f"remote image {src[:200]!r} was not fetched", index)
        return None
    folder = source.path.parent.resolve()
    try:
        target = (folder / unquote(parts.path)).resolve()
        inside = target.is_relative_to(folder) and target.is_file()
        data = target.read_bytes() if inside and target.stat().st_size <= _MAX_IMAGE_BYTES else b""
    except (OSError, ValueError):
        inside, data = False, b""
    mime = _sniff_image(data)
    if not inside or mime is None:
        why = "is outside the SOP folder or missing" if not inside else "is not a PNG/JPEG/GIF"
        builder.notice("image_unread", f"image {src[:200]!r} {why}; not read", index)
        return None
    return builder.document.add_image(data, mime)


def _data_uri_image(src: str, builder: BlockBuilder, index: int | None) -> ImageRef | None:
    head, _, payload = src.partition(",")
    data = b""
    if head.endswith(";base64") and len(payload) <= _MAX_IMAGE_BYTES * 4 // 3 + 4:
        try:
            data = base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            data = b""
    mime = _sniff_image(data)
    if mime is None:
        builder.notice("image_unread", "inline data: image is not a base64 PNG/JPEG/GIF", index)
        return None
    return builder.document.add_image(data, mime)


def _sniff_image(data: bytes) -> str | None:
    for magic, mime in _IMAGE_MAGIC.items():
        if data.startswith(magic):
            return mime
    return None


def _is_breadcrumb(tag: Tag) -> bool:
    """A breadcrumb trail: `aria-label="breadcrumb"` or a class or id naming one."""
    if "breadcrumb" in str(tag.get("aria-label") or "").casefold():
        return True
    classes: Any = tag.get("class") or []
    names = [*(classes if isinstance(classes, list) else [classes]), tag.get("id") or ""]
    return any("breadcrumb" in str(name).casefold() for name in names)


def _tidy(text: str) -> str:
    """Collapse spaces inside lines and drop empty lines."""
    lines = (_LINE_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _int_attr(tag: Tag, name: str, default: int, low: int, high: int) -> int:
    try:
        value = tag.get(name)
        return default if value is None else max(low, min(high, int(str(value).strip())))
    except ValueError:
        return default


class _Walker:
    """Walks the parse tree once, emitting blocks in document order."""

    def __init__(self, builder: BlockBuilder | None, soup: Any) -> None:
        self.b = builder
        self.skipped: set[str] = set()
        self.index: dict[int, int] = {id(tag): i for i, tag in enumerate(soup.find_all(True))}
        self.buffer: list[str] = []
        self.buffer_index: int | None = None
        self.figures: list[tuple[Tag, str | None]] = []

    def _idx(self, tag: Any) -> int | None:
        return self.index.get(id(tag))

    def _skip(self, tag: Tag) -> bool:
        name = tag.name
        if _is_breadcrumb(tag):
            return True  # "Home › Shipping › Returns and Exchanges": site chrome, not the SOP
        if name not in _SKIP:
            return False
        if name in ("header", "footer") and tag.find_parent(_CONTAINERS_KEEP_CHROME) is not None:
            return False  # an article's own header holds its title
        if name not in _QUIET_SKIP:
            self.skipped.add(name)
        elif name == "head":
            loud = [t.name for t in tag.find_all(True) if t.name in _SKIP - _QUIET_SKIP]
            self.skipped.update(loud)
        return True

    def flush(self) -> None:
        """Emit buffered inline text as a paragraph, then any images it held."""
        assert self.b is not None
        text = _tidy("".join(self.buffer))
        if text:
            for _, piece in numbered_pieces(text):  # "3.1 ...<br>3.2 ...": a paragraph each
                self.b.paragraph(piece, self.buffer_index)
        self.buffer = []
        self.buffer_index = None
        for img, caption in self.figures:
            self._figure(img, caption)
        self.figures = []

    def _figure(self, img: Tag, caption: str | None) -> None:
        assert self.b is not None
        index = self._idx(img)
        alt = _SPACE.sub(" ", str(img.get("alt") or img.get("title") or "")).strip()
        src = str(img.get("src") or "")
        image = load_image(src, self.b.source, self.b, index) if src else None
        self.b.figure(index, image=image, caption=caption or alt or None)

    def walk(self, node: Any) -> None:
        """Emit the blocks under `node`."""
        from bs4.element import NavigableString, Tag

        for child in node.children:
            if isinstance(child, Tag):
                if self._skip(child):
                    continue
                if child.name in _BLOCK or child.name == "img":
                    self._block(child)
                else:
                    if self.buffer_index is None:
                        self.buffer_index = self._idx(child)
                    self._inline_tag(child, self.buffer)
            elif type(child) is NavigableString:  # subclasses are comments, doctypes, CDATA
                if self.buffer_index is None and child.strip():
                    self.buffer_index = self._idx(node)
                self.buffer.append(_SPACE.sub(" ", str(child)))

    def _block(self, tag: Tag) -> None:
        assert self.b is not None
        name = tag.name
        self.flush()
        index = self._idx(tag)
        if name in ("h1", "h2", "h3", "h4", "h5", "h6"):
            out: list[str] = []
            self.inline(tag, out)
            number, title = split_heading_number(_tidy("".join(out)).replace("\n", " "))
            if title:
                self.b.heading(title, int(name[1]), index, number=number)
            self.flush()
        elif name in ("ul", "ol"):
            self._list(tag, 0)
        elif name == "table":
            self._table(tag)
        elif name == "pre":
            code = tag.find("code")
            classes = [*(tag.get("class") or []), *((code.get("class") or []) if code else [])]
            language = next((c[9:] for c in classes if c.startswith("language-")), None)
            self.b.code(self._raw_text(tag).strip("\n"), index, language=language)
        elif name == "blockquote":
            out = []
            self.inline(tag, out)
            self.b.quote(_tidy("".join(out)), index)
        elif name == "img":
            self._figure(tag, None)
        elif name == "figure":
            caption_tag = tag.find("figcaption")
            caption = None
            if caption_tag is not None:
                parts: list[str] = []
                self.inline(caption_tag, parts)
                caption = _tidy("".join(parts)).replace("\n", " ") or None
                caption_tag.extract()
            images = tag.find_all("img")
            for img in images:
                img.extract()
            self.walk(tag)
            self.flush()
            for img in images:
                self._figure(img, caption)
            if not images and caption:
                self.b.paragraph(caption, index)
        elif name == "hr":
            return
        else:
            self.walk(tag)
            self.flush()

    def _list(self, tag: Tag, level: int) -> None:
        assert self.b is not None
        ordered = tag.name == "ol"
        style = _OL_TYPES.get(str(tag.get("type", "1")), "decimal")
        reverse = tag.has_attr("reversed")
        items = [li for li in tag.find_all("li", recursive=False)]
        counter = _int_attr(tag, "start", len(items) if reverse else 1, -(10**6), 10**6)
        from bs4.element import Tag

        for child in tag.children:
            if not isinstance(child, Tag):
                continue
            if child.name in ("ul", "ol"):
                self._list(child, level + 1)  # a list nested directly in a list (invalid, common)
            if child.name != "li":
                continue
            counter = _int_attr(child, "value", counter, -(10**6), 10**6)
            marker = f"{format_number(counter, style)}." if ordered else "•"
            counter += -1 if reverse else 1
            self._item(child, level, marker, ordered)

    def _item(self, li: Tag, level: int, marker: str, ordered: bool) -> None:
        assert self.b is not None
        from bs4.element import NavigableString, Tag

        out: list[str] = []
        emitted = False
        for child in li.children:
            if isinstance(child, Tag) and child.name in ("ul", "ol", "table", "pre", "blockquote"):
                if not emitted:
                    self.b.list_item(
                        _tidy("".join(out)),
                        level=level,
                        marker=marker,
                        ordered=ordered,
                        index=self._idx(li),
                    )
                    emitted, out = True, []
                    self._emit_figures()
                if child.name in ("ul", "ol"):
                    self._list(child, level + 1)
                else:
                    self._block(child)
            elif isinstance(child, Tag):
                if not self._skip(child):
                    self._inline_tag(child, out)
            elif type(child) is NavigableString:
                out.append(_SPACE.sub(" ", str(child)))
        if not emitted:
            self.b.list_item(
                _tidy("".join(out)),
                level=level,
                marker=marker,
                ordered=ordered,
                index=self._idx(li),
            )
            self._emit_figures()
        elif _tidy("".join(out)):
            self.b.paragraph(_tidy("".join(out)), self._idx(li))

    def _emit_figures(self) -> None:
        for img, caption in self.figures:
            self._figure(img, caption)
        self.figures = []

    def _table(self, table: Tag) -> None:
        assert self.b is not None
        rows = self._rows(table)
        header: list[str] | None = None
        grid: list[list[str]] = []
        spans: dict[int, int] = {}
        for n, (tr, in_head) in enumerate(rows):
            row: list[str] = []
            cells = tr.find_all(("td", "th"), recursive=False)
            col = 0
            for cell in cells:
                while spans.get(col, 0) > 0:
                    row.append("")
                    spans[col] -= 1
                    col += 1
                out: list[str] = []
                self.inline(cell, out)
                colspan = _int_attr(cell, "colspan", 1, 1, 100)
                rowspan = _int_attr(cell, "rowspan", 1, 1, 10000)
                row += [_tidy("".join(out))] + [""] * (colspan - 1)
                if rowspan > 1:
                    for c in range(col, col + colspan):
                        spans[c] = rowspan - 1
                col += colspan
            for c in sorted(k for k, v in spans.items() if k >= col and v > 0):
                row += [""] * (c - len(row)) + [""]
                spans[c] -= 1
            is_header = in_head or (bool(cells) and all(c.name == "th" for c in cells))
            if n == 0 and is_header:
                header = row
            else:
                grid.append(row)
        caption_tag = table.find("caption")
        caption = _tidy(caption_tag.get_text(" ")) if caption_tag is not None else None
        if grid or header:
            self.b.table(grid, self._idx(table), header=header, caption=caption or None)
        self._emit_figures()

    @staticmethod
    def _rows(table: Tag) -> list[tuple[Tag, bool]]:
        rows: list[tuple[Tag, bool]] = []
        for child in table.find_all(("thead", "tbody", "tfoot", "tr"), recursive=False):
            if child.name == "tr":
                rows.append((child, False))
            else:
                in_head = child.name == "thead"
                rows += [(tr, in_head) for tr in child.find_all("tr", recursive=False)]
        return rows

    def inline(self, node: Any, out: list[str]) -> None:
        """Append the visible text under `node` to `out` (blocks become line breaks)."""
        from bs4.element import NavigableString, Tag

        for child in node.children:
            if isinstance(child, Tag):
                if not self._skip(child):
                    self._inline_tag(child, out)
            elif type(child) is NavigableString:
                out.append(_SPACE.sub(" ", str(child)))

    def _inline_tag(self, tag: Tag, out: list[str]) -> None:
        name = tag.name
        if name == "br":
            out.append("\n")
        elif name == "img":
            if self.b is not None:
                self.figures.append((tag, None))
        elif name == "code":
            out.append("`" + _SPACE.sub(" ", self._raw_text(tag)).strip() + "`")
        elif name == "table":
            out.append("\n")
            for tr, _ in self._rows(tag):
                cells = []
                for cell in tr.find_all(("td", "th"), recursive=False):
                    parts: list[str] = []
                    self.inline(cell, parts)
                    cells.append(_tidy("".join(parts)).replace("\n", " "))
                out.append(" | ".join(cells) + "\n")
        elif name in _BLOCK:
            out.append("\n")
            self.inline(tag, out)
            out.append("\n")
        else:
            self.inline(tag, out)

    def _raw_text(self, tag: Tag) -> str:
        from bs4.element import NavigableString, Tag

        parts: list[str] = []
        for child in tag.children:
            if isinstance(child, Tag):
                if child.name == "br":
                    parts.append("\n")
                elif not self._skip(child):
                    parts.append(self._raw_text(child))
            elif type(child) is NavigableString:
                parts.append(str(child))
        return "".join(parts)
