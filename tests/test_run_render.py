"""How compile and check results are shown: text summary, JSON, GitHub annotations, progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sop_compiler.errors import OutputError
from sop_compiler.models import Issue, ProcedureOutcome, RunResult, SopOutcome, StaleEntry, Usage
from sop_compiler.render.run import markdown_summary, progress, render_run


def _result() -> RunResult:
    warning = Issue(
        code="proposed_tool",
        severity="warning",
        routine_id="refunds",
        step_id="3",
        message="needs `notify_finance`, which is not in the catalog",
    )
    error = Issue(
        code="dangling_target",
        severity="error",
        routine_id="lost",
        step_id="2",
        message="goes to step 9, which does not exist",
    )
    return RunResult(
        command="compile",
        backend="offline",
        backend_note="no API key or base URL set",
        sops_dir="sops",
        output_dir="generated_routines",
        sops=[
            SopOutcome(
                source="billing/refunds.md",
                status="ok",
                usage=Usage(prompt_tokens=120),
                procedures=[
                    ProcedureOutcome(
                        procedure_id="refunds",
                        title="Refunds",
                        agent="billing",
                        status="generated",
                        issues=[warning],
                        usage=Usage(prompt_tokens=120),
                    )
                ],
            ),
            SopOutcome(
                source="shipping/lost.md",
                status="partial",
                procedures=[
                    ProcedureOutcome(
                        procedure_id="lost",
                        title="Lost",
                        agent="shipping",
                        status="unchanged",
                        issues=[error],
                    ),
                    ProcedureOutcome(
                        procedure_id="lost-2",
                        title="Lost 2",
                        agent="shipping",
                        status="failed",
                        error="server returned 503, 100% of retries used",
                    ),
                ],
            ),
            SopOutcome(
                source="bad.pdf", status="input_error", error="bad.pdf: the PDF is encrypted"
            ),
        ],
        stale=[
            StaleEntry(path="routines/billing/refunds.md", reason="edited", detail="hand-edited")
        ],
        written=["routines/billing/refunds.md"],
        exit_code=3,
    )


def test_json_is_the_run_result(capsys: pytest.CaptureFixture[str]) -> None:
    render_run(_result(), fmt="json")
    data = json.loads(capsys.readouterr().out)
    assert RunResult.model_validate(data) == _result()


def test_text_summary(capsys: pytest.CaptureFixture[str]) -> None:
    render_run(_result(), fmt="text")
    out = capsys.readouterr().out
    assert "backend: offline (no API key or base URL set)" in out
    assert "billing/refunds.md" in out and "shipping/lost.md" in out  # paths are never cut
    assert "failed: shipping/lost.md: lost-2: server returned 503" in out
    assert "unreadable: bad.pdf: the PDF is encrypted" in out
    assert "error dangling_target: step 2: goes to step 9" in out
    assert "edited: generated_routines/routines/billing/refunds.md: hand-edited" in out
    assert "\x1b[" not in out  # NO_COLOR (set by conftest) and not a terminal


def test_github_annotations_and_step_summary(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    render_run(_result(), fmt="github")
    lines = capsys.readouterr().out.splitlines()
    assert (
        "::warning file=sops/billing/refunds.md,title=sopc proposed_tool::refunds step 3: needs "
        "`notify_finance`, which is not in the catalog [proposed_tool]" in lines
    )
    assert any(
        line.startswith("::error file=sops/shipping/lost.md,title=sopc dangling_target::")
        for line in lines
    )
    # workflow-command escaping: `%` in a message, `:` and `,` in properties
    assert any("100%25 of retries" in line for line in lines if line.startswith("::error"))
    assert (
        "::error file=generated_routines/routines/billing/refunds.md,title=sopc check%3A edited::"
        "hand-edited" in lines
    )
    assert (
        "::error file=sops/bad.pdf,title=sopc%3A unreadable SOP::bad.pdf: the PDF is encrypted"
        in lines
    )
    text = summary.read_text()
    assert text.startswith("earlier step\n### sopc compile: 3 SOPs, 3 routines")
    assert "| billing/refunds.md |" in text and "| edited |" in text


def test_markdown_summary_escapes_paths() -> None:
    result = RunResult(
        command="check",
        backend="offline",
        sops=[SopOutcome(source="a|b <script>.md", status="input_error", error="bad")],
    )
    text = markdown_summary(result)
    assert "<script>" not in text and "a&#124;b" in text


def test_progress_off_a_terminal_prints_one_line_per_routine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with progress(2, fmt="text") as advance:
        advance("generated billing/refunds")
        advance("failed shipping/lost")
    err = capsys.readouterr().err.splitlines()
    assert err == ["generated billing/refunds (1/2)", "failed shipping/lost (2/2)"]


def test_text_summary_prints_markup_in_sop_and_model_text_literally(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`[/]` in an issue message is text, not rich markup: it must not crash after the write."""
    hostile = "closes [/] and opens [bold red]tags[/bold red] :warning: \\"
    issue = Issue(
        code="dangling_target",
        severity="error",
        routine_id="r[/]",
        step_id="[b]2",
        message=hostile,
    )
    result = RunResult(
        command="compile",
        backend="openai",
        backend_note="base URL [/] set",
        model="m[/i]",
        dry_run=True,
        sops=[
            SopOutcome(
                source="s.md",
                status="ok",
                procedures=[
                    ProcedureOutcome(
                        procedure_id="p[/]",
                        title="t",
                        agent="[red]agent",
                        status="would_generate",
                        estimated_prompt_tokens=12,
                        issues=[issue],
                    ),
                    ProcedureOutcome(
                        procedure_id="q[/]", title="t", agent="a", status="failed", error="e[/]"
                    ),
                ],
            )
        ],
        stale=[StaleEntry(path="x[/].md", reason="edited", detail="d [/]")],
    )
    render_run(result, fmt="text")
    out = capsys.readouterr().out
    assert "backend: openai (base URL [/] set), model m[/i]" in out
    assert "would generate [red]agent/p[/]: ~12 prompt tokens" in out
    assert "[red]agent/p[/] (s.md)" in out
    assert f"  error dangling_target: step [b]2: {hostile}" in out
    assert "failed: s.md: q[/]: e[/]" in out
    assert "edited: x[/].md: d [/]" in out


def test_unwritable_step_summary_is_a_clear_output_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A folder (or unwritable path) in $GITHUB_STEP_SUMMARY: an OutputError naming it, after
    the annotations and the summary were printed, not an IsADirectoryError traceback."""
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))
    with pytest.raises(OutputError, match=r"GITHUB_STEP_SUMMARY.*(directory|folder)") as caught:
        render_run(_result(), fmt="github")
    assert caught.value.path == str(tmp_path)
    out = capsys.readouterr().out
    assert "::error file=sops/shipping/lost.md" in out and "backend: offline" in out


def test_diff_markdown_escapes_step_ids_from_the_model() -> None:
    """A step id is model output: in the diff table it cannot add a column or an HTML tag."""
    from sop_compiler.diff import RoutineChange, RoutineSetDiff, StepChange
    from sop_compiler.render.diff import diff_markdown

    change = RoutineChange(
        agent="billing",
        id="refunds",
        title="Refunds",
        steps=[StepChange(change="moved", old_id="2|<img src=x>", new_id="3", before="Ask.")],
    )
    text = diff_markdown(RoutineSetDiff(old="a", new="b", changed=[change]))
    [row] = [line for line in text.splitlines() if line.startswith("| moved |")]
    assert "<img" not in row and row.count("|") == 5
