"""The offline backend: deterministic rules, no network, no model.

It reads well-structured SOPs: numbered steps and sub-steps, "If/When/In case ..., <action>",
"Otherwise" / "If not", "go to step N", "escalate to <team>", "transfer to / hand off to <agent>",
tools by name, in backticks or by a catalog alias, and Exceptions / Notes / Escalation sections.
What it cannot read it reports as open questions instead of guessing.

Where each construct is read (its examples are the tests named):
- sections, lists, lettered lines, decision tables (a step's "Decide what to do:" over a table
  of situations too), "Option A/B", "Label: ..." and "Before X: ..." / "After Y: ..." items as
  cases: sections.py (test_offline_conditions.py, test_offline_endings.py)
- the sentences of a step, "Otherwise", "Unless", "Except when", "Only if", "Provided that",
  "X? Yes: ... No: ...", refusals and what to do instead: reading.py (test_offline_conditions.py)
- a sentence's test and actions, compound tests kept whole, a second "if" in a branch, a case
  named before a colon ("Honeybees: do not book"), endings: phrases.read_clause
  (test_offline_conditions.py, test_offline_endings.py)
- runs of sibling cases ("If the tier is Gold ... If Silver ..."): chains.py (test_offline.py)
- rules (a prohibition inside a sentence or a table cell too), knowledge, confirmations:
  standing.py (test_offline_rules.py, test_offline_conditions.py)
- tools, statements that call nothing, the tools that hand a case to people: binding.py and
  tools.py (test_binding.py), lookups: lookups.py (test_offline_lookups.py)
- an exception written after the call it refuses, moved in front of it: reorder.py
  (test_offline_conditions.py)
- numbering, targets, a condition whose sides meet: steps.py (test_offline_conditions.py)
- closing steps only where a customer is served: endings.py (test_offline.py)
- flowcharts: flowchart.py (test_flowchart.py)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar

from sop_compiler.config import Settings
from sop_compiler.generate.base import Backend, GenerationContext, GenerationResult
from sop_compiler.generate.offline.edge_cases import edge_cases
from sop_compiler.generate.offline.flowchart import flowchart_draft
from sop_compiler.generate.offline.lookups import tested_lookup
from sop_compiler.generate.offline.nodes import PROPOSED_NOTE, Builder, Node
from sop_compiler.generate.offline.phrases import PERSON_NOUNS
from sop_compiler.generate.offline.reading import read_units
from sop_compiler.generate.offline.reorder import approvals_first
from sop_compiler.generate.offline.request import identity_first, request_calls
from sop_compiler.generate.offline.sections import (
    Unit,
    conditional_unit,
    sections,
    units,
    with_decisions,
    with_step_tables,
)
from sop_compiler.generate.offline.standing import confirm_gates, insert_confirmations, standing
from sop_compiler.generate.offline.steps import finish, unpassed_refs, vague_questions
from sop_compiler.generate.offline.tools import ToolIndex
from sop_compiler.generate.offline.trigger import trigger_for, without_trigger_lead
from sop_compiler.interrupt import abandonable
from sop_compiler.models import (
    Figure,
    Flowchart,
    Issue,
    Procedure,
    ProposedTool,
    RoutineDraft,
    Step,
    ToolCatalog,
)
from sop_compiler.shape import title_verdict

__all__ = ["OFFLINE_RULES_VERSION", "OfflineBackend", "build_draft"]

# a procedure that talks with someone outside (vs a back-office task with no customer in the text)
_CUSTOMER = re.compile(rf"\b{PERSON_NOUNS}\b", re.IGNORECASE)
# "Weekly alert review (back office)", "Done every Monday by the back-office team, not on calls",
# "No passenger is involved", "no customer is on the line"
_BACK_OFFICE = re.compile(
    r"\bback[\s-]office\b|\bnot\s+on\s+(?:a\s+|the\s+)?calls?\b|\bno\s+customer\s+contact\b|"
    rf"\bno\s+{PERSON_NOUNS}\s+(?:is|are)\s+(?:involved|on\s+the\s+(?:line|call|phone)|present)\b",
    re.IGNORECASE,
)


def _talks_with_someone(procedure: Procedure) -> bool:
    """The procedure talks with a customer: a person is in its text, and neither its title nor
    its own text says it is back-office work (a customer named there is whom it is about)."""
    own = " ".join(
        [procedure.title, *(str(getattr(b, "text", "") or "") for b in procedure.blocks)]
    )
    return _CUSTOMER.search(_text(procedure)) is not None and not _BACK_OFFICE.search(own)


# Bump when the rules change what they produce, so that the lock file marks routines stale.
OFFLINE_RULES_VERSION = 189


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
        with abandonable():  # seconds for a huge SOP: a signal may end it at once
            draft = build_draft(procedure, catalog=context.catalog, agents=context.agents)
        return GenerationResult(
            procedure_id=procedure.id,
            draft=draft,
            issues=[*_unread_figures(procedure), *validate(draft)],
            attempts=1,
        )


def _unread_figures(procedure: Procedure) -> list[Issue]:
    """A figure (a flowchart drawn as an image, a screenshot) the offline rules cannot read: what
    it shows is missing from the routine, and the routine says so rather than look complete."""
    return [
        Issue(
            code="figure_unread",
            severity="warning",
            routine_id=procedure.id,
            message=(
                f"figure [{block.id}]{f' ({block.caption})' if block.caption else ''} was not "
                "read: the offline compiler reads no images, so what it shows is missing from "
                "the routine (compile with a vision model, or write its steps as text)"
            ),
        )
        for block in procedure.blocks
        if isinstance(block, Figure) and block.image is not None and not block.read
    ]


def build_draft(
    procedure: Procedure, *, catalog: ToolCatalog, agents: tuple[str, ...] = ()
) -> RoutineDraft:
    """The routine draft the offline rules read from one procedure."""
    tools = ToolIndex(catalog)
    builder = Builder(
        tools=tools,
        agents=tuple(sorted(agents)),
        customer_facing=_talks_with_someone(procedure),
    )
    builder.subject = _subject(procedure.title)
    procedure = with_step_tables(with_decisions(procedure))
    found = standing(procedure, tools)
    builder.rule_sentences = found.rule_sentences
    parts = sections(procedure)
    charts = [block for block in procedure.blocks if isinstance(block, Flowchart)]
    if charts:  # a procedure drawn as a graph: its steps are the graph's (flowchart.py)
        return flowchart_draft(
            procedure, charts, tools=tools, agents=agents, found=found, parts=parts
        )
    step_units: list[Unit] = []
    for section in parts:
        if section.kind == "steps":
            step_units += units(section)
        elif section.kind == "conditional":
            step_units.append(conditional_unit(section))
    # "When a customer asks about a return:" or "When to use it: ..." over the steps says when
    # the routine applies: the trigger reads it; it is no step (up to the first numbered one).
    # A paragraph that ends with such a line ("Most people pay by bank transfer. If someone
    # rings to pay:") keeps the sentences before it.
    lead = next((n for n, unit in enumerate(step_units) if unit.numbered), len(step_units))
    led: list[Unit] = []
    for n, unit in enumerate(step_units):
        text = unit.text if n > lead or unit.children else without_trigger_lead(unit.text)
        led += [replace(unit, text=text)] if text is not None else []
    step_units = led
    tables = {unit.block_id for unit in step_units if unit.cite}  # a table read as steps
    found.knowledge = [
        k for k in found.knowledge if not (k.source and set(k.source.block_ids) & tables)
    ]
    top = approvals_first(builder, read_units(builder, step_units))
    # A request written as rules under its heading: look the record up, then act (request.py).
    first, last = request_calls(builder, procedure, catalog)
    top = [*first, *top, *last]
    # A test of data nothing looks up: the read tool that returns it, first (lookups.py).
    top = tested_lookup(builder, top, procedure, found, catalog)
    # "The Adviser shall verify the identity of the Holder before taking any action": first
    top = identity_first(builder, top, found.rules, catalog)
    writes = [
        node.tool_call.tool
        for node in builder.nodes
        if node.tool_call is not None
        and (tool := catalog.get(node.tool_call.tool)) is not None
        and tool.access == "write"
    ]
    top = insert_confirmations(builder, top, confirm_gates(found, writes))
    steps, questions = finish(builder, top)
    cases = edge_cases(parts, tools, agents)
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
    called = {
        n.tool_call.tool for n in builder.nodes if n.tool_call is not None and n.uid in builder.ids
    }
    # a prohibition of a tool no step calls is kept, not a gap: only rules that say when or how
    # to use a tool ask for a step that calls it
    uncalled = sorted(
        {name for r in found.rules if r.kind != "never" for name in r.governs if catalog.get(name)}
        - called
    )
    if uncalled:
        names = ", ".join(f"`{name}`" for name in uncalled)
        questions.append(
            f"The SOP's rules restrict {names}, but no step calls it: the offline compiler could "
            "not tell from the text when to call it. Review the steps (or compile with a model)."
        )
    if not found_steps:
        questions.append(
            "The offline compiler found no steps in this section (no numbered items or "
            "instructions); the routine only closes the case."
        )
    draft = RoutineDraft(
        title=procedure.title,
        trigger=trigger_for(procedure, parts),
        steps=steps,
        rules=found.rules,
        knowledge=found.knowledge,
        edge_cases=cases,
        tools_proposed=_proposed(builder.nodes, builder.ids),
        open_questions=questions,
    )
    return unpassed_refs(draft)


def _subject(title: str) -> str | None:
    """The thing a task heading acts on: "Cancel a reservation" -> "reservation".

    Only for a heading that starts with a task verb; the last word of its object is the noun.
    """
    verdict = title_verdict(title)
    if _TWO_TASKS.match(title) is None and (verdict is None or "task verb" not in verdict.reason):
        return None
    words = re.findall(r"[a-z][a-z-]*", title.casefold())
    return words[-1] if len(words) >= 2 and words[-1] not in _NOT_NOUNS else None


# "Moving or cancelling a booking": two tasks on one thing
_TWO_TASKS = re.compile(r"^[a-z]+ing\s+(?:or|and)\s+[a-z]+ing\s+(?:a|an|the|your)\s", re.I)
_NOT_NOUNS = frozenset(["it", "them", "up", "out", "in", "on", "off", "back", "down", "over"])


def _text(procedure: Procedure) -> str:
    """The title and the words of every block and of the context (table cells included)."""
    parts = [procedure.title]
    for block in [*procedure.context, *procedure.blocks]:  # "Agents help guests ..." counts
        parts.append(str(getattr(block, "text", "") or ""))
        parts += [" ".join(map(str, row)) for row in getattr(block, "rows", None) or []]
    return " ".join(parts)


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
            description = node.text.split(PROPOSED_NOTE)[0]
            by_name[name] = ProposedTool(
                name=name,
                description=description,
                access=access,
                step_ids=[ids[node.uid]],
            )
        elif ids[node.uid] not in tool.step_ids:
            tool.step_ids.append(ids[node.uid])
    return list(by_name.values())
