"""Build a Procedure from a compact text spec (used by the offline and validate tests).

    # Title / ## Section   headings (level = number of #)
    1. text / 2) text      ordered list item, level 0 (indent by 3 spaces per level)
    a. text / - text       sub-items when indented
    > text                 quote
    | a | b |              table rows (the first row of a run is the header)
    anything else          paragraph
"""

from __future__ import annotations

import re

from sop_compiler.models import Heading, ListItem, Paragraph, Procedure, Provenance, Quote, Table

_ITEM = re.compile(r"^(?P<indent>\s*)(?P<marker>\d+(?:\.\d+)?[.)]|[a-z][.)]|[-*•])\s+(?P<text>.+)$")


def procedure_from_spec(
    spec: str, *, title: str | None = None, source: str = "sops/test.md", agent: str = "general"
) -> Procedure:
    """A Procedure whose blocks (ids b1, b2, ...) follow the spec line by line."""
    blocks: list = []
    table: Table | None = None

    def prov(index: int) -> Provenance:
        return Provenance(file=source, paragraph=index)

    for line in spec.strip("\n").splitlines():
        if not line.strip():
            table = None
            continue
        bid = f"b{len(blocks) + 1}"
        index = len(blocks)
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if table is None:
                table = Table(id=bid, prov=prov(index), header=cells, rows=[])
                blocks.append(table)
            else:
                table.rows.append(cells)
            continue
        table = None
        if stripped.startswith("#"):
            level = len(stripped) - len(stripped.lstrip("#"))
            blocks.append(Heading(id=bid, prov=prov(index), text=stripped[level:].strip(), level=level))
        elif stripped.startswith("> "):
            blocks.append(Quote(id=bid, prov=prov(index), text=stripped[2:]))
        elif match := _ITEM.match(line):
            marker = match.group("marker")
            blocks.append(
                ListItem(
                    id=bid,
                    prov=prov(index),
                    text=match.group("text"),
                    level=len(match.group("indent")) // 3,
                    marker=marker,
                    ordered=marker not in "-*•",
                )
            )
        else:
            blocks.append(Paragraph(id=bid, prov=prov(index), text=stripped))
    first = next((b for b in blocks if isinstance(b, Heading)), None)
    name = title or (first.text if first else "Untitled")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return Procedure(
        id=f"test--{slug}",
        title=name,
        source=source,
        source_sha256="0" * 64,
        agent=agent,
        heading_path=[name],
        blocks=blocks,
    )
