"""REVIEW.md: the reviewer's index of routines, issues, coverage and Mermaid flowcharts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from sop_compiler.config import Settings
from sop_compiler.emit._env import render
from sop_compiler.emit._plan import Triage, plan_network, routine_paths, title_of
from sop_compiler.escape import mermaid_label, one_line
from sop_compiler.models import TERMINAL_KINDS, Routine, Step, ValidationReport

__all__ = ["render_review", "routine_flowchart"]


@dataclass(frozen=True)
class _Entry:
    """One routine as the review template shows it."""

    routine: Routine
    agent: str
    md_link: str
    json_link: str
    steps: int
    errors: list[str]
    warnings: list[str]
    issues: list[tuple[str, str, str, str]]  # severity, code, step, message
    coverage: str
    flowchart: list[str]
    sources: list[tuple[str, str, str]]  # step, location, quote
    uncovered: list[str]  # the SOP rules no step, rule or fact cites


def render_review(
    routines: list[Routine],
    reports: dict[str, ValidationReport],
    *,
    failures: dict[str, str],
    settings: Settings | None = None,
    not_deployed: dict[str, str] | None = None,
) -> dict[str, bytes]:
    """REVIEW.md for a set of routines, their reports, and the procedures that failed.

    `not_deployed` (`<agent>/<id>` -> why) are routines the agent network runs without.
    """
    not_deployed = not_deployed or {}
    plan = plan_network(routines, settings)
    deployed = [r for r in routines if f"{r.agent}/{r.id}" not in not_deployed]
    network = plan_network(deployed, settings)
    names = {group: s.name for s in plan.specialists for group in s.groups}
    entries = []
    for routine in sorted(routines, key=lambda r: (names.get(r.agent, r.agent), r.id)):
        # Keyed `<agent>/<id>` (ids are unique only within an agent); plain ids still accepted.
        report = reports.get(f"{routine.agent}/{routine.id}") or reports.get(
            routine.id, ValidationReport(routine_id=routine.id)
        )
        md_path, json_path = routine_paths(routine)
        entries.append(
            _Entry(
                routine=routine,
                agent=names.get(routine.agent, title_of(routine.agent)),
                md_link=quote(md_path),
                json_link=quote(json_path),
                steps=len(routine.walk()),
                errors=[issue.code for issue in report.errors],
                warnings=[issue.code for issue in report.warnings],
                issues=[
                    (issue.severity, issue.code, issue.step_id or "", issue.message)
                    for issue in report.issues
                ],
                coverage=f"{report.coverage:.0%}" if report.coverage is not None else "n/a",
                flowchart=routine_flowchart(routine),
                sources=_sources(routine),
                uncovered=[
                    issue.message.split(": ", 1)[-1]
                    for issue in report.warnings
                    if issue.code == "dropped_rule"
                ],
            )
        )
    return {
        "REVIEW.md": render(
            "review.md.j2",
            entries=entries,
            failures=sorted(failures.items()),
            not_deployed=sorted(not_deployed.items()),
            network=_network_graph(network.top) if network.specialists else [],
        )
    }


def _sources(routine: Routine) -> list[tuple[str, str, str]]:
    rows = []
    for step in routine.walk():
        if step.source is None:
            if step.kind not in TERMINAL_KINDS:
                rows.append((step.id, "**no source**: not in the SOP", ""))
            continue
        where = step.source.file or routine.source.file
        if step.source.page is not None:
            where += f" p.{step.source.page}"
        elif step.source.paragraph is not None:
            where += f" ¶{step.source.paragraph}"
        rows.append((step.id, where, step.source.quote))
    return rows


def _node_ids(steps: list[Step]) -> dict[int, str]:
    """Mermaid node ids by position (`s1`, `s2a`); ids from the model are sanitised and deduped."""
    taken: set[str] = set()
    out: dict[int, str] = {}
    for index, step in enumerate(steps):
        base = "s" + re.sub(r"[^A-Za-z0-9]", "_", step.id)[:40]
        node, n = base, 1
        while node in taken:
            n += 1
            node = f"{base}_{n}"
        taken.add(node)
        out[index] = node
    return out


def _step_label(step: Step) -> str:
    if step.kind == "condition" and step.condition is not None:
        text = step.condition.test
    elif step.kind == "switch" and step.switch is not None:
        text = step.switch.subject
    elif step.kind == "call" and step.routine:
        text = f"follow {step.routine}"
    elif step.kind == "tool_call" and step.tool_call is not None:
        text = f"call {step.tool_call.tool}"
    elif step.kind in {"handoff", "escalate"} and step.target:
        text = f"{step.kind} to {step.target}"
    else:
        text = step.text or step.kind
    return mermaid_label(f"{step.id}. {one_line(text)}")


def routine_flowchart(routine: Routine) -> list[str]:
    """A Mermaid `flowchart TD` of the routine, one line per node or edge (unindented)."""
    steps = routine.walk()
    nodes = _node_ids(steps)
    by_id: dict[str, str] = {}
    for index, step in enumerate(steps):
        by_id.setdefault(step.id, nodes[index])
    lines = ["flowchart TD"]
    if not steps:
        return [*lines, 'empty["no steps"]']
    missing: dict[str, str] = {}

    def target(step_id: str) -> str:
        if step_id in by_id:
            return by_id[step_id]
        if step_id not in missing:
            missing[step_id] = f"missing{len(missing) + 1}"
            lines.append(f"{missing[step_id]}[{mermaid_label(f'missing step {step_id}')}]")
        return missing[step_id]

    for index, step in enumerate(steps):
        label = _step_label(step)
        node = nodes[index]
        if step.kind in {"condition", "switch"}:
            lines.append(f"{node}{{{label}}}")
        elif step.kind == "call":
            lines.append(f"{node}[[{label}]]")
        elif step.kind in TERMINAL_KINDS:
            lines.append(f"{node}([{label}])")
        else:
            lines.append(f"{node}[{label}]")
    for index, step in enumerate(steps):
        node = nodes[index]
        following = steps[index + 1].id if index + 1 < len(steps) else None
        if step.kind == "condition" and step.condition is not None:
            lines.append(f"{node} -->|yes| {target(step.condition.then_step)}")
            otherwise = step.condition.else_step or following
            if otherwise:
                lines.append(f"{node} -->|no| {target(otherwise)}")
        elif step.kind == "switch" and step.switch is not None:
            for case in step.switch.cases:
                edge = mermaid_label(one_line(case.when)[:40])
                lines.append(f"{node} -->|{edge[1:-1]}| {target(case.goto)}")
            otherwise = step.switch.default or following
            if otherwise:
                lines.append(f"{node} -->|otherwise| {target(otherwise)}")
        elif step.kind not in TERMINAL_KINDS:
            after = step.next_step or following
            if after:
                lines.append(f"{node} --> {target(after)}")
    return lines


def _network_graph(top: Triage) -> list[str]:
    """A Mermaid graph of the network: triage to each member, and each member back to triage."""
    lines = ["flowchart LR"]
    ids: dict[int, str] = {}

    def node(member: object, name: str) -> str:
        if id(member) not in ids:
            ids[id(member)] = f"a{len(ids)}"
            lines.append(f"{ids[id(member)]}[{mermaid_label(name)}]")
        return ids[id(member)]

    edges: list[str] = []
    for triage in top.walk():
        head = node(triage, triage.name)
        for member in triage.members:
            child = node(member, member.name)
            edges += [f"{head} --> {child}", f"{child} -.-> {head}"]
    return lines + edges
