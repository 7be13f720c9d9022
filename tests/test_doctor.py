"""`sopc doctor` against the local test server, over real HTTP through the openai client."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply, completion, error
from typer.testing import CliRunner

from sop_compiler.cli import app

pytestmark = pytest.mark.timeout(60)


def llama_like(*, schema: bool, vision: bool) -> Callable[[dict[str, Any]], Reply | dict[str, Any]]:
    """A server that enforces json_schema (or ignores it) and takes images (or answers 500)."""

    def respond(body: dict[str, Any]) -> Reply | dict[str, Any]:
        text = json.dumps(body["messages"])
        kind = (body.get("response_format") or {}).get("type")
        if "image_url" in text and not vision:
            return error(500, "image input is not supported", type_="server_error")
        if kind == "json_schema" and schema:
            return completion('{"ok": true}')
        if "JSON" in text:
            return completion('{"ok": true}')
        return completion("Yes, it is.")  # prose: a schema it ignored

    return respond


def doctor(tmp_path: Path, server: LLMServer, *extra: str) -> Any:
    args = ["doctor", str(tmp_path), "--base-url", server.base_url, "--model", "test-model"]
    return CliRunner().invoke(app, [*args, *extra])


def test_doctor_reports_modes_vision_slots_and_prints_toml_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LLMServer(responder=llama_like(schema=False, vision=False), slots=2) as server:
        result = doctor(tmp_path, server)
        paths = [(r.method, r.path) for r in server.requests]

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "reachable    yes (a local server)" in out and "model        listed" in out
    assert "slots        2 (GET /props)" in out
    assert "json_schema  fails" in out and "json_object  works" in out
    assert "vision       fails: 500 image input is not supported" in out
    assert "stream       works" in out
    toml = out.split("# sopc.toml\n", 1)[1].splitlines()
    assert toml == [
        f'base_url = "{server.base_url}"',
        'model = "test-model"',
        'structured_output = "json_object"',
        "vision = false",
        "jobs = 2",
    ]
    assert ("GET", "/v1/models") in paths and ("GET", "/props") in paths


def test_doctor_json_for_a_capable_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LLMServer(responder=llama_like(schema=True, vision=True)) as server:
        result = doctor(tmp_path, server, "--format", "json")

    report = json.loads(result.stdout)
    assert result.exit_code == 0
    assert [m["name"] for m in report["modes"] if m["ok"]] == ["json_schema", "json_object", "text"]
    assert report["vision"]["ok"] is True and report["slots"] is None
    assert report["model_listed"] is True and report["round_trip_seconds"] >= 0


def test_doctor_warns_of_a_model_the_server_does_not_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LLMServer(responder=llama_like(schema=True, vision=True)) as server:
        args = ["doctor", str(tmp_path), "--base-url", server.base_url, "--model", "typo"]
        result = CliRunner().invoke(app, args)

    assert "model        NOT listed (the server lists: test-model)" in result.stdout


def test_doctor_on_a_dead_endpoint_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LLMServer() as gone:
        url = gone.base_url
    result = CliRunner().invoke(app, ["doctor", str(tmp_path), "--base-url", url])

    assert result.exit_code == 2
    assert "reachable    no: cannot reach 127.0.0.1:" in result.stdout
    assert "ConnectError" in result.stdout and "# sopc.toml" not in result.stdout


def test_doctor_without_an_endpoint_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = CliRunner().invoke(app, ["doctor", str(tmp_path)])

    assert result.exit_code == 2 and "no API key" in result.stderr
