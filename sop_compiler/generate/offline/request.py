"""A request section stated as rules: the heading says what to do, the rules say when.

Policies often write a request as its heading and a list of rules ("CANCEL A PENDING ORDER:
Only pending orders can be cancelled. The refund goes to the original payment method."), with
no step that performs it. When the heading is an action that binds to one catalog write tool
(by name, alias or verb and object, as `binding.bind` binds any action) and the section has
no write and no condition of its own, the routine:

1. looks up the record that tool acts on, with the read tool that takes the same key (the
   `order_id` of `cancel_pending_order` -> `get_order_details(order_id)`), so that the rules
   can be checked against it;
2. keeps the section's own steps in their order (a lookup the section writes itself, "Get the
   account details first", takes the place of 1.);
3. calls the write tool at the end, once every rule allows it (confirmation gates are added
   later, as for any write).

Nothing else is invented: no branch is read from a rule (a rule holds at every step as it is
written), and a heading that binds no write tool, or a section with steps that write or
branch, is left as it is.

A rule that who is asking is checked before any action ("The Adviser shall verify the
identity of the Holder before taking any action on a Season") is a call too: the catalog's one
identity check, first, when no step calls it (`identity_first`).
"""

from __future__ import annotations

import re

from sop_compiler.generate.offline.binding import bind, canonical_words
from sop_compiler.generate.offline.nodes import Builder, Node, quote
from sop_compiler.generate.offline.tools import Known, bind_arguments
from sop_compiler.models import Heading, Procedure, Rule, Tool, ToolCall, ToolCatalog

__all__ = ["call_node", "identity_first", "request_calls"]

_LOOKUP_VERBS = frozenset(canonical_words("get"))  # get, find, look up, retrieve, check ...


def request_calls(
    builder: Builder, procedure: Procedure, catalog: ToolCatalog
) -> tuple[list[Node], list[Node]]:
    """The lookup to run first and the write call to run last, or ([], []) when none applies."""
    if any(_acts(node, catalog) or node.kind == "condition" for node in builder.nodes):
        # The section says how to act itself: where the heading's action would go among its
        # steps and branches is not written, so it is not guessed.
        return [], []
    heading = next((b for b in procedure.blocks if isinstance(b, Heading)), None)
    if heading is None:
        return [], []
    bound = bind(procedure.title, catalog).tool
    write = catalog.get(bound) if bound else None
    if write is None or write.access != "write":
        return [], []
    first: list[Node] = []
    looked_up = any(node.tool_call is not None for node in builder.nodes)  # "Get the details"
    lookup = None if looked_up else _lookup_for(write, catalog)
    if lookup is not None:
        first.append(
            call_node(
                builder,
                lookup,
                f"Look up the record with `{lookup.name}` and check it against every rule "
                "above before you go on.",
                heading.id,
                heading.text,
            )
        )
    last = call_node(
        builder,
        write,
        f"{procedure.title.strip().rstrip('.').capitalize()} with `{write.name}`, only if "
        "every rule above allows it.",
        heading.id,
        heading.text,
    )
    return first, [last]


# "The Adviser shall verify the identity of the Holder before taking any action on a Season",
# "Always confirm who you are speaking to before anything else"
_IDENTITY_BEFORE_ALL = re.compile(
    r"\b(?:verify|confirm|check|establish)\w*\s+(?:the\s+)?(?:[\w-]+(?:'s|s')\s+)?"
    r"(?:identity|who\s+(?:you\s+are\s+speaking|is\s+calling|they\s+are))\b.*"
    r"\bbefore\s+(?:taking\s+|doing\s+|discussing\s+)?(?:any|every|anything)\b",
    re.IGNORECASE,
)


# "Check that the person writing is the corresponding author before you tell them anything
# about a manuscript": an order, before everything
_BEFORE_ALL = re.compile(
    r"^(?P<head>.+?)\s+before\s+(?:you\s+|we\s+)?(?:[a-z]+\s+){0,3}?(?:any|every|anything)\b",
    re.IGNORECASE,
)


def _checked_before_all(text: str, verifier: Tool, catalog: ToolCatalog) -> bool:
    """True when the order before everything is the catalog's identity check."""
    match = _BEFORE_ALL.match(text)
    return match is not None and bind(match["head"], catalog).tool == verifier.name


def identity_first(
    builder: Builder, top: list[Node], rules: list[Rule], catalog: ToolCatalog
) -> list[Node]:
    """A rule that who is asking is checked before any action, with the catalog's one identity
    check that no step calls: that check, first. Otherwise `top` as it is."""
    verifiers = [tool for tool in catalog.tools if tool.verifies_identity()]
    if len(verifiers) != 1:
        return top
    (verifier,) = verifiers
    if any(node.tool_call and node.tool_call.tool == verifier.name for node in builder.nodes):
        return top
    rule = next(
        (
            r
            for r in rules
            if r.source
            and (
                _IDENTITY_BEFORE_ALL.search(r.text)
                or _checked_before_all(r.text, verifier, catalog)
            )
        ),
        None,
    )
    if rule is None or rule.source is None:
        return top
    check = call_node(
        builder,
        verifier,
        f"Check who you are speaking to with `{verifier.name}` before anything else.",
        rule.source.block_ids[0],
        rule.source.quote,
        known=[],
    )
    return [check, *top]


def _acts(node: Node, catalog: ToolCatalog) -> bool:
    """A step that calls a tool other than a lookup."""
    if node.tool_call is None:
        return False
    tool = catalog.get(node.tool_call.tool)
    return tool is None or tool.access != "read"


def call_node(
    builder: Builder,
    tool: Tool,
    text: str,
    block_id: str,
    source: str,
    known: list[Known] | None = None,
) -> Node:
    """A call of `tool` that sopc adds (a lookup, the heading's action), its arguments bound
    from what the conversation holds (`known`, default all the builder knows), citing `source`."""
    args, refs = bind_arguments(
        tool,
        action=text,
        condition=None,
        known=builder.known if known is None else known,
        team=None,
    )
    node = builder.node(
        "tool_call",
        text,
        block_id=block_id,
        quote=quote(source),
        tool_call=ToolCall(tool=tool.name, arguments=args),
        arg_refs={arg: builder.nodes[uid] for uid, arg in refs},
    )
    builder.known.append(Known(node.uid, "", "returned", tool=tool.name))
    builder.known += [Known(node.uid, arg.name, "argument") for arg in args]
    return node


def _keys(tool: Tool) -> set[str]:
    """The identifying parameters a tool requires (`order_id`, `reservation_id`, `email`)."""
    required = tool.parameters.get("required", [])
    names = required if isinstance(required, list) else []
    return {
        str(name)
        for name in names
        if str(name).endswith(("_id", "_number", "_code", "_no")) or name in ("email",)
    }


def _lookup_for(write: Tool, catalog: ToolCatalog) -> Tool | None:
    """The read tool that fetches the record `write` acts on: it takes the same key, and its
    name reads as a lookup. Ties go to the tool sharing most words of the key, then by name."""
    keys = _keys(write)
    if not keys:
        return None
    ranked: list[tuple[int, int, str, Tool]] = []
    for tool in catalog.tools:
        if tool.access != "read" or tool.name == write.name or tool.verifies_identity():
            continue
        shared = keys & _keys(tool)
        words = canonical_words(tool.name.replace("_", " "))
        if not shared or not words or words[0] not in _LOOKUP_VERBS:
            continue
        key_words = {w for key in shared for w in canonical_words(key.replace("_", " "))}
        # more of the key shared first, then the fewest other required inputs
        others = len(set(tool.parameters.get("required", []) or []) - shared)
        ranked.append((-len(key_words & set(words)), others, tool.name, tool))
    return min(ranked, key=lambda r: r[:3])[3] if ranked else None
