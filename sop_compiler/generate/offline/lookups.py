"""The record a procedure's conditions test, looked up before they are tested.

"If the workspace is on the Enterprise plan, restore it yourself" tests a workspace's plan; a
catalog read tool described "Return a workspace's plan, members and their roles" returns it. An
agent cannot test what it has not read, so when a procedure that looks nothing up tests (in a
condition, or in a rule of its own section that limits what it may do) what one read tool
returns, the routine calls that tool first: before its first condition or write.

The tool is chosen by the words the tests share with what the tool returns (its description
after the verb), counting only words that say what is tested ("booked", "plan", "charge"), not
who it is about ("customer", "user"). It takes two words in common, or one that is the record
the tool is named for ("a bin that is frozen" and `get_bin_inventory`) or the thing the
routine's write acts on ("a charge made in the last 14 days" before `reverse_charge`); and a
single best tool: a tie calls none.
A procedure that writes its own lookup is left as it is.
"""

from __future__ import annotations

import re

from sop_compiler.generate.offline.binding import canonical_words
from sop_compiler.generate.offline.nodes import Builder, Node, flatten
from sop_compiler.generate.offline.request import call_node
from sop_compiler.generate.offline.standing import Standing
from sop_compiler.generate.offline.tools import Known
from sop_compiler.models import Procedure, Tool, ToolCatalog

__all__ = ["tested_lookup"]

# who a record is about, or words every record has: they say nothing of what is tested
_GENERIC = frozenset(
    canonical_words(
        "customer user client account member guest person record details data information "
        "status return list one each given current its their"
    )
)
_LIMITING = ("never", "only_if", "limit")


def tested_lookup(
    builder: Builder, top: list[Node], procedure: Procedure, found: Standing, catalog: ToolCatalog
) -> list[Node]:
    """`top` with a call of the read tool that returns what the conditions test, if one does."""
    nodes = flatten(top)
    if any(n.tool_call is not None and _reads(n, catalog) for n in nodes):
        return top  # the SOP looks up what it needs itself
    own = {block.id for block in procedure.blocks}
    tests: list[tuple[str, str, str]] = [
        (n.test, n.block_id, n.quote or n.test)
        for n in nodes
        if n.kind == "condition" and n.test and n.block_id
    ]
    tests += [
        (rule.text, rule.source.block_ids[0], rule.source.quote)
        for rule in found.rules
        if rule.kind in _LIMITING and rule.source and set(rule.source.block_ids) & own
    ]
    if not tests:
        return top
    acted_on = set()  # what the routine's writes act on: "charge" of `reverse_charge`
    for n in nodes:
        write = catalog.get(n.tool_call.tool) if n.tool_call else None
        if write is not None and write.access != "read":
            acted_on |= _record(write)
    tool, source = _best(tests, catalog, acted_on)
    if tool is None or source is None:
        return top
    at = next((i for i, n in enumerate(top) if _tests_or_writes(n, catalog)), 0)
    before = {n.uid for n in flatten(top[:at])}  # what the conversation holds by then
    call = _lookup(builder, tool, source, [k for k in builder.known if k.ref in before])
    return [*top[:at], call, *top[at:]]


def _reads(node: Node, catalog: ToolCatalog) -> bool:
    tool = catalog.get(node.tool_call.tool) if node.tool_call else None
    return tool is not None and tool.access == "read" and not tool.verifies_identity()


def _tests_or_writes(node: Node, catalog: ToolCatalog) -> bool:
    for n in flatten([node]):
        if n.kind == "condition":
            return True
        tool = catalog.get(n.tool_call.tool) if n.tool_call else None
        if tool is not None and tool.access != "read":
            return True
    return False


def _returns(tool: Tool) -> set[str]:
    """What a read tool returns, as words: its description after the verb."""
    return set(canonical_words(tool.description)[1:]) - _GENERIC


def _record(tool: Tool) -> set[str]:
    """What a lookup is named for: "card" of `get_card_details`; of `find_member_by_email`,
    the member (a key it is found by is not what it returns)."""
    name = re.split(r"_(?:by|for|with|from)_", tool.name)[0]
    return set(canonical_words(name.replace("_", " "))[1:]) - _GENERIC


# `check_size_availability` "Check whether outfits in given sizes are free for a set of hire
# dates": a yes or no for what it is asked, no record the conditions test
_ANSWERS_WHETHER = re.compile(r"^\s*(?:check|verify|confirm|test)\s+(?:whether|if)\b", re.I)


def _best(
    tests: list[tuple[str, str, str]], catalog: ToolCatalog, acted_on: set[str]
) -> tuple[Tool | None, tuple[str, str] | None]:
    ranked: list[tuple[int, str, Tool, tuple[str, str]]] = []
    for tool in catalog.tools:
        if (
            tool.access != "read"
            or tool.verifies_identity()
            or _ANSWERS_WHETHER.match(tool.description)
        ):
            continue
        returned = _returns(tool)
        record = _record(tool)
        score, source, words = 0, None, set()
        for text, block_id, said in tests:
            shared = set(canonical_words(text)) & returned
            if shared and source is None:
                source = (block_id, said)
            score += len(shared)
            words |= shared
        # one word in common is a coincidence ("email"), unless it is the record itself, or
        # the thing the routine acts on ("a charge made in the last 14 days" for a refund)
        if source is not None and (len(words) >= 2 or words & (record | acted_on)):
            ranked.append((score, tool.name, tool, source))
    if not ranked:
        return None, None
    ranked.sort(key=lambda r: (-r[0], r[1]))
    if len(ranked) > 1 and ranked[1][0] == ranked[0][0]:
        return None, None  # two tools return it as well: which one is not written
    return ranked[0][2], ranked[0][3]


def _lookup(builder: Builder, tool: Tool, source: tuple[str, str], known: list[Known]) -> Node:
    text = (
        f"Look up the record with `{tool.name}` and check it against the conditions and rules "
        "of this routine before you go on."
    )
    block_id, said = source
    return call_node(builder, tool, text, block_id, said, known)
