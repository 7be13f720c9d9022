"""The agent network: a Python package of Agents SDK agents, tools and triage, from templates."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sop_compiler import __version__
from sop_compiler.config import Settings
from sop_compiler.emit._env import render
from sop_compiler.emit._plan import (
    NetworkPlan,
    Specialist,
    Triage,
    import_order,
    plan_network,
    verification_gates,
)
from sop_compiler.emit._pytools import context_fields, tool_stubs
from sop_compiler.emit.routines import routine_markdown
from sop_compiler.escape import one_line, py_docstring, py_literal, py_string
from sop_compiler.lock import LOCK_VERSION
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
    # Set when the routines are too many or too long to inline: (id, file) pairs to load.
    index: list[tuple[str, str]]
    index_text: str
    reader_name: str


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
    """The `agent_network/` package: one module per specialist, tools, triage, context, run.

    `routines` are the routines that ship (see `deployable`): every tool they call is on its
    agent, and every handoff they make is wired.
    """
    plan = plan_network(routines, settings)
    used = sorted({name for s in plan.specialists for name in s.tools if catalog.get(name)})
    stubs = tool_stubs([tool for tool in catalog.tools if tool.name in used])
    functions = {stub.name: stub.function for stub in stubs}
    gates = {name: by for name, by in verification_gates(routines, catalog).items() if name in used}
    verifiers = sorted(
        {tool for by in gates.values() for tool in by}
        | {name for name in used if (tool := catalog.get(name)) and tool.verifies_identity()}
    )
    typing_names = ["Any"] + (["Annotated"] if any(s.uses_field for s in stubs) else [])
    typing_names += ["Literal"] if any(stub.uses_literal for stub in stubs) else []
    fields = context_fields(routines, catalog)
    network = settings.network

    files: dict[str, bytes] = {
        f"{PACKAGE}/__init__.py": render("network_init.py.j2"),
        f"{PACKAGE}/_run.py": render("run.py.j2"),
        f"{PACKAGE}/context.py": render(
            "context.py.j2",
            fields=fields,
            docstring=py_docstring(
                "What this conversation has established (one per conversation).",
                indent=4,
                args=[("verified", "A verifying tool succeeded in this conversation.")]
                + [(name, description) for name, _, description in fields],
            ),
        ),
        f"{PACKAGE}/_config.py": render(
            "network_config.py.j2",
            model=py_string(settings.model, indent=0, prefix=50),
            max_tokens=network.max_tokens,
            disclosure=py_string(_DISCLOSURE, indent=0, prefix=25) if network.disclose_ai else None,
            trace=[(key, py_string(value, indent=4, prefix=30)) for key, value in _trace(routines)],
        ),
        f"{PACKAGE}/tools.py": render(
            "tools.py.j2",
            stubs=stubs,
            typing_names=", ".join(sorted(typing_names)),
            uses_field=any(stub.uses_field for stub in stubs),
            implementation=py_string(settings.implementation_module, indent=0, prefix=25),
            verifiers="{" + ", ".join(py_literal(name) for name in verifiers) + "}"
            if verifiers
            else "()",
            verify_first=[(py_literal(name), _tuple(by)) for name, by in gates.items()],
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
            guardrails=(
                py_string(network.guardrails, indent=0, prefix=20) if network.guardrails else None
            ),
        ),
    }
    for specialist in plan.specialists:
        index = _needs_index(specialist, settings)
        code = _AgentCode(
            var=specialist.var,
            name=py_string(specialist.name, indent=4, prefix=10),
            description=py_string(specialist.description, indent=4, prefix=24),
            role=py_string(_role(plan, specialist), indent=0, prefix=10),
            folder=py_string(specialist.folder, indent=0, prefix=10),
            routine_files=[py_literal(name) for name in specialist.routine_files],
            tools=[functions[name] for name in specialist.tools if name in functions],
            index=(
                [
                    (py_literal(routine.id), py_literal(file))
                    for routine, file in zip(
                        specialist.routines, specialist.routine_files, strict=True
                    )
                ]
                if index
                else []
            ),
            index_text=(
                py_string(_index_text(specialist, _reader_name(catalog)), indent=0, prefix=10)
                if index
                else ""
            ),
            reader_name=py_literal(_reader_name(catalog)),
        )
        files[f"{PACKAGE}/{specialist.module}.py"] = render("agent.py.j2", agent=code)
    return files


_DISCLOSURE = (
    "If no earlier message in this conversation has told the customer that they are talking "
    "with an AI assistant, begin your reply by saying so, in one short sentence."
)


def _tuple(values: list[str]) -> str:
    """A tuple of string literals as ruff formats it: `("a",)`, `("a", "b")`."""
    items = [py_literal(value) for value in values]
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _trace(routines: list[Routine]) -> list[tuple[str, str]]:
    """Trace metadata (strings of at most 512 characters): sopc and lock versions, the routine
    ids, and one hash over every SOP file's sha256 (each routine's JSON names its own)."""
    ids = ",".join(sorted(f"{r.agent}/{r.id}" for r in routines))
    sops = sorted({(r.source.file, r.source.sha256) for r in routines})
    digest = hashlib.sha256(json.dumps(sops).encode("utf-8")).hexdigest()
    if len(ids) > 512:
        ids = "sha256:" + hashlib.sha256(ids.encode("utf-8", "surrogatepass")).hexdigest()
    return [
        ("sopc_version", __version__),
        ("sopc_lock_version", str(LOCK_VERSION)),
        ("routines", ids),
        ("routine_count", str(len(routines))),
        ("sops_sha256", digest),
    ]


def _needs_index(specialist: Specialist, settings: Settings) -> bool:
    """Whether the agent's routines are too many or too long to sit in its instructions."""
    limits = settings.network
    if len(specialist.routines) > limits.index_routines:
        return True
    size = sum(len(routine_markdown(routine)) for routine in specialist.routines)
    return size > limits.index_chars


def _index_text(specialist: Specialist, reader: str) -> str:
    lines = [
        "Your routines are listed below by id, each with the request it handles. Before you act "
        f"on a request, call {reader} with the id of the routine that matches it, then "
        "follow that routine step by step. If none matches, do not improvise.",
        "",
    ]
    lines += [f"- {r.id}: {one_line(r.trigger or r.title)}" for r in specialist.routines]
    return "\n".join(lines)


def _reader_name(catalog: ToolCatalog) -> str:
    """The routine-loading tool's name, clear of every catalog tool."""
    name = "read_routine"
    while catalog.get(name) is not None:
        name = f"sopc_{name}"
    return name


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
