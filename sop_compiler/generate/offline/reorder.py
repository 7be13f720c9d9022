"""Reordering: an approval the SOP writes after the action it guards moves in front of it."""

from __future__ import annotations

import re

from sop_compiler.generate.offline.nodes import BEFORE, OUTCOME, Builder, Node, flatten
from sop_compiler.generate.offline.phrases import APPROVER, END, NOT_PROCEED
from sop_compiler.models import TERMINAL_KINDS

# "before you submit the evidence" names the action an SOP may call "upload the evidence pack"
_SAME_ACTION = {
    "submit": ("upload", "send", "file"),
    "reship": ("ship", "send", "replace"),
    "refund": ("issue",),
    "pay": ("refund", "issue", "settle", "process"),
    "settle": ("pay",),
    "process": ("refund", "issue"),
    "close": ("delete",),
}


# "do not create the engagement yourself" in a branch: the branch refuses that action
# ("there's no charge" in a branch refuses the charge the step makes)
_REFUSED = re.compile(
    r"^(?:do\s+not|don't|never|there(?:'s|\s+is)\s+no)\s+(?P<verb>[a-z]+)\b", re.IGNORECASE
)


# "Door opens but the compartment is empty: do not open it again": a refusal of doing again
# what was done, which stays after the call it follows
_AGAIN = re.compile(r"\b(?:again|twice|a\s+(?:second|third)\s+time|once\s+more)\b", re.I)


def approvals_first(builder: Builder, top: list[Node]) -> list[Node]:
    """Move "if X, escalate ... before you reship" in front of the reship it guards, and
    "if X, do not reship it: ..." in front of the reship it refuses.

    SOPs often add the approval or the exception after the action it is for ("Reship the
    order. If the total is over $300, escalate for approval before you reship."); the agent
    must test first.
    """
    ticket = builder.tools.ticket_tool()
    for node in flatten(top):
        calls_ticket = node.tool_call is not None and node.tool_call.tool == (
            ticket.name if ticket else None
        )
        before = BEFORE.search(node.text)
        if before is not None and (node.kind == "escalate" or calls_ticket):
            top = _move_before(top, node, before.group("verb").casefold())
        elif (
            node.kind == "say"
            and (refused := _REFUSED.match(node.text))
            and not _AGAIN.search(node.text)
        ):
            # "Create the engagement. For business returns, do not create the engagement
            # yourself: assign it to a Senior Reviewer": the test comes before the call
            verb = refused.group("verb").casefold()
            order = flatten(top)
            top = _move_before(top, node, verb, same_step=True)
            if flatten(top) != order and refused.group().casefold().startswith("there"):
                _skip_refused(top, node, verb)  # "there's no fee": the charge is not made
        elif (
            node.kind == "condition"
            and node.then_nodes
            and (over := _THRESHOLD.match(node.test or ""))
        ):
            top = _threshold_first(builder, top, node, over.group("thing"))
    return _stops_first(builder, top)


def _stops_first(builder: Builder, top: list[Node]) -> list[Node]:
    """ "3.6 Where the Tenant declares any such goods, the letting shall not proceed", written
    after the steps that let the unit: a step whose case stops the request moves in front of
    the first step that writes, so that nothing is done before it is tested."""
    grouped = {id(m[0]) for g in builder.groups for m in g.members if m}
    for index, step in enumerate(list(top)):
        tests = [
            node
            for node in flatten([step])
            if node.kind == "condition" and not OUTCOME.search(node.test or "")
        ]  # "if the card is declined" is tested after the payment
        stops = any(
            n.goto == END and NOT_PROCEED.match(n.text) for node in tests for n in node.then_nodes
        )
        # "Where there is a court order, do not add anyone; transfer the request ...", after
        # the step that adds the collector: the case that refuses a write comes before it
        refused = {
            verb
            for node in tests
            # a step of its own (or a paragraph under a step that leads no cases); a case of
            # a group is the other side of its siblings' tests, wired where it is
            if (node is step or (node in step.children and not _leads_cases(step)))
            and id(node) not in grouped
            and any(n.kind in TERMINAL_KINDS or n.goto == END for n in node.then_nodes)
            for n in node.then_nodes
            if (m := _REFUSED.match(n.text)) and (verb := m["verb"].casefold())
        }
        if not stops and not refused:
            continue  # the walk back is for the few steps that stop or refuse (issue 17)
        first = next(
            (
                at
                for at, other in enumerate(top[:index])
                if any(
                    _writes(builder, n) and (stops or _does(n, refused)) for n in flatten([other])
                )
            ),
            None,
        )
        if first is not None:
            top = [*top[:first], step, *[n for n in top[first:] if n is not step]]
    return top


def _leads_cases(step: Node) -> bool:
    """ "3. Work out the amount:" over its cases, or a step that tests a case itself."""
    return step.kind == "condition" or step.text.rstrip().endswith(":")


def _writes(builder: Builder, node: Node) -> bool:
    tool = builder.tools.catalog.get(node.tool_call.tool) if node.tool_call else None
    return tool is not None and tool.access == "write"


# "the refund is more than £1,500": a test of the amount of the thing some step does
_THRESHOLD = re.compile(
    r"^the\s+(?:[\w-]+\s+)?(?P<thing>[a-z]+?)(?:ment)?\s+is\s+(?:over|above|more\s+than|"
    r"exceeding|in\s+excess\s+of)\s+(?:[£$€]|(?:GBP|USD|EUR)\s)",
    re.IGNORECASE,
)
_INSTEAD = re.compile(r"\b(?:instead|rather\s+than)\b", re.IGNORECASE)


def _threshold_first(builder: Builder, top: list[Node], cond: Node, thing: str) -> list[Node]:
    """ "Refunds of more than £1,500 are approved by the Marina Manager before payment: raise
    them to the Marina Manager rather than paying them yourself", written after the refund: the
    test moves in front of the refund it is about, when its side asks for the approval or hands
    the case over; a side that does so instead of the refund ends there."""
    approval = builder.tools.catalog
    hands = [
        n
        for n in cond.then_nodes
        if n.kind == "escalate"
        or _INSTEAD.search(n.text)
        or APPROVER.search(n.text)  # "request your team lead's sign-off", no tool reaching them
        or (n.tool_call is not None and "approv" in n.tool_call.tool)
        or (
            n.tool_call is not None
            and (tool := approval.get(n.tool_call.tool)) is not None
            and "approv" in tool.description.casefold()
        )
    ]
    if not hands:
        return top
    before = flatten(top)
    said = " ".join(n.text for n in [cond, *cond.then_nodes])
    top = _move_before(
        top,
        cond.then_nodes[0],
        thing.casefold(),
        reach=len(before),
        # "Refunds over £300 need the duty manager's OK before you process them", a step of
        # its own after the refund's: the SOP says the order, so the test moves before it
        across_steps=BEFORE.search(said) is not None,
    )
    moved = flatten(top) != before
    last = cond.then_nodes[-1]
    instead = any(n.kind == "escalate" or _INSTEAD.search(n.text) for n in hands)
    if moved and instead and last.kind not in TERMINAL_KINDS and last.goto is None:
        last.goto = END  # "... rather than paying them yourself": the refund is not made
    return top


def _move_before(
    top: list[Node],
    node: Node,
    verb: str,
    *,
    same_step: bool = False,
    reach: int = 6,
    across_steps: bool = False,
) -> list[Node]:
    """Move the block of `node` (its guard and branch) in front of the call it is for; with
    `same_step`, only within the step that holds the block; with `across_steps`, a block that is
    a step of its own also moves in front of the step that makes the call."""
    flat = flatten(top)
    owners = [c for c in flat if c.kind == "condition" and node in c.then_nodes]
    guard = min(owners, key=lambda c: len(c.then_nodes), default=None)
    block = [guard, *guard.then_nodes] if guard is not None else [node]
    start = flat.index(block[0])
    if flat[start : start + len(block)] != block:
        return top
    verbs = {verb, *_SAME_ACTION.get(verb, ())}
    target = next(
        (
            n
            for n in reversed(flat[max(0, start - reach) : start])
            if n.kind != "condition" and _does(n, verbs)
        ),
        None,
    )
    if target is None:
        return top
    lists = [c.then_nodes for c in flat if c not in block] + [
        c.else_nodes for c in flat if c not in block
    ]
    if any(block[0] in nodes and target not in nodes for nodes in lists):
        return top  # moving it would take it out of its branch
    if same_step and any(target in nodes and block[0] not in nodes for nodes in lists):
        return top  # "If there is space, book it. If the room is full, do not book": other case
    parent = next((p for p in top if target in p.children), None)
    if parent is None and target in top and block[0] in target.children and not same_step:
        # "2. Refund the item. You can refund up to £25; over £25, raise a ticket instead": the
        # step's own call, its band tested first (the step opens with the test)
        return _test_first(top, block, target)
    if parent is None and across_steps and target in top and block[0] in top:
        if block[0].children != block[1:]:
            return top
        kept = [n for n in top if n is not block[0]]
        at = kept.index(target)
        return [*kept[:at], block[0], *kept[at:]]
    if parent is None:
        return top  # the action is a step of its own: keep the SOP's order
    if same_step and block[0] not in parent.children:
        return top  # "Don't apply anything yourself" refuses the apply of its own step only
    moved_top = block[0] in top
    if moved_top and block[0].children != block[1:]:
        return top
    top = [n for n in top if n is not block[0]]
    for holder in top:
        holder.children = [n for n in holder.children if n not in block]
    block[0].children = []
    for n in block:
        n.level = 1
    at = parent.children.index(target)
    parent.children[at:at] = block
    for nodes in lists:
        if target in nodes:
            kept = [n for n in nodes if n not in block]
            at = kept.index(target)
            nodes[:] = [*kept[:at], *[n for n in block if n not in kept], *kept[at:]]
    return top


def _skip_refused(top: list[Node], node: Node, verb: str) -> None:
    """After "Where the customer took Care Cover, there's no fee" moved in front of the charge
    it refuses, its branch goes on past that charge, never into it."""
    flat = flatten(top)
    owners = [c for c in flat if c.kind == "condition" and node in c.then_nodes]
    guard = min(owners, key=lambda c: len(c.then_nodes), default=None)
    last = guard.then_nodes[-1] if guard is not None else node
    at = flat.index(last)
    target = flat[at + 1] if at + 1 < len(flat) else None
    if (
        target is None
        or target.kind == "condition"
        or not _does(target, {verb, *_SAME_ACTION.get(verb, ())})
    ):
        return  # only the refused call right after the branch is skipped
    if last.kind in TERMINAL_KINDS or last.goto is not None or last.jump is not None:
        return
    following = flat[at + 2] if at + 2 < len(flat) else None
    if following is None:
        last.goto = END
    else:
        last.jump = following


def _does(node: Node, verbs: set[str]) -> bool:
    """True when the step's action is one of the verbs (or calls a tool named by one)."""
    first = node.text.split(None, 1)[0].casefold().strip(",.:") if node.text.split() else ""
    tool = node.tool_call.tool.split("_") if node.tool_call is not None else []
    return first in verbs or any(verb in tool for verb in verbs)


def _test_first(top: list[Node], block: list[Node], target: Node) -> list[Node]:
    """`top` with step `target`'s call after the test `block` opens (`block[0]` heads the
    step): the test, its side, then the call and the rest of the step."""
    rest = [n for n in target.children if n not in block]
    head = block[0]
    head.level, head.children = 0, [*block[1:], target, *rest]
    target.children = []
    for n in head.children:
        n.level = 1
    at = top.index(target)
    return [*top[:at], head, *top[at + 1 :]]
