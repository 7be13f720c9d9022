"""Document furniture: tables of contents, revision history, approvals and legal boilerplate."""

from __future__ import annotations

import re

from sop_compiler.clean._common import AnyBlock, is_step, is_toc_entry, removal
from sop_compiler.clean.text import join_lines
from sop_compiler.models import Heading, ListItem, Paragraph, Removal, Table

_NUMBER = re.compile(r"^(?:\d+(?:\.\d+)*\.?|[A-Z]\.|[IVX]+\.)\s+")
_TOC_TITLE = re.compile(r"^(?:table\s+of\s+contents|contents|toc)$", re.IGNORECASE)
_SECTION_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"^(?:revision|document|version|change|amendment)s?\s+(?:history|log|record)s?$|^change\s?log$",
            re.IGNORECASE,
        ),
        "revision_history",
    ),
    (
        re.compile(
            r"^(?:approvals?|document\s+(?:control|approvals?)|sign[- ]?offs?|"
            r"review\s+and\s+approvals?|approval\s+history)$",
            re.IGNORECASE,
        ),
        "approval",
    ),
)
_BOILERPLATE = re.compile(
    r"printed\s+copies\s+are\s+(?:un)?controlled|uncontrolled\s+(?:when|if)\s+printed|"
    r"^uncontrolled\s+copy|^(?:strictly\s+)?confidential\b|^(?:for\s+)?internal\s+use\s+only\b|"
    r"this\s+document\s+is\s+the\s+property\s+of|all\s+rights\s+reserved|^©|^\(c\)\s*\d{4}|"
    r"^copyright\b|^do\s+not\s+(?:copy|distribute|reproduce)\b|"
    r"^(?:approved|reviewed|prepared)\s+by\s*:|\bconfidential\b.{0,12}\binternal\s+use\s+only\b",
    re.IGNORECASE,
)
# Labels of a document-control block ("Document ID: CC-BIL-004", "Owner: ...", "Version: 3.2").
_CONTROL_LABEL = re.compile(
    r"^(?:document\s+(?:id|number|no\.?|owner|control)|doc(?:ument)?\s+ref(?:erence)?|sop\s+(?:id|no\.?)|"
    r"owner|version|rev(?:ision)?|effective\s+(?:date|from)|next\s+review(?:\s+date)?|review\s+date|"
    r"classification|status|issue\s+date|applies\s+to|author)$",
    re.IGNORECASE,
)
_CONTROL_IN_TEXT = re.compile(
    r"(?:^|[\s·|*])(?:document\s+id|owner|version|effective\s+date|next\s+review|classification|"
    r"applies\s+to|status|author)\s*\**:",
    re.IGNORECASE,
)
_CONTROL_MIN = 2  # labels that make a block document control, not content
_VERSION_CELLS = {"version", "ver", "ver.", "rev", "rev.", "revision", "v"}
_CHANGE_WORDS = ("author", "change", "description", "summary", "by", "reason", "comment")
_SIGN_WORDS = ("signature", "approved by", "approver", "sign-off", "signed")
_BOILERPLATE_MAX = 250  # longer lines are content that happens to mention these words
_TOC_RUN = 3


def title_of(heading: Heading) -> str:
    """A heading's text without its section number or trailing colon."""
    return _NUMBER.sub("", heading.text).strip().rstrip(":").strip()


def remove_toc(blocks: list[AnyBlock]) -> tuple[list[AnyBlock], list[Removal]]:
    """Drop tables of contents: a Contents heading and its entries, or runs of dot-leader lines."""
    titles = {title_of(b).casefold() for b in blocks if isinstance(b, Heading)}
    drop: dict[int, Removal] = {}
    index = 0
    while index < len(blocks):
        block = blocks[index]
        if isinstance(block, Heading) and _TOC_TITLE.match(title_of(block)):
            drop[index] = removal("toc", "table of contents heading", block)
            index += 1
            while index < len(blocks) and _under_toc_entry(blocks[index], titles):
                drop[index] = removal("toc", "table of contents entry", blocks[index])
                index += 1
            continue
        index += 1
    run: list[int] = []
    for index, item in enumerate([*blocks, None]):
        if item is not None and index not in drop and _strict_entry(item):
            run.append(index)
            continue
        if sum(_line_count(blocks[i]) for i in run) >= _TOC_RUN:
            for i in run:
                drop[i] = removal("toc", "dot leaders and page numbers", blocks[i])
        run = []
    return [b for i, b in enumerate(blocks) if i not in drop], [drop[i] for i in sorted(drop)]


def _line_count(block: AnyBlock) -> int:
    return len([line for line in getattr(block, "text", "").split("\n") if line.strip()])


def _strict_entry(block: AnyBlock) -> bool:
    if not isinstance(block, Paragraph | ListItem | Heading):
        return False
    return is_toc_entry(block.text, strict=True)


def _under_toc_entry(block: AnyBlock, titles: set[str]) -> bool:
    """An entry of a table of contents that follows a Contents heading."""
    if isinstance(block, Heading):
        return is_toc_entry(block.text, strict=True)
    if isinstance(block, Table):
        rows = [row for row in block.rows if any(row)]
        return bool(rows) and all(is_toc_entry(" ".join(row), strict=False) for row in rows)
    if isinstance(block, Paragraph | ListItem):
        text = block.text.strip()
        if _NUMBER.sub("", text).strip().rstrip(":").casefold() in titles:
            return True  # a Markdown-style contents list naming the document's own headings
        return is_toc_entry(text, strict=isinstance(block, ListItem))
    return False


def remove_sections(blocks: list[AnyBlock]) -> tuple[list[AnyBlock], list[Removal]]:
    """Drop revision-history and approval sections (heading to the next same-or-higher heading).

    A section that holds numbered list items is kept whole: it may be a real procedure.
    """
    drop: dict[int, Removal] = {}
    index = 0
    while index < len(blocks):
        block = blocks[index]
        rule = _section_rule(block) if isinstance(block, Heading) else None
        if rule is None or not isinstance(block, Heading):
            index += 1
            continue
        end = index + 1
        while end < len(blocks):
            nxt = blocks[end]
            if isinstance(nxt, Heading) and nxt.level <= block.level:
                break
            end += 1
        section = range(index, end)
        if not any(isinstance(blocks[i], ListItem) and blocks[i].ordered for i in section):  # type: ignore[union-attr]
            reason = f"{rule.replace('_', ' ')} section “{title_of(block)}”"
            for i in section:
                drop[i] = removal(rule, reason, blocks[i])
        index = end
    return [b for i, b in enumerate(blocks) if i not in drop], [drop[i] for i in sorted(drop)]


def _section_rule(heading: Heading) -> str | None:
    title = title_of(heading)
    return next((rule for pattern, rule in _SECTION_RULES if pattern.match(title)), None)


def _table_rule(table: Table) -> str | None:
    header = table.header or (table.rows[0] if table.rows else [])
    cells = [cell.strip().casefold() for cell in header]

    def has(*words: str) -> bool:
        return any(any(word in cell for word in words) for cell in cells)

    versioned = any(cell in _VERSION_CELLS for cell in cells)
    if versioned and has("date") and has(*_CHANGE_WORDS):
        return "revision_history"
    if has(*_SIGN_WORDS) and has("date", "name", "role"):
        return "approval"
    return None


def _control_table(table: Table) -> bool:
    """A document-control table: its header row or its first column holds the field labels."""
    rows = ([table.header] if table.header else []) + table.rows
    labels = [cell for cell in (rows[0] if rows else [])]
    labels += [row[0] for row in rows if row]
    hits = {cell.strip().strip("*:").strip().casefold() for cell in labels}
    return sum(bool(_CONTROL_LABEL.match(cell)) for cell in hits) >= _CONTROL_MIN


def _control_paragraph(block: Paragraph) -> bool:
    """A short paragraph of `Label: value` pairs that starts with a document-control field."""
    text = block.text.strip()
    if len(text) > 400 or ":" not in text:
        return False
    first = text.split(":", 1)[0].strip().strip("*").strip()
    found = len(_CONTROL_IN_TEXT.findall(text))
    return found >= _CONTROL_MIN and bool(_CONTROL_LABEL.match(first))


def _label_rule(block: Paragraph) -> str | None:
    text = block.text.strip().rstrip(":").strip()
    if "\n" in text or len(text) > 40:
        return None
    return next((rule for pattern, rule in _SECTION_RULES if pattern.match(text)), None)


def remove_tables(blocks: list[AnyBlock]) -> tuple[list[AnyBlock], list[Removal]]:
    """Drop revision-history, approval and document-control tables wherever they are."""
    kept: list[AnyBlock] = []
    removed: list[Removal] = []
    for block in blocks:
        rule = _table_rule(block) if isinstance(block, Table) else None
        control = (isinstance(block, Table) and _control_table(block)) or (
            isinstance(block, Paragraph) and _control_paragraph(block)
        )
        if rule is None and control:
            removed.append(removal("document_control", "document-control fields", block))
            continue
        label = _label_rule(block) if isinstance(block, Paragraph) else None
        if label is not None:
            # "Document control" printed as a plain line (a title page's label, no heading)
            removed.append(removal(label, f"{label.replace('_', ' ')} label", block))
            continue
        if rule is None:
            kept.append(block)
        else:
            removed.append(removal(rule, f"{rule.replace('_', ' ')} table", block))
    return kept, removed


def remove_boilerplate(blocks: list[AnyBlock]) -> tuple[list[AnyBlock], list[Removal]]:
    """Drop legal and document-control lines ("Printed copies are uncontrolled", ...)."""
    kept: list[AnyBlock] = []
    removed: list[Removal] = []
    for block in blocks:
        if not isinstance(block, Paragraph) or is_step(block):
            kept.append(block)
            continue
        lines = block.text.split("\n")
        noise = [line for line in lines if _is_boilerplate(line)]
        if not noise:
            kept.append(block)
            continue
        text = "\n".join(noise)
        reason = "document-control or legal notice"
        removed.append(Removal(rule="boilerplate", reason=reason, text=text, prov=block.prov))
        # joined again, so that the lines around a removed one read as a second pass leaves them
        rest = join_lines("\n".join(line for line in lines if line not in noise))
        if rest:
            kept.append(block.model_copy(update={"text": rest}))
    return kept, removed


def _is_boilerplate(line: str) -> bool:
    return len(line) <= _BOILERPLATE_MAX and bool(_BOILERPLATE.search(line))
