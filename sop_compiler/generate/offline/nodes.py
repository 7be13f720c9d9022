"""Nodes (routine steps before they are numbered), the state the offline passes share, and walks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sop_compiler.generate.offline.phrases import Action
from sop_compiler.generate.offline.tools import Known, ToolIndex
from sop_compiler.models import ToolCall

_QUOTE_WORDS = 20
ANYTHING_ELSE = re.compile(r"\banything else\b", re.IGNORECASE)
CLOSING_ASK = "Ask whether there is anything else you can help with."
RESOLVE = "Resolve the case."
PROPOSED_NOTE = " (No catalog tool does this yet"  # how a step text flags its proposed tool
# "escalate ... for approval before you reship": the escalation comes before that action
BEFORE = re.compile(
    r"\bbefore\s+(?:you\s+|we\s+)?(?P<verb>[a-z]+)\b(?P<obj>(?:\s+(?!and\b|or\b|if\b)[a-z]+){0,3})",
    re.IGNORECASE,
)


# a test of how an earlier step went ("if the card is declined", "if the Refund Tool rejects
# the refund"), which can only be made after that step
OUTCOME = re.compile(
    r"\b(?:declin|fail|refus|bounc|reject|result|outcome|succeed|comes?\s+back|go(?:es)?\s+through|"
    r"went\s+through|approved|denied)",
    re.IGNORECASE,
)


@dataclass(eq=False)
class Node:
    """A step before it has its number."""

    uid: int
    kind: str
    text: str
    block_id: str | None = None
    quote: str | None = None
    level: int = 0
    tool_call: ToolCall | None = None
    arg_refs: dict[str, Node] = field(default_factory=dict)  # argument -> step its `{step}` names
    text_ref: Node | None = None  # the step `{step}` names in this step's text and test
    target: str | None = None
    test: str | None = None
    then_nodes: list[Node] = field(default_factory=list)
    else_nodes: list[Node] = field(default_factory=list)
    then_goto: str | None = None
    else_goto: str | None = None
    goto: str | None = None
    children: list[Node] = field(default_factory=list)
    proposed: tuple[str, str] | None = None
    jump: Node | None = None  # where to go after this step (end of an if-branch that has an else)
    else_jump: Node | None = None  # a condition's else target, when set by structure (a chain)
    outer: Node | None = None  # "If A and B, X. Otherwise, Y.": the condition A around B
    confirm: bool = False  # an ask for the customer's explicit yes to what comes next
    stops: bool = False  # its jump ends the case ("instead", "and wait", a stand-in refused)


@dataclass
class CaseGroup:
    """Sibling sub-items that are alternative cases of one step (If A ... / If B ... / If C ...)."""

    members: list[list[Node]]  # each case's nodes, its opening condition first
    anchor: Node | None = None  # the step they belong to (where an open question points)


@dataclass
class Builder:
    """The nodes of one procedure and what later steps and passes may refer to."""

    tools: ToolIndex
    agents: tuple[str, ...]
    nodes: list[Node] = field(default_factory=list)
    keys: dict[str, Node] = field(default_factory=dict)  # SOP step number -> node
    known: list[Known] = field(default_factory=list)
    questions: list[tuple[str, Node | None]] = field(default_factory=list)  # text with `{step}`
    skipped: list[str] = field(default_factory=list)  # possible injections left out
    ids: dict[int, str] = field(default_factory=dict)
    groups: list[CaseGroup] = field(default_factory=list)
    customer_facing: bool = True  # the procedure talks with a customer: close with "anything else?"
    rule_sentences: set[tuple[str, str]] = field(default_factory=set)  # (block, sentence): rules
    subject: str | None = None  # what "it" means in a task section: "reservation" in "Cancel a ..."
    targets: set[str] = field(default_factory=set)  # the step numbers a "go to step N" names

    def node(self, kind: str, text: str, **kw: object) -> Node:
        """A new node, numbered by creation order (its uid)."""
        node = Node(len(self.nodes), kind, text, **kw)  # type: ignore[arg-type]
        self.nodes.append(node)
        return node


def flatten(top: list[Node]) -> list[Node]:
    """Top-level nodes with their sub-steps, in execution order."""
    out: list[Node] = []
    for node in top:
        out.append(node)
        out += node.children
    return out


def after_map(flat: list[Node]) -> dict[int, Node | None]:
    """For each node (by uid), the node that follows it in order (None after the last)."""
    return {node.uid: (flat[i + 1] if i + 1 < len(flat) else None) for i, node in enumerate(flat)}


def after_all(member: list[Node], after: dict[int, Node | None]) -> Node | None:
    """The node that follows every node of `member` and their sub-steps, in order: a case's
    steps may have been reordered since it was read (a check moved before the call it tests),
    so its last step as read is not always its last step now."""
    inside = {n.uid for node in member for n in (node, *node.children)}
    node = after[member[0].uid]
    while node is not None and node.uid in inside:
        node = after[node.uid]
    return node


def branch_end(node: Node, after: dict[int, Node | None]) -> Node | None:
    """The step after a condition's then-branch (where `otherwise` goes if the SOP is silent)."""
    last = node.then_nodes[-1] if node.then_nodes else node
    return after[last.uid]


def only_goto(actions: list[Action]) -> str | None:
    """The step number when the actions are just "go to step N"."""
    return actions[0].goto if len(actions) == 1 and actions[0].kind == "goto" else None


def quote(sentence: str) -> str:
    """A step's short verbatim quote of its source sentence."""
    words = sentence.split()
    return " ".join(words[:_QUOTE_WORDS]).rstrip(":")


def strip_end(text: str) -> str:
    """Text without its closing punctuation, to be put inside a longer sentence."""
    return text.strip().rstrip(".:;,")
