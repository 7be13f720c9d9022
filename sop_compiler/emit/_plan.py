"""The shape of the agent network: folders, names and the triage tree, shared by code and review."""

from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sop_compiler.config import Settings
from sop_compiler.escape import one_line
from sop_compiler.models import Routine, ToolCatalog, ValidationReport
from sop_compiler.models.routine import walk_steps
from sop_compiler.slug import agent_key, identifier, slugify

_SAFE_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
_SAFE_STEM = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
# Names the generated package uses for itself: a specialist module must not take them.
_RESERVED_MODULES = frozenset({"tools", "triage", "agents", "agent_network"})
# The SDK names a handoff tool `transfer_to_<agent name>` (Handoff.default_tool_name) without
# shortening it, and OpenAI rejects a tool name over 64 characters: agent names must fit.
_MAX_AGENT_NAME = 64 - len("transfer_to_")


def agent_dir(agent: str) -> str:
    """The folder (with `/` for nesting) of an agent group: lowercase, safe in any file system."""
    segments = [part for part in agent.replace("\\", "/").split("/") if part.strip()]
    safe = [
        part if _SAFE_SEGMENT.match(part) else slugify(part, fallback="agent") for part in segments
    ]
    return "/".join(safe) or "general"


def routine_stem(routine_id: str) -> str:
    """The file name (without suffix) of a routine: its id when already safe, else a slug."""
    if _SAFE_STEM.match(routine_id) and ".." not in routine_id:
        return routine_id
    return slugify(routine_id, fallback="routine")


def routine_paths(routine: Routine) -> tuple[str, str]:
    """Relative paths of a routine's Markdown and JSON files."""
    base = f"routines/{agent_dir(routine.agent)}/{routine_stem(routine.id)}"
    return f"{base}.md", f"{base}.json"


def title_of(folder: str) -> str:
    """A display name from a folder path: `billing/late_fees` -> `Billing Late Fees`."""
    words = re.split(r"[\s_/-]+", folder)
    return " ".join(word[:1].upper() + word[1:] for word in words if word) or "General"


def _tool_key(name: str) -> str:
    """How the SDK turns an agent name into a handoff tool name; equal keys would collide."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", re.sub(r"\s", "_", name)).lower()


@dataclass
class Specialist:
    """One agent group: a specialist agent and its routines."""

    folder: str  # e.g. `billing/disputes`
    groups: list[str]  # the routines' agent strings that map to this folder
    routines: list[Routine]
    name: str = ""
    module: str = ""
    var: str = ""
    description: str = ""
    tools: list[str] = field(default_factory=list)
    # The other specialists this one's routines hand off to, in folder order.
    peers: list[Specialist] = field(default_factory=list)

    @property
    def routine_files(self) -> list[str]:
        return [f"{routine_stem(routine.id)}.md" for routine in self.routines]


@dataclass
class Triage:
    """A triage agent for one folder level (`` for the top)."""

    folder: str
    name: str = ""
    var: str = ""
    members: list[Specialist | Triage] = field(default_factory=list)
    parent: Triage | None = None

    @property
    def description(self) -> str:
        return "; ".join(member.description.rstrip(".") for member in self.members) + "."

    def walk(self) -> list[Triage]:
        """This triage and every triage below it, top first."""
        out = [self]
        for member in self.members:
            if isinstance(member, Triage):
                out.extend(member.walk())
        return out


@dataclass
class NetworkPlan:
    """Every specialist (sorted by folder) and the triage tree above them."""

    specialists: list[Specialist]
    top: Triage

    def triages(self) -> list[Triage]:
        return self.top.walk()

    def parent_of(self, member: Specialist | Triage) -> Triage | None:
        for triage in self.triages():
            if any(candidate is member for candidate in triage.members):
                return triage
        return None


def _python_name(folder: str, taken: set[str], *, suffix: str = "") -> str:
    """A short identifier for a folder (long ones keep a hash), never starting with `_`."""
    name = identifier(slugify(folder.replace("/", "_"), max_len=28, fallback="agent"))
    name = f"agent{name}" if name.startswith("_") else name
    while f"{name}{suffix}" in taken or keyword.iskeyword(name):
        name = f"{name}_"
    taken.add(f"{name}{suffix}")
    return f"{name}{suffix}"


def import_order(name: str) -> list[tuple[int, int | str]]:
    """Sort key that matches ruff's isort: natural numbers, case-insensitive, digits < `_`."""
    return [
        (0, int(part)) if part.isdigit() else (1, part.lower())
        for part in re.findall(r"\d+|\D+", name)
    ]


def _bounded(name: str) -> str:
    """The name, or its start plus a hash of the whole when its handoff tool name is too long."""
    if len(_tool_key(name)) <= _MAX_AGENT_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{name[: _MAX_AGENT_NAME - len(digest) - 1].rstrip()} {digest}"


def _unique(name: str, taken: set[str]) -> str:
    """A name whose handoff tool name is unique among `taken` and within the length limit."""
    candidate, n = _bounded(name), 1
    while _tool_key(candidate) in taken:
        n += 1
        candidate = _bounded(f"{name} {n}")
    taken.add(_tool_key(candidate))
    return candidate


# A rule about the customer's identity: "only if the customer is verified / authenticated".
_VERIFIED = re.compile(r"\b(verif(y|ied|ication)|authenticat(e|ed|ion)|identity)\b", re.I)
_SUMMARY_CHARS = 240  # a handoff description is one short line, whatever the agent's size


def _summary(specialist: Specialist) -> str:
    """`Handles: <title>; <title>; ... and N more.`, at most about _SUMMARY_CHARS long.

    Titles, not triggers: triage picks an agent from one line per agent, and the agent's own
    routines (or index) carry the full trigger of each.
    """
    titles = list(dict.fromkeys(one_line(r.title).rstrip(".") for r in specialist.routines))
    titles = [title for title in titles if title]
    if not titles:
        return f"Handles {specialist.name} requests."
    shown: list[str] = []
    for n, title in enumerate(titles):
        rest = len(titles) - n - 1
        more = f"; and {rest} more" if rest else ""
        if shown and len("Handles: " + "; ".join([*shown, title]) + more) > _SUMMARY_CHARS:
            return f"Handles: {'; '.join(shown)}; and {len(titles) - n} more."
        shown.append(title)
    return f"Handles: {'; '.join(shown)}."


def plan_network(routines: Iterable[Routine], settings: Settings | None = None) -> NetworkPlan:
    """Group routines by agent folder, name every agent, and build the triage tree."""
    settings = settings or Settings()
    by_folder: dict[str, Specialist] = {}
    for routine in sorted(routines, key=lambda r: (agent_dir(r.agent), r.id)):
        folder = agent_dir(routine.agent)
        specialist = by_folder.setdefault(folder, Specialist(folder=folder, groups=[], routines=[]))
        specialist.routines.append(routine)
        if routine.agent not in specialist.groups:
            specialist.groups.append(routine.agent)
    specialists = [by_folder[folder] for folder in sorted(by_folder)]

    names: set[str] = {_tool_key("Triage")}
    modules: set[str] = set(_RESERVED_MODULES)
    for specialist in specialists:
        overrides = [settings.agents[g] for g in sorted(specialist.groups) if g in settings.agents]
        name = next((o.name for o in overrides if o.name), None) or title_of(specialist.folder)
        specialist.name = _unique(one_line(name) or "Agent", names)
        specialist.module = _python_name(specialist.folder, modules)
        specialist.var = f"{specialist.module}_agent"
        custom = next((o.description for o in overrides if o.description), None)
        specialist.description = one_line(custom) if custom else _summary(specialist)
        # The tools the routines call, and those their rules allow: a model that follows a
        # rule about a tool no step calls must find the tool (render keeps catalog tools only).
        # A tool only a `never` rule names is no tool the agent needs.
        specialist.tools = sorted(
            {tool for r in specialist.routines for tool in r.tools_used}
            | {
                name
                for r in specialist.routines
                for rule in r.rules
                if rule.kind != "never"
                for name in rule.governs
            }
        )

    _link_peers(specialists, settings)
    top = Triage(folder="", name="Triage", var="triage_agent")
    variables = {s.var for s in specialists} | {top.var}
    triages: dict[str, Triage] = {"": top}

    def triage_for(folder: str) -> Triage:
        if folder not in triages:
            parent = triage_for(folder.rpartition("/")[0])
            triage = Triage(folder=folder, parent=parent)
            triage.name = _unique(f"{title_of(folder)} Triage", names)
            triage.var = _python_name(folder, variables, suffix="_triage_agent")
            parent.members.append(triage)
            triages[folder] = triage
        return triages[folder]

    nested = {s.folder.rpartition("/")[0] for s in specialists}
    parents = {"/".join(f.split("/")[:i]) for f in nested for i in range(1, f.count("/") + 2)}
    for specialist in specialists:
        # A folder with nested groups gets its own triage; its own SOPs sit under that triage.
        folder = specialist.folder
        triage_for(folder if folder in parents else folder.rpartition("/")[0]).members.append(
            specialist
        )
    for triage in triages.values():
        triage.members.sort(key=lambda m: (m.folder, isinstance(m, Triage)))
    return NetworkPlan(specialists=specialists, top=top)


def _handoff_keys(specialists: list[Specialist], settings: Settings) -> dict[str, Specialist]:
    """Every name a handoff may use for each specialist, keyed as validate keys (`agent_key`)."""
    by_key: dict[str, Specialist] = {}
    for specialist in specialists:
        names = [specialist.folder, specialist.name, *specialist.groups]
        names += [o.name for g in specialist.groups if (o := settings.agents.get(g)) and o.name]
        for name in names:
            by_key.setdefault(agent_key(name), specialist)
    return by_key


def _link_peers(specialists: list[Specialist], settings: Settings) -> None:
    """Each specialist's handoff targets, in folder order."""
    by_key = _handoff_keys(specialists, settings)
    for specialist in specialists:
        targets = {
            id(target): target
            for routine in specialist.routines
            for step in walk_steps(routine.steps)
            if step.kind == "handoff"
            and (target := by_key.get(agent_key(step.target or ""))) is not None
            and target is not specialist
        }
        specialist.peers = sorted(targets.values(), key=lambda s: s.folder)


def deployable(
    routines: Iterable[Routine], reports: Mapping[str, ValidationReport], settings: Settings
) -> tuple[list[Routine], dict[str, str]]:
    """The routines the network runs, and why each other routine is left out of it.

    A routine with a validation error never ships: its agent runs without it. Nor does one
    that hands off to an agent with no deployed routine, or calls a routine that is not
    deployed, since following it would reach a handoff or routine the network lacks. Keys of
    the second map are `<agent>/<id>`, as in `reports`.
    """
    pending = sorted(routines, key=lambda r: (r.agent, r.id))
    left_out: dict[str, str] = {}
    for routine in pending:
        report = reports.get(f"{routine.agent}/{routine.id}")
        if report is not None and report.errors:
            codes = ", ".join(dict.fromkeys(issue.code for issue in report.errors))
            left_out[f"{routine.agent}/{routine.id}"] = f"validation errors: {codes}"
    while True:
        deployed = [r for r in pending if f"{r.agent}/{r.id}" not in left_out]
        specialists = plan_network(deployed, settings).specialists
        by_key = _handoff_keys(specialists, settings)
        ids = {(r.agent, r.id) for r in deployed}
        more: dict[str, str] = {}
        for routine in deployed:
            for step in walk_steps(routine.steps):
                if step.kind == "handoff" and agent_key(step.target or "") not in by_key:
                    reason = f"hands off to {step.target}, which has no deployed routine"
                elif step.kind == "call" and (routine.agent, step.routine or "") not in ids:
                    reason = f"calls routine {step.routine}, which is not deployed"
                else:
                    continue
                more.setdefault(f"{routine.agent}/{routine.id}", f"step {step.id} {reason}")
        if not more:
            return deployed, left_out
        left_out.update(more)


def verification_gates(routines: Iterable[Routine], catalog: ToolCatalog) -> dict[str, list[str]]:
    """Write tools that may only run once the customer is verified, with the tools that verify.

    A write tool is gated when a rule that governs it asks for a verified (authenticated)
    customer, or when every routine that calls it verifies the customer (calls a verifying
    catalog tool) before it: what the SOPs order before that write, the network then enforces
    in code. Otherwise a tool some routine calls without verifying first stays open to all.
    """
    verifiers = {tool.name for tool in catalog.tools if tool.verifies_identity()}
    gates: dict[str, set[str]] = {}
    open_to_all: set[str] = set()
    ruled: set[str] = set()  # write tools a rule allows only for a verified customer
    for routine in routines:
        for rule in routine.rules:
            if verifiers and _VERIFIED.search(f"{rule.text} {rule.condition or ''}"):
                for name in rule.governs:
                    tool = catalog.get(name)
                    if tool is not None and tool.access == "write":
                        gates.setdefault(name, set()).update(verifiers)
                        ruled.add(name)
        seen: list[str] = []
        for step in walk_steps(routine.steps):
            call = step.tool_call if step.kind == "tool_call" else None
            tool = catalog.get(call.tool) if call is not None else None
            if tool is None:
                continue
            if tool.name in verifiers:
                seen.append(tool.name)
            elif tool.access == "write" and seen:
                gates.setdefault(tool.name, set()).update(seen)
            elif tool.access == "write":
                open_to_all.add(tool.name)
    return {
        name: sorted(by)
        for name, by in sorted(gates.items())
        if name in ruled or name not in open_to_all
    }
