"""Deterministic eval: replay every reviewed scenario through its routine and compare.

No model is called: the interpreter walks the routine, the scenario's decisions answer each
condition and switch, its facts and tool results answer what the routine asks and calls, and the
recorded tool calls and ending are compared with what the scenario expects. Every path of every
routine is counted, and the report says which of them no passing scenario covers.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sop_compiler.errors import ConfigError, ExitCode
from sop_compiler.eval.scenario import (
    Decision,
    ExpectedCall,
    Scenario,
    ScenarioError,
    ScenarioFile,
    load_scenario_file,
    scenario_files,
)
from sop_compiler.interpret import (
    DecisionError,
    Ending,
    RecordedCall,
    Trace,
    explore,
    interpret,
    options_of,
    question_of,
)
from sop_compiler.models.catalog import ToolCatalog
from sop_compiler.models.routine import Routine, Step
from sop_compiler.slug import agent_key

__all__ = [
    "EvalReport",
    "RoutineCoverage",
    "ScenarioResult",
    "evaluate",
    "load_routines",
    "path_key",
    "replay",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScenarioResult(_Model):
    """One scenario replayed: passed, or failed with what differs."""

    file: str
    line: int
    routine: str = Field(description="<agent>/<routine id>")
    name: str
    status: Literal["passed", "failed"]
    differences: list[str] = Field(default_factory=list)
    tool_calls: list[str] = Field(default_factory=list, description="Actual calls, rendered.")
    ending: str | None = Field(default=None, description="Actual ending, rendered.")


class RoutineCoverage(_Model):
    """How many paths of a routine the passing reviewed scenarios walk."""

    routine: str
    paths: int
    covered: int
    uncovered: list[str] = Field(default_factory=list, description="Uncovered paths, rendered.")
    uncovered_numbers: list[int] = Field(
        default_factory=list,
        description="The uncovered paths' numbers, as `sopc paths` and REVIEW.md number them.",
    )
    drafts: int = Field(default=0, description="Draft scenarios of the routine (skipped).")


class EvalReport(_Model):
    """The result of `sopc eval`."""

    results: list[ScenarioResult] = Field(default_factory=list)
    coverage: list[RoutineCoverage] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list, description="Malformed scenario files.")
    drafts: int = Field(default=0, description="Draft scenarios skipped.")

    @property
    def passed(self) -> int:
        return sum(result.status == "passed" for result in self.results)

    @property
    def failed(self) -> int:
        return sum(result.status == "failed" for result in self.results)

    @property
    def exit_code(self) -> int:
        """2 when a scenario file is malformed, 1 when a scenario fails, else 0."""
        if self.errors:
            return int(ExitCode.USAGE)
        return int(ExitCode.FAILED) if self.failed else int(ExitCode.OK)


def load_routines(output: Path) -> dict[tuple[str, str], Routine]:
    """Every routine in `<output>/routines/<agent>/<id>.json`, keyed (agent, id)."""
    folder = output / "routines"
    if not folder.is_dir():
        raise ConfigError("no routines here (run `sopc compile` first)", path=folder)
    routines: dict[tuple[str, str], Routine] = {}
    for path in sorted(folder.glob("*/*.json")):
        try:
            routine = Routine.model_validate_json(path.read_bytes())
        except (OSError, ValueError) as exc:
            first = " ".join(str(exc).split())[:200]
            raise ConfigError(f"cannot read routine: {first}", path=path) from None
        routines[(routine.agent, routine.id)] = routine
    return routines


def path_key(trace: Trace) -> tuple[Any, ...]:
    """What identifies a path: the way each condition and switch went, and the ending."""
    ending = (trace.ending.kind, trace.ending.target) if trace.ending else ("error", trace.error)
    return (tuple((c.routine, c.step, c.take) for c in trace.choices), ending)


def evaluate(
    scenarios: Path,
    *,
    output: Path,
    catalog: ToolCatalog,
    shown: Path | None = None,
) -> EvalReport:
    """Replay every non-draft scenario under `scenarios` against the routines in `output`."""
    routines = load_routines(output)
    report = EvalReport()
    covered: dict[tuple[str, str], set[tuple[Any, ...]]] = {}
    drafts: dict[tuple[str, str], int] = {}
    for path in scenario_files(scenarios):
        display = _display(path, scenarios, shown)
        try:
            loaded = load_scenario_file(path, shown=display)
        except ScenarioError as exc:
            report.errors.append(str(exc))
            continue
        for scenario, line in zip(loaded.scenarios, loaded.lines, strict=True):
            if scenario.draft:
                report.drafts += 1
                key = (loaded.agent, loaded.routine)
                drafts[key] = drafts.get(key, 0) + 1
                continue
            result, trace = replay(scenario, file=loaded, line=line, routines=routines,
                                   catalog=catalog)  # fmt: skip
            report.results.append(result)
            if result.status == "passed" and trace is not None:
                covered.setdefault((loaded.agent, loaded.routine), set()).add(path_key(trace))
    for key in sorted(routines):
        paths = explore(routines[key], routines=routines)
        done = paths.done
        seen = covered.get(key, set())
        numbers = [n for n, trace in enumerate(done, start=1) if path_key(trace) not in seen]
        missing = [describe_path(done[n - 1]) for n in numbers]
        if not paths.complete:
            # Never a better figure than the truth: the paths not explored count as uncovered.
            missing.append(f"more paths than the {len(done)} explored (not counted)")
        report.coverage.append(
            RoutineCoverage(
                routine=f"{key[0]}/{key[1]}",
                paths=len(done),
                covered=len(done) - len(missing),
                uncovered=missing,
                uncovered_numbers=numbers,
                drafts=drafts.get(key, 0),
            )
        )
    return report


def _display(path: Path, scenarios: Path, shown: Path | None) -> str:
    base = shown if shown is not None else scenarios
    return (base / path.relative_to(scenarios)).as_posix()


def describe_path(trace: Trace) -> str:
    """A path in one line: each way taken, then the ending."""
    ways = ", ".join(f"{c.where(trace.routine)} {c.take}" for c in trace.choices)
    return f"{ways or 'no branch'} -> {render_ending(trace.ending)}"


def render_ending(ending: Ending | None) -> str:
    if ending is None:
        return "no ending"
    if ending.kind == "resolve":
        return "resolve"
    return f"{ending.kind} to {ending.target or '(no target)'}"


def render_call(tool: str, arguments: Mapping[str, Any]) -> str:
    args = ", ".join(f"{name}={_value(value)}" for name, value in arguments.items())
    return f"{tool}({args})"


def _value(value: Any) -> str:
    return "?" if value is None else repr(value) if not isinstance(value, str) else f'"{value}"'


class _ScenarioDecider:
    """Answers conditions and switches from a scenario's decisions, visit by visit."""

    def __init__(self, routine: Routine, decisions: Sequence[Decision]) -> None:
        self.root = routine.id
        self.pending: dict[str, list[Decision]] = {}
        for decision in decisions:
            self.pending.setdefault(decision.step, []).append(decision)
        self.used: dict[str, int] = {}

    def __call__(self, owner: str, step: Step, visit: int, options: Sequence[str]) -> str:
        key = step.id if owner == self.root else f"{owner}/{step.id}"
        listed = self.pending.get(key, [])
        used = self.used.get(key, 0)
        question = question_of(step)
        if used >= len(listed):
            ways = " or ".join(f'"{option}"' for option in options)
            nth = f" (visit {visit})" if visit > 1 else ""
            raise DecisionError(
                f"step {key}{nth} needs a decision: {step.kind} {question!r}; add "
                f'{{step: "{key}", take: ...}} with take {ways}'
            )
        decision = listed[used]
        self.used[key] = used + 1
        if decision.test is not None and " ".join(decision.test.split()) != " ".join(
            question.split()
        ):
            raise DecisionError(
                f"step {key} now asks {question!r}, the scenario decided {decision.test!r}"
            )
        if decision.take not in options:
            ways = ", ".join(f'"{option}"' for option in options)
            raise DecisionError(
                f"step {key} ({step.kind}) cannot go {decision.take!r}; its ways: {ways}"
            )
        return decision.take

    def unused(self) -> list[str]:
        out = []
        for key, listed in self.pending.items():
            extra = len(listed) - self.used.get(key, 0)
            if extra <= 0:
                continue
            reached = self.used.get(key, 0)
            why = (
                f"reaches it {reached} time(s), not {len(listed)}"
                if reached
                else "never gets there"
            )
            out.append(f"decision for step {key} was not used: the path {why}")
        return out


def _tool_results(scenario: Scenario) -> Any:
    def result(tool: str, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        for entry in scenario.tool_results:
            if entry.tool == tool and all(
                arguments.get(name) == value for name, value in entry.arguments.items()
            ):
                return entry.result
        return {}

    return result


def replay(
    scenario: Scenario,
    *,
    file: ScenarioFile,
    line: int,
    routines: Mapping[tuple[str, str], Routine],
    catalog: ToolCatalog,
) -> tuple[ScenarioResult, Trace | None]:
    """Replay one scenario through its routine: the result, and the walk (None: no routine)."""
    base = ScenarioResult(
        file=file.path,
        line=line,
        routine=f"{file.agent}/{file.routine}",
        name=scenario.name,
        status="passed",
    )
    routine = routines.get((file.agent, file.routine))
    if routine is None:
        return base.model_copy(
            update={
                "status": "failed",
                "differences": [f"routine `{file.agent}/{file.routine}` no longer exists"],
            }
        ), None
    differences = _unknown_names(scenario, routine, routines, catalog)
    decider = _ScenarioDecider(routine, scenario.decisions)
    trace = interpret(
        routine,
        decide=decider,
        routines=routines,
        facts=scenario.facts,
        tool_result=_tool_results(scenario),
    )
    if trace.error is not None:
        differences.append(trace.error)
    else:
        differences += decider.unused()
        differences += _compare(scenario, routine, trace, routines)
    return base.model_copy(
        update={
            "status": "failed" if differences else "passed",
            "differences": differences,
            "tool_calls": [render_call(call.tool, call.arguments) for call in trace.calls],
            "ending": render_ending(trace.ending) if trace.error is None else None,
        }
    ), trace


def _unknown_names(
    scenario: Scenario,
    routine: Routine,
    routines: Mapping[tuple[str, str], Routine],
    catalog: ToolCatalog,
) -> list[str]:
    """A step, tool or agent the scenario names that no longer exists."""
    out: list[str] = []
    known_tools = set(catalog.names())
    named = [call.tool for call in scenario.expect.tool_calls]
    named += scenario.expect.not_called + [entry.tool for entry in scenario.tool_results]
    for tool in dict.fromkeys(named):
        if tool not in known_tools:
            close = difflib.get_close_matches(tool, sorted(known_tools), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            out.append(f"tool `{tool}` is no catalog tool{hint}")
    agents = {agent for agent, _ in routines}
    keys = {agent_key(agent) for agent in agents}
    expect = scenario.expect
    for label, agent in (("agent", expect.agent), ("handoff agent", _handoff_to(scenario))):
        if agent is not None and agent_key(agent) not in keys:
            names = ", ".join(sorted(agents))
            out.append(f"{label} `{agent}` is no agent of the network ({names})")
    for decision in dict.fromkeys(d.step for d in scenario.decisions):
        owner_id, _, step_id = decision.rpartition("/")
        owner = routine if not owner_id else routines.get((routine.agent, owner_id))
        if owner is None:
            out.append(f"decision names routine `{owner_id}`, which no longer exists")
            continue
        step = next((s for s in owner.walk() if s.id == step_id), None)
        if step is None:
            out.append(f"decision names step {decision}, which no longer exists")
        elif not options_of(step):
            out.append(f"decision names step {decision}, which is a {step.kind}, not a condition")
    return out


def _handoff_to(scenario: Scenario) -> str | None:
    ending = scenario.expect.ending
    return ending.to if ending.kind == "handoff" else None


def _compare(
    scenario: Scenario,
    routine: Routine,
    trace: Trace,
    routines: Mapping[tuple[str, str], Routine],
) -> list[str]:
    """Expected against actual, one line per difference (calls as a small unified diff)."""
    expect = scenario.expect
    out: list[str] = []
    if expect.agent is not None and agent_key(expect.agent) != agent_key(routine.agent):
        out.append(f"routed to: expected {expect.agent}, actual {routine.agent}")
    out += _compare_calls(expect.tool_calls, trace.calls, expect.order)
    called = {call.tool for call in trace.calls}
    for tool in expect.not_called:
        if tool in called:
            steps = ", ".join(call.step for call in trace.calls if call.tool == tool)
            out.append(f"calls `{tool}`, which must not be called (step {steps})")
    actual = trace.ending
    if actual is not None and not _same_ending(expect.ending.kind, expect.ending.to, actual):
        wanted = (
            "resolve"
            if expect.ending.kind == "resolve"
            else (f"{expect.ending.kind} to {expect.ending.to or '(any)'}")
        )
        out.append(
            f"ending: expected {wanted}, actual {render_ending(actual)} (step {actual.step})"
        )
    for name in ("category", "priority"):
        wanted_value = getattr(expect, name)
        if wanted_value is None:
            continue
        values = [call.arguments[name] for call in trace.calls if call.arguments.get(name)]
        got = values[-1] if values else None
        if got is None or str(got).casefold() != str(wanted_value).casefold():
            out.append(f"{name}: expected {wanted_value}, actual {got or '(none set)'}")
    return out


def _same_ending(kind: str, to: str | None, actual: Ending) -> bool:
    if kind != actual.kind:
        return False
    if to is None or kind == "resolve":
        return True
    if kind == "handoff":
        return agent_key(to) == agent_key(actual.target or "")
    return " ".join(to.split()).casefold() == " ".join((actual.target or "").split()).casefold()


def _matches(expected: ExpectedCall, actual: RecordedCall) -> bool:
    return expected.tool == actual.tool and all(
        actual.arguments.get(name) == value for name, value in expected.arguments.items()
    )


def _compare_calls(
    expected: Sequence[ExpectedCall], actual: Sequence[RecordedCall], order: str
) -> list[str]:
    if order == "exact":
        ok = len(expected) == len(actual) and all(map(_matches, expected, actual))
    elif order == "in_order":
        rest = iter(actual)
        ok = all(any(_matches(call, got) for got in rest) for call in expected)
    else:
        ok = all(any(_matches(call, got) for got in actual) for call in expected)
    if ok:
        return []
    wanted = [render_call(call.tool, call.arguments) for call in expected]
    # Show the actual calls with only the arguments the expectation names, so the diff is about
    # what the scenario checks (all of them when the scenario expects no such call).
    named = {call.tool: set(call.arguments) for call in expected}
    got = [
        render_call(
            call.tool,
            {k: v for k, v in call.arguments.items() if k in named[call.tool]}
            if call.tool in named
            else call.arguments,
        )
        for call in actual
    ]
    lines = [f"tool calls ({order}) differ:"]
    lines += [
        f"  {line[:1]} {line[1:]}"
        for line in difflib.unified_diff(wanted, got, "expected", "actual", lineterm="", n=99)
        if not line.startswith(("---", "+++", "@@"))
    ]
    return ["\n".join(lines)]
