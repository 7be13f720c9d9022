"""Shared helpers of the cleaning rules."""

from __future__ import annotations

import re

from sop_compiler.models import (
    Code,
    Figure,
    Flowchart,
    Heading,
    ListItem,
    Paragraph,
    Quote,
    Removal,
    Table,
    block_text,
)

AnyBlock = Heading | Paragraph | ListItem | Table | Figure | Code | Quote | Flowchart

# Dot leaders ("Title ...... 3", "Title … 3", "Title . . . . 3") followed by a page number.
TOC_ENTRY = re.compile(
    r"^(?P<title>\S.*?)\s*(?:(?:\.\s?){3,}|…+|·{3,}|_{3,})\s*(?P<page>\d{1,4}|[ivxlc]{1,6})$",
    re.IGNORECASE,
)
# "1.2 Title 5": numbered title and a trailing page number; only trusted under a Contents heading.
TOC_NUMBERED = re.compile(
    r"^(?:\d+(?:\.\d+)*\.?\s+)?\S.*?\s+(?:\d{1,4}|[ivxlc]{1,6})$", re.IGNORECASE
)


def is_toc_entry(text: str, *, strict: bool) -> bool:
    """True when every line of `text` reads like a table-of-contents entry."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    patterns = (TOC_ENTRY,) if strict else (TOC_ENTRY, TOC_NUMBERED)
    return bool(lines) and all(any(p.match(line) for p in patterns) for line in lines)


def is_step(block: AnyBlock) -> bool:
    """A list item that may be a procedure step: the fuzzy cleaning rules never remove it.

    Every list item counts, except ones with dot leaders and a trailing page number, which only
    a table of contents has.
    """
    return isinstance(block, ListItem) and not TOC_ENTRY.match(block.text.strip())


def removal(rule: str, reason: str, block: AnyBlock) -> Removal:
    """The record of one removed block."""
    return Removal(rule=rule, reason=reason, text=block_text(block), prov=block.prov)
