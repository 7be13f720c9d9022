"""Numbering: nodes become the routine's numbered Steps, with every target and question resolved."""

from __future__ import annotations

import re

from sop_compiler.generate.offline.chains import chain
from sop_compiler.generate.offline.endings import end_paths
from sop_compiler.generate.offline.nodes import Builder, Node, branch_end
from sop_compiler.generate.offline.sections import cited
from sop_compiler.models import (
    TERMINAL_KINDS,
    Condition,
    RoutineDraft,
    SourceRef,
    Step,
    ToolArgument,
)
from sop_compiler.models.routine import walk_steps
from sop_compiler.paths import enumerate_paths

_VAGUE = re.compile(
    r"\b(?:as appropriate|where appropriate|if appropriate|as needed|if needed|if necessary|"
    r"as necessary|where necessary|at your discretion|use your (?:judgement|judgment)|"
    r"as soon as possible|asap|in a timely manner|reasonable)\b",
    re.IGNORECASE,
)
_THRESHOLD = re.compile(
    r"\b(?:an?\s+)?(?:large|high|big|significant|excessive|substantial|unusual|long|small|low|"
    r"high-value|several|many)\s+(?:amount|value|refund|order|number|delay|time|balance|sum|"
    r"credit|charge|discount|orders|refunds|attempts|days)\b|\btoo many\b",
    re.IGNORECASE,
)


_IN_STEP = re.compile(r"\bin step (\w+)\b")


def unpassed_refs(draft: RoutineDraft) -> RoutineDraft:
    """`draft` with every argument that names an earlier step ("the same claim number as in
    step 2b") re-said where some path reaches the call without passing that step (2b sits in
    a branch that ended): as that step said it ("the claim number returned by `find_claim` in
    step 1") when that source is passed, else as coming from the conversation. A value is
    never taken from a step that may not have run."""
    steps = {step.id: step for step in walk_steps(draft.steps)}
    citing: dict[str, set[str]] = {}  # step -> the steps its arguments name
    for step in steps.values():
        texts = [a.from_context or "" for a in step.tool_call.arguments] if step.tool_call else []
        if ids := {found.group(1) for text in texts for found in _IN_STEP.finditer(text)}:
            citing[step.id] = ids
    if not citing:
        return draft
    paths = enumerate_paths(draft, limit=1000)
    if not paths.complete:
        return draft
    named = set().union(*citing.values())  # a chain's every hop is a citing step's argument
    reached: set[str] = set()  # the steps some path passes
    always: dict[str, set[str]] = {}  # citing step -> named steps passed before it on every path
    for path in paths.paths:
        passed: set[str] = set()  # only named steps: a copy per citing step, not per step
        for on in path.steps:
            reached.add(on.step_id)
            if on.step_id in citing:
                seen = always.get(on.step_id)
                always[on.step_id] = set(passed) if seen is None else seen & passed
            if on.step_id in named:
                passed.add(on.step_id)

    def source(step_id: str, arg: ToolArgument) -> str | None:
        """Where the argument's value comes from, said with a step every path passes."""
        text, hops = arg.from_context, 0
        while text and (cited := _IN_STEP.search(text)) and cited.group(1) not in always[step_id]:
            earlier = steps.get(cited.group(1))
            same = [
                a
                for a in (earlier.tool_call.arguments if earlier and earlier.tool_call else [])
                if a.name == arg.name and a.from_context
            ]
            hops += 1
            if not same or not _IN_STEP.search(same[0].from_context or "") or hops > len(steps):
                # "the account number this step names" is said of that step, not of this one
                return f"the {_spoken(arg.name)} from the conversation"
            text = same[0].from_context
        return text

    def fix(step: Step) -> Step:
        call = step.tool_call
        if call is not None and step.id in reached:
            arguments = [
                a.model_copy(update={"from_context": source(step.id, a)}) for a in call.arguments
            ]
            if arguments != call.arguments:
                call = call.model_copy(update={"arguments": arguments})
        return step.model_copy(
            update={"tool_call": call, "substeps": [fix(sub) for sub in step.substeps]}
        )

    return draft.model_copy(update={"steps": [fix(step) for step in draft.steps]})


def _spoken(param: str) -> str:
    return " ".join("ID" if w == "id" else w for w in param.split("_"))


def finish(builder: Builder, top: list[Node]) -> tuple[list[Step], list[str]]:
    """Number the nodes, resolve every target, add closing steps when a path needs them.

    Returns the steps and the open questions found while doing so.
    """
    top, after, closing = end_paths(builder, top)
    for group in builder.groups:
        chain(builder, group, after, closing)
    builder.ids = _number(top)
    steps = [_step(builder, node, after) for node in top]
    return steps, _questions(builder)


def _step(builder: Builder, node: Node, after: dict[int, Node | None]) -> Step:
    condition = None
    if node.kind == "condition":
        then_step = (
            _id(builder, node.then_nodes[0])
            if node.then_nodes
            else _key(builder, node.then_goto, node) or _id(builder, after[node.uid])
        )
        if node.else_jump is not None:
            else_step: str | None = _id(builder, node.else_jump)
        elif node.else_goto:
            else_step = _key(builder, node.else_goto, node)
        elif node.else_nodes:
            else_step = _id(builder, node.else_nodes[0])
        elif node.outer is not None:
            else_step = _id(builder, _past(node.outer, after))  # "If X, A if Y": not Y, go on
        elif node.then_nodes:
            last = node.then_nodes[-1]
            # the follow-up closes its enclosing branch: that branch ends where its own does
            inner = any(
                node in other.then_nodes and other.then_nodes[-1] is last
                for other in builder.nodes
                if other is not node
            )
            # "3. If nothing is free, offer the list. If they accept, add them. 4. Otherwise,
            # book": a follow-up's "no" goes where its branch goes, past the otherwise
            jumps = (
                inner
                and last.jump is not None
                and last.kind not in TERMINAL_KINDS
                and not last.stops
            )
            else_step = _id(builder, last.jump if jumps else branch_end(node, after))
        else:
            else_step = None  # a jump when the test holds; otherwise the next step
        condition = Condition(
            test=_fill(builder, node.test or "", node), then_step=then_step, else_step=else_step
        )
        if then_step and then_step == (else_step or _id(builder, after.get(node.uid))):
            return _same_sides(builder, node, condition, after)
    tool_call = node.tool_call
    if tool_call is not None and node.arg_refs:
        tool_call = tool_call.model_copy(
            update={
                "arguments": [
                    arg.model_copy(
                        update={
                            "from_context": arg.from_context.replace(
                                "{step}", _id(builder, node.arg_refs[arg.name])
                            )
                        }
                    )
                    if arg.from_context and arg.name in node.arg_refs
                    else arg
                    for arg in tool_call.arguments
                ]
            }
        )
    next_step = None
    if node.kind not in TERMINAL_KINDS and node.kind != "condition":
        if node.jump is not None:
            next_step = _id(builder, node.jump)
        elif node.goto is not None:
            next_step = _key(builder, node.goto, node)
    return Step(
        id=builder.ids[node.uid],
        kind=node.kind,
        text=_fill(builder, node.text, node),
        tool_call=tool_call,
        condition=condition,
        target=node.target,
        confirm=node.confirm,
        next_step=next_step,
        substeps=[_step(builder, child, after) for child in node.children],
        source=SourceRef(block_ids=cited(node.block_id), quote=node.quote or "")
        if node.block_id
        else None,
    )


def _past(node: Node, after: dict[int, Node | None]) -> Node | None:
    """The step after a whole condition: past its otherwise-side, or else its then-side."""
    last = node.else_nodes[-1] if node.else_nodes else None
    if last is None:
        return branch_end(node, after)
    return last.jump or after[last.uid]


def _same_sides(
    builder: Builder, node: Node, condition: Condition, after: dict[int, Node | None]
) -> Step:
    """A condition whose two sides lead to the same step ("If the form is complete, go to step
    7. Otherwise, continue with step 7.") tests nothing as read: it is one action step that checks
    the test (citing the SOP's words), with an open question, never a condition whose answer
    changes nothing."""
    step_id = builder.ids[node.uid]
    builder.questions.append(
        (
            f'Step {step_id}: both sides of the test "{condition.test}" lead to step '
            f"{condition.then_step}, so the offline compiler could not tell what the test "
            "changes; the step only checks it. Review the SOP's words (or compile with a model).",
            None,
        )
    )
    return Step(
        id=step_id,
        kind="action",
        text=_fill(builder, node.text, node),
        substeps=[_step(builder, child, after) for child in node.children],
        source=SourceRef(block_ids=cited(node.block_id), quote=node.quote or "")
        if node.block_id
        else None,
    )


def _id(builder: Builder, node: Node | None) -> str:
    return builder.ids[node.uid] if node is not None else ""


def _fill(builder: Builder, text: str, node: Node) -> str:
    return (
        text.replace("{step}", _id(builder, node.text_ref)) if node.text_ref is not None else text
    )


def _key(builder: Builder, key: str | None, node: Node) -> str | None:
    """The id of the step the SOP numbers `key`; None (and an open question) if none."""
    if key is None:
        return None
    target = builder.keys.get(key.casefold())
    if target is None:
        # Often a step of a sibling procedure of the same document: never guess a target.
        question = f"refers to step {key}, which is not part of this procedure; it continues"
        builder.questions.append((f"Step {{step}} {question} with the next step instead.", node))
        return None
    return builder.ids[target.uid]


def _questions(builder: Builder) -> list[str]:
    out: list[str] = []
    for text, node in builder.questions:
        line = text.replace("{step}", builder.ids[node.uid]) if node is not None else text
        if line not in out:
            out.append(line)
    return out


def _letters(index: int) -> str:
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(ord("a") + rem) + out
    return out


def _number(top: list[Node]) -> dict[int, str]:
    ids: dict[int, str] = {}
    for position, node in enumerate(top, start=1):
        ids[node.uid] = str(position)
        for sub, child in enumerate(node.children):
            ids[child.uid] = f"{position}{_letters(sub)}"
    return ids


def vague_questions(step: Step) -> list[str]:
    """Open questions for vague wording and undefined thresholds in a step's source sentence."""
    source = step.source.quote if step.source else ""
    text = f"{step.text} {source}"
    out: list[str] = []
    if match := _VAGUE.search(text):
        out.append(f'Step {step.id} says "{match.group(0)}": the SOP does not say when or how.')
    if match := _THRESHOLD.search(text):
        out.append(
            f'Step {step.id} mentions "{match.group(0)}": the SOP does not define the threshold.'
        )
    return out
