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


def test_schema_command_prints_the_routine_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "Routine"
    assert "steps" in schema["properties"]


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


def test_golden_update_flag_is_off_in_ci() -> None:
    """Golden files regenerate with SOPC_UPDATE_GOLDEN=1; left on in CI it hides regressions."""
    if os.environ.get("CI"):
        assert not os.environ.get("SOPC_UPDATE_GOLDEN")
