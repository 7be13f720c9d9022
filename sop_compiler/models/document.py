"""The Document: typed blocks read from one SOP file, each knowing where it came from."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar, cast, overload

from pydantic import BaseModel, ConfigDict, Discriminator, Field, GetCoreSchemaHandler, Tag
from pydantic_core import core_schema
from typing_extensions import Self

from sop_compiler.models._packed import Rows

_T = TypeVar("_T")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Provenance(_Model):
    """Where a block came from in its source file."""

    file: str = Field(
        description="Path of the SOP file, relative to the SOP folder, with / separators."
    )
    page: int | None = Field(
        default=None, description="1-based page number (PDF and scanned pages)."
    )
    paragraph: int | None = Field(
        default=None,
        description=(
            "0-based index of the source element (DOCX paragraph, Markdown/HTML block, text line)."
        ),
    )
    heading_path: list[str] = Field(
        default_factory=list, description="Titles of enclosing headings."
    )
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="PDF bounding box (x0, y0, x1, y1) in points; None elsewhere."
    )

    def label(self) -> str:
        """A short human-readable location, such as `refunds.pdf p.3` or `faq.md ¶12`."""
        if self.page is not None:
            return f"{self.file} p.{self.page}"
        if self.paragraph is not None:
            return f"{self.file} ¶{self.paragraph}"
        return self.file


class _Block(_Model):
    id: str = Field(description="Block id, unique within its document, e.g. `b12`.")
    prov: Provenance


class _HeadingRecord(_Block):
    model_config = ConfigDict(title="Heading")
    kind: Literal["heading"] = "heading"
    text: str
    level: int = Field(ge=1, le=9)
    number: str | None = Field(default=None, description="Section number as printed, e.g. `3.2`.")


class _ParagraphRecord(_Block):
    model_config = ConfigDict(title="Paragraph")
    kind: Literal["paragraph"] = "paragraph"
    text: str


class _ListItemRecord(_Block):
    model_config = ConfigDict(title="ListItem")
    kind: Literal["list_item"] = "list_item"
    text: str
    level: int = Field(default=0, ge=0, description="Nesting depth, 0 for top-level items.")
    marker: str = Field(description="The number or bullet a reader sees: `1.`, `2.1`, `a)`, `•`.")
    ordered: bool


class _QuoteRecord(_Block):
    model_config = ConfigDict(title="Quote")
    kind: Literal["quote"] = "quote"
    text: str


class _Field(Generic[_T]):
    """A text block's field: read from its packed row, or from its own record."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.read = getattr(Rows, name)  # the row's value: `Rows.text(rows, row)`, ...

    @overload
    def __get__(self, block: None, owner: type) -> _Field[_T]: ...

    @overload
    def __get__(self, block: TextBlock, owner: type) -> _T: ...

    def __get__(self, block: TextBlock | None, owner: type) -> _Field[_T] | _T:
        if block is None:
            return self
        if block._row < 0:
            return cast(_T, getattr(block._data, self.name))
        return cast(_T, self.read(block._data, block._row))

    def __set__(self, block: TextBlock, value: _T) -> None:
        if isinstance(block._data, Rows):
            block._data.set(block._row, self.name, value)
        else:
            setattr(block._data, self.name, value)


class TextBlock:
    """A heading, paragraph, list item or quote: what a document has one of per line.

    It reads as the pydantic model it replaces (fields, `model_dump`, `model_copy`, equality) and
    is validated as one where a model holds it. Blocks the readers build are packed: the object
    is a view of one row of its document's `Rows` (models/_packed.py), so a 50 MB file of short
    lines stays a few times its size in memory (issue 17). A block made by its constructor holds
    its own validated record instead.
    """

    __slots__ = ("_data", "_row")
    _record: ClassVar[type[_Block]]
    _names: ClassVar[tuple[str, ...]]
    kind: ClassVar[str]

    id = _Field[str]()
    prov = _Field[Provenance]()
    text = _Field[str]()

    def _init(self, kind: str, **fields: Any) -> None:
        if kind != self.kind:
            raise ValueError(f"a {type(self).__name__} has kind {self.kind!r}, not {kind!r}")
        self._data: Rows | _Block = self._record(**fields)
        self._row = -1

    @classmethod
    def _made(cls, data: Rows | _Block, row: int = -1) -> Self:
        """The block of row `row` of `data`, or (row -1) the block that is the record `data`."""
        block = cls.__new__(cls)
        block._data, block._row = data, row
        return block

    @classmethod
    def packed(cls, rows: Rows, *, prov: Provenance | None = None, **fields: Any) -> Self:
        """A block packed in `rows`, its fields taken as given (the builder made them)."""
        if prov is not None:
            fields |= {
                "file": prov.file,
                "paragraph": prov.paragraph,
                "heading_path": prov.heading_path,
                "page": prov.page,
                "bbox": prov.bbox,
            }
        return cls._made(rows, rows.add(**fields))

    def record(self) -> _Block:
        """The pydantic model of this block: what it serialises as."""
        data = self._data
        if not isinstance(data, Rows):
            return data
        values = {name: getattr(data, name)(self._row) for name in self._names if name != "kind"}
        fields = data.fields_set(tuple(values))  # what the builder gave: not `kind`
        values["kind"] = self.kind
        return self._record.model_construct(fields, **values)

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        """As pydantic's `model_dump`."""
        return self.record().model_dump(**kwargs)

    def model_dump_json(self, **kwargs: Any) -> str:
        """As pydantic's `model_dump_json`."""
        return self.record().model_dump_json(**kwargs)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with `update` applied; a packed block's copy is packed in the same rows."""
        record = self.record().model_copy(update=update, deep=deep)
        if not isinstance(self._data, Rows):
            return self._made(record)
        values = {name: getattr(record, name) for name in self._names if name != "kind"}
        return type(self).packed(self._data, **values)

    @property
    def model_fields_set(self) -> set[str]:
        """As pydantic's `model_fields_set`."""
        return self.record().model_fields_set

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.record() == other.record()

    __hash__ = None  # type: ignore[assignment]  # as a pydantic model: equal by value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.record()!r})".replace(
            f"({self._record.__name__}(", "(", 1
        )[:-1]

    def __getstate__(self) -> dict[str, Any]:  # a copy or a pickle holds its own record
        return {"record": self.record().model_copy()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._data, self._row = state["record"], -1

    @classmethod
    def model_validate(cls, value: Any) -> Self:
        """As pydantic's `model_validate`: a block (its own record) from a dict or a model."""
        return cls._made(cls._record.model_validate(value, from_attributes=True))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: Any) -> TextBlock:
            if isinstance(value, cls):
                return value
            if isinstance(value, dict | BaseModel):
                return cls.model_validate(value)
            raise ValueError(f"expected a {cls.kind} block")

        record = handler.generate_schema(cls._record)
        return core_schema.no_info_plain_validator_function(
            validate,
            json_schema_input_schema=record,
            # serialised as its record is: include/exclude reach its fields
            serialization=core_schema.wrap_serializer_function_ser_schema(
                lambda block, serialize: serialize(block.record()), schema=record
            ),
        )


class Heading(TextBlock):
    __slots__ = ()
    _record = _HeadingRecord
    _names = ("id", "prov", "kind", "text", "level", "number")
    kind: ClassVar[Literal["heading"]] = "heading"
    level = _Field[int]()
    number = _Field["str | None"]()

    def __init__(
        self,
        *,
        id: str,
        prov: Provenance,
        text: str,
        level: int,
        number: str | None = None,
        kind: Literal["heading"] = "heading",
    ) -> None:
        self._init(id=id, prov=prov, text=text, level=level, number=number, kind=kind)


class Paragraph(TextBlock):
    __slots__ = ()
    _record = _ParagraphRecord
    _names = ("id", "prov", "kind", "text")
    kind: ClassVar[Literal["paragraph"]] = "paragraph"

    def __init__(
        self, *, id: str, prov: Provenance, text: str, kind: Literal["paragraph"] = "paragraph"
    ) -> None:
        self._init(id=id, prov=prov, text=text, kind=kind)


class ListItem(TextBlock):
    __slots__ = ()
    _record = _ListItemRecord
    _names = ("id", "prov", "kind", "text", "level", "marker", "ordered")
    kind: ClassVar[Literal["list_item"]] = "list_item"
    level = _Field[int]()
    marker = _Field[str]()
    ordered = _Field[bool]()

    def __init__(
        self,
        *,
        id: str,
        prov: Provenance,
        text: str,
        marker: str,
        ordered: bool,
        level: int = 0,
        kind: Literal["list_item"] = "list_item",
    ) -> None:
        self._init(
            id=id, prov=prov, text=text, level=level, marker=marker, ordered=ordered, kind=kind
        )


class Quote(TextBlock):
    __slots__ = ()
    _record = _QuoteRecord
    _names = ("id", "prov", "kind", "text")
    kind: ClassVar[Literal["quote"]] = "quote"

    def __init__(
        self, *, id: str, prov: Provenance, text: str, kind: Literal["quote"] = "quote"
    ) -> None:
        self._init(id=id, prov=prov, text=text, kind=kind)


class Table(_Block):
    kind: Literal["table"] = "table"
    header: list[str] | None = None
    rows: list[list[str]] = Field(default_factory=list)
    caption: str | None = None


class ImageRef(_Model):
    """A reference to image bytes held in `Document.images` (never serialised into JSON)."""

    sha256: str
    mime: str
    width: int | None = None
    height: int | None = None


class Figure(_Block):
    kind: Literal["figure"] = "figure"
    image: ImageRef | None = None
    caption: str | None = None
    text: str | None = Field(default=None, description="Text read from the image by OCR, if any.")
    read: bool = Field(default=False, description="True when the image's content was read (OCR).")
    scanned_page: bool = Field(
        default=False, description="True when this figure is a rendered scanned page."
    )


class Code(_Block):
    kind: Literal["code"] = "code"
    text: str
    language: str | None = None


_MARKER = re.compile(
    r"^(?:end|stop|done|finish(?:ed)?|exit|start|begin|close|complete|end of (?:process|flow))\.?$",
    re.IGNORECASE,
)
FlowNodeKind = Literal["start", "end", "action", "decision", "io", "subroutine", "unknown"]


class FlowNode(_Model):
    """One node of a flowchart: a box, diamond or ellipse and the text written in it."""

    id: str = Field(description="Node id: as written in Mermaid/DOT, `n1`, `n2`, ... from a PDF.")
    kind: FlowNodeKind = Field(
        description=(
            "start/end: a terminal (stadium, ellipse, circle); decision: a diamond; action: a "
            "box; io: a parallelogram; subroutine: a box with side bars; unknown: a shape that "
            "was not recognised."
        )
    )
    text: str = Field(description="The node's text, as written (lines joined by spaces).")
    shape: str = Field(description="The shape as drawn: box, round, diamond, ellipse, ...")
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="Page coordinates (x0, y0, x1, y1) in points, for PDFs."
    )

    def is_marker(self) -> bool:
        """True for a node that only marks where the flow starts or stops ("Start", "End")."""
        return not self.text.strip() or bool(_MARKER.match(self.text.strip()))


class FlowEdge(_Model):
    """A connector from one node to another, with the label written on it (Yes, No, ...)."""

    source: str = Field(description="Id of the node the arrow leaves.")
    target: str = Field(description="Id of the node the arrow points at.")
    label: str | None = Field(default=None, description="The connector's label, if any.")


class Flowchart(_Block):
    """A flowchart read as a graph (Mermaid, DOT or a vector drawing in a PDF)."""

    kind: Literal["flowchart"] = "flowchart"
    notation: Literal["mermaid", "dot", "pdf"]
    title: str | None = None
    nodes: list[FlowNode] = Field(default_factory=list)
    edges: list[FlowEdge] = Field(default_factory=list)
    entry: str | None = Field(default=None, description="Id of the node the flow starts at.")
    unread: list[str] = Field(
        default_factory=list,
        description="What the reader could not read (text outside nodes, arrows with no end).",
    )

    def node(self, node_id: str) -> FlowNode | None:
        """The node with this id, or None."""
        return next((node for node in self.nodes if node.id == node_id), None)

    def outgoing(self, node_id: str) -> list[FlowEdge]:
        """The edges leaving a node, in source order."""
        return [edge for edge in self.edges if edge.source == node_id]


def _kind_of(value: Any) -> Any:
    return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)


Block = Annotated[
    Annotated[Heading, Tag("heading")]
    | Annotated[Paragraph, Tag("paragraph")]
    | Annotated[ListItem, Tag("list_item")]
    | Annotated[Table, Tag("table")]
    | Annotated[Figure, Tag("figure")]
    | Annotated[Code, Tag("code")]
    | Annotated[Quote, Tag("quote")]
    | Annotated[Flowchart, Tag("flowchart")],
    Discriminator(_kind_of),
]


class Notice(_Model):
    """Something a reader or cleaner wants the user to know (not an error)."""

    code: str = Field(description="Stable code, e.g. `scanned_page`, `figure_unread`, `encoding`.")
    message: str
    prov: Provenance | None = None


class Removal(_Model):
    """One piece of text that `clean` dropped, and why: cleaning is reviewable."""

    rule: str = Field(description="Cleaning rule, e.g. `running_header`, `page_number`, `toc`.")
    reason: str
    text: str
    prov: Provenance


class Document(_Model):
    """One SOP file as typed blocks in reading order."""

    source: str = Field(description="Path relative to the SOP folder, with / separators.")
    format: str = Field(
        description="Reader that produced it: pdf, docx, markdown, text, html, image."
    )
    sha256: str = Field(description="SHA-256 of the file's bytes.")
    title: str | None = None
    page_count: int | None = None
    blocks: list[Block] = Field(default_factory=list)
    notices: list[Notice] = Field(default_factory=list)
    removals: list[Removal] = Field(default_factory=list)
    images: dict[str, bytes] = Field(default_factory=dict, exclude=True, repr=False)

    def add_image(
        self, data: bytes, mime: str, width: int | None = None, height: int | None = None
    ) -> ImageRef:
        """Store image bytes once and return the reference a Figure carries."""
        digest = hashlib.sha256(data).hexdigest()
        self.images.setdefault(digest, data)
        return ImageRef(sha256=digest, mime=mime, width=width, height=height)


def block_text(
    block: Heading | Paragraph | ListItem | Table | Figure | Code | Quote | Flowchart,
) -> str:
    """The plain text of any block (tables as `a | b` rows), used for hashing and search."""
    if isinstance(block, Flowchart):
        return "\n".join(node.text for node in block.nodes if node.text)
    if isinstance(block, Table):
        rows = ([block.header] if block.header else []) + block.rows
        return "\n".join(" | ".join(cell for cell in row) for row in rows)
    if isinstance(block, Figure):
        return "\n".join(part for part in (block.caption, block.text) if part)
    return block.text
