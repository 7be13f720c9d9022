"""The routine: one procedure rewritten for an agent (see shared/DESIGN.md, "The routine").

Execution semantics, which validate, render, emit and diff all rely on:

- An agent reads a routine's `rules` (constraints that hold at every step) and its `knowledge`
  (reference facts) before the steps, and keeps to the rules throughout.
- `collect` names the data the routine gathers (`order_id`, `passengers`); a step that gathers a
  slot lists it in `collects` (an `ask` from the customer, a `tool_call` from the tool's result),
  and a tool argument that needs it names the slot in `slot`. A slot is available at a step only
  when every path to that step passes a step that collects it (or the slot comes from the run's
  context, `origin: "context"`).
- Steps run in document order, flattened (1, 2, 2a, 2b, 3, ...). After a step the agent goes on to
  the next step in that order, except that:
  - a `condition` jumps to `then_step` when its test holds, and to `else_step` (or the next step,
    when `else_step` is null) when it does not;
  - a `switch` jumps to the target of the first case whose test holds, else to `default` (or the
    next step, when `default` is null);
  - a `call` follows the routine `routine` of the same agent from its first step, and when that
    routine ends with `resolve`, comes back and continues with the step after the call (or its
    `next_step`); an escalation or handoff inside the called routine ends both;
  - any other step with `next_step` jumps there;
  - `resolve`, `handoff` and `escalate` end the routine.
- An `ask` with `confirm: true` asks the customer for an explicit yes to what comes next; the path
  goes on only with that yes (a no is handled by the condition that follows, or ends the routine).
- `action` is a back-office action the agent performs or records without a catalog tool ("record
  a case note"); `say` only tells the customer something.

The field descriptions below become the JSON schema that the LLM backend sends to the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sop_compiler.models.document import Flowchart

StepKind = Literal[
    "say",
    "ask",
    "action",
    "tool_call",
    "condition",
    "switch",
    "call",
    "handoff",
    "escalate",
    "resolve",
]
TERMINAL_KINDS: frozenset[str] = frozenset({"resolve", "handoff", "escalate"})
RuleKind = Literal["never", "always", "only_if", "limit", "confirm_before"]
Scalar = str | int | float | bool

# The longest quote a citation may carry (the prompt states it; validate warns above it).
MAX_QUOTE_WORDS = 25


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceRef(_Model):
    """Where in the SOP a step, rule, fact or edge case comes from."""

    block_ids: list[str] = Field(
        description='Ids of the procedure blocks this is based on, e.g. ["b12"].'
    )
    quote: str = Field(
        description=f"A short verbatim quote (at most {MAX_QUOTE_WORDS} words) from those blocks."
    )
    file: str | None = Field(default=None, description="Filled in by sopc; leave null.")
    page: int | None = Field(default=None, description="Filled in by sopc; leave null.")
    paragraph: int | None = Field(default=None, description="Filled in by sopc; leave null.")


class Rule(_Model):
    """A constraint that holds throughout the routine (or whenever its condition holds)."""

    kind: RuleKind = Field(
        description=(
            "never: something the agent must not do; always: something it must always do; "
            "only_if: an action allowed only under a condition; limit: a number it must keep "
            "within; confirm_before: an explicit yes the customer must give before an action."
        )
    )
    text: str = Field(description="The rule as the agent should read it, in the imperative.")
    condition: str | None = Field(
        default=None, description="When the rule applies (for only_if: the condition); else null."
    )
    governs: list[str] = Field(
        default_factory=list,
        description="Catalog tools or step ids the rule restricts; empty when it is general.",
    )
    source: SourceRef | None = Field(default=None, description="The SOP text it comes from.")


class Knowledge(_Model):
    """A reference fact the agent needs (a definition, a fee, a value from a table)."""

    fact: str = Field(description="The fact, one or two short sentences.")
    source: SourceRef | None = Field(default=None, description="The SOP text it comes from.")


class Slot(_Model):
    """A named piece of data the routine gathers."""

    name: str = Field(description="snake_case name, e.g. `order_id`, `passengers`.")
    description: str = Field(description='What it is, e.g. "the order number".')
    origin: Literal["customer", "tool", "context"] = Field(
        description=(
            "customer: asked of the customer; tool: read from a tool's result; context: known "
            "to the run before the routine starts (e.g. the verified customer's id)."
        )
    )


class ToolArgument(_Model):
    """One argument of a tool call."""

    name: str = Field(description="Parameter name, exactly as in the tool's JSON schema.")
    value: Scalar | list[Scalar] | None = Field(
        default=None,
        description=(
            "Literal value when the SOP fixes it (a list when the tool's schema takes an array); "
            "null when it comes from a slot or the conversation."
        ),
    )
    slot: str | None = Field(
        default=None,
        description="Name of the `collect` slot whose value this argument takes, or null.",
    )
    from_context: str | None = Field(
        default=None,
        description='Where a non-literal value comes from, in words, e.g. "the order number".',
    )


class ToolCall(_Model):
    """A call of a catalog tool."""

    tool: str = Field(description="Name of a tool from the catalog (never an invented one).")
    arguments: list[ToolArgument] = Field(default_factory=list)


class Condition(_Model):
    """An explicit if/then/else."""

    test: str = Field(description="The condition, phrased as a yes/no question or statement.")
    then_step: str = Field(description="Id of the step to go to when the condition holds.")
    else_step: str | None = Field(
        default=None,
        description="Id of the step to go to otherwise; null means the next step in order.",
    )


class Case(_Model):
    """One case of a switch."""

    when: str = Field(description='The case, e.g. "the membership tier is Gold".')
    goto: str = Field(description="Id of the step to go to in this case.")


class Switch(_Model):
    """A multi-way condition: the first case that holds decides where to go."""

    subject: str = Field(description='What is tested, e.g. "the membership tier".')
    cases: list[Case] = Field(description="The cases, in the order they are tested.")
    default: str | None = Field(
        default=None,
        description="Id of the step to go to when no case holds; null means the next step.",
    )


class Step(_Model):
    """One action; numbered (`3`) or lettered as a sub-step (`3a`)."""

    id: str = Field(
        description="Step number: `1`, `2`, ... for steps and `2a`, `2b`, ... for sub-steps."
    )
    kind: StepKind = Field(
        description=(
            "say: tell the customer something; ask: politely ask for specific information (or, "
            "with confirm, for an explicit yes); action: a back-office action with no catalog "
            "tool; tool_call: call a catalog tool; condition: if/then/else; switch: a multi-way "
            "condition; call: follow another routine of this agent, then continue; handoff: "
            "transfer to another agent; escalate: transfer to a human team; resolve: end the case."
        )
    )
    text: str = Field(description="The instruction as the agent should read it, in the imperative.")
    tool_call: ToolCall | None = Field(default=None, description="Required when kind is tool_call.")
    condition: Condition | None = Field(
        default=None, description="Required when kind is condition."
    )
    switch: Switch | None = Field(default=None, description="Required when kind is switch.")
    routine: str | None = Field(
        default=None, description="For call: the id of the routine to follow, then come back."
    )
    collects: list[str] = Field(
        default_factory=list,
        description="Names of the `collect` slots this step gathers (ask, tool_call).",
    )
    confirm: bool = Field(
        default=False,
        description="For ask: true when it asks the customer for an explicit yes to go on.",
    )
    target: str | None = Field(
        default=None,
        description="For handoff: the agent to hand off to; for escalate: the human team.",
    )
    next_step: str | None = Field(
        default=None, description="Id of the step to go to next, if not the following one."
    )
    substeps: list[Step] = Field(default_factory=list, description="Lettered sub-steps.")
    source: SourceRef | None = Field(default=None, description="The SOP text this step comes from.")

    def targets(self) -> list[str | None]:
        """The ids this step may jump to; None stands for "the next step in order"."""
        if self.kind in TERMINAL_KINDS:
            return []
        if self.kind == "condition" and self.condition is not None:
            return [self.condition.then_step, self.condition.else_step]
        if self.kind == "switch" and self.switch is not None:
            return [case.goto for case in self.switch.cases] + [self.switch.default]
        return [self.next_step]


class EdgeCase(_Model):
    """An explicit exception: when this happens, do that."""

    when: str
    then: str
    source: SourceRef | None = None


class ProposedTool(_Model):
    """An action the SOP needs that no catalog tool covers; reported, never invented."""

    name: str = Field(description="A snake_case name for the tool that would be needed.")
    description: str = Field(description="What the tool would do.")
    access: Literal["read", "write"] = Field(
        description="Whether it only reads or also changes data."
    )
    step_ids: list[str] = Field(default_factory=list, description="Steps that need it.")


class RoutineDraft(_Model):
    """What a backend writes for one procedure; sopc adds identity and source to make a Routine."""

    title: str = Field(description="Short title of the routine.")
    trigger: str = Field(description="When to use this routine, one sentence (used for routing).")
    rules: list[Rule] = Field(
        default_factory=list,
        description="Constraints that hold throughout: every never/only/must/limit of the SOP.",
    )
    knowledge: list[Knowledge] = Field(
        default_factory=list, description="Reference facts the agent needs; never steps."
    )
    collect: list[Slot] = Field(
        default_factory=list, description="The named data the routine gathers."
    )
    steps: list[Step] = Field(description="The numbered steps. Never skip a step of the source.")
    edge_cases: list[EdgeCase] = Field(
        default_factory=list, description="Exceptions, each explicit."
    )
    tools_proposed: list[ProposedTool] = Field(default_factory=list)
    open_questions: list[str] = Field(
        default_factory=list,
        description="What the SOP leaves undefined; say so rather than invent.",
    )

    def slot(self, name: str) -> Slot | None:
        """The `collect` slot called `name`, or None."""
        return next((slot for slot in self.collect if slot.name == name), None)


class RoutineSource(_Model):
    file: str
    sha256: str
    section: list[str] = Field(default_factory=list)


class Routine(RoutineDraft):
    """The core artifact: a validated, numbered routine with provenance."""

    id: str
    agent: str
    source: RoutineSource
    tools_used: list[str] = Field(default_factory=list, description="Catalog tools called, sorted.")
    source_flowchart: Flowchart | None = Field(
        default=None,
        description="The SOP's flowchart this routine was compiled from, as read (for review).",
    )

    def walk(self) -> list[Step]:
        """All steps in execution order (flattened, sub-steps after their parent)."""
        return list(walk_steps(self.steps))


def step_positions(steps: Iterable[Step]) -> dict[str, int]:
    """The position of each step id in `steps`: its first occurrence, where a jump to it goes."""
    index: dict[str, int] = {}
    for position, step in enumerate(steps):
        index.setdefault(step.id, position)
    return index


def walk_steps(steps: Iterable[Step]) -> Iterator[Step]:
    """Steps in execution order: each step, then its sub-steps (depth first, any depth)."""
    # An explicit stack rather than recursion: nesting depth comes from model output.
    stack: list[Iterator[Step]] = [iter(steps)]
    while stack:
        step = next(stack[-1], None)
        if step is None:
            stack.pop()
            continue
        yield step
        if step.substeps:
            stack.append(iter(step.substeps))
