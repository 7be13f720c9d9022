"""`sopc check` / `compile --check`: staleness from hashes; writes nothing, calls no model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sop_compiler.cli import app
from sop_compiler.config import load_settings
from sop_compiler.models import RunResult
from sop_compiler.pipeline import compile_folder

REFUNDS = """# Refunds

## Issue a refund

1. Ask the customer for the order number.
2. Look up the order with `lookup_order`.
3. If the order is older than 30 days, escalate to the billing team.
4. Otherwise, issue the refund with `issue_refund`.
"""

LOST = """# Lost parcel

## Report a lost parcel

1. Ask for the tracking number.
2. Track the shipment with `track_shipment`.
3. If the parcel is marked delivered, escalate to the shipping team.
"""


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path]:
    """A folder of SOPs compiled with the offline backend."""
    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "shipping").mkdir()
    (sops / "billing/refunds.md").write_text(REFUNDS)
    (sops / "shipping/lost.md").write_text(LOST)
    out = tmp_path / "out"
    result = compile_folder(sops, settings=_settings(sops, out))
    assert result.exit_code in (0, 1), result
    return sops, out


def _settings(sops: Path, out: Path, **extra: object):  # type: ignore[no-untyped-def]
    return load_settings(sops, overrides={"output": out, "backend": "offline", **extra})


def _check(sops: Path, out: Path, **extra: object) -> RunResult:
    return compile_folder(sops, settings=_settings(sops, out, **extra), check=True)


def _snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(out).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if p.is_file()
    }


def _routine_file(out: Path, source: str, suffix: str) -> str:
    lock = json.loads((out / "sopc.lock").read_text())
    (proc,) = lock["sops"][source]["procedures"].values()
    return next(rel for rel in proc["outputs"] if rel.endswith(suffix))


def test_current_outputs_pass(built: tuple[Path, Path]) -> None:
    sops, out = built
    result = _check(sops, out)
    assert result.stale == []
    assert result.command == "check"
    assert result.exit_code in (0, 1)  # 1 only if the routines carry validation errors
    if result.exit_code == 1:
        assert any(
            i.severity == "error" for s in result.sops for p in s.procedures for i in p.issues
        )


def test_check_writes_nothing(built: tuple[Path, Path]) -> None:
    sops, out = built
    (out / ".sopc-run.lock").unlink(missing_ok=True)
    (sops / "billing/refunds.md").write_text(REFUNDS.replace("30 days", "45 days"))
    before = _snapshot(out)
    _check(sops, out)
    assert _snapshot(out) == before


def test_hand_edited_routine_is_named(built: tuple[Path, Path]) -> None:
    sops, out = built
    rel = _routine_file(out, "billing/refunds.md", ".md")
    with (out / rel).open("a") as handle:
        handle.write("\nAlways refund everything.\n")
    result = _check(sops, out)
    assert result.exit_code == 1
    assert [(e.reason, e.path) for e in result.stale] == [("edited", rel)]


def test_deleted_output_is_missing(built: tuple[Path, Path]) -> None:
    sops, out = built
    rel = _routine_file(out, "shipping/lost.md", ".json")
    (out / rel).unlink()
    result = _check(sops, out)
    assert result.exit_code == 1
    assert ("missing", rel) in [(e.reason, e.path) for e in result.stale]


def test_edited_sop_is_stale(built: tuple[Path, Path]) -> None:
    sops, out = built
    (sops / "billing/refunds.md").write_text(REFUNDS.replace("30 days", "45 days"))
    result = _check(sops, out)
    assert result.exit_code == 1
    (entry,) = result.stale
    assert (entry.reason, entry.path, entry.where) == ("stale", "billing/refunds.md", "sops")
    assert "SOP text changed" in entry.detail


def test_whitespace_only_edit_is_not_stale(built: tuple[Path, Path]) -> None:
    sops, out = built
    (sops / "billing/refunds.md").write_text(REFUNDS + "\n\n\n")
    assert _check(sops, out).stale == []


def test_new_sop_is_reported(built: tuple[Path, Path]) -> None:
    sops, out = built
    (sops / "shipping/damaged.md").write_text(
        LOST.replace("Lost", "Damaged").replace("lost", "damaged")
    )
    result = _check(sops, out)
    assert [(e.reason, e.path) for e in result.stale] == [("new", "shipping/damaged.md")]


def test_deleted_sop_and_stray_files_are_orphaned(built: tuple[Path, Path]) -> None:
    sops, out = built
    (sops / "shipping/lost.md").unlink()
    (out / "routines/billing/notes.md").write_text("a file sopc did not write\n")
    result = _check(sops, out)
    found = {(e.reason, e.path) for e in result.stale}
    assert ("orphaned", "shipping/lost.md") in found
    assert ("orphaned", "routines/billing/notes.md") in found
    assert result.exit_code == 1


def test_catalog_change_is_stale(built: tuple[Path, Path]) -> None:
    sops, out = built
    shutil.copy(Path(__file__).resolve().parents[1] / "sample_sops/tools.yaml", sops / "tools.yaml")
    result = _check(sops, out)
    assert result.exit_code == 1
    assert all("tool catalog changed" in e.detail for e in result.stale if e.reason == "stale")
    assert {e.path for e in result.stale} >= {"billing/refunds.md", "shipping/lost.md"}


def test_check_needs_no_key_for_the_openai_backend(built: tuple[Path, Path]) -> None:
    sops, out = built
    result = _check(sops, out, backend="openai")  # no OPENAI_API_KEY in tests
    assert result.backend == "openai"
    assert result.exit_code == 1
    assert all("backend changed (offline -> openai)" in e.detail for e in result.stale)


def test_auto_backend_checks_against_the_recorded_one(built: tuple[Path, Path]) -> None:
    sops, out = built
    result = compile_folder(
        sops, settings=load_settings(sops, overrides={"output": out}), check=True
    )
    assert result.backend == "offline" and result.stale == []


def test_cli_check_exit_codes_and_json(built: tuple[Path, Path]) -> None:
    sops, out = built
    runner = CliRunner()
    ok = runner.invoke(app, ["check", str(sops), "-o", str(out), "--format", "json"])
    data = json.loads(ok.stdout)
    assert data["command"] == "check" and data["stale"] == []
    assert ok.exit_code == data["exit_code"]
    (out / _routine_file(out, "billing/refunds.md", ".md")).write_text("edited\n")
    bad = runner.invoke(app, ["compile", str(sops), "-o", str(out), "--check"])
    assert bad.exit_code == 1
    assert "edited" in bad.stdout and "refunds" in bad.stdout


def test_cli_config_error_exits_2(built: tuple[Path, Path]) -> None:
    sops, out = built
    (sops / "tools.yaml").write_text("tools: [ {name: 'Bad Name'} ]\n")
    result = CliRunner().invoke(app, ["check", str(sops), "-o", str(out)])
    assert result.exit_code == 2
