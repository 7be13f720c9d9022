"""Branch endings: closing steps, branches that end the case, and otherwise-branches left open."""

from __future__ import annotations

import re
from itertools import pairwise

from sop_compiler.generate.offline.nodes import (
    ANYTHING_ELSE,
    CLOSING_ASK,
    RESOLVE,
    Builder,
    Node,
    after_all,
    after_map,
    branch_end,
    flatten,
)
from sop_compiler.generate.offline.phrases import END, HANDED_OVER
from sop_compiler.models import TERMINAL_KINDS

# "explain that it cannot be reopened", "there is nothing more to set up": the request stops here
_DEAD_END = re.compile(
    r"\b(?:cannot be|can't be|can not be|is not possible|is no longer possible|not eligible|"
    r"nothing more to|no further action|nothing (?:else )?to do|nothing can be done)\b",
    re.IGNORECASE,
)


def end_paths(
    builder: Builder, top: list[Node]
) -> tuple[list[Node], dict[int, Node | None], Node | None]:
    """Make every path end: add the closing steps a path needs and end branches that stop.

    Returns the top-level nodes (with any closing steps), what follows each node, and the
    closing "anything else?" step (None when every path already ends).
    """
    top = _go_on_after_hand_overs(top)
    flat = flatten(top)
    after = after_map(flat)
    dead = _dead_ends(flat)
    if (
        not flat
        or flat[-1].kind not in TERMINAL_KINDS
        or any(_falls_off(n, after) for n in flat)
        or dead
        or any(after_all(g.members[-1], after) is None for g in builder.groups)
    ):
        last = flat[-1] if flat else None
        if last is not None and last.kind == "ask" and ANYTHING_ELSE.search(last.text):
            closing = last  # the SOP's own "anything else?" step closes it: only resolve
            top = [*top, builder.node("resolve", RESOLVE)]
        else:
            closing = _new_closing(builder)
            top = [*top, *_close(builder, closing)]
        flat = flatten(top)
        after = after_map(flat)
    else:
        closing = None
    closing = _end_explicit_branches(builder, flat, after, closing)
    if closing is not None and closing not in flat:
        top = [*top, *_close(builder, closing)]
        flat = flatten(top)
        after = {**after_map(flat), **{k: v for k, v in after.items() if v is closing}}
    for last in dead:
        if last.jump is None and after[last.uid] is not closing:
            # "explain that it cannot be reopened": nothing else follows
            last.jump = _wrap_up(flat, last, closing)
    for node in flat:
        if node.kind != "condition":
            continue
        if node.else_nodes and node.then_nodes:
            last = node.then_nodes[-1]
            if last.kind not in TERMINAL_KINDS and last.goto is None and last.jump is None:
                # past the otherwise: where its last step goes on as the end of an outer
                # branch (not where a dead end or a refusal stops: "Yes: make the change.
                # No: do not change it." goes on after the yes)
                other = node.else_nodes[-1]
                ends_outer = other.jump is not None and other not in dead and not other.stops
                last.jump = other.jump if ends_outer else after[other.uid]
        elif (
            not node.else_nodes
            and node.else_goto is None
            and branch_end(node, after) in (None, closing)
        ):
            question = f'the SOP does not say what to do when "{node.test}" does not hold.'
            builder.questions.append((f"Step {{step}}: {question}", node))
    return top, after, closing


def _go_on_after_hand_overs(top: list[Node]) -> list[Node]:
    """Drop the end after a hand-over call that the SOP's own list goes on from: "c. Pass it to
    the Food Safety team. d. Add the allergen flag as well." The call hands the case over and
    the agent still does d; ending the routine at c would leave d where no path reaches it."""
    flat = flatten(top)
    after = after_map(flat)
    reached = {id(n.jump) for n in flat if n.jump is not None}
    reached |= {id(n.else_jump) for n in flat if n.else_jump is not None}
    # a case with no otherwise goes on past its then-side when its test fails
    reached |= {
        id(after[n.then_nodes[-1].uid])
        for n in flat
        if n.then_nodes and not n.else_nodes and n.else_jump is None
    }
    reached |= {id(branch[0]) for n in flat for branch in (n.then_nodes, n.else_nodes) if branch}
    branches = [b for n in flat for b in (n.then_nodes, n.else_nodes) if b]
    lists = [top, *(n.children for n in flat if n.children)]

    def together(node: Node, following: Node) -> bool:
        """In the same branch of a case (or in the same list, outside every case): never the
        end of a case and a step its otherwise was meant to be ("..., refer it to the Team
        Leader" and "Issue the refund")."""
        home = next((b for b in branches if node in b), None)
        if home is not None:
            return following in home
        return not any(following in b for b in branches) and any(
            node in each and following in each for each in lists
        )

    ends = [
        node
        for before, node in pairwise(flat)
        if node.kind == "escalate"
        and node.text.startswith(HANDED_OVER)
        and before.tool_call is not None
        and (following := after[node.uid]) is not None
        and id(following) not in reached
        and together(node, following)
    ]
    if not ends:
        return top
    said = [n for n in ends if n.text[len(HANDED_OVER) :].strip()]
    for node in said:
        # "They call back within 2 hours": the SOP's words after the hand-over stay, said
        node.kind, node.target = "say", None
        node.text = node.text[len(HANDED_OVER) :].strip()
    ends = [n for n in ends if n not in said]
    for node in flat:
        node.children = [n for n in node.children if n not in ends]
        node.then_nodes = [n for n in node.then_nodes if n not in ends]
        node.else_nodes = [n for n in node.else_nodes if n not in ends]
    return [n for n in top if n not in ends]


def _end_explicit_branches(
    builder: Builder, flat: list[Node], after: dict[int, Node | None], closing: Node | None
) -> Node | None:
    """End a branch whose otherwise says "continue with step N", N being what follows it.

    "If there are open orders, explain why. Otherwise, continue with step 5." means the
    branch does not go on to step 5: it ends the case (the closing "anything else" step).
    Returns the closing step (made here when the routine had none yet).
    """
    keyed = {id(node) for node in builder.keys.values()}
    for node in flat:
        if node.goto == END:  # "follow CC-ACC-002": that SOP takes over; wrap this case up
            closing = closing or _closing(builder, flat)
            node.goto, node.jump, node.stops = None, _wrap_up(flat, node, closing), True
    for node in flat:
        # "Yes: no compensation, rebook it. No: rebook it, mark it PRIORITY, then go to 7.3.":
        # the otherwise's own last step goes on to step N, so the then-side does not
        otherwise = node.else_goto or (node.else_nodes[-1].goto if node.else_nodes else None)
        if node.kind != "condition" or not node.then_nodes or otherwise is None:
            continue
        target = builder.keys.get(otherwise.casefold())
        last = node.then_nodes[-1]
        goes_on = after.get(last.uid if node.else_goto else node.else_nodes[-1].uid)
        if target is None or goes_on is not target or id(target) not in keyed:
            continue
        closing = closing or _closing(builder, flat)
        after[last.uid] = closing
        if last.kind not in TERMINAL_KINDS and last.goto is None and last.jump is None:
            last.jump = closing
    return closing


def _closing(builder: Builder, flat: list[Node]) -> Node:
    """The SOP's own "anything else?" step, or a new one."""
    return next(
        (n for n in flat if n.kind == "ask" and ANYTHING_ELSE.search(n.text)), None
    ) or _new_closing(builder)


def _new_closing(builder: Builder) -> Node:
    """ "Anything else?" for a procedure that talks with a customer; else the case just ends."""
    if builder.customer_facing:
        return builder.node("ask", CLOSING_ASK)
    return builder.node("resolve", RESOLVE)


def _close(builder: Builder, closing: Node) -> list[Node]:
    """The closing step and the resolve after it (the closing step itself when it resolves)."""
    return [closing] if closing.kind == "resolve" else [closing, builder.node("resolve", RESOLVE)]


def _falls_off(node: Node, after: dict[int, Node | None]) -> bool:
    """True when some path from this condition runs past the last step."""
    if node.kind != "condition":
        return False
    if node.else_nodes:
        last = node.then_nodes[-1] if node.then_nodes else None
        return (
            last is not None
            and last.kind not in TERMINAL_KINDS
            and after[node.else_nodes[-1].uid] is None
        )
    return node.else_goto is None and branch_end(node, after) is None


_EITHER_WAY = re.compile(
    r"\b(?:either\s+way|in\s+either\s+case|in\s+both\s+cases|whatever\s+the\s+(?:outcome|"
    r"decision|result)|whether\s+(?:approved|accepted|granted)\s+or\s+(?:not|declined|refused))\b",
    re.IGNORECASE,
)


def _wrap_up(flat: list[Node], last: Node, closing: Node | None) -> Node | None:
    """Where a branch that ends the case goes: the closing steps, or first a later step the SOP
    says is done "either way" ("4. Record the decision on the account either way")."""
    later = flat[flat.index(last) + 1 :]
    both = next((n for n in later if n.level == 0 and _EITHER_WAY.search(n.text)), None)
    return both or closing


def _dead_ends(flat: list[Node]) -> list[Node]:
    """Last steps of branches that say the request cannot go on; such a branch wraps the case up."""
    out: list[Node] = []
    for node in flat:
        if node.kind != "condition":
            continue
        for branch in (node.then_nodes, node.else_nodes):
            if not branch or not any(n.kind == "say" and _DEAD_END.search(n.text) for n in branch):
                continue
            last = branch[-1]
            if last.kind not in TERMINAL_KINDS and last.goto is None and last not in out:
                out.append(last)
    return out
