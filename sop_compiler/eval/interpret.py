"""The routine interpreter: walk a routine's steps as models/routine.py says an agent does.

One walk follows one path. Whoever runs it answers each `condition` and `switch` (a `Decider`):
a scenario's decisions in `sopc eval`, every option in turn in `explore`, which therefore
yields every path through a routine (each branch of a step taken at most once per path, so a
loop is entered once and left). Everything else is deterministic: `call` enters the called
routine and comes back when it resolves, `next_step` jumps, `resolve` / `escalate` / `handoff`
end the walk, tool calls are recorded with their arguments resolved from the literal values and
the slots the path collected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from sop_compiler.models.routine import Routine, Step, walk_steps

__all__ = [
    "MAX_PATHS",
    "MAX_STEPS",
    "MAX_VISITS",
    "Choice",
    "Decider",
    "DecisionError",
    "Ending",
    "Paths",
    "RecordedCall",
    "Trace",
    "explore",
    "interpret",
    "options_of",
]

# A step reached this many times on one walk is a loop that does not end.
MAX_VISITS = 50
# No walk runs longer than this many steps (a bound on nested loops and calls).
MAX_STEPS = 5000
# Exploring stops after this many paths (Paths.complete says so): paths multiply per branch.
MAX_PATHS = 10_000
# Calls nest at most this deep (validate reports call cycles; the walk must end anyway).
MAX_CALL_DEPTH = 16

EndKind = Literal["resolve", "escalate", "handoff"]


class DecisionError(Exception):
    """The decider cannot answer a condition or switch (the walk stops with this reason)."""


@dataclass(frozen=True)
class Choice:
    """Which way one condition or switch went on a walk."""

    routine: str  # the routine id the step belongs to
    step: str
    kind: Literal["condition", "switch"]
    question: str  # the condition's test, or the switch's subject
    take: str  # "then" / "else", or a case's `when` / "default"
    visit: int  # 1 for the first time the walk reaches this step


@dataclass(frozen=True)
class RecordedCall:
    """A tool call on a walk, with arguments as far as the path knows them (None: unknown)."""

    routine: str
    step: str
    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Ending:
    """How a walk ended: the terminal step, its kind and its target (team or agent)."""

    kind: EndKind
    target: str | None
    routine: str
    step: str


@dataclass
class Trace:
    """Everything one walk did; `error` says why it stopped when it reached no ending."""

    routine: str
    steps: list[tuple[str, str]] = field(default_factory=list)  # (routine id, step id)
    choices: list[Choice] = field(default_factory=list)
    calls: list[RecordedCall] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    ending: Ending | None = None
    error: str | None = None


# decide(routine, step, visit, options) -> one of the options
Decider = Callable[[Routine, Step, int, Sequence[str]], str]
# result(tool, arguments) -> the tool's (mocked) result
ToolResults = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]


def options_of(step: Step) -> list[str]:
    """The ways a condition or switch can go: then/else, or each case's `when` and default."""
    if step.kind == "condition":
        return ["then", "else"]
    if step.kind == "switch" and step.switch is not None:
        return [case.when for case in step.switch.cases] + ["default"]
    return []


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Frame:
    routine: Routine
    order: list[Step]
    index: dict[str, int]
    position: int

    @classmethod
    def enter(cls, routine: Routine) -> _Frame:
        order = list(walk_steps(routine.steps))
        index: dict[str, int] = {}
        for position, step in enumerate(order):
            index.setdefault(step.id, position)
        return cls(routine=routine, order=order, index=index, position=0)

    def goto(self, target: str | None, *, source: Step) -> None:
        """Go to `target`, or to the step after `source` in order when it is None."""
        if target is None:
            self.position = self.index[source.id] + 1
            return
        if target not in self.index:
            raise _Stop(
                f"{self.routine.id} step {source.id} goes to step {target}, which does not exist"
            )
        self.position = self.index[target]


def interpret(
    routine: Routine,
    *,
    decide: Decider,
    routines: Mapping[tuple[str, str], Routine] | None = None,
    facts: Mapping[str, Any] | None = None,
    tool_result: ToolResults | None = None,
) -> Trace:
    """Walk `routine` once; `routines` (keyed (agent, id)) are those a `call` step may enter.

    `facts` answer what the customer is asked (the slots an `ask` collects, and context slots);
    `tool_result` answers each tool call (the slots a `tool_call` collects are read from it).
    The walk stops, with `Trace.error` set, on a missing decision, a loop that does not end, a
    jump to a step that does not exist, an unknown called routine, or a routine that runs past
    its last step without an ending.
    """
    trace = Trace(routine=routine.id)
    known = routines or {}
    answers = dict(facts or {})
    stack = [_Frame.enter(routine)]
    visits: dict[tuple[str, str], int] = {}
    try:
        while True:
            frame = stack[-1]
            if frame.position >= len(frame.order):
                last = frame.order[-1].id if frame.order else "(none)"
                raise _Stop(
                    f"{frame.routine.id} runs past its last step ({last}) without resolve, "
                    "escalate or handoff"
                )
            step = frame.order[frame.position]
            key = (frame.routine.id, step.id)
            visits[key] = visits.get(key, 0) + 1
            if visits[key] > MAX_VISITS or len(trace.steps) >= MAX_STEPS:
                raise _Stop(
                    f"loop that does not end: {frame.routine.id} step {step.id} reached "
                    f"{visits[key]} times"
                )
            trace.steps.append(key)
            if _run_step(step, frame, stack, trace, visits[key], decide, known, answers,
                         tool_result):  # fmt: skip
                return trace
    except _Stop as stop:
        trace.error = stop.reason
    except DecisionError as exc:
        trace.error = str(exc)
    return trace


def _run_step(
    step: Step,
    frame: _Frame,
    stack: list[_Frame],
    trace: Trace,
    visit: int,
    decide: Decider,
    known: Mapping[tuple[str, str], Routine],
    answers: dict[str, Any],
    tool_result: ToolResults | None,
) -> bool:
    """Run one step and move on; True when the walk has ended."""
    routine = frame.routine
    if step.kind in ("resolve", "escalate", "handoff"):
        if step.kind == "resolve" and len(stack) > 1:
            stack.pop()  # the called routine is done: continue after the call
            caller = stack[-1]
            call_step = caller.order[caller.position]
            caller.goto(call_step.next_step, source=call_step)
            return False
        kind: EndKind = step.kind
        trace.ending = Ending(kind=kind, target=step.target, routine=routine.id, step=step.id)
        return True
    if step.kind in ("condition", "switch"):
        options = options_of(step)
        take = decide(routine, step, visit, options)
        question = (
            step.condition.test
            if step.condition is not None
            else step.switch.subject
            if step.switch is not None
            else ""
        )
        trace.choices.append(Choice(routine.id, step.id, step.kind, question, take, visit))
        frame.goto(_target(step, take), source=step)
        return False
    if step.kind == "call":
        called = known.get((routine.agent, step.routine or ""))
        if called is None:
            raise _Stop(
                f"{routine.id} step {step.id} calls routine `{step.routine}`, which is no "
                f"routine of agent `{routine.agent}`"
            )
        if len(stack) >= MAX_CALL_DEPTH:
            raise _Stop(f"calls nest deeper than {MAX_CALL_DEPTH} at {routine.id} step {step.id}")
        stack.append(_Frame.enter(called))
        return False
    if step.kind == "ask":
        for slot in step.collects:
            if slot in answers:
                trace.slots[slot] = answers[slot]
    elif step.kind == "tool_call" and step.tool_call is not None:
        arguments = {
            argument.name: _argument(argument.value, argument.slot, trace.slots, answers)
            for argument in step.tool_call.arguments
        }
        trace.calls.append(RecordedCall(routine.id, step.id, step.tool_call.tool, arguments))
        result = tool_result(step.tool_call.tool, arguments) if tool_result else {}
        for slot in step.collects:
            if slot in result:
                trace.slots[slot] = result[slot]
    frame.goto(step.next_step, source=step)
    return False


def _argument(
    value: Any, slot: str | None, collected: Mapping[str, Any], facts: Mapping[str, Any]
) -> Any:
    """A literal value, else the slot's value: collected on the path, or known from the facts."""
    if value is not None or slot is None:
        return value
    if slot in collected:
        return collected[slot]
    return facts.get(slot)


def _target(step: Step, take: str) -> str | None:
    if step.condition is not None and step.kind == "condition":
        return step.condition.then_step if take == "then" else step.condition.else_step
    if step.switch is not None:
        for case in step.switch.cases:
            if case.when == take:
                return case.goto
        return step.switch.default
    return None


class _Branch(Exception):
    def __init__(self, options: list[str]) -> None:
        super().__init__("branch")
        self.options = options


class Paths(NamedTuple):
    """Every path through a routine, as `explore` finds them."""

    done: list[Trace]  # walks that end (resolve, escalate, handoff)
    stuck: list[Trace]  # walks that cannot end; `Trace.error` says why
    complete: bool  # False when exploring stopped at `max_paths`


def explore(
    routine: Routine,
    *,
    routines: Mapping[tuple[str, str], Routine] | None = None,
    max_paths: int = MAX_PATHS,
) -> Paths:
    """Every path through `routine`, in a stable order.

    Each option of every condition and switch is explored, depth first, in the order the step
    lists them (then before else, cases before the default). On one path a step never takes the
    same way twice, so every loop is entered once and then left; a path on which a revisited
    step has no way left is dropped (it could only go round again).
    """
    done: list[Trace] = []
    stuck: list[Trace] = []
    pending: list[list[str]] = [[]]
    while pending and len(done) + len(stuck) < max_paths:
        prefix = pending.pop()
        try:
            trace = interpret(routine, decide=_Replay(prefix), routines=routines)
        except _Branch as branch:
            # Depth first in option order: push the last option first.
            pending.extend([*prefix, option] for option in reversed(branch.options))
            continue
        (stuck if trace.error else done).append(trace)
    return Paths(done=done, stuck=stuck, complete=not pending)


class _Replay:
    """Takes the ways of `prefix` in turn, then asks to branch on every way not yet taken."""

    def __init__(self, prefix: list[str]) -> None:
        self.prefix = prefix
        self.position = 0
        self.taken: dict[tuple[str, str], set[str]] = {}

    def __call__(self, owner: Routine, step: Step, visit: int, options: Sequence[str]) -> str:
        seen = self.taken.setdefault((owner.id, step.id), set())
        if self.position >= len(self.prefix):
            raise _Branch([option for option in options if option not in seen])
        choice = self.prefix[self.position]
        self.position += 1
        seen.add(choice)
        return choice
