"""Edge cases: Exceptions, Notes and Escalation sections and reference tables as when -> then."""

from __future__ import annotations

import re

from sop_compiler.generate.offline.phrases import ABOUT, label_test, read_clause
from sop_compiler.generate.offline.sections import Section, cited, led_cases
from sop_compiler.generate.offline.standing import is_decision_table
from sop_compiler.generate.offline.tools import ToolIndex
from sop_compiler.models import Block, EdgeCase, ListItem, Paragraph, SourceRef, Table
from sop_compiler.text import injection_excerpt, is_instruction, split_sentences

_ANY_TIME = "at any point in this routine"


def edge_cases(parts: list[Section], tools: ToolIndex, agents: tuple[str, ...]) -> list[EdgeCase]:
    """The procedure's exceptions, escalation rules and table rows, each as when -> then."""
    out: list[EdgeCase] = []
    for section in parts:
        for index, block in enumerate(section.blocks):
            if isinstance(block, Table):
                # a table of cases is when -> then; one of values is knowledge (standing.py);
                # one a step leads ("Decide what to do:") is that step's cases (sections.py)
                led = index > 0 and _leads_table(section.blocks[index - 1], block)
                out += _table_cases(block) if is_decision_table(block) and not led else []
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
                labelled = case.when.startswith(ABOUT)
                case.source = SourceRef(block_ids=cited(block.id), quote=_words(sentence))
                if (
                    previous is not None
                    and previous.when == _ANY_TIME
                    and _BACK_REF.match(case.when)
                ):
                    # "The tool times out. If it does, check ...": one case, its when spelled out
                    previous.when = previous.then.rstrip(".")
                    previous.when = previous.when[0].lower() + previous.when[1:]
                    previous.then = case.then
                    continue
                out.append(case)
                previous = case
    return out


_BACK_REF = re.compile(r"^(?:it|this|that|so|they)\b", re.IGNORECASE)


def _stands_alone(sentence: str, tools: ToolIndex) -> bool:
    """True when a sentence is a case of its own: a condition or an instruction."""
    clause = read_clause(sentence, tools=tools, agents=())
    return clause.test is not None or clause.is_else or is_instruction(sentence)


def _leads_table(before: Block, table: Table) -> bool:
    """The step before the table leads it, and the table reads as that step's cases."""
    text = getattr(before, "text", None)
    return (
        isinstance(before, (ListItem, Paragraph))
        and isinstance(text, str)
        and text.rstrip().endswith(":")
        and led_cases(table) is not None
    )


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
            when, then = label_test(cells[0]), "; ".join(c for c in cells[1:] if c)
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
        return EdgeCase(when=label_test(head), then=_sentence(tail))
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
