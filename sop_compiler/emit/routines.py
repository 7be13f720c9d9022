"""Routine files: the Markdown an agent reads and the JSON that keeps structure and provenance."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sop_compiler.emit._env import render
from sop_compiler.emit._plan import routine_paths, title_of
from sop_compiler.emit.escape import one_line
from sop_compiler.models import Routine, Step, ToolCall, ValidationReport

__all__ = ["render_routine", "routine_json", "routine_markdown"]


_LOWER_FIRST_WORDS = """
    a an the do don't never escalate transfer hand tell ask follow offer refund reship book use
    check give send close issue apply accept record open if when this that it there only items
    orders customers any all no not for in on
"""
_LOWER_FIRST = frozenset(_LOWER_FIRST_WORDS.split())


@dataclass(frozen=True)
class _Line:
    """One rendered step: its label (`3.` or `a.`), nesting depth and instruction."""

    label: str
    depth: int
    text: str


def render_routine(routine: Routine, report: ValidationReport) -> dict[str, bytes]:
    """The routine's Markdown instructions and JSON, keyed by path relative to the output folder.

    The report is not rendered here: validation issues and open questions are for the reviewer
    (REVIEW.md), not for the agent, and the JSON must validate against the Routine model.
    """
    del report  # part of the stage contract; reviewers see it in REVIEW.md
    md_path, json_path = routine_paths(routine)
    return {md_path: routine_markdown(routine), json_path: routine_json(routine)}


def routine_json(routine: Routine) -> bytes:
    """The routine as stable JSON: sorted keys, two-space indent, UTF-8, trailing newline."""
    text = json.dumps(routine.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8", "backslashreplace")


def routine_markdown(routine: Routine) -> bytes:
    """The instructions an agent reads: title, trigger, numbered steps, edge cases."""
    order = [step.id for step in routine.walk()]
    following = {
        step_id: order[i + 1] if i + 1 < len(order) else None for i, step_id in enumerate(order)
    }
    lines: list[_Line] = []

    def visit(steps: list[Step], depth: int, parent: str) -> None:
        for step in steps:
            label = step.id[len(parent) :] if parent and step.id.startswith(parent) else step.id
            # Ids come from a model: keep only word characters, so a label never reads as markup.
            label = re.sub(r"[^\w.-]", "", label)[:12] or re.sub(r"[^\w.-]", "", step.id)[:12]
            text = _step_text(step, following.get(step.id))
            lines.append(_Line(label=f"{label or len(lines) + 1}.", depth=depth, text=text))
            visit(step.substeps, depth + 1, step.id)

    visit(routine.steps, 0, "")
    edge_cases = [_edge_case(case.when, case.then) for case in routine.edge_cases]
    return render(
        "routine.md.j2",
        title=one_line(routine.title) or routine.id,
        trigger=_trigger_line(one_line(routine.trigger)),
        lines=lines,
        edge_cases=edge_cases,
    )


def _trigger_line(trigger: str) -> str:
    """A trigger that starts "Use when ..." reads as it is; others get the routine's lead-in."""
    if not trigger or re.match(r"^use\s+(?:when|for|if|this|only)\b", trigger, re.IGNORECASE):
        return trigger
    return f"Use this routine when: {trigger}"


def _sentence(text: str) -> str:
    text = one_line(text)
    return text if not text or text[-1] in ".!?:;)\"'" else f"{text}."


def _join(text: str, sentence: str) -> str:
    """The step's own text followed by the structured action, unless the text already says it."""
    text = _sentence(text)
    if not text:
        return sentence
    if sentence.rstrip(".").lower() in text.lower():
        return text
    return f"{text} {sentence}"


def _step_ref(step_id: str | None) -> str:
    return f"step {one_line(step_id)}" if step_id else "the next step"


def _step_text(step: Step, following: str | None) -> str:
    """One step as the agent reads it, with the structured action spelled out."""
    if step.kind == "tool_call" and step.tool_call is not None:
        text = _join(step.text, _call_sentence(step.tool_call))
    elif step.kind == "condition" and step.condition is not None:
        test = one_line(step.condition.test)
        text = _condition_sentence(
            test, step.condition.then_step, step.condition.else_step, following
        )
        if step.text and one_line(test).rstrip("?.").lower() not in step.text.lower():
            text = f"{_sentence(step.text)} {text}"
    elif step.kind == "handoff":
        agent = re.sub(r"\s+agent$", "", one_line(step.target or ""), flags=re.IGNORECASE)
        sentence = (
            f"Hand off to the {title_of(agent)} agent." if agent else "Hand off to another agent."
        )
        text = _join(step.text, sentence)
    elif step.kind == "escalate":
        team = one_line(step.target or "")
        text = _join(step.text, f"Escalate to {team}." if team else "Escalate to a human.")
    elif step.kind == "resolve":
        text = _sentence(step.text) or "Resolve the case."
    else:
        text = _sentence(step.text)
    if step.next_step and step.kind not in {"condition", "resolve", "handoff", "escalate"}:
        text = f"{text} Then go to {_step_ref(step.next_step)}."
    return text


def _condition_sentence(
    test: str, then_step: str, else_step: str | None, following: str | None
) -> str:
    test = re.sub(r"^(if|whether)\s+", "", test, flags=re.IGNORECASE).rstrip(" .,")
    opening = f'If the answer to "{test}" is yes' if test.endswith("?") else f"If {test}"
    then_part = f"{opening}, go to {_step_ref(then_step)}."
    if else_step:
        return f"{then_part} Otherwise, go to {_step_ref(else_step)}."
    if following:
        return f"{then_part} Otherwise, continue with {_step_ref(following)}."
    return f"{then_part} Otherwise, stop: this routine has no further step."


def _call_sentence(call: ToolCall) -> str:
    parts = []
    for argument in call.arguments:
        if argument.value is not None:
            literal = json.dumps(argument.value, ensure_ascii=False)
            value = f"`{literal}`" if "`" not in literal else literal
        elif argument.from_context:
            value = one_line(argument.from_context).rstrip(".")
        else:
            value = "what you learned in the conversation"
        parts.append(f"`{one_line(argument.name)}` = {value}")
    tool = f"`{one_line(call.tool)}`"
    return f"Call {tool} with {', '.join(parts)}." if parts else f"Call {tool}."


# An edge case that holds throughout the routine is a standing rule: its `then` says it all.
_ALWAYS = re.compile(
    r"^(?:always|at any (?:point|time|stage)(?: in this routine)?|throughout|any time)$",
    re.IGNORECASE,
)


def _edge_case(when: str, then: str) -> str:
    when = re.sub(r"^(when|if|in case)\s+", "", one_line(when), flags=re.IGNORECASE).rstrip(" .,")
    then = re.sub(r"^then\s+", "", one_line(then), flags=re.IGNORECASE)
    if _ALWAYS.match(when) or not when:
        return _sentence(then)
    # "then Escalate ..." reads as a typo; keep acronyms and names ("then SMS", "then Billing").
    if re.match(r"^[A-Z][a-z]", then) and then.split()[0].lower() in _LOWER_FIRST:
        then = then[0].lower() + then[1:]
    return f"When {when}, then {_sentence(then)}"
