"""The command line as a new user meets it: options anywhere, pipes, examples, plurals, init."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sop_compiler.catalog import load_catalog
from sop_compiler.cli import app
from sop_compiler.config import Settings, load_settings
from sop_compiler.models import ProcedureOutcome, RunResult, SopOutcome, StaleEntry
from sop_compiler.render import render_run

REPO = Path(__file__).resolve().parents[1]

CATALOG = """\
tools:
  - name: lookup_order
    description: Look up an order.
    access: read
    parameters:
      type: object
      properties:
        order_id: {type: string, description: The order number.}
      required: [order_id]
"""

REFUND = """\
# Issue a refund

1. Ask the customer for the order number.
2. Look up the order with `lookup_order`.
3. If the order is older than 90 days, escalate to Billing.
4. Tell the customer the refund is on its way.
"""


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _project(root: Path) -> Path:
    sops = root / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "tools.yaml").write_text(CATALOG, encoding="utf-8")
    (sops / "billing" / "refund.md").write_text(REFUND, encoding="utf-8")
    return sops


def test_debug_is_accepted_after_the_command_too(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.md")
    code, _, err = _invoke("inspect", missing)
    assert code == 4 and err.startswith("error: ") and "Traceback" not in err
    for args in (["inspect", missing, "--debug"], ["--debug", "inspect", missing]):
        result = CliRunner().invoke(app, args)
        assert result.exception is not None and "no such file" in str(result.exception)
    # the flag does not stick to the next run
    assert _invoke("inspect", missing)[0] == 4


def test_a_closed_pipe_exits_quietly_like_git(tmp_path: Path) -> None:
    import os

    sop = tmp_path / "refund.md"
    sop.write_text(REFUND, encoding="utf-8")
    read, write = os.pipe()
    os.close(read)  # `sopc ... | true`: the reader has gone before sopc writes
    command = [sys.executable, "-m", "sop_compiler", "inspect", str(sop), "--format", "json"]
    try:
        proc = subprocess.run(command, stdout=write, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write)
    err = proc.stderr.decode()
    assert proc.returncode == 141, err  # 128 + SIGPIPE, as `git log | head` exits
    assert err == ""  # no "internal error: BrokenPipeError", no traceback


def _examples() -> list[tuple[str, list[str]]]:
    top = re.search(r"Example: (sopc [^(]+)", app.info.help or "")
    assert top, "`sopc --help` has no example"
    out = [(top.group(1), shlex.split(top.group(1)))]
    for command in app.registered_commands:
        doc = command.callback.__doc__ if command.callback else ""
        found = re.search(r"Example: (sopc .+)", doc or "")
        assert found, f"`sopc {command.name or command.callback.__name__}` has no example"
        out.append((found.group(1), shlex.split(found.group(1).split(" > ")[0])))
    return out


def test_every_command_has_an_example_whose_sample_paths_exist() -> None:
    examples = _examples()
    assert len(examples) >= 8
    for line, words in examples:
        for word in words:
            if word.startswith("sample_sops"):
                assert (REPO / word).exists(), f"{line!r} names {word}, which does not exist"


def test_the_inspect_example_runs_from_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    words = next(words for _, words in _examples() if words[1] == "inspect")
    code, out, err = _invoke(*words[1:])
    assert code == 0, err
    assert "Procedures" in out


def test_counts_are_singular_for_one() -> None:
    result = RunResult(
        command="check",
        backend="offline",
        sops=[
            SopOutcome(
                source="a.md",
                status="ok",
                procedures=[ProcedureOutcome(procedure_id="a", title="A", status="unchanged")],
            )
        ],
        stale=[StaleEntry(path="routines/x.md", reason="edited", detail="hand-edited")],
    )
    assert "1 SOP, 1 routine, 1 unchanged; 1 problem" in _render(result)
    result.command = "compile"
    result.stale = []
    result.written = ["REVIEW.md"]
    assert "1 SOP, 1 routine, 1 unchanged, 1 file written" in _render(result)


def _render(result: RunResult, **options: bool) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        render_run(result, fmt="text", **options)
    return buffer.getvalue()


def test_an_empty_folder_is_exit_4_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "sops").mkdir()
    (tmp_path / "sops" / "README.md").write_text("# About these SOPs\n", encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = _invoke("compile", str(tmp_path / "sops"), "-o", str(out))
    assert code == 4
    assert "no SOP files in this folder" in err and "hint:" in err
    assert not out.exists()


def test_a_single_file_finds_its_catalog_and_keeps_its_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = _invoke("compile", "sops/billing/refund.md", "-o", "out", "--format", "json")
    assert code == 0, out + err
    routine = json.loads((tmp_path / "out/routines/billing/refund.json").read_text())
    assert routine["agent"] == "billing"
    tools = [s["tool_call"]["tool"] for s in routine["steps"] if s.get("tool_call")]
    assert tools == ["lookup_order"]  # the catalog of sops/, two folders up, was found
    issues = [
        i["code"] for s in json.loads(out)["sops"] for p in s["procedures"] for i in p["issues"]
    ]
    assert "proposed_tool" not in issues


def test_inspect_counts_the_steps_compile_writes_for_step_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import docx

    sops = tmp_path / "sops"
    sops.mkdir()
    (sops / "tools.yaml").write_text(CATALOG, encoding="utf-8")
    document = docx.Document()
    document.add_heading("Order status enquiry", level=1)
    for n, text in enumerate(
        [
            "Ask the customer for the order number.",
            "Look up the order with lookup_order.",
            "Tell the customer the delivery date.",
            "If the parcel is late, escalate to Shipping.",
            "Close the case.",
        ],
        start=1,
    ):
        document.add_paragraph(f"Step {n}: {text}")
    document.save(str(sops / "status.docx"))
    monkeypatch.chdir(tmp_path)
    code, out, err = _invoke("inspect", "sops/status.docx", "--format", "json")
    assert code == 0, err
    (found,) = json.loads(out)
    (procedure,) = found["procedures"]
    code, _, err = _invoke("compile", "sops", "-o", "out")
    assert code == 0, err
    (routine_file,) = (tmp_path / "out/routines").rglob("*.json")
    routine = json.loads(routine_file.read_text())

    def count(steps: list[dict[str, object]]) -> int:
        return sum(1 + count(step.get("substeps") or []) for step in steps)  # type: ignore[arg-type]

    assert procedure["steps"] == count(routine["steps"]) >= 5
    code, text, _ = _invoke("inspect", "sops/status.docx")
    assert re.search(rf"{procedure['id']}\s.*\s{procedure['steps']}\s", text)


def test_every_command_takes_the_same_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sops = _project(tmp_path)
    out = tmp_path / "out"
    assert _invoke("compile", str(sops), "-o", str(out))[0] == 0
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    for fmt in ("text", "json", "github"):
        for args in (
            ["check", str(sops), "-o", str(out)],
            ["inspect", str(sops)],
            ["diff", str(out), str(out)],
        ):
            code, stdout, err = _invoke(*args, "--format", fmt)
            assert code == 0, (args, fmt, err)
            if fmt == "json":
                json.loads(stdout)
    # github: the check's summary and the diff's Markdown both reach the job summary
    assert "### sopc check" in summary.read_text()
    assert "No routine changes (1 routine unchanged)." in summary.read_text()
    code, _, err = _invoke("diff", str(out), str(out), "--format", "xml")
    assert code == 2 and "text" in err and "github" in err
    (sops / "bad.pdf").write_bytes(b"not a pdf at all")
    code, stdout, _ = _invoke("inspect", str(sops), "--format", "github")
    assert code == 4 and "::error file=bad.pdf,title=sopc%3A unreadable SOP::" in stdout


def test_init_writes_a_starter_project_once(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.pyc", encoding="utf-8")
    code, out, err = _invoke("init", str(tmp_path))
    assert code == 0, err
    assert "wrote sopc.toml" in out and "wrote sops/tools.yaml" in out
    assert "added to .gitignore: generated_routines/.sopc-run.lock" in out
    assert (tmp_path / ".gitignore").read_text().splitlines()[0] == "*.pyc"
    settings = load_settings(tmp_path)
    assert settings.output == tmp_path / "generated_routines"
    catalog = load_catalog(settings.tools, sop_root=tmp_path / "sops")
    assert catalog.names() == ["issue_refund", "lookup_order"]
    workflow = (tmp_path / ".github/workflows/sopc.yml").read_text()
    assert workflow == (REPO / "docs/github-workflow.yml").read_text()  # one workflow, documented
    (tmp_path / "sopc.toml").write_text('output = "mine"\n', encoding="utf-8")
    code, out, _ = _invoke("init", str(tmp_path))
    assert code == 0
    assert "kept sopc.toml (it exists)" in out and "kept .gitignore" in out
    assert (tmp_path / "sopc.toml").read_text() == 'output = "mine"\n'
    assert _invoke("init", str(tmp_path), "--sops", "../elsewhere")[0] == 2


def test_init_with_other_folders_compiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _invoke("init", str(tmp_path), "--sops", "procedures", "-o", "routines")[0] == 0
    (tmp_path / "procedures/refund.md").write_text(REFUND, encoding="utf-8")
    workflow = (tmp_path / ".github/workflows/sopc.yml").read_text()
    assert "sopc check procedures -o routines" in workflow and "@SOPS@" not in workflow
    monkeypatch.chdir(tmp_path)
    code, out, err = _invoke("compile", "procedures")
    assert code == 0, out + err
    assert (tmp_path / "routines/REVIEW.md").is_file()


def test_caches_go_to_the_user_cache_folder_and_the_run_lock_to_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOPC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Settings().cache_dir.is_relative_to(tmp_path)
    sops = _project(tmp_path / "project")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, _, err = _invoke("compile", str(sops), "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert list(work.iterdir()) == []  # nothing in the working folder
    assert (tmp_path / "out" / ".sopc-run.lock").exists()
    assert any(p.is_file() for p in Settings().cache_dir.rglob("*"))  # the stat cache
