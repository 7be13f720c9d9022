"""How a structural diff of two routine sets is shown: Markdown for a PR comment, or JSON."""

from __future__ import annotations

import os
from pathlib import Path

from sop_compiler.diff import RoutineChange, RoutineSetDiff, StepChange, counts
from sop_compiler.escape import md_cell, md_text
from sop_compiler.render.run import append_summary, plural

__all__ = ["diff_markdown", "render_diff"]

_MAX_CELL = 160  # a table cell is a glance, not the whole step: the routine file has the rest


def render_diff(diff: RoutineSetDiff, *, fmt: str) -> None:
    """Print the diff as Markdown (`text`, default) or JSON; `github` also adds it to the job
    summary (`$GITHUB_STEP_SUMMARY`)."""
    if fmt == "json":
        print(diff.model_dump_json(indent=2))
        return
    text = diff_markdown(diff)
    print(text, end="")
    summary = os.environ.get("GITHUB_STEP_SUMMARY") if fmt == "github" else None
    if summary:
        append_summary(Path(summary), text)


def _cell(text: str | None) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    if len(text) > _MAX_CELL:
        text = text[: _MAX_CELL - 1].rstrip() + "…"
    return md_cell(text)


def _step(step_id: str | None) -> str:
    return f" (step {step_id})" if step_id else ""


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def _step_row(change: StepChange) -> str:
    if change.old_id and change.new_id and change.old_id != change.new_id:
        where = f"{change.old_id} → {change.new_id}"
    else:
        where = change.new_id or change.old_id or ""
    after = "" if change.change == "moved" else change.after
    # Step ids come from model output: escaped like any other cell.
    return f"| {change.change} | {md_cell(where)} | {_cell(change.before)} | {_cell(after)} |"


def _routine_section(change: RoutineChange) -> list[str]:
    lines = [f"### {_code(change.agent + '/' + change.id)}: {md_text(change.title)}", ""]
    if change.title_before:
        lines += [f"Title was: {md_text(change.title_before)}", ""]
    if change.trigger:
        lines += [f"Trigger: {md_text(change.trigger[0])} → {md_text(change.trigger[1])}", ""]
    if change.steps:
        lines += ["| change | step | before | after |", "|---|---|---|---|"]
        lines += [_step_row(step) for step in change.steps]
        lines.append("")
    if change.tools_added or change.tools_removed:
        parts = [
            f"added {', '.join(map(_code, change.tools_added))}" if change.tools_added else "",
            f"removed {', '.join(map(_code, change.tools_removed))}"
            if change.tools_removed
            else "",
        ]
        lines += ["Tools: " + "; ".join(p for p in parts if p), ""]
    for label, cases in (
        ("Rules added", change.rules_added),
        ("Rules removed", change.rules_removed),
        ("Edge cases added", change.edge_cases_added),
        ("Edge cases removed", change.edge_cases_removed),
    ):
        if cases:
            lines += [f"{label}:", *[f"- {md_text(case)}" for case in cases], ""]
    for label, issues in (("New", change.issues_new), ("Fixed", change.issues_fixed)):
        if issues:
            lines.append(f"{label} validation issues:")
            lines += [
                f"- {issue.severity} {_code(issue.code)}"
                f"{_step(issue.step_id)}: {md_text(issue.message)}"
                for issue in issues
            ]
            lines.append("")
    return lines


def diff_markdown(diff: RoutineSetDiff) -> str:
    """The diff as Markdown for a PR comment: headline counts, then a section per routine."""
    total = counts(diff)
    lines = [f"## Routine changes: {_code(diff.old)} → {_code(diff.new)}", ""]
    if not (diff.added or diff.removed or diff.changed or diff.unreadable):
        return "\n".join(
            [*lines, f"No routine changes ({plural(diff.unchanged, 'routine')} unchanged).", ""]
        )
    headline = [
        f"{total['added']} added",
        f"{total['removed']} removed",
        f"{total['changed']} changed",
        f"{diff.unchanged} unchanged",
    ]
    lines += ["**" + ", ".join(headline) + "**", ""]
    steps = [
        f"{n} {name.removeprefix('steps ')}"
        for name, n in sorted(total.items())
        if name.startswith("steps ") and n
    ]
    if steps:
        lines += ["Steps: " + ", ".join(steps), ""]
    for label, refs in (("Added", diff.added), ("Removed", diff.removed)):
        if refs:
            lines += [f"### {label} routines", ""]
            lines += [
                f"- {_code(ref.agent + '/' + ref.id)}: {md_text(ref.title)} "
                f"({plural(ref.steps, 'step')})"
                for ref in refs
            ]
            lines.append("")
    if diff.unreadable:  # left out of the comparison: a reviewer must know the diff is partial
        lines += ["### Unreadable routines", ""]
        lines += [f"- {u.side} {_code(u.file)}: {md_text(u.reason)}" for u in diff.unreadable]
        lines.append("")
    for change in diff.changed:
        lines += _routine_section(change)
    return "\n".join(lines)
