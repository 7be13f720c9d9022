"""REVIEW.md: the reviewer's index of routines, issues, coverage and Mermaid flowcharts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from sop_compiler.config import Settings
from sop_compiler.emit._env import render
from sop_compiler.emit._plan import Triage, plan_network, routine_paths, title_of
from sop_compiler.escape import mermaid_label, one_line
from sop_compiler.models import TERMINAL_KINDS, Flowchart, Issue, Routine, Step, ValidationReport

__all__ = ["render_review", "routine_flowchart", "source_graph"]


_SHOWN_PATHS = 40  # paths listed per routine; the count says when there are more


@dataclass(frozen=True)
class _StepRow:
    """One step as the review shows it: what it does and the SOP text it comes from."""

    id: str
    kind: str
    text: str
    where: str  # file and page or paragraph; "" when the step cites nothing
    quote: str


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
    infos: list[str]
    issues: list[tuple[str, str, str, str, str]]  # severity, code, step, message, quote
    coverage: str
    flowchart: list[str]
    source_graph: list[str]  # the SOP's own flowchart, as read, when it had one
    rows: list[_StepRow]
    added: list[_StepRow]  # steps that cite no SOP text: the compiler added them
    uncovered: list[str]  # the SOP rules no step, rule or fact cites
    paths: list[str]  # the interpreter's paths (`sopc paths`): ways -> calls -> ending
    path_count: int
    paths_complete: bool


@dataclass(frozen=True)
class _AgentCount:
    """One agent's line in the index."""

    name: str
    routines: int
    steps: int
    errors: int
    warnings: int
    infos: int
    added: int


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
    # the interpreter of `sopc eval`, so that REVIEW.md names each path as eval and paths do
    from sop_compiler.eval.paths_report import compact_paths

    not_deployed = not_deployed or {}
    plan = plan_network(routines, settings)
    deployed = [r for r in routines if f"{r.agent}/{r.id}" not in not_deployed]
    network = plan_network(deployed, settings)
    names = {group: s.name for s in plan.specialists for group in s.groups}
    siblings: dict[str, dict[str, Routine]] = {}
    for routine in routines:
        siblings.setdefault(routine.agent, {})[routine.id] = routine
    entries = []
    for routine in sorted(routines, key=lambda r: (names.get(r.agent, r.agent), r.id)):
        # Keyed `<agent>/<id>` (ids are unique only within an agent); plain ids still accepted.
        report = reports.get(f"{routine.agent}/{routine.id}") or reports.get(
            routine.id, ValidationReport(routine_id=routine.id)
        )
        md_path, json_path = routine_paths(routine)
        rows = _step_rows(routine)
        by_key = {(r.agent, r.id): r for r in siblings[routine.agent].values()}
        paths, path_count, paths_complete = compact_paths(routine, by_key, limit=_SHOWN_PATHS)
        entries.append(
            _Entry(
                routine=routine,
                agent=names.get(routine.agent, title_of(routine.agent)),
                md_link=quote(md_path),
                json_link=quote(json_path),
                steps=len(rows),
                errors=[issue.code for issue in report.errors],
                warnings=[issue.code for issue in report.warnings],
                infos=[issue.code for issue in report.issues if issue.severity == "info"],
                issues=[
                    (
                        issue.severity,
                        issue.code,
                        issue.step_id or "",
                        issue.message,
                        one_line(issue.quote or ""),
                    )
                    for issue in sorted(report.issues, key=_issue_order)
                ],
                coverage=f"{report.coverage:.0%}" if report.coverage is not None else "n/a",
                flowchart=routine_flowchart(routine),
                source_graph=source_graph(routine.source_flowchart),
                rows=rows,
                added=[row for row in rows if not row.where],
                uncovered=[
                    issue.message.split(": ", 1)[-1]
                    for issue in report.issues
                    if issue.code == "dropped_rule"
                ],
                paths=paths,
                path_count=path_count,
                paths_complete=paths_complete,
            )
        )
    return {
        "REVIEW.md": render(
            "review.md.j2",
            entries=entries,
            agents=_agent_counts(entries),
            failures=sorted(failures.items()),
            not_deployed=sorted(not_deployed.items()),
            network=_network_graph(network.top) if network.specialists else [],
        )
    }


_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def _issue_order(issue: Issue) -> tuple[int, str, str]:
    return (_SEVERITY_ORDER.get(issue.severity, 3), issue.code, issue.step_id or "")


def _agent_counts(entries: list[_Entry]) -> list[_AgentCount]:
    """Per agent: routines, steps, issues by severity, steps the compiler added."""
    by_agent: dict[str, list[_Entry]] = {}
    for entry in entries:
        by_agent.setdefault(entry.agent, []).append(entry)
    return [
        _AgentCount(
            name=name,
            routines=len(group),
            steps=sum(e.steps for e in group),
            errors=sum(len(e.errors) for e in group),
            warnings=sum(len(e.warnings) for e in group),
            infos=sum(len(e.infos) for e in group),
            added=sum(len(e.added) for e in group),
        )
        for name, group in by_agent.items()
    ]


def _step_rows(routine: Routine) -> list[_StepRow]:
    rows = []
    for step in routine.walk():
        if step.source is None:
            rows.append(_StepRow(step.id, step.kind, one_line(step.text), "", ""))
            continue
        where = step.source.file or routine.source.file
        if step.source.page is not None:
            where += f" p.{step.source.page}"
        elif step.source.paragraph is not None:
            where += f" ¶{step.source.paragraph}"
        rows.append(
            _StepRow(step.id, step.kind, one_line(step.text), where, one_line(step.source.quote))
        )
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
                lines.append(f"{node} -->|{edge}| {target(case.goto)}")
            otherwise = step.switch.default or following
            if otherwise:
                lines.append(f"{node} -->|otherwise| {target(otherwise)}")
        elif step.kind not in TERMINAL_KINDS:
            after = step.next_step or following
            if after:
                lines.append(f"{node} --> {target(after)}")
    return lines


_SHAPES = {"decision": "{%s}", "start": "([%s])", "end": "([%s])", "io": "[/%s/]"}


def source_graph(chart: Flowchart | None) -> list[str]:
    """The SOP's flowchart as sopc read it, in Mermaid: every node and labelled edge, so a
    reviewer sees it beside the routine's own graph."""
    if chart is None:
        return []
    lines = ["flowchart TD"]
    ids = {node.id: f"f{index}" for index, node in enumerate(chart.nodes, start=1)}
    for node in chart.nodes:
        label = mermaid_label(one_line(node.text) or node.id)
        lines.append(ids[node.id] + _SHAPES.get(node.kind, "[%s]") % label)
    for edge in chart.edges:
        if edge.source not in ids or edge.target not in ids:
            continue
        arrow = f" -->|{mermaid_label(one_line(edge.label)[:40])}| " if edge.label else " --> "
        lines.append(f"{ids[edge.source]}{arrow}{ids[edge.target]}")
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
