"""The paths through a routine, as a reviewer reads them: each step, the way taken, the end.

A path is one walk of the routine interpreter (`sop_compiler.interpret`, the walker of `sopc
eval`, `sopc paths` and `sopc scenarios`), listed up to where it first comes back to a step it
passed: there it ends as a `loop` (the loop itself is one path, not one per way round), so the
paths of any routine are finite. A condition goes "yes" or "no", a switch to a case or
"otherwise". Validation reads them to say on which path a problem lies; the review page lists
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sop_compiler.escape import one_line
from sop_compiler.interpret import EndKind, StopKind, Trace, walks
from sop_compiler.models import Routine, RoutineDraft

__all__ = ["PathEnd", "PathStep", "RoutinePath", "RoutinePaths", "enumerate_paths"]

PathEnd = Literal[EndKind, StopKind]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathStep(_Model):
    """One step on a path, with the choice taken there (for a condition or a switch)."""

    step_id: str
    routine_id: str = Field(description="The routine the step belongs to (a called one, or own).")
    outcome: str | None = Field(
        default=None,
        description='The branch taken: "yes" / "no" for a condition, a case or "otherwise".',
    )


class RoutinePath(_Model):
    """One way through a routine, from its first step to how it ends."""

    steps: list[PathStep]
    end: PathEnd = Field(
        description=(
            "resolve, handoff or escalate: the last step ends the routine; loop: it goes back to "
            "`target`, a step the path passed; falls_off: it runs past the last step; dangling: "
            "it goes to `target`, which is no step; unknown_routine: it calls `target`, which is "
            "not given; cut: longer than sopc follows."
        )
    )
    target: str | None = Field(
        default=None, description="The agent, team, or step id the ending names, if any."
    )

    def describe(self, upto: int | None = None) -> str:
        """The path on one line: `1 → 2 (no) → 4 → resolve`; `upto`: its first steps only."""
        parts = []
        own = self.steps[0].routine_id if self.steps else ""
        for step in self.steps[: None if upto is None else upto + 1]:
            name = step.step_id if step.routine_id == own else f"{step.routine_id}:{step.step_id}"
            if step.outcome is not None:
                name += f" ({one_line(step.outcome)[:40]})"
            parts.append(name)
        if upto is not None and upto + 1 < len(self.steps):
            return " → ".join(parts)
        ending = {
            "loop": f"back to {self.target}",
            "falls_off": "runs past the last step",
            "dangling": f"goes to missing step {self.target}",
            "unknown_routine": f"calls unknown routine {self.target}",
            "cut": "cut (too long)",
        }.get(self.end, self.end + (f" to {self.target}" if self.target else ""))
        return " → ".join([*parts, ending])


class RoutinePaths(_Model):
    """Every path of a routine (`complete` is False when there were more than `limit`)."""

    routine_id: str
    paths: list[RoutinePath]
    complete: bool = True


def enumerate_paths(
    routine: RoutineDraft,
    *,
    routine_id: str | None = None,
    routines: Mapping[str, RoutineDraft] | None = None,
    limit: int = 200,
) -> RoutinePaths:
    """Every path through `routine`, in a stable order (the `yes` branch before the `no`).

    The interpreter's walks (`interpret.walks`), each up to where it first comes back to a step.

    Args:
        routine: the routine (or draft) to walk.
        routine_id: its id in the returned steps (a draft has none; default the routine's id).
        routines: the other routines of the same agent by id; a `call` of one of them is followed
            into it and back. Without them a call is one step.
        limit: the most paths returned; `complete` says whether there were more.
    """
    own, agent = routine_id or "routine", ""
    if isinstance(routine, Routine):
        own, agent = routine_id or routine.id, routine.agent
    known = None if routines is None else {(agent, key): r for key, r in routines.items()}
    found = walks(routine, routine_id=own, routines=known, until_loop=True)
    paths = [_path(trace) for trace in islice(found, limit)]
    return RoutinePaths(routine_id=own, paths=paths, complete=next(found, None) is None)


def _path(trace: Trace) -> RoutinePath:
    """One walk as a path: each step with the way taken there, and how the walk ends."""
    choices = iter(trace.choices)
    choice = next(choices, None)
    steps = []
    for routine_id, step_id in trace.steps:
        outcome = None
        if choice is not None and (choice.routine, choice.step) == (routine_id, step_id):
            outcome = {"then": "yes", "else": "no", "default": "otherwise"}.get(choice.take)
            if choice.kind == "switch" and choice.take != "default":
                outcome = choice.take  # a case, by its `when`
            choice = next(choices, None)
        steps.append(PathStep(step_id=step_id, routine_id=routine_id, outcome=outcome))
    if trace.ending is not None:
        return RoutinePath(steps=steps, end=trace.ending.kind, target=trace.ending.target)
    assert trace.stop is not None  # a walk ends or stops
    return RoutinePath(steps=steps, end=trace.stop.kind, target=trace.stop.target)
