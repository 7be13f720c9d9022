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
    heading_title,
    sections,
    units,
)
from sop_compiler.generate.offline.tools import ToolIndex
from sop_compiler.models import (
    Block,
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
    block_text,
)
from sop_compiler.text import injection_excerpt, split_sentences

__all__ = ["OFFLINE_RULES_VERSION", "OfflineBackend", "build_draft"]

# Bump when the rules change what they produce, so that the lock file marks routines stale.
OFFLINE_RULES_VERSION = 2
_ANY_TIME = "at any point in this routine"
_WHO = r"(?:a|an|the)\s+(?:customer|caller|user|member|client|account holder)"
_TRIGGERS = [
    re.compile(rf"\b(?:when|if|where|whenever)\s+(?P<clause>{_WHO}\s+[^.;:]+)", re.IGNORECASE),
    re.compile(r"\b(?P<clause>customers\s+who\s+[^.;:]+)", re.IGNORECASE),
    re.compile(
        r"\b(?:covers|describes|explains|applies to|is for|use this (?:procedure|sop|process) "
        r"(?:for|when))\s+(?P<clause>[^.;:]+)",
        re.IGNORECASE,
    ),
]


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
    step_units: list[Unit] = []
    for section in parts:
        if section.kind == "steps":
            step_units += units(section)
        elif section.kind == "conditional":
            step_units.append(conditional_unit(section))
    top = builder.top_level(step_units)
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
        trigger=_trigger(procedure, parts),
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
            for sentence in split_sentences(block.text):
                if injection_excerpt(sentence) is not None:
                    continue
                case = _edge_case(sentence, tools, agents, previous, section.kind == "escalation")
                out.append(
                    case.model_copy(
                        update={"source": SourceRef(block_ids=[block.id], quote=_words(sentence))}
                    )
                )
                previous = case
    return out


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
            when, then = cells[0], "; ".join(c for c in cells[1:] if c)
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
        return EdgeCase(when=head.strip(), then=_sentence(tail))
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


_WHEN_TO_USE = re.compile(r"^(?:when to use|when this applies|applicability|use this)", re.I)
_BACKGROUND = re.compile(r"^(?:purpose|scope|overview|introduction|summary|about)", re.I)
_NOT_TRIGGER = re.compile(r"^(?:definitions?|glossary|terms|roles?|references?)", re.I)


def _by_relevance(procedure: Procedure) -> list[Block]:
    """Context blocks in the order a trigger is read from: "When to use", then purpose/scope.

    Definitions and roles describe words and people, not requests: they never give a trigger.
    """
    ranked: list[tuple[int, int, Block]] = []
    for position, block in enumerate(procedure.context):
        title = heading_title(block.prov.heading_path[-1]) if block.prov.heading_path else ""
        if _NOT_TRIGGER.match(title):
            continue
        rank = 0 if _WHEN_TO_USE.match(title) else 1 if _BACKGROUND.match(title) else 2
        ranked.append((rank, position, block))
    return [block for _, _, block in sorted(ranked, key=lambda item: item[:2])]


def _trigger(procedure: Procedure, parts: list[Section]) -> str:
    own = [b for s in parts if s.kind == "context" for b in s.blocks]
    intro = next((s.blocks for s in parts if s.kind == "steps"), [])
    intro = [b for b in intro[:1] if isinstance(b, Paragraph)]  # a lead paragraph before the steps
    for blocks, shared in ((own, False), (intro, False), (_by_relevance(procedure), True)):
        for block in blocks:
            if not isinstance(block, (ListItem, Paragraph)):
                continue
            text = block_text(block)
            for pattern in _TRIGGERS:
                match = pattern.search(text)
                if match is None:
                    continue
                clause = " ".join(match.group("clause").split()).rstrip(" ,")
                # "explains how Shipping agents handle a parcel that ..." -> "a parcel that ..."
                clause = re.sub(
                    r"^how\s+(?:[A-Z]\w*\s+){0,3}(?:agents?|staff|advisors?)\s+\w+\s+", "", clause
                )
                clause = re.sub(r"^Customers\b", "customers", clause)
                clause = re.sub(
                    r"^the (customer|caller|user|member|client)", r"a \1", clause, flags=re.I
                )
                lead = "when" if re.match(_WHO, clause, re.IGNORECASE) else "for"
                if shared:
                    return f"Use for {procedure.title} ({lead} {clause})."
                return f"Use {lead} {clause}."
    return f"Use for requests about {procedure.title}."
