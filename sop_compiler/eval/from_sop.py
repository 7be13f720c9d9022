"""Scenarios a model writes from the SOP text alone, then replayed against the routine.

`sopc scenarios --from-sop` asks the configured model, per procedure, for test scenarios given
only the procedure's cleaned SOP text and the tool catalog (sop_answer.py): never the routine, so
that the scenarios can disagree with it. Each is replayed with the deterministic interpreter
(agree.py), and written as a draft in `<routine id>.sop.draft.yaml` beside the path drafts, with
what the replay found in comments; a file holding a reviewed scenario is never rewritten. A
disagreement ("expects `issue_refund`; the routine does not call it on that path") is what a
reviewer must look at. Answers go through the compile response cache, so a rerun costs no call
and writes the same bytes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from sop_compiler.config import Settings
from sop_compiler.errors import GenerationError, SopcError
from sop_compiler.eval.agree import SopCheck, check_scenario
from sop_compiler.eval.draft import dump_scenarios, write_scenarios
from sop_compiler.eval.evaluate import load_routines
from sop_compiler.eval.scenario import (
    SOP_DRAFT_SUFFIX,
    Scenario,
    ScenarioError,
    ScenarioFile,
    load_scenario_file,
)
from sop_compiler.eval.sop_answer import (
    MAX_SCENARIOS,
    SCHEMA_NAME,
    SopAnswer,
    SopCondition,
    answer_schema,
    parse_answer,
    scenario_messages,
    to_scenario,
)
from sop_compiler.generate.base import GenerationContext
from sop_compiler.generate.llm import (
    MAX_CONTENT_CHARS,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    LLMBackend,
    ResponseFormatUnsupported,
)
from sop_compiler.interpret import explore
from sop_compiler.models import Procedure, ToolCatalog, Usage
from sop_compiler.models.routine import Routine

__all__ = ["SopDrafts", "draft_from_sop"]

_REPAIR = (
    "Your previous answer cannot be used. Problems found:\n{problems}\n\nAnswer again with the "
    'complete corrected JSON object {{"scenarios": [...]}} that follows the schema.'
)
_HEADER = (
    "# Scenarios of routine {routine}, written by a model from the SOP text alone\n"
    "# ({source}), without the routine, by `sopc scenarios --from-sop`, then each replayed on\n"
    "# the routine. A disagreement below is for a reviewer: the SOP, the routine or the scenario\n"
    "# is wrong. Remove `draft: true` from a scenario once it says what the SOP says (and move it\n"
    "# into {main}); sopc never overwrites a file that holds a reviewed scenario.\n"
)


class SopDrafts(BaseModel):
    """What `sopc scenarios --from-sop` did."""

    model_config = ConfigDict(extra="forbid")

    checks: list[SopCheck] = Field(default_factory=list)
    written: list[str] = Field(default_factory=list)
    unchanged: int = 0
    notes: list[str] = Field(default_factory=list)
    errors: list[str] = Field(
        default_factory=list, description="Scenario files that cannot be read (never rewritten)."
    )
    failed: list[str] = Field(
        default_factory=list, description="Procedures the model gave no usable answer for."
    )
    usage: Usage = Field(default_factory=Usage)
    estimate: dict[str, int] | None = Field(
        default=None, description="--dry-run: model calls, cached answers, input tokens."
    )


async def draft_from_sop(
    scenarios: Path,
    *,
    output: Path,
    procedures: Sequence[Procedure],
    catalog: ToolCatalog,
    backend: LLMBackend,
    shown: Path | None = None,
    dry_run: bool = False,
) -> SopDrafts:
    """Ask the model for scenarios of each procedure, replay them, write them as drafts.

    `dry_run`: ask nothing and write nothing; estimate the calls and input tokens instead.
    """
    routines = load_routines(output)
    agents = sorted({agent for agent, _ in routines})
    report = SopDrafts()
    base = shown if shown is not None else scenarios
    todo: list[tuple[Procedure, Routine, Path, str]] = []
    for procedure in sorted(procedures, key=lambda p: (p.agent, p.id)):
        routine = routines.get((procedure.agent, procedure.id))
        label = f"{procedure.agent}/{procedure.id}"
        if routine is None:
            report.notes.append(
                f"{label}: no routine in {output} (run `sopc compile`): no scenarios from the SOP"
            )
            continue
        target = scenarios / procedure.agent / f"{procedure.id}{SOP_DRAFT_SUFFIX}"
        display = (base / procedure.agent / target.name).as_posix()
        if _kept(target, display, report):
            continue
        todo.append((procedure, routine, target, display))
    if backend.cache is not None:
        backend.cache.secrets = [secret for secret in backend.secrets() if secret]
    asker = _Asker(backend, catalog, agents)
    if dry_run:
        requests = [asker.request(procedure) for procedure, *_ in todo]
        cache = backend.cache
        cached = sum(cache is not None and cache.get(request) is not None for request in requests)
        # about 4 characters a token; the first attempt of each (a repair costs more)
        tokens = sum(len(request.canonical_json()) // 4 for request in requests)
        report.estimate = {
            "model_calls": len(requests) - cached,
            "cached_answers": cached,
            "input_tokens": tokens,
        }
        return report
    gate = asyncio.Semaphore(max(1, await backend.concurrency()) if todo else 1)

    async def one(procedure: Procedure) -> tuple[SopAnswer | None, Usage, str | None]:
        async with gate:
            return await asker.ask(procedure)

    answers = await asyncio.gather(*(one(procedure) for procedure, *_ in todo))
    for (procedure, routine, target, display), (answer, usage, error) in zip(
        todo, answers, strict=True
    ):
        report.usage += usage
        label = f"{routine.agent}/{routine.id}"
        if answer is None:
            report.failed.append(f"{procedure.source}: {label}: {error}")
            continue
        text = _drafts_text(answer, procedure, routine, routines, catalog, display, report)
        if text is None:
            report.notes.append(f"{label}: the model wrote no usable scenario from the SOP")
            if target.is_file():  # drafts only (checked above): the old ones are outdated
                target.unlink()
                report.notes.append(f"removed {display} (drafts of an earlier answer)")
            continue
        # an answer never carries the API key into a file (a server could echo it)
        _write(target, backend.scrub(text), display, report)
    report.checks = [
        SopCheck.model_validate_json(backend.scrub(check.model_dump_json()))
        for check in report.checks
    ]
    return report


def _kept(target: Path, display: str, report: SopDrafts) -> bool:
    """True when `target` must not be rewritten: it holds reviewed scenarios or cannot be read."""
    if not target.exists():
        return False
    try:
        loaded = load_scenario_file(target, shown=display)
    except ScenarioError as exc:
        report.errors.append(str(exc))
        return True
    if any(not scenario.draft for scenario in loaded.scenarios):
        main = target.name.removesuffix(SOP_DRAFT_SUFFIX) + ".yaml"
        report.notes.append(
            f"{display} holds reviewed scenarios: move them into {main}; not rewritten"
        )
        return True
    return False


def _drafts_text(
    answer: SopAnswer,
    procedure: Procedure,
    routine: Routine,
    routines: Mapping[tuple[str, str], Routine],
    catalog: ToolCatalog,
    display: str,
    report: SopDrafts,
) -> str | None:
    label = f"{routine.agent}/{routine.id}"
    file = ScenarioFile(path=display, agent=routine.agent, routine=routine.id, scenarios=[])
    names: set[str] = set()
    entries: list[str] = []
    if len(answer.scenarios) > MAX_SCENARIOS:
        report.notes.append(
            f"{label}: the model wrote {len(answer.scenarios)} scenarios; the first "
            f"{MAX_SCENARIOS} are kept"
        )
    paths = explore(routine, routines=routines).done
    for wire in answer.scenarios[:MAX_SCENARIOS]:
        scenario, notes = to_scenario(wire, agent=routine.agent, catalog=catalog)
        name, number = scenario.name, 2
        while name in names:
            name, number = f"{scenario.name} ({number})", number + 1
        names.add(name)
        scenario = scenario.model_copy(update={"name": name})
        decided, check = check_scenario(
            scenario,
            wire.conditions,
            file=file,
            routine=routine,
            routines=routines,
            catalog=catalog,
            paths=paths,
        )
        check.notes = notes
        report.checks.append(check)
        entries.append(_entry(decided, wire.conditions, check))
    if not entries:
        return None
    main = f"{routine.id}.yaml"
    header = _HEADER.format(
        routine=_comment(label), source=_comment(procedure.source), main=_comment(main)
    )
    return header + "".join(entries)


def _comment(text: str) -> str:
    return " ".join(text.split())


def _entry(scenario: Scenario, conditions: Sequence[SopCondition], check: SopCheck) -> str:
    """One scenario as YAML, after comments: the SOP's conditions, and what the replay found."""
    lines = ["", f"# From the SOP ({len(conditions)} condition(s)):"]
    for condition in conditions:
        cited = f" [{condition.source}]" if condition.source else ""
        holds = "holds" if condition.holds else "does not hold"
        lines.append(f"#   {holds}: {_comment(condition.statement)}{cited}")
    if check.status == "agrees":
        lines.append(f"# Replayed on the routine, path {_comment(check.path or '')}: agrees.")
    elif check.status == "unsettled":
        lines.append(
            f"# Replayed on the routine, path {_comment(check.path or '')}: agrees only on ways "
            "the SOP's conditions do not settle:"
        )
        lines += [f"#   {_comment(item)}" for item in check.unsettled]
    else:
        where = f", closest path {_comment(check.path)}" if check.path else ""
        lines.append(f"# DISAGREES with the routine{where}:")
        lines += [
            f"#   {_comment(part)}" for item in check.disagreements for part in item.splitlines()
        ]
    lines += [f"# The routine tests nothing like: {_comment(item)}" for item in check.untested]
    lines += [f"# Dropped: {_comment(note)}" for note in check.notes]
    return "\n".join(lines) + "\n" + dump_scenarios([scenario])


def _write(path: Path, text: str, display: str, report: SopDrafts) -> None:
    if write_scenarios(path, text):
        report.written.append(display)
    else:
        report.unchanged += 1


class _Asker:
    """Asks the model for one procedure's scenarios: the cache, retries, repairs, a fallback."""

    def __init__(self, backend: LLMBackend, catalog: ToolCatalog, agents: Sequence[str]) -> None:
        self.backend = backend
        self.catalog = catalog
        self.agents = agents
        self.format = backend.settings.structured_output
        self.schema = (SCHEMA_NAME, json.dumps(answer_schema(), sort_keys=True))
        self.context = GenerationContext(
            catalog=catalog, settings=backend.settings, agents=tuple(agents)
        )

    async def ask(self, procedure: Procedure) -> tuple[SopAnswer | None, Usage, str | None]:
        settings = self.backend.settings
        usage = Usage()
        history: list[ChatMessage] = []
        problems: list[str] = []
        for _attempt in range(settings.repair_attempts + 1):
            try:
                response = await self._once(procedure, history, settings)
            except SopcError as exc:
                return None, usage, self.backend.scrub(exc.message)
            usage += response.usage
            if response.refusal:
                return None, usage, f"the model refused: {_comment(response.refusal)[:300]}"
            if response.finish_reason in ("length", "content_filter"):
                return (
                    None,
                    usage,
                    (
                        f"the answer stopped early (finish_reason {response.finish_reason}): "
                        "raise `max_tokens` in sopc.toml"
                    ),
                )
            content = response.content or ""
            answer, problems = parse_answer(content)
            if answer is not None:
                return answer, usage, None
            history = [  # the whole exchange: a repeated request would only meet the cache
                *history,
                ChatMessage("assistant", content[:MAX_CONTENT_CHARS]),
                ChatMessage(
                    "user",
                    _REPAIR.format(problems="\n".join(f"- {problem}" for problem in problems)),
                ),
            ]
        attempts = settings.repair_attempts + 1
        detail = "; ".join(problems[:3])
        return (
            None,
            usage,
            self.backend.scrub(f"no valid scenarios after {attempts} attempt(s): {detail}"),
        )

    def request(self, procedure: Procedure, history: Sequence[ChatMessage] = ()) -> ChatRequest:
        """The request for `procedure` in the current response format (after `history`)."""
        settings = self.backend.settings
        system, user = scenario_messages(
            procedure, self.catalog, self.agents, schema_in_prompt=self.format != "json_schema"
        )
        return ChatRequest(
            model=settings.model,
            messages=(ChatMessage("system", system), ChatMessage("user", user), *history),
            response_format=self.format,
            temperature=settings.temperature,
            seed=settings.seed,
            max_tokens=settings.max_tokens,
            schema=self.schema,
        )

    async def _once(
        self, procedure: Procedure, history: list[ChatMessage], settings: Settings
    ) -> ChatResponse:
        while True:
            fmt = self.format
            request = self.request(procedure, history)
            try:
                return await self.backend.ask(request, about=(procedure, self.context))
            except ResponseFormatUnsupported as exc:
                if fmt == "text":
                    raise GenerationError(exc.message) from None
                self.format = "json_object" if fmt == "json_schema" else "text"
