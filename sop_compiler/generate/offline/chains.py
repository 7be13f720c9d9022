"""Alternative cases of one step ("If A ..." / "If B ..."): finding them and wiring if/else-if."""

from __future__ import annotations

import re

from sop_compiler.generate.offline.nodes import Builder, CaseGroup, Node, after_all, branch_end
from sop_compiler.generate.offline.phrases import read_clause
from sop_compiler.generate.offline.sections import Unit
from sop_compiler.models import TERMINAL_KINDS
from sop_compiler.text import split_sentences

_FAILED = re.compile(
    r"\b(?:fails?|failed|neither|nothing works|does not work|did not work|unsuccessful)\b",
    re.IGNORECASE,
)


def case_runs(builder: Builder, children: list[Unit]) -> list[int | None]:
    """For each sub-item, the run of alternative cases it belongs to (None: no such run).

    Sibling sub-items at one depth that each open with a condition ("If the amount is
    wrong, ..." / "If the name is wrong, ..." / "For a partial refund, ...") are cases of
    their step: only one of them applies.
    """
    opens = []
    for child in children:
        first = next(iter(split_sentences(child.text)), "")
        clause = read_clause(first, tools=builder.tools, agents=builder.agents)
        opens.append(
            child.numbered  # loose paragraphs under a step are notes, not its listed cases
            and clause.test is not None
            and not clause.is_else
            and not clause.is_yes
        )
    out: list[int | None] = [None] * len(children)
    start = 0
    while start < len(children):
        end = start
        while (
            end + 1 < len(children)
            and opens[start]
            and opens[end + 1]
            and children[end + 1].depth == children[start].depth
        ):
            end += 1
        if end > start:
            out[start : end + 1] = [start] * (end - start + 1)
        start = end + 1
    return out


def alternative_cases(group: CaseGroup) -> list[list[Node]]:
    """The group's cases, or none when the sub-items are fallbacks of the step itself.

    "If the customer cannot access their email, use `sms_code` instead." changes how the step
    is done, and "If verification fails three times, ..." checks how it went: the checks after
    a fallback still apply, so such sub-items are no alternatives.
    """
    for index, member in enumerate(group.members):
        head = next((n for n in member if n.kind == "condition"), None)
        if head is None or (index and _FAILED.search(head.test or "")):
            return []
        if index < len(group.members) - 1 and (head.else_nodes or head.else_goto):
            return []  # "If A, X. Otherwise, Y." is a whole if/else, not one case of several
    for member in group.members[:-1]:
        last = member[-1]
        falls = last.kind not in TERMINAL_KINDS and last.goto is None
        if falls and any(re.search(r"\binstead\b", n.text, re.IGNORECASE) for n in member):
            return []
    return group.members


def chain(
    builder: Builder, group: CaseGroup, after: dict[int, Node | None], closing: Node | None
) -> None:
    """Wire alternative cases as if / else-if / else: each case ends after the group."""
    members = group.members
    last_head = next(n for n in members[-1] if n.kind == "condition")
    # the step after the group: past the last case's otherwise ("c. Otherwise, Y."), if it has one
    if last_head.else_nodes:
        end = after[last_head.else_nodes[-1].uid] or closing
    else:
        end = after_all(members[-1], after) or closing
    falls = False
    for index, member in enumerate(members):
        head = next(n for n in member if n.kind == "condition")
        following = members[index + 1][0] if index + 1 < len(members) else None
        if following is None:
            falls = falls or _continues_to(member, end, after, builder.keys)
            # (when the step after them is itself a check, the SOP goes on deciding there)
            checks_on = end is not None and end.kind == "condition"
            if not head.else_nodes and head.else_goto is None and not checks_on:
                count = len(members)
                question = (
                    f"the SOP does not say what to do when none of its {count} cases applies; "
                    "the routine goes on with the step after them."
                )
                builder.questions.append((f"Step {{step}}: {question}", group.anchor or head))
            break
        if not head.else_nodes and head.else_goto is None and head.else_jump is None:
            head.else_jump = following
        for node in member:
            if node.jump is following:
                node.jump, falls = end, True
            elif node.kind == "condition":
                if (
                    node is not head
                    and not node.else_nodes
                    and node.else_goto is None
                    and node.else_jump is None
                    and branch_end(node, after) is following
                ):
                    node.else_jump, falls = end, True
            elif (
                node.kind not in TERMINAL_KINDS
                and node.goto is None
                and node.jump is None
                and after[node.uid] is following
            ):
                node.jump, falls = end, True
            elif node.goto is not None and builder.keys.get(node.goto.casefold()) is end:
                falls = True


def _continues_to(
    member: list[Node], end: Node | None, after: dict[int, Node | None], keys: dict[str, Node]
) -> bool:
    """True when some path through the case goes on to the step after the group."""
    for node in member:
        if node.kind in TERMINAL_KINDS:
            continue
        if node.goto is not None:
            if keys.get(node.goto.casefold()) is end:
                return True
        elif (node.jump or after[node.uid]) is end and node.kind != "condition":
            return True
    return False
