"""Local model servers (issue #18): streamed answers with an idle timeout, retries that help,
capabilities learned from the server, one stop for a dead endpoint, repairs that can work.

All over real HTTP, through the real openai client, against tests/llm_server.py. Delays are
scaled down (an idle timeout of 1 s, a token every 0.3 s) so that the suite stays fast; nothing
asserts a duration.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import (
    LLMServer,
    Reply,
    citation_check,
    completion,
    error,
    sample_procedure,
)
from test_llm_http import good
from typer.testing import CliRunner

from sop_compiler.cli import app
from sop_compiler.config import Settings, load_settings
from sop_compiler.generate.base import GenerationContext, GenerationResult
from sop_compiler.generate.openai import OpenAIBackend, is_local_url
from sop_compiler.models import Figure, Issue, Procedure, Provenance, RoutineDraft, ToolCatalog
from sop_compiler.pipeline import compile_folder

pytestmark = pytest.mark.timeout(60)

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f00f0005060201a1b9e0fd0000000049454e44ae426082"
)


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def make_backend(
    server: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., OpenAIBackend]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def make(**overrides: Any) -> OpenAIBackend:
        values: dict[str, Any] = {
            "model": "test-model",
            "base_url": server.base_url,
            "idle_timeout": 1.0,
            "timeout": 30.0,
            "max_retries": 2,
            "cache": False,
            "cache_dir": tmp_path / "cache",
        }
        backend = OpenAIBackend(Settings(**{**values, **overrides}))
        backend.backoff_base = 0.01
        return backend

    return make


def generate(
    backend: OpenAIBackend, *procedures: Procedure, full_check: bool = False
) -> list[GenerationResult]:
    """Generate the procedures one after the other, then close the client."""
    from sop_compiler.validate import check_draft

    catalog = ToolCatalog()
    context = GenerationContext(catalog=catalog, settings=backend.settings)

    def check(procedure: Procedure) -> Callable[[RoutineDraft], list[Issue]]:
        if not full_check:
            return citation_check(procedure)
        return lambda draft: check_draft(
            draft, procedure=procedure, catalog=catalog, settings=backend.settings, agents=()
        )

    async def run() -> list[GenerationResult]:
        try:
            return [
                await backend.generate(p, context=context, validate=check(p)) for p in procedures
            ]
        finally:
            await backend.aclose()

    return asyncio.run(run())


# --- 1. streaming with an idle timeout -----------------------------------------------------------


def test_a_slow_stream_longer_than_the_idle_timeout_is_not_cut_off(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    # a token every 0.3 s for about 4 s: four times the idle timeout in total, never silent for it
    body = completion(good(), prompt_tokens=1234, completion_tokens=321, cached_tokens=200)
    server.queue(Reply(body=body, pieces=14, token_interval=0.3))
    backend = make_backend()
    [result] = generate(backend, sample_procedure())

    assert result.error is None and result.draft is not None
    request = server.chat_requests[0].body
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    # usage comes from the stream's final chunk
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (1234, 321)
    assert result.usage.cached_prompt_tokens == 200 and result.usage.calls == 1
    assert backend.tokens_received == 14


def test_silence_fires_the_idle_timeout_once_and_a_local_server_is_not_retried(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(Reply(body=completion(good()), pieces=10, silence_after=3, silence=20))
    [result] = generate(make_backend(max_retries=4), sample_procedure())

    assert result.draft is None and result.error is not None
    assert "no token from 127.0.0.1:" in result.error and "for 1s" in result.error
    assert "idle_timeout" in result.error and "not retried" in result.error
    assert len(server.chat_requests) == 1


def test_silence_before_the_first_token_fires_the_idle_timeout_too(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(Reply(delay=20))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is not None and "no token from 127.0.0.1:" in result.error
    assert len(server.chat_requests) == 1


def test_silence_from_a_remote_server_is_retried(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(Reply(body=completion(good()), pieces=10, silence_after=3, silence=20))
    [result] = generate(make_backend(local=False), sample_procedure())

    assert result.error is None and result.draft is not None
    assert len(server.chat_requests) == 2


def test_the_total_timeout_caps_a_stream_that_never_ends(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(Reply(body=completion(good()), pieces=40, token_interval=0.3))
    [result] = generate(make_backend(timeout=2.0), sample_procedure())

    assert result.error is not None
    assert "no answer from 127.0.0.1:" in result.error and "within 2s" in result.error
    assert len(server.chat_requests) == 1


def test_a_server_that_ignores_stream_answers_with_one_body(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(Reply(body=completion(good(), completion_tokens=77), stream=False))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is None and result.usage.completion_tokens == 77


def test_streaming_can_be_turned_off(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    [result] = generate(make_backend(stream=False), sample_procedure())

    assert result.error is None and "stream" not in server.chat_requests[0].body


def test_a_refusal_and_a_content_filter_arrive_through_the_stream(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(completion(None, refusal="No."), completion("", finish_reason="content_filter"))
    refused, filtered = generate(make_backend(), sample_procedure("p1"), sample_procedure("p2"))

    assert refused.error == "the model refused: No."
    assert filtered.error is not None and "content filter" in filtered.error


def test_an_error_event_inside_the_stream_is_one_line_not_retried(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    message = "the request exceeds the available context size, try increasing it"
    server.queue(Reply(body=completion(good()), pieces=5, stream_error=message))
    [result] = generate(make_backend(), sample_procedure())

    assert (
        result.error == f"{server.base_url.split('/')[2]} ended the answer with an error: {message}"
    )
    assert len(server.chat_requests) == 1


def test_a_gateway_that_rejects_stream_options_is_streamed_without_them(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    def strict(body: dict[str, Any]) -> Reply | dict[str, Any]:
        if "stream_options" in body:
            return error(400, "Unrecognized request argument supplied: stream_options")
        return completion(good())

    server.responder = strict
    first, second = generate(make_backend(), sample_procedure("p1"), sample_procedure("p2"))

    assert first.error is None and second.error is None
    # asked once with the option, then never again in the run
    assert ["stream_options" in r.body for r in server.chat_requests] == [True, False, False]


# --- 2. retries and --jobs for local servers -----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8080/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://192.168.1.20:8000/v1", True),
        ("http://10.0.0.5/v1", True),
        ("http://gpu-box.local:8000/v1", True),
        ("https://api.openai.com/v1", False),
        ("https://my-gateway.example.com/v1", False),
        ("http://8.8.8.8/v1", False),
    ],
)
def test_local_urls_are_loopback_and_private_ranges(url: str, local: bool) -> None:
    assert is_local_url(url) is local


def test_local_setting_overrides_the_url(
    make_backend: Callable[..., OpenAIBackend],
) -> None:
    assert make_backend().local is True
    assert make_backend(local=False).local is False


def test_jobs_default_to_the_servers_slots_else_one_for_a_local_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def jobs(server: LLMServer, **overrides: Any) -> int:
        settings = load_settings(
            tmp_path, overrides={"base_url": server.base_url, "model": "test-model", **overrides}
        )
        backend = OpenAIBackend(settings)

        async def run() -> int:
            try:
                return await backend.concurrency()
            finally:
                await backend.aclose()

        return asyncio.run(run())

    with LLMServer(slots=3) as llama:
        assert jobs(llama) == 3
        assert jobs(llama, jobs=8) == 8  # --jobs wins
        assert any(r.path == "/props" for r in llama.requests)
    with LLMServer() as plain:
        assert jobs(plain) == 1  # local, no slots reported
        assert jobs(plain, local=False) == Settings().jobs


def test_a_compile_runs_as_many_requests_at_once_as_the_server_has_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    text = "".join(f"## Case {n}\n\n1. Ask for the order number.\n2. Close.\n\n" for n in range(6))
    (sops / "billing/cases.md").write_text(f"# Cases\n\n{text}")
    with LLMServer(slots=2, delay=1.0) as server:
        settings = load_settings(
            sops,
            overrides={
                "output": tmp_path / "out",
                "backend": "openai",
                "base_url": server.base_url,
                "model": "test-model",
                "cache": False,
            },
        )
        result = compile_folder(sops, settings=settings)

    assert len(server.chat_requests) == 6
    assert server.max_concurrency == 2
    assert result.exit_code in (0, 1)  # generated (validation may warn), never failed


# --- 3. capabilities learned ---------------------------------------------------------------------


def _with_figure(procedure_id: str) -> Procedure:
    procedure = sample_procedure(procedure_id)
    figure = Figure(
        id="b9",
        prov=Provenance(file="billing/refunds.md", heading_path=["Issue a refund"]),
        caption="Refund flowchart",
        image={"sha256": "ab" * 32, "mime": "image/png"},
    )
    return procedure.model_copy(
        update={"blocks": [*procedure.blocks, figure], "images": {"ab" * 32: PNG}}
    )


def test_a_server_without_vision_turns_images_off_for_the_run_with_one_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LLMServer(text_only=True) as server:
        backend = OpenAIBackend(
            Settings(base_url=server.base_url, model="test-model", cache=False, max_retries=3)
        )
        first, second = generate(backend, _with_figure("p1"), _with_figure("p2"))
        requests = server.chat_requests

    # one rejected request with the image, then every request without images; never retried
    assert len(requests) == 3
    assert "image_url" in json.dumps(requests[0].body)
    assert all("image_url" not in json.dumps(r.body) for r in requests[1:])
    for result in (first, second):
        assert result.error is None and result.draft is not None
        unread = [issue for issue in result.issues if issue.code == "figure_unread"]
        assert [issue.message.split("]")[0] for issue in unread] == ["figure [b9"]
    [note] = backend.run_notes()
    assert "500" in note and "image input is not supported" in note and "vision = false" in note


def test_requests_carry_max_tokens_sized_to_the_procedure_or_the_setting(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    generate(make_backend(), sample_procedure("small", steps=3))
    generate(make_backend(), sample_procedure("large", steps=120))
    generate(make_backend(max_tokens=700), sample_procedure("set"))
    small, large, given = (r.body["max_tokens"] for r in server.chat_requests)

    assert 4096 <= small < large <= 32768 and given == 700


def test_api_openai_com_gets_max_completion_tokens_only_when_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    cloud = OpenAIBackend(Settings())
    assert not cloud.default_max_tokens and not cloud.streams and not cloud.local
    assert cloud._max_tokens(sample_procedure()) is None
    assert OpenAIBackend(Settings(max_tokens=900))._max_tokens(sample_procedure()) == 900
    assert cloud._tokens_field == "max_completion_tokens"


# --- 4. a dead endpoint, a 404, a model the server does not list ---------------------------------


def _cases(tmp_path: Path, count: int = 4) -> Path:
    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    text = "".join(f"## Case {n}\n\n1. Ask for the order number.\n\n" for n in range(count))
    (sops / "billing/cases.md").write_text(f"# Cases\n\n{text}")
    return sops


def test_a_dead_endpoint_stops_generation_once_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    sops = _cases(tmp_path)
    with LLMServer() as gone:
        url = gone.base_url
    args = ["compile", str(sops), "-o", str(tmp_path / "out"), "--base-url", url]
    result = CliRunner().invoke(app, [*args, "--model", "test-model", "--no-cache"])

    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach 127.0.0.1:" in errors[0]
    assert "ConnectError" in errors[0]
    assert "sopc doctor" in result.stderr  # the hint


def test_a_server_that_dies_mid_run_stops_after_its_retries(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    backend = make_backend(max_retries=1)
    [first] = generate(backend, sample_procedure("p1"))
    server.close()  # the server answered once, then went away
    [second] = generate(backend, sample_procedure("p2"))
    [third] = generate(backend, sample_procedure("p3"))

    assert first.error is None
    assert second.error is not None and "connection to 127.0.0.1:" in second.error
    assert "gave up after 2 attempts" in second.error
    assert backend.fatal_error is not None and third.error == second.error  # no more tries


def test_a_404_for_a_model_the_server_lists_blames_the_path(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(error(404, "File Not Found", type_="not_found_error"))
    [result] = generate(make_backend(), sample_procedure())

    assert result.error is not None
    assert (
        "404 Not Found from 127.0.0.1:" in result.error and "/v1/chat/completions" in result.error
    )
    assert "path is wrong" in result.error and "model 'test-model'" in result.error


def test_a_404_for_a_model_the_server_does_not_list_blames_the_model(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.queue(error(404, "File Not Found", type_="not_found_error"))
    [result] = generate(make_backend(model="typo-model"), sample_procedure())

    assert result.error is not None
    assert "model 'typo-model' not found on 127.0.0.1:" in result.error
    assert "(it lists: test-model)" in result.error and "check --model" in result.error


def test_a_model_the_server_does_not_list_is_a_warning_at_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    sops = _cases(tmp_path, count=1)
    with LLMServer() as server:
        settings = load_settings(
            sops,
            overrides={
                "output": tmp_path / "out",
                "backend": "openai",
                "base_url": server.base_url,
                "model": "gemma-typo",
                "cache": False,
            },
        )
        result = compile_folder(sops, settings=settings)
        requests = list(server.requests)

    # asked before generating (beside GET /props: the two probes run at once, in either order)
    before = requests[: next(n for n, r in enumerate(requests) if r.method == "POST")]
    assert any(r.method == "GET" and r.path.endswith("/models") for r in before)
    [note] = [n for n in result.notes if "does not list" in n]
    assert "model 'gemma-typo'" in note and "test-model" in note


# --- 5. repairs only when they can work ----------------------------------------------------------


def test_answers_without_the_required_fields_stop_repairs_with_the_hint(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    server.responder = lambda body: completion({"routine": "Refund the customer."})
    [result] = generate(
        make_backend(repair_attempts=5, structured_output="json_object"), sample_procedure()
    )

    assert len(server.chat_requests) == 2  # not 6
    assert result.error is not None and "repairs stopped: 2 answers in a row" in result.error
    assert "title: Field required" in result.error
    assert 'structured_output = "json_schema"' in result.error and "bigger model" in result.error


def test_routines_of_no_steps_stop_repairs_with_the_hint(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    empty = {**good(), "steps": []}
    server.responder = lambda body: completion(empty)
    [result] = generate(make_backend(repair_attempts=5), sample_procedure(), full_check=True)

    assert len(server.chat_requests) == 2
    assert result.error is not None and "repairs stopped" in result.error
    assert "bigger model" in result.error


def test_a_repairable_answer_is_still_repaired(
    server: LLMServer, make_backend: Callable[..., OpenAIBackend]
) -> None:
    wrong = good()
    wrong["steps"][0]["source"]["block_ids"] = ["b99"]
    server.queue(completion(wrong), completion(wrong), completion(good()))
    [result] = generate(make_backend(repair_attempts=3), sample_procedure())

    assert result.error is None and len(server.chat_requests) == 3


def test_sopc_toml_takes_the_new_settings(tmp_path: Path) -> None:
    (tmp_path / "sopc.toml").write_text(
        "idle_timeout = 5\nstream = false\nlocal = true\nmax_tokens = 2048\n"
    )
    settings = load_settings(tmp_path, environ={"SOPC_IDLE_TIMEOUT": "7"})

    assert (settings.idle_timeout, settings.stream, settings.local) == (7.0, False, True)
    assert settings.max_tokens == 2048


def test_an_ollama_model_is_listed_with_its_latest_tag() -> None:
    from sop_compiler.generate.probe import is_listed, server_root

    assert is_listed("llama3.1", ["llama3.1:latest", "qwen2.5:7b"])
    assert not is_listed("llama3", ["llama3.1:latest"])
    assert server_root("http://127.0.0.1:8080/v1/?key=x") == "http://127.0.0.1:8080"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_tokens_received_show_in_the_progress_line_on_a_terminal_only(
    terminal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sop_compiler.render.run import progress

    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    with progress(2, fmt="text", tokens=lambda: 1234) as show:
        show("generated billing/refunds")
    shown = stream.getvalue()

    assert "generated billing/refunds" in shown
    assert ("1,234 tokens received" in shown) is terminal
