"""Drafting: one draft scenario per path through each routine, for a reviewer to check.

A draft says what the routine does on one path (the way of each condition and switch, the tool
calls with their literal arguments, the ending), marked `draft: true`: it proves nothing until a
reviewer has read it against the SOP and removed the mark. Reviewed scenarios are never
overwritten: when a routine has paths that no reviewed scenario walks, their drafts go beside the
reviewed file, in `<routine id>.draft.yaml`, with a note.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from sop_compiler.errors import OutputError
from sop_compiler.eval.evaluate import describe_path, load_routines, path_key, replay
from sop_compiler.eval.scenario import (
    DRAFT_SUFFIX,
    Decision,
    Expectation,
    ExpectedCall,
    ExpectedEnding,
    Scenario,
    ScenarioError,
    ToolResult,
    load_scenario_file,
    routine_of,
    scenario_files,
)
from sop_compiler.files import replace_file
from sop_compiler.interpret import Trace, explore
from sop_compiler.models.catalog import ToolCatalog
from sop_compiler.models.routine import Routine

__all__ = ["DraftReport", "draft_scenarios", "drafts_for", "dump_scenarios", "write_scenarios"]

_HEADER = (
    "# Scenarios of routine {routine}, one per path, drafted by `sopc scenarios`.\n"
    "# Check each against the SOP ({source}): decisions, tool calls, ending.\n"
    "# Remove `draft: true` from a scenario once it says what the SOP says; `sopc eval` runs\n"
    "# only reviewed scenarios. sopc never overwrites a file that holds a reviewed scenario.\n"
)


class DraftReport(BaseModel):
    """What `sopc scenarios` wrote, and what a reviewer should know."""

    model_config = ConfigDict(extra="forbid")

    written: list[str] = Field(default_factory=list, description="Files written or rewritten.")
    removed: list[str] = Field(default_factory=list, description="Draft files no longer needed.")
    unchanged: int = 0
    complete: int = Field(
        default=0, description="Routines whose every path has a reviewed scenario."
    )
    drafts: int = Field(default=0, description="Draft scenarios in the files written.")
    notes: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


def drafts_for(
    routine: Routine,
    *,
    routines: Mapping[tuple[str, str], Routine],
    catalog: ToolCatalog,
    skip: set[tuple[Any, ...]] | None = None,
) -> list[Scenario]:
    """One draft scenario per path through `routine` (paths in `skip` left out)."""
    done = explore(routine, routines=routines).done
    used = {step.tool_call.tool for step in routine.walk() if step.tool_call is not None}
    writes = sorted(
        tool
        for tool in used
        if (entry := catalog.get(tool)) is not None and entry.access == "write"
    )
    return [
        _draft(routine, trace, writes)
        for trace in done
        if skip is None or path_key(trace) not in skip
    ]


def _draft(routine: Routine, trace: Trace, writes: list[str]) -> Scenario:
    assert trace.ending is not None  # explore's finished walks all end
    asked = [
        slot
        for routine_id, step_id in trace.steps
        for slot in _collects(routine, routine_id, step_id, "ask")
    ]
    results: list[ToolResult] = []
    for call in trace.calls:
        slots = _collects(routine, call.routine, call.step, "tool_call")
        if slots and not any(entry.tool == call.tool for entry in results):
            results.append(ToolResult(tool=call.tool, result=dict.fromkeys(slots)))
    called = {call.tool for call in trace.calls}
    ending = trace.ending
    return Scenario(
        name=describe_path(trace),
        draft=True,
        facts=dict.fromkeys(dict.fromkeys(asked)),
        tool_results=results,
        decisions=[
            Decision(
                step=choice.where(routine.id),
                test=choice.question,
                take=choice.take,
            )
            for choice in trace.choices
        ],
        expect=Expectation(
            agent=routine.agent,
            tool_calls=[
                ExpectedCall(
                    tool=call.tool,
                    arguments={k: v for k, v in call.arguments.items() if v is not None},
                )
                for call in trace.calls
            ],
            not_called=[tool for tool in writes if tool not in called],
            ending=ExpectedEnding(
                kind=ending.kind, to=None if ending.kind == "resolve" else ending.target
            ),
        ),
    )


def _collects(routine: Routine, routine_id: str, step_id: str, kind: str) -> list[str]:
    if routine_id != routine.id:
        return []  # slots of a called routine are that routine's business
    step = next((s for s in routine.walk() if s.id == step_id), None)
    return list(step.collects) if step is not None and step.kind == kind else []


def dump_scenarios(scenarios: list[Scenario], *, header: str = "") -> str:
    """Scenarios as YAML: fields in model order, empty fields left out, stable bytes."""
    data = [
        scenario.model_dump(mode="json", exclude_defaults=True, exclude_none=False)
        for scenario in scenarios
    ]
    for entry in data:
        expect = entry.get("expect", {})
        if expect.get("ending", {}).get("to", "") is None:
            expect["ending"].pop("to")
        for decision in entry.get("decisions", []):
            if decision.get("test") is None:
                decision.pop("test", None)
    body = yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    return header + body


def draft_scenarios(
    scenarios: Path,
    *,
    output: Path,
    catalog: ToolCatalog,
    shown: Path | None = None,
) -> DraftReport:
    """Write draft scenarios for every routine in `output` under `scenarios`."""
    routines = load_routines(output)
    report = DraftReport()
    base = shown if shown is not None else scenarios
    for key in sorted(routines):
        agent, routine_id = key
        routine = routines[key]
        main = scenarios / agent / f"{routine_id}.yaml"
        beside = scenarios / agent / f"{routine_id}{DRAFT_SUFFIX}"
        header = _HEADER.format(routine=f"{agent}/{routine_id}", source=routine.source.file)
        paths = explore(routine, routines=routines)
        for trace in paths.stuck[:1]:
            report.notes.append(
                f"{agent}/{routine_id}: {len(paths.stuck)} path(s) cannot end and get no draft "
                f"(first: {trace.error})"
            )
        if not paths.complete:
            report.notes.append(
                f"{agent}/{routine_id}: more than {len(paths.done)} paths; drafts for the first "
                f"{len(paths.done)} only"
            )
        reviewed = _reviewed_paths(main, base, routines, catalog, report)
        if reviewed is None:
            continue  # malformed: reported
        if not reviewed[0]:  # no file yet, or only drafts: the file is sopc's to write
            drafts = drafts_for(routine, routines=routines, catalog=catalog)
            _write(main, dump_scenarios(drafts, header=header), base, scenarios, report)
            report.drafts += len(drafts)
            continue
        drafts = drafts_for(routine, routines=routines, catalog=catalog, skip=reviewed[1])
        if _has_reviewed(beside, base, scenarios, report):
            if drafts:
                report.notes.append(
                    f"{_shown(beside, base, scenarios)} holds reviewed scenarios: merge them into "
                    f"{main.name}; {len(drafts)} path(s) still have no reviewed scenario"
                )
            continue
        if not drafts:
            report.complete += 1
            if beside.exists():
                beside.unlink()
                report.removed.append(_shown(beside, base, scenarios))
            continue
        _write(beside, dump_scenarios(drafts, header=header), base, scenarios, report)
        report.drafts += len(drafts)
        report.notes.append(
            f"{agent}/{routine_id}: {len(drafts)} path(s) have no reviewed scenario; drafts in "
            f"{_shown(beside, base, scenarios)}"
        )
    known = {f"{agent}/{routine_id}" for agent, routine_id in routines}
    for path in scenario_files(scenarios):
        agent, routine_id = routine_of(path)
        if f"{agent}/{routine_id}" not in known:
            report.notes.append(
                f"{_shown(path, base, scenarios)}: routine `{agent}/{routine_id}` no longer exists"
            )
    return report


def _shown(path: Path, base: Path, scenarios: Path) -> str:
    return (base / path.relative_to(scenarios)).as_posix()


def _reviewed_paths(
    path: Path,
    base: Path,
    routines: Mapping[tuple[str, str], Routine],
    catalog: ToolCatalog,
    report: DraftReport,
) -> tuple[bool, set[tuple[Any, ...]]] | None:
    """(has reviewed scenarios, paths its passing reviewed scenarios walk); None if malformed."""
    if not path.exists():
        return False, set()
    try:
        loaded = load_scenario_file(path, shown=(base / path.parent.name / path.name).as_posix())
    except ScenarioError as exc:
        report.errors.append(str(exc))
        return None
    pairs = zip(loaded.scenarios, loaded.lines, strict=True)
    reviewed = [(scenario, line) for scenario, line in pairs if not scenario.draft]
    walked: set[tuple[Any, ...]] = set()
    for scenario, line in reviewed:
        result, trace = replay(scenario, file=loaded, line=line, routines=routines, catalog=catalog)
        if result.status == "passed" and trace is not None:
            walked.add(path_key(trace))
    return bool(reviewed), walked


def _has_reviewed(path: Path, base: Path, scenarios: Path, report: DraftReport) -> bool:
    if not path.exists():
        return False
    try:
        loaded = load_scenario_file(path, shown=_shown(path, base, scenarios))
    except ScenarioError as exc:
        report.errors.append(str(exc))
        return True  # never overwrite what cannot be read
    return any(not scenario.draft for scenario in loaded.scenarios)


def _write(path: Path, text: str, base: Path, scenarios: Path, report: DraftReport) -> None:
    if write_scenarios(path, text):
        report.written.append(_shown(path, base, scenarios))
    else:
        report.unchanged += 1


def write_scenarios(path: Path, text: str) -> bool:
    """Write a scenario file unless it holds `text` already; True when it was written."""
    data = text.encode("utf-8")
    try:
        if path.is_file() and path.read_bytes() == data:
            return False
        replace_file(path, data)
    except OSError as exc:
        raise OutputError(f"cannot write scenarios: {exc.strerror or exc}", path=path) from None
    return True
