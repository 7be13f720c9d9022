"""clean: drop page furniture and document boilerplate, repair broken lines; record every removal.

Cleaning never drops a step: list items are exempt from every fuzzy rule, and a section with
numbered items is never removed as boilerplate. Block ids never change, so provenance citations
made later still point at the right text.
"""

from __future__ import annotations

from sop_compiler.clean._common import AnyBlock
from sop_compiler.clean.pages import remove_page_furniture, remove_stamps
from sop_compiler.clean.sections import (
    remove_boilerplate,
    remove_sections,
    remove_tables,
    remove_toc,
)
from sop_compiler.clean.text import clean_blocks, join_lines, merge_page_breaks, normalize_chars
from sop_compiler.models import Document, Removal

__all__ = ["clean", "join_lines", "normalize_chars"]


def clean(document: Document) -> Document:
    """A cleaned copy of `document`; what was removed is appended to its `removals`."""
    blocks: list[AnyBlock] = list(document.blocks)
    removals: list[Removal] = []
    blocks, removed = clean_blocks(blocks)
    removals += removed
    blocks, removed = remove_page_furniture(blocks, page_count=document.page_count)
    removals += removed
    for rule in (remove_toc, remove_sections, remove_tables, remove_boilerplate, remove_stamps):
        blocks, removed = rule(blocks)
        removals += removed
    blocks = merge_page_breaks(blocks)
    title = join_lines(document.title).replace("\n", " ") if document.title else None
    removals.sort(key=_position)  # stable: same-place removals keep rule order
    update = {"blocks": blocks, "removals": [*document.removals, *removals], "title": title or None}
    cleaned = document.model_copy(update=update)
    cleaned.images = dict(document.images)
    return cleaned


def _position(item: Removal) -> tuple[int, int, float]:
    """Reading position of a removal, so the review list follows the document."""
    prov = item.prov
    return (prov.page or 0, prov.paragraph or 0, prov.bbox[1] if prov.bbox else 0.0)
