"""The offline backend: deterministic rules, no network, no model.

It reads well-structured SOPs: numbered steps and sub-steps, "If/When/In case ..., <action>",
"Otherwise" / "If not", "go to step N", "escalate to <team>", "transfer to / hand off to <agent>",
tools by name, in backticks or by a catalog alias, and Exceptions / Notes / Escalation sections.
What it cannot read it reports as open questions instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar

from sop_compiler.config import Settings
from sop_compiler.generate.base import Backend, GenerationContext, GenerationResult
from sop_compiler.generate.offline.build import Builder, Node, vague_questions
from sop_compiler.generate.offline.phrases import read_clause
from sop_compiler.generate.offline.sections import (
    Section,
    Unit,
    conditional_unit,
    sections,
    units,
)
from sop_compiler.generate.offline.tools import ToolIndex
from sop_compiler.generate.offline.trigger import trigger_for
from sop_compiler.models import (
    EdgeCase,
    Issue,
    ListItem,
    Paragraph,
    Procedure,
    ProposedTool,
    RoutineDraft,
    SourceRef,
    Step,
    Table,
    ToolCatalog,
)
from sop_compiler.text import injection_excerpt, is_instruction, split_sentences

__all__ = ["OFFLINE_RULES_VERSION", "OfflineBackend", "build_draft"]

# Bump when the rules change what they produce, so that the lock file marks routines stale.
OFFLINE_RULES_VERSION = 3
_ANY_TIME = "at any point in this routine"


class OfflineBackend(Backend):
    """Builds routines from the SOP's own structure and phrasing (the default with no API key)."""

    name: ClassVar[str] = "offline"
    uses_model: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def fingerprint_for(cls, settings: Settings) -> dict[str, object]:
        """The backend name and the version of its rules."""
        return {"backend": cls.name, "rules": OFFLINE_RULES_VERSION}

    async def generate(
        self,
        procedure: Procedure,
        *,
        context: GenerationContext,
        validate: Callable[[RoutineDraft], list[Issue]],
    ) -> GenerationResult:
        """Write one procedure's draft and record what validation says about it (no repair)."""
        draft = build_draft(procedure, catalog=context.catalog, agents=context.agents)
        return GenerationResult(
            procedure_id=procedure.id, draft=draft, issues=validate(draft), attempts=1
        )


def build_draft(
    procedure: Procedure, *, catalog: ToolCatalog, agents: tuple[str, ...] = ()
) -> RoutineDraft:
    """The routine draft the offline rules read from one procedure."""
    tools = ToolIndex(catalog)
    builder = Builder(tools=tools, agents=tuple(sorted(agents)))
    parts = sections(procedure)
    # "3 Procedure: Before you start, open the customer's record ...": the lead-in of the section
    # that holds this procedure applies to it too, so it is the routine's first step
    parent = procedure.heading_path[:-1]
    step_units: list[Unit] = [
        Unit(block.id, block.text, numbered=False)
        for block in procedure.context
        if parent and block.prov.heading_path == parent and isinstance(block, (Paragraph, ListItem))
    ]
    for section in parts:
        if section.kind == "steps":
            step_units += units(section)
        elif section.kind == "conditional":
            step_units.append(conditional_unit(section))
    top = builder.approvals_first(builder.top_level(step_units))
    steps, questions = builder.finish(top)
    edge_cases = _edge_cases(parts, tools, agents)
    found_steps = bool(top)
    quotes: set[str] = set()
    for step in _walk(steps):
        if step.source is not None and step.source.quote not in quotes:
            quotes.add(step.source.quote)  # one question per sentence, not per step made from it
            questions += [q for q in vague_questions(step) if q not in questions]
    questions += [
        f"Text addressed to the model or to sopc was left out of the steps: {excerpt!r}"
        for excerpt in builder.skipped
    ]
    if not found_steps:
        questions.append(
            "The offline compiler found no steps in this section (no numbered items or "
            "instructions); the routine only closes the case."
        )
    return RoutineDraft(
        title=procedure.title,
        trigger=trigger_for(procedure, parts),
        steps=steps,
        edge_cases=edge_cases,
        tools_proposed=_proposed(builder.nodes, builder.ids),
        open_questions=questions,
    )


def _walk(steps: list[Step]) -> list[Step]:
    out: list[Step] = []
    for step in steps:
        out += [step, *_walk(step.substeps)]
    return out


def _proposed(nodes: list[Node], ids: dict[int, str]) -> list[ProposedTool]:
    by_name: dict[str, ProposedTool] = {}
    for node in nodes:
        if node.proposed is None or node.uid not in ids:
            continue
        name, access = node.proposed
        tool = by_name.get(name)
        if tool is None:
            description = node.text.split(" (No catalog tool does this yet")[0]
            by_name[name] = ProposedTool(
                name=name,
                description=description,
                access=access,
                step_ids=[ids[node.uid]],
            )
        elif ids[node.uid] not in tool.step_ids:
            tool.step_ids.append(ids[node.uid])
    return list(by_name.values())


def _edge_cases(parts: list[Section], tools: ToolIndex, agents: tuple[str, ...]) -> list[EdgeCase]:
    out: list[EdgeCase] = []
    for section in parts:
        for block in section.blocks:
            if isinstance(block, Table):
                out += _table_cases(block)
                continue
            if section.kind not in ("edge", "escalation") or not isinstance(
                block, (ListItem, Paragraph)
            ):
                continue
            previous: EdgeCase | None = None
            labelled = False
            for sentence in split_sentences(block.text):
                if injection_excerpt(sentence) is not None:
                    continue
                if previous is not None and (labelled or not _stands_alone(sentence, tools)):
                    # "Marketplace orders: ... Give the customer the seller's details." and
                    # "Split refunds are audited every month.": more of the same case
                    previous.then = f"{previous.then} {_sentence(sentence)}"
                    continue
                case = _edge_case(sentence, tools, agents, previous, section.kind == "escalation")
                labelled = case.when.startswith(_ABOUT)
                case.source = SourceRef(block_ids=[block.id], quote=_words(sentence))
                if previous is not None and previous.when == _ANY_TIME and _BACK_REF.match(
                    case.when
                ):
                    # "The tool times out. If it does, check ...": one case, its when spelled out
                    previous.when = previous.then.rstrip(".")
                    previous.when = previous.when[0].lower() + previous.when[1:]
                    previous.then = case.then
                    continue
                out.append(case)
                previous = case
    return out


_ABOUT = "it is about "
_BACK_REF = re.compile(r"^(?:it|this|that|so|they)\b", re.IGNORECASE)
_CLAUSE = re.compile(
    r"\b(?:is|are|was|were|has|have|had|holds?|asks?|wants?|says?|reports?|died|does|do|did|"
    r"can|cannot|needs?|refuses?|requests?|lives?|owes?)\b",
    re.IGNORECASE,
)


def _stands_alone(sentence: str, tools: ToolIndex) -> bool:
    """True when a sentence is a case of its own: a condition or an instruction."""
    clause = read_clause(sentence, tools=tools, agents=())
    return clause.test is not None or clause.is_else or is_instruction(sentence)


def _when(label: str) -> str:
    """A table cell or bold label as an edge case's when: a clause as it is, a name as a topic."""
    label = label.strip().rstrip(":")
    if label[1:2].islower():
        label = label[0].lower() + label[1:]
    clause = _CLAUSE.search(label) or re.search(r"\s[a-z]+ed\b", label)
    return label if clause else f"{_ABOUT}{label}"


def _table_cases(table: Table) -> list[EdgeCase]:
    """A table's rows as edge cases: the first column is when, the others are then."""
    out: list[EdgeCase] = []
    header = [" ".join(h.split()) for h in table.header or []]
    for row in table.rows:
        cells = [" ".join(c.split()) for c in row]
        if sum(bool(c) for c in cells) < 2 or not cells[0]:
            continue
        source = SourceRef(block_ids=[table.id], quote=_words(cells[0]))
        if len(header) == len(cells) > 2 and all(header):
            # with several columns, name them: "the role is X" -> "Refund limit: Up to $50; ..."
            when = f"the {header[0][0].lower()}{header[0][1:]} is {cells[0]}"
            then = "; ".join(f"{h}: {c}" for h, c in zip(header[1:], cells[1:], strict=True) if c)
        else:
            when, then = _when(cells[0]), "; ".join(c for c in cells[1:] if c)
        out.append(EdgeCase(when=when, then=then, source=source))
    return out


def _edge_case(
    sentence: str,
    tools: ToolIndex,
    agents: tuple[str, ...],
    previous: EdgeCase | None,
    escalation: bool,
) -> EdgeCase:
    clause = read_clause(sentence, tools=tools, agents=agents)
    then = _sentence(clause.rest or sentence)
    if clause.test:
        return EdgeCase(when=clause.test.rstrip(":").strip(), then=then)
    if clause.is_else and previous is not None:
        return EdgeCase(when=f"not: {previous.when}", then=then)
    head, colon, tail = sentence.partition(":")
    if colon and tail.strip() and len(head.split()) <= 8:
        return EdgeCase(when=_when(head), then=_sentence(tail))
    return EdgeCase(
        when="the case needs escalating" if escalation else _ANY_TIME, then=_sentence(sentence)
    )


def _sentence(text: str) -> str:
    text = " ".join(text.split()).strip(" ,;")
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _words(text: str, limit: int = 20) -> str:
    return " ".join(text.split()[:limit])
