"""Turn a procedure's units into routine steps: conditions, targets, numbering, closing steps."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sop_compiler.generate.offline.phrases import END, Action, Clause, read_clause
from sop_compiler.generate.offline.sections import Unit
from sop_compiler.generate.offline.tools import Known, ToolIndex, ToolMention, bind_arguments
from sop_compiler.models import TERMINAL_KINDS, Condition, SourceRef, Step, ToolCall
from sop_compiler.text import injection_excerpt, is_instruction, split_sentences

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
_QUOTE_WORDS = 20
_ANYTHING_ELSE = re.compile(r"\banything else\b", re.IGNORECASE)
_END = -1  # placeholder: the step after the last one (the closing ask)
_FOR_CASE = "it is for "  # the test phrases.read_clause makes of "For a partial refund, ..."
_PROHIBITION = re.compile(r"^\s*(?:do not|don't|never)\b", re.IGNORECASE)
_CLOSING = re.compile(
    r"^(?:before (?:you|we) (?:end|close|finish)|ask (?:the customer )?whether there is anything "
    r"else)\b",
    re.IGNORECASE,
)
# "escalate ... for approval before you reship": the escalation comes before that action
_BEFORE = re.compile(
    r"\bbefore\s+(?:you\s+|we\s+)?(?P<verb>[a-z]+)\b(?P<obj>(?:\s+(?!and\b|or\b|if\b)[a-z]+){0,3})",
    re.IGNORECASE,
)
# "explain that it cannot be reopened", "there is nothing more to set up": the request stops here
_DEAD_END = re.compile(
    r"\b(?:cannot be|can't be|can not be|is not possible|is no longer possible|not eligible|"
    r"nothing more to|no further action)\b",
    re.IGNORECASE,
)
# "before you submit the evidence" names the action an SOP may call "upload the evidence pack"
_SAME_ACTION = {
    "submit": ("upload", "send", "file"),
    "reship": ("ship", "send", "replace"),
    "refund": ("issue",),
    "close": ("delete",),
}
_FAILED = re.compile(
    r"\b(?:fails?|failed|neither|nothing works|does not work|did not work|unsuccessful)\b",
    re.IGNORECASE,
)
_OTHERWISE = re.compile(r"(?:^|[.;]\s+)(?:otherwise|if not)\b", re.IGNORECASE)


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


@dataclass
class _Group:
    """Sibling sub-items that are alternative cases of one step (If A ... / If B ... / If C ...)."""

    members: list[list[Node]]  # each case's nodes, its opening condition first
    anchor: Node | None = None  # the step they belong to (where an open question points)


@dataclass
class Builder:
    """Builds the nodes of one procedure; keeps what later steps may refer to."""

    tools: ToolIndex
    agents: tuple[str, ...]
    nodes: list[Node] = field(default_factory=list)
    keys: dict[str, Node] = field(default_factory=dict)  # SOP step number -> node
    known: list[Known] = field(default_factory=list)
    questions: list[tuple[str, Node | None]] = field(default_factory=list)  # text with `{step}`
    skipped: list[str] = field(default_factory=list)  # possible injections left out
    ids: dict[int, str] = field(default_factory=dict)
    groups: list[_Group] = field(default_factory=list)

    def node(self, kind: str, text: str, **kw: object) -> Node:
        node = Node(len(self.nodes), kind, text, **kw)  # type: ignore[arg-type]
        self.nodes.append(node)
        return node

    # --- units -> nodes -------------------------------------------------------------------
    def top_level(self, units: list[Unit]) -> list[Node]:
        """Top-level steps (each with its sub-steps as children) for a run of SOP units."""
        out: list[Node] = []
        pending: Node | None = None
        for unit in units:
            own, pending_own = self._sentences(unit, 0, pending)
            kids: list[Node] = []
            child_pending: Node | None = None
            cases = self._case_runs(unit.children)
            groups: dict[int, _Group] = {}
            for child, run in zip(unit.children, cases, strict=True):
                split = run is not None and _has_otherwise(child.text)
                nodes, child_pending = self._sentences(child, 1, child_pending, split=split)
                kids += nodes
                if child.key and nodes:
                    self.keys.setdefault(child.key, nodes[0])
                if run is not None and nodes:
                    groups.setdefault(run, _Group([])).members.append(nodes)
            made_groups = [g for g in groups.values() if len(_cases(g)) >= 2]
            last_cond = (
                pending_own
                if pending_own is not None
                and own
                and own[-1] in (pending_own, *pending_own.then_nodes)
                else None
            )
            # "If X, do A." with indented sub-items: the sub-items say how to do A, so they run
            # only when X holds (unless X already has its own jump or otherwise).
            opens_branch = last_cond is not None and (
                unit.text.rstrip().endswith(":")
                or not (last_cond.then_goto or last_cond.else_nodes or last_cond.else_goto)
            )
            if last_cond is not None and opens_branch and kids:
                last_cond.then_nodes += kids  # "If X:" followed by its sub-items
            elif kids:
                last_cond = None
            if len(own) == 1 and own[0].proposed and any(k.kind == "tool_call" for k in kids):
                # "1. Find the order and the payment." over sub-steps that call the tools: a
                # heading for them, not an action that needs a tool of its own.
                own[0].proposed = None
                own[0].text = own[0].text.split(" (No catalog tool does this yet")[0]
            if not own:
                if not kids:
                    continue
                own = [kids.pop(0)]
            head, *rest = own
            head.level = 0
            for node in [*rest, *kids]:
                node.level = 1
            head.children = [*rest, *kids]
            if unit.key:
                self.keys.setdefault(unit.key, head)
            for group in made_groups:
                group.anchor = head
                self.groups.append(group)
            out.append(head)
            pending = (
                last_cond if last_cond is not None else (child_pending if kids else pending_own)
            )
        return out

    def _case_runs(self, children: list[Unit]) -> list[int | None]:
        """For each sub-item, the run of alternative cases it belongs to (None: no such run).

        Sibling sub-items at one depth that each open with a condition ("If the amount is
        wrong, ..." / "If the name is wrong, ..." / "For a partial refund, ...") are cases of
        their step: only one of them applies.
        """
        opens = []
        for child in children:
            first = next(iter(split_sentences(child.text)), "")
            clause = read_clause(first, tools=self.tools, agents=self.agents)
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

    def _sentences(
        self, unit: Unit, level: int, pending: Node | None, *, split: bool = False
    ) -> tuple[list[Node], Node | None]:
        """Nodes of one unit's text, in order, and the condition an `Otherwise` may still finish."""
        nodes: list[Node] = []
        notes: list[str] = []
        owner: Node | None = None  # the condition this item opens with
        for sentence in split_sentences(unit.text):
            excerpt = injection_excerpt(sentence)
            if excerpt is not None:
                self.skipped.append(excerpt)
                continue
            clause = read_clause(sentence, tools=self.tools, agents=self.agents)
            instruction = (
                clause.test is not None
                or clause.is_else
                or clause.is_yes
                or is_instruction(sentence)
                or any(
                    a.kind in ("tool_call", "escalate", "handoff", "resolve")
                    for a in clause.actions
                )
            )
            if not instruction:
                if nodes:
                    nodes[-1].text = f"{nodes[-1].text} {sentence.strip()}"
                else:
                    notes.append(sentence.strip())
                continue
            plain = clause.test is None and not clause.is_else and not clause.is_yes
            goto = _only_goto(clause.actions) if plain else None
            going_on = plain and not _PROHIBITION.match(sentence)
            if going_on and nodes and nodes[-1].kind == "escalate":
                # the SOP goes on after the escalation (tells the customer, goes to step N):
                # it is a ticket for the team, not the end of the routine
                self._as_ticket(nodes[-1])
            if goto is not None and nodes:
                # "... Then go to step 6." continues the step before it; after an ending it is moot
                if nodes[-1].kind not in TERMINAL_KINDS and nodes[-1].goto is None:
                    nodes[-1].goto = goto
                continue
            if plain and nodes and nodes[-1].kind in TERMINAL_KINDS:
                # after a handoff nothing runs: keep the sentence as its note
                nodes[-1].text = f"{nodes[-1].text} {sentence.strip()}"
                continue
            if plain and _CLOSING.match(sentence.strip()):
                owner = None  # "Before you end the call, ...": every path does it, not one branch
            parallel = (
                owner is not None
                and (owner.test or "").startswith(_FOR_CASE)
                and (clause.test or "").startswith(_FOR_CASE)
            )
            if parallel:
                owner = None  # "For a late delivery, ... For a missing item, ...": two cases
            else_of_owner = clause.is_else and owner is not None and pending is owner
            made, pending = self._clause(
                clause, unit.block_id, level, pending, nodes, split=split and not nodes
            )
            if owner is not None and not else_of_owner:
                owner.then_nodes += made  # an item that opens with "If X," is X's branch
            elif owner is not None:
                owner = None
            elif (not nodes or parallel) and clause.test is not None and pending is not None:
                opening = pending.outer or pending
                owner = opening if opening.then_goto is None else None
            if notes and made:
                made[0].text = " ".join([*notes, made[0].text])
                notes = []
            nodes += made
        if notes and unit.numbered:
            nodes.append(
                self.node(
                    "say",
                    " ".join(notes),
                    block_id=unit.block_id,
                    quote=_quote(notes[0]),
                    level=level,
                )
            )
        for script in unit.extra:
            if nodes:
                nodes[-1].text = f'{nodes[-1].text.rstrip(":")}: "{" ".join(script.split())}"'
        if owner is not None and not owner.else_nodes and owner.else_goto is None:
            # "a. If X, do A. If Y, do B." then "b. Otherwise, ...": the otherwise answers X,
            # the condition the item opened with, not the one nested inside its branch.
            pending = owner
        return nodes, pending

    def _clause(
        self,
        clause: Clause,
        block_id: str,
        level: int,
        pending: Node | None,
        before: list[Node],
        *,
        split: bool = False,
    ) -> tuple[list[Node], Node | None]:
        if (
            clause.is_else
            and pending is not None
            and not pending.else_nodes
            and not pending.else_goto
        ):
            goto = _only_goto(clause.actions)
            if goto is not None:
                pending.else_goto = goto
                return [], None
            otherwise = self._actions(clause.actions, block_id, level, None)
            pending.else_nodes = otherwise
            return otherwise, None
        test = clause.test
        asked: Node | None = None
        if clause.is_yes:
            previous = before[-1] if before else (self.nodes[-1] if self.nodes else None)
            asked = previous if previous is not None and previous.kind == "ask" else None
            test = "the customer answered yes in step {step}" if asked else "the answer is yes"
        if test is None:
            return self._actions(clause.actions, block_id, level, None), None
        made: list[Node] = []
        if clause.test_tool is not None:
            made.append(
                self._tool_node(
                    Action(
                        "tool_call",
                        f"Use `{clause.test_tool.tool.name}`.",
                        clause.sentence,
                        tool=clause.test_tool,
                    ),
                    block_id,
                    level,
                    test,
                )
            )
        cond = self.node(
            "condition",
            f"Check whether {_strip_end(test)}.",
            block_id=block_id,
            quote=_quote(clause.sentence),
            level=level,
            test=_strip_end(test),
            text_ref=asked,
        )
        made.append(cond)
        inner = _split_test(cond.test or "") if split else None
        if inner is not None:
            # "If A and B, X. Otherwise, Y." as one of several cases: the otherwise answers B
            # within case A, so A stays the case's guard and B a condition inside it.
            cond.test, cond.text = inner[0], f"Check whether {inner[0]}."
            inside = self.node(
                "condition",
                f"Check whether {inner[1]}.",
                block_id=block_id,
                quote=_quote(clause.sentence),
                level=level,
                test=inner[1],
                outer=cond,
            )
            cond.then_nodes = [inside]
            made.append(inside)
            outer, cond = cond, inside
        else:
            outer = None
        goto = _only_goto(clause.actions)
        if goto is not None:
            cond.then_goto = goto
        else:
            cond.then_nodes = self._actions(clause.actions, block_id, level, test)
            made += cond.then_nodes
            if outer is not None:
                outer.then_nodes += cond.then_nodes
        return made, cond

    def _actions(
        self, actions: list[Action], block_id: str, level: int, test: str | None
    ) -> list[Node]:
        out: list[Node] = []
        actions = self._escalations(actions)
        # "Transfer to X: ..." does the rest first; the handoff or escalation ends the routine.
        ending = [a for a in actions if a.kind in TERMINAL_KINDS]
        if ending:  # a "go to step N" beside an ending is moot: the ending ends the routine
            actions = [a for a in actions if a.kind not in (*TERMINAL_KINDS, "goto")] + ending
        team = next((a.target for a in ending if a.kind == "escalate"), None)
        for action in actions:
            if action.kind == "tool_call" and action.target is None and team:
                action.target = team
            if action.kind == "goto":
                if out and out[-1].kind in TERMINAL_KINDS:
                    continue  # "escalate ... and go to step 6": the escalation already ends it
                if out and out[-1].goto is None:
                    out[-1].goto = action.goto
                    continue
                out.append(
                    self.node(
                        "say",
                        action.text,
                        block_id=block_id,
                        quote=_quote(action.quote),
                        level=level,
                        goto=action.goto,
                    )
                )
            elif action.kind == "tool_call":
                out.append(self._tool_node(action, block_id, level, test))
            else:
                text = action.text
                source = self._answered_by(action)
                if source is not None:
                    # "check the email address on the account": `lookup_customer` returned it
                    action.proposed, node_ref = None, self.nodes[source.ref]
                    returned = f"see what `{source.tool}` returned in step {{step}}"
                    text = f"{text.rstrip('.')} ({returned})."
                else:
                    node_ref = None
                if action.proposed is not None:
                    name = action.proposed[0]
                    text = f"{text} (No catalog tool does this yet: proposed tool `{name}`.)"
                node = self.node(
                    action.kind,
                    text,
                    block_id=block_id,
                    quote=_quote(action.quote),
                    level=level,
                    target=action.target,
                    proposed=action.proposed,
                    goto=action.goto,
                    text_ref=node_ref,
                )
                if action.kind == "ask":
                    self.known.append(Known(node.uid, action.text.casefold(), "asked"))
                if action.kind == "escalate" and not action.target:
                    self.questions.append(
                        ("Step {step} says to escalate but does not name the team.", node)
                    )
                out.append(node)
        return out

    def _escalations(self, actions: list[Action]) -> list[Action]:
        """Escalations the SOP goes on after become tickets; the others end the routine.

        "Escalate to X: open a ticket with `create_ticket` ..." is one ticket. "Escalate to X and
        go to step 8" or "escalate to X for approval before you reship" hands the team a ticket
        while this routine carries on, so it is no terminal escalation.
        """
        ticket = self.tools.ticket_tool()
        out = list(actions)
        for esc in [a for a in actions if a.kind == "escalate"]:
            call = next(
                (
                    a
                    for a in out
                    if a.kind == "tool_call" and a.tool is not None and a.tool.tool is ticket
                ),
                None,
            )
            if call is not None:
                call.target = call.target or esc.target
                call.text = f"{esc.text.rstrip('.')}: {call.text[0].lower()}{call.text[1:]}"
                out.remove(esc)
            elif out.index(esc) < len(out) - 1 or _BEFORE.search(esc.text):
                out[out.index(esc)] = (
                    Action(
                        "tool_call",
                        esc.text,
                        esc.quote,
                        target=esc.target,
                        tool=ToolMention(ticket, 0, "name"),
                    )
                    if ticket is not None
                    else Action("say", esc.text, esc.quote, target=esc.target)
                )
        return out

    def _answered_by(self, action: Action) -> Known | None:
        """An earlier read tool whose result holds what a "check ..." action looks at."""
        if action.proposed is None or action.proposed[1] != "read":
            return None
        words = action.proposed[0].split("_")[1:]
        for item in reversed(self.known):
            tool = self.tools.catalog.get(item.tool or "") if item.source == "returned" else None
            if tool is None or tool.access != "read":
                continue
            described = set(re.findall(r"[a-z]+", tool.description.casefold()))
            if words and all(w in described for w in words):
                return item
        return None

    def _as_ticket(self, node: Node) -> None:
        """Turn an escalation the SOP goes on after into a ticket for the team (or a say step)."""
        ticket = self.tools.ticket_tool()
        if ticket is None:
            node.kind = "say"
            return
        args, refs = bind_arguments(
            ticket, action=node.text, condition=None, known=self.known, team=node.target
        )
        node.kind = "tool_call"
        node.tool_call = ToolCall(tool=ticket.name, arguments=args)
        node.arg_refs = {arg: self.nodes[uid] for uid, arg in refs}
        self.known.append(Known(node.uid, "", "returned", tool=ticket.name))

    def _tool_node(self, action: Action, block_id: str, level: int, test: str | None) -> Node:
        assert action.tool is not None
        tool = action.tool.tool
        args, refs = bind_arguments(
            tool, action=action.text, condition=test, known=self.known, team=action.target
        )
        text = (
            action.text
            if tool.name in action.text
            else f"{action.text.rstrip('.')} (`{tool.name}`)."
        )
        node = self.node(
            "tool_call",
            text,
            block_id=block_id,
            quote=_quote(action.quote),
            level=level,
            tool_call=ToolCall(tool=tool.name, arguments=args),
            arg_refs={arg: self.nodes[uid] for uid, arg in refs},
        )
        self.known.append(Known(node.uid, "", "returned", tool=tool.name))
        self.known += [Known(node.uid, arg.name, "argument") for arg in args]
        return node

    # --- order ------------------------------------------------------------------------------
    def approvals_first(self, top: list[Node]) -> list[Node]:
        """Move "if X, escalate ... before you reship" in front of the reship it guards.

        SOPs often add the approval after the action it is for ("Reship the order. If the total
        is over $300, escalate for approval before you reship."); the agent must ask first.
        """
        ticket = self.tools.ticket_tool()
        for node in _flatten(top):
            calls_ticket = node.tool_call is not None and node.tool_call.tool == (
                ticket.name if ticket else None
            )
            before = _BEFORE.search(node.text)
            if before is None or not (node.kind == "escalate" or calls_ticket):
                continue
            top = self._move_before(top, node, before.group("verb").casefold())
        return top

    def _move_before(self, top: list[Node], node: Node, verb: str) -> list[Node]:
        flat = _flatten(top)
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
                for n in reversed(flat[max(0, start - 6) : start])
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
        parent = next((p for p in top if target in p.children), None)
        if parent is None:
            return top  # the action is a step of its own: keep the SOP's order
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

    # --- numbering and targets --------------------------------------------------------------
    def finish(self, top: list[Node]) -> tuple[list[Step], list[str]]:
        """Number the nodes, resolve every target, add closing steps when a path needs them.

        Returns the steps and the open questions found while doing so.
        """
        flat = _flatten(top)
        after = _after(flat)
        dead = _dead_ends(flat)
        if (
            not flat
            or flat[-1].kind not in TERMINAL_KINDS
            or any(_falls_off(n, after) for n in flat)
            or dead
            or any(after[g.members[-1][-1].uid] is None for g in self.groups)
        ):
            last = flat[-1] if flat else None
            if last is not None and last.kind == "ask" and _ANYTHING_ELSE.search(last.text):
                closing = last  # the SOP's own "anything else?" step closes it: only resolve
                top = [*top, self.node("resolve", "Resolve the case.")]
            else:
                closing = self.node("ask", "Ask whether there is anything else you can help with.")
                top = [*top, closing, self.node("resolve", "Resolve the case.")]
            flat = _flatten(top)
            after = _after(flat)
        else:
            closing = None
        closing = self._end_explicit_branches(flat, after, closing)
        if closing is not None and closing not in flat:
            top = [*top, closing, self.node("resolve", "Resolve the case.")]
            flat = _flatten(top)
            after = {**_after(flat), **{k: v for k, v in after.items() if v is closing}}
        for last in dead:
            if last.jump is None and after[last.uid] is not closing:
                last.jump = closing  # "explain that it cannot be reopened": nothing else follows
        for node in flat:
            if node.kind != "condition":
                continue
            if node.else_nodes and node.then_nodes:
                last = node.then_nodes[-1]
                if last.kind not in TERMINAL_KINDS and last.goto is None and last.jump is None:
                    last.jump = after[node.else_nodes[-1].uid]
            elif (
                not node.else_nodes
                and node.else_goto is None
                and _branch_end(node, after) in (None, closing)
            ):
                question = f'the SOP does not say what to do when "{node.test}" does not hold.'
                self.questions.append((f"Step {{step}}: {question}", node))
        for group in self.groups:
            self._chain(group, after, closing)
        self.ids = _number(top)
        steps = [self._step(node, after) for node in top]
        return steps, self._questions()

    def _chain(self, group: _Group, after: dict[int, Node | None], closing: Node | None) -> None:
        """Wire alternative cases as if / else-if / else: each case ends after the group."""
        members = group.members
        end = after[members[-1][-1].uid] or closing
        falls = False
        for index, member in enumerate(members):
            head = next(n for n in member if n.kind == "condition")
            following = members[index + 1][0] if index + 1 < len(members) else None
            if following is None:
                falls = falls or _continues_to(member, end, after, self.keys)
                # (when the step after them is itself a check, the SOP goes on deciding there)
                checks_on = end is not None and end.kind == "condition"
                if not head.else_nodes and head.else_goto is None and falls and not checks_on:
                    cases = len(members)
                    question = (
                        f"the SOP does not say what to do when none of its {cases} cases applies; "
                        "the routine goes on with the step after them."
                    )
                    self.questions.append((f"Step {{step}}: {question}", group.anchor or head))
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
                        and _branch_end(node, after) is following
                    ):
                        node.else_jump, falls = end, True
                elif (
                    node.kind not in TERMINAL_KINDS
                    and node.goto is None
                    and node.jump is None
                    and after[node.uid] is following
                ):
                    node.jump, falls = end, True
                elif node.goto is not None and self.keys.get(node.goto.casefold()) is end:
                    falls = True

    def _end_explicit_branches(
        self, flat: list[Node], after: dict[int, Node | None], closing: Node | None
    ) -> Node | None:
        """End a branch whose otherwise says "continue with step N", N being what follows it.

        "If there are open orders, explain why. Otherwise, continue with step 5." means the
        branch does not go on to step 5: it ends the case (the closing "anything else" step).
        Returns the closing step (made here when the routine had none yet).
        """
        keyed = {id(node) for node in self.keys.values()}
        for node in flat:
            if node.goto == END:  # "follow CC-ACC-002": that SOP takes over; wrap this case up
                closing = closing or self._closing(flat)
                node.goto, node.jump = None, closing
        for node in flat:
            if node.kind != "condition" or not node.then_nodes or node.else_goto is None:
                continue
            target = self.keys.get(node.else_goto.casefold())
            last = node.then_nodes[-1]
            if target is None or after.get(last.uid) is not target or id(target) not in keyed:
                continue
            closing = closing or self._closing(flat)
            after[last.uid] = closing
            if last.kind not in TERMINAL_KINDS and last.goto is None and last.jump is None:
                last.jump = closing
        return closing

    def _closing(self, flat: list[Node]) -> Node:
        """The SOP's own "anything else?" step, or a new one."""
        return next(
            (n for n in flat if n.kind == "ask" and _ANYTHING_ELSE.search(n.text)), None
        ) or self.node("ask", "Ask whether there is anything else you can help with.")

    def _step(self, node: Node, after: dict[int, Node | None]) -> Step:
        condition = None
        if node.kind == "condition":
            then_step = (
                self._id(node.then_nodes[0])
                if node.then_nodes
                else self._key(node.then_goto, node) or self._id(after[node.uid])
            )
            if node.else_jump is not None:
                else_step: str | None = self._id(node.else_jump)
            elif node.else_goto:
                else_step = self._key(node.else_goto, node)
            elif node.else_nodes:
                else_step = self._id(node.else_nodes[0])
            elif node.then_nodes:
                else_step = self._id(_branch_end(node, after))
            else:
                else_step = None  # a jump when the test holds; otherwise the next step
            condition = Condition(
                test=self._fill(node.test or "", node), then_step=then_step, else_step=else_step
            )
        tool_call = node.tool_call
        if tool_call is not None and node.arg_refs:
            tool_call = tool_call.model_copy(
                update={
                    "arguments": [
                        arg.model_copy(
                            update={
                                "from_context": arg.from_context.replace(
                                    "{step}", self._id(node.arg_refs[arg.name])
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
                next_step = self._id(node.jump)
            elif node.goto is not None:
                next_step = self._key(node.goto, node)
        return Step(
            id=self.ids[node.uid],
            kind=node.kind,
            text=self._fill(node.text, node),
            tool_call=tool_call,
            condition=condition,
            target=node.target,
            next_step=next_step,
            substeps=[self._step(child, after) for child in node.children],
            source=SourceRef(block_ids=[node.block_id], quote=node.quote or "")
            if node.block_id
            else None,
        )

    def _id(self, node: Node | None) -> str:
        return self.ids[node.uid] if node is not None else ""

    def _fill(self, text: str, node: Node) -> str:
        return (
            text.replace("{step}", self._id(node.text_ref)) if node.text_ref is not None else text
        )

    def _key(self, key: str | None, node: Node) -> str | None:
        """The id of the step the SOP numbers `key`; None (and an open question) if none."""
        target = self.keys.get((key or "").casefold())
        if target is None:
            # Often a step of a sibling procedure of the same document: never guess a target.
            question = f"refers to step {key}, which is not part of this procedure; it continues"
            self.questions.append((f"Step {{step}} {question} with the next step instead.", node))
            return None
        return self.ids[target.uid]

    def _questions(self) -> list[str]:
        out: list[str] = []
        for text, node in self.questions:
            line = text.replace("{step}", self.ids[node.uid]) if node is not None else text
            if line not in out:
                out.append(line)
        return out


def _after(flat: list[Node]) -> dict[int, Node | None]:
    return {node.uid: (flat[i + 1] if i + 1 < len(flat) else None) for i, node in enumerate(flat)}


def _branch_end(node: Node, after: dict[int, Node | None]) -> Node | None:
    """The step after a condition's then-branch (where `otherwise` goes if the SOP is silent)."""
    last = node.then_nodes[-1] if node.then_nodes else node
    return after[last.uid]


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
    return node.else_goto is None and _branch_end(node, after) is None


def _only_goto(actions: list[Action]) -> str | None:
    return actions[0].goto if len(actions) == 1 and actions[0].kind == "goto" else None


def _flatten(top: list[Node]) -> list[Node]:
    out: list[Node] = []
    for node in top:
        out.append(node)
        out += node.children
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


def _quote(sentence: str) -> str:
    words = sentence.split()
    return " ".join(words[:_QUOTE_WORDS]).rstrip(":")


def _strip_end(text: str) -> str:
    return text.strip().rstrip(".:;,")


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


def _has_otherwise(text: str) -> bool:
    return bool(_OTHERWISE.search(text))


def _split_test(test: str) -> tuple[str, str] | None:
    """`an amount is wrong and the difference is over $100` -> the case and the check inside it."""
    match = re.search(r"\s+and\s+(?=(?:the|a|an|it|they|there|this|that|its|their)\s)", test)
    if match is None:
        return None
    first, second = test[: match.start()].strip(), test[match.end() :].strip()
    return (first, second) if len(first.split()) >= 3 and len(second.split()) >= 3 else None


def _cases(group: _Group) -> list[list[Node]]:
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


def _does(node: Node, verbs: set[str]) -> bool:
    """True when the step's action is one of the verbs (or calls a tool named by one)."""
    first = node.text.split(None, 1)[0].casefold().strip(",.:") if node.text.split() else ""
    tool = node.tool_call.tool.split("_") if node.tool_call is not None else []
    return first in verbs or any(verb in tool for verb in verbs)
