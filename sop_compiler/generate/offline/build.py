"""Turn a procedure's units into routine steps: conditions, targets, numbering, closing steps."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sop_compiler.generate.offline.phrases import END, Action, Clause, read_clause
from sop_compiler.generate.offline.sections import Unit
from sop_compiler.generate.offline.tools import Known, ToolIndex, bind_arguments
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
            for child in unit.children:
                nodes, child_pending = self._sentences(child, 1, child_pending)
                kids += nodes
                if child.key and nodes:
                    self.keys.setdefault(child.key, nodes[0])
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
            out.append(head)
            pending = (
                last_cond if last_cond is not None else (child_pending if kids else pending_own)
            )
        return out

    def _sentences(
        self, unit: Unit, level: int, pending: Node | None
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
            if goto is not None and nodes:
                # "... Then go to step 6." continues the step before it; after an ending it is moot
                if nodes[-1].kind not in TERMINAL_KINDS and nodes[-1].goto is None:
                    nodes[-1].goto = goto
                continue
            if plain and nodes and nodes[-1].kind in TERMINAL_KINDS:
                # after a handoff or escalation nothing runs: keep the sentence as its note
                nodes[-1].text = f"{nodes[-1].text} {sentence.strip()}"
                continue
            else_of_owner = clause.is_else and owner is not None and pending is owner
            made, pending = self._clause(clause, unit.block_id, level, pending, nodes)
            if owner is not None and not else_of_owner:
                owner.then_nodes += made  # an item that opens with "If X," is X's branch
            elif owner is not None:
                owner = None
            elif not nodes and clause.test is not None and pending is not None:
                owner = pending if pending.then_goto is None else None
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
        self, clause: Clause, block_id: str, level: int, pending: Node | None, before: list[Node]
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
        goto = _only_goto(clause.actions)
        if goto is not None:
            cond.then_goto = goto
        else:
            cond.then_nodes = self._actions(clause.actions, block_id, level, test)
            made += cond.then_nodes
        return made, cond

    def _actions(
        self, actions: list[Action], block_id: str, level: int, test: str | None
    ) -> list[Node]:
        out: list[Node] = []
        # "Escalate to X: open a ticket ..." does the ticket first; the escalation ends the routine.
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
                )
                if action.kind == "ask":
                    self.known.append(Known(node.uid, action.text.casefold(), "asked"))
                if action.kind == "escalate" and not action.target:
                    self.questions.append(
                        ("Step {step} says to escalate but does not name the team.", node)
                    )
                out.append(node)
        return out

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

    # --- numbering and targets --------------------------------------------------------------
    def finish(self, top: list[Node]) -> tuple[list[Step], list[str]]:
        """Number the nodes, resolve every target, add closing steps when a path needs them.

        Returns the steps and the open questions found while doing so.
        """
        flat = _flatten(top)
        after = _after(flat)
        if (
            not flat
            or flat[-1].kind not in TERMINAL_KINDS
            or any(_falls_off(n, after) for n in flat)
        ):
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
        self.ids = _number(top)
        steps = [self._step(node, after) for node in top]
        return steps, self._questions()

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
            if node.else_goto:
                else_step: str | None = self._key(node.else_goto, node)
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
