"""A flowchart block compiled into routine steps, node by node and edge by edge.

One public function, `flowchart_draft` (the hook `build_draft` calls for a procedure that holds a
flowchart block); `flowchart_steps` compiles one chart. Rules:
- every node except a start terminal becomes one step (a node that reads as several actions
  becomes one step per action, in order), numbered in the order a depth-first walk from the
  entry meets them, so the main path reads top to bottom;
- a node with two outgoing edges labelled yes/no (Yes/No, Y/N, True/False, OK) is a `condition`:
  the node text is the test, Yes is `then_step`, No is `else_step`; any other node with several
  outgoing edges is a `switch` on the node text with one case per edge (its label is `when`), and
  the edge labelled Other/Otherwise/Else (else the last edge) is also the `default`;
- a decision that asks for the customer's confirmation ("Customer confirms the refund?") is an
  ask with `confirm: true` followed by the condition on the answer;
- an action names a catalog tool by name, alias or verb and object as in the text compiler
  (`read_actions`): a `tool_call`; escalate / hand off / resolve wordings end the path; "ask" and
  "tell" wordings are asks and says; any other box is an `action`;
- a node nothing leads out of ends the path: an end terminal resolves (or escalates, hands off);
  an action goes on to one closing `resolve`;
- edges that lead back to an earlier node are kept (loops);
- what cannot be read exactly (a node without text, a branch without a label, a decision with one
  branch, something the reader could not place) stays verbatim and is named in an open question.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sop_compiler.generate.offline.edge_cases import edge_cases
from sop_compiler.generate.offline.nodes import quote
from sop_compiler.generate.offline.phrases import Action, read_actions
from sop_compiler.generate.offline.sections import Section
from sop_compiler.generate.offline.standing import Standing
from sop_compiler.generate.offline.tools import ToolIndex, bind_arguments
from sop_compiler.generate.offline.trigger import trigger_for
from sop_compiler.models import (
    Case,
    Condition,
    Flowchart,
    FlowEdge,
    FlowNode,
    ListItem,
    Procedure,
    ProposedTool,
    RoutineDraft,
    SourceRef,
    Step,
    Switch,
    ToolCall,
)

__all__ = ["FlowchartSteps", "flowchart_draft", "flowchart_steps", "generic_terminal"]

# a yes/no decision is a condition; any other answers ("Paid" / "Unpaid") are switch cases
_YES = re.compile(r"^(?:yes|y|true|ok)\b(?![?])", re.I)
_NO = re.compile(r"^(?:no|n|false|not ok)\b(?![?])", re.I)
_OTHER = re.compile(
    r"^(?:other(?:wise)?|else|default|anything else|none of (?:these|the above))\b", re.I
)
_CONFIRM = re.compile(
    r"\b(?:customer|caller|client|member|they|user)\b.*\b(?:confirms?|agrees?|accepts?|approves?)\b"
    r"|^(?:confirm(?:ed)?|agree[sd]?)\b.*\?$",
    re.I,
)
_CONFIRMS_WHAT = re.compile(
    r"^(?:does |did |has )?(?:the )?(?:customer|caller|client|member|user)\s+"
    r"(?:confirms?|agrees?(?: to)?|accepts?|approves?)\s+(?P<what>.+?)\s*\??$",
    re.I,
)
_SAY_WORDS = frozenset(
    {"tell", "inform", "explain", "let", "advise", "apologise", "apologize", "remind"}
    | {"reassure", "thank", "greet", "offer", "say", "acknowledge", "warn", "suggest", "share"}
)
RESOLVE_TEXT = "Resolve the case."


def generic_terminal(text: str) -> bool:
    """True for a terminal that only marks where the flow starts or stops ("Start", "End")."""
    return FlowNode(id="", kind="end", text=text, shape="").is_marker()


@dataclass
class FlowchartSteps:
    """The steps one flowchart compiles to, with what it could not read and proposed tools."""

    steps: list[Step] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    proposed: list[ProposedTool] = field(default_factory=list)
    trigger: str | None = None  # the start terminal's text when it says more than "Start"
    node_steps: dict[str, str] = field(default_factory=dict)  # node id -> id of its first step


@dataclass
class _Plan:
    """One node's steps before numbering: (kind, text, extra fields), in order."""

    node: FlowNode
    parts: list[dict[str, object]]
    terminal: bool = False
    ids: list[str] = field(default_factory=list)


def flowchart_draft(
    procedure: Procedure,
    charts: list[Flowchart],
    *,
    tools: ToolIndex,
    agents: tuple[str, ...],
    found: Standing,
    parts: list[Section],
) -> RoutineDraft:
    """The draft of a procedure drawn as a flowchart: the graph's steps, the text's rules."""
    compiled = flowchart_steps(charts[0], tools=tools, agents=agents)
    questions = list(compiled.questions)
    for extra in charts[1:]:
        questions.append(
            f"The section holds another flowchart ({extra.id}) that was not compiled into this "
            "routine's steps: only the first one is. Split the section or join the charts."
        )
    if any(isinstance(block, ListItem) and block.ordered for block in procedure.blocks):
        questions.append(
            "The section's numbered steps beside the flowchart were not compiled into steps; "
            "the steps follow the flowchart."
        )
    for tool in compiled.proposed:
        tool.step_ids = [step.id for step in compiled.steps if step.text == tool.description]
    trigger = trigger_for(procedure, parts)
    if compiled.trigger:  # the start terminal says when the flow begins
        start = compiled.trigger.rstrip(".")
        trigger = f"{trigger.rstrip('.')}: {start[:1].lower()}{start[1:]}."
    return RoutineDraft(
        title=procedure.title,
        trigger=trigger,
        steps=compiled.steps,
        rules=found.rules,
        knowledge=found.knowledge,
        edge_cases=edge_cases(parts, tools, agents),
        tools_proposed=compiled.proposed,
        open_questions=questions,
    )


def flowchart_steps(
    chart: Flowchart, *, tools: ToolIndex, agents: tuple[str, ...]
) -> FlowchartSteps:
    """Compile one flowchart into numbered steps (see the module rules)."""
    out = FlowchartSteps()
    if not chart.nodes:
        out.questions.append(f"The flowchart ({chart.id}) has no nodes that could be read.")
        return out
    order = _order(chart)
    entry = chart.node(chart.entry or "") or chart.nodes[0]
    skipped: set[str] = set()
    if entry.kind == "start" and chart.outgoing(entry.id):
        skipped.add(entry.id)
        if not generic_terminal(entry.text):
            out.trigger = entry.text
    plans = [_plan(node, chart, tools, agents, out) for node in order if node.id not in skipped]
    plans = _without_orphan_ends(plans, chart)
    # number every step: a node's parts take consecutive ids
    number = 0
    for plan in plans:
        for _ in plan.parts:
            number += 1
            plan.ids.append(str(number))
        out.node_steps[plan.node.id] = plan.ids[0]
    closing_id = str(number + 1)
    needs_closing = False
    review_steps: list[Step] = []

    def target_of(node_id: str) -> str:
        while node_id in skipped:  # a start node in a loop: go where it goes
            node_id = chart.outgoing(node_id)[0].target
        return out.node_steps[node_id]

    def missing(text: str) -> str:
        step_id = str(number + 2 + len(review_steps))
        review_steps.append(Step(id=step_id, kind="action", text=text, next_step=closing_id))
        return step_id

    for plan in plans:
        ids = plan.ids
        source = SourceRef(block_ids=[chart.id], quote=quote(plan.node.text) or plan.node.id)
        edges = chart.outgoing(plan.node.id)
        for index, part in enumerate(plan.parts):
            fields = dict(part)
            last = index == len(plan.parts) - 1
            step_id = ids[index]
            if not last:
                out.steps.append(Step.model_validate({"id": step_id, "source": source, **fields}))
                continue
            if plan.terminal:
                out.steps.append(Step.model_validate({"id": step_id, "source": source, **fields}))
                continue
            if len(edges) >= 2:
                fields.update(_branch(plan.node, edges, target_of, out))
            elif len(edges) == 1:
                if plan.node.kind == "decision":
                    fields.update(_one_branch(plan.node, edges[0], target_of, missing, out))
                else:
                    target = target_of(edges[0].target)
                    if target != str(int(step_id) + 1):
                        fields["next_step"] = target
                    if edges[0].label:
                        out.questions.append(
                            f"Flowchart {chart.id}: the only arrow out of "
                            f"{plan.node.text!r} is labelled {edges[0].label!r}; "
                            "there is no other branch."
                        )
            else:
                needs_closing = True
                fields["next_step"] = closing_id
            out.steps.append(Step.model_validate({"id": step_id, "source": source, **fields}))
    if review_steps:
        needs_closing = True
    if needs_closing:
        out.steps.append(Step(id=closing_id, kind="resolve", text=RESOLVE_TEXT))
        out.steps += review_steps
    for note in chart.unread:
        out.questions.append(f"Flowchart {chart.id}: {note}.")
    return out


def _without_orphan_ends(plans: list[_Plan], chart: Flowchart) -> list[_Plan]:
    """Drop an "End" marker that only escalations and handoffs lead to (they end the path)."""
    terminal = {plan.node.id for plan in plans if plan.terminal}
    kept = []
    for plan in plans:
        node = plan.node
        into = [edge.source for edge in chart.edges if edge.target == node.id]
        if node.kind == "end" and node.is_marker() and into and set(into) <= terminal:
            continue
        kept.append(plan)
    return kept


def _order(chart: Flowchart) -> list[FlowNode]:
    """Nodes depth first from the entry (edges in source order), then any not reached."""
    seen: set[str] = set()
    order: list[FlowNode] = []
    start = chart.entry or chart.nodes[0].id
    stack = [start]
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        node = chart.node(node_id)
        if node is None:
            continue
        seen.add(node_id)
        order.append(node)
        edges = chart.outgoing(node_id)
        yes_first = sorted(edges, key=lambda e: 0 if e.label and _YES.match(e.label) else 1)
        stack += [edge.target for edge in reversed(yes_first) if edge.target not in seen]
    order += [node for node in chart.nodes if node.id not in seen]
    return order


def _plan(
    node: FlowNode,
    chart: Flowchart,
    tools: ToolIndex,
    agents: tuple[str, ...],
    out: FlowchartSteps,
) -> _Plan:
    text = node.text.strip()
    edges = chart.outgoing(node.id)
    if not text or node.kind == "unknown":
        out.questions.append(
            f"Flowchart {chart.id}: node {node.id} ({node.shape}) has no readable text; "
            "it is kept as an action step to review."
        )
        return _Plan(node, [{"kind": "action", "text": text or f"(unread node {node.id})"}])
    if node.kind == "decision" and not edges:
        out.questions.append(
            f"Flowchart {chart.id}: the decision {text!r} has no arrow out; "
            "it is kept as an action step to review."
        )
        return _Plan(node, [{"kind": "action", "text": text}])
    if node.kind == "decision" or len(edges) >= 2:
        if _CONFIRM.search(text):
            what = _CONFIRMS_WHAT.match(text)
            ask = (
                f"Ask the customer to confirm {what.group('what')}."
                if what
                else f"Ask the customer for an explicit yes: {text}"
            )
            return _Plan(
                node,
                [
                    {"kind": "ask", "text": ask, "confirm": True},
                    {"kind": "condition", "text": text},
                ],
            )
        return _Plan(node, [{"kind": "condition", "text": text}])
    actions = [
        action
        for action in read_actions(text, quote=text, tools=tools, agents=agents)
        if action.kind != "goto"
    ] or [Action("action", text, text)]
    ends_here = not edges or all(_generic_end(chart, e.target) for e in edges)
    parts: list[dict[str, object]] = []
    terminal = False
    for action in actions:
        part = _action_part(action, out)
        parts.append(part)
        if part["kind"] in ("escalate", "handoff", "resolve"):
            if ends_here:
                terminal = True
                break
            part["kind"] = "action"  # the flowchart goes on after it: no transfer here
    plain = len(parts) == 1 and parts[0]["kind"] == "action"
    if not edges and node.kind == "end" and not terminal and (generic_terminal(text) or plain):
        parts = [{"kind": "resolve", "text": RESOLVE_TEXT if generic_terminal(text) else text}]
        terminal = True
    return _Plan(node, parts, terminal=terminal)


def _generic_end(chart: Flowchart, node_id: str) -> bool:
    node = chart.node(node_id)
    return node is not None and node.kind == "end" and generic_terminal(node.text)


def _action_part(action: Action, out: FlowchartSteps) -> dict[str, object]:
    text = action.text.strip()
    if action.kind == "tool_call" and action.tool is not None:
        tool = action.tool.tool
        args, _ = bind_arguments(tool, action=text, condition=None, known=[], team=action.target)
        return {
            "kind": "tool_call",
            "text": text,
            "tool_call": ToolCall(tool=tool.name, arguments=args),
        }
    if action.kind in ("escalate", "handoff"):
        return {"kind": action.kind, "text": text, "target": action.target}
    if action.kind in ("resolve", "ask"):
        return {"kind": action.kind, "text": text}
    first = text.split(None, 1)[0].casefold() if text.split() else ""
    if action.proposed is not None:
        name, access = action.proposed
        if not any(tool.name == name for tool in out.proposed):
            out.proposed.append(ProposedTool(name=name, description=text, access=access))
    return {"kind": "say" if first in _SAY_WORDS else "action", "text": text}


def _branch(
    node: FlowNode, edges: list[FlowEdge], goto: Callable[[str], str], out: FlowchartSteps
) -> dict[str, object]:
    labels = [(edge.label or "").strip() for edge in edges]
    for edge, label in zip(edges, labels, strict=True):
        if not label:
            out.questions.append(
                f"Flowchart: a branch of {node.text!r} (to {edge.target}) has no label; "
                "check which answer it stands for."
            )
    yes = [e for e, label in zip(edges, labels, strict=True) if label and _YES.match(label)]
    no = [e for e, label in zip(edges, labels, strict=True) if label and _NO.match(label)]
    unlabelled = [e for e, label in zip(edges, labels, strict=True) if not label]
    if len(edges) == 2 and len(yes) == 1 and len(no) + len(unlabelled) == 1:
        other = no[0] if no else unlabelled[0]  # an unlabelled other arrow is "no" (flagged)
        return {
            "kind": "condition",
            "condition": Condition(
                test=node.text,
                then_step=goto(yes[0].target),
                else_step=goto(other.target),
            ),
        }
    cases = []
    default: str | None = None
    for edge, label in zip(edges, labels, strict=True):
        target = goto(edge.target)
        if label and _OTHER.match(label) and default is None:
            default = target
            continue
        cases.append(Case(when=label or f"(unlabelled branch to {edge.target})", goto=target))
    if default is None:
        default = cases[-1].goto  # every drawn branch is a case; none falls through
    return {"kind": "switch", "switch": Switch(subject=node.text, cases=cases, default=default)}


def _one_branch(
    node: FlowNode,
    edge: FlowEdge,
    goto: Callable[[str], str],
    missing: Callable[[str], str],
    out: FlowchartSteps,
) -> dict[str, object]:
    """A decision with one arrow out: the drawn answer goes on, the other is to review."""
    label = (edge.label or "").strip()
    negative = bool(label and _NO.match(label))
    other = "yes" if negative else "no"
    out.questions.append(
        f"Flowchart: the decision {node.text!r} has one branch ({label or 'unlabelled'}); "
        f"the flowchart does not say what to do for {other!r}."
    )
    gap = missing(f"The flowchart draws no {other!r} branch for: {node.text}")
    drawn = goto(edge.target)
    then_step, else_step = (gap, drawn) if negative else (drawn, gap)
    return {
        "kind": "condition",
        "condition": Condition(test=node.text, then_step=then_step, else_step=else_step),
    }
