"""The Backend hooks the pipeline relies on (`prepare`, `fatal_error`), and how a run that a
backend stopped (bad key, unknown model, no quota) is reported in every output format."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from llm_server import LLMServer, error
from test_pipeline import StubBackend, make_sops, settings_for
from typer.testing import CliRunner

from sop_compiler.cli import app
from sop_compiler.config import Settings
from sop_compiler.errors import GenerationError
from sop_compiler.generate.base import GenerationContext, GenerationResult
from sop_compiler.generate.llm import ChatMessage, ChatRequest
from sop_compiler.generate.openai import OpenAIBackend
from sop_compiler.models import Issue, Procedure, RoutineDraft, RunResult
from sop_compiler.pipeline import compile_folder
from sop_compiler.render.run import markdown_summary, render_run, stop_note


class RefusingBackend(StubBackend):
    """Not an LLM backend and not named openai: refuses every call after the first answer."""

    name = "refusing"

    def __init__(self, *, prepare_error: Exception | None = None) -> None:
        super().__init__()
        self.prepared_in: list[str] = []
        self.prepare_error = prepare_error
        self.refuse = False

    def prepare(self) -> None:
        self.prepared_in.append(threading.current_thread().name)
        if self.prepare_error is not None:
            raise self.prepare_error

    async def generate(
        self,
        procedure: Procedure,
        *,
        context: GenerationContext,
        validate: Callable[[RoutineDraft], list[Issue]],
    ) -> GenerationResult:
        if self.refuse:
            self.fatal_error = GenerationError("no quota left", hint="top up the account")
            self.calls.append(procedure.id)
            return GenerationResult(procedure_id=procedure.id, error=self.fatal_error.message)
        return await super().generate(procedure, context=context, validate=validate)


def test_backend_defaults_are_no_fatal_error_and_a_no_op_prepare() -> None:
    backend = StubBackend()
    assert backend.fatal_error is None
    backend.prepare()  # does nothing, raises nothing


def test_pipeline_prepares_any_backend_off_the_event_loop(tmp_path: Path) -> None:
    sops, out = make_sops(tmp_path), tmp_path / "out"
    backend = RefusingBackend()
    result = compile_folder(sops, settings=settings_for(sops, out), backend=backend)
    assert result.exit_code == 0
    assert len(backend.prepared_in) == 1
    assert backend.prepared_in[0] != threading.main_thread().name


def test_a_failing_prepare_does_not_stop_the_run(tmp_path: Path) -> None:
    sops, out = make_sops(tmp_path), tmp_path / "out"
    backend = RefusingBackend(prepare_error=RuntimeError("no client today"))
    result = compile_folder(sops, settings=settings_for(sops, out), backend=backend)
    assert result.exit_code == 0 and len(backend.calls) == 4


def test_fatal_error_of_any_backend_stops_the_run_with_exit_2(tmp_path: Path) -> None:
    sops, out = make_sops(tmp_path), tmp_path / "out"
    backend = RefusingBackend()
    backend.refuse = True
    settings = settings_for(sops, out, jobs=1)
    result = compile_folder(sops, settings=settings, backend=backend)
    assert result.exit_code == 2
    assert len(backend.calls) == 1  # nothing is called once the backend refused
    assert result.notes == [stop_note("no quota left", "top up the account")]
    assert {p.status for s in result.sops for p in s.procedures} == {"would_generate"}


def test_openai_prepare_builds_the_client_the_requests_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    with LLMServer() as server:
        backend = OpenAIBackend(Settings(base_url=server.base_url, cache=False, model="m"))
        worker = threading.Thread(target=backend.prepare)
        worker.start()
        worker.join()
        client = backend._client
        assert client is not None  # built before the first request
        request = ChatRequest(
            model="m", messages=(ChatMessage("user", "hi"),), response_format="text"
        )

        async def ask() -> str | None:
            try:
                return (await backend.complete(request)).content
            finally:
                await backend.aclose()

        assert asyncio.run(ask()) is not None  # a client built in a thread serves the loop
    assert len(server.chat_requests) == 1


def _stopped_result() -> RunResult:
    note = stop_note("401 Unauthorized from 127.0.0.1:9: check OPENAI_API_KEY")
    return RunResult(
        command="compile", backend="openai", exit_code=2, notes=["billing: skipped", note]
    )


def test_text_prints_a_stop_as_error_and_hint_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    render_run(_stopped_result(), fmt="text")
    out, err = capsys.readouterr()
    assert "note: billing: skipped" in out
    assert "401" not in out  # not a note
    lines = err.splitlines()
    error = "error: generation stopped: 401 Unauthorized from 127.0.0.1:9: check OPENAI_API_KEY"
    assert error in lines
    hint = lines[lines.index(error) + 1]
    assert hint.startswith("hint: ") and "routines written so far are kept" in hint


def test_json_and_github_carry_the_stop(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    render_run(_stopped_result(), fmt="json")
    data = json.loads(capsys.readouterr().out)
    assert any(note.startswith("generation stopped: 401 Unauthorized") for note in data["notes"])
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    render_run(_stopped_result(), fmt="github")
    (annotation,) = [line for line in capsys.readouterr().out.splitlines() if "::" in line]
    assert annotation.startswith(
        "::error title=sopc%3A generation stopped::generation stopped: 401"
    )
    assert "%0Ahint: " in annotation
    summary = markdown_summary(_stopped_result())
    assert "**error:** generation stopped: 401 Unauthorized" in summary


def test_cli_text_run_refused_by_the_server_shows_error_and_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sops, out = make_sops(tmp_path), tmp_path / "out"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    with LLMServer() as server:
        for _ in range(8):
            server.queue(error(401, "Incorrect API key provided.", code="invalid_api_key"))
        args = ["compile", str(sops), "-o", str(out), "--backend", "openai", "--jobs", "1"]
        args += ["--base-url", server.base_url, "--model", "m", "--no-cache"]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "error: generation stopped: 401 Unauthorized" in result.stderr
    assert "hint: " in result.stderr
    assert "note: generation stopped" not in result.stdout
