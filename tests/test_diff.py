"""`sopc diff`: a structural diff of two routine sets, as Markdown for a PR comment or JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sop_compiler.cli import app
from sop_compiler.diff import diff_outputs
from sop_compiler.render.diff import diff_markdown

DATA = Path(__file__).resolve().parent / "data" / "diff"
UPDATE = os.environ.get("SOPC_UPDATE_GOLDEN") == "1"


def _golden(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_markdown_golden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA / "basic")
    diff = diff_outputs("old", "new")
    _golden(DATA / "basic" / "expected.md", diff_markdown(diff))


def test_structure_of_the_diff() -> None:
    diff = diff_outputs(str(DATA / "basic/old"), str(DATA / "basic/new"))
    assert [r.id for r in diff.added] == ["lost--report-damage"]
    assert [r.id for r in diff.removed] == ["invoices--correct-an-invoice"]
    assert diff.unchanged == 1
    (change,) = diff.changed
    kinds = [(c.change, c.old_id, c.new_id) for c in change.steps]
    assert ("reworded", "3", "4") in kinds
    assert ("added", None, "3") in kinds and ("added", None, "7") in kinds
    assert ("moved", "4", "5") in kinds
    # the branch changed its test, not its targets: renumbering alone is never a branch change
    (branch,) = [c for c in change.steps if c.change == "branch"]
    assert "30 days" in (branch.before or "") and "60 days" in (branch.after or "")
    assert change.tools_added == ["notify_finance"] and change.tools_removed == []
    assert [i.code for i in change.issues_new] == ["proposed_tool"]
    assert [i.code for i in change.issues_fixed] == ["write_without_approval"]


def test_same_folder_has_no_changes() -> None:
    diff = diff_outputs(str(DATA / "basic/new"), str(DATA / "basic/new"))
    assert not (diff.added or diff.removed or diff.changed)
    assert "No routine changes (3 routines unchanged)." in diff_markdown(diff)


def test_json_format() -> None:
    result = CliRunner().invoke(
        app, ["diff", str(DATA / "basic/old"), str(DATA / "basic/new"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["added"][0]["id"] == "lost--report-damage"
    assert data["changed"][0]["tools_added"] == ["notify_finance"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_two_git_revisions(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    out = repo / "generated_routines"
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)

    repo.mkdir()
    git("init", "-q")
    for side in ("old", "new"):
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(DATA / "basic" / side, out)
        git("add", "-A")
        git("commit", "-q", "-m", side)
    result = CliRunner().invoke(app, ["diff", "HEAD~1", "HEAD", "-o", str(out)])
    assert result.exit_code == 0, result.output
    expected = (DATA / "basic" / "expected.md").read_text()
    # same diff as between the folders; only the headline names differ
    assert result.stdout.split("\n", 1)[1] == expected.split("\n", 1)[1]
    assert result.stdout.startswith("## Routine changes: `HEAD~1` → `HEAD`")


def test_unknown_revision_is_a_clear_error(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    out = tmp_path / "generated_routines"
    out.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    result = CliRunner().invoke(app, ["diff", "nope", "HEAD", "-o", str(out)])
    assert result.exit_code == 2
    assert "git ls-tree failed" in result.output


def _edit_json(path: Path, edit: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def test_routines_from_a_newer_schema_are_read_leniently(tmp_path: Path) -> None:
    new = tmp_path / "new"
    shutil.copytree(DATA / "basic" / "new", new)
    refund = new / "routines/billing/refunds--issue-a-refund.json"

    def add_future_fields(data: dict[str, Any]) -> None:
        data["priority"] = "high"
        data["steps"][0]["confidence"] = 0.9
        data["steps"][1]["tool_call"]["arguments"][0]["unit"] = "id"

    _edit_json(refund, add_future_fields)
    _edit_json(new / "sopc.lock", lambda data: data.update(future_field=1))
    expected = diff_outputs(str(DATA / "basic/old"), str(DATA / "basic/new"))
    diff = diff_outputs(str(DATA / "basic/old"), str(new))
    assert diff.model_dump(exclude={"new"}) == expected.model_dump(exclude={"new"})
    assert diff.unreadable == []


def test_an_unreadable_routine_is_listed_not_fatal(tmp_path: Path) -> None:
    new = tmp_path / "new"
    shutil.copytree(DATA / "basic" / "new", new)
    _edit_json(
        new / "routines/billing/refunds--issue-a-refund.json",
        lambda data: data["steps"][0].update(kind="negotiate"),
    )
    (new / "routines/shipping/garbage.json").write_text("{not json", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["diff", str(DATA / "basic/old"), str(new), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    notes = {(u["side"], u["file"]): u["reason"] for u in data["unreadable"]}
    assert set(notes) == {
        ("new", "routines/billing/refunds--issue-a-refund.json"),
        ("new", "routines/shipping/garbage.json"),
    }
    assert "steps.0.kind" in notes[("new", "routines/billing/refunds--issue-a-refund.json")]
    # the routine that could not be read is not reported as removed
    assert [r["id"] for r in data["removed"]] == ["invoices--correct-an-invoice"]


@pytest.mark.parametrize("side", ["old", "new"])
def test_a_folder_that_is_no_output_folder_is_a_usage_error(tmp_path: Path, side: str) -> None:
    sops = tmp_path / "sample_sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "billing" / "refunds.md").write_text("# Refunds\n", encoding="utf-8")
    folders = {"old": str(DATA / "basic/old"), "new": str(DATA / "basic/new"), side: str(sops)}
    result = CliRunner().invoke(app, ["diff", folders["old"], folders["new"]])
    assert result.exit_code == 2, result.output
    assert "not a sopc output folder" in result.output
    assert "sample_sops" in result.output


def test_a_revision_without_outputs_is_a_usage_error(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    out = tmp_path / "generated_routines"
    out.mkdir()
    (out / "README.md").write_text("nothing generated yet\n", encoding="utf-8")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, env=env)
    result = CliRunner().invoke(app, ["diff", "HEAD", "HEAD", "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "has no routines/" in result.output


def test_markdown_lists_unreadable_routines_even_without_other_changes(tmp_path: Path) -> None:
    new = tmp_path / "new"
    shutil.copytree(DATA / "basic" / "new", new)
    (new / "routines/shipping/garbage.json").write_text("{not json", encoding="utf-8")
    markdown = diff_markdown(diff_outputs(str(DATA / "basic/new"), str(new)))
    assert "No routine changes" not in markdown  # the comparison left a file out
    assert "**0 added, 0 removed, 0 changed, 3 unchanged**" in markdown
    section = markdown.split("### Unreadable routines\n\n", 1)[1]
    (line,) = [row for row in section.splitlines() if row.startswith("- ")]
    assert line.startswith("- new `routines/shipping/garbage.json`: ")
