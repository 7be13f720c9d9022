"""ScriptedModel turns that drive an emitted agent network along a path of a routine.

A path is the steps a model that follows the routine goes through, in execution order (the
semantics in `sop_compiler.models.routine`). `paths` gives the paths worth running, and
`script_for` the turns of one of them: the handoffs from the network's top triage down to the
routine's specialist (the shortest chain of `agent.handoffs`), one function call per `tool_call`
step, a `transfer_to_<agent>` call for a `handoff` step, nothing for `say`, `ask` and `action`
(the customer's answers are not model turns), then a final assistant message. `governed_path`
calls the tools the routine's rules govern that no step calls.

Branches are taken deterministically. On the `then` path a condition goes to its `then_step` and
a switch to its first case; on the `else` path a condition goes to its `else_step` and a switch
to its `default` (either one, when null, to the next step in order). A path "to <step>" takes the
shortest way to that step, then goes on as the `then` path. A branching step met a second time
takes the other way, so a retry loop runs once and the path ends; a path longer than `MAX_STEPS`
is a routine that never ends (`UnendingRoutine`). `resolve`, `escalate` and `handoff` end a path;
a `call` step follows the called routine's `then` path and comes back when that resolves.

Tool arguments: a literal value of the routine is sent as given. An argument that comes from a
slot or the conversation gets a plausible value of the catalog parameter's JSON type (enum: the
first value; integer 1; number 1.0, both moved inside a minimum or maximum; boolean true; string
"x-<name>"; array: one such item; a `pattern` is not generated). A required parameter the
routine leaves out gets one too: a model has to send it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agents import Agent, Handoff, handoff
from agents.items import TResponseOutputItem
from agents.testing import assistant_message, function_call

from sop_compiler.models import Routine, ToolCatalog
from sop_compiler.models.routine import Step, ToolCall
from sop_compiler.slug import agent_key

Branch = Literal["then", "else"]
MAX_STEPS = 200
FINAL_MESSAGE = "Is there anything else I can help you with?"


class UnendingRoutine(Exception):
    """A path through a routine never reaches its end."""


@dataclass(frozen=True)
class RoutinePath:
    """One way through a routine: its steps in order, labelled `2a` (`<routine>:2a` in a call)."""

    name: str
    steps: list[tuple[str, Step]]

    def ids(self) -> list[str]:
        """The labels of its steps, in order."""
        return [label for label, _step in self.steps]


@dataclass(frozen=True)
class ExpectedCall:
    """A tool call the script makes, as the implementation must receive it."""

    tool: str
    arguments: dict[str, Any]
    needs_approval: bool


@dataclass
class Script:
    """ScriptedModel turns for one path, and what running them must do."""

    path: RoutinePath
    turns: list[list[TResponseOutputItem]] = field(default_factory=list)
    calls: list[ExpectedCall] = field(default_factory=list)
    route: list[str] = field(default_factory=list)  # agent names, top triage to specialist
    ends_on: str = ""  # the agent the run must end on (the specialist, or a handoff's target)

    def describe(self) -> str:
        """The path in one line, for assertion messages."""
        calls = ", ".join(call.tool for call in self.calls) or "no tools"
        return (
            f"path {self.path.name}: {' -> '.join(self.route)}; "
            f"steps {' '.join(self.path.ids())}; {calls}"
        )


def paths(routine: Routine, routines: Mapping[str, Routine]) -> list[RoutinePath]:
    """The `then` and `else` paths, and one to each handoff or tool step they miss; distinct.

    Args:
        routine: The routine to go through.
        routines: Every routine of the network by id, for `call` steps.
    """
    found = [_walk(routine, routines, "then"), _walk(routine, routines, "else")]
    for step in routine.walk():
        if step.kind not in ("handoff", "tool_call"):
            continue
        if any(step is s for path in found for _label, s in path.steps):
            continue
        via = _shortest_way(routine, step.id)
        if via is not None:
            found.append(_walk(routine, routines, "then", via=via, name=f"to {step.id}"))
    distinct: list[RoutinePath] = []
    for path in found:
        if all(path.ids() != other.ids() for other in distinct):
            distinct.append(path)
    return distinct


def governed_path(routine: Routine, catalog: ToolCatalog) -> RoutinePath:
    """A call of each catalog tool the routine's rules allow that none of its steps calls.

    A rule such as "only pending orders can be cancelled" (governs `cancel_pending_order`) tells
    the model when it may call that tool, so a model that follows the SOP's intent calls it.
    """
    called = {s.tool_call.tool for s in routine.walk() if s.tool_call is not None}
    governed = sorted(
        {
            name
            for rule in routine.rules
            if rule.kind != "never"  # a prohibition allows nothing
            for name in rule.governs
            if catalog.get(name) is not None and name not in called
        }
    )
    steps = [
        Step(
            id=f"rule:{name}",
            kind="tool_call",
            text=f"Call `{name}` as the rules allow.",
            tool_call=ToolCall(tool=name),
        )
        for name in governed
    ]
    return RoutinePath(name="governed tools", steps=[(step.id, step) for step in steps])


def script_for(
    routine: Routine, path: RoutinePath, *, triage: Agent[Any], catalog: ToolCatalog
) -> Script:
    """The turns that route to `routine`'s specialist and go along `path`.

    Args:
        routine: The routine `path` goes through.
        path: One of `paths(routine, ...)`, or `governed_path(routine, ...)`.
        triage: The network's top triage agent (from `build_network`).
        catalog: The tool catalog (parameter types, which tools need approval).
    """
    network = agents_of(triage)
    specialist = agent_named(routine.agent, network)
    if specialist is None:
        raise LookupError(f"no agent of the network is {routine.agent!r}: {sorted(network)}")
    script = Script(path=path, route=[triage.name], ends_on=specialist.name)
    for hop in _route(triage, specialist):
        script.turns.append([_transfer(hop, call_id=_next_id(script))])
        script.route.append(_target(hop).name)
    for _label, step in path.steps:
        if step.kind == "tool_call":
            call = _tool_call(step, catalog)
            script.calls.append(call)
            script.turns.append(
                [function_call(call.tool, call.arguments, call_id=_next_id(script))]
            )
        elif step.kind == "handoff":
            target = agent_named(step.target or "", network)
            if target is None:
                raise LookupError(f"step {step.id} hands off to {step.target!r}: {sorted(network)}")
            script.turns.append([_handoff_call(specialist, target, call_id=_next_id(script))])
            script.ends_on = target.name
    script.turns.append([assistant_message(FINAL_MESSAGE)])
    return script


def agents_of(triage: Agent[Any]) -> dict[str, Agent[Any]]:
    """Every agent reachable from `triage` through handoffs, by name."""
    seen: dict[str, Agent[Any]] = {}
    stack = [triage]
    while stack:
        agent = stack.pop()
        if agent.name not in seen:
            seen[agent.name] = agent
            stack.extend(_target(h) for h in agent.handoffs)
    return seen


def agent_named(name: str, network: Mapping[str, Agent[Any]]) -> Agent[Any] | None:
    """The agent a routine's `agent` group or a handoff `target` means (as validate matches)."""
    key = agent_key(name)
    return next((agent for agent in network.values() if agent_key(agent.name) == key), None)


def plausible(schema: Mapping[str, Any], name: str, root: Mapping[str, Any]) -> Any:
    """A value of the JSON type `schema` asks for (local `$ref`s resolved against `root`)."""
    schema = _resolved(schema, root)
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        options = [_resolved(o, root) for o in schema.get(key, [])]
        typed = [o for o in options if o.get("type") != "null"]
        if typed:
            return plausible(typed[0], name, root)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind in ("integer", "number"):
        return _in_bounds(schema, 1 if kind == "integer" else 1.0)
    if kind == "boolean":
        return True
    if kind == "array":
        return [plausible(schema.get("items", {}), name, root)]
    if kind == "object":
        return {}
    return f"x-{name}".ljust(int(schema.get("minLength", 0)), "x")


def _walk(
    routine: Routine,
    routines: Mapping[str, Routine],
    branch: Branch,
    *,
    via: Mapping[int, int] | None = None,
    name: str | None = None,
    prefix: str = "",
) -> RoutinePath:
    """The path `branch` takes, except that a step in `via` goes to the step index it gives."""
    steps = routine.walk()
    position = {step.id: index for index, step in enumerate(steps)}
    taken: list[tuple[str, Step]] = []
    seen: set[int] = set()
    index = 0
    while index < len(steps):
        step = steps[index]
        taken.append((prefix + step.id, step))
        if len(taken) > MAX_STEPS:
            raise UnendingRoutine(f"{routine.id}: no end after {MAX_STEPS} steps")
        if step.kind in ("resolve", "escalate", "handoff"):
            break
        if step.kind == "call" and step.routine is not None:
            called = _walk(routines[step.routine], routines, "then", prefix=f"{step.routine}:")
            taken += called.steps
            if called.steps and called.steps[-1][1].kind in ("escalate", "handoff"):
                break  # an escalation or handoff inside the called routine ends both
        if via and index in via and index not in seen:
            following = via[index]
        else:
            way = branch if index not in seen else _other(branch)
            following = _successor(step, index, position, way)
        seen.add(index)
        index = following
    return RoutinePath(name=name or branch, steps=taken)


def _successor(step: Step, index: int, position: Mapping[str, int], branch: Branch) -> int:
    """The index of the step after `step` on `branch` (past the end: the routine ends)."""
    if step.kind == "condition" and step.condition is not None:
        goto = step.condition.then_step if branch == "then" else step.condition.else_step
    elif step.kind == "switch" and step.switch is not None:
        first = step.switch.cases[0].goto if step.switch.cases else None
        goto = first if branch == "then" else step.switch.default
    else:
        goto = step.next_step
    return index + 1 if goto is None else position[goto]


def _shortest_way(routine: Routine, step_id: str) -> dict[int, int] | None:
    """For each step on the shortest way from the first step to `step_id`, the step after it."""
    steps = routine.walk()
    position = {step.id: index for index, step in enumerate(steps)}
    goal = position[step_id]
    came_from: dict[int, int] = {}
    queue = deque([0])
    while queue:
        index = queue.popleft()
        if index == goal:
            via: dict[int, int] = {}
            while index != 0:
                via[came_from[index]] = index
                index = came_from[index]
            return via
        for target in steps[index].targets():
            following = index + 1 if target is None else position[target]
            if following < len(steps) and following not in came_from and following != 0:
                came_from[following] = index
                queue.append(following)
    return None


def _other(branch: Branch) -> Branch:
    return "else" if branch == "then" else "then"


def _tool_call(step: Step, catalog: ToolCatalog) -> ExpectedCall:
    """The call a `tool_call` step makes, with its literal values and plausible others."""
    assert step.tool_call is not None
    tool = catalog.get(step.tool_call.tool)
    if tool is None:
        raise LookupError(f"step {step.id} calls {step.tool_call.tool}, not in the catalog")
    schema = tool.parameters
    properties: Mapping[str, Any] = schema.get("properties", {})
    arguments: dict[str, Any] = {}
    for argument in step.tool_call.arguments:
        if argument.value is not None:
            arguments[argument.name] = argument.value
        else:
            arguments[argument.name] = plausible(
                properties.get(argument.name, {}), argument.name, schema
            )
    for required in schema.get("required", []):
        if required not in arguments:
            arguments[required] = plausible(properties.get(required, {}), required, schema)
    return ExpectedCall(tool=tool.name, arguments=arguments, needs_approval=tool.needs_approval)


def _handoff_call(agent: Agent[Any], target: Agent[Any], *, call_id: str) -> TResponseOutputItem:
    """The transfer a handoff step makes: the wired handoff's, else the SDK's default name."""
    wired = next((h for h in agent.handoffs if _target(h) is target), None)
    if wired is not None:
        return _transfer(wired, call_id=call_id)
    # Not wired: the call a model following the routine makes, which the run must refuse.
    return function_call(Handoff.default_tool_name(target), {"reason": "x-reason"}, call_id=call_id)


def _transfer(hop: Agent[Any] | Handoff[Any, Any], *, call_id: str) -> TResponseOutputItem:
    """A call of the handoff `hop`, with a plausible value for each field of its input."""
    sdk = hop if isinstance(hop, Handoff) else handoff(hop)
    schema = sdk.input_json_schema or {}
    arguments = {
        name: plausible(prop, name, schema) for name, prop in schema.get("properties", {}).items()
    }
    return function_call(sdk.tool_name, arguments, call_id=call_id)


def _route(triage: Agent[Any], specialist: Agent[Any]) -> list[Agent[Any] | Handoff[Any, Any]]:
    """The handoffs from `triage` down to `specialist`, the fewest first (breadth first)."""
    queue: deque[tuple[Agent[Any], list[Agent[Any] | Handoff[Any, Any]]]] = deque([(triage, [])])
    seen = {id(triage)}
    while queue:
        agent, hops = queue.popleft()
        if agent is specialist:
            return hops
        for hop in agent.handoffs:
            target = _target(hop)
            if id(target) not in seen:
                seen.add(id(target))
                queue.append((target, [*hops, hop]))
    raise LookupError(f"{specialist.name} cannot be reached from {triage.name}")


def _target(hop: Agent[Any] | Handoff[Any, Any]) -> Agent[Any]:
    """The agent a handoff (an Agent or an SDK Handoff) leads to."""
    if isinstance(hop, Agent):
        return hop
    target = hop._agent_ref() if hop._agent_ref is not None else None
    if not isinstance(target, Agent):
        raise LookupError(f"handoff {hop.tool_name} leads to no agent")
    return target


def _next_id(script: Script) -> str:
    """A call id unique in the script: one per turn."""
    return f"c{len(script.turns) + 1}"


def _in_bounds(schema: Mapping[str, Any], value: float) -> float:
    """`value`, moved inside the schema's minimum and maximum."""
    if "minimum" in schema and value < schema["minimum"]:
        value = type(value)(schema["minimum"])
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        value = type(value)(schema["exclusiveMinimum"] + 1)
    if "maximum" in schema and value > schema["maximum"]:
        value = type(value)(schema["maximum"])
    return value


def _resolved(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """`schema`, following local `#/$defs/...` references (a few levels)."""
    for _ in range(8):
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        schema = target
    return schema
