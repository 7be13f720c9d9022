"""Routine files: the Markdown an agent reads and the JSON that keeps structure and provenance."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sop_compiler.emit._env import render
from sop_compiler.emit._plan import routine_paths, title_of
from sop_compiler.escape import md_block_safe, md_code, md_prose, one_line
from sop_compiler.models import Routine, Rule, Slot, Step, ToolCall, ValidationReport

__all__ = ["render_routine", "routine_json", "routine_markdown"]


_LOWER_FIRST_WORDS = """
    a an the do don't never escalate transfer hand tell ask follow offer refund reship book use
    check give send close issue apply accept record open if when this that it there only items
    orders customers any all no not for in on
"""
_LOWER_FIRST = frozenset(_LOWER_FIRST_WORDS.split())


@dataclass(frozen=True)
class _Line:
    """One rendered step: indent, list marker (`3.`, or `- **a.**` for a sub-step) and text."""

    indent: str
    marker: str
    text: str


def render_routine(routine: Routine, report: ValidationReport) -> dict[str, bytes]:
    """The routine's Markdown instructions and JSON, keyed by path relative to the output folder.

    The report is not rendered here: validation issues and open questions are for the reviewer
    (REVIEW.md), not for the agent, and the JSON must validate against the Routine model.
    """
    del report  # part of the stage contract; reviewers see it in REVIEW.md
    md_path, json_path = routine_paths(routine)
    return {md_path: routine_markdown(routine), json_path: routine_json(routine)}


_STEPS_MARK = "\x00sopc:steps\x00"  # escaped in JSON (\\u0000): no SOP text can spell it


def routine_json(routine: Routine) -> bytes:
    """The routine as stable JSON: sorted keys, two-space indent, UTF-8, trailing newline."""
    # No source flowchart: no key at all, so routines of text SOPs keep their JSON as it was.
    unset = {"source_flowchart"} if routine.source_flowchart is None else set()
    # The steps are dumped one at a time into the place a marker holds: a big SOP's routine
    # (a step per line) as one dump of dicts took ten times the JSON's size (issue 17). JSON
    # strings hold no raw newline, so a step's lines are indented by prefixing them.
    data = routine.model_dump(mode="json", exclude=unset | {"steps"})
    data["steps"] = _STEPS_MARK
    text = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False)
    mark = json.dumps(_STEPS_MARK)
    if text.count(mark) != 1:  # the marker is in the routine's own text: one dump after all
        data = routine.model_dump(mode="json", exclude=unset)
        return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode(
            "utf-8", "backslashreplace"
        )
    head, _, tail = text.partition(mark)
    parts = [head]
    for index, step in enumerate(routine.steps):
        parts.append(",\n    " if index else "[\n    ")
        step_json = json.dumps(
            step.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=False
        )
        parts.append(step_json.replace("\n", "\n    "))
    parts.append("\n  ]" if routine.steps else "[]")
    parts.append(tail)
    parts.append("\n")
    return "".join(parts).encode("utf-8", "backslashreplace")


def routine_markdown(routine: Routine) -> bytes:
    """The instructions an agent reads: title, trigger, numbered steps, edge cases.

    Every piece of SOP or model text is escaped as it enters a line (`md_prose`, `md_code`), so
    no SOP can inject HTML or open a code fence; sopc's own backticks mark tool names.
    """
    order = [step.id for step in routine.walk()]
    following = {
        step_id: order[i + 1] if i + 1 < len(order) else None for i, step_id in enumerate(order)
    }
    lines: list[_Line] = []
    top = [_label(step.id, "") for step in routine.steps]
    # A CommonMark renderer renumbers an ordered list from its first number, so only ids that
    # count 1, 2, 3 ... can be list numbers; others are shown as bold labels on bullets.
    numbered = top == [str(n) for n in range(1, len(top) + 1)]
    # An explicit stack rather than recursion: the nesting depth comes from model output.
    stack: list[tuple[list[Step], int, str, str]] = [(list(reversed(routine.steps)), 0, "", "")]
    while stack:
        pending, depth, parent, indent = stack[-1]
        if not pending:
            stack.pop()
            continue
        step = pending.pop()
        label = _label(step.id, parent) or str(len(lines) + 1)
        # Sub-steps are a nested bullet list: `   a.` alone is no list marker, and a renderer
        # would run every sub-step into the parent's paragraph.
        marker = f"{label}." if depth == 0 and numbered else f"- **{label}.**"
        text = md_block_safe(_step_text(step, following.get(step.id)))
        lines.append(_Line(indent=indent, marker=marker, text=text))
        if step.substeps:
            child_indent = indent + " " * (len(marker.split(" ", 1)[0]) + 1)
            stack.append((list(reversed(step.substeps)), depth + 1, step.id, child_indent))
    edge_cases = [md_block_safe(_edge_case(case.when, case.then)) for case in routine.edge_cases]
    return render(
        "routine.md.j2",
        title=md_prose(routine.title) or md_prose(routine.id),
        trigger=md_block_safe(_trigger_line(md_prose(routine.trigger))),
        rules=[_rule_line(rule) for rule in routine.rules],  # starts with its bold kind
        knowledge=[md_block_safe(_sentence(item.fact)) for item in routine.knowledge],
        slots=[md_block_safe(_slot_line(slot)) for slot in routine.collect],
        lines=lines,
        edge_cases=edge_cases,
    )


_RULE_LEAD = {
    "never": "Never",
    "always": "Always",
    "only_if": "Only if",
    "limit": "Limit",
    "confirm_before": "Confirm first",
}
_ORIGIN = {
    "customer": "ask the customer",
    "tool": "from a tool's result",
    "context": "known at the start of the conversation",
}


def _rule_line(rule: Rule) -> str:
    """A rule as the agent reads it: its kind in bold, its text, when it holds, what it governs."""
    text = _sentence(rule.text)
    condition = one_line(rule.condition or "").rstrip(" .")
    if condition and _plain(condition) not in _plain(text):
        text = f"{text[:-1] if text.endswith('.') else text} (when {md_prose(condition)})."
    if rule.governs:
        governed = ", ".join(md_code(name) for name in rule.governs)
        text = f"{text} Applies to: {governed}."
    return f"**{_RULE_LEAD[rule.kind]}:** {text}"


def _slot_line(slot: Slot) -> str:
    return f"{md_code(slot.name)}: {md_prose(one_line(slot.description))} ({_ORIGIN[slot.origin]})"


def _label(step_id: str, parent: str) -> str:
    """A step's label relative to its parent (`3b` under `3` is `b`), word characters only."""
    # Ids come from a model: keep only word characters, so a label never reads as markup.
    relative = step_id[len(parent) :] if parent and step_id.startswith(parent) else step_id
    label = re.sub(r"[^\w.-]", "", relative).strip(".-")[:12]
    return label or re.sub(r"[^\w.-]", "", step_id).strip(".-")[:12]


def _trigger_line(trigger: str) -> str:
    """A trigger that starts "Use when ..." reads as it is; others get the routine's lead-in."""
    if not trigger or re.match(r"^use\s+(?:when|for|if|this|only)\b", trigger, re.IGNORECASE):
        return trigger
    return f"Use this routine when: {trigger}"


def _sentence(text: str) -> str:
    """Escaped text ending with a full stop (or the punctuation it already ends with)."""
    raw = one_line(text)
    escaped = md_prose(raw)
    return escaped if not raw or raw[-1] in ".!?:;)\"'" else f"{escaped}."


def _join(text: str, sentence: str) -> str:
    """The step's own text followed by the structured action, unless the text already says it."""
    text = _sentence(text)
    if not text:
        return sentence
    if _plain(sentence) in _plain(text):
        return text
    return f"{text} {sentence}"


def _plain(text: str) -> str:
    """Lower case without articles or punctuation, for "does the text already say it"."""
    words = re.findall(r"[a-z0-9$]+", text.lower())
    return " ".join(word for word in words if word not in {"the", "a", "an"})


def _step_ref(step_id: str | None) -> str:
    return f"step {md_prose(step_id)}" if step_id else "the next step"


def _step_text(step: Step, following: str | None) -> str:
    """One step as the agent reads it, with the structured action spelled out."""
    if step.kind == "tool_call" and step.tool_call is not None:
        text = _join(step.text, _call_sentence(step.tool_call))
    elif step.kind == "condition" and step.condition is not None:
        test = one_line(step.condition.test)
        text = _condition_sentence(
            md_prose(test), step.condition.then_step, step.condition.else_step, following
        )
        if step.text and one_line(test).rstrip("?.").lower() not in step.text.lower():
            text = f"{_sentence(step.text)} {text}"
    elif step.kind == "switch" and step.switch is not None:
        text = _switch_sentence(step, following)
    elif step.kind == "call":
        routine = md_code(step.routine or "")
        back = _step_ref(step.next_step or following) if (step.next_step or following) else None
        then = f"then come back and continue with {back}" if back else "then stop here"
        text = _join(step.text, f"Follow the routine {routine} from its first step, {then}.")
    elif step.kind == "ask":
        text = _sentence(step.text)
        if step.collects:
            text = f"{text} (collects {', '.join(md_code(name) for name in step.collects)})"
        if step.confirm:
            text = f"{text} Go on only with the customer's explicit yes."
    elif step.kind == "handoff":
        agent = re.sub(r"\s+agent$", "", one_line(step.target or ""), flags=re.IGNORECASE)
        sentence = (
            f"Hand off to the {md_prose(title_of(agent))} agent."
            if agent
            else "Hand off to another agent."
        )
        text = _join(step.text, sentence)
    elif step.kind == "escalate":
        team = md_prose(step.target or "")
        text = _join(step.text, f"Escalate to {team}." if team else "Escalate to a human.")
    elif step.kind == "resolve":
        text = _sentence(step.text) or "Resolve the case."
    else:
        text = _sentence(step.text)
    if step.next_step and step.kind not in {
        "condition",
        "switch",
        "call",
        "resolve",
        "handoff",
        "escalate",
    }:
        text = f"{text} Then go to {_step_ref(step.next_step)}."
    return text


def _condition_sentence(
    test: str, then_step: str, else_step: str | None, following: str | None
) -> str:
    """The if/then/else of a condition step; `test` is already escaped Markdown."""
    test = re.sub(r"^(if|whether)\s+", "", test, flags=re.IGNORECASE).rstrip(" .,")
    opening = f'If the answer to "{test}" is yes' if test.endswith("?") else f"If {test}"
    then_part = f"{opening}, go to {_step_ref(then_step)}."
    if else_step:
        return f"{then_part} Otherwise, go to {_step_ref(else_step)}."
    if following:
        return f"{then_part} Otherwise, continue with {_step_ref(following)}."
    return f"{then_part} Otherwise, stop: this routine has no further step."


def _switch_sentence(step: Step, following: str | None) -> str:
    """The cases of a switch, in the order they are tested, and where no case leads."""
    assert step.switch is not None
    subject = md_prose(one_line(step.switch.subject)).rstrip(" .?:")
    cases = [
        f"if {md_prose(one_line(case.when)).rstrip(' .,')}, go to {_step_ref(case.goto)}"
        for case in step.switch.cases
    ]
    default = step.switch.default or following
    rest = f"otherwise, go to {_step_ref(default)}" if default else "otherwise, stop here"
    lead = _sentence(step.text) if step.text.strip() else ""
    body = f"Check {subject}: {'; '.join([*cases, rest])}."
    return f"{lead} {body}" if lead and _plain(subject) not in _plain(lead) else body


def _call_sentence(call: ToolCall) -> str:
    parts = []
    for argument in call.arguments:
        if argument.value is not None:
            value = md_code(json.dumps(argument.value, ensure_ascii=False))
        elif argument.slot:
            value = md_code(argument.slot)
        elif argument.from_context:
            value = md_prose(argument.from_context).rstrip(".")
        else:
            value = "what you learned in the conversation"
        parts.append(f"{md_code(argument.name)} = {value}")
    tool = md_code(call.tool)
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
    return f"When {md_prose(when)}, then {_sentence(then)}"
