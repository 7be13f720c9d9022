"""`sopc paths`: every path through every routine, as a reviewer reads them, with path checks.

A path is one walk of the routine interpreter (`sop_compiler.interpret.explore`, the walker
`sopc eval` and `sopc scenarios` use, so the three always agree): the way each condition and
switch went, the tool calls in order, the slots collected, and how it ends; the walks that end
come first, then those that stop, so that eval's coverage numbers them alike. Checks over paths
are reported like validation issues (code, severity, message):

- `repeated_write` (warning): one path calls the same write tool twice (a second refund, a
  second ticket); sometimes meant ("send the link once more"), so a reviewer decides;
- `no_ending` (error): a path that stops without resolve, escalate or hand off (a loop that
  never leaves, a step that is missing).

A write reached without the confirmation a rule asks for is already a validation error of
`sopc compile` (`write_without_approval`); a step after an escalation or handoff cannot be on a
path, since those steps end it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from sop_compiler.eval.evaluate import load_routines, render_call, render_ending
from sop_compiler.interpret import Trace, explore
from sop_compiler.models import ToolCatalog
from sop_compiler.models.routine import Routine

__all__ = ["PathCheck", "PathView", "RoutinePathsView", "compact_paths", "routine_paths"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PathView(_Model):
    """One path: the ways taken, the calls in order, what was collected, how it ends."""

    number: int
    ways: list[str] = Field(description='Each condition or switch met: "2a then: <test>".')
    calls: list[str]
    collected: list[str]
    ending: str


class PathCheck(_Model):
    code: str
    severity: str
    message: str


class RoutinePathsView(_Model):
    agent: str
    routine: str
    paths: list[PathView]
    complete: bool = Field(description="False when there were more paths than were walked.")
    checks: list[PathCheck]


def routine_paths(
    output: Path, catalog: ToolCatalog, *, max_paths: int = 1000
) -> list[RoutinePathsView]:
    """The paths and path checks of every routine under `output/routines`."""
    routines = load_routines(output)
    return [
        _view(routine, routines, catalog, max_paths)
        for _, routine in sorted(routines.items(), key=lambda item: item[0])
    ]


def compact_paths(
    routine: Routine, routines: Mapping[tuple[str, str], Routine], *, limit: int
) -> tuple[list[str], int, bool]:
    """The paths of `routine` in one line each, as REVIEW.md lists them: the ways taken (as
    `sopc eval` names an uncovered path), the tools called, the ending. Returns the first `limit`
    lines, how many paths there are, and whether that count is complete."""
    found = explore(routine, routines=routines, max_paths=max(limit, 1000))
    traces = [*found.done, *found.stuck]
    lines = []
    for trace in traces[:limit]:
        ways = ", ".join(f"{c.where(trace.routine)} {c.take}" for c in trace.choices)
        calls = ", ".join(call.tool for call in trace.calls)
        lines.append(f"{ways or 'no branch'} → {calls or 'no tool call'} → {_ending(trace)}")
    return lines, len(traces), found.complete


def _view(
    routine: Routine,
    routines: Mapping[tuple[str, str], Routine],
    catalog: ToolCatalog,
    max_paths: int,
) -> RoutinePathsView:
    found = explore(routine, routines=routines, max_paths=max_paths)
    traces = [*found.done, *found.stuck]
    views: list[PathView] = []
    checks: list[PathCheck] = []
    for number, trace in enumerate(traces, start=1):
        views.append(_path(number, trace))
        checks += _checks(number, trace, catalog)
    return RoutinePathsView(
        agent=routine.agent,
        routine=routine.id,
        paths=views,
        complete=found.complete,
        checks=checks,
    )


def _path(number: int, trace: Trace) -> PathView:
    return PathView(
        number=number,
        ways=[f"{c.where(trace.routine)} {c.take}: {c.question}" for c in trace.choices],
        calls=[render_call(call.tool, call.arguments) for call in trace.calls],
        collected=sorted(trace.slots),
        ending=_ending(trace),
    )


def _ending(trace: Trace) -> str:
    return render_ending(trace.ending) if trace.error is None else f"stops: {trace.error}"


def _checks(number: int, trace: Trace, catalog: ToolCatalog) -> list[PathCheck]:
    out: list[PathCheck] = []
    if trace.ending is None:
        out.append(
            PathCheck(
                code="no_ending",
                severity="error",
                message=f"path {number} stops without an ending: {trace.error or 'no end step'}",
            )
        )
    seen: dict[str, str] = {}
    for call in trace.calls:
        tool = catalog.get(call.tool)
        if tool is None or tool.access != "write":
            continue
        if call.tool in seen:
            out.append(
                PathCheck(
                    code="repeated_write",
                    severity="warning",
                    message=(
                        f"path {number} calls the write tool `{call.tool}` twice "
                        f"(steps {seen[call.tool]} and {call.step})"
                    ),
                )
            )
        else:
            seen[call.tool] = call.step
    return out
