"""validate: check a routine against its procedure and the tool catalog; a report, not an exception.

The execution semantics checked here are those of `sop_compiler.models.routine`: steps run in
flattened order; a condition jumps to `then_step` or to `else_step` (the next step when empty); a
step with `next_step` jumps there; resolve, handoff and escalate end the routine.

The text helpers it shares with the offline backend live in `sop_compiler.text`.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from sop_compiler.config import Settings
from sop_compiler.models import (
    TERMINAL_KINDS,
    Block,
    Heading,
    Issue,
    ListItem,
    Paragraph,
    Procedure,
    Routine,
    RoutineDraft,
    SourceRef,
    Step,
    ToolCall,
    ToolCatalog,
    ValidationReport,
    block_text,
)
from sop_compiler.models.report import Severity
from sop_compiler.models.routine import walk_steps
from sop_compiler.slug import agent_key
from sop_compiler.text import (
    CONTEXT_TITLE,
    ELLIPSIS,
    NUMBERING,
    injection_excerpt,
    is_instruction,
    normalize,
    split_sentences,
)

__all__ = ["check_draft", "validate"]


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
    _check_steps(steps, out)
    _check_flow(steps, out)
    if agents is not None:
        own = draft.agent if isinstance(draft, Routine) else procedure.agent
        _check_handoffs(steps, own, handoff_names([*agents, own], settings), settings, out)
    for step in steps:
        if step.tool_call is not None:
            _check_tool_call(step.id, step.tool_call, catalog, out)
    blocks = {block.id: block for block in [*procedure.context, *procedure.blocks]}
    refs: list[tuple[str | None, str, SourceRef]] = [
        (step.id, f"step {step.id}", step.source) for step in steps if step.source is not None
    ]
    refs += [
        (None, f"edge case {n} ({case.when[:40]!r})", case.source)
        for n, case in enumerate(draft.edge_cases, start=1)
        if case.source is not None
    ]
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
    _check_approvals(steps, catalog, out)
    for question in draft.open_questions:
        out.add("open_question", "warning", f"open question: {question}")
    coverage = _coverage(procedure, [ref for _, _, ref in refs])
    if coverage is not None and coverage < settings.coverage_threshold:
        out.add(
            "low_coverage",
            "warning",
            f"steps cite {coverage:.0%} of the SOP's instruction sentences "
            f"(threshold {settings.coverage_threshold:.0%})",
        )
    for block in [*procedure.context, *procedure.blocks]:
        excerpt = injection_excerpt(block_text(block))
        if excerpt is not None:
            out.add(
                "possible_injection",
                "warning",
                f"block {block.id} ({block.prov.label()}) addresses the model or sopc: {excerpt!r}",
            )
    return out.items, coverage


def _check_steps(steps: list[Step], out: _Issues) -> None:
    seen: set[str] = set()
    for step in steps:
        if step.id in seen:
            out.add(
                "duplicate_step_id", "error", f"step id {step.id} is used more than once", step.id
            )
        seen.add(step.id)
        if not step.text.strip():
            out.add("empty_step", "error", f"step {step.id} has no text", step.id)
        if step.kind == "tool_call" and step.tool_call is None:
            out.add(
                "missing_tool_call",
                "error",
                f"step {step.id} is a tool_call without a tool",
                step.id,
            )
        if step.kind == "condition" and step.condition is None:
            out.add(
                "missing_condition",
                "error",
                f"step {step.id} is a condition without a test and targets",
                step.id,
            )


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


def _successors(steps: list[Step], index: dict[str, int], out: _Issues) -> list[list[int]]:
    """Where each step can go next (by position); reports targets that name no step."""
    succ: list[list[int]] = []
    for pos, step in enumerate(steps):
        following = [pos + 1] if pos + 1 < len(steps) else []
        targets: list[tuple[str, str | None]] = []
        if step.kind in TERMINAL_KINDS:
            succ.append([])
            continue
        if step.kind == "condition" and step.condition is not None:
            targets = [("then", step.condition.then_step), ("else", step.condition.else_step)]
        elif step.next_step:
            targets = [("next", step.next_step)]
        nexts: list[int] = []
        for label, target in targets:
            if target is None:
                nexts += following
            elif target in index:
                nexts.append(index[target])
            else:
                out.add(
                    "dangling_target",
                    "error",
                    f"step {step.id}: {label} target {target!r} is not a step",
                    step.id,
                )
        succ.append(nexts if targets else following)
    return succ


def _check_flow(steps: list[Step], out: _Issues) -> None:
    if not steps:
        out.add("no_end", "error", "the routine has no steps")
        return
    index: dict[str, int] = {}
    for pos, step in enumerate(steps):
        index.setdefault(step.id, pos)
    succ = _successors(steps, index, out)
    reachable = _reach([0], succ)
    for pos, step in enumerate(steps):
        if pos not in reachable:
            out.add("unreachable_step", "error", f"step {step.id} can never be reached", step.id)
    pred: list[list[int]] = [[] for _ in steps]
    for pos, nexts in enumerate(succ):
        for nxt in nexts:
            pred[nxt].append(pos)
    ends = _reach([p for p, s in enumerate(steps) if s.kind in TERMINAL_KINDS], pred)
    stuck = sorted(p for p in reachable if p not in ends)
    if not stuck:
        return
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
        elif not (arg.from_context or "").strip() and arg.name in tool.parameters.get(
            "required", []
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
    cited = [blocks[block_id] for block_id in ref.block_ids if block_id in blocks]
    if not cited or not ref.quote.strip():
        return
    source = normalize(" ".join(block_text(block) for block in cited))
    if not _quote_in(ref.quote, source):
        out.add(
            "quote_not_in_source",
            "error",
            f"{label}: quote {ref.quote[:60]!r} is not in block {', '.join(ref.block_ids)}",
            step_id,
        )


def _quote_in(quote: str, source: str) -> bool:
    """True when every part of the quote (split at ellipses) occurs in the source, in order."""
    position = 0
    for part in ELLIPSIS.split(quote):
        norm = normalize(part).strip(" \"'")
        if not norm:
            continue
        found = source.find(norm, position)
        if found < 0:
            return False
        position = found + len(norm)
    return True


def _check_approvals(steps: list[Step], catalog: ToolCatalog, out: _Issues) -> None:
    first_use: dict[str, str] = {}
    for step in steps:
        if step.tool_call is not None:
            first_use.setdefault(step.tool_call.tool, step.id)
    for name, step_id in first_use.items():
        tool = catalog.get(name)
        if tool is not None and tool.access == "write" and not tool.needs_approval:
            out.add(
                "write_without_approval",
                "warning",
                f"step {step_id} calls write tool `{name}`, which does not need approval",
                step_id,
            )


def _coverage(procedure: Procedure, refs: list[SourceRef]) -> float | None:
    """Share of the procedure's instruction sentences that citations cover; None if none."""
    by_block: dict[str, list[str]] = {}
    for ref in refs:
        for block_id in ref.block_ids:
            by_block.setdefault(block_id, []).append(normalize(ref.quote))
    total = covered = 0
    background = False
    for block in procedure.blocks:
        if isinstance(block, Heading):
            background = bool(CONTEXT_TITLE.match(NUMBERING.sub("", block.text).strip()))
        if background or not isinstance(block, (ListItem, Paragraph)):
            continue
        sentences = [
            normalize(s)
            for s in split_sentences(block.text)
            if is_instruction(s) and injection_excerpt(s) is None
        ]
        total += len(sentences)
        quotes = by_block.get(block.id)
        if quotes is None:
            continue
        if len(sentences) == 1:
            covered += 1  # citing the block is citing its only instruction
            continue
        covered += sum(1 for sentence in sentences if any(_overlaps(q, sentence) for q in quotes))
    return None if total == 0 else covered / total


def _overlaps(quote: str, sentence: str) -> bool:
    parts = [p.strip(" \"'") for p in ELLIPSIS.split(quote) if p.strip(" \"'")]
    head = " ".join(sentence.split()[:5])
    return any(p in sentence or sentence in p or head in p for p in parts)
