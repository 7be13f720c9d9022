"""Removal is provenance-checked: sopc deletes only files it wrote, unchanged (issue 17).

A hand-edited or merged `sopc.lock` may list any path as an output; the next compile must remove
only files whose bytes still hash to what the lock recorded, never the implementation module,
and say in one line what it kept.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typer.testing import CliRunner

from sop_compiler.cli import app

REPO = Path(__file__).resolve().parents[1]
GOOD = """# Refunds

## Issue a refund

1. Ask the customer for the order number.
2. Look up the order with `lookup_order`.
3. Otherwise, issue the refund with `issue_refund`.
"""


def _compile(sops: Path, out: Path) -> str:
    result = CliRunner().invoke(app, ["compile", str(sops), "-o", str(out), "--backend", "offline"])
    assert result.exit_code == 0, result.stdout
    return result.stdout


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    sops, out = tmp_path / "sops", tmp_path / "out"
    (sops / "billing").mkdir(parents=True)
    (sops / "billing" / "refunds.md").write_text(GOOD)
    (sops / "tools.yaml").write_bytes((REPO / "sample_sops" / "tools.yaml").read_bytes())
    _compile(sops, out)
    return sops, out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_lock_listing_user_files_deletes_none_of_them(tmp_path: Path) -> None:
    sops, out = _setup(tmp_path)
    impl = out / "agent_network" / "tool_impl.py"
    impl.write_text("def issue_refund(): ...\n")
    notes = out / "NOTES.md"
    notes.write_text("my notes\n")
    lock = json.loads((out / "sopc.lock").read_text())
    # even with the right hashes recorded, the implementation module is never removed
    lock["shared"]["agent_network/tool_impl.py"] = _sha(impl.read_bytes())
    lock["shared"]["NOTES.md"] = "0" * 64  # a user file: its hash does not match
    entry = next(iter(lock["sops"].values()))
    made_up = dict(next(iter(entry["procedures"].values())))
    made_up["outputs"] = {"NOTES.md": "1" * 64}
    entry["procedures"]["made-up"] = made_up
    (out / "sopc.lock").write_text(json.dumps(lock))
    shown = _compile(sops, out)
    assert impl.read_text() == "def issue_refund(): ...\n"
    assert notes.read_text() == "my notes\n"
    assert "kept 2 file(s)" in shown and "NOTES.md" in shown and "tool_impl.py" in shown
    # the benign neighbour: a routine sopc wrote, unchanged, is still removed when its SOP goes
    routines = sorted((out / "routines").rglob("*.md"))
    assert routines
    (sops / "billing" / "refunds.md").unlink()
    (sops / "billing" / "other.md").write_text(GOOD.replace("Refunds", "Returns"))
    shown = _compile(sops, out)
    assert not any(p.exists() for p in routines)
    assert "kept" not in shown


def test_an_edited_output_of_a_deleted_sop_is_kept(tmp_path: Path) -> None:
    sops, out = _setup(tmp_path)
    routine = sorted((out / "routines").rglob("*.md"))[0]
    routine.write_text(routine.read_text() + "\nmy own change\n")
    (sops / "billing" / "refunds.md").unlink()
    (sops / "billing" / "other.md").write_text(GOOD.replace("Refunds", "Returns"))
    shown = _compile(sops, out)
    assert routine.read_text().endswith("my own change\n")
    assert "kept 1 file(s)" in shown


def test_a_killed_runs_temp_files_are_removed_and_nothing_else(tmp_path: Path) -> None:
    sops, out = _setup(tmp_path)
    folder = sorted((out / "routines").rglob("*.md"))[0].parent
    stale = [folder / ".refund.md.ab12_x9z.tmp", out / ".sopc.lock.q1w2e3r4.tmp"]
    for path in stale:
        path.write_bytes(b"")
    keep = [folder / "notes.tmp", folder / ".hidden.tmp", out / ".refund.md.TOO-LONG-x.tmp"]
    for path in keep:
        path.write_text("mine\n")
    (sops / "billing" / "refunds.md").write_text(GOOD + "4. Thank the customer.\n")
    _compile(sops, out)
    assert not any(path.exists() for path in stale)
    assert all(path.read_text() == "mine\n" for path in keep)


def test_the_sop_folder_as_output_is_refused_and_a_sub_folder_is_passed_over(
    tmp_path: Path,
) -> None:
    sops, _ = _setup(tmp_path)
    refused = CliRunner().invoke(
        app, ["compile", str(sops), "-o", str(sops), "--backend", "offline"]
    )
    assert refused.exit_code == 2
    assert "the output folder is the SOP folder" in refused.output
    assert not (sops / "sopc.lock").exists()
    inner = sops / "out"
    for _ in range(2):  # the second run must not read the first run's outputs as SOPs
        shown = _compile(sops, inner)
    lock = json.loads((inner / "sopc.lock").read_text())
    assert sorted(lock["sops"]) == ["billing/refunds.md"], shown
