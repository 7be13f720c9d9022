"""The routine interpreter: the one walk of a routine's steps, as models/routine.py says it runs.

One walk follows one path. Whoever runs it answers each `condition` and `switch` (a `Decider`):
a scenario's decisions in `sopc eval`, every option in turn in `walks` and `explore`, which
therefore yield every path through a routine, depth first, `then` before `else` and the cases
before the default. Each way of a step is taken at most once per path (in each call of its
routine), so a loop is entered once and then left. Everything else is deterministic: `call`
enters the called routine and comes back when it resolves, `next_step` jumps, `resolve` /
`escalate` / `handoff` end the walk, tool calls are recorded with their arguments resolved from
the literal values and the slots the path collected. A walk that cannot end says how it stopped
(`Stop`): a loop, a step that falls off the end, a jump to a missing step, a routine that is not
given, a missing decision, or a path longer than the interpreter follows. It walks a validated
routine or a draft alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from sop_compiler.models.routine import Routine, RoutineDraft, Step, step_positions, walk_steps

__all__ = [
    "MAX_PATHS",
    "MAX_STEPS",
    "MAX_VISITS",
    "Choice",
    "Decider",
    "DecisionError",
    "EndKind",
    "Ending",
    "Paths",
    "RecordedCall",
    "Stop",
    "StopKind",
    "Trace",
    "explore",
    "interpret",
    "options_of",
    "question_of",
    "walks",
]

# A step reached this many times on one walk is a loop that does not end.
MAX_VISITS = 50
# No walk runs longer than this many steps (calls included): a longer one is cut, and says so.
MAX_STEPS = 5000
# Exploring stops after this many paths (Paths.complete says so): paths multiply per branch.
MAX_PATHS = 10_000
# Calls nest at most this deep (validate reports call cycles; the walk must end anyway).
MAX_CALL_DEPTH = 16

EndKind = Literal["resolve", "escalate", "handoff"]
StopKind = Literal["loop", "falls_off", "dangling", "unknown_routine", "no_decision", "cut"]


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
    visit: int  # 1 for the first time the walk reaches this step (from this call site)

    def where(self, root: str) -> str:
        """The step as scenarios name it: its id, or `<routine>/<id>` in a routine `root` calls."""
        return self.step if self.routine == root else f"{self.routine}/{self.step}"


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


@dataclass(frozen=True)
class Stop:
    """Why a walk stopped without an ending; `target`: the step (or routine) it names."""

    kind: StopKind
    target: str | None
    reason: str


@dataclass
class Trace:
    """Everything one walk did; `stop` says why it stopped when it reached no ending."""

    routine: str
    steps: list[tuple[str, str]] = field(default_factory=list)  # (routine id, step id)
    choices: list[Choice] = field(default_factory=list)
    calls: list[RecordedCall] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    ending: Ending | None = None
    stop: Stop | None = None

    @property
    def error(self) -> str | None:
        """Why the walk stopped without an ending, in words (None when it ended)."""
        return None if self.stop is None else self.stop.reason


# decide(routine id, step, visit, options) -> one of the options
Decider = Callable[[str, Step, int, Sequence[str]], str]
# result(tool, arguments) -> the tool's (mocked) result
ToolResults = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]


def question_of(step: Step) -> str:
    """What a condition or switch asks: the condition's test, or the switch's subject."""
    if step.condition is not None:
        return step.condition.test
    return step.switch.subject if step.switch is not None else ""


def options_of(step: Step) -> list[str]:
    """The ways a condition or switch can go: then/else, or each case's `when` and default."""
    if step.kind == "condition" and step.condition is not None:
        return ["then", "else"]
    if step.kind == "switch" and step.switch is not None:
        return [case.when for case in step.switch.cases] + ["default"]
    return []


class _Stop(Exception):
    def __init__(self, kind: StopKind, target: str | None, reason: str) -> None:
        super().__init__(reason)
        self.stop = Stop(kind, target, reason)


@dataclass
class _Frame:
    """One call of a routine: its steps in order, where it is, and where it was called from."""

    routine_id: str
    order: list[Step]
    index: dict[str, int]
    site: tuple[int, ...]  # the positions of the call steps that led here, outermost first
    position: int = 0

    @classmethod
    def enter(cls, routine_id: str, routine: RoutineDraft, site: tuple[int, ...]) -> _Frame:
        order = list(walk_steps(routine.steps))
        return cls(routine_id=routine_id, order=order, index=step_positions(order), site=site)

    def goto(self, target: str | None, *, source: Step) -> None:
        """Go to `target`, or to the step after `source` in order when it is None."""
        if target is None:
            self.position = self.index[source.id] + 1
            return
        if target not in self.index:
            raise _Stop(
                "dangling",
                target,
                f"{self.routine_id} step {source.id} goes to step {target}, which does not exist",
            )
        self.position = self.index[target]


def interpret(
    routine: RoutineDraft,
    *,
    decide: Decider,
    routine_id: str | None = None,
    routines: Mapping[tuple[str, str], RoutineDraft] | None = None,
    facts: Mapping[str, Any] | None = None,
    tool_result: ToolResults | None = None,
    until_loop: bool = False,
) -> Trace:
    """Walk `routine` once; `routines` (keyed (agent, id)) are those a `call` step may enter.

    Args:
        routine: a routine, or a draft (named `routine_id`, default "routine").
        decide: answers each condition and switch.
        routines: the routines a call may enter; a call of one not among them stops the walk.
            None walks the routine alone: a call is one step, and the walk goes on after it.
        facts: answers to what the customer is asked (the slots an `ask` collects, and context
            slots).
        tool_result: answers each tool call (the slots a `tool_call` collects are read from it).
        until_loop: stop (`loop`) where the walk first comes back to a step this call of the
            routine passed, rather than go round.

    The walk stops, with `Trace.stop` set, on a missing decision, a loop that does not end, a
    jump to a step that does not exist, an unknown called routine, a routine that runs past its
    last step without an ending, or a path longer than `MAX_STEPS` or nesting deeper than
    `MAX_CALL_DEPTH`.
    """
    own = routine_id or (routine.id if isinstance(routine, Routine) else "routine")
    agent = routine.agent if isinstance(routine, Routine) else ""
    trace = Trace(routine=own)
    walk = _Walk(trace, decide, agent, routines, dict(facts or {}), tool_result)
    stack = [_Frame.enter(own, routine, ())]
    # Times each step was reached, per call site: a routine called from two steps is two calls,
    # each with its own ways; called again from the same step, it is the same loop going round.
    visits: dict[tuple[tuple[int, ...], int], int] = {}
    try:
        while True:
            frame = stack[-1]
            if frame.position >= len(frame.order):
                last = frame.order[-1].id if frame.order else "(none)"
                raise _Stop(
                    "falls_off",
                    None,
                    f"{frame.routine_id} runs past its last step ({last}) without resolve, "
                    "escalate or handoff",
                )
            step = frame.order[frame.position]
            here = (frame.site, frame.position)
            if until_loop and here in visits:
                raise _Stop("loop", step.id, f"{frame.routine_id} comes back to step {step.id}")
            visit = visits[here] = visits.get(here, 0) + 1
            if visit > MAX_VISITS:
                raise _Stop(
                    "loop",
                    step.id,
                    f"loop that does not end: {frame.routine_id} step {step.id} reached "
                    f"{visit} times",
                )
            key = (frame.routine_id, step.id)
            if len(trace.steps) >= MAX_STEPS:
                raise _Stop("cut", None, f"longer than {MAX_STEPS} steps: cut before {key}")
            trace.steps.append(key)
            if walk.step(step, stack, visit):
                return trace
    except _Stop as stop:
        trace.stop = stop.stop
    except DecisionError as exc:
        trace.stop = Stop("no_decision", trace.steps[-1][1], str(exc))
    return trace


@dataclass
class _Walk:
    """What one walk knows besides its position: who decides, the routines, the answers."""

    trace: Trace
    decide: Decider
    agent: str
    routines: Mapping[tuple[str, str], RoutineDraft] | None
    answers: dict[str, Any]
    tool_result: ToolResults | None

    def step(self, step: Step, stack: list[_Frame], visit: int) -> bool:
        """Run one step and move on; True when the walk has ended."""
        frame, trace = stack[-1], self.trace
        rid = frame.routine_id
        if step.kind in ("resolve", "escalate", "handoff"):
            if step.kind == "resolve" and len(stack) > 1:
                stack.pop()  # the called routine is done: continue after the call
                caller = stack[-1]
                call_step = caller.order[caller.position]
                caller.goto(call_step.next_step, source=call_step)
                return False
            kind: EndKind = step.kind
            trace.ending = Ending(kind=kind, target=step.target, routine=rid, step=step.id)
            return True
        options = options_of(step)
        if step.kind in ("condition", "switch") and options:
            take = self.decide(rid, step, visit, options)
            trace.choices.append(Choice(rid, step.id, step.kind, question_of(step), take, visit))
            ways = step.targets()  # in the order of the options; the last: else, or the default
            frame.goto(ways[options.index(take)] if take in options else ways[-1], source=step)
            return False
        if step.kind == "call" and self.routines is not None:
            called = self.routines.get((self.agent, step.routine or ""))
            if called is None:
                raise _Stop(
                    "unknown_routine",
                    step.routine,
                    f"{rid} step {step.id} calls routine `{step.routine}`, which is no "
                    f"routine of agent `{self.agent}`",
                )
            if len(stack) >= MAX_CALL_DEPTH:
                raise _Stop(
                    "cut", None, f"calls nest deeper than {MAX_CALL_DEPTH} at {rid} step {step.id}"
                )
            stack.append(_Frame.enter(step.routine or "", called, (*frame.site, frame.position)))
            return False
        if step.kind == "ask":
            for slot in step.collects:
                if slot in self.answers:
                    trace.slots[slot] = self.answers[slot]
        elif step.kind == "tool_call" and step.tool_call is not None:
            arguments = {
                argument.name: _argument(argument.value, argument.slot, trace.slots, self.answers)
                for argument in step.tool_call.arguments
            }
            trace.calls.append(RecordedCall(rid, step.id, step.tool_call.tool, arguments))
            result = self.tool_result(step.tool_call.tool, arguments) if self.tool_result else {}
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


class _Branch(Exception):
    def __init__(self, options: list[str]) -> None:
        super().__init__("branch")
        self.options = options


def walks(
    routine: RoutineDraft,
    *,
    routine_id: str | None = None,
    routines: Mapping[tuple[str, str], RoutineDraft] | None = None,
    until_loop: bool = False,
) -> Iterator[Trace]:
    """Every walk of `routine`, one per way through it, in a stable order (see `interpret`).

    Each option of every condition and switch is tried, depth first, in the order the step
    lists them (then before else, cases before the default). In one call of its routine, a step
    never takes the same way twice, so every loop is entered once and then left; a walk that
    comes back to a step it has left every way already stops there (`no_decision`: it could only
    go round).
    """
    pending: list[list[str]] = [[]]
    while pending:
        prefix = pending.pop()
        try:
            trace = interpret(
                routine,
                decide=_Replay(prefix),
                routine_id=routine_id,
                routines=routines,
                until_loop=until_loop,
            )
        except _Branch as branch:
            # Depth first in option order: push the last option first.
            pending.extend([*prefix, option] for option in reversed(branch.options))
            continue
        yield trace


class Paths(NamedTuple):
    """Every path through a routine, as `explore` finds them."""

    done: list[Trace]  # walks that end (resolve, escalate, handoff)
    stuck: list[Trace]  # walks that cannot end; `Trace.stop` says why
    complete: bool  # False when exploring stopped at `max_paths`


def explore(
    routine: RoutineDraft,
    *,
    routines: Mapping[tuple[str, str], RoutineDraft] | None = None,
    max_paths: int = MAX_PATHS,
) -> Paths:
    """The first `max_paths` walks of `routine` (`walks`): those that end, then those that stop.

    A walk that could only go round again is left out (the walks that leave the loop are
    there), unless every walk does: then the routine only goes round, and its first walk says so.
    """
    done: list[Trace] = []
    stuck: list[Trace] = []
    goes_round: Trace | None = None
    for trace in walks(routine, routines=routines):
        if len(done) + len(stuck) >= max_paths:
            return Paths(done=done, stuck=stuck, complete=False)
        if trace.stop is not None and trace.stop.kind == "no_decision":
            goes_round = goes_round or trace
            continue
        (stuck if trace.stop else done).append(trace)
    if goes_round is not None and not done and not stuck:
        stuck.append(goes_round)
    return Paths(done=done, stuck=stuck, complete=True)


class _Replay:
    """Takes the ways of `prefix` in turn, then asks to branch on every way not yet taken."""

    def __init__(self, prefix: list[str]) -> None:
        self.prefix = prefix
        self.position = 0
        self.taken: dict[tuple[str, str], set[str]] = {}

    def __call__(self, routine_id: str, step: Step, visit: int, options: Sequence[str]) -> str:
        if visit == 1:  # a routine called from another step decides afresh
            self.taken[(routine_id, step.id)] = set()
        seen = self.taken[(routine_id, step.id)]
        if self.position >= len(self.prefix):
            left = [option for option in options if option not in seen]
            if not left:
                raise DecisionError(
                    f"loop that does not end: {routine_id} step {step.id} comes round again "
                    "after every way from it was taken"
                )
            raise _Branch(left)
        choice = self.prefix[self.position]
        self.position += 1
        seen.add(choice)
        return choice
