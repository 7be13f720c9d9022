"""segment: split a cleaned Document into procedures (sections that hold steps).

The heading tree is walked from the top. A section whose own text holds steps is one procedure,
with all its sub-sections (exceptions, notes, escalation). A section with several sub-sections
that hold steps is split: each becomes a procedure, and what the section says around them
(purpose, scope, definitions, shared escalation rules) becomes every procedure's context,
except its lead-in instructions ("3 Procedure: Before you start, open the customer's record"):
those are the first steps of each procedure inside it, so they join each procedure's blocks,
ahead of its heading. A procedure's blocks before its first heading are always such a lead-in.
A document in which nothing looks like steps is still one procedure: nothing is dropped.

Policies (headed sections of bullets and prose, one per customer request) are read by what each
section holds (`classify`, see sop_compiler/shape.py): procedure (a request or task), knowledge
(facts: the domain, what a record contains, definitions, fees, tables of values), rules
(constraints for every procedure of the document or of a section), noise (boilerplate), or a group
(a heading of several procedures). A document is read as a policy when a section names a request
that the step reading above would not make a procedure. Then every actionable section is one
procedure; sub-sections that are variants of one request (change the date / change the class) are
one procedure each, and the parent's own rule text starts each of them; a section's rules
sub-sections join each of its procedures; the document's rules, knowledge and intro text are every
procedure's context; knowledge is never a procedure; noise goes nowhere. Sections with steps inside
a policy are read as above.
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
    Flowchart,
    Heading,
    ListItem,
    Notice,
    Paragraph,
    Procedure,
    Quote,
    SectionClass,
    SectionKind,
    Table,
    block_text,
)
from sop_compiler.shape import (
    ContentShape,
    content_shape,
    is_boilerplate,
    names_rules_for_everything,
    title_verdict,
)
from sop_compiler.slug import dedupe, slugify
from sop_compiler.text import is_constraint, is_instruction, split_sentences

__all__ = ["classify", "segment", "unused_sections"]

AnyBlock = Heading | Paragraph | ListItem | Table | Figure | Code | Quote | Flowchart

_NUMBER = re.compile(r"^(?:\d+(?:\.\d+)*[.)]?|[A-Z][.)]|[IVX]+\.)\s+")
# "Step 2", "3. Refund it", "2.1) ...", and a clause "5.3.1 The Reservations Officer shall ..."
_NUMBERED_STEP = re.compile(
    r"^(?:(?i:step)\s+\d+\b|\d+(?:\.\d+)*[.):]\s+\S|\d+(?:\.\d+){1,3}\s+[A-Z])"
)
# Sub-sections that belong to the procedure above them even when they hold numbered items.
_AUX = re.compile(
    r"^(?:exceptions?|notes?|escalations?|escalation\s+\w+(?:\s+\w+)?|edge\s+cases?|"
    r"special\s+cases?|definitions?|warnings?|tips?|important|caveats?|examples?|"
    r"if\s+.*|when\s+.*|see\s+also|related\b.*|references?|contacts?)$",
    re.IGNORECASE,
)
# Aux sections that only point elsewhere: background for the reader, no rule for the agent.
_POINTERS = re.compile(
    r"^(?:definitions?|see\s+also|related\b.*|references?|(?:[\w-]+\s+)?contacts?(?:\s+list)?)$",
    re.IGNORECASE,
)
# Document-level sections that give every procedure its background.
_CONTEXT = re.compile(
    r"^(?:purpose|scope|purpose\s+and\s+scope|definitions?(?:\s+and\s+roles)?|glossary|"
    r"(?:key\s+)?terms(?:\s+and\s+definitions)?|terminology|"
    r"how\s+to\s+(?:use|read)(?:\s+(?:this|these)\b.*)?|(?:using|about)\s+(?:this|these)\b.*|"
    r"welcome\b.*|.*\bread\s+(?:this|me)\s+first|"
    r"polic(?:y|ies)|.*\bpolicy|roles?(?:\s+and\s+responsibilities)?|responsibilities|overview|"
    r"introduction|background|applicability|audience|objectives?|"
    r"prerequisites|requirements|summary|when\s+to\s+use(?:\s+this\s+procedure)?|when\s+this\s+applies)$",
    re.IGNORECASE,
)
# Section titles that say nothing about the procedure: use the enclosing title instead.
_GENERIC = re.compile(
    r"^(?:procedures?|steps|process|instructions|workflow|how\s+to|what\s+to\s+do|"
    # "Macro: Change of vehicle" over "Agent actions" and "Reply": the macro is the procedure
    r"(?:(?:agent|adviser|advisor|staff)\s+)?(?:actions|steps))$",
    re.IGNORECASE,
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
    # "Each macro below is what you run when the ticket type matches"
    r"\b(?:procedures?|sections?|process(?:es)?|steps|macros?|articles?|scripts?|templates?|"
    r"playbooks?|workflows?|checklists?)\s+(?:below|above|that follows?|which)\b|"
    r"\bthe following\s+(?:procedures?|sections?|steps)\b|\bsections?\s+\d|"
    # "this is the page for the front desk team ... It covers ... Everything below uses ..."
    r"\bthis\s+(?:is\s+the\s+)?(?:page|document|guide|wiki|handbook|manual|playbook)\b|"
    r"\beverything\s+below\b|^it\s+covers\b",
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
        if isinstance(block, Flowchart) and block.nodes:
            return True  # a flowchart is a procedure drawn as a graph
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
    # "4.1 Taking a new booking" (1-6), "4.2 Moving or cancelling a booking" (7-10): a word
    # processor numbers on across headings most of which name a task of their own; only a
    # jump from one into another ("go to step 9") makes them stages
    named = sum(
        (verdict := title_verdict(kid.title)) is not None and verdict.kind == "procedure"
        for kid in kids
    )
    return named * 2 <= len(kids) or _jumps_across(kids)


_STEP_REF = re.compile(r"\bsteps?\s+(\d+)\b", re.IGNORECASE)


def _jumps_across(kids: list[_Section]) -> bool:
    """True when a section's text names a step number of another section."""
    ranges = [
        (_first_number(kid.blocks(), last=False), _first_number(kid.blocks(), last=True))
        for kid in kids
    ]
    for index, kid in enumerate(kids):
        for block in kid.blocks():
            for match in _STEP_REF.finditer(block_text(block)):
                number = int(match.group(1))
                if any(
                    first is not None and last is not None and first <= number <= last
                    for other, (first, last) in enumerate(ranges)
                    if other != index
                ):
                    return True
    return False


def _is_pointer(section: _Section) -> bool:
    return bool(_POINTERS.match(section.title))


def _subtree_steps(section: _Section, memo: dict[int, bool]) -> bool:
    key = id(section)
    if key not in memo:
        kids = section.children
        memo[key] = _has_steps(section.own) or any(_subtree_steps(c, memo) for c in kids)
    return memo[key]


def _numbered_facts(section: _Section) -> bool:
    """ "2. SERVICE FACTS" over "2.1 Line open Monday to Friday 08:00 to 18:00", "2.2 Repair
    priorities and target times: ...": clause numbers over facts are no steps of a task."""
    verdict = title_verdict(section.title) if section.heading else None
    if verdict is None or verdict.kind != "knowledge" or section.children:
        return False
    shape = content_shape([b for b in section.own if not isinstance(b, Heading)])
    return shape.instructions < _MIN_STEPS and not _gerund_task(section.title, shape)


def _is_aux(section: _Section) -> bool:
    if _CASE_TITLE.match(section.title) and section.heading is not None:
        # "2  WHEN A SCREENING GOES WRONG", numbered like the procedures beside it ("1  TICKET
        # REFUNDS"): a procedure of its own, not a case of the one above
        raw = section.heading.text.strip()
        if section.heading.number and "." not in section.heading.number.strip("."):
            return False
        if re.match(r"^\d+[.)]?\s", raw):
            return False
    return bool(_AUX.match(section.title))


_CASE_TITLE = re.compile(r"^(?:if|when)\s", re.IGNORECASE)


def _peer_case(section: _Section) -> bool:
    """ "## When a guest is unhappy with a treatment" over numbered steps of its own, beside
    "## Booking a treatment" and "## Closing the spa": a procedure for that case, never a part
    of each procedure beside it (the back-office sweep would handle complaints). So is
    "When we are overbooked: walking a guest" over bullets that each say what to do."""
    items = [b for b in section.own if isinstance(b, ListItem) and b.level == 0]
    ordered = sum(b.ordered for b in items)
    told = sum(is_instruction(b.text) for b in items)
    return bool(_CASE_TITLE.match(section.title)) and max(ordered, told) >= _MIN_CASE_STEPS


_MIN_CASE_STEPS = 3


def _is_context(section: _Section) -> bool:
    """ "Purpose", "Scope and Definitions", "Purpose, scope & audience": background, no task."""
    parts = _CONTEXT_JOIN.split(section.title.strip())
    return all(_CONTEXT.match(part) for part in parts if part) and any(parts)


_CONTEXT_JOIN = re.compile(r"\s*(?:,|&|\band\b)\s*", re.IGNORECASE)


def _applies(section: _Section) -> bool:
    """A step-less sibling of procedures that the agent needs: rules, exceptions, tables."""
    if _is_context(section) or _is_pointer(section):
        return False
    verdict = title_verdict(section.title) if section.heading else None
    if verdict is not None and verdict.kind == "noise":
        return False  # "Chapter amendments": the document's history, no rule for the agent
    return _is_aux(section) or any(
        isinstance(b, Table | Quote)
        or (
            isinstance(b, ListItem | Paragraph)
            and is_instruction(b.text)
            and not is_boilerplate(b.text)
        )
        for b in section.blocks()
    )


def _own_task(section: _Section) -> bool:
    """A step-less sibling of procedures that is a task of its own, not a part of each of them.

    "3. Guest passes" (a paragraph, then "Check the member's plan ...", "Do not issue a pass
    ...", "Issue the pass ...") holds its own instructions: it is a procedure beside the
    numbered ones, and its "Issue the pass" never becomes a step of "Freezing a membership".
    Exceptions, notes, escalation and context sections, and headings that name rules, facts or
    boilerplate, stay what they are.
    """
    if _is_aux(section) or _is_context(section) or _is_pointer(section):
        return False
    verdict = title_verdict(section.title) if section.heading else None
    if verdict is not None and verdict.kind != "procedure":
        return False
    # a callout ("> Remember: - Always pull up the vehicle first ...") is what every task beside
    # it keeps to, no task of its section's own
    shape = content_shape([b for b in section.blocks() if not isinstance(b, Heading | Quote)])
    return shape.verdict().kind == "procedure" and shape.instructions >= _MIN_STEPS


def _collect(section: _Section, context: list[AnyBlock], memo: dict[int, bool]) -> list[_Draft]:
    """The procedures inside `section`, given the context its enclosing sections provide."""
    own_steps = _has_steps(section.own) or _peer_case(section)
    step_kids = [
        child
        for child in section.children
        if (not _is_aux(child) or _peer_case(child))
        and not (_is_context(child) and not any(_subtree_steps(g, memo) for g in child.children))
        and not names_rules_for_everything(child.title)  # "General Obligations": every task's
        and not _numbered_facts(child)
        and (_subtree_steps(child, memo) or _peer_case(child))
    ]
    if sum(not _is_aux(c) for c in step_kids) < 2:  # a case beside one procedure is its part
        step_kids = [c for c in step_kids if not _is_aux(c)]
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
        tasks = [c for c in rest if _own_task(c)]
        rest = [c for c in rest if c not in tasks]
        # Exceptions, escalation rules and reference tables beside the procedures apply to
        # each of them: they join every procedure's own blocks, where the agent reads them.
        common = [b for c in rest if _applies(c) for b in c.blocks()]
        shared += [b for c in rest if not _applies(c) for b in c.blocks()]
        lead = [] if own_steps else _lead_in(section)
        for child in section.children:
            if child in tasks:
                found = [_Draft(child.title, child.path, child.blocks(), shared)]
            elif child in step_kids:
                found = _collect(child, shared, memo)
            else:
                continue
            for draft in found:
                # segment() takes the lead-in out of the context once it is part of the blocks
                draft.blocks = [*lead, *draft.blocks, *common]
            drafts += found
        return drafts
    if len(step_kids) == 1 and _cases_of_task(section, step_kids[0]):
        return [_Draft(section.title, section.path, section.blocks(), context)]
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


def _cases_of_task(section: _Section, child: _Section) -> bool:
    """True when a task heading's one sub-section with steps is one of its cases.

    "Booking an appointment and phone triage" ("Find the client in VetPro first") over "Red
    flags — emergency" (numbered steps), "Same-day problems" and "Everything else"
    (instructions) is one procedure: the heading names the task, its own text starts it, and a
    sibling beside the numbered one instructs too (not an exception, a
    note or background), so the sub-sections are its cases, not a procedure and its notes.
    """
    verdict = title_verdict(section.title) if section.heading else None
    if verdict is None or verdict.kind != "procedure":
        return False
    if not any(not is_boilerplate(block_text(b)) for b in _lead_in(section)):
        return False  # "Version 3.2, reviewed March 2026" under a document's title starts nothing
    return any(other is not child and _is_case(other) for other in section.children)


def _is_case(section: _Section) -> bool:
    """A sub-section that instructs and whose heading names no rules, facts or boilerplate."""
    if _is_aux(section) or _is_context(section) or _is_pointer(section):
        return False
    verdict = title_verdict(section.title) if section.heading else None
    return (verdict is None or verdict.kind == "procedure") and _applies(section)


def _lead_in(section: _Section) -> list[AnyBlock]:
    """The section's own instructions, which every procedure inside it starts with.

    Only paragraphs and list items that hold an instruction count; a lead-in that points at
    the procedures ("use the procedure below that ...") stays background.
    """
    out: list[AnyBlock] = []
    if section.heading is None:
        return out  # text above the first heading is a cover page, not a step
    for block in section.own:
        if not isinstance(block, Paragraph | ListItem) or is_boilerplate(block.text):
            continue  # "Document control ... Classification: Internal - do not share"
        sentences = split_sentences(block.text)
        if any(map(is_instruction, sentences)) and not any(_POINTER.search(s) for s in sentences):
            out.append(block)
    return out


@dataclass(frozen=True)
class _Read:
    """How one section reads: its kind, why, and what its heading says of it."""

    kind: SectionKind
    reason: str
    named: bool = False  # the heading names a request or task ("Returns", "Cancel a booking")
    verb: bool = False  # ... and starts with its verb ("Change the date")


# Sub-section titles that are a case of the request above, never a request of their own.
_CASE = re.compile(
    r"^(?:if|when|whenever|where|unless|for|within|after|before|during|over|under|above|below|"
    r"more|less|up\s+to|in\s+case|outside|inside|with|without|by)\b",
    re.IGNORECASE,
)
_KEY_STOP = frozenset(
    ["a", "an", "the", "of", "to", "for", "and", "or", "your", "their", "my", "our", "this", "that"]
)


def _reads(root: _Section) -> dict[int, _Read]:
    """Every section's reading, children before parents (a group depends on its children)."""
    reads: dict[int, _Read] = {}
    titles = {id(section) for section in _top(root)}  # the document's title names no part

    def visit(section: _Section) -> None:
        for child in section.children:
            visit(child)
        reads[id(section)] = _read(section, reads, titled=id(section) not in titles)

    visit(root)
    return reads


def _read(section: _Section, reads: dict[int, _Read], *, titled: bool) -> _Read:
    charts = [b for b in section.own if isinstance(b, Flowchart) and b.nodes]
    if charts:
        return _Read("procedure", f"holds a flowchart of {len(charts[0].nodes)} nodes")
    verdict = title_verdict(section.title) if section.heading and titled else None
    named = verdict is not None and verdict.kind == "procedure"
    verb = named and bool(verdict and "task verb" in verdict.reason)
    if section.heading is None or verdict is None or named:
        variants = _variants(section, reads, verb=verb, named=named)
        if len(variants) >= 2 or (not named and variants):
            titles = ", ".join(repr(v.title) for v in variants)
            return _Read("group", f"heads {len(variants)} procedures: {titles}", named, verb)
    shape = content_shape([b for b in section.blocks() if not isinstance(b, Heading)])
    if verdict is not None and verdict.kind == "knowledge" and _gerund_task(section.title, shape):
        # "Changing dates" over instructions: the heading's "dates" is what the task changes
        return _Read("procedure", f"heading {section.title!r} names a task and its text instructs")
    if verdict is not None and not (
        verdict.kind == "noise" and (shape.steps >= 2 or shape.instructions >= _MIN_STEPS)
    ):
        # "Amendments" over "Issue 7: limit raised to 6 months" is document control; over two
        # instructions it is a request, and its text decides
        if named and not shape.actionable:
            kind: SectionKind = "knowledge" if shape.facts or shape.tables else "noise"
            return _Read(kind, f"{verdict.reason}, but holds no instruction or rule")
        return _Read(verdict.kind, verdict.reason, named, verb)
    content = shape.verdict()
    return _Read(content.kind, content.reason)


def _gerund_task(title: str, shape: ContentShape) -> bool:
    """A heading that opens with a task verb ("Changing dates") over two or more instructions."""
    first = title.split(None, 1)[0].casefold() if title.split() else ""
    return first.endswith("ing") and shape.instructions + shape.steps >= 2


def _variants(
    section: _Section, reads: dict[int, _Read], *, verb: bool, named: bool
) -> list[_Section]:
    """The sub-sections that are procedures of their own (variants of the section's request).

    Under a task heading ("Modify a booking") only sub-sections that name a task with their own
    verb split off ("Change the date", "Add a bag"); a case ("Within 24 hours") or a shared rule
    ("Payment") stays part of it. Variants that name the same task ("Cancel online", "Cancel by
    phone") are one procedure.
    """
    out: list[_Section] = []
    for child in section.children:
        read = reads[id(child)]
        if _CASE.match(child.title) or _is_aux(child):
            continue
        if verb and not read.verb and read.kind != "group":
            continue
        if named and not read.named and read.kind != "group":
            continue
        if read.kind in ("procedure", "group"):
            out.append(child)
    keys = [_key(child.title) for child in out]
    if named and len(set(keys)) < len(keys):
        return []
    return out


def _key(title: str) -> str:
    """A task heading without its cases: "Cancel within 24 hours" -> "cancel"."""
    words: list[str] = []
    for word in re.findall(r"[a-z0-9'-]+", title.casefold()):
        if _CASE.match(word):
            break
        if word not in _KEY_STOP:
            words.append(word)
    return " ".join(words)


def _is_policy(root: _Section, reads: dict[int, _Read], steps: list[_Draft]) -> bool:
    """True when a section names a request that the step reading leaves inside another."""
    taken = [draft.path for draft in steps if draft.path and not draft.whole]
    memo: dict[int, bool] = {}

    def missed(section: _Section) -> bool:
        read = reads[id(section)]
        if read.kind == "procedure" and read.named:
            covered = any(section.path[: len(path)] == path for path in taken)
            return not covered and not _subtree_steps(section, memo)
        # the parts of a section titled "Procedure" are its stages ("2.1 Verify", "2.2 Resolve")
        return (
            read.kind == "group"
            and not _GENERIC.match(section.title)
            and any(missed(child) for child in section.children)
        )

    return any(missed(child) for child in root.children)


def _policy(
    section: _Section,
    reads: dict[int, _Read],
    *,
    context: list[AnyBlock],
    lead: list[AnyBlock],
    applies: list[AnyBlock],
    top: bool,
    memo: dict[int, bool],
) -> list[_Draft]:
    """The procedures of a policy section (a group), given what its enclosing sections give."""
    shared = list(context)
    own_lead: list[AnyBlock] = []
    for block in section.own:
        text = block_text(block)
        if isinstance(block, Paragraph) and is_boilerplate(text):
            continue  # "Revision 3.2, approved 2026-09-01": nothing for the agent
        if (
            not top
            and isinstance(block, Paragraph | ListItem)
            and content_shape([block]).actionable
        ):
            own_lead.append(block)  # the section's rule text starts each procedure inside it
        else:
            shared.append(block)
    read = reads[id(section)]
    variants = {id(child) for child in _variants(section, reads, verb=read.verb, named=read.named)}
    procedures: list[_Section] = []
    rules = list(applies)
    for child in section.children:
        kind = reads[id(child)].kind
        if id(child) in variants:
            procedures.append(child)
        elif kind in ("procedure", "group"):
            rules += child.blocks()  # a case or shared part of the request ("Payment")
        elif kind == "knowledge" or (kind == "rules" and top):
            shared += child.blocks()
        elif kind == "rules":
            rules += child.blocks()
    lead = [*lead, *own_lead]
    drafts: list[_Draft] = []
    for child in procedures:
        if reads[id(child)].kind == "group":
            found = _policy(
                child, reads, context=shared, lead=lead, applies=rules, top=False, memo=memo
            )
        else:
            found = _policy_procedure(child, reads, context=shared, memo=memo)
            for draft in found:
                draft.blocks = [*lead, *draft.blocks, *rules]
        drafts += found
    return drafts


def _policy_procedure(
    section: _Section, reads: dict[int, _Read], *, context: list[AnyBlock], memo: dict[int, bool]
) -> list[_Draft]:
    """One actionable section: its text and sub-sections, with its knowledge as context."""
    if _subtree_steps(section, memo):
        return _collect(section, context, memo) or [
            _Draft(section.title, section.path, section.blocks(), context)
        ]
    blocks: list[AnyBlock] = [section.heading] if section.heading else []
    blocks += section.own
    inner = list(context)
    for child in section.children:
        kind = reads[id(child)].kind
        if kind == "knowledge":
            inner += child.blocks()
        elif kind != "noise":
            blocks += child.blocks()
    return [_Draft(section.title, section.path, blocks, inner)]


def _top(root: _Section) -> list[_Section]:
    """The sections whose rules hold for the whole document: the root and a lone title."""
    out = [root]
    while len(out[-1].children) == 1 and out[-1].children[0].children:
        child = out[-1].children[0]
        verdict = title_verdict(child.title) if child.heading else None
        if verdict is not None and "task verb" in verdict.reason:
            break  # "Modify a booking": a task whose parts are its variants, not the title
        out.append(child)
    return out


def _drafts(root: _Section) -> tuple[list[_Draft], dict[int, _Read]]:
    memo: dict[int, bool] = {}
    steps = _collect(root, [], memo)
    reads = _reads(root)
    if not _is_policy(root, reads, steps):
        return steps, reads
    top = _top(root)
    context: list[AnyBlock] = []
    for section in top[:-1]:
        context += [section.heading] if section.heading else []
        context += [b for b in section.own if not is_boilerplate(block_text(b))]
    drafts = _policy(top[-1], reads, context=context, lead=[], applies=[], top=True, memo=memo)
    return drafts, reads


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
    if not document.notices:
        return []
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
    drafts, _ = _drafts(_tree(blocks))
    if not drafts:
        drafts = [_Draft("", [], blocks, [], whole=True)]
    if len(drafts) == 1 and not drafts[0].path:
        drafts[0].whole = True
    stem = slugify(PurePosixPath(document.source).stem, fallback="sop")
    if len(drafts) == 1:
        ids = [stem]
    else:
        ids = dedupe(f"{stem}--{slugify(d.title or _fallback_title(document))}" for d in drafts)
    procedures: list[Procedure] = []
    for draft, proc_id in zip(drafts, ids, strict=True):
        own = _in_order(blocks, draft.blocks)
        context: list[AnyBlock] = []
        if draft.context:
            taken = {id(b) for b in own}
            context = _in_order(blocks, [b for b in draft.context if id(b) not in taken])
        whole = draft.whole or not draft.title
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


def classify(document: Document, procedures: list[Procedure]) -> list[SectionClass]:
    """How each headed section of a cleaned document was read, and where its text went.

    `sopc inspect` shows this so that a user can see why a section became a procedure, a rule for
    every procedure, reference facts, or nothing (boilerplate).
    """
    root = _tree(list(document.blocks))
    reads = _reads(root)
    owner: dict[str, list[str]] = {}
    context: dict[str, list[str]] = {}
    for procedure in procedures:
        for block in procedure.blocks:
            owner.setdefault(block.id, []).append(procedure.id)
        for block in procedure.context:
            context.setdefault(block.id, []).append(procedure.id)
    out: list[SectionClass] = []

    def visit(section: _Section) -> None:
        if section.heading is not None:
            read = reads[id(section)]
            own = [section.heading, *section.own]
            out.append(
                SectionClass(
                    heading_path=section.path,
                    kind=read.kind,
                    reason=read.reason,
                    blocks=[b.id for b in own],
                    in_procedures=sorted({p for b in own for p in owner.get(b.id, [])}),
                    in_context=sorted({p for b in own for p in context.get(b.id, [])}),
                )
            )
        for child in section.children:
            visit(child)

    visit(root)
    return out


def unused_sections(document: Document, sections: list[SectionClass]) -> list[Notice]:
    """A notice for each section whose own text reached no procedure and may matter.

    Boilerplate that states no rule ("Questions go to ops@...") is left out quietly; a heading
    with no text of its own is accounted for by its sub-sections.
    """
    by_id = {block.id: block for block in document.blocks}
    out: list[Notice] = []
    for section in sections:
        if section.kind == "group" or section.in_procedures or section.in_context:
            continue
        own = [block_text(by_id[b]) for b in section.blocks[1:] if b in by_id]
        if not own or (section.kind == "noise" and not any(map(is_constraint, own))):
            continue
        out.append(
            Notice(
                code="unused_section",
                message=f"warning: section {section.heading_path[-1]!r} ({section.reason}) is in "
                "no routine; check `sopc inspect` and the section's heading",
            )
        )
    return out


def _in_order(blocks: list[AnyBlock], some: list[AnyBlock]) -> list[AnyBlock]:
    """`some` of the document's `blocks` once each, in document order.

    By the block objects (segment never copies one), not by their ids: a packed block spells
    its id anew each time it is read, and a big file's ids took more memory than its text.
    """
    if len(some) * 2 > len(blocks):  # most of the document: walk it rather than build a set
        rest = iter(blocks)
        if all(any(block is other for other in rest) for block in some):
            return list(some)
    wanted = {id(block) for block in some}
    return [block for block in blocks if id(block) in wanted]
