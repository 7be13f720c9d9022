"""validate: check a routine against its procedure and the tool catalog; a report, not an exception.

The execution semantics checked here are those of `sop_compiler.models.routine` (its docstring
is the one statement of them): flattened order, condition and switch targets, `call`, `next_step`,
terminal kinds, slots collected on every path, confirmations before writes.

The text helpers it shares with the offline backend live in `sop_compiler.text`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

from sop_compiler.config import Settings
from sop_compiler.escape import one_line
from sop_compiler.generate.offline.binding import (
    HANDS_OVER,
    canonical_words,
    done_again,
    hands_over,
    listed_objects,
    verb_stems,
)
from sop_compiler.models import (
    MAX_QUOTE_WORDS,
    TERMINAL_KINDS,
    Block,
    Flowchart,
    Heading,
    Issue,
    ListItem,
    Paragraph,
    Procedure,
    Routine,
    RoutineDraft,
    SourceRef,
    Step,
    Table,
    Tool,
    ToolCall,
    ToolCatalog,
    ValidationReport,
    block_text,
)
from sop_compiler.models.report import Severity
from sop_compiler.models.routine import step_positions, walk_steps
from sop_compiler.paths import RoutinePath, enumerate_paths
from sop_compiler.slug import agent_key
from sop_compiler.text import (
    CONTEXT_TITLE,
    ELLIPSIS,
    NUMBERING,
    injection_excerpt,
    is_constraint,
    is_instruction,
    quote_form,
    split_sentences,
)

__all__ = ["check_calls", "check_draft", "dropped_rules", "validate"]


def check_draft(
    draft: RoutineDraft,
    *,
    procedure: Procedure,
    catalog: ToolCatalog,
    settings: Settings,
    agents: Sequence[str] | None = None,
) -> list[Issue]:
    """Every error and warning of a draft (used by repair loops and by `validate`).

    `agents` are the agent groups of the network; with them, every handoff target must be one
    of them (and not the routine's own). None skips that check (the network is not known).
    """
    issues, _ = _check(
        draft, procedure=procedure, catalog=catalog, settings=settings, agents=agents
    )
    return issues


def validate(
    routine: Routine,
    *,
    procedure: Procedure,
    catalog: ToolCatalog,
    settings: Settings,
    agents: Sequence[str] | None = None,
) -> ValidationReport:
    """The validation report of one routine, with its source coverage."""
    issues, coverage = _check(
        routine, procedure=procedure, catalog=catalog, settings=settings, agents=agents
    )
    return ValidationReport(routine_id=routine.id, issues=issues, coverage=coverage)


def handoff_names(agents: Sequence[str], settings: Settings) -> list[str]:
    """The names a handoff target may use for the agents of a network: group and display name."""
    names = {group for group in agents}
    names |= {settings.agents[g].name or g for g in agents if g in settings.agents}
    return sorted(names, key=lambda name: (agent_key(name), name))


def check_calls(routines: Sequence[Routine]) -> dict[str, list[Issue]]:
    """Network-wide checks of `call` steps: the routine exists in the same agent, no cycles.

    Run once every routine of the network is known (a routine cannot see its siblings). The
    issues are keyed `<agent>/<routine id>`, as reports are.
    """
    by_id = {(routine.agent, routine.id): routine for routine in routines}
    calls: dict[str, list[str]] = {}
    issues: dict[str, list[Issue]] = {}
    for routine in sorted(routines, key=lambda r: (r.agent, r.id)):
        out = _Issues(routine.id)
        for step in routine.walk():
            if step.kind != "call" or not step.routine:
                continue
            if (routine.agent, step.routine) not in by_id:
                siblings = sorted(r.id for r in routines if r.agent == routine.agent)
                close = difflib.get_close_matches(step.routine, siblings, n=1)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                out.add(
                    "unknown_routine",
                    "error",
                    f"step {step.id} calls routine `{step.routine}`, which is no routine of "
                    f"agent `{routine.agent}`{hint}",
                    step.id,
                )
                continue
            calls.setdefault(f"{routine.agent}/{routine.id}", []).append(
                f"{routine.agent}/{step.routine}"
            )
        if out.items:
            issues[f"{routine.agent}/{routine.id}"] = out.items
    for cycle in _cycles(calls):
        out = _Issues(cycle[0].split("/", 1)[1])
        names = [key.split("/", 1)[1] for key in [*cycle, cycle[0]]]
        out.add("call_cycle", "error", "routines call each other in a cycle: " + " -> ".join(names))
        issues.setdefault(cycle[0], []).extend(out.items)
    return issues


def _cycles(calls: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of routines that call each other (or themselves)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found: list[list[str]] = []
    for start in sorted(calls):
        if start in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(calls.get(start, []))))]
        state[start] = 1
        path.append(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(child) == 1:
                found.append(path[path.index(child) :])
            elif child not in state:
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(calls.get(child, [])))))
    return found


class _Issues:
    """Collects issues for one routine."""

    def __init__(self, routine_id: str) -> None:
        self.routine_id = routine_id
        self.items: list[Issue] = []

    def add(self, code: str, severity: Severity, message: str, step_id: str | None = None) -> None:
        self.items.append(
            Issue(
                code=code,
                severity=severity,
                routine_id=self.routine_id,
                step_id=step_id,
                message=message,
            )
        )


def _check(
    draft: RoutineDraft,
    *,
    procedure: Procedure,
    catalog: ToolCatalog,
    settings: Settings,
    agents: Sequence[str] | None,
) -> tuple[list[Issue], float | None]:
    out = _Issues(draft.id if isinstance(draft, Routine) else procedure.id)
    steps = list(walk_steps(draft.steps))
    _check_steps(steps, draft, out)
    graph = _check_flow(steps, out)
    if agents is not None:
        own = draft.agent if isinstance(draft, Routine) else procedure.agent
        _check_handoffs(steps, own, handoff_names([*agents, own], settings), settings, out)
    for step in steps:
        if step.tool_call is not None:
            _check_tool_call(step.id, step.tool_call, catalog, out)
    _check_model_text(steps, draft, procedure, catalog, out)
    if graph is not None:
        _check_data(steps, graph, draft, out)
        _check_confirmations(steps, graph, draft, catalog, out)
    _check_rules(steps, draft, catalog, out)
    _check_flowcharts(steps, procedure, out)
    blocks = {block.id: block for block in [*procedure.context, *procedure.blocks]}
    refs = _citations(draft)
    for step_id, label, ref in refs:
        _check_citation(step_id, label, ref, blocks, out)
    for tool in draft.tools_proposed:
        where = f" (step {', '.join(tool.step_ids)})" if tool.step_ids else ""
        step_id = tool.step_ids[0] if tool.step_ids else None
        out.add(
            "proposed_tool",
            "warning",
            f"proposed tool `{tool.name}` ({tool.access}) is not in the catalog{where}",
            step_id,
        )
    _check_approvals(draft, steps, catalog, out)
    for question in draft.open_questions:
        out.add("open_question", "info", f"open question: {question}")
    cited = [ref for _, _, ref in refs]
    coverage = _coverage(procedure, cited)
    if coverage is not None and coverage < settings.coverage_threshold:
        out.add(
            "low_coverage",
            "warning",
            f"steps, rules and facts cite {coverage:.0%} of the SOP's instructions and rules "
            f"(threshold {settings.coverage_threshold:.0%})",
        )
    for block, sentence in dropped_rules(procedure, cited):
        out.add(
            "dropped_rule",
            "warning",
            f"no step, rule or fact cites this rule of block {block.id} ({block.prov.label()}): "
            f"{sentence!r}",
        )
    for block in [*procedure.context, *procedure.blocks]:
        excerpt = injection_excerpt(block_text(block))
        if excerpt is not None:
            out.add(
                "possible_injection",
                "warning",
                f"block {block.id} ({block.prov.label()}) addresses the model or sopc: {excerpt!r}",
            )
    return _finish(out.items, steps, settings), coverage


def _finish(issues: list[Issue], steps: list[Step], settings: Settings) -> list[Issue]:
    """Each issue with the quote of its step, at the severity `[warnings]` gives its code.

    A setting may raise any code to an error and lower a warning to info; an error stays an
    error, because a routine with errors must never be deployed.
    """
    quotes = {step.id: step.source.quote for step in steps if step.source is not None}
    out = []
    for issue in issues:
        update: dict[str, Any] = {}
        wanted = settings.warnings.get(issue.code)
        if wanted is not None and issue.severity != "error":
            update["severity"] = wanted
        if issue.quote is None and issue.step_id in quotes:
            update["quote"] = quotes[issue.step_id]
        out.append(issue.model_copy(update=update) if update else issue)
    return out


def _check_flowcharts(steps: list[Step], procedure: Procedure, out: _Issues) -> None:
    """Every decision of a flowchart the procedure holds is a condition or switch citing it,
    with at least as many branches as the decision has arrows out."""
    for chart in procedure.blocks:
        if not isinstance(chart, Flowchart):
            continue
        branching = [
            step
            for step in steps
            if step.kind in ("condition", "switch")
            and step.source is not None
            and chart.id in step.source.block_ids
        ]
        for node in chart.nodes:
            targets = {edge.target for edge in chart.outgoing(node.id)}
            if len(targets) < 2:
                continue
            text = quote_form(node.text)
            cites = [
                step
                for step in branching
                if step.source is not None
                and text
                and (text in quote_form(step.source.quote) or quote_form(step.source.quote) in text)
            ]
            labels = ", ".join(e.label or "(no label)" for e in chart.outgoing(node.id))
            if not cites:
                out.add(
                    "flowchart_decision",
                    "error",
                    f"the flowchart's decision {node.text!r} ({labels}) is no condition or "
                    f"switch step citing block {chart.id}",
                )
                continue
            step = cites[0]
            branches = len(set(step.targets()))
            if branches < len(targets):
                out.add(
                    "flowchart_decision",
                    "error",
                    f"step {step.id} has {branches} branches, but the flowchart's decision "
                    f"{node.text!r} has {len(targets)} ({labels})",
                    step.id,
                )


def _check_steps(steps: list[Step], draft: RoutineDraft, out: _Issues) -> None:
    seen: set[str] = set()
    slots = {slot.name for slot in draft.collect}
    for step in steps:
        if step.id in seen:
            out.add(
                "duplicate_step_id", "error", f"step id {step.id} is used more than once", step.id
            )
        seen.add(step.id)
        if not step.text.strip():
            out.add("empty_step", "error", f"step {step.id} has no text", step.id)
        required = {
            "tool_call": (step.tool_call, "missing_tool_call", "a tool_call without a tool"),
            "condition": (step.condition, "missing_condition", "a condition without a test"),
            "switch": (step.switch, "missing_switch", "a switch without cases"),
            "call": (step.routine, "missing_routine", "a call of no routine"),
        }.get(step.kind)
        if required is not None and not required[0]:
            out.add(required[1], "error", f"step {step.id} is {required[2]}", step.id)
        if step.switch is not None and not step.switch.cases:
            out.add("missing_switch", "error", f"step {step.id} is a switch with no case", step.id)
        if step.confirm and step.kind != "ask":
            out.add(
                "bad_confirm",
                "error",
                f"step {step.id} is a {step.kind} marked confirm: only an ask can confirm",
                step.id,
            )
        for name in step.collects:
            if name not in slots:
                out.add(
                    "unknown_slot",
                    "error",
                    f"step {step.id} collects `{name}`, which is not in the routine's collect list",
                    step.id,
                )
    declared: set[str] = set()
    for slot in draft.collect:
        if slot.name in declared:
            out.add("unknown_slot", "error", f"slot `{slot.name}` is declared twice")
        declared.add(slot.name)


def _check_handoffs(
    steps: list[Step], own: str, names: list[str], settings: Settings, out: _Issues
) -> None:
    """A handoff goes to another agent of the network, named as the network names it."""
    keys = {agent_key(name): name for name in names}
    override = settings.agents.get(own)
    own_keys = {agent_key(own), agent_key(override.name if override and override.name else own)}
    for step in steps:
        if step.kind != "handoff":
            continue
        target = (step.target or "").strip()
        key = agent_key(target)
        if not target:
            out.add("handoff_target", "error", f"step {step.id} hands off to no agent", step.id)
        elif key in own_keys:
            out.add(
                "handoff_target",
                "error",
                f"step {step.id} hands off to its own agent `{own}`: continue the routine or "
                "escalate instead",
                step.id,
            )
        elif key not in keys:
            others = [name for name in names if agent_key(name) not in own_keys]
            close = difflib.get_close_matches(key, [agent_key(n) for n in others], n=1)
            hint = f"; did you mean `{keys[close[0]]}`?" if close else ""
            listed = ", ".join(f"`{name}`" for name in others) or "none"
            out.add(
                "handoff_target",
                "error",
                f"step {step.id} hands off to `{target[:60]}`, which is not an agent of this "
                f"network (agents: {listed}){hint}",
                step.id,
            )


class _Graph:
    """The step graph of a routine, by position in execution order."""

    def __init__(self, succ: list[list[int]]) -> None:
        self.succ = succ
        self.pred: list[list[int]] = [[] for _ in succ]
        for pos, nexts in enumerate(succ):
            for nxt in nexts:
                self.pred[nxt].append(pos)

    def must(self, entry: frozenset[str], step: Any, steps: list[Step]) -> list[frozenset[str]]:
        """What holds on entry to each step on every path from the first: a must-analysis.

        `step(step, before)` gives what holds after a step given what held before it.
        """
        everything: frozenset[str] | None = None  # "not reached yet": the lattice's top
        before: list[frozenset[str] | None] = [everything] * len(steps)
        before[0] = entry
        todo = [0]
        while todo:
            pos = todo.pop()
            held = before[pos]
            assert held is not None
            after = step(steps[pos], held)
            for nxt in self.succ[pos]:
                old = before[nxt]
                new = after if old is None else old & after
                if new != old:
                    before[nxt] = new
                    todo.append(nxt)
        return [held if held is not None else frozenset() for held in before]


def _successors(steps: list[Step], index: dict[str, int], out: _Issues) -> list[list[int]]:
    """Where each step can go next (by position); reports targets that name no step."""
    succ: list[list[int]] = []
    for pos, step in enumerate(steps):
        following = [pos + 1] if pos + 1 < len(steps) else []
        nexts: list[int] = []
        for target in step.targets():
            if target is None:
                nexts += following
            elif target in index:
                nexts.append(index[target])
            else:
                out.add(
                    "dangling_target",
                    "error",
                    f"step {step.id} goes to {target!r}, which is not a step",
                    step.id,
                )
        succ.append(sorted(set(nexts)))
    return succ


def _check_flow(steps: list[Step], out: _Issues) -> _Graph | None:
    if not steps:
        out.add("no_end", "error", "the routine has no steps")
        return None
    succ = _successors(steps, step_positions(steps), out)
    graph = _Graph(succ)
    reachable = _reach([0], succ)
    for pos, step in enumerate(steps):
        if pos not in reachable:
            out.add("unreachable_step", "error", f"step {step.id} can never be reached", step.id)
    pred = graph.pred
    ends = _reach([p for p, s in enumerate(steps) if s.kind in TERMINAL_KINDS], pred)
    stuck = sorted(p for p in reachable if p not in ends)
    if not stuck:
        return graph
    last = len(steps) - 1
    falls_off = [p for p in stuck if p == last and not succ[p]]
    for pos in falls_off:
        out.add(
            "no_end",
            "error",
            f"step {steps[pos].id} is the last step but does not resolve, hand off or escalate",
            steps[pos].id,
        )
    dead_ends = [p for p in stuck if not succ[p]]  # the last step, or only dangling targets
    trapped = [p for p in stuck if p not in _reach(dead_ends, pred)]
    if trapped:
        ids = ", ".join(steps[p].id for p in trapped[:6]) + (", ..." if len(trapped) > 6 else "")
        out.add(
            "no_end",
            "error",
            f"steps {ids} loop without reaching resolve, handoff or escalate",
            steps[trapped[0]].id,
        )
    return graph


def _check_data(steps: list[Step], graph: _Graph, draft: RoutineDraft, out: _Issues) -> None:
    """Every slot a tool argument takes is collected on every path before the call."""
    slots = {slot.name: slot for slot in draft.collect}
    context = frozenset(name for name, slot in slots.items() if slot.origin == "context")
    held = graph.must(context, lambda step, before: before | set(step.collects), steps)
    for pos, step in enumerate(steps):
        if step.tool_call is None:
            continue
        for argument in step.tool_call.arguments:
            name = argument.slot
            if name is None:
                continue
            if name not in slots:
                out.add(
                    "unknown_slot",
                    "error",
                    f"step {step.id}: argument `{argument.name}` takes slot `{name}`, which is "
                    "not in the routine's collect list",
                    step.id,
                )
            elif name not in held[pos]:
                out.add(
                    "missing_data",
                    "error",
                    f"step {step.id}: argument `{argument.name}` needs `{name}` "
                    f"({slots[name].description}), which no earlier step collects on every path",
                    step.id,
                )


_CONFIRMED = "confirmed"


def _confirm_effect(catalog: ToolCatalog) -> Any:
    """What a step does to what the customer was asked: a confirm ask gives a yes, a write uses it.

    A step that speaks of approval or confirmation (any kind) is an approval note.
    """

    def effect(step: Step, before: frozenset[str]) -> frozenset[str]:
        after = before | {_NOTED} if _APPROVAL_NOTE.search(step.text) else before
        if step.kind == "ask" and (step.confirm or _CONFIRM_ASK.search(step.text)):
            return after | {_CONFIRMED}
        tool = catalog.get(step.tool_call.tool) if step.tool_call is not None else None
        if tool is not None and tool.access == "write":
            return after - {_CONFIRMED}
        return after

    return effect


_NOTED = "approval noted"
_CONFIRM_ASK = re.compile(
    r"\b(?:confirm|explicit (?:yes|agreement|consent)|agree(?:s|ment)? to|consent)\b", re.I
)
_APPROVAL_NOTE = re.compile(
    r"\b(?:approv\w*|confirm\w*|consent|authori[sz]\w*|sign-?off|go-ahead)\b|['\u2019]s\s+OK\b",
    re.I,
)


def _check_confirmations(
    steps: list[Step], graph: _Graph, draft: RoutineDraft, catalog: ToolCatalog, out: _Issues
) -> None:
    """A write that a confirm_before rule governs has a confirmation ask before it on every path.

    A needs_approval tool with no approval note on it or before it gets a warning: the run pauses
    for approval without the customer being told why.
    """
    gates = [rule for rule in draft.rules if rule.kind == "confirm_before"]
    held = graph.must(frozenset(), _confirm_effect(catalog), steps)
    for pos, step in enumerate(steps):
        tool = catalog.get(step.tool_call.tool) if step.tool_call is not None else None
        if tool is None or tool.access != "write" or _CONFIRMED in held[pos]:
            continue
        rule = next(
            (r for r in gates if not r.governs or tool.name in r.governs or step.id in r.governs),
            None,
        )
        if rule is not None:
            out.add(
                "unconfirmed_write",
                "error",
                f"step {step.id} calls write tool `{tool.name}` on a path with no confirmation "
                f"ask before it, which the rule {rule.text!r} requires",
                step.id,
            )
        elif tool.needs_approval and not (_NOTED in held[pos] or _APPROVAL_NOTE.search(step.text)):
            out.add(
                "approval_unannounced",
                "warning",
                f"catalog: `{tool.name}` has needs_approval, so the run pauses for approval at "
                f"step {step.id}, and no step on the way tells the customer or asks for a yes",
                step.id,
            )


def _check_rules(
    steps: list[Step], draft: RoutineDraft, catalog: ToolCatalog, out: _Issues
) -> None:
    """A rule governs tools the routine calls and steps it has."""
    called = {step.tool_call.tool for step in steps if step.tool_call is not None}
    ids = {step.id for step in steps}
    for rule in draft.rules:
        if not rule.text.strip():
            out.add("empty_rule", "error", f"a {rule.kind} rule has no text")
        for name in rule.governs:
            if name in ids or name in called:
                continue
            what = "a catalog tool" if catalog.get(name) else "neither a step nor a catalog tool"
            out.add(
                "rule_governs_nothing",
                "warning",
                f"the rule {rule.text!r} governs `{name}`, {what} that this routine never "
                + ("calls" if catalog.get(name) else "has"),
            )


def _reach(starts: list[int], edges: list[list[int]]) -> set[int]:
    seen = set(starts)
    todo = list(starts)
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _argument_problem(parameters: dict[str, Any], name: str, value: object) -> str | None:
    """Why the tool's schema rejects `value` for parameter `name`, or None when it accepts it."""
    from jsonschema import Draft202012Validator
    from referencing.exceptions import Unresolvable

    # Validate against the property's schema *inside* the tool's schema, so that `$ref`s to the
    # tool's `$defs` (as pydantic-generated schemas use) resolve against the whole document.
    validator = Draft202012Validator(parameters).evolve(schema=parameters["properties"][name])
    try:
        errors = sorted(validator.iter_errors(value), key=str)
    except Unresolvable as exc:
        return f"its schema reference {exc.ref!r} cannot be resolved"
    return errors[0].message if errors else None


def _check_tool_call(step_id: str, call: ToolCall, catalog: ToolCatalog, out: _Issues) -> None:
    tool = catalog.get(call.tool)
    if tool is None:
        known = ", ".join(catalog.names()) or "the catalog is empty"
        out.add(
            "unknown_tool",
            "error",
            f"step {step_id} calls `{call.tool}`, which is not in the catalog ({known})",
            step_id,
        )
        return
    properties: dict[str, Any] = tool.parameters.get("properties", {})
    given: set[str] = set()
    for arg in call.arguments:
        if arg.name not in properties:
            out.add(
                "bad_arguments",
                "error",
                f"step {step_id}: `{call.tool}` has no parameter `{arg.name}`",
                step_id,
            )
            continue
        if arg.name in given:
            out.add(
                "bad_arguments",
                "error",
                f"step {step_id}: argument `{arg.name}` is given twice",
                step_id,
            )
        given.add(arg.name)
        if arg.value is not None:
            problem = _argument_problem(tool.parameters, arg.name, arg.value)
            if problem:
                out.add(
                    "bad_arguments",
                    "error",
                    f"step {step_id}: `{call.tool}` rejects {arg.name}={arg.value!r}: {problem}",
                    step_id,
                )
        elif (
            not (arg.from_context or "").strip()
            and not arg.slot  # a slot is a source: _check_data checks it is collected
            and arg.name in tool.parameters.get("required", [])
        ):
            out.add(
                "bad_arguments",
                "error",
                f"step {step_id}: required argument `{arg.name}` has neither a value nor a source",
                step_id,
            )
    for name in tool.parameters.get("required", []):
        if name not in given:
            out.add(
                "bad_arguments",
                "error",
                f"step {step_id}: `{call.tool}` needs argument `{name}`",
                step_id,
            )


def _check_model_text(
    steps: list[Step],
    draft: RoutineDraft,
    procedure: Procedure,
    catalog: ToolCatalog,
    out: _Issues,
) -> None:
    """A model answer is never trusted more than the SOP.

    Its text is scanned for injection as the SOP is (a flagged SOP sentence must not become an
    instruction either), and a write tool needs the procedure to ask for it: its name, an alias
    or its action must appear in the SOP's text, whatever the answer cites.
    """
    texts: list[tuple[str | None, str]] = [(None, draft.title), (None, draft.trigger)]
    texts += [(step.id, step.text) for step in steps]
    texts += [(None, rule.text) for rule in draft.rules]
    texts += [(None, item.fact) for item in draft.knowledge]
    texts += [(None, f"{case.when} {case.then}") for case in draft.edge_cases]
    for step_id, text in texts:
        excerpt = injection_excerpt(text)
        if excerpt is not None:
            where = f"step {step_id}" if step_id else "the routine"
            out.add(
                "model_injection",
                "error",
                f"{where} addresses the model or sopc, which no routine may: {excerpt!r}",
                step_id,
            )
    sop: tuple[str, set[str]] | None = None
    for step in steps:
        tool = catalog.get(step.tool_call.tool) if step.tool_call is not None else None
        if tool is None or tool.access != "write":
            continue
        if sop is None:
            text = " ".join(block_text(b) for b in [*procedure.context, *procedure.blocks])
            sop = (text, set(canonical_words(text)))
        if not _asks_for(tool, *sop):
            out.add(
                "unsupported_write",
                "error",
                f"step {step.id} calls the write tool `{tool.name}`, but the SOP never names it, "
                "an alias of it or its action: an answer cannot add an action",
                step.id,
            )


def _asks_for(tool: Tool, original: str, words: set[str]) -> bool:
    """Whether the SOP names the tool or an alias, or asks for its action anywhere.

    The action is as the offline compiler binds one (`generate.offline.binding`): the verb of
    the tool's name or description (or a synonym) and one of their objects, so "refund the
    customer" asks for `issue_refund` and "record the leave" for `book_absence` ("Record an
    absence ...").
    """
    text = original.lower()
    for name in [tool.name, *tool.aliases]:
        if name.lower() in text or name.replace("_", " ").lower() in text:
            return True
    if hands_over(tool) and HANDS_OVER.search(original):
        return True  # "pass it to the Contracts Manager" asks for the catalog's `refer_case`
    name_words = canonical_words(tool.name.replace("_", " "))
    described = canonical_words(tool.description)
    verbs = set(name_words[:1]) | set(described[:1])
    objects = set(name_words[1:]) | set(described[1:6]) | listed_objects(tool.description)
    words = words | done_again(words)  # "rebook the order" asks for a booking
    if bool(verbs & words) and bool(objects & words):
        return True
    if any((objects - {noun}) & words for noun in set(name_words[1:]) & words):
        return True  # the action said as the tool's noun: "hold the order", `place_order_hold`
    # "deny the claim" asks for `set_claim_decision(decision: approved | denied)`
    outcomes = {
        word
        for schema in tool.parameters.get("properties", {}).values()
        if isinstance(schema, dict)
        for value in schema.get("enum", []) or []
        for stem in verb_stems(str(value))
        for word in canonical_words(stem)
    }
    return bool(outcomes & words) and bool(objects & words)


def _citations(draft: RoutineDraft) -> list[tuple[str | None, str, SourceRef]]:
    """Every citation of a draft: (step id or None, what cites, the reference)."""
    steps = list(walk_steps(draft.steps))
    refs: list[tuple[str | None, str, SourceRef]] = [
        (step.id, f"step {step.id}", step.source) for step in steps if step.source is not None
    ]
    refs += [
        (None, f"edge case {n} ({one_line(case.when)!r})", case.source)
        for n, case in enumerate(draft.edge_cases, start=1)
        if case.source is not None
    ]
    refs += [
        (None, f"rule {n} ({one_line(rule.text)!r})", rule.source)
        for n, rule in enumerate(draft.rules, start=1)
        if rule.source is not None
    ]
    refs += [
        (None, f"fact {n} ({one_line(item.fact)!r})", item.source)
        for n, item in enumerate(draft.knowledge, start=1)
        if item.source is not None
    ]
    return refs


def _check_citation(
    step_id: str | None, label: str, ref: SourceRef, blocks: dict[str, Block], out: _Issues
) -> None:
    missing = [block_id for block_id in ref.block_ids if block_id not in blocks]
    if missing:
        out.add(
            "unknown_citation",
            "error",
            f"{label} cites block {', '.join(missing)}, which is not in the procedure",
            step_id,
        )
    words = len(ref.quote.split())
    if words > MAX_QUOTE_WORDS:
        out.add(
            "long_quote",
            "warning",
            f"{label} quotes {words} words; a citation quotes at most {MAX_QUOTE_WORDS}",
            step_id,
        )
    cited = [blocks[block_id] for block_id in ref.block_ids if block_id in blocks]
    if not cited or not ref.quote.strip():
        return
    source = quote_form("\n".join(block_text(block) for block in cited))
    if not _quote_in(ref.quote, source):
        out.add(
            "quote_not_in_source",
            "error",
            f"{label} quotes {one_line(ref.quote)!r}, which is not in block "
            f"{', '.join(ref.block_ids)}",
            step_id,
        )


def _quote_in(quote: str, source: str) -> bool:
    """True when every part of the quote (split at ellipses) occurs in the source, in order.

    Both sides are in `quote_form`: the marks the prompt's rendering adds do not count.
    """
    position = 0
    for part in ELLIPSIS.split(quote):
        norm = quote_form(part)
        if not norm:
            continue
        found = source.find(norm, position)
        if found < 0:
            return False
        position = found + len(norm)
    return True


def _check_approvals(
    draft: RoutineDraft, steps: list[Step], catalog: ToolCatalog, out: _Issues
) -> None:
    """A write tool the catalog lets run unapproved, on a path where nothing checks it first.

    Warned only when some path reaches the write with no confirmation ask and no approval note
    before it: a routine that asks first is fine as it is. The path is named; past the path
    limit, the must-analysis finds the writes left.
    """

    def effect(step: Step, before: frozenset[str]) -> frozenset[str]:
        confirms = step.kind == "ask" and (step.confirm or _CONFIRM_ASK.search(step.text))
        return before | {_NOTED} if confirms or _APPROVAL_NOTE.search(step.text) else before

    positions = step_positions(steps)
    found_at: dict[str, dict[int, str]] = {}  # tool -> position -> the first path that shows it

    def check(pos: int, held: frozenset[str], path: Callable[[], str]) -> None:
        step = steps[pos]
        tool = catalog.get(step.tool_call.tool) if step.tool_call is not None else None
        if (
            tool is not None
            and tool.access == "write"
            and not tool.needs_approval
            and _NOTED not in held
            and not _APPROVAL_NOTE.search(step.text)
            and pos not in found_at.setdefault(tool.name, {})
        ):
            found_at[tool.name][pos] = path()  # said when found: O(path), not O(path²)

    found = enumerate_paths(draft)
    for path in found.paths:
        held: frozenset[str] = frozenset()
        for n, taken in enumerate(path.steps):
            pos = positions[taken.step_id]
            check(pos, held, partial(_the_path, path, n))  # spelt out only when it shows a write
            held = effect(steps[pos], held)
    if not found.complete and steps:
        graph = _Graph(_successors(steps, positions, _Issues(out.routine_id)))
        for pos, held in enumerate(graph.must(frozenset(), effect, steps)):
            check(pos, held, lambda: "some path")
    for name in sorted(found_at, key=lambda tool: min(found_at[tool])):
        first, *more = sorted(found_at[name])
        step = steps[first]
        also = f" (also at step {', '.join(steps[pos].id for pos in more)})" if more else ""
        out.add(
            "write_without_approval",
            "warning",
            f"catalog: `{name}` is a write tool without needs_approval, and on "
            f"{found_at[name][first]} no step before step {step.id} asks the customer to "
            f"confirm or notes an approval{also}; set needs_approval in the catalog, or confirm "
            "first, if a person must agree to it",
            step.id,
        )


def _the_path(path: RoutinePath, upto: int) -> str:
    return f"the path {path.describe(upto=upto)}"


def _units(procedure: Procedure) -> Iterator[tuple[Block, list[str], bool]]:
    """What coverage counts: (block, its sentences to cite, whether it is procedure text).

    Instruction and constraint sentences of the procedure's own blocks (background sections
    count only for their constraints), constraint sentences of its context, and every table.
    """
    for where, blocks in (("context", procedure.context), ("own", procedure.blocks)):
        background = where == "context"
        for block in blocks:
            if isinstance(block, Heading):
                title = NUMBERING.sub("", block.text).strip()
                background = where == "context" or bool(CONTEXT_TITLE.match(title))
                continue
            if isinstance(block, Table):
                yield block, [quote_form(block_text(block))], not background
                continue
            if isinstance(block, Flowchart):  # each node is a sentence to cite
                texts = [n.text for n in block.nodes if n.kind != "start" and not n.is_marker()]
                if texts:
                    yield block, texts, not background
                continue
            if not isinstance(block, (ListItem, Paragraph)):
                continue
            sentences = [
                s
                for s in split_sentences(block.text)
                if injection_excerpt(s) is None
                and (is_constraint(s) or (not background and is_instruction(s)))
            ]
            if sentences:
                yield block, sentences, not background


def _cited(block: Block, sentences: list[str], by_block: dict[str, list[str]]) -> list[bool]:
    """Which of a block's sentences the quotes citing it cover."""
    quotes = by_block.get(block.id)
    if quotes is None:
        return [False] * len(sentences)
    if len(sentences) == 1 or isinstance(block, Table):
        return [True] * len(sentences)  # citing the block is citing its only sentence
    forms = [quote_form(sentence) for sentence in sentences]
    return [any(_overlaps(q, form) for q in quotes) for form in forms]


def _quotes_by_block(refs: list[SourceRef]) -> dict[str, list[str]]:
    by_block: dict[str, list[str]] = {}
    for ref in refs:
        for block_id in ref.block_ids:
            by_block.setdefault(block_id, []).append(ref.quote)
    return by_block


def _coverage(procedure: Procedure, refs: list[SourceRef]) -> float | None:
    """Share of the instruction and rule sentences that citations cover; None if there are none."""
    by_block = _quotes_by_block(refs)
    total = covered = 0
    for block, sentences, _ in _units(procedure):
        total += len(sentences)
        covered += sum(_cited(block, sentences, by_block))
    return None if total == 0 else covered / total


def dropped_rules(procedure: Procedure, refs: list[SourceRef]) -> list[tuple[Block, str]]:
    """The constraint sentences of a procedure (and its context) that no citation covers."""
    by_block = _quotes_by_block(refs)
    out: list[tuple[Block, str]] = []
    for block, sentences, _ in _units(procedure):
        if isinstance(block, Table):
            continue  # a table is reference data: covered or not, it is no rule sentence
        for sentence, cited in zip(sentences, _cited(block, sentences, by_block), strict=True):
            if not cited and is_constraint(sentence):
                out.append((block, sentence))
    return out


def _overlaps(quote: str, sentence: str) -> bool:
    """True when a quote (in any form) and a sentence in `quote_form` share the sentence's text."""
    parts = [quote_form(p) for p in ELLIPSIS.split(quote)]
    head = " ".join(sentence.split()[:5])
    return any(p and (p in sentence or sentence in p or head in p) for p in parts)
