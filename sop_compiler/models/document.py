"""The Document: typed blocks read from one SOP file, each knowing where it came from."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


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


class Heading(_Block):
    kind: Literal["heading"] = "heading"
    text: str
    level: int = Field(ge=1, le=9)
    number: str | None = Field(default=None, description="Section number as printed, e.g. `3.2`.")


class Paragraph(_Block):
    kind: Literal["paragraph"] = "paragraph"
    text: str


class ListItem(_Block):
    kind: Literal["list_item"] = "list_item"
    text: str
    level: int = Field(default=0, ge=0, description="Nesting depth, 0 for top-level items.")
    marker: str = Field(description="The number or bullet a reader sees: `1.`, `2.1`, `a)`, `•`.")
    ordered: bool


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


class Quote(_Block):
    kind: Literal["quote"] = "quote"
    text: str


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


Block = Annotated[
    Heading | Paragraph | ListItem | Table | Figure | Code | Quote | Flowchart,
    Field(discriminator="kind"),
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
