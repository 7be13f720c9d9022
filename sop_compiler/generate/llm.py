"""The shared base of LLM backends: prompts, retries, the cache, parsing and the repair loop.

A subclass implements one method, `complete(request) -> response`, for one chat call. It signals
faults with the errors below, so that retry, fallback and repair behave the same in every backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from abc import abstractmethod
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from sop_compiler.config import Settings
from sop_compiler.errors import GenerationError, SopcError
from sop_compiler.files import templates_sha
from sop_compiler.generate import prompts, repairs
from sop_compiler.generate.base import Backend, GenerationContext, GenerationResult
from sop_compiler.models import Issue, Procedure, RoutineDraft, Usage, walk_steps

if TYPE_CHECKING:
    from sop_compiler.generate.cache import ResponseCache

log = logging.getLogger("sop_compiler.generate")

ResponseFormat = Literal["json_schema", "json_object", "text"]
_FALLBACK: dict[str, ResponseFormat] = {"json_schema": "json_object", "json_object": "text"}

MAX_CONTENT_CHARS = 400_000  # a routine is a few KB; anything this large is runaway output
# seconds; a server asking for a longer wait fails that procedure at once (one procedure could
# otherwise stall the run for max_retries x the wait)
MAX_RETRY_AFTER = 120.0
_MAX_REPAIR_ITEMS = 20
_KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]{4,}")


class RetryableError(GenerationError):
    """A fault worth retrying (429, 5xx, timeout, dropped connection); `retry_after` in seconds."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, fatal_when_exhausted: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # a fault that outlasting the retries shows to be permanent (the server went away)
        self.fatal_when_exhausted = fatal_when_exhausted


class FatalBackendError(GenerationError):
    """A fault no procedure can get past (bad key, unknown model, no quota): stop calling."""


class ResponseFormatUnsupported(GenerationError):
    """The server rejected the response format; the backend falls back to a simpler one."""


class VisionUnsupported(GenerationError):
    """The server rejected the request's images: vision is turned off for the rest of the run."""


@dataclass(frozen=True)
class ContentPart:
    """One part of a multi-part user message: text, or an image as a data URL."""

    type: Literal["text", "image_url"]
    value: str

    def to_dict(self) -> dict[str, Any]:
        """The part as the chat completions API expects it."""
        if self.type == "text":
            return {"type": "text", "text": self.value}
        return {"type": "image_url", "image_url": {"url": self.value}}


@dataclass(frozen=True)
class ChatMessage:
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    content: str | tuple[ContentPart, ...]

    def to_dict(self) -> dict[str, Any]:
        """The message as the chat completions API expects it."""
        if isinstance(self.content, str):
            return {"role": self.role, "content": self.content}
        return {"role": self.role, "content": [part.to_dict() for part in self.content]}


@dataclass(frozen=True)
class ChatRequest:
    """Everything that decides a model's answer; hashable, and its payload is plain JSON."""

    model: str
    messages: tuple[ChatMessage, ...]
    response_format: ResponseFormat = "json_schema"
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    # Another answer than a routine (`sopc scenarios --from-sop`): the schema's name and its JSON
    # text (a string keeps the request hashable); None: the routine schema.
    schema: tuple[str, str] | None = None

    def payload(self) -> dict[str, Any]:
        """The body of POST /chat/completions (also the keyword arguments of `create`)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [message.to_dict() for message in self.messages],
        }
        if self.response_format == "json_schema":
            name, schema = (
                (self.schema[0], json.loads(self.schema[1]))
                if self.schema
                else ("routine_draft", prompts.routine_schema())
            )
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "strict": True, "schema": schema},
            }
        elif self.response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.seed is not None:
            body["seed"] = self.seed
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body

    def canonical_json(self) -> str:
        """The payload as canonical JSON (sorted keys, no spaces): what the cache key hashes."""
        return json.dumps(self.payload(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ChatResponse:
    """One answer: its text, why it stopped, a refusal if any, and the tokens it cost."""

    content: str | None
    finish_reason: str | None = "stop"
    refusal: str | None = None
    usage: Usage = field(default_factory=Usage)
    cached: bool = False  # served from the response cache


@dataclass(frozen=True)
class _Call:
    procedure: Procedure
    context: GenerationContext


_current: ContextVar[_Call | None] = ContextVar("sopc_current_call", default=None)


def current_procedure() -> tuple[Procedure, GenerationContext] | None:
    """The procedure (and context) whose generation is running in this task, for `complete()`."""
    call = _current.get()
    return (call.procedure, call.context) if call else None


def extract_json(content: str) -> Any:
    """The first JSON object in `content`: bare, inside a ```json fence, or after some prose."""
    text = content.strip()
    fence = re.search(r"```(?:json)?\s*\n(.*?)```", text, re.DOTALL)
    if fence and not text.startswith("{"):
        text = fence.group(1).strip()
    start = text.find("{")
    if start < 0:
        raise ValueError("the answer holds no JSON object")
    try:
        value, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return value


def _pydantic_errors(exc: ValidationError) -> list[str]:
    out = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        out.append(f"schema: {where}: {error['msg']}")
    return out


def _issue_text(issue: Issue) -> str:
    return issue.located()


class LLMBackend(Backend):
    """A backend that asks a chat model for each routine; subclasses implement `complete()`."""

    uses_model = True
    uses_cache: bool = True
    whole_catalog = False  # every call costs: keyed only on what each routine uses

    def __init__(self, settings: Settings, *, refresh: bool = False) -> None:
        from sop_compiler.generate.cache import ResponseCache

        self.settings = settings
        self.cache: ResponseCache | None = (
            ResponseCache(settings.cache_dir, refresh=refresh)
            if settings.cache and self.uses_cache
            else None
        )
        self.backoff_base = 0.5  # seconds before the first retry; doubles each time
        self.backoff_max = 30.0
        self.fatal_error: FatalBackendError | None = None
        self._format: ResponseFormat = settings.structured_output
        self._vision = settings.vision  # turned off for the run when the server rejects images
        # False for api.openai.com: its reasoning models spend output tokens on thinking, so the
        # schema-sized default could cut them off; a `max_tokens` setting is always sent.
        self.default_max_tokens = True
        self.tokens_received = 0  # streamed chunks received so far (progress on a terminal)
        self.notes: list[str] = []  # told once in the run's summary (see run_notes)

    def run_notes(self) -> list[str]:
        """What the run's summary tells once: images rejected, a model the server does not list."""
        return list(self.notes)

    @property
    def refresh(self) -> bool:
        """True: ignore cached responses, but still store new ones (`--refresh`)."""
        return self.cache.refresh if self.cache else False

    @refresh.setter
    def refresh(self, value: bool) -> None:
        if self.cache:
            self.cache.refresh = value

    @abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One chat call; raise RetryableError, FatalBackendError or ResponseFormatUnsupported."""

    def secrets(self) -> list[str]:
        """Strings that must never appear in an error or log line (the API key)."""
        return []

    def scrub(self, text: str) -> str:
        """`text` with anything that looks like the API key replaced."""
        for secret in self.secrets():
            if secret:
                text = text.replace(secret, "***")
        return _KEY_LIKE.sub(r"\1***", text)

    @classmethod
    def fingerprint_for(cls, settings: Settings) -> dict[str, object]:
        """Everything that changes the output (not the base URL, which differs between machines)."""
        return {
            "backend": cls.name,
            "model": settings.model,
            "temperature": settings.temperature,
            "seed": settings.seed,
            "structured_output": settings.structured_output,
            "vision": settings.vision,
            "repair_attempts": settings.repair_attempts,
            "prompt_template_version": prompts.PROMPT_TEMPLATE_VERSION,
            "prompt_sha256": templates_sha(under="prompts"),
            "schema_sha256": prompts.schema_sha256(),
        }

    def system_message(
        self, procedure: Procedure, context: GenerationContext, fmt: ResponseFormat
    ) -> str:
        """The static prefix, then the catalog: the schema is in it only when not in the format."""
        catalog = prompts.catalog_prompt(context.catalog, context.agents, procedure=procedure)
        return prompts.system_prompt(schema=fmt != "json_schema") + "\n" + catalog

    def build_messages(
        self, procedure: Procedure, context: GenerationContext
    ) -> tuple[list[ChatMessage], list[Issue]]:
        """The first request's messages, and warnings about figures the model will not see."""
        rendered = prompts.render_procedure(procedure, images=procedure.images, vision=self._vision)
        system = self.system_message(procedure, context, self._format)
        user: str | tuple[ContentPart, ...] = rendered.text
        if rendered.images:
            parts = [ContentPart("text", rendered.text)]
            for number, image in enumerate(rendered.images, start=1):
                parts.append(ContentPart("text", f"Image {number}: figure [{image.block_id}]"))
                parts.append(ContentPart("image_url", image.data_url))
            user = tuple(parts)
        notes = [
            Issue(
                code="figure_unread",
                severity="warning",
                routine_id=procedure.id,
                message=(
                    f"figure [{block_id}] was not shown to the model ({why}): "
                    "its content is missing"
                ),
            )
            for block_id, why in rendered.unread
        ]
        return [ChatMessage("system", system), ChatMessage("user", user)], notes

    def batch_request(
        self,
        procedure: Procedure,
        context: GenerationContext,
        *,
        repair: tuple[str, list[str]] | None = None,
    ) -> ChatRequest:
        """The request for one procedure as a Batch API line sends it (`sopc compile --batch`).

        `repair`: the previous answer and its problems, to ask for a corrected one.
        """
        messages, _ = self.build_messages(procedure, context)
        if repair is not None:
            answer, problems = repair
            messages += [
                ChatMessage("assistant", answer[:MAX_CONTENT_CHARS]),
                ChatMessage("user", prompts.repair_prompt(problems[:_MAX_REPAIR_ITEMS])),
            ]
        return ChatRequest(
            model=self.settings.model,
            messages=tuple(messages),
            response_format=self._format,
            temperature=self.settings.temperature,
            seed=self.settings.seed,
        )

    def check_answer(
        self,
        content: str,
        procedure: Procedure,
        context: GenerationContext,
        validate: Callable[[RoutineDraft], list[Issue]],
    ) -> tuple[RoutineDraft | None, list[Issue], list[str]]:
        """Parse and validate one answer: (draft or None, its issues, problems to send back)."""
        draft, issues, problems = self._check(content, procedure, context, validate)
        _, notes = self.build_messages(procedure, context)
        return draft, [*notes, *issues], problems

    async def generate(
        self,
        procedure: Procedure,
        *,
        context: GenerationContext,
        validate: Callable[[RoutineDraft], list[Issue]],
    ) -> GenerationResult:
        """Ask for a draft, check it, send errors back for up to `repair_attempts` more tries."""
        token = _current.set(_Call(procedure, context))
        try:
            return await self._generate(procedure, context, validate)
        finally:
            _current.reset(token)

    async def _generate(
        self,
        procedure: Procedure,
        context: GenerationContext,
        validate: Callable[[RoutineDraft], list[Issue]],
    ) -> GenerationResult:
        result = GenerationResult(procedure_id=procedure.id)
        messages, notes = self.build_messages(procedure, context)
        max_tokens = self._max_tokens(procedure)
        best: tuple[RoutineDraft, list[Issue], int] | None = None  # draft, issues, errors
        problems: list[str] = []
        hopeless = 0  # answers in a row without the routine's required fields or steps
        shortened = False  # a cut-off answer is asked again, shorter, once
        attempt = 0
        while attempt <= self.settings.repair_attempts:
            result.attempts = attempt + 1
            try:
                response = await self._request(
                    messages,
                    system=lambda fmt: self.system_message(procedure, context, fmt),
                    max_tokens=max_tokens,
                )
            except VisionUnsupported as exc:
                if not self._turn_vision_off(exc):
                    result.error = self.scrub(exc.message)
                    return result
                messages, notes = self.build_messages(procedure, context)  # without images
                continue
            except SopcError as exc:
                result.error = self.scrub(exc.message)
                return result
            except Exception as exc:  # a backend bug must not stop the other procedures
                log.debug("backend failure", exc_info=True)
                result.error = self.scrub(f"backend failure: {type(exc).__name__}: {exc}")
                return result
            result.usage += response.usage
            attempt += 1
            content = response.content or ""
            if (
                response.finish_reason == "length"
                and not response.refusal
                and not shortened
                and attempt <= self.settings.repair_attempts
            ):
                # never resent identically: the same request would run into the same limit
                shortened = True
                log.info(
                    "%s: answer cut off at the token limit; asking for a shorter one", procedure.id
                )
                messages = [
                    *messages,
                    ChatMessage("assistant", content[: repairs.CUT_OFF_ECHO]),
                    ChatMessage(
                        "user",
                        prompts.repair_prompt(
                            [repairs.shorter(max_tokens or response.usage.completion_tokens)]
                        ),
                    ),
                ]
                continue
            stop = _stop_reason(response)
            if stop:
                result.error = self.scrub(stop)
                return result
            draft, issues, problems = self._check(content, procedure, context, validate)
            # a repair can be worse than the answer it repairs: keep the fewest errors (ties: later)
            if draft is not None and (best is None or len(problems) <= best[2]):
                best = (draft, issues, len(problems))
            if not problems:
                break
            hopeless = hopeless + 1 if repairs.hopeless(draft, problems) else 0
            if hopeless >= repairs.HOPELESS_IN_A_ROW:
                if best is None or not best[0].steps:
                    message = repairs.hopeless_error(hopeless, problems, mode=self._format)
                    result.error = self.scrub(message)
                    return result
                break  # an earlier answer had steps: keep it rather than repair in vain
            if attempt > self.settings.repair_attempts:
                break
            log.info(
                "%s: attempt %d has %d problem(s); asking for a repair",
                procedure.id,
                attempt,
                len(problems),
            )
            messages = [
                *messages,
                ChatMessage("assistant", content[:MAX_CONTENT_CHARS]),
                ChatMessage("user", prompts.repair_prompt(problems[:_MAX_REPAIR_ITEMS])),
            ]
        if best is None:
            detail = "; ".join(problems[:3])
            result.error = self.scrub(
                f"no valid routine after {_attempts(result.attempts)}: {detail}"
            )
            return result
        result.draft, issues, _ = best
        result.issues = [*notes, *issues]
        return result

    def _max_tokens(self, procedure: Procedure) -> int | None:
        """The `max_tokens` setting, else a limit sized to the schema and the procedure."""
        if self.settings.max_tokens is not None:
            return self.settings.max_tokens
        if not self.default_max_tokens:
            return None
        return repairs.sized_max_tokens(procedure)

    def _turn_vision_off(self, exc: VisionUnsupported) -> bool:
        """Stop sending images for the rest of the run (told once); False if none were sent."""
        if not self._vision:
            return False
        self._vision = False
        note = (
            f"{exc.message}: figures are no longer sent as images in this run and are reported "
            "unread (set vision = false in sopc.toml for this model)"
        )
        self.notes.append(self.scrub(note))  # one note in the run's summary
        log.info("%s", self.scrub(note))
        return True

    def _check(
        self,
        content: str,
        procedure: Procedure,
        context: GenerationContext,
        validate: Callable[[RoutineDraft], list[Issue]],
    ) -> tuple[RoutineDraft | None, list[Issue], list[str]]:
        """Parse and validate one answer: (draft or None, its issues, problems to send back)."""
        if not content.strip():
            return None, [], ["the answer was empty: answer with the JSON object"]
        if len(content) > MAX_CONTENT_CHARS:
            return None, [], [f"the answer is far too long ({len(content)} characters): be concise"]
        try:
            draft = RoutineDraft.model_validate(extract_json(content))
        except ValueError as exc:
            if isinstance(exc, ValidationError):
                return None, [], _pydantic_errors(exc)
            return None, [], [str(exc)]
        issues = _with_unknown_tools(list(validate(draft)), draft, procedure, context)
        return draft, issues, [_issue_text(issue) for issue in issues if issue.severity == "error"]

    async def _request(
        self,
        messages: list[ChatMessage],
        *,
        system: Callable[[ResponseFormat], str] | None = None,
        max_tokens: int | None = None,
    ) -> ChatResponse:
        """One chat call, falling back to a simpler response format when the server rejects one.

        `system` gives the system message for a format: once structured output is refused, the
        schema it carried must move into the prompt.
        """
        while True:
            fmt = self._format
            # Always the system message of the format this request goes out in: a fallback made
            # by this request or by another one in flight (the same text when nothing changed).
            if system is not None and messages and messages[0].role == "system":
                messages = [ChatMessage("system", system(fmt)), *messages[1:]]
            request = ChatRequest(
                model=self.settings.model,
                messages=tuple(messages),
                response_format=fmt,
                temperature=self.settings.temperature,
                seed=self.settings.seed,
                max_tokens=max_tokens,
            )
            try:
                return await self._call(request)
            except ResponseFormatUnsupported as exc:
                lower = _FALLBACK.get(fmt)
                if lower is None:
                    raise GenerationError(exc.message) from None
                if self._format == fmt:  # once per run, even with many requests in flight
                    log.warning(
                        "the server does not support response_format %s; using %s", fmt, lower
                    )
                    self._format = lower

    async def _call(self, request: ChatRequest) -> ChatResponse:
        """Serve from the cache, or call `complete()` with retries and store the answer."""
        # The request is hashed once (with images it is megabytes of base64), and file I/O runs
        # in a thread, so that many requests in flight (--jobs 64) do not stall the event loop.
        key: str | None = None
        if self.cache is not None:
            key, hit = await asyncio.to_thread(self._lookup, self.cache, request)
            if hit is not None:
                return hit
        if self.fatal_error is not None:
            raise self.fatal_error
        attempt = 0
        while True:
            try:
                response = await self.complete(request)
                break
            except FatalBackendError as exc:
                self.fatal_error = FatalBackendError(self.scrub(exc.message), hint=exc.hint)
                raise self.fatal_error from None
            except RetryableError as exc:
                if attempt >= self.settings.max_retries:
                    message = self.scrub(f"{exc.message} (gave up after {_attempts(attempt + 1)})")
                    if exc.fatal_when_exhausted:
                        self.fatal_error = FatalBackendError(message, hint=exc.hint)
                        raise self.fatal_error from None
                    raise GenerationError(message) from None
                if exc.retry_after is not None and exc.retry_after > MAX_RETRY_AFTER:
                    raise GenerationError(
                        self.scrub(
                            f"{exc.message}: the server asked to wait {exc.retry_after:.0f} s "
                            f"(rate-limited), longer than the {MAX_RETRY_AFTER:.0f} s sopc "
                            "waits: try again later, or lower --jobs"
                        )
                    ) from None
                if key is None:
                    key = await asyncio.to_thread(request_key, request)
                delay = self._delay(key, attempt, exc.retry_after)
                log.info(
                    "%s; retry %d of %d in %.2fs",
                    self.scrub(exc.message),
                    attempt + 1,
                    self.settings.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
                attempt += 1
        usage = response.usage.model_copy(update={"calls": 1, "cached_responses": 0})
        response = ChatResponse(response.content, response.finish_reason, response.refusal, usage)
        if self.cache is not None and _stop_reason(response) is None and response.content:
            await asyncio.to_thread(self.cache.put, request, response, key=key)
        return response

    async def ask(
        self, request: ChatRequest, *, about: tuple[Procedure, GenerationContext] | None = None
    ) -> ChatResponse:
        """One chat call for another stage than compile: the cache, then `complete()` with
        retries (no repair loop, no format fallback: ResponseFormatUnsupported reaches the caller).

        `about`: the procedure the request is about (what `current_procedure()` tells `complete`).
        """
        token = _current.set(_Call(*about)) if about is not None else None
        try:
            return await self._call(request)
        finally:
            if token is not None:
                _current.reset(token)

    @staticmethod
    def _lookup(cache: ResponseCache, request: ChatRequest) -> tuple[str, ChatResponse | None]:
        key = cache.key(request)
        return key, cache.get(request, key=key)

    def _delay(self, request_key: str, attempt: int, retry_after: float | None) -> float:
        """Retry-After when the server gives one; else exponential backoff with jitter.

        `request_key` identifies the request (its hash); a Retry-After above MAX_RETRY_AFTER
        never gets here.
        """
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, MAX_RETRY_AFTER)
        # Deterministic jitter (0.75x-1.25x) from the request: different procedures spread out,
        # yet a run replays the same waits.
        seed = hashlib.sha256(f"{request_key}:{attempt}".encode()).digest()
        jitter = 0.75 + 0.5 * (seed[0] / 255)
        return min(self.backoff_max, self.backoff_base * 2.0**attempt) * jitter


def _with_unknown_tools(
    issues: list[Issue], draft: RoutineDraft, procedure: Procedure, context: GenerationContext
) -> list[Issue]:
    """`issues`, with an error for each call of a tool outside the catalog that they miss.

    `validate` normally reports these itself; this guarantees that no validate callable (a
    stand-in, a future one with the check turned into a warning) lets an unknown tool through.
    """
    flagged = {
        issue.step_id
        for issue in issues
        if issue.code == "unknown_tool" and issue.severity == "error"
    }
    missed = {
        step.id: step.tool_call.tool
        for step in walk_steps(draft.steps)
        if step.tool_call is not None
        and context.catalog.get(step.tool_call.tool) is None
        and step.id not in flagged
    }
    if not missed:
        return issues
    # a weaker report of the same fault would be a duplicate of the error added below
    kept = [i for i in issues if not (i.code == "unknown_tool" and i.step_id in missed)]
    return kept + [
        Issue(
            code="unknown_tool",
            severity="error",
            routine_id=procedure.id,
            step_id=step_id,
            message=f"`{tool}` is not a catalog tool: list it in tools_proposed",
        )
        for step_id, tool in missed.items()
    ]


def request_key(request: ChatRequest) -> str:
    """SHA-256 of the canonical request: identifies it (for retry jitter) without the cache."""
    return hashlib.sha256(request.canonical_json().encode()).hexdigest()


def _attempts(count: int) -> str:
    return f"{count} attempt" if count == 1 else f"{count} attempts"


def _stop_reason(response: ChatResponse) -> str | None:
    """Why an answer must not be parsed (truncated, refused, filtered), or None."""
    if response.refusal:
        return f"the model refused: {' '.join(response.refusal.split())[:300]}"
    if response.finish_reason == "length":
        tokens = response.usage.completion_tokens
        return (
            f"the answer was cut off at the output token limit (finish_reason length"
            f"{f', {tokens} completion tokens' if tokens else ''}): raise `max_tokens` in "
            "sopc.toml, split the procedure, or use a model with a larger output limit"
        )
    if response.finish_reason == "content_filter":
        return "the provider's content filter stopped the answer (finish_reason content_filter)"
    return None
