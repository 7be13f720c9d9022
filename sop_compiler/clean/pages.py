"""Page furniture: running headers and footers, page numbers, and rubber stamps read by OCR."""

from __future__ import annotations

import re
from collections import defaultdict
from statistics import median
from typing import Literal

from sop_compiler.clean._common import AnyBlock, is_step, removal
from sop_compiler.models import Heading, Paragraph, Removal

Zone = Literal["top", "bottom"]

_ZONE = 0.12  # share of the page height that counts as top or bottom margin
_Y_TOLERANCE = 0.03  # share of the page height within which repeated text counts as "same place"
_EDGE_BLOCKS = 2  # without coordinates: the first/last blocks of a page count as its top/bottom

_ROMAN = r"(?=[ivxlcdm])m{0,3}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"
_PAGE_NUMBER = re.compile(
    rf"^(?:(?:page|pg\.?|p\.)\s*)?[-–—]?\s*(?:\d{{1,4}}|{_ROMAN})\s*[-–—]?"
    r"(?:\s*(?:of|/)\s*\d{1,4})?$",
    re.IGNORECASE,
)
# Without page information only unmistakable forms count: "Page 3", "Page 3 of 12", "- 3 -".
_PAGE_NUMBER_STRICT = re.compile(
    r"^(?:(?:page|pg\.?|p\.)\s*\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?|[-–—]\s*\d{1,4}\s*[-–—])$",
    re.IGNORECASE,
)
# Words of a rubber stamp ("CONTROLLED COPY", "RECEIVED", "APPROVED"): OCR often reads the
# stamp with its spaces lost, as "CONTROLLEDCOPY ACCOUNTSECURITY".
_STAMP_WORDS = (
    "uncontrolled|controlled|copy|approved|received|confidential|draft|void|obsolete|superseded|"
    "master|original|verified|reviewed|issued|cancelled|expired|released|archived|filed|paid"
)
_STAMP_WORD = re.compile(rf"^(?:{_STAMP_WORDS})$", re.IGNORECASE)
_STAMP_GLUED = re.compile(rf"^(?:{_STAMP_WORDS.upper()}){{2,}}$")
_STAMP_MAX_WORDS = 5
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")


def _key(block: AnyBlock) -> str:
    """Text with digits masked, so `Page 3 of 12` and `Page 4 of 12` compare equal.

    Headings must match exactly: "Section 1", "Section 2" at the top of each page are content.
    """
    text = block_line(block).lower()
    if isinstance(block, Heading):
        return f"heading:{text}"
    return _DIGITS.sub("#", text)


def _zones(blocks: list[AnyBlock]) -> tuple[list[Zone | None], float]:
    """Top/bottom position of each paginated block, and the estimated page height (0 if unknown)."""
    boxes = [b.prov.bbox for b in blocks if b.prov.bbox is not None and b.prov.page is not None]
    height = max(box[3] for box in boxes) + min(box[1] for box in boxes) if boxes else 0.0
    by_page: dict[int, list[int]] = defaultdict(list)
    for index, block in enumerate(blocks):
        if block.prov.page is not None:
            by_page[block.prov.page].append(index)
    zones: list[Zone | None] = [None] * len(blocks)
    for indexes in by_page.values():
        for rank, index in enumerate(indexes):
            box = blocks[index].prov.bbox
            if box is not None and height > 0:
                if box[1] <= _ZONE * height:
                    zones[index] = "top"
                elif box[3] >= (1 - _ZONE) * height:
                    zones[index] = "bottom"
            elif rank < _EDGE_BLOCKS:
                zones[index] = "top"
            elif rank >= len(indexes) - _EDGE_BLOCKS:
                zones[index] = "bottom"
    return zones, height


def _candidate(block: AnyBlock) -> bool:
    return isinstance(block, Paragraph | Heading) and not is_step(block)


def _page_count(blocks: list[AnyBlock], declared: int | None) -> int:
    pages = {b.prov.page for b in blocks if b.prov.page is not None}
    return max(declared or 0, len(pages))


def remove_page_furniture(
    blocks: list[AnyBlock], *, page_count: int | None
) -> tuple[list[AnyBlock], list[Removal]]:
    """Drop page numbers and text repeated at the top or bottom of most pages."""
    if not any(b.prov.page is not None for b in blocks):
        return _remove_strict_page_numbers(blocks)
    zones, height = _zones(blocks)
    drop: dict[int, Removal] = {}
    for index, block in enumerate(blocks):
        if zones[index] and _candidate(block) and _PAGE_NUMBER.match(block_line(block)):
            drop[index] = removal("page_number", f"page number at the page {zones[index]}", block)

    pages = _page_count(blocks, page_count)
    needed = 2 if pages == 2 else max(3, -(-pages // 2))
    if pages >= 2:
        groups: dict[tuple[Zone, str], list[int]] = defaultdict(list)
        for index, block in enumerate(blocks):
            zone = zones[index]
            if zone and index not in drop and _candidate(block):
                groups[(zone, _key(block))].append(index)
        for (zone, _), members in sorted(groups.items()):
            placed = _same_place(blocks, members, zone, height)
            count = len({blocks[i].prov.page for i in placed})
            if count < needed:
                continue
            rule = "running_header" if zone == "top" else "running_footer"
            reason = f"repeated at the page {zone} on {count} of {pages} pages"
            for index in placed:
                drop[index] = removal(rule, reason, blocks[index])
    kept = [block for index, block in enumerate(blocks) if index not in drop]
    return kept, [drop[index] for index in sorted(drop)]


def block_line(block: AnyBlock) -> str:
    """The block's text on one line (headings and paragraphs only)."""
    text = block.text if isinstance(block, Paragraph | Heading) else ""
    return _SPACE.sub(" ", text).strip()


def _same_place(blocks: list[AnyBlock], members: list[int], zone: Zone, height: float) -> list[int]:
    """The members whose vertical position is close to the group's usual one."""
    ys = [_edge_y(blocks[i], zone) for i in members]
    known = [y for y in ys if y is not None]
    if not known or height <= 0:
        return members
    usual = median(known)
    near = _Y_TOLERANCE * height
    return [i for i, y in zip(members, ys, strict=True) if y is None or abs(y - usual) <= near]


def _edge_y(block: AnyBlock, zone: Zone) -> float | None:
    box = block.prov.bbox
    if box is None:
        return None
    return box[1] if zone == "top" else box[3]


def _remove_strict_page_numbers(blocks: list[AnyBlock]) -> tuple[list[AnyBlock], list[Removal]]:
    kept: list[AnyBlock] = []
    removed: list[Removal] = []
    for block in blocks:
        if isinstance(block, Paragraph) and _PAGE_NUMBER_STRICT.match(block_line(block)):
            removed.append(removal("page_number", "a page number line", block))
        else:
            kept.append(block)
    return kept, removed


def remove_stamps(blocks: list[AnyBlock]) -> tuple[list[AnyBlock], list[Removal]]:
    """Drop rubber-stamp lines a scan's OCR read as text ("CONTROLLEDCOPY ACCOUNTSECURITY.")."""
    kept: list[AnyBlock] = []
    removed: list[Removal] = []
    for block in blocks:
        if isinstance(block, Paragraph) and is_stamp(block.text):
            removed.append(removal("stamp", "a rubber stamp read by OCR", block))
        else:
            kept.append(block)
    return kept, removed


def is_stamp(text: str) -> bool:
    """A short ALL-CAPS line of stamp words, or with stamp words run together ("CONTROLLEDCOPY").

    "CONTROLLED COPY" and "CONTROLLEDCOPY ACCOUNTSECURITY" are stamps; "DO NOT REFUND GIFT
    CARDS" is an instruction in capitals and "MASTERCARD PAYMENTS" a label: both stay.
    """
    words = re.findall(r"[^\W\d_]+", text)
    if not words or len(words) > _STAMP_MAX_WORDS or "\n" in text.strip():
        return False
    if not all(word.isupper() for word in words):
        return False
    if all(_STAMP_WORD.match(word) for word in words):
        return True
    # stamp words run together ("CONTROLLEDCOPY"): OCR lost the spaces, which text never does
    return any(_STAMP_GLUED.match(word) for word in words)
