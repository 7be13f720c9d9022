"""The openai backend: the real openai client, over real HTTP, against tests/llm_server.py."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import (
    LLMServer,
    Reply,
    citation_check,
    completion,
    default_draft,
    error,
    sample_procedure,
)

from sop_compiler.config import Settings
from sop_compiler.errors import ConfigError
from sop_compiler.generate.base import GenerationContext, GenerationResult
from sop_compiler.generate.openai import OpenAIBackend
from sop_compiler.models import Figure, Procedure, Provenance, Tool, ToolCatalog

KEY = "sk-test-SECRET123"
CATALOG = ToolCatalog(
    tools=[
        Tool(
            name="lookup_order",
            description="Look up an order by its id.",
            parameters={
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        )
    ]
)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def make_backend(
    server: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., OpenAIBackend]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    def make(**overrides: Any) -> OpenAIBackend:
        values: dict[str, Any] = {
            "model": "test-model",
            "base_url": server.base_url,
            "timeout": 1.0,
            "max_retries": 2,
            "cache_dir": tmp_path / "cache",
        }
        backend = OpenAIBackend(Settings(**{**values, **overrides}))
        backend.backoff_base = 0.01
        return backend

    return make


def generate(
    backend: OpenAIBackend, *procedures: Procedure, sequential: bool = False
) -> list[GenerationResult]:
    """Generate every procedure (concurrently, as the pipeline does), then close the client."""
    context = GenerationContext(catalog=CATALOG, settings=backend.settings, agents=("billing",))

    async def one(procedure: Procedure) -> GenerationResult:
        return await backend.generate(
            procedure, context=context, validate=citation_check(procedure)
        )

    async def run() -> list[GenerationResult]:
        try:
            if sequential:
                return [await one(procedure) for procedure in procedures]
            return await asyncio.gather(*(one(procedure) for procedure in procedures))
        finally:
            await backend.aclose()

    return asyncio.run(run())


def good() -> dict[str, Any]:
    """A valid draft citing the procedure's first step."""
    draft = default_draft({})
    draft["steps"][0]["source"] = {
        "block_ids": ["b2"],
        "quote": "Do step number 1",
        "file": None,
        "page": None,
        "paragraph": None,
    }
    return draft


def last_user_text(server: LLMServer) -> str:
    content = server.chat_requests[-1].body["messages"][-1]["content"]
    assert isinstance(content, str)
    return content


def test_good_structured_answer_gives_a_draft_and_sends_the_strict_schema(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(completion(good(), prompt_tokens=2000, cached_tokens=1536, completion_tokens=300))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is None and result.draft is not None
    assert result.draft.steps[0].source is not None
    assert result.draft.steps[0].source.block_ids == ["b2"]
    assert (result.usage.calls, result.usage.prompt_tokens) == (1, 2000)
    assert (result.usage.cached_prompt_tokens, result.usage.completion_tokens) == (1536, 300)
    [request] = server.chat_requests
    assert request.authorization == f"Bearer {KEY}"
    fmt = request.body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(schema["properties"])
    assert request.body["model"] == "test-model"
    system, user = request.body["messages"]
    assert system["role"] == "system" and "`lookup_order`" in system["content"]
    assert "<procedure>" in user["content"] and "[b2] 1. Do step number 1" in user["content"]


def test_invalid_json_is_repaired(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(completion('{"title": "Refunds", "steps": [ oops'), completion(good()))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is None and result.draft is not None
    assert len(server.chat_requests) == 2 and result.attempts == 2
    assert "invalid JSON" in last_user_text(server)
    messages = server.chat_requests[1].body["messages"]
    assert messages[-2] == {"role": "assistant", "content": '{"title": "Refunds", "steps": [ oops'}


def test_schema_violation_is_repaired_on_the_second_attempt(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    bad = good()
    bad["steps"][1]["kind"] = "jump"
    server.queue(completion(bad), completion(good()))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is None and result.draft is not None
    assert len(server.chat_requests) == 2
    assert result.usage.calls == 2 and result.usage.prompt_tokens == 2000
    repair = last_user_text(server)
    assert "steps.1.kind" in repair and "previous answer" in repair


def test_bad_citation_is_sent_back_as_a_validation_error(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    bad = good()
    bad["steps"][0]["source"]["block_ids"] = ["b99"]
    server.queue(completion(bad), completion(good()))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is None and not result.issues
    assert "cites block b99" in last_user_text(server)


def _with_tool(tool: str) -> dict[str, Any]:
    draft = good()
    draft["steps"].insert(
        1,
        {
            **draft["steps"][1],
            "id": "1a",
            "kind": "tool_call",
            "text": "Refund everything.",
            "tool_call": {"tool": tool, "arguments": []},
        },
    )
    return draft


def test_unknown_tool_is_repaired(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(completion(_with_tool("refund_every_order")), completion(good()))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is None and not result.issues
    assert "refund_every_order" in last_user_text(server)


def test_unknown_tool_that_survives_repair_is_reported(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(*[completion(_with_tool("refund_every_order"))] * 3)
    [result] = generate(make_backend(repair_attempts=2), sample_procedure())

    assert len(server.chat_requests) == 3
    assert result.draft is not None
    [issue] = [i for i in result.issues if i.code == "unknown_tool"]
    assert issue.severity == "error" and issue.step_id == "1a"


def test_429_honours_retry_after(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(error(429, "slow down", code="rate_limit_exceeded", headers={"Retry-After": "1"}))
    server.queue(completion(good()))
    started = time.monotonic()
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is None
    assert len(server.chat_requests) == 2
    assert 0.9 <= time.monotonic() - started < 5


def test_429_without_retry_after_backs_off_and_succeeds(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(error(429, "slow down"), error(429, "slow down"), completion(good()))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is None and len(server.chat_requests) == 3


def test_500_then_success(server: LLMServer, make_backend: Callable[..., OpenAIBackend]) -> None:
    server.queue(Reply(status=500), completion(good()))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is None and result.draft is not None
    assert len(server.chat_requests) == 2 and result.usage.calls == 1


def test_503_burst_gives_up_with_a_clear_error(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(*[Reply(status=503)] * 3)
    [result] = generate(make_backend(max_retries=2), sample_procedure())

    assert result.draft is None
    assert result.error is not None
    assert "503" in result.error and "gave up after 3 attempts" in result.error
    assert len(server.chat_requests) == 3


def test_connection_dropped_mid_response_is_retried(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(Reply(body=completion(good()), close=True), completion(good()))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is None and len(server.chat_requests) == 2


def test_slower_than_timeout_is_retried_then_reported_for_a_remote_server(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(Reply(delay=5), Reply(delay=5))
    started = time.monotonic()
    backend = make_backend(timeout=0.5, max_retries=1, local=False, stream=False)
    [result] = generate(backend, sample_procedure())

    assert result.draft is None and result.error is not None
    assert "no answer" in result.error and "0.5s" in result.error and "timeout" in result.error
    assert "gave up after 2 attempts" in result.error
    assert len(server.chat_requests) == 2
    assert time.monotonic() - started < 4


def test_a_timeout_against_a_local_server_is_not_retried(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(Reply(delay=5), Reply(delay=5))
    [result] = generate(make_backend(timeout=0.5, max_retries=3, stream=False), sample_procedure())

    assert result.draft is None and result.error is not None
    assert "no answer" in result.error and "not retried" in result.error
    assert len(server.chat_requests) == 1


def test_connection_refused_is_reported(
    make_backend: Callable[..., OpenAIBackend], tmp_path: Path
) -> None:
    with LLMServer() as gone:
        url = gone.base_url
    [result] = generate(make_backend(base_url=url, max_retries=1), sample_procedure())

    assert result.error is not None and "connection to 127.0.0.1" in result.error


def test_finish_reason_length_is_repaired_once_with_a_shorter_answer_then_reported(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    cut = completion(json.dumps(good())[:50], finish_reason="length", completion_tokens=4096)
    server.queue(cut, cut)
    [result] = generate(make_backend(max_tokens=4096), sample_procedure())

    assert result.draft is None and result.error is not None
    assert "cut off" in result.error and "4096" in result.error
    first, second = server.chat_requests
    assert first.body["max_tokens"] == second.body["max_tokens"] == 4096
    assert second.body["messages"] != first.body["messages"]  # never resent identically
    assert "shorter" in second.body["messages"][-1]["content"]


def test_refusal_is_reported(server: LLMServer, make_backend: Callable[..., OpenAIBackend]) -> None:
    server.queue(completion(None, refusal="I can't help with that."))
    [result] = generate(make_backend(), sample_procedure())

    assert result.draft is None
    assert result.error == "the model refused: I can't help with that."
    assert len(server.chat_requests) == 1


def test_content_filter_is_reported(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(completion("", finish_reason="content_filter"))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is not None and "content filter" in result.error


def _flowchart() -> Procedure:
    procedure = sample_procedure()
    figure = Figure(
        id="b9",
        prov=Provenance(file="billing/refunds.md"),
        caption="Refund flowchart",
        image={"sha256": "ab" * 32, "mime": "image/png"},
    )
    return procedure.model_copy(
        update={"blocks": [*procedure.blocks, figure], "images": {"ab" * 32: PNG}}
    )


def test_flowchart_figure_is_sent_as_an_image(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    [result] = generate(make_backend(), _flowchart())

    assert result.error is None and not result.issues
    user = server.chat_requests[0].body["messages"][1]["content"]
    assert isinstance(user, list)
    images = [part for part in user if part["type"] == "image_url"]
    assert [part["image_url"]["url"] for part in images] == [
        "data:image/png;base64," + base64.b64encode(PNG).decode()
    ]
    texts = " ".join(part["text"] for part in user if part["type"] == "text")
    assert "[b9] (figure, image 1 below) Refund flowchart" in texts


def test_without_vision_the_figure_is_reported_unread(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    [result] = generate(make_backend(vision=False), _flowchart())

    user = server.chat_requests[0].body["messages"][1]["content"]
    assert isinstance(user, str) and "image_url" not in json.dumps(server.chat_requests[0].body)
    [note] = result.issues
    assert note.code == "figure_unread" and "b9" in note.message and "vision is off" in note.message


def test_cached_rerun_makes_zero_http_calls(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    procedures = [sample_procedure(f"p{i}") for i in range(3)]
    first = generate(make_backend(), *procedures)
    calls = len(server.chat_requests)
    second = generate(make_backend(), *procedures)

    assert calls == 3 and len(server.chat_requests) == calls
    assert [r.draft for r in second] == [r.draft for r in first]
    assert all(r.usage.calls == 0 and r.usage.cached_responses == 1 for r in second)

    refreshed = make_backend()
    refreshed.refresh = True
    generate(refreshed, *procedures)
    assert len(server.chat_requests) == 2 * calls


def test_no_cache_setting_always_calls(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend], tmp_path: Path
) -> None:
    generate(make_backend(cache=False), sample_procedure())
    generate(make_backend(cache=False), sample_procedure())

    assert len(server.chat_requests) == 2 and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (error(401, f"Incorrect API key provided: {KEY}."), "401 Unauthorized from 127.0.0.1"),
        (error(403, "forbidden"), "403 Forbidden"),
        (
            error(404, "The model `test-model` does not exist", code="model_not_found"),
            "model 'test-model' not found on 127.0.0.1:",
        ),
        (
            error(429, "You exceeded your current quota", code="insufficient_quota"),
            "insufficient_quota from 127.0.0.1",
        ),
    ],
)
def test_faults_no_retry_can_fix_stop_at_once(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend], reply: Reply, message: str
) -> None:
    server.queue(reply)
    procedures = [sample_procedure("p1"), sample_procedure("p2")]
    results = generate(make_backend(), *procedures, sequential=True)

    assert len(server.chat_requests) == 1  # neither retried nor repeated for the second procedure
    for result in results:
        assert result.draft is None and result.error is not None
        assert message in result.error
        assert "SECRET123" not in result.error
    hint = {401: "check OPENAI_API_KEY", 404: "check --model", 429: "add credit or use another key"}
    status = int(message.split()[0]) if message[0].isdigit() else None
    if status in hint:
        assert hint[status] in results[0].error  # type: ignore[operator]


def test_400_is_not_retried(server: LLMServer, make_backend: Callable[..., OpenAIBackend]) -> None:
    server.queue(error(400, "messages: too many"))
    [result] = generate(make_backend(), sample_procedure())

    assert len(server.chat_requests) == 1
    assert result.error is not None and "400" in result.error and "too many" in result.error


def test_server_without_json_schema_falls_back_once_per_run(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(error(400, "response_format json_schema is not supported by this server"))
    server.queue(completion(good()), completion(good()))
    procedures = [sample_procedure("p1"), sample_procedure("p2")]
    results = generate(make_backend(), *procedures, sequential=True)

    assert all(r.error is None for r in results)
    kinds = [r.body.get("response_format", {}).get("type") for r in server.chat_requests]
    assert kinds == ["json_schema", "json_object", "json_object"]


def test_text_mode_parses_a_fenced_answer(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(completion("Here is the routine:\n```json\n" + json.dumps(good()) + "\n```\n"))
    [result] = generate(make_backend(structured_output="text"), sample_procedure())

    assert result.error is None and result.draft is not None
    assert "response_format" not in server.chat_requests[0].body


def test_the_key_never_leaks(
    server: LLMServer,
    make_backend: Callable[..., OpenAIBackend],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"bad request from key {KEY}"
    server.queue(completion(good()))
    server.queue(error(500, echo), completion(good()))
    server.queue(error(400, echo))
    server.queue(error(401, f"Incorrect API key provided: {KEY}"))
    results = [generate(make_backend(), sample_procedure(f"p{i}"))[0] for i in range(4)]

    assert [r.error is None for r in results] == [True, True, False, False]
    assert server.chat_requests[0].authorization == f"Bearer {KEY}"  # it was really used
    written = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*") if p.is_file())
    captured = capsys.readouterr()
    for text in (
        written,
        caplog.text,
        captured.out,
        captured.err,
        *(r.error or "" for r in results),
    ):
        assert "SECRET123" not in text
    assert written and "sk-" not in written


def test_no_key_and_no_base_url_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no API key: set OPENAI_API_KEY"):
        OpenAIBackend(Settings(cache_dir=tmp_path))


def test_local_server_needs_no_key(
    server: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    backend = OpenAIBackend(Settings(model="test-model", cache_dir=tmp_path))
    [result] = generate(backend, sample_procedure())

    assert result.error is None
    assert server.chat_requests[0].authorization == "Bearer sk-no-key"


def test_concurrent_requests_overlap(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.delay = 0.2
    started = time.monotonic()
    results = generate(make_backend(cache=False), *(sample_procedure(f"p{i}") for i in range(8)))

    assert all(r.error is None for r in results)
    assert server.max_concurrency == 8
    assert time.monotonic() - started < 1.5


def test_a_server_that_is_not_openai_compatible_is_reported(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(Reply(body="<html>Welcome</html>", headers={"Content-Type": "text/html"}))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is not None
    assert "did not answer like an OpenAI-compatible server" in result.error
    assert "check the base URL" in result.error and len(server.chat_requests) == 1


def test_the_test_server_lists_a_model(server: LLMServer) -> None:
    import openai

    async def models() -> list[str]:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
        try:
            return [model.id async for model in client.models.list()]
        finally:
            await client.close()

    assert asyncio.run(models()) == ["test-model"]


# --- base URLs ---------------------------------------------------------------------------------

SECRET_URL_PARTS = ("hunter2pass", "qsecret12345", "alice")


def _with_credentials(base_url: str) -> str:
    return base_url.replace("http://", "http://alice:hunter2pass@") + "?token=qsecret12345"


def test_base_url_credentials_never_reach_a_message(
    server: LLMServer,
    make_backend: Callable[..., OpenAIBackend],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only OPENAI_BASE_URL can still carry user info: a setting that does is refused up front.
    caplog.set_level(logging.DEBUG)
    url = _with_credentials(server.base_url)
    port = server.base_url.split(":")[2].split("/")[0]
    server.queue(*[error(500, f"upstream {url} failed")] * 2)
    server.queue(error(400, f"bad request to {url}"))
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    failed, rejected = generate(
        make_backend(base_url=None, max_retries=1),
        *[sample_procedure("p1"), sample_procedure("p2")],
        sequential=True,
    )
    with LLMServer() as gone:
        refused_url = _with_credentials(gone.base_url)
    monkeypatch.setenv("OPENAI_BASE_URL", refused_url)
    [refused] = generate(make_backend(base_url=None, max_retries=0), sample_procedure())

    assert failed.error is not None and f"500 server error from 127.0.0.1:{port}:" in failed.error
    assert rejected.error is not None and f"400 from 127.0.0.1:{port}:" in rejected.error
    assert refused.error is not None and "connection to 127.0.0.1:" in refused.error
    for text in (failed.error, rejected.error, refused.error, caplog.text):
        for secret in SECRET_URL_PARTS:
            assert secret not in text
    # the query string reaches the server as a query parameter, not pasted into the path
    assert all(r.path == "/v1/chat/completions?token=qsecret12345" for r in server.chat_requests)


def test_base_url_without_a_scheme_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "user:pw-secret@localhost:9/v1?key=querysecret")
    with pytest.raises(ConfigError) as err:
        OpenAIBackend(Settings(cache_dir=tmp_path))
    message = str(err.value)
    assert message == "base URL 'localhost:9/v1' is not a valid http(s) URL"
    assert err.value.hint is not None and "http://localhost:8000/v1" in err.value.hint


@pytest.mark.parametrize(
    "url", ["localhost:9/v1", "ftp://127.0.0.1:9/v1", "http://127.0.0.1:99999/v1"]
)
def test_unusable_base_urls_are_refused_up_front(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    with pytest.raises(ConfigError, match="is not a valid http\\(s\\) URL"):
        OpenAIBackend(Settings(cache_dir=tmp_path))


def test_a_url_the_client_rejects_is_fatal_not_retried(
    make_backend: Callable[..., OpenAIBackend],
) -> None:
    backend = make_backend(max_retries=4)
    backend.backoff_base = 1.0  # a retry would take seconds
    # passes sopc's own check; the HTTP client refuses it (InvalidURL)
    backend.base_url = "http://exa\u00e4mple..com/v1"
    started = time.monotonic()
    first, second = generate(backend, sample_procedure("p1"), sample_procedure("p2"))

    assert time.monotonic() - started < 1
    for result in (first, second):
        assert result.error is not None
        assert result.error.startswith("base URL 'http://exaämple..com/v1' is not a valid http(s)")


def test_unsupported_protocol_at_request_time_is_fatal_not_retried(
    make_backend: Callable[..., OpenAIBackend],
) -> None:
    backend = make_backend(max_retries=4)
    backend.backoff_base = 1.0
    backend.base_url = "localhost:9/v1"  # as if a check had been bypassed: the client accepts it
    started = time.monotonic()
    first, second = generate(backend, sample_procedure("p1"), sample_procedure("p2"))

    assert time.monotonic() - started < 1
    assert first.error == second.error
    assert first.error is not None and first.error.startswith(
        "base URL 'localhost:9/v1' is not a valid http(s) URL (UnsupportedProtocol"
    )
    assert "gave up" not in first.error


def test_retry_after_beyond_the_cap_is_reported_without_waiting(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(error(429, "slow down", headers={"Retry-After": "900"}))
    started = time.monotonic()
    [result] = generate(make_backend(), sample_procedure())

    assert time.monotonic() - started < 5 and len(server.chat_requests) == 1
    assert result.error is not None
    assert "429 Too Many Requests from 127.0.0.1" in result.error
    assert "the server asked to wait 900 s (rate-limited)" in result.error
