"""The routine: one procedure rewritten for an agent (see shared/DESIGN.md, "The routine").

Execution semantics, which validate and emit rely on: steps run in document order, flattened
(1, 2, 2a, 2b, 3, ...). After a step the agent goes on to the next step in that order, except that
a `condition` step jumps to `then_step` when its test holds and to `else_step` (or the next step,
when `else_step` is empty) when it does not; a step with `next_step` jumps there; and `resolve`,
`handoff` and `escalate` end the routine.

The field descriptions below become the JSON schema that the LLM backend sends to the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

StepKind = Literal["say", "ask", "tool_call", "condition", "handoff", "escalate", "resolve"]
TERMINAL_KINDS: frozenset[str] = frozenset({"resolve", "handoff", "escalate"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceRef(_Model):
    """Where in the SOP a step or edge case comes from."""

    block_ids: list[str] = Field(
        description='Ids of the procedure blocks this is based on, e.g. ["b12"].'
    )
    quote: str = Field(description="A short verbatim quote (at most ~20 words) from those blocks.")
    file: str | None = Field(default=None, description="Filled in by sopc; leave null.")
    page: int | None = Field(default=None, description="Filled in by sopc; leave null.")
    paragraph: int | None = Field(default=None, description="Filled in by sopc; leave null.")


class ToolArgument(_Model):
    """One argument of a tool call."""

    name: str = Field(description="Parameter name, exactly as in the tool's JSON schema.")
    value: str | int | float | bool | None = Field(
        default=None,
        description="Literal value when the SOP fixes it; null when the conversation gives it.",
    )
    from_context: str | None = Field(
        default=None,
        description='Where a non-literal value comes from, e.g. "the order number from step 1".',
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


class Step(_Model):
    """One action; numbered (`3`) or lettered as a sub-step (`3a`)."""

    id: str = Field(
        description="Step number: `1`, `2`, ... for steps and `2a`, `2b`, ... for sub-steps."
    )
    kind: StepKind = Field(
        description=(
            "say: tell the customer something; ask: politely ask for specific information; "
            "tool_call: call a catalog tool; condition: if/then/else; handoff: transfer to another "
            "agent; escalate: transfer to a human team; resolve: end the case."
        )
    )
    text: str = Field(description="The instruction as the agent should read it, in the imperative.")
    tool_call: ToolCall | None = Field(default=None, description="Required when kind is tool_call.")
    condition: Condition | None = Field(
        default=None, description="Required when kind is condition."
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
    steps: list[Step] = Field(description="The numbered steps. Never skip a step of the source.")
    edge_cases: list[EdgeCase] = Field(
        default_factory=list, description="Exceptions, each explicit."
    )
    tools_proposed: list[ProposedTool] = Field(default_factory=list)
    open_questions: list[str] = Field(
        default_factory=list,
        description="What the SOP leaves undefined; say so rather than invent.",
    )


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

    def walk(self) -> list[Step]:
        """All steps in execution order (flattened, sub-steps after their parent)."""
        return list(walk_steps(self.steps))


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
