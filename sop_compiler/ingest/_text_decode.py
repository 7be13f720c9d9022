"""Shared helpers of the DOCX, Markdown, text and HTML readers: decoding bytes, building blocks."""

from __future__ import annotations

import codecs
import unicodedata
from typing import Any, TypeVar

from pydantic import BaseModel

from sop_compiler.errors import InputError
from sop_compiler.ingest.base import Source
from sop_compiler.models import (
    Code,
    Document,
    Figure,
    Flowchart,
    Heading,
    ImageRef,
    ListItem,
    Notice,
    Paragraph,
    Provenance,
    Quote,
    Table,
)
from sop_compiler.models._packed import Rows

# Longest BOMs first: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v")
_CP1252_UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")
_M = TypeVar("_M", bound=BaseModel)
# One `model_fields_set` per model and set of given fields, shared by every block built so.
_FIELDS_SET: dict[tuple[type[BaseModel], tuple[str, ...]], set[str]] = {}


def decode_text(source: Source) -> tuple[str, list[Notice]]:
    """Decode a text file's bytes to str with `\\n` line ends, or raise InputError if it is binary.

    Order: a BOM wins; then strict UTF-8; then mostly-UTF-8 with a few bad bytes (replaced, with
    a notice); then a legacy single-byte encoding (cp1252 for Western text, else the best guess of
    charset-normalizer), with a notice naming it.
    """
    data = source.data
    notices: list[Notice] = []
    text: str | None = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = _decode_counting(data[len(bom) :], encoding, source, notices)
            break
    if text is None:
        if b"\x00" in data:
            encoding_guess = _bomless_utf16(data)
            if encoding_guess is None:
                raise InputError("looks like binary data, not text", path=source.name)
            text = _decode_counting(data, encoding_guess, source, notices)
        else:
            text = _decode_without_bom(data, source, notices)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    if _looks_binary(text):
        raise InputError("looks like binary data, not text", path=source.name)
    if not text.strip():
        raise InputError("file is empty (only whitespace)", path=source.name)
    del data
    source.release()
    return text, notices


def _decode_counting(data: bytes, encoding: str, source: Source, notices: list[Notice]) -> str:
    """Decode, replacing bad bytes with U+FFFD and reporting how many there were."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        pass
    try:
        escaped = data.decode(encoding, errors="surrogateescape")
    except UnicodeDecodeError:  # UTF-16/32 cannot escape an ASCII byte (an odd byte count)
        escaped = ""
    bad = sum(1 for ch in escaped if "\udc80" <= ch <= "\udcff")
    if bad == 0:  # UTF-16/32 decoders cannot surrogateescape; count the replacements instead
        text = data.decode(encoding, errors="replace")
        bad = text.count("\ufffd")
    else:
        text = "".join("\ufffd" if "\udc80" <= ch <= "\udcff" else ch for ch in escaped)
    notices.append(
        Notice(
            code="encoding",
            message=f"decoded as {encoding}; {bad} invalid byte(s) replaced with U+FFFD",
            prov=Provenance(file=source.name),
        )
    )
    return text


def _decode_without_bom(data: bytes, source: Source, notices: list[Notice]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    escaped = data.decode("utf-8", errors="surrogateescape")
    bad = sum(1 for ch in escaped if "\udc80" <= ch <= "\udcff")
    valid_multibyte = sum(1 for ch in escaped if ord(ch) > 0x7F and not "\udc80" <= ch <= "\udcff")
    # Real UTF-8 text with a few stray bytes (a pasted Latin-1 line) keeps its UTF-8 reading.
    if valid_multibyte > 0 and valid_multibyte >= bad:
        return _decode_counting(data, "utf-8", source, notices)
    encoding = _legacy_encoding(data)
    notices.append(
        Notice(code="encoding", message=f"decoded as {encoding}", prov=Provenance(file=source.name))
    )
    return data.decode(encoding, errors="replace")


def _legacy_encoding(data: bytes) -> str:
    """cp1252 when it reads as Western text, else charset-normalizer's guess (cp1252 if none)."""
    if not (_CP1252_UNDEFINED & set(data)):
        decoded = data.decode("cp1252")
        if all(ord(ch) < 0x80 or _western(ch) for ch in decoded):
            return "cp1252"
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    return best.encoding if best is not None else "cp1252"


def _western(ch: str) -> bool:
    code = ord(ch)
    return 0xA0 <= code <= 0x17F or 0x2010 <= code <= 0x2122 or ch in "ƒˆ˜Œœ€"


def _bomless_utf16(data: bytes) -> str | None:
    """UTF-16 without a BOM shows NUL in every other byte of ASCII text."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even_nuls = sample[0::2].count(0) / len(sample[0::2])
    odd_nuls = sample[1::2].count(0) / len(sample[1::2])
    if odd_nuls > 0.7 and even_nuls < 0.1:
        return "utf-16-le"
    if even_nuls > 0.7 and odd_nuls < 0.1:
        return "utf-16-be"
    return None


def _looks_binary(text: str) -> bool:
    sample = text[:65536]
    if not sample:
        return False
    controls = sum(
        1 for ch in sample if ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) == "Cc"
    )
    return "\x00" in sample or controls > len(sample) * 0.1


_ROMAN_VALUES = (
    (1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"), (50, "l"),
    (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i"),
)  # fmt: skip


def format_number(n: int, style: str) -> str:
    """Render a list counter as `decimal`, `lower-alpha`, `upper-alpha`, `lower-roman`, ..."""
    if n <= 0 or style == "decimal":
        return str(n)
    upper = style.startswith("upper")
    if style.endswith("alpha"):
        letters = ""
        while n > 0:
            n, rem = divmod(n - 1, 26)
            letters = chr(ord("a") + rem) + letters
        return letters.upper() if upper else letters
    if style.endswith("roman"):
        out = ""
        for value, numeral in _ROMAN_VALUES:
            while n >= value:
                out, n = out + numeral, n - value
        return out.upper() if upper else out
    return str(n)


def _built(cls: type[_M], **values: Any) -> _M:
    """`cls(**values)` for values the builder made itself, typed and in range by construction.

    Not validated again, and the set of given fields is shared: a big file has a block per line,
    and each block's copy of that set (and of its heading path) took more memory than its text
    (issue 17). The set holds only names given here, so assigning one of them later (as readers
    renumber `id`) leaves it as it is.
    """
    key = (cls, tuple(values))
    fields = _FIELDS_SET.get(key)
    if fields is None:
        fields = _FIELDS_SET[key] = set(values)
    return cls.model_construct(fields, **values)


class BlockBuilder:
    """Appends blocks to a Document in reading order: ids b1, b2, ... and heading paths."""

    def __init__(self, source: Source, fmt: str) -> None:
        self.source = source
        self.document = Document(source=source.name, format=fmt, sha256=source.sha256)
        self._headings: list[tuple[int, str]] = []
        self._path: list[str] = []
        self._rows = Rows()  # the document's headings, paragraphs, list items and quotes

    def prov(self, index: int | None) -> Provenance:
        """Provenance of a block at source element `index` under the current headings."""
        # Blocks under one heading share its path (never changed in place: a heading makes a
        # new one).
        return _built(Provenance, file=self.source.name, paragraph=index, heading_path=self._path)

    def _place(self, index: int | None) -> dict[str, Any]:
        """Where a packed block is: the provenance `prov` gives, as `Rows.add` takes it."""
        return {"file": self.source.name, "paragraph": index, "heading_path": self._path}

    def _next_id(self) -> str:
        return f"b{len(self.document.blocks) + 1}"

    def heading(self, text: str, level: int, index: int | None, number: str | None = None) -> None:
        """Add a heading and make it the innermost enclosing heading."""
        level = max(1, min(level, 9))
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        self._path = [title for _, title in self._headings]
        if not self.document.blocks and level == 1 and self.document.title is None:
            self.document.title = text
        self.document.blocks.append(
            Heading.packed(
                self._rows,
                id=self._next_id(),
                **self._place(index),
                text=text,
                level=level,
                number=number,
            )
        )
        self._headings.append((level, text))
        self._path = [title for _, title in self._headings]

    def paragraph(self, text: str, index: int | None) -> None:
        """Add a paragraph (skipped when blank)."""
        if text.strip():
            block = Paragraph.packed(
                self._rows, id=self._next_id(), **self._place(index), text=text
            )
            self.document.blocks.append(block)

    def list_item(
        self, text: str, *, level: int, marker: str, ordered: bool, index: int | None
    ) -> None:
        """Add a list item with the marker a reader sees."""
        self.document.blocks.append(
            ListItem.packed(
                self._rows,
                id=self._next_id(),
                **self._place(index),
                text=text,
                level=max(0, level),
                marker=marker,
                ordered=ordered,
            )
        )

    def table(
        self,
        rows: list[list[str]],
        index: int | None,
        *,
        header: list[str] | None = None,
        caption: str | None = None,
    ) -> None:
        """Add a table; rows are padded to one width."""
        width = max([len(r) for r in rows] + [len(header) if header else 0])
        if width == 0:
            return
        padded = [r + [""] * (width - len(r)) for r in rows]
        head = header + [""] * (width - len(header)) if header is not None else None
        self.document.blocks.append(
            Table(
                id=self._next_id(), prov=self.prov(index), header=head, rows=padded, caption=caption
            )
        )

    def figure(
        self,
        index: int | None,
        *,
        image: ImageRef | None = None,
        caption: str | None = None,
    ) -> Figure:
        """Add a figure and return it so that a later caption can be attached."""
        figure = Figure(id=self._next_id(), prov=self.prov(index), image=image, caption=caption)
        self.document.blocks.append(figure)
        return figure

    def code(self, text: str, index: int | None, language: str | None = None) -> None:
        """Add a code block."""
        self.document.blocks.append(
            _built(
                Code,
                id=self._next_id(),
                prov=self.prov(index),
                text=text,
                language=language or None,
            )
        )

    def flowchart(self, text: str, notation: str, index: int | None) -> bool:
        """Add the flowchart a Mermaid or DOT text draws; False (and a notice) when unreadable."""
        from sop_compiler.ingest.flowchart import FlowchartSyntaxError, parse_flowchart

        try:
            chart = parse_flowchart(text, "dot" if notation == "dot" else "mermaid")
        except FlowchartSyntaxError as exc:
            where = f"{self.source.name} ¶{index}" if index is not None else self.source.name
            self.notice(
                "flowchart_unread",
                f"{where}: the {notation} flowchart was not read ({exc}); kept as code",
                index,
            )
            return False
        self.document.blocks.append(
            Flowchart(
                id=self._next_id(),
                prov=self.prov(index),
                notation="dot" if notation == "dot" else "mermaid",
                title=chart.title,
                nodes=chart.nodes,
                edges=chart.edges,
                entry=chart.entry,
                unread=chart.unread,
            )
        )
        return True

    def quote(self, text: str, index: int | None) -> None:
        """Add a block quote (skipped when blank)."""
        if text.strip():
            block = Quote.packed(self._rows, id=self._next_id(), **self._place(index), text=text)
            self.document.blocks.append(block)

    def notice(self, code: str, message: str, index: int | None = None) -> None:
        """Tell the user something about the file (not an error)."""
        prov = self.prov(index) if index is not None else Provenance(file=self.source.name)
        self.document.notices.append(Notice(code=code, message=message, prov=prov))
