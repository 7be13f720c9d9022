"""segment: split a cleaned Document into procedures (sections that hold steps).

The heading tree is walked from the top. A section whose own text holds steps is one procedure,
with all its sub-sections (exceptions, notes, escalation). A section with several sub-sections
that hold steps is split: each becomes a procedure, and what the section says around them
(purpose, scope, definitions, shared escalation rules) becomes every procedure's context,
except its lead-in instructions ("3 Procedure: Before you start, open the customer's record"):
those are the first steps of each procedure inside it, so they join each procedure's blocks,
ahead of its heading. A procedure's blocks before its first heading are always such a lead-in.
A document in which nothing looks like steps is still one procedure: nothing is dropped.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from sop_compiler.models import (
    Code,
    Document,
    Figure,
    Heading,
    ListItem,
    Notice,
    Paragraph,
    Procedure,
    Quote,
    Table,
)
from sop_compiler.slug import dedupe, slugify
from sop_compiler.text import is_instruction, split_sentences

__all__ = ["segment"]

AnyBlock = Heading | Paragraph | ListItem | Table | Figure | Code | Quote

_NUMBER = re.compile(r"^(?:\d+(?:\.\d+)*[.)]?|[A-Z][.)]|[IVX]+\.)\s+")
_NUMBERED_STEP = re.compile(r"^(?:step\s+\d+\b|\d+(?:\.\d+)*[.):]\s+\S)", re.IGNORECASE)
# Sub-sections that belong to the procedure above them even when they hold numbered items.
_AUX = re.compile(
    r"^(?:exceptions?|notes?|escalations?|escalation\s+\w+(?:\s+\w+)?|edge\s+cases?|"
    r"special\s+cases?|definitions?|warnings?|tips?|important|caveats?|examples?|"
    r"if\s+.*|when\s+.*|see\s+also|related\b.*|references?|contacts?)$",
    re.IGNORECASE,
)
# Aux sections that only point elsewhere: background for the reader, no rule for the agent.
_POINTERS = re.compile(
    r"^(?:definitions?|see\s+also|related\b.*|references?|contacts?)$", re.IGNORECASE
)
# Document-level sections that give every procedure its background.
_CONTEXT = re.compile(
    r"^(?:purpose|scope|purpose\s+and\s+scope|definitions?(?:\s+and\s+roles)?|glossary|"
    r"terms(?:\s+and\s+definitions)?|"
    r"polic(?:y|ies)|.*\bpolicy|roles?(?:\s+and\s+responsibilities)?|responsibilities|overview|"
    r"introduction|background|applicability|audience|objectives?|about\s+this\s+document|"
    r"prerequisites|requirements|summary|when\s+to\s+use(?:\s+this\s+procedure)?|when\s+this\s+applies)$",
    re.IGNORECASE,
)
# Section titles that say nothing about the procedure: use the enclosing title instead.
_GENERIC = re.compile(
    r"^(?:procedures?|steps|process|instructions|workflow|how\s+to)$", re.IGNORECASE
)
_IMPERATIVE_WORDS = """
    acknowledge add apologise apologize apply approve ask assign attach calculate call cancel
    capture check click close collect compare complete confirm contact create determine document
    email ensure enter escalate explain file find flag follow forward gather go greet hand identify
    inform issue locate log look make mark note notify offer open process provide raise record
    refund reject remove reply request reset retrieve return review route run schedule search
    select send set ship submit tell thank transfer update use validate verify wait"""
_IMPERATIVES = frozenset(_IMPERATIVE_WORDS.split())
_MIN_STEPS = 2
_MIN_IMPERATIVES = 3
_MIN_PROSE_INSTRUCTIONS = 4  # a procedure written as prose: this many instruction sentences
# "Follow the procedure below that fits the request": a lead-in that points at the procedures
# rather than starting them (as a step, it would end each routine before it began).
_POINTER = re.compile(
    r"\b(?:procedures?|sections?|process(?:es)?|steps)\s+(?:below|above|that follows?|which)\b|"
    r"\bthe following\s+(?:procedures?|sections?|steps)\b|\bsections?\s+\d",
    re.IGNORECASE,
)


@dataclass(eq=False)  # sections compare by identity: field equality would be deep and slow
class _Section:
    heading: Heading | None
    path: list[str]
    own: list[AnyBlock] = field(default_factory=list)
    children: list[_Section] = field(default_factory=list)

    @property
    def level(self) -> int:
        return self.heading.level if self.heading else 0

    @property
    def title(self) -> str:
        return self.path[-1] if self.path else ""

    def blocks(self) -> list[AnyBlock]:
        out: list[AnyBlock] = [self.heading] if self.heading else []
        out += self.own
        for child in self.children:
            out += child.blocks()
        return out


@dataclass
class _Draft:
    title: str
    path: list[str]
    blocks: list[AnyBlock]
    context: list[AnyBlock]
    whole: bool = False


def title_of(heading: Heading) -> str:
    """A heading's text without its section number."""
    return _NUMBER.sub("", heading.text).strip().rstrip(":").strip() or heading.text.strip()


def _tree(blocks: list[AnyBlock]) -> _Section:
    root = _Section(heading=None, path=[])
    stack = [root]
    for block in blocks:
        if isinstance(block, Heading):
            while stack[-1].level >= block.level:
                stack.pop()
            section = _Section(heading=block, path=[*stack[-1].path, title_of(block)])
            stack[-1].children.append(section)
            stack.append(section)
        else:
            stack[-1].own.append(block)
    return root


def _has_steps(blocks: list[AnyBlock]) -> bool:
    """True when the blocks read like a procedure: numbered items or a run of instructions."""
    ordered = numbered = imperative = 0
    for block in blocks:
        if isinstance(block, ListItem) and block.ordered:
            ordered += 1
        elif isinstance(block, Paragraph) and _NUMBERED_STEP.match(block.text):
            numbered += 1
        if isinstance(block, Paragraph | ListItem):
            words = block.text.split(maxsplit=1)
            imperative += bool(words) and words[0].lower().strip(",.:;") in _IMPERATIVES
    if ordered >= _MIN_STEPS or numbered >= _MIN_STEPS or imperative >= _MIN_IMPERATIVES:
        return True
    return _prose_instructions(blocks) >= _MIN_PROSE_INSTRUCTIONS


def _prose_instructions(blocks: list[AnyBlock]) -> int:
    """Instruction sentences in the paragraphs ("Once it arrives, ask them to ...")."""
    count = 0
    for block in blocks:
        if isinstance(block, Paragraph):
            count += sum(is_instruction(s) for s in split_sentences(block.text))
            if count >= _MIN_PROSE_INSTRUCTIONS:
                break
    return count


def _first_number(blocks: list[AnyBlock], *, last: bool) -> int | None:
    """The number of the first (or last) top-level numbered step among the blocks."""
    items = [b for b in blocks if isinstance(b, ListItem) and b.ordered and b.level == 0]
    for item in reversed(items) if last else items:
        match = re.match(r"^(\d+)[.)]?$", item.marker.strip())
        if match:
            return int(match.group(1))
    return None


def _continues(kids: list[_Section]) -> bool:
    """True when each section's steps carry on the numbering of the one before (1-4, then 5-10).

    Such sub-sections are stages of one procedure ("go to step 9" crosses them), not separate
    procedures.
    """
    for before, after in itertools.pairwise(kids):
        end = _first_number(before.blocks(), last=True)
        start = _first_number(after.blocks(), last=False)
        if end is None or start is None or start == 1 or start != end + 1:
            return False
    return True


def _is_pointer(section: _Section) -> bool:
    return bool(_POINTERS.match(section.title))


def _subtree_steps(section: _Section, memo: dict[int, bool]) -> bool:
    key = id(section)
    if key not in memo:
        kids = section.children
        memo[key] = _has_steps(section.own) or any(_subtree_steps(c, memo) for c in kids)
    return memo[key]


def _is_aux(section: _Section) -> bool:
    return bool(_AUX.match(section.title))


def _is_context(section: _Section) -> bool:
    return bool(_CONTEXT.match(section.title))


def _applies(section: _Section) -> bool:
    """A step-less sibling of procedures that the agent needs: rules, exceptions, tables."""
    if _is_context(section) or _is_pointer(section):
        return False
    return _is_aux(section) or any(
        isinstance(b, Table | Quote)
        or (isinstance(b, ListItem | Paragraph) and is_instruction(b.text))
        for b in section.blocks()
    )


def _collect(section: _Section, context: list[AnyBlock], memo: dict[int, bool]) -> list[_Draft]:
    """The procedures inside `section`, given the context its enclosing sections provide."""
    own_steps = _has_steps(section.own)
    step_kids = [
        child
        for child in section.children
        if not _is_aux(child) and not _is_context(child) and _subtree_steps(child, memo)
    ]
    if (own_steps and len(step_kids) < 2) or (len(step_kids) >= 2 and _continues(step_kids)):
        return [_Draft(section.title, section.path, section.blocks(), context)]
    if len(step_kids) >= 2:
        drafts: list[_Draft] = []
        shared = list(context)
        if own_steps:
            aux = [b for c in section.children if _is_aux(c) for b in c.blocks()]
            own = ([section.heading] if section.heading else []) + section.own + aux
            drafts.append(_Draft(section.title, section.path, own, context))
        else:
            shared += section.own
        rest = [
            c for c in section.children if c not in step_kids and not (own_steps and _is_aux(c))
        ]
        # Exceptions, escalation rules and reference tables beside the procedures apply to
        # each of them: they join every procedure's own blocks, where the agent reads them.
        common = [b for c in rest if _applies(c) for b in c.blocks()]
        shared += [b for c in rest if not _applies(c) for b in c.blocks()]
        lead = [] if own_steps else _lead_in(section)
        for child in step_kids:
            found = _collect(child, shared, memo)
            for draft in found:
                # segment() takes the lead-in out of the context once it is part of the blocks
                draft.blocks = [*lead, *draft.blocks, *common]
            drafts += found
        return drafts
    if len(step_kids) == 1:
        (child,) = step_kids
        # Exceptions, escalation rules and reference tables beside the procedure are part of it.
        aux_kids = [c for c in section.children if c is not child and _applies(c)]
        others = [c for c in section.children if c is not child and c not in aux_kids]
        inner = [*context, *section.own, *(b for c in others for b in c.blocks())]
        drafts = _collect(child, inner, memo)
        aux_blocks = [b for c in aux_kids for b in c.blocks()]
        for draft in drafts:
            draft.blocks = draft.blocks + aux_blocks
        if len(drafts) == 1 and _GENERIC.match(drafts[0].title):
            draft = drafts[0]
            if section.path:
                draft.title, draft.path = section.title, section.path
            else:
                draft.whole = True
            return drafts  # the section is the procedure: its own text is its background
        lead = _lead_in(section)
        for draft in drafts:
            draft.blocks = [*lead, *draft.blocks]
        return drafts
    return []


def _lead_in(section: _Section) -> list[AnyBlock]:
    """The section's own instructions, which every procedure inside it starts with.

    Only paragraphs and list items that hold an instruction count; a lead-in that points at
    the procedures ("use the procedure below that ...") stays background.
    """
    out: list[AnyBlock] = []
    if section.heading is None:
        return out  # text above the first heading is a cover page, not a step
    for block in section.own:
        if not isinstance(block, Paragraph | ListItem):
            continue
        sentences = split_sentences(block.text)
        if any(map(is_instruction, sentences)) and not any(_POINTER.search(s) for s in sentences):
            out.append(block)
    return out


def _fallback_title(document: Document) -> str:
    if document.title and document.title.strip():
        return document.title.strip()
    heading = next((b for b in document.blocks if isinstance(b, Heading)), None)
    if heading is not None:
        return title_of(heading)
    stem = PurePosixPath(document.source).stem
    words = re.sub(r"[\s_\-.]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else "Procedure"


def _notices_for(document: Document, blocks: list[AnyBlock]) -> list[Notice]:
    pages = {b.prov.page for b in blocks if b.prov.page is not None}
    paragraphs = {b.prov.paragraph for b in blocks if b.prov.paragraph is not None}
    out: list[Notice] = []
    for notice in document.notices:
        where = notice.prov
        if (
            where is None
            or (where.page is None and where.paragraph is None)
            or (where.page is not None and where.page in pages)
            or (where.page is None and where.paragraph in paragraphs)
        ):
            out.append(notice)
    return out


def segment(document: Document, *, agent: str) -> list[Procedure]:
    """The procedures of a cleaned document, in document order, with stable unique ids."""
    blocks: list[AnyBlock] = list(document.blocks)
    drafts = _collect(_tree(blocks), [], {})
    if not drafts:
        drafts = [_Draft("", [], blocks, [], whole=True)]
    if len(drafts) == 1 and not drafts[0].path:
        drafts[0].whole = True
    order = {block.id: index for index, block in enumerate(blocks)}
    stem = slugify(PurePosixPath(document.source).stem, fallback="sop")
    if len(drafts) == 1:
        ids = [stem]
    else:
        ids = dedupe(f"{stem}--{slugify(d.title or _fallback_title(document))}" for d in drafts)
    procedures: list[Procedure] = []
    for draft, proc_id in zip(drafts, ids, strict=True):
        own = sorted(_unique(draft.blocks), key=lambda b: order.get(b.id, 0))
        taken = {b.id for b in own}
        context = [b for b in _unique(draft.context) if b.id not in taken]
        context.sort(key=lambda b: order.get(b.id, 0))
        whole = draft.whole or not draft.title or (len(drafts) == 1 and bool(document.title))
        title = _fallback_title(document) if whole else draft.title
        if title.isupper():
            title = title.capitalize()  # "SETTING UP THE ROUTER" is a heading style, not a name
        procedures.append(
            Procedure(
                id=proc_id,
                title=title,
                source=document.source,
                source_sha256=document.sha256,
                agent=agent,
                heading_path=draft.path,
                blocks=own,
                context=context,
                notices=_notices_for(document, own),
            )
        )
    return procedures


def _unique(blocks: list[AnyBlock]) -> list[AnyBlock]:
    seen: set[str] = set()
    out: list[AnyBlock] = []
    for block in blocks:
        if block.id not in seen:
            seen.add(block.id)
            out.append(block)
    return out
