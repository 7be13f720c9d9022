"""The emitted network is imported in a fresh Python before a run reports success (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sop_compiler.cli import app

pytestmark = pytest.mark.timeout(120)

SOP = "# Refunds\n\n## Issue a refund\n\n1. Ask the customer for the order number.\n"


def _compile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str = "") -> tuple[int, str]:
    monkeypatch.delenv(
        "SOPC_CHECK_IMPORT", raising=False
    )  # conftest turns the check off for other tests
    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True, exist_ok=True)
    (sops / "billing" / "a.md").write_text(SOP)
    (sops / "sopc.toml").write_text(toml)
    args = ["compile", str(sops), "-o", str(tmp_path / "out"), "--backend", "offline"]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout + result.stderr


def test_a_network_that_does_not_import_fails_the_run_and_stays_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guardrails module that does not exist compiles, but the network cannot start."""
    code, shown = _compile(tmp_path, monkeypatch, '[network]\nguardrails = "no_such_guardrails"\n')
    assert code == 1, shown
    (line,) = [line for line in shown.splitlines() if "does not import" in line]
    assert line.startswith("error: agent_network/triage.py, line "), line
    assert "ModuleNotFoundError: No module named 'no_such_guardrails'" in line
    assert "Traceback" not in shown
    out = tmp_path / "out"
    assert (out / "agent_network/triage.py").is_file()  # kept for review
    assert list((out / "routines").rglob("*.json"))


def test_a_network_that_imports_passes_and_a_no_op_run_does_not_import_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, shown = _compile(tmp_path, monkeypatch)
    assert code == 0, shown
    assert "does not import" not in shown
    # the no-op fast path writes nothing, so it imports nothing: the module is not a problem
    calls: list[object] = []
    monkeypatch.setattr("subprocess.run", lambda *a, **k: calls.append(a))
    code, shown = _compile(tmp_path, monkeypatch)
    assert code == 0, shown
    assert calls == []


def test_the_check_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = 'check_import = false\n[network]\nguardrails = "no_such_guardrails"\n'
    code, shown = _compile(tmp_path, monkeypatch, toml)
    assert code == 0, shown
