"""Every routine of the sample SOPs and of the policy corpus runs on its emitted network (issue 12).

Each corpus is compiled once with the offline backend. For every routine, `network_script` makes
the ScriptedModel turns of each of its paths (the `then` and `else` branches, and one path to each
handoff and tool step they miss): the handoffs from the top triage to the routine's specialist,
one call per tool step, a transfer for a handoff step, then an answer. Each run must raise nothing
(a ModelBehaviorError means the agent lacks a tool or a handoff its routine uses), hand every tool
call to the recording tool_impl with the script's arguments and in its order, pause on each
`needs_approval` tool until it is approved, and end on the agent the routine hands off to (or on
its own specialist).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from gold import iter_cases

from sop_compiler.catalog import load_catalog
from sop_compiler.config import Settings, load_settings
from sop_compiler.models import Routine, ToolCatalog
from sop_compiler.pipeline import compile_folder, read_procedures

agents = pytest.importorskip("agents")
from agents import Agent, Runner, RunResult  # noqa: E402
from agents.testing import ScriptedModel  # noqa: E402
from network_script import (  # noqa: E402
    FINAL_MESSAGE,
    RoutinePath,
    governed_path,
    paths,
    script_for,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_sops"
POLICIES = Path(__file__).parent / "data" / "policies"
# The committed output of sample_sops (kept current by test_generated_routines) names its routines.
SAMPLE_ROUTINES = REPO / "generated_routines" / "routines"
MAX_TURNS = 100
# Real product bugs these tests find, by case id: strict xfail marks, so a fix fails the case
# until its entry is removed. Every path of every routine runs today.
PATH_BUGS: dict[str, str] = {}
GOVERNED_BUGS: dict[str, str] = {}


@dataclass(frozen=True)
class Corpus:
    """SOPs compiled into one network: a folder (or one document) and its catalog."""

    name: str
    sops: Path
    tools: Path


CORPORA = {
    "samples": Corpus("samples", SAMPLES, SAMPLES / "tools.yaml"),
    **{
        case.name: Corpus(case.name, document, tools)
        for case, document, tools, _gold in iter_cases(POLICIES)
    },
}


def _routine_ids(corpus: Corpus) -> list[str]:
    """The routines a corpus compiles to, found without compiling it (collection stays fast)."""
    if corpus.name == "samples":
        files = sorted(SAMPLE_ROUTINES.rglob("*.json"))
        return [json.loads(path.read_text(encoding="utf-8"))["id"] for path in files]
    found = read_procedures(corpus.sops, root=corpus.sops.parent, settings=Settings())
    return [procedure.id for procedure in found.procedures]


ROUTINES = {name: _routine_ids(corpus) for name, corpus in CORPORA.items()}


def _cases(bugs: dict[str, str]) -> list[Any]:
    """One case per routine, `<corpus>/<routine id>`; a known bug makes it a strict xfail."""
    cases = []
    for corpus, ids in ROUTINES.items():
        for routine_id in ids:
            case_id = f"{corpus}/{routine_id}"
            bug = bugs.get(case_id)
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            cases.append(pytest.param(corpus, routine_id, id=case_id, marks=marks))
    return cases


@dataclass
class Network:
    """One compiled corpus: its routines, catalog, emitted package and run outcome."""

    routines: dict[str, Routine]
    catalog: ToolCatalog
    package: ModuleType
    not_deployed: list[str]


@dataclass
class _Builds:
    """Compiles each corpus the first time a test asks for it."""

    root: Path
    built: dict[str, Network] = field(default_factory=dict)

    def get(self, name: str) -> Network:
        if name not in self.built:
            self.built[name] = _build(CORPORA[name], self.root / name)
        return self.built[name]


def _build(corpus: Corpus, out: Path) -> Network:
    """Compile `corpus` offline into `out` and import the agent network it emits."""
    with pytest.MonkeyPatch.context() as env:
        # Module-scoped: the shared per-test isolation has not run yet, so do its part here.
        for name in [n for n in os.environ if n.startswith("SOPC_")]:
            env.delenv(name)
        root = corpus.sops if corpus.sops.is_dir() else corpus.sops.parent
        settings = load_settings(
            root,
            overrides={"output": out, "backend": "offline", "cache": False, "tools": corpus.tools},
        )
        result = compile_folder(corpus.sops, settings=settings)
    assert result.exit_code in (0, 1), f"{corpus.name}: compile exited {result.exit_code}"
    routines = [
        Routine.model_validate_json(path.read_text(encoding="utf-8"))
        for path in sorted((out / "routines").rglob("*.json"))
    ]
    catalog = load_catalog(corpus.tools, sop_root=root)
    return Network(
        routines={routine.id: routine for routine in routines},
        catalog=catalog,
        package=_import_package(out),
        not_deployed=result.not_deployed,
    )


def _import_package(out: Path) -> ModuleType:
    """Import `out/agent_network`; every corpus emits a package of that name, so none stays."""
    _forget("agent_network")
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("agent_network")
    finally:
        sys.path.remove(str(out))
        _forget("agent_network")


def _forget(package: str) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] == package]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Builds]:
    agents.set_tracing_disabled(True)
    yield _Builds(tmp_path_factory.mktemp("networks"))
    agents.set_tracing_disabled(False)


class Recorder:
    """A tool_impl module whose every catalog tool records its call and lets the run go on."""

    def __init__(self, catalog: ToolCatalog) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.module = ModuleType("tool_impl")
        for tool in catalog.tools:
            result = {"verified": True} if tool.verifies_identity() else {"ok": True}
            setattr(self.module, tool.name, self._recording(tool.name, result))

    def _recording(self, name: str, result: dict[str, Any]) -> Any:
        def record(**arguments: Any) -> dict[str, Any]:
            # Optional parameters the model left out arrive as None: not the routine's.
            self.calls.append((name, {k: v for k, v in arguments.items() if v is not None}))
            return result

        return record


Install = Callable[[ToolCatalog], Recorder]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Install:
    """Install a Recorder as `tool_impl` (the emitted tools import it when called)."""

    def install(catalog: ToolCatalog) -> Recorder:
        made = Recorder(catalog)
        monkeypatch.setitem(sys.modules, "tool_impl", made.module)
        return made

    return install


async def _run(
    triage: Agent[Any], recorder: Recorder, *, context: Any
) -> tuple[RunResult, list[tuple[str, int]]]:
    """Run to the end, approving each interruption; the pauses as (tool, calls made by then)."""
    message = "I need help with my request."
    result = await Runner.run(triage, message, context=context, max_turns=MAX_TURNS)
    pauses: list[tuple[str, int]] = []
    while result.interruptions:
        state = result.to_state()
        for item in result.interruptions:
            pauses.append((item.tool_name or "", len(recorder.calls)))
            state.approve(item)
        result = await Runner.run(triage, state, max_turns=MAX_TURNS)
    return result, pauses


def _problems(network: Network, routine: Routine, path: RoutinePath, install: Install) -> list[str]:
    """What went wrong driving `path` on the network (nothing: it ran as the routine says)."""
    impl = install(network.catalog)
    # The script is read from the module-level agents (the same names and wiring as a clone).
    script = script_for(
        routine, path, triage=network.package.build_network(), catalog=network.catalog
    )
    model = ScriptedModel(script.turns)
    # One conversation: the context the emitted tools fill (who is verified, what was collected).
    context = network.package.ConversationContext()
    try:
        result, pauses = asyncio.run(
            _run(network.package.build_network(model), impl, context=context)
        )
    except Exception as exc:  # ModelBehaviorError: the agent lacks a tool or handoff it uses
        return [f"{script.describe()}\n  {type(exc).__name__}: {exc}"]
    found = []
    if model.remaining_steps:
        found.append(f"{model.remaining_steps} scripted turns never ran")
    if result.final_output != FINAL_MESSAGE:
        found.append(f"final output {result.final_output!r}")
    wanted = [(call.tool, call.arguments) for call in script.calls]
    if impl.calls != wanted:
        found.append(f"tool_impl got {impl.calls}, the script called {wanted}")
    # Each approval tool paused before it ran, and nothing else paused.
    paused = [(call.tool, n) for n, call in enumerate(script.calls) if call.needs_approval]
    if pauses != paused:
        found.append(f"paused as (tool, calls run by then) {pauses}, expected {paused}")
    if result.last_agent.name != script.ends_on:
        found.append(f"ended on {result.last_agent.name}, not {script.ends_on}")
    return [f"{script.describe()}\n  {problem}" for problem in found]


def test_every_compiled_routine_is_driven(builds: _Builds) -> None:
    """The routines listed for the parametrization are exactly those the corpora compile to."""
    for name in CORPORA:
        network = builds.get(name)
        assert sorted(network.routines) == sorted(ROUTINES[name]), (
            f"{name}: the compiled routines changed (samples: regenerate generated_routines/)"
        )
        assert network.not_deployed == [], f"{name}: routines left out of the network"


@pytest.mark.parametrize(("corpus", "routine_id"), _cases(PATH_BUGS))
def test_every_path_of_the_routine_runs_on_the_network(
    builds: _Builds, recorder: Install, corpus: str, routine_id: str
) -> None:
    """Its `then` and `else` paths and one to each handoff and tool step (see network_script)."""
    network = builds.get(corpus)
    routine = network.routines[routine_id]
    problems = [
        problem
        for path in paths(routine, network.routines)
        for problem in _problems(network, routine, path, recorder)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("corpus", "routine_id"), _cases(GOVERNED_BUGS))
def test_every_tool_the_routines_rules_govern_can_be_called(
    builds: _Builds, recorder: Install, corpus: str, routine_id: str
) -> None:
    """A tool a rule allows under a condition is on the agent, even when no step calls it."""
    network = builds.get(corpus)
    routine = network.routines[routine_id]
    path = governed_path(routine, network.catalog)
    problems = _problems(network, routine, path, recorder) if path.steps else []
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("corpus", list(CORPORA))
def test_a_gated_write_tool_is_refused_before_verification(
    builds: _Builds, recorder: Install, corpus: str
) -> None:
    """Every write tool the routines call only after verifying the customer refuses to run
    when a model calls it first: the refusal reaches the model, tool_impl is never called."""
    network = builds.get(corpus)
    package = network.package
    tools = getattr(package, "tools", None)  # imported by the specialists that have tools
    verify_first: dict[str, tuple[str, ...]] = dict(getattr(tools, "VERIFY_FIRST", {}))
    if corpus == "samples":
        assert set(verify_first) >= {"close_account", "unlock_account"}
    for tool, by in sorted(verify_first.items()):
        routine = next(r for r in network.routines.values() if tool in r.tools_used)
        step = next(s for s in routine.walk() if s.tool_call and s.tool_call.tool == tool)
        script = script_for(
            routine,
            RoutinePath(name=f"{tool} first", steps=[("gated", step)]),
            triage=package.build_network(),
            catalog=network.catalog,
        )
        impl = recorder(network.catalog)
        model = ScriptedModel(script.turns)
        asyncio.run(_run(package.build_network(model), impl, context=package.ConversationContext()))
        outputs = [
            item["output"]
            for item in model.calls[-1].input
            if isinstance(item, dict) and item.get("type") == "function_call_output"
        ]
        assert outputs[-1].startswith(f"{tool} refused: the customer is not verified"), tool
        assert f"call {' or '.join(by)} first" in outputs[-1]
        assert impl.calls == [], f"{tool} ran before verification"
