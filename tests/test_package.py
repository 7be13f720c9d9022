"""The package surface: cheap import, CLI help, config precedence, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sop_compiler.cli import app
from sop_compiler.config import load_settings
from sop_compiler.errors import ConfigError, ExitCode

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_import_is_cheap() -> None:
    """`import sop_compiler` must not load pymupdf, python-docx or openai (--help stays fast)."""
    code = (
        "import sys, sop_compiler, sop_compiler.cli\n"
        "heavy = {'fitz', 'pymupdf', 'docx', 'openai', 'agents', 'jinja2'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_explains_itself() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("compile", "check", "inspect", "diff", "schema"):
        assert command in result.output
    compile_help = runner.invoke(app, ["compile", "--help"])
    assert "Example: sopc compile" in compile_help.output


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sop_compiler", "--help"], capture_output=True, text=True, check=True
    )
    assert "compile" in out.stdout


def test_schema_command_prints_the_schema_the_backend_sends() -> None:
    """`sopc schema` is the strict schema of the json_schema response format, not Routine's."""
    from sop_compiler.generate.llm import ChatRequest
    from sop_compiler.generate.prompts import routine_schema

    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    sent = ChatRequest(model="m", messages=()).payload()["response_format"]["json_schema"]
    assert schema == sent["schema"] == routine_schema()
    assert "steps" in schema["properties"]
    assert not {"id", "agent", "source"} & set(schema["properties"])  # sopc fills those in
    objects = [schema, *schema["$defs"].values()]
    for node in objects:  # strict mode: closed objects, every property required
        if node.get("type") == "object":
            assert node["additionalProperties"] is False
            assert sorted(node["required"]) == sorted(node["properties"])


def test_render_modules_do_not_import_emit() -> None:
    """Layering: render (terminal output) and emit (files) share escaping via a neutral module."""
    import ast

    render = REPO / "sop_compiler" / "render"
    for path in sorted(render.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                names = [module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith("sop_compiler.emit"), f"{path.name} imports {name}"


def test_unexpected_error_is_one_line_unless_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug or an environment sopc did not foresee: `internal error: ...`, exit 1, no traceback;
    `--debug` re-raises it for the traceback."""
    import sop_compiler.pipeline

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\non two lines")

    monkeypatch.setattr(sop_compiler.pipeline, "compile_folder", broken)
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.strip() == (
        "internal error: RuntimeError: boom on two lines (run with --debug for the traceback)"
    )
    debug = runner.invoke(app, ["--debug", "check", str(tmp_path)])
    assert isinstance(debug.exception, RuntimeError)


def test_step_summary_that_is_a_folder_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`GITHUB_STEP_SUMMARY=<a folder> sopc check --format github` used to end in a traceback."""
    sops = tmp_path / "sops"
    sops.mkdir()
    (sops / "refunds.md").write_text(
        "# Refunds\n\n## Issue a refund\n\n1. Ask for the order number.\n2. Close the case.\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))
    args = ["check", str(sops), "-o", str(tmp_path / "out"), "--format", "github"]
    result = runner.invoke(app, args)
    assert result.exit_code == ExitCode.OUTPUT, result.output
    assert "Traceback" not in result.output
    assert f"error: {tmp_path}: cannot append the run summary to $GITHUB_STEP_SUMMARY" in (
        result.stderr
    )
    assert "::error file=" in result.stdout  # the annotations were still printed


def test_missing_file_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tmp_path / "nope.pdf")])
    assert result.exit_code == ExitCode.INPUT
    assert "Traceback" not in result.output
    assert "nope.pdf" in result.output
    assert "no such file" in result.output


def test_settings_precedence(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.sopc]\nmodel = "from-pyproject"\njobs = 2\n')
    assert load_settings(tmp_path, environ={}).model == "from-pyproject"
    (tmp_path / "sopc.toml").write_text('model = "from-sopc-toml"\n')
    settings = load_settings(tmp_path, environ={"SOPC_JOBS": "7"})
    assert (settings.model, settings.jobs) == ("from-sopc-toml", 7)
    override = load_settings(tmp_path, environ={"SOPC_MODEL": "env"}, overrides={"model": "cli"})
    assert override.model == "cli"


def test_invalid_setting_names_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "sopc.toml").write_text("jobs = 0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, environ={})
    assert "sopc.toml" in str(info.value) and "jobs" in str(info.value)
    (tmp_path / "sopc.toml").write_text("nonsense = 1\n")
    with pytest.raises(ConfigError, match="nonsense"):
        load_settings(tmp_path, environ={})


def test_golden_update_flag_is_off() -> None:
    """Golden files regenerate with SOPC_UPDATE_GOLDEN=1; left on, golden tests cannot fail."""
    assert "SOPC_UPDATE_GOLDEN" not in os.environ, (
        "SOPC_UPDATE_GOLDEN is set: the golden files were rewritten instead of compared. "
        "Review the regenerated files (git diff tests/data), then unset SOPC_UPDATE_GOLDEN "
        "and run the tests again."
    )


def test_tests_cannot_reach_the_network() -> None:
    """The conftest guard: only loopback connects; other hosts fail as connection errors."""
    import socket
    import threading

    with pytest.raises(ConnectionRefusedError, match=r"203\.0\.113\.7:443"):
        socket.create_connection(("203.0.113.7", 443), timeout=1)
    with pytest.raises(socket.gaierror, match=r"api\.openai\.com"):
        socket.getaddrinfo("api.openai.com", 443)
    with socket.socket(socket.AF_INET6) as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("2001:db8::1", 443))

    import openai

    client = openai.OpenAI(api_key="sk-test", max_retries=0, timeout=5)
    with pytest.raises(openai.APIConnectionError):
        client.models.list()

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        accepted = threading.Thread(target=lambda: server.accept()[0].close())
        accepted.start()
        socket.create_connection(("localhost", port), timeout=5).close()
        accepted.join(timeout=5)
