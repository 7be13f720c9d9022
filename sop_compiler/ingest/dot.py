"""DOT reader: a Graphviz `.dot`/`.gv` file in an SOP folder is one flowchart (pydot)."""

from __future__ import annotations

from sop_compiler.config import Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest._text_decode import BlockBuilder, decode_text
from sop_compiler.ingest.base import Reader, Source
from sop_compiler.ingest.flowchart import FlowchartSyntaxError, parse_flowchart
from sop_compiler.models import Document, Flowchart

__all__ = ["DotReader"]


class DotReader(Reader):
    """Reads a Graphviz graph into a title heading and one flowchart block."""

    format = "dot"
    suffixes = (".dot", ".gv")

    def read(self, source: Source, *, settings: Settings) -> Document:
        """Parse the graph; raise InputError with the line and what is wrong when it is not DOT."""
        text, notices = decode_text(source)
        try:
            chart = parse_flowchart(text, "dot")
        except FlowchartSyntaxError as exc:
            raise InputError(f"is not a readable DOT graph: {exc}", path=source.name) from None
        if not chart.nodes:
            raise InputError("the DOT graph has no nodes", path=source.name)
        builder = BlockBuilder(source, self.format)
        builder.document.notices.extend(notices)
        stem = source.name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        title = chart.title or stem.replace("_", " ").replace("-", " ").strip().capitalize()
        builder.heading(title, 1, None)
        builder.document.blocks.append(
            Flowchart(
                id=f"b{len(builder.document.blocks) + 1}",
                prov=builder.prov(0),
                notation="dot",
                title=chart.title,
                nodes=chart.nodes,
                edges=chart.edges,
                entry=chart.entry,
                unread=chart.unread,
            )
        )
        return builder.document
