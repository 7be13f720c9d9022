"""Why a routine is current, stale or re-validated: every dependency rule of sopc, in one place.

A routine depends on (docs/ci.md, "What a routine depends on"):

- its **input key**: the procedure's cleaned text and images, the backend and its settings (model,
  temperature, ...), the prompt templates, the routine schema and sopc's output version; for a
  backend whose answer is free and deterministic (offline), also the whole tool catalog and agent
  set, so that its outputs never depend on the build's history. A changed input key costs a call.
- its **dependencies** (recorded per routine in `sopc.lock` as `depends`): the catalog tools it
  names (by the hash of each tool's definition), the agents it hands off to, and the tools it
  proposed that no catalog tool covered. A routine that names no tool does not depend on the
  catalog at all, so adding a tool nobody uses costs nothing.
- its **render key**: the input key, the dependencies as the catalog and agent set show them
  today, the templates, the output-relevant settings and the render version. A changed render
  key costs no call: the routine is re-validated and re-rendered from its JSON, and regenerated
  only if the re-validation finds an error it did not have (a changed tool's schema now rejects
  an argument; a handoff's agent was removed).
- a proposed tool that a catalog tool now covers (same name, an alias, or a close description)
  regenerates the routine: a real tool exists for what it had to leave undone.

A routine that already has validation errors is re-validated on any catalog or agent change,
because its messages list the catalog (an unknown tool) or the agents (an unknown handoff).

An SOP's procedure list depends on the file's bytes, sopc's output version, the reading settings
and, for a scanned page or an image, the OCR engine and its version (`SopEntry.ocr`).

`decide()` applies these rules to one procedure and says why; the no-op fast path (`_fast.py`)
is only a cache in front of it.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sop_compiler.config import Settings
from sop_compiler.files import templates_sha
from sop_compiler.lock._file import (
    OUTPUT_VERSION,
    RENDER_VERSION,
    Dependencies,
    LockFile,
    ProcedureEntry,
    sha256_json,
)
from sop_compiler.lock._planned import routine_json_path
from sop_compiler.models import Routine, StaleEntry, Tool, ToolCatalog, ValidationReport
from sop_compiler.slug import agent_key

if TYPE_CHECKING:
    from sop_compiler.lock._planned import PlannedProcedure
    from sop_compiler.lock._stat import FileStates

# Settings that change neither reading, validation nor rendering, or that the backend fingerprint
# already covers; everything else (including settings added later) is output-relevant.
_NOT_OUTPUT_SETTINGS = frozenset(
    {
        "output",
        "jobs",
        "cache_dir",
        "cache",
        "tools",
        "timeout",
        "max_retries",
        "base_url",
        "backend",
        "temperature",
        "seed",
        "structured_output",
        "repair_attempts",
        "vision",
        # how answers travel, not what they say (a cut-off answer is never used)
        "idle_timeout",
        "stream",
        "local",
        "max_tokens",
        "max_answer_mb",
        "check_import",
        "scenarios",  # where eval's scenarios live: no compiled output depends on it
    }
)


@dataclass(frozen=True)
class Keys:
    """The run-wide parts of every key, and the current catalog and agents that deps resolve in."""

    sopc: str
    backend: dict[str, Any]
    backend_sha: str
    catalog: str
    schema: str
    prompts: str
    templates: str
    settings: str
    agents: str = ""
    # True: the backend's answer is keyed on the whole catalog and agent set (offline: free and
    # deterministic); False: only on what each routine uses (a model: every call costs).
    whole_catalog: bool = True
    tools: dict[str, str] = field(default_factory=dict)  # catalog tool name -> definition hash
    tool_defs: tuple[Tool, ...] = ()
    agent_names: frozenset[str] = frozenset()  # every agent_key() a handoff target may use
    ocr_setting: str = "auto"

    @property
    def ocr(self) -> str:
        """The OCR engine and version a scanned page is read with (asked only when needed)."""
        return _ocr_identity(self.ocr_setting)

    @classmethod
    def compute(
        cls,
        *,
        settings: Settings,
        catalog: ToolCatalog,
        backend: dict[str, Any],
        agents: Iterable[str] = (),
        whole_catalog: bool = True,
    ) -> Keys:
        """Hash the backend fingerprint, catalog, schema, templates and output-relevant settings.

        `agents` is the run's agent set: handoff targets resolve against it, so a build must not
        depend on which folders came first.
        """
        from sop_compiler.validate import handoff_names

        relevant = settings.model_dump(mode="json", exclude=set(_NOT_OUTPUT_SETTINGS))
        agent_set = sorted(set(agents))
        return cls(
            sopc=OUTPUT_VERSION,
            backend=backend,
            backend_sha=sha256_json(backend),
            catalog=catalog.sha256(),
            schema=_schema_sha(),
            prompts=templates_sha(under="prompts"),
            templates=templates_sha(),
            settings=sha256_json(relevant),
            agents=sha256_json(agent_set),
            whole_catalog=whole_catalog,
            tools={tool.name: tool_sha(tool) for tool in catalog.tools},
            tool_defs=tuple(catalog.tools),
            agent_names=frozenset(agent_key(n) for n in handoff_names(agent_set, settings)),
            ocr_setting=settings.ocr,
        )

    def has_agent(self, target: str) -> bool:
        """True when a handoff to `target` reaches an agent of this run (as validate matches it)."""
        return agent_key(target) in self.agent_names

    # The parts are hex digests or version strings (no NUL), so joining them is unambiguous.
    def sop(self, sha256: str, *, ocr: str | None = None) -> str:
        """Key under which an SOP's procedure list in the lock is trusted without reading it.

        `ocr` is the OCR identity the SOP was read with when it holds a scanned page or an image.
        """
        return _join_sha(sha256, self.sopc, self.settings, *([f"ocr {ocr}"] if ocr else []))

    def input(self, text: str) -> str:
        """Key of everything that decides a generated routine: a change costs a model call."""
        parts = [text, self.backend_sha, self.schema, self.prompts, self.sopc]
        if self.whole_catalog:
            parts += [self.catalog, self.agents]
        return _join_sha(*parts)

    def render(self, input_key: str, depends: Dependencies, *, errors: bool) -> str:
        """Key of the routine's report and rendered files: a change re-validates, no call."""
        view: list[Any] = [
            {name: self.tools.get(name, "") for name in sorted(depends.tools)},
            {agent: self.has_agent(agent) for agent in sorted(depends.agents)},
        ]
        if errors:  # error messages list the catalog and the agents
            view += [self.catalog, self.agents]
        return _join_sha(
            input_key, self.templates, self.settings, RENDER_VERSION, sha256_json(view)
        )


def tool_sha(tool: Tool) -> str:
    """Hash of one catalog tool's definition (what validation and the prompt see of it)."""
    return sha256_json(tool.model_dump(mode="json"))[:16]


def depends_of(routine: Routine, keys: Keys) -> Dependencies:
    """What `routine`'s validity depends on besides its input key, as of this run."""
    names = {step.tool_call.tool for step in routine.walk() if step.tool_call is not None}
    names |= {name for rule in routine.rules for name in rule.governs}
    names |= {tool.name for tool in routine.tools_proposed}
    tools = {name: keys.tools.get(name, "") for name in sorted(names) if _tool_name(name)}
    agents = sorted(
        {step.target for step in routine.walk() if step.kind == "handoff" and step.target}
    )
    proposed = {
        tool.name: " ".join(tool.description.split())
        for tool in sorted(routine.tools_proposed, key=lambda t: t.name)
        if covering_tool(tool.name, tool.description, keys.tool_defs) is None
    }
    return Dependencies(tools=tools, agents=agents, proposed=proposed)


def covering_tool(name: str, description: str, tools: Iterable[Tool]) -> str | None:
    """The catalog tool that covers a proposed one: same name, an alias, or a close description."""
    words = _words(description)
    name_words = frozenset(_words(name.replace("_", " ")))
    for tool in sorted(tools, key=lambda t: t.name):
        if name == tool.name or name in tool.aliases:
            return tool.name
        if name_words and name_words == frozenset(_words(tool.name.replace("_", " "))):
            return tool.name
        theirs = _words(tool.description)
        shared = words & theirs
        if len(shared) >= 3 and len(shared) / len(words | theirs) >= 0.6:
            return tool.name
    return None


def decide(
    proc: PlannedProcedure, *, keys: Keys, old_lock: LockFile, files: FileStates, refresh: bool
) -> None:
    """Set the procedure's state (current, rerender, generate) and, for --check, why."""
    sop = proc.sop
    proc.input = keys.input(proc.text)
    proc.old = old = sop.old.procedures.get(proc.id) if sop.old else None
    proc.problems, proc.report = [], None
    proc.render = proc.why = ""

    def problem(reason: Literal["stale", "new"], detail: str) -> None:
        proc.why = detail
        proc.problems.append(
            StaleEntry(path=sop.source, where="sops", reason=reason, detail=f"{proc.id}: {detail}")
        )

    if old is None:
        proc.state = "generate"
        problem("new", "no outputs yet")
        return
    if refresh or old.input != proc.input:
        proc.state = "generate"
        problem("stale", "--refresh" if refresh else why_stale(old, proc, keys, old_lock))
        return
    covered = _covered(old, keys)
    if covered:
        proc.state = "generate"
        problem("stale", covered)
        return
    proc.render = keys.render(proc.input, old.depends, errors=_has_errors(old))
    proc.report = ValidationReport(routine_id=proc.id, issues=old.issues, coverage=old.coverage)
    states = {rel: files.state(rel, sha) for rel, sha in sorted(old.outputs.items())}
    for rel, state in states.items():
        if state != "ok":
            detail = (
                "deleted" if state == "missing" else "differs from what sopc wrote (hand-edited?)"
            )
            proc.problems.append(
                StaleEntry(path=rel, reason=state, detail=f"{detail}; from {sop.source}")
            )
    json_rel = routine_json_path(old.outputs)
    if json_rel is None or states[json_rel] != "ok":
        proc.state = "generate"
    elif proc.problems or old.render != proc.render:
        proc.state = "rerender"
        if old.render != proc.render:
            why = why_revalidated(old, keys, old_lock)
            problem(
                "stale",
                f"{why}: re-validated without a model call (regenerated only if it now fails)",
            )
            proc.why = why
    else:
        proc.state = "current"


def why_stale(old: ProcedureEntry, proc: PlannedProcedure, keys: Keys, lock: LockFile) -> str:
    """The input that changed, for a procedure whose input key no longer matches."""
    if not old.input:
        return "the last compile did not finish it"
    if old.text != proc.text:
        ocr = proc.sop.old.ocr if proc.sop.old else None
        if ocr and ocr != keys.ocr:
            return f"the SOP text changed (OCR engine {ocr} -> {keys.ocr})"
        return "the SOP text changed"
    if lock.backend != keys.backend:
        before, now = lock.backend, keys.backend
        if before.get("backend") != now.get("backend"):
            return f"the backend changed ({before.get('backend')} -> {now.get('backend')})"
        if before.get("model") != now.get("model"):
            return f"the model changed ({before.get('model')} -> {now.get('model')})"
        changed = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
        if any(k.startswith("prompt") for k in changed):
            return "the prompt templates changed"
        return f"backend settings changed ({', '.join(changed)})"
    if lock.sopc != keys.sopc:
        return f"the sopc output version changed ({lock.sopc} -> {keys.sopc})"
    if lock.prompts and lock.prompts != keys.prompts:
        return "the prompt templates changed"
    if lock.schema_sha and lock.schema_sha != keys.schema:
        return "the routine schema changed"
    if keys.whole_catalog and lock.catalog != keys.catalog:
        return f"the tool catalog changed ({_catalog_change(lock, keys)})"
    if keys.whole_catalog and lock.agents and lock.agents != keys.agents:
        return "the agent set changed"
    return "an input changed since the compile that generated it (see --explain)"


def why_revalidated(old: ProcedureEntry, keys: Keys, lock: LockFile) -> str:
    """What changed for a routine whose render key no longer matches."""
    reasons: list[str] = []
    for name, sha in sorted(old.depends.tools.items()):
        now = keys.tools.get(name, "")
        if now != sha:
            what = "added" if not sha else "removed" if not now else "changed"
            reasons.append(f"catalog tool `{name}` {what}")
    reasons += [f"agent {a!r} removed" for a in old.depends.agents if not keys.has_agent(a)]
    if reasons:
        return "; ".join(reasons)
    if _has_errors(old) and (lock.catalog != keys.catalog or lock.agents != keys.agents):
        return "the tool catalog or agent set changed (its errors name them)"
    if lock.templates != keys.templates:
        return "the output templates changed"
    if lock.settings != keys.settings:
        return "output settings changed"
    return "the render version changed"


def explain(proc: PlannedProcedure, keys: Keys, lock: LockFile) -> list[str]:
    """The parts of a procedure's keys, one line each, changed ones marked (`--explain`)."""
    old = proc.old

    def part(name: str, now: str, before: str | None) -> str:
        changed = before is not None and before != now
        return f"{name}: {now or '-'}" + (f" (was {before or '-'})" if changed else "")

    backend = " ".join(f"{k}={keys.backend[k]}" for k in sorted(keys.backend) if k in _SHOWN)
    was = " ".join(f"{k}={lock.backend[k]}" for k in sorted(lock.backend) if k in _SHOWN)
    lines = [
        part("text", proc.text[:16], old.text[:16] if old else None),
        part("backend", backend, was if lock.backend else None),
        part("prompts", keys.prompts[:16], lock.prompts[:16] if lock.prompts else None),
        part("schema", keys.schema[:16], lock.schema_sha[:16] if lock.schema_sha else None),
        part("sopc output version", keys.sopc, lock.sopc),
    ]
    if keys.whole_catalog:
        lines.append(part("catalog (whole)", keys.catalog[:16], lock.catalog[:16] or None))
        lines.append(part("agents (all)", keys.agents[:16], lock.agents[:16] or None))
    if proc.sop.old is not None and proc.sop.old.ocr:
        lines.append(part("ocr", keys.ocr, proc.sop.old.ocr))
    if old is not None:
        for name, sha in sorted(old.depends.tools.items()):
            lines.append(part(f"tool {name}", keys.tools.get(name, ""), sha))
        for agent in old.depends.agents:
            lines.append(part(f"handoff {agent}", str(keys.has_agent(agent)), "True"))
        for name, description in sorted(old.depends.proposed.items()):
            tool = covering_tool(name, description, keys.tool_defs)
            lines.append(part(f"proposed tool {name}", f"covered by {tool}" if tool else "", ""))
    return lines


_SHOWN = frozenset({"backend", "model", "temperature", "seed", "structured_output", "vision"})


def _covered(old: ProcedureEntry, keys: Keys) -> str:
    """Why a routine must be regenerated because a catalog tool now covers a proposed one."""
    for name, description in sorted(old.depends.proposed.items()):
        tool = covering_tool(name, description, keys.tool_defs)
        if tool is not None:
            return f"catalog tool `{tool}` now covers proposed tool `{name}`"
    return ""


def _has_errors(entry: ProcedureEntry) -> bool:
    return any(issue.severity == "error" for issue in entry.issues)


def new_errors(old: ProcedureEntry | None, report: ValidationReport) -> list[str]:
    """Errors of a re-validation that the routine did not have: it regenerates for them."""
    before = {(i.code, i.step_id) for i in old.issues if i.severity == "error"} if old else set()
    return [
        issue.located()
        for issue in report.issues
        if issue.severity == "error" and (issue.code, issue.step_id) not in before
    ]


def _catalog_change(lock: LockFile, keys: Keys) -> str:
    before = set(lock.tools)
    now = set(keys.tools)
    parts = [f"+{n}" for n in sorted(now - before)] + [f"-{n}" for n in sorted(before - now)]
    parts += [f"~{n}" for n in sorted(before & now) if lock.tools[n] != keys.tools[n]]
    return ", ".join(parts[:5]) + (" ..." if len(parts) > 5 else "") if parts else "tools edited"


_STOP = frozenset({"a", "an", "and", "the", "of", "to", "for", "by", "in", "on", "or", "with"})


def _words(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", text.casefold())
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in _STOP}


def _tool_name(name: str) -> bool:
    return bool(re.fullmatch(r"[a-z_][a-z0-9_]*", name))


# Fields sopc fills for the reviewer alone, with the schema definitions only they use: no model
# sees them and an old routine loads without them, so adding one costs no regeneration.
_REVIEW_ONLY = {"source_flowchart": ("Flowchart", "FlowNode", "FlowEdge", "Provenance")}


@functools.cache
def _schema_sha() -> str:
    # Fixed for the life of the process, and generating the schema costs more than a no-op run's
    # planning of a few hundred SOPs.
    schema = Routine.model_json_schema()
    for review_field, definitions in _REVIEW_ONLY.items():
        schema["properties"].pop(review_field, None)
        for name in definitions:
            schema.get("$defs", {}).pop(name, None)
    return sha256_json(schema)


@functools.cache
def _ocr_identity(setting: str) -> str:
    """The OCR engine and version a scanned page would be read with under `setting`."""
    from sop_compiler.ingest.ocr import ocr_identity

    return ocr_identity(setting)


def _join_sha(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()
