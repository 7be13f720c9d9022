"""The shape of a procedure: its sections, and the numbered units (SOP steps) of step sections."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

from sop_compiler.models import Block, Heading, ListItem, Paragraph, Procedure, Quote, Table
from sop_compiler.shape import names_rules_for_everything, title_verdict
from sop_compiler.text import CONTEXT_TITLE, INSTRUCTION_VERBS, split_sentences

# "rules": what holds for every procedure ("Read me first"), read by standing.py, no steps
SectionKind = Literal["steps", "edge", "escalation", "context", "conditional", "rules"]

_NUMBER = re.compile(r"^(?:\d+(?:\.\d+)*[.)]?|[A-Z][.)]|[IVX]+\.)\s+")
_EDGE = re.compile(
    r"^(?:exceptions?|exception handling|notes?|edge cases?|special cases?|caveats?|important|"
    r"warnings?|tips?|known issues|things to watch(?: out for)?|special situations?)\b",
    re.IGNORECASE,
)
_ESCALATION = re.compile(r"^(?:escalations?|when to escalate|escalation\s+\w+)\b", re.IGNORECASE)
_CONDITIONAL = re.compile(r"^(?:if|when|in case|in the event)\s+", re.IGNORECASE)
# A numbered paragraph: "3. Do X", "Step 3: Do X", "Step 3 — Do X", "3) Do X", "3.1 Do X",
# "6.3.5 Do X", "b) Do X".
_NUMBERED = re.compile(
    r"^\s*(?:step\s+(?P<step>\d+)\s*[:.)\u2013\u2014-]?|(?P<sub>\d+(?:\.\d+)+)\.?|(?P<num>\d+)[.):]|"
    r"(?P<letter>[a-z])[.)])\s+",
    re.IGNORECASE,
)


# A table of cases: its first column names situations, its last what to do (edge cases).
CASE_HEADER = re.compile(
    r"^(?:if|when|situation|case|condition|scenario|issue|problem|symptom|trigger|request|"
    r"(?:type|kind)\s+of\s+[a-z]+|what\s+happened|"
    r"(?:customer|caller|member|guest)\s+(?:says|asks|reports|wants?(?:\s+to)?|needs?))\b",
    re.IGNORECASE,
)
ACTION_HEADER = re.compile(
    r"^(?:then|action|actions|what\s+to\s+do|what\s+(?:you|we)\s+do|do|response|resolution|"
    r"next\s+step|outcome|decision|what\s+happens|"
    # "What they get": the remedy each row gives, which the agent carries out
    r"what\s+(?:they|the\s+(?:customer|caller|member|guest|client|passenger))\s+(?:gets?|receives?)|"
    r"handling|route\s+to|escalate\s+to)\b",
    re.IGNORECASE,
)
_ANY_VALUE = re.compile(r"^(?:any|all|other|others|otherwise|else|default|either|-|\*|n/a)\b", re.I)


@dataclass
class Section:
    """Blocks under one heading, by what they hold."""

    kind: SectionKind
    title: str
    heading: Heading | None = None
    blocks: list[Block] = field(default_factory=list)
    lead_in: bool = False  # the enclosing section's instructions, ahead of the procedure's heading


@dataclass
class Unit:
    """One step as the SOP numbers it: a list item or numbered paragraph, with its sub-items."""

    block_id: str
    text: str
    key: str | None = None  # the SOP's number for `go to step N`: "3", "3b", "3.1"
    children: list[Unit] = field(default_factory=list)
    numbered: bool = True  # False for a plain paragraph (its non-instructions are dropped)
    extra: list[str] = field(default_factory=list)  # quoted scripts that belong to the step
    depth: int = 0  # nesting as the SOP shows it: siblings share a depth (2.1, 2.2 vs a., b.)
    cite: str | None = None  # the words of the source a made-up text stands for (a table row)
    case_of_run: bool = False  # one of a run of labelled cases ("Private land:", "Public land:")
    one_side: bool = False  # the whole item is one side of a test ("No: ... stop and escalate")
    part: bool = False  # the end of its lead's sentence ("record:" over "when it started;")


def heading_title(text: str) -> str:
    """A heading's text without its section number."""
    return _NUMBER.sub("", text).strip().rstrip(":").strip() or text.strip()


def sections(procedure: Procedure) -> list[Section]:
    """The procedure's blocks grouped under their headings, each section classified by its title."""
    # segment puts the lead-in of the section around the procedure ahead of its first heading
    lead = next((i for i, b in enumerate(procedure.blocks) if isinstance(b, Heading)), 0)
    lead = lead if procedure.heading_path else 0
    out: list[Section] = [Section("steps", procedure.title, lead_in=lead > 0)]
    inherited: list[tuple[int, SectionKind]] = []  # (level, kind) of enclosing special sections
    reached = not any(
        isinstance(b, Heading) and heading_title(b.text).casefold() == procedure.title.casefold()
        for b in procedure.blocks
    )  # past the procedure's own heading (or it has none among its blocks)
    own_level: int | None = None  # the level of the procedure's own heading
    for position, block in enumerate(procedure.blocks):
        if not isinstance(block, Heading):
            out[-1].blocks.append(block)
            continue
        title = heading_title(block.text)
        if position == lead and lead:
            out.append(Section("steps", procedure.title))  # the procedure's own text starts here
        if position == lead and title.casefold() == procedure.title.casefold():
            continue  # the procedure's own title
        while inherited and inherited[-1][0] >= block.level:
            inherited.pop()
        own = title.casefold() == procedure.title.casefold()
        if own and own_level is None:
            own_level = block.level
        if own:
            # "## 4. General Provisions" joined ahead of "### 5.1 Booking a Stay": the
            # procedure's own heading is its steps, however deep
            inherited.clear()
            reached = True
        kind = _classify(title)
        beside = not own and own_level is not None and block.level <= own_level  # not a part
        if kind == "steps" and (beside or not reached) and _names_facts(title):
            # "## Office hours and key facts" joined ahead of the procedure (a "Remember"
            # box in it holds for every procedure), "9. USEFUL FACTS" joined after it: its
            # items are facts, no steps
            kind = "context"
        if kind == "steps" and inherited:
            kind = inherited[-1][1]
        elif kind not in ("steps", "rules"):
            # a "rules for everything" section joined ahead of the procedure ends where the
            # procedure's own text starts, whose heading segment took out: its sub-headings
            # ("Waiver bands", "Steps") are the procedure's, never more rules
            inherited.append((block.level, kind))
        out.append(Section(kind, title, heading=block))
    return [s for s in out if s.blocks or s.kind == "conditional"]


# "Who this is for": a list of readers ("Service desk advisers", "Branch staff"), no steps
# and no rules
AUDIENCE = re.compile(
    r"^(?:who\s+(?:this|it)\s+is\s+for|who\s+should\s+(?:use|read)|(?:intended\s+)?audience)\b",
    re.IGNORECASE,
)


def _names_facts(title: str) -> bool:
    verdict = title_verdict(title)
    return verdict is not None and verdict.kind == "knowledge"


def _classify(title: str) -> SectionKind:
    if names_rules_for_everything(title):
        return "rules"
    if _ESCALATION.match(title):
        return "escalation"
    if _EDGE.match(title):
        return "edge"
    if CONTEXT_TITLE.match(title) or AUDIENCE.match(title):
        return "context"
    if _CONDITIONAL.match(title):
        return "conditional"
    return "steps"


def units(section: Section) -> list[Unit]:
    """The top-level units of a step section, sub-items nested under their parent."""
    top: list[Unit] = []
    has_ordered = any(
        (isinstance(b, ListItem) and b.ordered and b.level == 0)
        or (isinstance(b, Paragraph) and _NUMBERED.match(b.text))
        for b in section.blocks
    )
    parent: Unit | None = None
    options = _heading_options(section)
    ordered = [
        n
        for n, b in enumerate(section.blocks)
        if (isinstance(b, ListItem) and b.ordered)
        or (isinstance(b, Paragraph) and _NUMBERED.match(b.text))
    ]
    # a list's own lines are in its items: a paragraph after the list is outside it (after a
    # numbered paragraph, "Step 3: Run a line test.", the next paragraph may go on with it)
    listed = bool(ordered) and isinstance(section.blocks[ordered[-1]], ListItem)
    after_last = {b.id for b in section.blocks[ordered[-1] + 1 :]} if listed else set()
    colon: Unit | None = None  # a paragraph that ends in a colon, whose sentence items finish
    # the rows of a table of steps share the table's id (with_step_tables)
    ids = [b.id for b in section.blocks if isinstance(b, ListItem)]
    rows_of_tables = {i for i in ids if ids.count(i) > 1}
    for block in section.blocks:
        if isinstance(block, ListItem):
            # "(b)" after "(a)" at the same depth is its sibling, not its sub-item
            lettered = parent is not None and re.fullmatch(r"[a-z]", parent.key or "") is not None
            numbered = re.match(r"^\s*(\d+)\.\d+\.?\s*$", block.marker)
            sub = (
                block.level > 0
                # "3.2" under "3." is its sub-step; "3.1", "3.2" under the heading "3." are the
                # steps themselves, siblings
                or (
                    _is_sub_marker(block.marker)
                    and not lettered
                    and (
                        numbered is None or (parent is not None and parent.key == numbered.group(1))
                    )
                )
                or (
                    not block.ordered
                    and has_ordered
                    and parent is not None
                    # a bullet after a table of steps is no part of its last row
                    and (parent.block_id not in rows_of_tables or block.id in rows_of_tables)
                )
                # "Cancel:" over "1. Find the account ...": the option's steps
                or (parent is not None and parent.case_of_run and parent.text.endswith(":"))
            )
            key = _key(block.marker, parent.key if parent and sub else None)
            depth = block.level if block.level > 0 else int(sub)
            unit = Unit(block.id, block.text, key=key, depth=depth)
            if not sub:
                unit = _lettered(unit)
        elif isinstance(block, Paragraph):
            match = _NUMBERED.match(block.text)
            if block.id in options:
                unit, sub = (
                    Unit(block.id, options[block.id], cite=block.text, case_of_run=True),
                    False,
                )
            elif match is None:
                # Between numbered steps, a plain paragraph belongs to the step above it; after
                # the last of them, to the section ("NEVER take card details by text ...")
                unit = Unit(block.id, block.text, numbered=False)
                sub = has_ordered and parent is not None and block.id not in after_last
            else:
                # "2.1" under step 2 is its sub-step; "4.1", "4.2" under the heading "4." are
                # the steps themselves, siblings
                sub = bool(match.group("letter")) or bool(
                    match.group("sub")
                    and parent is not None
                    and parent.key == match.group("sub").rsplit(".", 1)[0]
                )
                raw = (
                    match.group("step")
                    or match.group("sub")
                    or match.group("num")
                    or match.group("letter")
                )
                key = _key(raw, parent.key if parent and sub else None)
                # "a." under "3.1" sits one level deeper than the "3.1" it follows
                dotted = parent is not None and any("." in (c.key or "") for c in parent.children)
                depth = 2 if match.group("letter") and dotted else int(sub)
                unit = Unit(block.id, block.text[match.end() :], key=key, depth=depth)
        elif isinstance(block, Table) and (
            rows := table_steps(block)
            or (led_cases(block) if parent and _leads(parent) and not parent.children else None)
        ):
            # "Status | What to do": one condition per row; under "Check the status:" the rows
            # are that step's cases, of which only one runs (chains.py)
            made = [Unit(block.id, text, cite=cite, depth=1) for text, cite in rows]
            if parent is not None and _leads(parent) and not parent.children:
                parent.children += made
            elif len(made) > 1 and block.header:
                # a table on its own: its header's inputs lead its rows, so that they are
                # cases of one step, only one of which runs ("Invoice overdue | Action")
                *inputs, _ = (" ".join(cell.split()) for cell in block.header)
                lead = f"Check the {' and the '.join(_lower(name) for name in inputs)}:"
                top.append(Unit(block.id, lead, cite=" | ".join(block.header), children=made))
            else:
                top += [replace(unit, depth=0) for unit in made]
            parent = None
            continue
        elif isinstance(block, Quote) and parent is not None and not _NOTE.match(block.text):
            target = parent.children[-1] if parent.children else parent
            target.extra.append(block.text)
            continue
        elif isinstance(block, Quote) and parent is None and (guard := _callout_guard(block.text)):
            # "> Before you apply: If the car is in a live lane, or anyone is hurt, stop and
            # ...": a case to test before the steps, the first of them
            unit, sub = Unit(block.id, guard), False
        else:
            continue
        if (
            isinstance(block, ListItem)
            and colon is not None
            and block.text[:1].islower()
            and block.level == 0
            and block.text.split(None, 1)[0].casefold() not in INSTRUCTION_VERBS
        ):
            # "When you log a complaint, record:" over "what went wrong;", "when it
            # started;": the lead's sentence goes on in its items, which are its parts; the
            # lead is a step of its own, never a note of the step above it
            if colon not in top:
                if parent is not None and colon in parent.children:
                    parent.children.remove(colon)
                colon = replace(colon, depth=0)
                top.append(colon)
                parent = colon
            colon.children.append(replace(unit, depth=1, part=True))
            continue
        colon = unit if isinstance(block, Paragraph) and _ENDS_IN_ORDER.search(block.text) else None
        if sub and parent is not None:
            parent.children.append(unit)
        else:
            top.append(unit)
            parent = unit
    return top


# "Skip: fine, skip the next visit.", "Cancel:" alone over its steps, "Smears or missed
# windows:", "Missed visit (round sheet says it wasn't done):": a label of up to five words
# (an aside in brackets after it), a colon, and what to do
_OPTION_LABEL = re.compile(
    r"^(?P<label>[A-Z][\w'-]*(?:[ ][\w'-]+){0,4})(?P<aside>\s+\([^()]{1,80}\))?\s*:"
    r"(?:\s+(?P<rest>\S.*))?$",
    re.S,
)
_LIST_WORDS = frozenset({"or", "and", "a", "an", "the", "of", "for", "to"})
_HEADING_WORD = re.compile(r"[a-z]{3,}")


# "When you log a complaint, record:", "Make sure the note includes:": a sentence whose verb
# wants the things its items name
_ENDS_IN_ORDER = re.compile(
    r"\b(?:record|note|include|includes|capture|log|write\s+down|ask\s+for|collect|take|get|"
    r"check|confirm|give|send|tell\s+them|cover|covers)\s*:\s*$",
    re.IGNORECASE,
)


def _heading_options(section: Section) -> dict[str, str]:
    """The paragraphs of `section` labelled with the alternatives its heading names, as the
    cases they are ("If the request is to skip, ..."), by block id.

    Under "SKIPPING A CLEAN OR CANCELLING", "Skip: fine, skip the next visit" and "Cancel:" over
    numbered steps are the two requests the section handles, only one of which holds; read as
    steps, every caller would skip and then cancel. Each label's words are words of the heading
    ("Skip" in "skipping", "Exchanges" in "Refunds and exchanges"); fewer than two labels, or a
    note ("Note:"), is no set of options."""
    title = _HEADING_WORD.findall(section.title.casefold())

    def in_title(word: str) -> bool:
        stem = word.casefold().removesuffix("s").removesuffix("e")
        return len(stem) >= 3 and any(heard.startswith(stem) for heard in title)

    found: dict[str, str] = {}
    for block in section.blocks:
        if not isinstance(block, Paragraph) or _NUMBERED.match(block.text):
            continue
        match = _OPTION_LABEL.match(block.text.strip())
        if match is None:
            continue
        words = match["label"].split()
        said = [word for word in words if word.casefold() not in _LIST_WORDS]
        if words[0].casefold() in _NOT_A_CASE or not said or not all(map(in_title, said)):
            continue
        label = _lower_first(match["label"]) + (match["aside"] or "")
        verb = len(words) == 1 and label.casefold() in INSTRUCTION_VERBS
        case = f"If the request is {'to' if verb else 'about'} {label}"
        found[block.id] = f"{case}: {match['rest'].strip()}" if match["rest"] else f"{case}:"
    distinct = {text.split(":", 1)[0] for text in found.values()}
    return found if len(distinct) >= 2 else {}


# "> **Important:** never send a repair pack to ...": a note of the SOP (its rules are read
# as rules), no script for the step above it
_NOTE = re.compile(
    r"^\W*(?:important|note|nb|n\.b\.|warning|caution|remember|tip|reminder)\b", re.IGNORECASE
)


_CALLOUT_LABEL = re.compile(r"^\W*[A-Za-z][\w' ]{0,30}:\**\s+")


def _callout_guard(text: str) -> str | None:
    """A callout's text when it opens with a condition of its own ("Before you apply: If the
    car is in a live lane, ..."), after its label; None for a note, a rule or a script."""
    text = " ".join(text.split())
    label = _CALLOUT_LABEL.match(text)
    rest = text[label.end() :] if label else text
    return rest if _CONDITIONAL.match(rest) and len(rest.split(",", 1)[0].split()) > 2 else None


_LETTERED = re.compile(r"^\s*\(?(?P<letter>[a-z])[.)]\s+(?P<text>\S.*)$")


def _lettered(unit: Unit) -> Unit:
    """`unit` with "a. ...", "b. ..." lines of its text as its sub-items.

    Markdown has no lettered lists: "2. Check the status:" over indented "a. If ...", "b. If ..."
    lines is one list item whose text holds the lines. Read as one step, its cases would run one
    after another; as sub-items they are the step's cases. Only a run that starts at "a" and goes
    on letter by letter counts."""
    lines = unit.text.split("\n")
    found = [_LETTERED.match(line) for line in lines]
    letters = [m.group("letter") for m in found if m is not None]
    if len(letters) < 2 or letters != [chr(ord("a") + n) for n in range(len(letters))]:
        return unit
    first = next(n for n, m in enumerate(found) if m is not None)
    children: list[Unit] = []
    for line, match in zip(lines[first:], found[first:], strict=True):
        if match is not None:
            key = f"{unit.key}{match.group('letter')}" if unit.key else None
            children.append(Unit(unit.block_id, match.group("text"), key=key, depth=1))
        elif line.strip():
            children[-1].text = f"{children[-1].text}\n{line.strip()}"
    head = "\n".join(lines[:first]).strip()
    return replace(unit, text=head, children=[*children, *unit.children])


def _is_sub_marker(marker: str) -> bool:
    marker = marker.strip()
    return bool(re.match(r"^(?:\d+\.\d+\.?|\(?[a-z][.)])$", marker))


def _key(marker: str, parent_key: str | None) -> str | None:
    raw = marker.strip().strip("().").casefold()
    if not raw or not re.match(r"^[0-9a-z.]+$", raw):
        return None
    if parent_key and re.match(r"^[a-z]$", raw):
        return f"{parent_key}{raw}"
    if parent_key and raw.isdigit():
        return f"{parent_key}.{raw}"  # "1." nested under step 2 is the SOP's 2.1
    return raw


def _leads(unit: Unit) -> bool:
    """ "3. Decide what to do:": a step whose text ends in a colon leads the table after it."""
    return unit.text.rstrip().endswith(":")


def led_cases(table: Table) -> list[tuple[str, str]] | None:
    """A table of situations ("Situation | What to do") that a step leads ("Decide what to do:"),
    as that step's cases: "If <situation>, <action>." per row, a last "Anything else" row as
    "Otherwise, <action>."; None when a row's action is no instruction ("No action" alone) or a
    situation holds a comma (a list of values would be misread as a test ending). Not led by a
    step, such a table is edge cases (edge_cases.py)."""
    header = [" ".join(h.split()) for h in table.header or []]
    if len(header) != 2 or not CASE_HEADER.match(header[0]) or not ACTION_HEADER.match(header[1]):
        return None
    rows: list[tuple[str, str]] = []
    for number, row in enumerate(table.rows):
        cells = [" ".join(c.split()) for c in row]
        if len(cells) != 2 or not all(cells) or _LISTING_COMMA.search(cells[0]):
            return None  # a list of values; "over £1,000" is one value
        situation, action = cells[0], _NO_ACTION.sub("", cells[1])
        # "We don't refund unused time. Offer a credit ... instead.": an order in the cell
        orders = [
            s
            for s in split_sentences(action)
            if s.split(None, 1)[0].casefold() in INSTRUCTION_VERBS
        ]
        if not action or not orders:
            return None
        action = f"{action[0].lower()}{action[1:]}"
        if _ANY_VALUE.match(situation) or _ANYTHING_ELSE.match(situation):
            if number != len(table.rows) - 1 or not rows:
                return None
            text = f"Otherwise, {action}"
        else:
            text = f"If {_lower(situation)}, {action}"
        rows.append((text if text.endswith(".") else f"{text}.", " ".join(cells)))
    return rows or None


_LISTING_COMMA = re.compile(r",(?!\d{3}\b)")
# "Nothing; payments are often in transit", "None", "No action": a row whose case needs nothing
_NOTHING = re.compile(
    r"^(?:nothing|none|no\s+(?:further\s+)?action)(?=\s*(?:[;:,.\u2014-]|$))", re.I
)
_NO_ACTION = re.compile(r"^no\s+(?:further\s+)?action\s*[;:,.\u2014-]\s*", re.IGNORECASE)
_ANYTHING_ELSE = re.compile(r"^(?:anything|everything|everyone|all)\s+else\b", re.IGNORECASE)


def with_step_tables(procedure: Procedure) -> Procedure:
    """The procedure with each table of steps ("Step | What to do", "Who | Does what | Then")
    read as the numbered list it is: one item per row, citing the table. Where a swimlane's
    "Then" says "Decision below." or "Decision 2.", the decision (with_decisions) is the step
    after that row, as the table orders it, not after the whole table."""
    blocks: list[Block] = []
    placed: set[str] = set()  # the decisions placed after their rows
    for at, block in enumerate(procedure.blocks):
        rows = step_rows(block) if isinstance(block, Table) else None
        if rows is None:
            if block.id not in placed:
                blocks.append(block)
            continue
        later = [b for b in procedure.blocks[at + 1 :] if isinstance(b, Paragraph)]
        decisions = [b for b in later if _DECIDED.match(b.text)]
        number = 0
        for key, text, points in rows:
            number = number + 1 if key is None else int(key)
            item = ListItem(
                id=block.id, prov=block.prov, text=text, marker=f"{number}.", ordered=True
            )
            blocks.append(item)
            if key is not None or points is None:
                continue
            chosen = [d for d in decisions if d.id not in placed]
            if points:  # "Decision 2."
                chosen = decisions[points - 1 : points] if points <= len(decisions) else []
            if chosen and chosen[0].id not in placed:
                number += 1
                decision = chosen[0]
                placed.add(decision.id)
                blocks.append(
                    ListItem(
                        id=decision.id,
                        prov=decision.prov,
                        text=decision.text,
                        marker=f"{number}.",
                        ordered=True,
                    )
                )
    if blocks == procedure.blocks:
        return procedure
    return procedure.model_copy(update={"blocks": blocks})


# how an answer line opens: "Yes ->", "No =>", "YES:"
ANSWER = r"(?:yes|no)\s*(?:->|=>|\u2192|:)"
# a decision and its answers, joined (with_decisions): "Is the campaign still live? Yes -> ..."
_DECIDED = re.compile(rf"^[^?]{{3,200}}\?\s+{ANSWER}", re.IGNORECASE)


def with_decisions(procedure: Procedure) -> Procedure:
    """The procedure with each "Decision: Is the campaign still live?" paragraph and the
    "Yes -> ..." / "No -> ..." paragraphs after it joined into one question and its answers, so
    the answers are read as the question's two sides (reading.py), not as orders of their own."""
    blocks: list[Block] = []
    asking = False  # the last block is a decision, with the answers joined to it so far
    for block in procedure.blocks:
        last = blocks[-1] if blocks else None
        if (
            asking
            and isinstance(last, Paragraph)
            and isinstance(block, Paragraph)
            and _ANSWER_PARAGRAPH.match(block.text)
        ):
            joined = f"{last.id}{JOINED}{block.id}"
            blocks[-1] = Paragraph(id=joined, prov=last.prov, text=f"{last.text} {block.text}")
            continue
        decision = _DECISION_PARAGRAPH.match(block.text) if isinstance(block, Paragraph) else None
        asking = decision is not None
        if isinstance(block, Paragraph) and decision is not None:
            block = Paragraph(
                id=block.id, prov=block.prov, text=block.text[decision.end() :].strip()
            )
        blocks.append(block)
    if blocks == procedure.blocks:
        return procedure
    return procedure.model_copy(update={"blocks": blocks})


# the id of paragraphs read as one (with_decisions): "b17+b18+b19"
JOINED = "+"


def cited(block_id: str) -> list[str]:
    """The document's blocks a (joined) block id stands for, for a citation."""
    return block_id.split(JOINED)


# "Decision: Is it ...?", "Decision 2: ...?" (a question alone); "Yes -> ...", "No: ..."
_DECISION_PARAGRAPH = re.compile(
    r"^\s*(?:decision|question)(?:\s+\d{1,2})?\s*:\s*(?=[^?]{3,200}\?\s*$)", re.IGNORECASE
)
_ANSWER_PARAGRAPH = re.compile(rf"^\s*{ANSWER}", re.IGNORECASE)


def step_rows(table: Table) -> list[tuple[str | None, str, int | None]] | None:
    """A table of steps as (its number, what to do, the decision its "Then" names) per row;
    None for any other table. The number is None for a row of a swimlane; the decision is 0
    for "Decision below.", 2 for "Decision 2." and None for none.

    The steps are numbered in the first column ("Step | What to do") or taken in row order
    after whoever does them ("Who | Does what | Then", a swimlane). A column between ("No. |
    Action | Who") is said after the action, in brackets, unless every row says the same
    ("Agent"). A "Then" column after the action is said after it, unless it only names what the
    next row does ("Email the backer." before "Email the backer the new pledge summary.") or
    where to look next ("Decision below.")."""
    header = [" ".join(h.split()) for h in table.header or []]
    doing = next((n for n, h in enumerate(header) if n and _DOING_HEADER.match(h)), None)
    if len(header) < 2 or doing is None or not _STEP_HEADER.match(header[0]):
        return None
    numbered = _WHO_HEADER.match(header[0]) is None
    then = doing + 1 if doing + 1 < len(header) and _THEN_HEADER.match(header[doing + 1]) else None
    if len(header) > doing + 1 + (then is not None):
        return None
    rows = [[" ".join(c.split()) for c in row] for row in table.rows]
    if len(rows) < 2 or any(len(cells) != len(header) or not cells[doing] for cells in rows):
        return None
    orders = sum(_opens_with_order(cells[doing]) for cells in rows)
    if not numbered and (not _SWIMLANE_DOING.match(header[doing]) or 3 * orders < 2 * len(rows)):
        return None  # "Role | How to reach | When" lists contacts; a swimlane's cells are orders
    first = 1 if numbered else 0  # the number is no column to say; whoever does it may be
    same = {n for n in range(first, doing) if len({cells[n] for cells in rows}) == 1}
    out: list[tuple[str | None, str, int | None]] = []
    for index, cells in enumerate(rows):
        number = _STEP_NUMBER.match(cells[0]) if numbered else None
        if numbered and number is None:
            return None
        between = [(header[n], cells[n]) for n in range(first, doing) if n not in same]
        beside = "; ".join(f"{name}: {cell}" for name, cell in between if cell)
        text = f"{cells[doing]} ({beside})" if beside else cells[doing]
        following = rows[index + 1][doing] if index + 1 < len(rows) else ""
        closes = index + 1 == len(rows) and _CLOSE_CELL.match(
            cells[then] if then is not None else ""
        )
        if then is not None and _said_next(cells[then], following) and not closes:
            text = f"{text.rstrip('.')}. {cells[then]}"
        named = _DECISION_NAMED.match(cells[then]) if then is not None else None
        points = None if named is None else int(named["number"] or 0)
        out.append((number.group(1) if number else None, text, points))
    return out


def _opens_with_order(cell: str) -> bool:
    first = re.match(r"[A-Za-z']+", cell)
    return first is not None and first.group(0).casefold() in INSTRUCTION_VERBS


def _said_next(cell: str, following: str) -> bool:
    """Whether a "Then" cell says something the next row does not: "Tell the backer the
    creator has 14 days to reply", not "Email the backer." over "Email the backer the ..."."""
    if not cell or _LOOK_NEXT.match(cell):
        return False
    words = set(re.findall(r"[a-z0-9]+", cell.casefold())[1:]) - _SMALL_WORDS  # past its verb
    return not words <= set(re.findall(r"[a-z0-9]+", following.casefold()))


_STEP_HEADER = re.compile(
    r"^(?:steps?|no\.?|#|number|stage|seq(?:uence)?|who|role|owner|by\s+whom|responsible)$",
    re.IGNORECASE,
)
_WHO_HEADER = re.compile(r"^(?:who|role|owner|by\s+whom|responsible)$", re.IGNORECASE)
_DOING_HEADER = re.compile(
    r"^(?:what\s+to\s+do|what\s+(?:you|we)\s+do|actions?|instructions?|tasks?|details?|"
    r"description|procedure|how|do\s+this|does\s+what|what\s+they\s+do|activity)$",
    re.IGNORECASE,
)
_STEP_NUMBER = re.compile(r"^(?:step\s+)?(\d{1,2})[.)]?$", re.IGNORECASE)
_SWIMLANE_DOING = re.compile(
    r"^(?:does\s+what|what\s+they\s+do|what\s+to\s+do|actions?|activity|tasks?)$", re.IGNORECASE
)
_THEN_HEADER = re.compile(r"^(?:then|next|next\s+step|after\s+that)$", re.IGNORECASE)
# a "Then" cell that only says where to read on: "Decision below.", "Decision 1.", "Continue."
_LOOK_NEXT = re.compile(
    r"^(?:decision\b|see\b|go\s+to\b|next\s+row|continue\b|carry\s+on\b)", re.IGNORECASE
)
# "Close the contact." after the last row: the routine's own ending closes it, after what the
# SOP says below the table (its decisions and rules)
_CLOSE_CELL = re.compile(r"^(?:close|end|resolve)\s+the\s+(?:contact|case|call|chat)\b", re.I)
_DECISION_NAMED = re.compile(r"^decision\s*(?:(?P<number>\d{1,2})|below)\b", re.IGNORECASE)
_SMALL_WORDS = frozenset(
    re.findall(r"[a-z]+", "the a an to of and or their them they it its on in for with")
)


def table_steps(table: Table) -> list[tuple[str, str]] | None:
    """A decision table, as one "If the <input> is <cell> [and ...], <action>." per row (and a
    last catch-all row as "Otherwise, <action>."), with the row's words to cite; None for any
    other table.

    A decision table: the last header says what to do ("Action", "What to do"), the others name
    the inputs ("Reason | Days since delivery | Action"), every row gives inputs and an
    instruction, and no input cell holds a comma (a list of values would be misread as a test
    ending).
    The rows are exclusive cases of the inputs: an "any" cell tests nothing, and a row of "any"
    ("Any other status") is the catch-all, only as the last row. A table of situations
    ("Situation | What to do") is edge cases; any other table stays facts.
    """
    header = [" ".join(h.split()) for h in table.header or []]
    if (
        len(header) < 2
        or CASE_HEADER.match(header[0])
        or not ACTION_HEADER.match(header[-1])
        or any(ACTION_HEADER.match(h) or not h for h in header[:-1])
    ):
        return None
    # "Police already requested?": the input it names, asked as a question
    header = [*(h.rstrip("?").strip() for h in header[:-1]), header[-1]]
    rows: list[tuple[str, str]] = []
    for number, row in enumerate(table.rows):
        cells = [" ".join(c.split()) for c in row]
        # "Wrong password, or no password": one value or the other, no list
        values_said = [_OR_ALTERNATIVE.sub(" or ", c) for c in cells[:-1]]
        if len(cells) != len(header) or not cells[-1] or any("," in c for c in values_said):
            return None  # a list of values would be misread as a test ending
        said = " ".join(c for c in cells if c)  # the row's own words, which its step cites
        cells = [*values_said, cells[-1]]
        *values, action = cells
        action = _NOTHING.sub("Take no action", action)
        if action.split(None, 1)[0].casefold() not in INSTRUCTION_VERBS:
            return None
        action = f"{action[0].lower()}{action[1:]}"
        tests = [
            f"the {_lower(name)} is {_lower(value)}"
            for name, value in zip(header, values, strict=False)
            if value and not _ANY_VALUE.match(value)
        ]
        if not tests:
            if number != len(table.rows) - 1 or not rows:
                return None  # a catch-all above other rows, or alone: not exclusive cases
            text = f"Otherwise, {action}"
        else:
            text = f"If {' and '.join(tests)}, {action}"
        rows.append((text if text.endswith(".") else f"{text}.", said))
    return rows or None


_OR_ALTERNATIVE = re.compile(r",\s+or\s+", re.IGNORECASE)


def _lower(text: str) -> str:
    """ "Days since delivery" -> "days since delivery"; "VAT" and "Gold" as written."""
    return text[0].lower() + text[1:] if text[1:2].islower() and text[:1].isupper() else text


# "Option A: ...", "Option B - store credit: ...": alternatives, only one of which applies
_OPTION = re.compile(
    r"^option\s+(?P<key>[A-Z0-9])\b(?:\s*[-\u2013\u2014(]\s*(?P<name>[^:()]{1,40}?)\)?)?\s*[:.]\s*"
    r"(?P<rest>\S.*)$",
    re.IGNORECASE | re.DOTALL,
)


# "B.5 (Exception: if we cancel because we cannot supply a crew, refund the deposit in full
# ...)": an item in brackets, led by "Exception:", is the case it opens with
_BRACKETED = re.compile(r"^\((?P<inner>[^()]*(?:\([^()]*\)[^()]*)*)\)\.?$", re.DOTALL)
EXCEPTION_LABEL = re.compile(r"^(?:exceptions?|except)\s*[:\u2013\u2014-]\s*", re.IGNORECASE)
_EXCEPTION_LEAD = re.compile(rf"{EXCEPTION_LABEL.pattern}(?=(?:if|when|where|unless)\b)", re.I)


def unbracketed(unit: Unit) -> Unit:
    """`unit` without the brackets around its whole text and an "Exception:" before its test."""
    text = unit.text.strip()
    inner = match["inner"].strip() if (match := _BRACKETED.match(text)) else text
    inner = _EXCEPTION_LEAD.sub("", inner)
    return unit if inner == text else replace(unit, text=inner[:1].upper() + inner[1:])


# "Enquiries for exclusive use of a gallery are outside this procedure. The Officer shall pass
# the enquiry to the Events Team.": the case the first sentence names, and what to do in it
_OUT_OF_SCOPE = re.compile(
    r"^(?P<case>[A-Z][^.;:?!]{3,150}?)\s+(?:are|is)\s+(?:outside|out\s+of|beyond|not\s+"
    r"(?:covered\s+by|part\s+of))\s+(?:the\s+scope\s+of\s+)?this\s+(?:procedure|policy|process|"
    r"section|article|guide)\.\s+(?P<rest>\S.*)$",
    re.S,
)


def out_of_scope(unit: Unit) -> Unit:
    """`unit` as the case its first sentence puts outside the procedure, when it says what to do
    then: "If it is about enquiries for exclusive use ...: ... pass the enquiry to the Events
    Team", never a hand-over of every request."""
    match = _OUT_OF_SCOPE.match(unit.text.strip())
    if match is None or unit.children:
        return unit
    case = _lower_first(match["case"].strip())
    return replace(
        unit, text=f"If it is about {case}: {match['rest']}", cite=unit.cite or unit.text
    )


# "Complaints about a member of staff go to Head Office Franchise Support. Do not try to settle
# them on site.": the case the subject names, and who takes it
_ROUTED = re.compile(
    r"^(?P<case>(?!(?:they|it|this|that|these|those|we|you|he|she|all|everything)\b)[A-Z][^.;:,]{3,80}?)"
    r"\s+(?:now\s+)?(?:go|goes|are\s+passed|are\s+referred|are\s+sent)\s+(?:straight\s+)?to\s+"
    r"(?P<who>(?:the\s+)?(?:[A-Z][\w&'-]*(?:\s+[A-Z][\w&'-]*){0,4}|[a-z]+\s+(?:manager|supervisor|"
    r"lead|team|desk|controller|officer|secretary))|the\s+(?:pharmacist|manager|supervisor|"
    r"duty\s+manager))(?P<end>\s*[.:]\s*|\s*$)(?P<rest>.*)$",
    re.S,
)


def routed(run: list[Unit]) -> list[Unit]:
    """`run` with each item that opens by routing a kind of request to a person or team read as
    that case: "If it is about complaints about a member of staff: pass it to Head Office
    Franchise Support. ...". Read as a statement, no one was handed the complaint; read as a
    hand-over of every request, everyone would be.

    The case holds the rest of its sentence ("Refunds over £300 go to the duty manager: refer
    them, don't process them yourself") and the sentences after it that speak of the same
    requests ("Do not try to settle them on site"); from the first that does not ("Refunds go
    back to the original card only"), the item goes on as a paragraph of its own."""
    out: list[Unit] = []
    for unit in run:
        match = _ROUTED.match(unit.text.strip())
        if match is None or unit.children:
            out.append(unit)
            continue
        case, who = _lower_first(match["case"].strip()), match["who"].strip()
        sentences = split_sentences(match["rest"].strip()) if match["rest"].strip() else []
        said = []
        if sentences and match["end"].strip() == ":":
            said.append(sentences.pop(0))  # "...: refer them, don't process them yourself."
        while sentences and _POINTS_BACK.search(sentences[0]):
            said.append(sentences.pop(0))
        text = " ".join([f"If it is about {case}: pass it to {who}.", *_capital(said)])
        out.append(replace(unit, text=text, cite=unit.cite or unit.text))
        if sentences:
            out.append(Unit(unit.block_id, " ".join(sentences), numbered=False, depth=unit.depth))
    return out


# "Do not try to settle them on site": a sentence of the requests named before it
_POINTS_BACK = re.compile(r"\b(?:them|they|it|those|these|such)\b", re.IGNORECASE)


def _capital(sentences: list[str]) -> list[str]:
    return [sentence[:1].upper() + sentence[1:] for sentence in sentences]


_ANSWER_ITEM = re.compile(
    r"^(?P<answer>yes|no)\s*[:,\-\u2013\u2014]\s*(?P<rest>\S.*)$", re.I | re.S
)


# "... : offer the one-off callout." as the last sentence of an item: an offer its sub-items
# "Yes: ..." and "No: ..." answer
_OFFERED = re.compile(
    r"(?:^|[.:;]\s+)(?:offer|suggest|propose)\s+(?:(?:them|the\s+customer|the\s+caller)\s+)?"
    r"(?P<what>(?:a|an|the|their)\s[^.;:?!]{2,60}?)\.?$",
    re.IGNORECASE,
)
# "Yes, they'll pay: take the £145": what the answer says, before the orders
_ANSWER_LABEL = re.compile(r"^(?P<label>[^:.;]{2,40}):\s+(?=\S)")


def _without_label(rest: str) -> str:
    """An answer's orders without the words that say the answer ("they'll pay: take the
    £145"); an order before a colon ("check the flags: ...") stays."""
    match = _ANSWER_LABEL.match(rest)
    first = match["label"].split(None, 1)[0].casefold() if match else ""
    return rest[match.end() :] if match and first not in INSTRUCTION_VERBS else rest


def answered_items(unit: Unit) -> Unit:
    """ "5.2.3 Is every animal's vaccination record current?" over the items "Yes: record the
    admission" and "No: ... stop and escalate": the question's two sides, as the cases "If
    <question>, ..." and "Otherwise, ...", each citing its own words."""
    question = unit.text.strip()
    offered = _OFFERED.search(question)
    if not (question.endswith("?") or offered) or len(unit.children) != 2:
        return unit
    answers = [_ANSWER_ITEM.match(child.text.strip()) for child in unit.children]
    said = [(a["answer"].casefold(), _without_label(a["rest"])) for a in answers if a]
    if sorted(answer for answer, _ in said) != ["no", "yes"] or any(
        child.children for child in unit.children
    ):
        return unit
    (answer, rest), (_, other) = said
    if offered is not None:
        # "If the membership has lapsed: offer the one-off callout." over "Yes, they'll pay:
        # ..." and "No: ...": the answers to the offer
        what = offered["what"].strip()
        first = (
            f"If they accept {what}, {rest}"
            if answer == "yes"
            else f"If they turn down {what}, {rest}"
        )
    else:
        first = (
            f"If {question}, {rest}"
            if answer == "yes"
            else f"If the answer to {question!r} is no, {rest}"
        )
    texts = [first, f"Otherwise, {other}"]
    children = [
        replace(child, text=text, cite=child.cite or child.text, one_side=True)
        for child, text in zip(unit.children, texts, strict=True)
    ]
    return replace(unit, children=children)


def labelled_cases(unit: Unit) -> Unit:
    """`unit` with its sub-items that name their case read as the cases they are.

    Under a step ending in ":" ("Check the flags:"), items labelled "Bankruptcy flag set — ..."
    or "first failure: ..." are "If <label>, ...". An option with its own condition ("Option A:
    if the customer wants cash, refund it") is that condition; one without ("Option B - store
    credit: give store credit") is the customer's choice of it ("If the customer chooses option
    B (store credit), give store credit"). Either way the items become sibling cases (chains.py),
    so that only one of them runs; each cites the SOP's own words. Fewer than two: no change.
    Items labelled with when or how much are cases under any step (`timed_cases`).
    """
    unit = replace(unit, children=timed_cases(unit.children))
    dashed = [_case_label(child.text.strip()) for child in unit.children]
    carries = [m is not None and _CARRY_ON.match(m["rest"].strip()) is not None for m in dashed]
    if sum(match is not None for match in dashed) >= 2 and (
        unit.text.rstrip().endswith(":") or any(carries)
    ):
        # "Check the flags:" over "Bankruptcy flag set — do not offer forbearance. ...": each
        # item is the case its label names
        children = _as_cases(unit.children, dashed)
        if any(carries):
            # "Flagged as stolen: do not book it in. Call Loss Prevention." beside "Not flagged:
            # carry on": only the case that carries on goes on with the procedure
            children = [
                _stops_there(child) if match is not None and not carry else child
                for child, match, carry in zip(children, dashed, carries, strict=True)
            ]
        return replace(unit, children=children)
    found = [_OPTION.match(child.text.strip()) for child in unit.children]
    if sum(match is not None for match in found) < 2:
        return unit
    children = []
    for child, match in zip(unit.children, found, strict=True):
        if match is None:
            children.append(child)
            continue
        rest = match.group("rest").strip()
        if _IF_OPENING.match(rest) is None:
            name = f" ({match.group('name').strip()})" if match.group("name") else ""
            rest = f"If the customer chooses option {match.group('key').upper()}{name}, {rest}"
        else:
            rest = rest[0].upper() + rest[1:]
        children.append(replace(child, text=rest, cite=child.cite or child.text))
    return replace(unit, children=children)


# "Before the cargo cut-off: ...", "More than 14 days before the move: ...": a case of when or
# how much, as its label says
_TIMED = re.compile(
    r"^(?P<case>(?:before|after|within|during|until|between|more\s+than|less\s+than|"
    r"fewer\s+than|up\s+to|over|under)\b[^:.;]{1,80}?)\s*:\s+(?P<rest>\S.*)$",
    re.IGNORECASE | re.DOTALL,
)


def timed_cases(run: list[Unit]) -> list[Unit]:
    """Sibling items that each open with a label of when or how much ("Before the cargo
    cut-off: ...", "After departure: ...") as "If it is <label>, ..." cases. They are the
    cases of the request, one of which holds; read as statements, every path would run each
    of them (and the escalation of one would end them all). Fewer than two: no change."""
    found = [_TIMED.match(unit.text.strip()) for unit in run]
    if sum(match is not None for match in found) < 2:
        return run
    return _as_cases(run, found, opening="it is ")


# "Not flagged: carry on", "Clear: continue as normal", "No match - proceed with the booking"
_CARRY_ON = re.compile(
    r"^(?:carry\s+on|continue|proceed|go\s+on)(?:\s+as\s+(?:normal|usual)|\s+with\s+[^.;]{1,60})?"
    r"\s*[.!]?$",
    re.IGNORECASE,
)


def _stops_there(unit: Unit) -> Unit:
    """`unit`, its case ending where its own sentences end."""
    text = unit.text.rstrip()
    return replace(unit, text=f"{text.rstrip('.!')}, and stop there.")


def labelled_run(run: list[Unit]) -> list[Unit]:
    """Sibling steps that each open with a label of the same thing ("2. First complaint about a
    pitch: ...", "3. Second complaint about the same pitch: ...", "4. Third complaint, or any
    violence: call the Duty Manager") as the cases they are, one of which holds (`case_of_run`);
    read as steps, every path would run each of them, and the escalation of the last would end
    them all. A label may hold commas here: the run's shared word says it is a case. Fewer than
    two in a row: no change."""
    # "5a. If the result is ROUTER_FAULT, go to step 6" over "6. Router fault: ...": the step a
    # decision jumps to is its target, not a case to test again
    targets = jump_targets(run)
    found = [
        None
        if (unit.key or "").casefold() in targets
        else _run_label(unit.text.strip())
        # "Public land:" over its own cases, after "Private land: close the report": a case
        # whose orders are its sub-items
        or (_names_a_case(_LEADS_ITEMS.match(unit.text.strip())) if unit.children else None)
        for unit in run
    ]
    dashed = [_dashed_order(unit.text.strip()) for unit in run]
    out = list(run)
    # "Accidental damage by the customer (stains, pet damage, burns): the customer pays a
    # damage fee": a kind of case named with its examples is that case, even alone
    for index, unit in enumerate(run):
        text = unit.text.strip()
        label = found[index] or _names_a_case(
            _DASH_CASE.match(text) or _HYPHEN_AFTER_EXAMPLES.match(text)
        )
        if unit.key is None and label is not None and _WITH_EXAMPLES.search(label["case"]):
            out[index] = _as_cases([unit], [label])[0]
    for labels, same in ((found, _share_a_word), (dashed, _closes_with_the_rest)):
        start = 0
        while start < len(run):
            end = start
            while end < len(run) and labels[end] is not None:
                end += 1
            group = [m for m in labels[start:end] if m is not None]
            if len(group) >= 2 and same([m["case"] for m in group]):
                cases = _as_cases(run[start:end], labels[start:end])
                out[start:end] = [replace(unit, case_of_run=True) for unit in cases]
            start = end + 1
    return out


# "Safety issues (sharp edges, a collapsed frame) - tell the customer to stop using it": in
# plain text a hyphen is the dash, after a case named with its examples
_HYPHEN_AFTER_EXAMPLES = re.compile(
    r"^(?P<case>[^:;.>()]{3,60}\([^()]*,[^()]*\))\s+-\s+(?P<rest>\S.*)$", re.DOTALL
)
_WITH_EXAMPLES = re.compile(r"\((?:e\.g\.,?\s*|such\s+as\s+)?[^()]*,[^()]*\)\s*$", re.IGNORECASE)


def _dashed_order(text: str) -> re.Match[str] | None:
    """A bullet "Prohibited content — reject the artwork ...": a case, a dash, an order."""
    match = _names_a_case(_DASH_CASE.match(text))
    first = match["rest"].split(None, 1)[0].casefold().strip(",.") if match else ""
    return match if first in INSTRUCTION_VERBS else None


def _closes_with_the_rest(labels: list[str]) -> bool:
    """True when bullets of dashed cases end with the case of everything else ("Anything else
    — release the order"): a list of the cases there are, one of which holds."""
    return bool(_THE_REST.match(labels[-1]))


# "Anything else", "Any other order", "All other cases", "Everything else", "Other"
_THE_REST = re.compile(
    r"^(?:anything\s+else|everything\s+else|any(?:thing)?\s+other\b.*|all\s+other\b.*|"
    r"others?|otherwise|none\s+of\s+(?:these|the\s+above))$",
    re.IGNORECASE,
)


def jump_targets(run: list[Unit]) -> set[str]:
    """The step numbers the run's "go to step N" (or "see step N") name, casefolded."""
    said = " ".join(_all_texts(run))
    return {m.casefold() for m in re.findall(r"\bsteps?\s+(\d+[a-z]?)\b", said, re.I)}


def _all_texts(run: list[Unit]) -> list[str]:
    return [text for unit in run for text in (unit.text, *_all_texts(unit.children))]


_RUN_LABEL = re.compile(r"^(?P<case>[^:;.]{3,90}?)\s*:\s+(?P<rest>\S.*)$", re.DOTALL)
_LEADS_ITEMS = re.compile(r"^(?P<case>[^:;.]{3,60}?)\s*:(?P<rest>)$")


def _run_label(text: str) -> re.Match[str] | None:
    return _names_a_case(_RUN_LABEL.match(text))


def _share_a_word(labels: list[str]) -> bool:
    """True when every label shares a word of four letters or more with another."""
    words = [{w for w in re.findall(r"[a-z]{4,}", label.casefold())} for label in labels]
    return all(
        any(mine & theirs for j, theirs in enumerate(words) if j != i)
        for i, mine in enumerate(words)
    )


def _as_cases(
    run: list[Unit], found: list[re.Match[str] | None], *, opening: str = ""
) -> list[Unit]:
    """Each unit whose label matched as "If <opening><case>, <rest>", citing its own words."""
    return [
        replace(
            unit,
            text=f"Otherwise, {match['rest']}"
            if _THE_REST.match(match["case"])
            else f"If {opening}{_lower_first(match['case'])}, {match['rest']}"
            if match["rest"]
            else f"If {opening}{_lower_first(match['case'])}:",
            cite=unit.cite or unit.text,
        )
        if match is not None
        else unit
        for unit, match in zip(run, found, strict=True)
    ]


def _lower_first(text: str) -> str:
    """ "Bankruptcy flag set" -> "bankruptcy flag set"; "SCRA flag set" as written."""
    return text[0].lower() + text[1:] if text[1:2].islower() else text


# "Bankruptcy flag set — do not offer forbearance", "First failure -> retry the payment",
# "Expired, and no certificate received — send notice INS-2": a case label, a dash or an arrow,
# what to do
_DASH_CASE = re.compile(
    r"^(?P<case>[^\u2014\u2013:;.>]{3,80}?)\s+(?:[\u2014\u2013]|-+>|=+>|[\u2192\u21d2])\s+"
    r"(?P<rest>\S.*)$",
    re.DOTALL,
)
# "first failure: send the payment failed email": a case label, a colon, what to do
_COLON_CASE = re.compile(r"^(?P<case>[^:;.,\u2014\u2013]{3,60}?)\s*:\s+(?P<rest>\S.*)$", re.DOTALL)
_NOT_A_CASE = frozenset(
    ["note", "notes", "tip", "tips", "warning", "important", "example", "examples", "remember"]
)


def _case_label(text: str) -> re.Match[str] | None:
    """The label and action of an item that names its case ("Locker offline — ...", "first
    failure: ..."); None for an instruction ("Check the box: ...") or a note ("Tip: ...")."""
    return _names_a_case(_DASH_CASE.match(text) or _COLON_CASE.match(text))


def _names_a_case(match: re.Match[str] | None) -> re.Match[str] | None:
    """The label match, unless its first word makes it an order, a note or a test instead."""
    if match is None:
        return None
    first = match["case"].split(None, 1)[0].casefold().strip("*")
    if first in INSTRUCTION_VERBS or first in _NOT_A_CASE or first in ("if", "when", "option"):
        return None
    return match


_IF_OPENING = re.compile(r"^(?:if|when|only if|unless)\b", re.IGNORECASE)


def conditional_unit(section: Section) -> Unit:
    """A section titled `If ...` as one step: the title is the test, its items the then-branch."""
    assert section.heading is not None
    unit = Unit(section.heading.id, f"{section.title}:", numbered=True)
    for child in units(Section("steps", section.title, blocks=section.blocks)):
        unit.children += [child, *child.children]
        child.children = []
    return unit
