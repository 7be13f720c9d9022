"""Live eval (`sopc eval --live`): each reviewed scenario as a conversation with the network.

The output folder's `agent_network` package is imported and run by the Agents SDK: the scenario's
opening message goes to triage; a simulated customer answers the agent's questions from the
scenario's facts only (a model through the compile backend settings, or `scripted`: facts named by
the question, deterministically); every tool is a recording mock that answers from the scenario's
`tool_results` (first entry whose arguments match); tools that need approval are approved. A
conversation ends when the agent escalates (its answer names a team that a routine's escalate step
goes to), hands off past the specialist it was routed to, answers without a question, or reaches
`max_turns` customer turns; it then ends in a handoff, an escalation or a resolve, in that order.

Per trial: routing (the first specialist reached), tool calls (order rule of the scenario),
forbidden calls, the ending, category and priority. A scenario passes when all its trials pass
(pass^k). Every model answer is cached with the compile response cache (keyed by the full request
and the trial number), so a rerun makes no model call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import sys
import types
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sop_compiler.config import Settings
from sop_compiler.errors import ConfigError, ExitCode
from sop_compiler.eval.evaluate import EvalReport, ScenarioResult, load_routines, render_call
from sop_compiler.eval.scenario import (
    ExpectedCall,
    Scenario,
    ScenarioError,
    ScenarioFile,
    load_scenario_file,
    scenario_files,
)
from sop_compiler.generate.cache import ResponseCache
from sop_compiler.generate.llm import ChatMessage, ChatRequest
from sop_compiler.slug import agent_key

__all__ = ["LiveMetrics", "LiveReport", "LiveResult", "LiveTrial", "evaluate_live"]

CustomerKind = Literal["model", "scripted"]
CUSTOMER_PROMPT = (
    "You are a customer talking with a support assistant. Answer its questions using only the "
    "facts below; when it asks for something the facts do not give, say you do not know. Never "
    "invent order numbers, amounts or names. Keep each answer to one or two sentences. When you "
    "are asked to confirm an action, agree.\n\nFacts:\n"
)
DONE_REPLY = "I have told you everything I know."
_RETRIES = 4
_RETRY_CAP = 20.0
_MODULES = ("agent_network", "tool_impl")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Grade(_Model):
    """A judge model's grade of one conversation, 1 (poor) to 5 (excellent); never pass/fail."""

    empathy: int
    correctness: int
    asks_before_acting: int
    note: str = Field(description="One sentence: the main reason for the grades.")


class LiveTrial(_Model):
    """One conversation: what happened and what differs from the scenario."""

    passed: bool
    differences: list[str] = Field(default_factory=list)
    routed_to: str | None = None
    agents: list[str] = Field(default_factory=list, description="Agents in the order reached.")
    tool_calls: list[str] = Field(default_factory=list)
    ending: str | None = None
    customer_turns: int = 0
    routed_ok: bool = False
    ending_ok: bool = False
    matched_calls: int = 0
    actual_calls: int = 0
    expected_calls: int = 0
    forbidden_calls: int = 0
    category_ok: bool | None = None
    priority_ok: bool | None = None
    transcript: list[str] = Field(default_factory=list, description="`customer:`/`agent:` lines.")
    grade: Grade | None = Field(default=None, description="--judge: the judge model's grade.")


class LiveResult(_Model):
    """One scenario over its trials."""

    file: str
    line: int
    routine: str
    name: str
    status: Literal["passed", "failed"]
    trials: list[LiveTrial] = Field(default_factory=list)


class LiveMetrics(_Model):
    """The metrics over every trial (None: nothing to measure)."""

    scenarios: int = 0
    trials: int = 0
    k: int = 1
    pass_k: float | None = Field(default=None, description="Scenarios whose every trial passed.")
    trial_pass_rate: float | None = None
    routing_accuracy: float | None = None
    tool_precision: float | None = None
    tool_recall: float | None = None
    forbidden_calls: int = 0
    ending_accuracy: float | None = None
    category_accuracy: float | None = None
    priority_accuracy: float | None = None


class LiveUsage(_Model):
    """Model calls and tokens (cached answers cost none)."""

    model_calls: int = 0
    cached_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class LiveReport(_Model):
    """The result of `sopc eval --live`."""

    results: list[LiveResult] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list, description="Malformed scenario files.")
    drafts: int = 0
    metrics: LiveMetrics = Field(default_factory=LiveMetrics)
    usage: LiveUsage = Field(default_factory=LiveUsage)
    grades: dict[str, float] = Field(
        default_factory=dict, description="--judge: mean grade per rubric item (1-5), apart."
    )
    dry_run: bool = False
    estimate: dict[str, int] = Field(default_factory=dict, description="--dry-run: calls, tokens.")

    @property
    def failed(self) -> int:
        return sum(result.status == "failed" for result in self.results)

    @property
    def exit_code(self) -> int:
        """2 when a scenario file is malformed, 1 when a scenario fails, else 0."""
        if self.errors:
            return int(ExitCode.USAGE)
        return int(ExitCode.FAILED) if self.failed else int(ExitCode.OK)

    def as_eval(self) -> EvalReport:
        """The same results in the deterministic eval's shape (for JUnit XML)."""
        results = []
        for result in self.results:
            differences = [
                f"trial {number}: {difference}"
                for number, trial in enumerate(result.trials, 1)
                for difference in trial.differences
            ]
            last = result.trials[-1] if result.trials else None
            results.append(
                ScenarioResult(
                    file=result.file,
                    line=result.line,
                    routine=result.routine,
                    name=result.name,
                    status=result.status,
                    differences=differences,
                    tool_calls=last.tool_calls if last else [],
                    ending=last.ending if last else None,
                )
            )
        return EvalReport(results=results, errors=list(self.errors), drafts=self.drafts)


@dataclass
class _Recorder:
    """The mocks' state for one conversation: the scenario's results and the calls made."""

    scenario: Scenario
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def answer(self, tool: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append((tool, dict(arguments)))
        for entry in self.scenario.tool_results:
            if entry.tool == tool and all(
                _same(arguments.get(name), value) for name, value in entry.arguments.items()
            ):
                return dict(entry.result)
        return {}


_RECORDERS: dict[str, _Recorder] = {}


def _mock_module(tools: Sequence[str]) -> types.ModuleType:
    """A `tool_impl` whose every function records the call and answers from the scenario."""
    module = types.ModuleType("tool_impl")

    def make(name: str) -> Callable[..., Any]:
        async def mock(ctx: Any, **arguments: Any) -> Any:
            conversation = getattr(ctx.context, "conversation_id", "")
            recorder = _RECORDERS.get(conversation)
            if recorder is None:
                raise RuntimeError(f"{name}: no scenario for this conversation")
            return recorder.answer(name, arguments)

        mock.__name__ = name
        return mock

    for name in tools:
        setattr(module, name, make(name))
    return module


@contextlib.contextmanager
def _network(output: Path, tools: Sequence[str], module: str) -> Iterator[types.ModuleType]:
    """The output folder's agent_network, imported, with the recording mocks as its tool_impl."""
    package = output / "agent_network"
    if not (package / "__init__.py").is_file():
        raise ConfigError("no emitted network here (run `sopc compile` first)", path=package)
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if _ours(name, module)}
    sys.path.insert(0, str(output.resolve()))
    sys.modules[module] = _mock_module(tools)
    try:
        try:
            network = importlib.import_module("agent_network")
        except Exception as exc:  # a broken emitted package: one line, exit 2
            raise ConfigError(
                f"cannot import the emitted network: {type(exc).__name__}: {exc}", path=package
            ) from None
        yield network
    finally:
        for name in [name for name in sys.modules if _ours(name, module)]:
            del sys.modules[name]
        sys.modules.update(saved)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(output.resolve()))


def _ours(name: str, module: str) -> bool:
    return name.split(".")[0] in {"agent_network", module.split(".")[0]}


class _Meter:
    """Counts model calls, cached answers and tokens."""

    def __init__(self) -> None:
        self.usage = LiveUsage()


def _cached_model(
    inner: Any, *, name: str, cache: ResponseCache | None, meter: _Meter, trial: str
) -> Any:
    """`inner` (an agents Model) behind the response cache, with retries of 429 and 5xx."""
    from agents import Model, ModelResponse, Usage
    from agents.items import TResponseOutputItem
    from pydantic import TypeAdapter

    items = TypeAdapter(list[TResponseOutputItem])

    class CachedModel(Model):
        async def get_response(
            self,
            system_instructions: Any,
            input: Any,
            model_settings: Any,
            tools: Any,
            output_schema: Any,
            handoffs: Any,
            tracing: Any,
            **kwargs: Any,
        ) -> Any:
            request = None
            if cache is not None:
                key_text = json.dumps(
                    {
                        "trial": trial,
                        "system": system_instructions,
                        "input": input,
                        "tools": sorted(getattr(tool, "name", str(tool)) for tool in tools),
                        "handoffs": sorted(handoff.tool_name for handoff in handoffs),
                        "settings": model_settings.to_json_dict(),
                    },
                    sort_keys=True,
                    default=str,
                )
                request = ChatRequest(
                    model=f"sopc-live/{name}",
                    messages=(ChatMessage(role="user", content=key_text),),
                    response_format="text",
                )
                hit = cache.get(request)
                if hit is not None and hit.content is not None:
                    meter.usage.cached_calls += 1
                    return ModelResponse(
                        output=items.validate_python(json.loads(hit.content)),
                        usage=Usage(),
                        response_id=None,
                    )
            response = await _with_retries(
                lambda: inner.get_response(
                    system_instructions,
                    input,
                    model_settings,
                    tools,
                    output_schema,
                    handoffs,
                    tracing,
                    **kwargs,
                )
            )
            meter.usage.model_calls += 1
            meter.usage.input_tokens += response.usage.input_tokens
            meter.usage.output_tokens += response.usage.output_tokens
            if cache is not None and request is not None:
                from sop_compiler.generate.llm import ChatResponse

                dumped = json.dumps(
                    [item.model_dump(mode="json", exclude_none=True) for item in response.output],
                    sort_keys=True,
                )
                cache.put(request, ChatResponse(content=dumped))
            return response

        def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            raise NotImplementedError("live eval does not stream")

    return CachedModel()


async def _with_retries(call: Callable[[], Any]) -> Any:
    """Retry a rate-limited (429), overloaded (5xx) or dropped request, as compile does."""
    import openai

    for attempt in range(_RETRIES + 1):
        try:
            return await call()
        except (
            openai.RateLimitError,
            openai.InternalServerError,
            openai.APIConnectionError,
        ) as exc:
            if attempt == _RETRIES:
                raise
            wait = 0.5 * 2**attempt
            response = getattr(exc, "response", None)
            header = response.headers.get("retry-after") if response is not None else None
            with contextlib.suppress(TypeError, ValueError):
                wait = float(header) if header is not None else wait
            await asyncio.sleep(min(max(wait, 0.0), _RETRY_CAP))
    raise AssertionError("unreachable")


def _same(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and isinstance(actual, str):
        return " ".join(actual.split()).casefold() == " ".join(wanted.split()).casefold()
    return bool(actual == wanted)


def _matches(expected: ExpectedCall, tool: str, arguments: Mapping[str, Any]) -> bool:
    return expected.tool == tool and all(
        _same(arguments.get(name), value) for name, value in expected.arguments.items()
    )


def _scripted_answer(question: str, scenario: Scenario, told: set[str]) -> str:
    """The facts a question names (by the words of their slot names), else the rest, else done."""
    asked = question.casefold()
    named = [
        slot
        for slot in scenario.facts
        if any(len(word) > 2 and word in asked for word in slot.casefold().split("_"))
    ]
    chosen = [slot for slot in named if slot not in told] or named
    if not chosen:
        chosen = [slot for slot in scenario.facts if slot not in told]
    if not chosen:
        confirm = ("confirm", "go ahead", "proceed", "shall i", "should i", "would you like")
        return "Yes, please go ahead." if any(word in asked for word in confirm) else DONE_REPLY
    told.update(chosen)
    return " ".join(f"My {slot.replace('_', ' ')} is {scenario.facts[slot]}." for slot in chosen)


JUDGE_PROMPT = (
    "You grade one customer-service conversation against a fixed rubric. Grade each item from 1 "
    "(poor) to 5 (excellent): empathy (the agent acknowledges the customer's situation and stays "
    "courteous); correctness (what the agent says and does matches what should happen, given "
    "below, and it invents no facts); asks_before_acting (the agent asks for what it needs and "
    "confirms before any action that changes something). Answer with the grades and one "
    "sentence that gives the main reason."
)


async def _grade(model: Any, scenario: Scenario, trial: LiveTrial) -> Grade | None:
    """The judge model's grade of one conversation (None when its answer is no grade)."""
    from agents import Agent, Runner
    from agents.exceptions import AgentsException

    expect = scenario.expect
    should = [
        f"route to: {expect.agent or '(any)'}",
        "tool calls: "
        + (", ".join(render_call(c.tool, c.arguments) for c in expect.tool_calls) or "none"),
        f"must not call: {', '.join(expect.not_called) or '(nothing listed)'}",
        f"ending: {expect.ending.kind}" + (f" to {expect.ending.to}" if expect.ending.to else ""),
    ]
    text = "\n".join(
        [
            "What should happen:",
            *should,
            "",
            "Tool calls made:",
            *(trial.tool_calls or ["none"]),
            "",
            "Conversation:",
            *trial.transcript,
        ]
    )
    judge = Agent(name="Judge", instructions=JUDGE_PROMPT, model=model, output_type=Grade)
    try:
        result = await Runner.run(judge, text, max_turns=2)
    except AgentsException:
        return None
    grade = result.final_output
    if not isinstance(grade, Grade):
        return None
    clamp = {
        k: min(5, max(1, getattr(grade, k)))
        for k in ("empathy", "correctness", "asks_before_acting")
    }
    return grade.model_copy(update=clamp)


def _customer_agent(scenario: Scenario, model: Any) -> Any:
    from agents import Agent

    facts = "\n".join(f"- {slot}: {json.dumps(value)}" for slot, value in scenario.facts.items())
    return Agent(name="Customer", instructions=CUSTOMER_PROMPT + (facts or "- (none)"), model=model)


async def _customer_answer(customer: Any, transcript: Sequence[tuple[str, str]]) -> str:
    """The simulated customer's next message: the conversation from its side."""
    from agents import Runner

    # The customer sees the agent's messages as the other party's (user) turns, its own as
    # assistant turns.
    history: list[Any] = [
        {"role": "assistant" if who == "customer" else "user", "content": text}
        for who, text in transcript
    ]
    result = await Runner.run(customer, history, max_turns=2)
    return str(result.final_output or DONE_REPLY).strip()


async def _trial(
    network: types.ModuleType,
    scenario: Scenario,
    *,
    agent_model: Any,
    customer: Any | None,
    max_turns: int,
    agent_steps: int,
    teams: Sequence[str],
) -> LiveTrial:
    """One conversation of `scenario` with the network."""
    import openai
    from agents import Runner
    from agents.exceptions import AgentsException, MaxTurnsExceeded

    context = network.ConversationContext()
    recorder = _Recorder(scenario)
    _RECORDERS[context.conversation_id] = recorder
    triage = network.build_network(agent_model)
    chain = [triage.name]
    opening = scenario.message or "Hello, I need help."
    transcript: list[tuple[str, str]] = [("customer", opening)]
    conversation: list[Any] = [{"role": "user", "content": opening}]
    agent = triage
    told: set[str] = set()
    problems: list[str] = []
    turns = 0
    ended = False
    team: str | None = None
    try:
        while turns < max_turns:
            turns += 1
            result = await Runner.run(agent, conversation, context=context, max_turns=agent_steps)
            seen: set[str] = set()
            _note_handoffs(result.new_items, chain, seen)
            while result.interruptions:  # a tool that needs approval: the eval approves it
                state = result.to_state()
                for interruption in result.interruptions:
                    state.approve(interruption)
                result = await Runner.run(agent, state, context=context, max_turns=agent_steps)
                _note_handoffs(result.new_items, chain, seen)
            agent = result.last_agent
            reply = str(result.final_output or "")
            transcript.append(("agent", reply))
            conversation = result.to_input_list()
            team = _escalated(reply, teams)
            if team is not None or _handed_on(chain) or "?" not in reply:
                ended = True
                break
            if turns >= max_turns:
                break
            if customer is None:
                answer = _scripted_answer(reply, scenario, told)
            else:
                answer = await _customer_answer(customer, transcript)
            transcript.append(("customer", answer))
            conversation.append({"role": "user", "content": answer})
    except MaxTurnsExceeded:
        problems.append(f"the agent took more than {agent_steps} model turns in one reply")
    except (AgentsException, openai.APIError) as exc:
        problems.append(f"the run failed: {type(exc).__name__}: {' '.join(str(exc).split())}")
    finally:
        _RECORDERS.pop(context.conversation_id, None)
    if not ended and not problems:
        problems.append(f"turn limit reached: {max_turns} customer turns without an ending")
    trial = _judge(scenario, chain, recorder.calls, problems, turns, team)
    trial.transcript = [f"{who}: {text}" for who, text in transcript]
    return trial


def _note_handoffs(items: Sequence[Any], chain: list[str], seen: set[str]) -> None:
    """Append each handoff's target to `chain`, once per handoff (a resumed run repeats items)."""
    from agents.items import HandoffOutputItem

    for item in items:
        if isinstance(item, HandoffOutputItem):
            raw = item.raw_item
            call = str(raw.get("call_id") if isinstance(raw, dict) else id(item))
            if call not in seen:
                seen.add(call)
                chain.append(item.target_agent.name)


def _escalated(reply: str, teams: Sequence[str]) -> str | None:
    """The team an answer says the case goes to (the longest named, for `X team` over `X`)."""
    text = " ".join(reply.split()).casefold()
    named = [team for team in teams if " ".join(team.split()).casefold() in text]
    return max(named, key=len) if named else None


def _handed_on(chain: Sequence[str]) -> bool:
    """True once the conversation left the first specialist it reached."""
    return len(chain) > 2


def _ending_of(chain: Sequence[str], team: str | None) -> tuple[str, str | None]:
    if len(chain) > 2:
        return "handoff", chain[-1]
    if team is not None:
        return "escalate", team
    return "resolve", None


def _judge(
    scenario: Scenario,
    chain: Sequence[str],
    calls: Sequence[tuple[str, dict[str, Any]]],
    problems: list[str],
    turns: int,
    team: str | None,
) -> LiveTrial:
    expect = scenario.expect
    routed = chain[1] if len(chain) > 1 else chain[0]
    out = list(problems)
    routed_ok = expect.agent is None or agent_key(expect.agent) == agent_key(routed)
    if not routed_ok:
        out.append(f"routed to: expected {expect.agent}, actual {routed}")
    rendered = [render_call(tool, arguments) for tool, arguments in calls]
    if not _calls_ok(expect.tool_calls, calls, expect.order):
        wanted = ", ".join(render_call(c.tool, c.arguments) for c in expect.tool_calls) or "none"
        out.append(
            f"tool calls ({expect.order}) differ: expected {wanted}; actual "
            f"{', '.join(rendered) or 'none'}"
        )
    forbidden = [tool for tool, _arguments in calls if tool in expect.not_called]
    for tool in dict.fromkeys(forbidden):
        out.append(f"calls `{tool}`, which must not be called")
    kind, target = _ending_of(chain, team)
    ending = "resolve" if kind == "resolve" else f"{kind} to {target}"
    ending_ok = (
        not problems
        and kind == expect.ending.kind
        and (
            expect.ending.to is None
            or (kind == "handoff" and agent_key(expect.ending.to) == agent_key(target or ""))
            or (kind == "escalate" and _same(target, expect.ending.to))
        )
    )
    if not ending_ok and not problems:
        wanted_end = expect.ending.kind + (f" to {expect.ending.to}" if expect.ending.to else "")
        out.append(f"ending: expected {wanted_end}, actual {ending}")
    checks: dict[str, bool | None] = {}
    for name in ("category", "priority"):
        wanted_value = getattr(expect, name)
        if wanted_value is None:
            checks[name] = None
            continue
        values = [arguments[name] for _tool, arguments in calls if arguments.get(name)]
        got = values[-1] if values else None
        checks[name] = got is not None and _same(str(got), str(wanted_value))
        if not checks[name]:
            out.append(f"{name}: expected {wanted_value}, actual {got or '(none set)'}")
    matched = _matched(expect.tool_calls, calls)
    return LiveTrial(
        passed=not out,
        differences=out,
        routed_to=routed,
        agents=list(chain),
        tool_calls=rendered,
        ending=ending,
        customer_turns=turns,
        routed_ok=routed_ok,
        ending_ok=ending_ok,
        matched_calls=matched,
        actual_calls=len(calls),
        expected_calls=len(expect.tool_calls),
        forbidden_calls=len(forbidden),
        category_ok=checks["category"],
        priority_ok=checks["priority"],
    )


def _calls_ok(
    expected: Sequence[ExpectedCall], actual: Sequence[tuple[str, dict[str, Any]]], order: str
) -> bool:
    if order == "exact":
        return len(expected) == len(actual) and all(
            _matches(want, tool, arguments)
            for want, (tool, arguments) in zip(expected, actual, strict=False)
        )
    if order == "in_order":
        rest = iter(actual)
        return all(any(_matches(want, tool, args) for tool, args in rest) for want in expected)
    return all(any(_matches(want, tool, args) for tool, args in actual) for want in expected)


def _matched(expected: Sequence[ExpectedCall], actual: Sequence[tuple[str, dict[str, Any]]]) -> int:
    """Expected calls met by distinct actual calls (for precision and recall)."""
    free = list(range(len(actual)))
    count = 0
    for want in expected:
        hit = next((i for i in free if _matches(want, *actual[i])), None)
        if hit is not None:
            free.remove(hit)
            count += 1
    return count


def _metrics(results: Sequence[LiveResult], k: int) -> LiveMetrics:
    trials = [trial for result in results for trial in result.trials]

    def rate(values: Sequence[bool]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    actual = sum(t.actual_calls for t in trials)
    expected = sum(t.expected_calls for t in trials)
    matched = sum(t.matched_calls for t in trials)
    return LiveMetrics(
        scenarios=len(results),
        trials=len(trials),
        k=k,
        pass_k=rate([result.status == "passed" for result in results]),
        trial_pass_rate=rate([t.passed for t in trials]),
        routing_accuracy=rate([t.routed_ok for t in trials]),
        tool_precision=round(matched / actual, 4) if actual else None,  # no call: undefined
        tool_recall=round(matched / expected, 4) if expected else None,
        forbidden_calls=sum(t.forbidden_calls for t in trials),
        ending_accuracy=rate([t.ending_ok for t in trials]),
        category_accuracy=rate([t.category_ok for t in trials if t.category_ok is not None]),
        priority_accuracy=rate([t.priority_ok for t in trials if t.priority_ok is not None]),
    )


def _load(
    scenarios: Path, shown: Path | None
) -> tuple[list[tuple[ScenarioFile, Scenario, int]], list[str], int]:
    found: list[tuple[ScenarioFile, Scenario, int]] = []
    errors: list[str] = []
    drafts = 0
    base = shown if shown is not None else scenarios
    for path in scenario_files(scenarios):
        display = (base / path.relative_to(scenarios)).as_posix()
        try:
            loaded = load_scenario_file(path, shown=display)
        except ScenarioError as exc:
            errors.append(str(exc))
            continue
        for scenario, line in zip(loaded.scenarios, loaded.lines, strict=True):
            if scenario.draft:
                drafts += 1
            else:
                found.append((loaded, scenario, line))
    return found, errors, drafts


def _estimate(
    output: Path,
    cases: Sequence[tuple[ScenarioFile, Scenario, int]],
    trials: int,
    customer: CustomerKind,
) -> dict[str, int]:
    """Model calls and input tokens a run would take (about 4 characters a token)."""
    calls = tokens = customer_calls = 0
    for file, scenario, _line in cases:
        folder = output / "routines" / file.agent
        chars = sum(p.stat().st_size for p in folder.glob("*.md")) if folder.is_dir() else 0
        answers = max(1, len(scenario.facts))
        agent_calls = 1 + len(scenario.expect.tool_calls) + answers
        calls += agent_calls * trials
        tokens += agent_calls * trials * (chars // 4 + 400)
        if customer == "model":
            customer_calls += answers * trials
            tokens += answers * trials * 300
    return {
        "scenarios": len(cases),
        "trials": trials,
        "agent_calls": calls,
        "customer_calls": customer_calls,
        "input_tokens": tokens,
    }


def evaluate_live(
    scenarios: Path,
    *,
    output: Path,
    settings: Settings,
    tools: Sequence[str],
    trials: int = 1,
    max_turns: int = 8,
    jobs: int = 4,
    customer: CustomerKind = "model",
    dry_run: bool = False,
    judge: bool = False,
    agent_model: Any = None,
    customer_model: Any = None,
    judge_model: Any = None,
    shown: Path | None = None,
) -> LiveReport:
    """Run every reviewed scenario under `scenarios` as `trials` conversations with the network.

    `agent_model` / `customer_model` (agents Models) replace the backend's model (tests pass
    ScriptedModel); by default both are `settings.model` through the compile backend settings.
    """
    cases, errors, drafts = _load(scenarios, shown)
    report = LiveReport(errors=errors, drafts=drafts, dry_run=dry_run)
    if dry_run:
        if not (output / "agent_network" / "__init__.py").is_file():
            raise ConfigError(
                "no emitted network here (run `sopc compile` first)", path=output / "agent_network"
            )
        report.estimate = _estimate(output, cases, trials, customer)
        return report
    teams = sorted(
        {
            step.target
            for routine in load_routines(output).values()
            for step in routine.walk()
            if step.kind == "escalate" and step.target
        }
    )
    with _network(output, tools, settings.implementation_module) as network:
        report = asyncio.run(
            _run_all(
                network,
                cases,
                report,
                settings=settings,
                trials=trials,
                max_turns=max_turns,
                jobs=jobs,
                customer=customer,
                agent_model=agent_model,
                customer_model=customer_model,
                judge=judge,
                judge_model=judge_model,
                teams=teams,
            )
        )
    return report


async def _run_all(
    network: types.ModuleType,
    cases: Sequence[tuple[ScenarioFile, Scenario, int]],
    report: LiveReport,
    *,
    settings: Settings,
    trials: int,
    max_turns: int,
    jobs: int,
    customer: CustomerKind,
    agent_model: Any,
    customer_model: Any,
    teams: Sequence[str],
    judge: bool = False,
    judge_model: Any = None,
) -> LiveReport:
    from agents import set_tracing_disabled

    set_tracing_disabled(True)  # no trace export: the eval never reaches the internet for it
    meter = _Meter()
    cache = ResponseCache(settings.cache_dir) if settings.cache else None
    backend = None
    if (
        agent_model is None
        or (customer == "model" and customer_model is None)
        or (judge and judge_model is None)
    ):
        from agents import OpenAIChatCompletionsModel

        from sop_compiler.generate.openai import OpenAIBackend

        backend = OpenAIBackend(settings)
        if cache is not None:
            cache.secrets = backend.secrets()
        shared = OpenAIChatCompletionsModel(model=settings.model, openai_client=backend.client())
        agent_model = agent_model or shared
        customer_model = customer_model or shared
        judge_model = judge_model or shared
    gate = asyncio.Semaphore(max(1, jobs))

    async def one(case: tuple[ScenarioFile, Scenario, int], number: int) -> LiveTrial:
        file, scenario, _line = case
        tag = hashlib.sha256(f"{file.path}\n{scenario.name}\n{number}".encode()).hexdigest()[:16]
        model = _cached_model(agent_model, name="agent", cache=cache, meter=meter, trial=tag)
        simulated = None
        if customer == "model":
            simulated = _customer_agent(
                scenario,
                _cached_model(customer_model, name="customer", cache=cache, meter=meter, trial=tag),
            )
        async with gate:
            trial = await _trial(
                network,
                scenario,
                agent_model=model,
                customer=simulated,
                max_turns=max_turns,
                agent_steps=max(10, 4 * max_turns),
                teams=teams,
            )
            if judge:
                grader = _cached_model(
                    judge_model, name="judge", cache=cache, meter=meter, trial=tag
                )
                trial.grade = await _grade(grader, scenario, trial)
            return trial

    try:
        outcomes = await asyncio.gather(
            *(one(case, number) for case in cases for number in range(trials))
        )
    finally:
        if backend is not None:
            await backend.aclose()
    for index, (file, scenario, line) in enumerate(cases):
        mine = list(outcomes[index * trials : (index + 1) * trials])
        report.results.append(
            LiveResult(
                file=file.path,
                line=line,
                routine=f"{file.agent}/{file.routine}",
                name=scenario.name,
                status="passed" if all(t.passed for t in mine) else "failed",
                trials=mine,
            )
        )
    report.metrics = _metrics(report.results, trials)
    report.usage = meter.usage
    grades = [trial.grade for result in report.results for trial in result.trials if trial.grade]
    if grades:
        report.grades = {
            item: round(sum(getattr(g, item) for g in grades) / len(grades), 2)
            for item in ("empathy", "correctness", "asks_before_acting")
        }
    return report
