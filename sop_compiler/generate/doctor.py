"""`sopc doctor`: what an OpenAI-compatible endpoint can do, asked with a few tiny requests.

Reachable? Does it list the model? Which `structured_output` modes give back JSON? Does it take
images? How many requests does it compute at once, and how long does a short answer take? The
answer ends in the sopc.toml lines to use. Each probe asks for a few tokens, so a doctor run
costs next to nothing, even on a paid endpoint.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sop_compiler.config import Settings
from sop_compiler.errors import ExitCode, redact_url

if TYPE_CHECKING:
    import openai

    from sop_compiler.generate.openai import OpenAIBackend

__all__ = ["DoctorReport", "ModeCheck", "diagnose"]

Mode = Literal["json_schema", "json_object", "text"]
_MODES: tuple[Mode, ...] = ("json_schema", "json_object", "text")
_PROBE_TOKENS = 64
_PROBE_TIMEOUT = 120.0  # seconds per probe at most (a cold local model loads on the first one)
_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}
# json_schema is asked without a word about JSON: only a server that enforces the schema answers
# with the object (one that ignores response_format answers in prose, and the mode "fails")
_ASK = {
    "json_schema": "Is the sky blue on a clear day?",
    "json_object": 'Is the sky blue on a clear day? Answer in JSON: {"ok": true} or {"ok": false}',
    "text": 'Answer with this JSON object and nothing else: {"ok": true}',
}
# the smallest PNG: one white pixel
_PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ"
    "/PchI7wAAAABJRU5ErkJggg=="
)


class ModeCheck(BaseModel):
    """One probe: did it work, and what the server said."""

    model_config = ConfigDict(extra="forbid")

    name: str
    ok: bool
    detail: str = ""


class DoctorReport(BaseModel):
    """What `sopc doctor` found out about one endpoint."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="The base URL, without credentials or query.")
    model: str
    reachable: bool
    error: str | None = Field(default=None, description="Why the endpoint cannot be used.")
    models: list[str] | None = Field(default=None, description="What GET /models lists.")
    model_listed: bool | None = None
    round_trip_seconds: float | None = None
    modes: list[ModeCheck] = Field(default_factory=list)
    vision: ModeCheck | None = None
    streaming: ModeCheck | None = None
    slots: int | None = Field(default=None, description="llama.cpp /props total_slots.")
    local: bool = False

    @property
    def best_mode(self) -> str | None:
        """The strictest structured-output mode that worked."""
        return next((check.name for check in self.modes if check.ok), None)

    @property
    def exit_code(self) -> int:
        """0 when sopc can compile against the endpoint, 2 when it cannot be used at all."""
        if not self.reachable or self.best_mode is None:
            return int(ExitCode.USAGE)
        return int(ExitCode.OK)

    def toml_lines(self) -> list[str]:
        """The sopc.toml lines for this endpoint."""
        lines = [f"base_url = {json.dumps(self.base_url)}", f"model = {json.dumps(self.model)}"]
        if self.best_mode:
            lines.append(f"structured_output = {json.dumps(self.best_mode)}")
        if self.vision is not None:
            lines.append(f"vision = {'true' if self.vision.ok else 'false'}")
        if self.slots:
            lines.append(f"jobs = {self.slots}")
        if self.streaming is not None and not self.streaming.ok:
            lines.append("stream = false")
        return lines


def diagnose(settings: Settings) -> DoctorReport:
    """Probe the endpoint `settings` names (base URL, model, key from the environment)."""
    from sop_compiler.generate.openai import OpenAIBackend

    backend = OpenAIBackend(settings)  # checks the base URL and the key as a compile would
    return asyncio.run(_diagnose(backend))


async def _diagnose(backend: OpenAIBackend) -> DoctorReport:
    from sop_compiler.generate.probe import is_listed, list_models, server_slots

    settings = backend.settings
    report = DoctorReport(
        base_url=redact_url(backend.base_url or "https://api.openai.com/v1"),
        model=settings.model,
        reachable=False,
        local=backend.local,
    )
    try:
        client = backend.client()
        found, slots = await asyncio.gather(
            list_models(client, timeout=_PROBE_TIMEOUT),
            server_slots(client, backend.base_url, timeout=_PROBE_TIMEOUT)
            if backend.base_url
            else _none(),
        )
        if found.unreachable is not None:
            report.error = backend.scrub(f"cannot reach {backend.host}: {found.unreachable}")
            return report
        report.reachable, report.models, report.slots = True, found.models, slots
        if found.models is not None:
            report.model_listed = is_listed(settings.model, found.models)
        # one after the other: a server with one slot would queue them anyway
        started = time.perf_counter()
        first = await _ask(backend, client, [_user("Answer with the single word: ok")])
        report.round_trip_seconds = round(time.perf_counter() - started, 2)
        if not first.ok:
            report.error = f"a short answer failed: {first.detail}"
            return report
        report.modes = [await _mode(backend, client, mode) for mode in _MODES]
        report.vision = await _vision(backend, client)
        report.streaming = await _streaming(backend, client)
        return report
    finally:
        await backend.aclose()


async def _none() -> None:
    return None


def _user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


async def _ask(
    backend: OpenAIBackend,
    client: openai.AsyncOpenAI,
    messages: list[dict[str, Any]],
    *,
    name: str = "answer",
    response_format: dict[str, Any] | None = None,
    want_json: bool = False,
) -> ModeCheck:
    """One tiny chat request: ok when it answers (with a JSON object holding `ok`, if wanted)."""
    import openai
    from openai.types.chat import ChatCompletion

    body: dict[str, Any] = {"model": backend.settings.model, "messages": messages}
    if backend.default_max_tokens:
        body["max_tokens"] = _PROBE_TOKENS
    if response_format is not None:
        body["response_format"] = response_format
    timeout = min(backend.settings.timeout, _PROBE_TIMEOUT)
    try:
        completion = await client.post(
            "/chat/completions", body=body, cast_to=ChatCompletion, options={"timeout": timeout}
        )
    except openai.APIStatusError as exc:
        said = f"{exc.status_code} {_said(exc.body) or exc.message}"
        return ModeCheck(name=name, ok=False, detail=backend.scrub(_short(said)))
    except openai.APIError as exc:
        return ModeCheck(name=name, ok=False, detail=backend.scrub(_short(str(exc))))
    choices = getattr(completion, "choices", None) or []
    content = (choices[0].message.content or "") if choices else ""
    if not choices:
        return ModeCheck(name=name, ok=False, detail="the answer has no choices")
    if not want_json:
        return ModeCheck(name=name, ok=True, detail=f"answered {_short(content)!r}")
    from sop_compiler.generate.llm import extract_json

    try:
        value = extract_json(content)
    except ValueError as exc:
        return ModeCheck(name=name, ok=False, detail=f"{exc}: {_short(content)!r}")
    if not isinstance(value, dict) or "ok" not in value:
        return ModeCheck(name=name, ok=False, detail=f"JSON without `ok`: {_short(content)!r}")
    return ModeCheck(name=name, ok=True, detail="answered the JSON object")


async def _mode(backend: OpenAIBackend, client: openai.AsyncOpenAI, mode: Mode) -> ModeCheck:
    formats: dict[Mode, dict[str, Any] | None] = {
        "json_schema": {
            "type": "json_schema",
            "json_schema": {"name": "probe", "strict": True, "schema": _SCHEMA},
        },
        "json_object": {"type": "json_object"},
        "text": None,
    }
    return await _ask(
        backend,
        client,
        [_user(_ASK[mode])],
        name=mode,
        response_format=formats[mode],
        want_json=True,
    )


async def _vision(backend: OpenAIBackend, client: openai.AsyncOpenAI) -> ModeCheck:
    parts = [
        {"type": "text", "text": "What colour is this image? One word."},
        {"type": "image_url", "image_url": {"url": _PIXEL}},
    ]
    return await _ask(backend, client, [_user(parts)], name="vision")


async def _streaming(backend: OpenAIBackend, client: openai.AsyncOpenAI) -> ModeCheck:
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    body: dict[str, Any] = {
        "model": backend.settings.model,
        "messages": [_user("Answer with the single word: ok")],
        "stream": True,
    }
    if backend.default_max_tokens:
        body["max_tokens"] = _PROBE_TOKENS
    try:
        stream = await client.post(
            "/chat/completions",
            body=body,
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
            options={"timeout": min(backend.settings.timeout, _PROBE_TIMEOUT)},
        )
        try:
            kind = stream.response.headers.get("content-type", "")
            if "text/event-stream" not in kind:
                return ModeCheck(name="stream", ok=True, detail="answers with one body")
            chunks = [chunk async for chunk in stream]
        finally:
            await stream.close()
    except Exception as exc:  # a status error, or a stream the HTTP client cannot read
        said = (
            f"{exc.status_code} {_said(exc.body) or exc.message}"
            if isinstance(exc, openai.APIStatusError)
            else f"{type(exc).__name__}: {exc}"
        )
        return ModeCheck(name="stream", ok=False, detail=backend.scrub(_short(said)))
    return ModeCheck(name="stream", ok=bool(chunks), detail=f"{len(chunks)} chunks")


def _said(body: object) -> str:
    """The server's own message in an error body."""
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else error
    return str(message) if isinstance(message, str) else ""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 120 else text[:117] + "..."
