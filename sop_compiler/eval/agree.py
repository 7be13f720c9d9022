"""Replay a scenario written from the SOP on its routine, and say where the two disagree.

The model states the conditions of its case as the SOP says them (statement, holds, cited
block). Each condition or switch of the routine is settled by the statement that cites its
block or says nearly the same words; the scenario is replayed on every path of the routine that
takes those ways, and the one closest to what it expects is kept. A routine step no statement
settles is reported (`unsettled`: the scenario then agrees only on a way it did not choose), and
so is a statement no step of the routine is about (`untested`: a branch the routine may lack).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sop_compiler.eval.evaluate import describe_path, replay
from sop_compiler.eval.scenario import Decision, Scenario, ScenarioFile
from sop_compiler.eval.sop_answer import SopCondition
from sop_compiler.interpret import Trace, explore, options_of
from sop_compiler.models import ToolCatalog
from sop_compiler.models.routine import Routine, Step

__all__ = ["SopCheck", "check_scenario"]


class SopCheck(BaseModel):
    """One scenario from the SOP replayed against the routine."""

    model_config = ConfigDict(extra="forbid")

    routine: str = Field(description="<agent>/<routine id>")
    name: str
    file: str = Field(description="The draft file it was written to.")
    status: Literal["agrees", "disagrees", "unsettled"]
    path: str | None = Field(default=None, description="The routine's path it was replayed on.")
    disagreements: list[str] = Field(default_factory=list)
    unsettled: list[str] = Field(
        default_factory=list, description="Routine steps the scenario's conditions do not settle."
    )
    untested: list[str] = Field(
        default_factory=list,
        description="The SOP's conditions no condition or switch of the routine is about.",
    )
    notes: list[str] = Field(default_factory=list, description="Entries dropped, and why.")


_STOP_WORDS = (
    "the a an is are was were be been has have had of to in on for and or not no any this "
    "that with by from at as it its their there than then else if when customer"
)
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[a-z]+|\d+(?:[.,]\d+)?")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.casefold()) if w not in _STOP and not w[0].isdigit()}


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def _likeness(statement: SopCondition, text: str, step: Step) -> float:
    """How surely `statement` is about `text` (a step's test or a case), 0 to 1."""
    mine, theirs = _words(statement.statement), _words(text)
    if not mine or not theirs:
        return 0.0
    score = len(mine & theirs) / min(len(mine), len(theirs))
    cited = step.source is not None and statement.source in step.source.block_ids
    return min(1.0, score + 0.4) if cited else score


_SURE = 0.6


def _settle(
    step: Step, statements: Sequence[SopCondition], options: Sequence[str]
) -> tuple[str | None, SopCondition | None]:
    """The way the scenario's statements send `step`, and the statement that decides it."""
    if step.kind == "condition" and step.condition is not None:
        test = step.condition.test
        best = max(statements, key=lambda s: _likeness(s, test, step), default=None)
        if best is None or _likeness(best, test, step) < _SURE:
            return None, None
        return ("then" if best.holds else "else"), best
    if step.kind == "switch" and step.switch is not None:
        subject = step.switch.subject
        scored = [
            (_likeness(s, f"{subject} {case.when}", step), case.when, s)
            for case in step.switch.cases
            for s in statements
            if s.holds
        ]
        scored = [entry for entry in scored if entry[0] >= _SURE]
        if scored:
            _, when, statement = max(scored, key=lambda entry: entry[0])
            return when if when in options else None, statement
    return None, None


def check_scenario(
    scenario: Scenario,
    conditions: Sequence[SopCondition],
    *,
    file: ScenarioFile,
    routine: Routine,
    routines: Mapping[tuple[str, str], Routine],
    catalog: ToolCatalog,
    paths: Sequence[Trace] | None = None,
) -> tuple[Scenario, SopCheck]:
    """Replay a scenario from the SOP on the routine's paths that fit its conditions.

    Returns the scenario with the decisions of the path it was replayed on (so that, once
    reviewed, `sopc eval` walks the same path) and what the replay found. `paths`: the
    routine's paths when the caller has explored them already.
    """
    label = f"{routine.agent}/{routine.id}"
    check = SopCheck(routine=label, name=scenario.name, file=file.path, status="disagrees")
    check.untested = _untested(conditions, routine, routines)
    best: tuple[int, Trace, Scenario, list[str], list[str]] | None = None
    if paths is None:
        paths = explore(routine, routines=routines).done
    for trace in paths:
        fitting, unsettled, mismatches = _fits(trace, conditions, routine, routines)
        if not fitting:
            continue
        decided = scenario.model_copy(update={"decisions": _decisions(trace, routine)})
        result, _ = replay(decided, file=file, line=1, routines=routines, catalog=catalog)
        differences = mismatches + _explained(result.differences, decided, trace)
        rank = len(differences) * 100 + len(unsettled)
        if best is None or rank < best[0]:
            best = (rank, trace, decided, differences, unsettled)
    if best is None:
        check.disagreements.append("no path of the routine fits the conditions the scenario states")
        return scenario, check
    _, trace, decided, differences, unsettled = best
    check.path = describe_path(trace)
    check.disagreements = differences
    check.unsettled = unsettled
    check.status = "disagrees" if differences else "unsettled" if unsettled else "agrees"
    return decided, check


def _untested(
    conditions: Sequence[SopCondition],
    routine: Routine,
    routines: Mapping[tuple[str, str], Routine],
) -> list[str]:
    """The SOP's conditions that no condition or switch of the routine (or of one it calls)
    is about."""
    owners, pending = {routine.id: routine}, [routine]
    while pending:  # the routine and every routine it calls, however deep
        for step in pending.pop().walk():
            called = (
                routines.get((routine.agent, step.routine or "")) if step.kind == "call" else None
            )
            if called is not None and called.id not in owners:
                owners[called.id] = called
                pending.append(called)
    steps = [
        step
        for owner in owners.values()
        for step in owner.walk()
        if step.kind in ("condition", "switch")
    ]
    out = []
    for condition in conditions:
        texts = [
            (step, text)
            for step in steps
            for text in (
                [step.condition.test]
                if step.condition is not None
                else [f"{step.switch.subject} {c.when}" for c in step.switch.cases]
                if step.switch is not None
                else []
            )
        ]
        if not any(_likeness(condition, text, step) >= _SURE for step, text in texts):
            cited = f" [{condition.source}]" if condition.source else ""
            out.append(f"{condition.statement}{cited}")
    return out


def _fits(
    trace: Trace,
    conditions: Sequence[SopCondition],
    routine: Routine,
    routines: Mapping[tuple[str, str], Routine],
) -> tuple[bool, list[str], list[str]]:
    """Does the path take the ways the statements say; its unsettled steps; threshold mismatches."""
    unsettled: list[str] = []
    mismatches: list[str] = []
    for choice in trace.choices:
        owner = (
            routine
            if choice.routine == routine.id
            else routines.get((routine.agent, choice.routine))
        )
        step = next((s for s in owner.walk() if s.id == choice.step), None) if owner else None
        if step is None:
            continue
        way, statement = _settle(step, conditions, options_of(step))
        where = choice.where(routine.id)
        if way is None:
            unsettled.append(f"step {where} ({choice.question!r}): the replay took {choice.take}")
            continue
        if way != choice.take:
            return False, [], []
        assert statement is not None
        sop, ours = _numbers(statement.statement), _numbers(choice.question)
        if sop and ours and sop != ours:
            cited = f" ({statement.source})" if statement.source else ""
            mismatches.append(
                f"step {where} tests {choice.question!r}; the SOP{cited} says "
                f"{statement.statement!r}"
            )
    return True, unsettled, mismatches


def _decisions(trace: Trace, routine: Routine) -> list[Decision]:
    return [
        Decision(
            step=c.where(routine.id),
            test=c.question,
            take=c.take,
        )
        for c in trace.choices
    ]


def _explained(differences: Sequence[str], scenario: Scenario, trace: Trace) -> list[str]:
    """The replay's differences, with a plain sentence first for each expected call missing."""
    called = {call.tool for call in trace.calls}
    out = [
        f"expects `{tool}`; the routine does not call it on that path"
        for tool in dict.fromkeys(c.tool for c in scenario.expect.tool_calls)
        if tool not in called
    ]
    return out + list(differences)
