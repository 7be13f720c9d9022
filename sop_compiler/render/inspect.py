"""Render `sopc inspect`: the block tree, what cleaning removed, and the procedures found."""

from __future__ import annotations

import json
import sys
from pathlib import PurePosixPath
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table as RichTable
from rich.text import Text
from rich.tree import Tree

from sop_compiler.escape import terminal_text
from sop_compiler.models import (
    Code,
    Figure,
    Flowchart,
    Heading,
    InspectResult,
    ListItem,
    Paragraph,
    Procedure,
    Provenance,
    Quote,
    Table,
)
from sop_compiler.render.run import annotation

__all__ = ["render_inspect"]

AnyBlock = Heading | Paragraph | ListItem | Table | Figure | Code | Quote | Flowchart

_EXCERPT = 160
_TABLE_ROWS = 5


def render_inspect(results: list[InspectResult], *, fmt: str) -> None:
    """Print inspect results: one JSON document (`fmt="json"`) or rich text; errors go to stderr.

    `github` is the text with an error annotation per file that could not be read.
    """
    ordered = sorted(results, key=lambda result: result.source)
    if fmt == "json":
        payload = [_as_json(result) for result in ordered]
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    else:
        # rich drops colour by itself for NO_COLOR and for output that is not a terminal.
        console = Console(file=sys.stdout, highlight=False, emoji=False)
        for result in ordered:
            if result.document is not None:
                _print_document(console, result)
    for result in ordered:
        if result.error:
            print(f"error: {terminal_text(_error_line(result))}", file=sys.stderr)
            if fmt == "github":
                print(annotation("error", result.source, "sopc: unreadable SOP", result.error))


def _error_line(result: InspectResult) -> str:
    error = result.error or ""
    names = (result.source, PurePosixPath(result.source).name)
    return error if error.startswith(names) else f"{result.source}: {error}"


def _as_json(result: InspectResult) -> dict[str, Any]:
    return {
        "source": result.source,
        "document": result.document.model_dump(mode="json") if result.document else None,
        "procedures": [
            {
                "id": procedure.id,
                "title": procedure.title,
                "agent": procedure.agent,
                "heading_path": procedure.heading_path,
                "blocks": [block.id for block in procedure.blocks],
                "context": [block.id for block in procedure.context],
                "steps": result.steps.get(procedure.id),
            }
            for procedure in result.procedures
        ],
        "sections": [section.model_dump(mode="json") for section in result.sections],
        "error": result.error,
    }


def _excerpt(text: str, limit: int = _EXCERPT) -> str:
    line = " ".join(text.split())
    line = line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return terminal_text(line)


def _plain(text: str, style: str = "") -> Text:
    """SOP text for the terminal: never markup, control and bidi characters shown escaped."""
    return Text(terminal_text(text), style=style)


def _where(block: AnyBlock) -> str:
    prov = block.prov
    if prov.page is not None:
        return f"{block.id} p.{prov.page}"
    if prov.paragraph is not None:
        return f"{block.id} ¶{prov.paragraph}"
    return block.id


def _label(block: AnyBlock) -> RenderableType:
    """One block as a tree label; SOP text is always plain Text, never parsed as markup."""
    label = Text()
    if isinstance(block, Heading):
        number = block.number or ""
        number = f"{number} " if number and not block.text.startswith(number) else ""
        label.append(f"{'#' * block.level} {number}{_excerpt(block.text)}", style="bold")
    elif isinstance(block, ListItem):
        label.append("  " * block.level + f"{block.marker} ", style="cyan")
        label.append(_excerpt(block.text))
    elif isinstance(block, Paragraph):
        label.append(_excerpt(block.text))
    elif isinstance(block, Quote):
        label.append("> " + _excerpt(block.text), style="italic")
    elif isinstance(block, Code):
        label.append(f"[code{' ' + block.language if block.language else ''}] ", style="magenta")
        label.append(_excerpt(block.text))
    elif isinstance(block, Figure):
        label.append(_figure_text(block), style="yellow")
    elif isinstance(block, Flowchart):
        decisions = sum(node.kind == "decision" for node in block.nodes)
        label.append(
            f"[flowchart {block.notation}] {len(block.nodes)} nodes ({decisions} decisions), "
            f"{len(block.edges)} edges, entry {block.entry}",
            style="yellow",
        )
    else:
        label.append(f"[table] {block.caption or ''}".rstrip(), style="green")
    label.append(f"  {_where(block)}", style="dim")
    if isinstance(block, Table):
        return Group(label, _table(block))
    if isinstance(block, Flowchart):
        return Group(label, *(Text("    " + line) for line in flowchart_lines(block)))
    return label


def flowchart_lines(chart: Flowchart) -> list[str]:
    """A flowchart as text: one line per node (id, kind, text), then one per labelled edge."""
    lines = [f"{node.id} [{node.kind}] {node.text}" for node in chart.nodes]
    for edge in chart.edges:
        label = f" |{edge.label}|" if edge.label else ""
        lines.append(f"{edge.source} -->{label} {edge.target}")
    lines += [f"(not read) {note}" for note in chart.unread]
    return lines


def _figure_text(figure: Figure) -> str:
    parts = ["[figure]"]
    if figure.caption:
        parts.append(_excerpt(figure.caption, 80))
    details = []
    if figure.image is not None and figure.image.width and figure.image.height:
        details.append(f"image {figure.image.width}x{figure.image.height}")
    elif figure.image is not None:
        details.append("image")
    if figure.scanned_page:
        details.append("scanned page")
    details.append("read" if figure.read else "unread")
    parts.append(f"({', '.join(details)})")
    if figure.text:
        parts.append("text: " + _excerpt(figure.text, 100))
    return " ".join(parts)


def _table(table: Table) -> RichTable:
    width = max([len(table.header or [])] + [len(row) for row in table.rows] + [1])
    grid = RichTable(show_header=table.header is not None, box=None, pad_edge=False)
    for index in range(width):
        header = table.header[index] if table.header and index < len(table.header) else ""
        grid.add_column(_plain(_excerpt(header, 40)), overflow="fold")
    for row in table.rows[:_TABLE_ROWS]:
        cells = [*row, *[""] * (width - len(row))]
        grid.add_row(*(_plain(_excerpt(cell, 60)) for cell in cells))
    if len(table.rows) > _TABLE_ROWS:
        grid.add_row(_plain(f"… {len(table.rows) - _TABLE_ROWS} more rows", style="dim"))
    return grid


def _nowhere(kind: str) -> str:
    return "(the procedures below)" if kind == "group" else "nowhere"


def _step_count(procedure: Procedure) -> int:
    items = [block for block in procedure.blocks if isinstance(block, ListItem)]
    ordered = [item for item in items if item.ordered]
    return len(ordered or items)


def _location(prov: Provenance | None) -> str:
    return prov.label() if prov is not None else ""


def _print_document(console: Console, result: InspectResult) -> None:
    document, procedures = result.document, result.procedures
    assert document is not None
    facts = [document.format, f"{len(document.blocks)} blocks"]
    if document.page_count:
        facts.append(f"{document.page_count} pages")
    title = _plain(document.source, style="bold")
    title.append(f"  ({', '.join(facts)})", style="dim")
    tree = Tree(title)
    stack: list[tuple[int, Tree]] = [(0, tree)]
    for block in document.blocks:
        if isinstance(block, Heading):
            while stack[-1][0] >= block.level:
                stack.pop()
            stack.append((block.level, stack[-1][1].add(_label(block))))
        else:
            stack[-1][1].add(_label(block))
    console.print(tree)

    if document.removals:
        removed = RichTable(title=_plain("Removed by clean"), title_justify="left")
        for column in ("rule", "text", "location"):
            removed.add_column(column, overflow="fold")
        for item in document.removals:
            removed.add_row(
                _plain(item.rule), _plain(_excerpt(item.text, 70)), _plain(item.prov.label())
            )
        console.print(removed)

    found = RichTable(title=_plain("Procedures"), title_justify="left")
    for column in ("id", "title", "steps (offline)", "blocks"):
        found.add_column(column, overflow="fold")
    for procedure in procedures:
        found.add_row(
            _plain(procedure.id),
            _plain(procedure.title),
            _plain(str(result.steps.get(procedure.id, _step_count(procedure)))),
            _plain(str(len(procedure.blocks))),
        )
    console.print(found)

    if result.sections:
        read = RichTable(title=_plain("Sections"), title_justify="left")
        for column in ("section", "read as", "why", "went to"):
            read.add_column(column, overflow="fold")
        for section in result.sections:
            went = [*section.in_procedures, *(f"{p} (context)" for p in section.in_context)]
            read.add_row(
                _plain("  " * (len(section.heading_path) - 1) + section.heading_path[-1]),
                _plain(section.kind),
                _plain(section.reason),
                _plain(", ".join(went) or _nowhere(section.kind)),
            )
        console.print(read)

    if document.notices:
        notes = RichTable(title=_plain("Notices"), title_justify="left")
        for column in ("code", "message", "location"):
            notes.add_column(column, overflow="fold")
        for notice in document.notices:
            notes.add_row(
                _plain(notice.code), _plain(notice.message), _plain(_location(notice.prov))
            )
        console.print(notes)
    console.print()
