"""The paths through a routine: every way from its first step to an end, with each choice made.

A path follows the execution semantics of `sop_compiler.models.routine`: a condition goes to its
`then_step` ("yes") or its `else_step` or next step ("no"); a switch to each case's target, then
its default ("otherwise"); a `call` follows the called routine (when it is given) and comes back
after its `resolve`; `resolve`, `handoff` and `escalate` end the path. A path that comes back to
a step it already passed ends there as a `loop` (the loop itself is one path, not infinitely
many), so the paths of any routine are finite. Validation reads them to say on which path a
problem lies; REVIEW.md lists them; scenario evaluation (`sopc eval`) can cover them one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sop_compiler.escape import one_line
from sop_compiler.models import TERMINAL_KINDS, RoutineDraft, Step
from sop_compiler.models.routine import walk_steps

__all__ = ["PathEnd", "PathStep", "RoutinePath", "RoutinePaths", "enumerate_paths"]

PathEnd = Literal["resolve", "handoff", "escalate", "loop", "falls_off", "dangling", "cut"]
_MAX_DEPTH = 400  # steps on one path (calls included); longer paths are cut, and say so
_MAX_CALLS = 8  # nested calls followed on one path


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathStep(_Model):
    """One step on a path, with the choice taken there (for a condition or a switch)."""

    step_id: str
    routine_id: str = Field(description="The routine the step belongs to (a called one, or own).")
    kind: str
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
            "it goes to `target`, which is no step; cut: longer than sopc follows."
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
            "cut": "cut (too long)",
        }.get(self.end, self.end + (f" to {self.target}" if self.target else ""))
        return " → ".join([*parts, ending])


class RoutinePaths(_Model):
    """Every path of a routine (`complete` is False when there were more than `limit`)."""

    routine_id: str
    paths: list[RoutinePath]
    complete: bool = True


@dataclass
class _Walk:
    limit: int
    routines: Mapping[str, RoutineDraft]
    found: int = 0
    steps: dict[str, tuple[list[Step], dict[str, int]]] = field(default_factory=dict)

    def flat(self, routine_id: str, routine: RoutineDraft) -> tuple[list[Step], dict[str, int]]:
        if routine_id not in self.steps:
            steps = list(walk_steps(routine.steps))
            index: dict[str, int] = {}
            for pos, step in enumerate(steps):
                index.setdefault(step.id, pos)
            self.steps[routine_id] = (steps, index)
        return self.steps[routine_id]


_Tail = tuple[list[PathStep], PathEnd, str | None]


def enumerate_paths(
    routine: RoutineDraft,
    *,
    routine_id: str | None = None,
    routines: Mapping[str, RoutineDraft] | None = None,
    limit: int = 200,
) -> RoutinePaths:
    """Every path through `routine`, in a stable order (the `yes` branch before the `no`).

    Args:
        routine: the routine (or draft) to walk.
        routine_id: its id in the returned steps (a draft has none; default the routine's id).
        routines: the other routines of the same agent by id; a `call` of one of them is followed
            into it and back. Without them (or for an unknown routine) a call is one step.
        limit: the most paths returned; `complete` says whether there were more.
    """
    own = routine_id or getattr(routine, "id", None) or "routine"
    walk = _Walk(limit=limit, routines=dict(routines or {}))
    paths: list[RoutinePath] = []
    complete = True
    for steps, end, target in _from(walk, own, routine, 0, frozenset(), (own,)):
        if len(paths) >= limit:
            complete = False
            break
        paths.append(RoutinePath(steps=steps, end=end, target=target))
    return RoutinePaths(routine_id=own, paths=paths, complete=complete)


def _outcomes(
    step: Step, following: int | None, index: dict[str, int]
) -> list[tuple[str | None, int | None, str | None]]:
    """(outcome label, next position, missing target id) for each way on from `step`."""

    def to(target: str | None) -> tuple[int | None, str | None]:
        if target is None:
            return following, None
        return (index[target], None) if target in index else (None, target)

    pairs: list[tuple[str | None, str | None]]
    if step.kind == "condition" and step.condition is not None:
        pairs = [("yes", step.condition.then_step), ("no", step.condition.else_step)]
    elif step.kind == "switch" and step.switch is not None:
        pairs = [(case.when, case.goto) for case in step.switch.cases]
        pairs.append(("otherwise", step.switch.default))
    else:
        pairs = [(None, step.next_step)]
    return [(label, *to(target)) for label, target in pairs]


def _from(
    walk: _Walk,
    rid: str,
    routine: RoutineDraft,
    pos: int | None,
    seen: frozenset[int],
    stack: tuple[str, ...],
    depth: int = 0,
) -> Iterator[_Tail]:
    """The rest of every path from position `pos` of routine `rid`."""
    steps, index = walk.flat(rid, routine)
    if pos is None or pos >= len(steps):
        yield [], "falls_off", None
        return
    step = steps[pos]
    if pos in seen:
        yield [], "loop", step.id
        return
    if depth >= _MAX_DEPTH:
        yield [], "cut", None
        return
    here = PathStep(step_id=step.id, routine_id=rid, kind=step.kind)
    if step.kind in TERMINAL_KINDS:
        yield [here], step.kind, step.target  # type: ignore[misc]
        return
    seen = seen | {pos}
    following = pos + 1 if pos + 1 < len(steps) else None
    callee = walk.routines.get(step.routine or "") if step.kind == "call" else None
    if callee is not None and step.routine not in stack and len(stack) <= _MAX_CALLS:
        callee_id = step.routine or ""
        (after, missing), *_ = ((p, m) for _, p, m in _outcomes(step, following, index))
        for inner, end, target in _from(
            walk, callee_id, callee, 0, frozenset(), (*stack, callee_id), depth + 1
        ):
            if end != "resolve":
                yield [here, *inner], end, target
                continue
            if missing is not None:
                yield [here, *inner], "dangling", missing
                continue
            for rest, end2, target2 in _from(
                walk, rid, routine, after, seen, stack, depth + 1 + len(inner)
            ):
                yield [here, *inner, *rest], end2, target2
        return
    for label, nxt, missing in _outcomes(step, following, index):
        taken = here.model_copy(update={"outcome": label}) if label is not None else here
        if missing is not None:
            yield [taken], "dangling", missing
            continue
        for rest, end, target in _from(walk, rid, routine, nxt, seen, stack, depth + 1):
            yield [taken, *rest], end, target
