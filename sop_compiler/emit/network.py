"""The agent network: a Python package of Agents SDK agents, tools and triage, from templates."""

from __future__ import annotations

from dataclasses import dataclass

from sop_compiler.config import Settings
from sop_compiler.emit._env import render
from sop_compiler.emit._plan import NetworkPlan, Specialist, Triage, import_order, plan_network
from sop_compiler.emit._pytools import tool_stubs
from sop_compiler.escape import py_literal, py_string
from sop_compiler.models import Routine, ToolCatalog

__all__ = ["PACKAGE", "render_network"]

PACKAGE = "agent_network"  # never `agents`: that is the SDK's import name


@dataclass(frozen=True)
class _AgentCode:
    """What agent.py.j2 needs for one specialist, every text already a Python expression."""

    var: str
    name: str
    description: str
    role: str
    folder: str
    routine_files: list[str]
    tools: list[str]


@dataclass(frozen=True)
class _TriageCode:
    var: str
    const: str
    name: str
    description: str | None
    instructions: str
    members: list[str]


def render_network(
    routines: list[Routine], *, catalog: ToolCatalog, settings: Settings
) -> dict[str, bytes]:
    """The `agent_network/` package: one module per specialist, tools.py, triage.py, __init__.py."""
    plan = plan_network(routines, settings)
    used = sorted({name for s in plan.specialists for name in s.tools if catalog.get(name)})
    stubs = tool_stubs([tool for tool in catalog.tools if tool.name in used])
    functions = {stub.name: stub.function for stub in stubs}

    files: dict[str, bytes] = {
        f"{PACKAGE}/__init__.py": render("network_init.py.j2"),
        f"{PACKAGE}/_config.py": render(
            "network_config.py.j2", model=py_string(settings.model, indent=0, prefix=50)
        ),
        f"{PACKAGE}/tools.py": render(
            "tools.py.j2",
            stubs=stubs,
            uses_literal=any(stub.uses_literal for stub in stubs),
            implementation=py_string(settings.implementation_module, indent=0, prefix=25),
        ),
        f"{PACKAGE}/triage.py": render(
            "triage.py.j2",
            imports=sorted(
                ((s.module, s.var) for s in plan.specialists), key=lambda m: import_order(m[0])
            ),
            triages=[_triage_code(plan, t) for t in reversed(plan.triages())],
            agents=[s.var for s in plan.specialists] + [t.var for t in reversed(plan.triages())],
            top=plan.top.var,
            peers=[(s.var, [p.var for p in s.peers]) for s in plan.specialists if s.peers],
        ),
    }
    for specialist in plan.specialists:
        code = _AgentCode(
            var=specialist.var,
            name=py_string(specialist.name, indent=4, prefix=10),
            description=py_string(specialist.description, indent=4, prefix=24),
            role=py_string(_role(plan, specialist), indent=0, prefix=10),
            folder=py_string(specialist.folder, indent=0, prefix=10),
            routine_files=[py_literal(name) for name in specialist.routine_files],
            tools=[functions[name] for name in specialist.tools if name in functions],
        )
        files[f"{PACKAGE}/{specialist.module}.py"] = render("agent.py.j2", agent=code)
    return files


def _role(plan: NetworkPlan, specialist: Specialist) -> str:
    parent = plan.parent_of(specialist) or plan.top
    return (
        f"You are the {specialist.name} agent. Follow the routine below that matches the "
        "customer's request, step by step and in order. Call tools only where a step says so, "
        "and never make up facts, amounts or policies: when a routine does not say, ask or "
        "escalate. If the customer needs something none of your routines covers, hand the "
        f"conversation back to the {parent.name} agent."
    )


def _triage_instructions(plan: NetworkPlan, triage: Triage) -> str:
    lines = [
        f"You are the {triage.name} agent. Find out what the customer needs and hand the "
        "conversation off to the one agent below whose requests match it. Never answer a "
        "question that belongs to one of these agents yourself, and never make up an answer. "
        "If it is not clear which agent fits, ask the customer one short question to find out."
    ]
    parent = plan.parent_of(triage)
    if parent is not None:
        lines.append(
            "If the request belongs to none of them, hand the conversation back to the "
            f"{parent.name} agent."
        )
    lines += ["", "Agents and the requests they handle:"]
    lines += [f"- {member.name}: {member.description}" for member in triage.members]
    return "\n".join(lines)


def _triage_code(plan: NetworkPlan, triage: Triage) -> _TriageCode:
    return _TriageCode(
        var=triage.var,
        const=triage.var.removesuffix("_agent").upper() + "_INSTRUCTIONS",
        name=py_string(triage.name, indent=4, prefix=10),
        description=(py_string(triage.description, indent=4, prefix=24) if triage.parent else None),
        instructions=py_string(_triage_instructions(plan, triage), indent=0, prefix=30),
        members=[member.var for member in triage.members],
    )
