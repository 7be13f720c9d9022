"""How a compile or check run is shown: a rich summary, JSON, or GitHub workflow annotations.

Progress goes to stderr: a live bar when stderr is a terminal, otherwise one plain line per
routine so CI logs stay readable. Colour follows rich, which honours `NO_COLOR`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sop_compiler.errors import OutputError
from sop_compiler.escape import terminal_text
from sop_compiler.models import Issue, RunResult, SopOutcome, StaleEntry

if TYPE_CHECKING:
    from rich.progress import ProgressColumn, Task

__all__ = [
    "annotation",
    "append_summary",
    "error_note",
    "markdown_summary",
    "plural",
    "progress",
    "render_run",
    "stop_note",
]

_FULL_TABLE = 50  # above this many SOPs, the text table lists only the SOPs that need attention
# A fatal backend error travels in RunResult.notes (so JSON carries it) in this one shape; the
# text and GitHub formats find it by it and show it as an error, not a note.
_STOPPED = "generation stopped: "
_HINT = " (hint: "
_ERROR = "error: "  # a note in this shape is shown as an error
_STOP_HINT = "fix the key, model or quota, then compile again: routines written so far are kept"


def stop_note(message: str, hint: str | None = None) -> str:
    """The run note for a fault that stopped generation (bad key, unknown model, no quota)."""
    return f"{_STOPPED}{message}{_HINT}{hint or _STOP_HINT})"


def error_note(message: str) -> str:
    """A run note that is an error of the whole run (the network written does not import)."""
    return f"{_ERROR}{message}"


def _stop(note: str) -> tuple[str, str] | None:
    """(error, hint) when `note` is a stop_note(), else None."""
    if not (note.startswith(_STOPPED) and note.endswith(")") and _HINT in note):
        return None
    error, _, hint = note[:-1].rpartition(_HINT)
    return error, hint


@contextlib.contextmanager
def progress(
    total: int, *, fmt: str, tokens: Callable[[], int] | None = None
) -> Iterator[Callable[[str], None]]:
    """Yield `advance(label)`, called once per finished routine; `tokens()`: streamed so far."""
    if total == 0:
        yield lambda label: None
        return
    if fmt == "text" and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        bar = Progress(
            # Labels hold SOP-derived ids: plain text, never rich markup.
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            *([_tokens_column(tokens)] if tokens is not None else []),
            console=Console(stderr=True),
            transient=True,
        )
        with bar:
            task = bar.add_task("generating", total=total)
            yield lambda label: bar.update(task, advance=1, description=terminal_text(label))
        return
    done = 0

    def line(label: str) -> None:
        nonlocal done
        done += 1
        print(f"{terminal_text(label)} ({done}/{total})", file=sys.stderr, flush=True)

    yield line


def _tokens_column(tokens: Callable[[], int]) -> ProgressColumn:
    """A progress column of the tokens streamed so far: a slow local model visibly works."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class TokensColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            count = tokens()
            return Text(f"{count:,} tokens received" if count else "", style="progress.data")

    return TokensColumn()


def render_run(result: RunResult, *, fmt: str, quiet: bool = False, strict: bool = False) -> None:
    """Print the run: `text` (rich summary), `json` (RunResult) or `github` (annotations).

    The text summary lists every issue under its routine (`quiet`: counts only), says with
    `strict` which warnings made the run fail, and ends with where to look next.
    """
    if fmt == "json":
        print(result.model_dump_json(indent=2))
        return
    if fmt == "github":
        _annotations(result)
    _text(result, quiet=quiet, strict=strict)
    summary = os.environ.get("GITHUB_STEP_SUMMARY") if fmt == "github" else None
    if summary:  # last: a summary file that cannot be written must not hide the run's results
        append_summary(Path(summary), markdown_summary(result))


def append_summary(path: Path, text: str) -> None:
    """Append to the job summary file; a path that cannot take it is the runner's setup error."""
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(
            f"cannot append the run summary to $GITHUB_STEP_SUMMARY: {reason}",
            path=path,
            hint="GITHUB_STEP_SUMMARY must name a writable file (GitHub Actions sets it).",
        ) from exc


def _counts(sop: SopOutcome) -> tuple[int, int, int, int, int, int, int]:
    procs = sop.procedures
    return (
        len(procs),
        sum(p.status == "generated" for p in procs),
        sum(p.status in ("unchanged",) for p in procs),
        sum(p.status in ("failed", "would_generate") for p in procs),
        sum(i.severity == "warning" for p in procs for i in p.issues),
        sum(i.severity == "error" for p in procs for i in p.issues),
        sop.usage.prompt_tokens + sop.usage.completion_tokens,
    )


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 routine`, `2 routines` (`many` for irregular plurals)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def _headline(result: RunResult) -> str:
    procs = [p for sop in result.sops for p in sop.procedures]
    unreadable = sum(sop.status == "input_error" for sop in result.sops)
    parts = [plural(len(result.sops), "SOP"), plural(len(procs), "routine")]
    for status in ("generated", "unchanged", "would_generate", "failed"):
        n = sum(p.status == status for p in procs)
        if n:
            parts.append(f"{n} {status.replace('_', ' ')}")
    if unreadable:
        parts.append(f"{unreadable} unreadable")
    if result.command == "compile" and not result.dry_run:
        parts.append(f"{plural(len(result.written), 'file')} written")
    return ", ".join(parts)


_ORDER = {"error": 0, "warning": 1, "info": 2}
_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}
_QUOTE = 120  # characters of the SOP quote shown under an issue


def _issue_lines(result: RunResult) -> list[tuple[str, list[Issue]]]:
    """(`<agent>/<routine> (<sop>)`, its issues: errors, then warnings, then info, by code)."""
    groups = []
    for sop in result.sops:
        for proc in sop.procedures:
            if proc.issues:
                issues = sorted(
                    proc.issues, key=lambda i: (_ORDER.get(i.severity, 3), i.code, i.step_id or "")
                )
                name = f"{proc.agent}/{proc.procedure_id}" if proc.agent else proc.procedure_id
                groups.append((terminal_text(f"{name} ({sop.source})"), issues))
    return groups


def _print_issues(console: Any, result: RunResult, *, quiet: bool) -> None:
    from rich.markup import escape

    groups = _issue_lines(result)
    if not groups:
        return
    totals = Counter(i.severity for _, issues in groups for i in issues)
    counted = ", ".join(
        plural(totals[level], level, "info" if level == "info" else None)
        for level in ("error", "warning", "info")
        if totals[level]
    )
    if quiet:
        codes = Counter((i.severity, i.code) for _, issues in groups for i in issues)
        listed = ", ".join(
            f"{code} {n}"
            for (_, code), n in sorted(codes.items(), key=lambda x: (_ORDER[x[0][0]], x[0][1]))
        )
        console.print(f"issues: {counted} ({escape(listed)})")
        return
    console.print(f"\nissues by routine ({counted}; --quiet shows counts only):")
    for name, issues in groups:
        console.print(f"\n[bold]{escape(name)}[/]")
        for issue in issues:
            level = f"[{_STYLE.get(issue.severity, 'white')}]{issue.severity}[/]"
            console.print(f"  {level} {escape(issue.code)}: {escape(issue.located())}")
            if issue.quote:
                quote = " ".join(issue.quote.split())
                quote = quote if len(quote) <= _QUOTE else quote[: _QUOTE - 1] + "…"
                console.print(f'      SOP: "{escape(quote)}"')


def _strict_verdict(result: RunResult) -> str | None:
    """Which warnings fail a `--strict` run, or None when none do."""
    warnings = [
        (proc, issue)
        for sop in result.sops
        for proc in sop.procedures
        for issue in proc.issues
        if issue.severity == "warning"
    ]
    if not warnings:
        return None
    codes = Counter(issue.code for _, issue in warnings)
    routines = {f"{proc.agent}/{proc.procedure_id}" for proc, _ in warnings}
    listed = ", ".join(f"{code} ({n})" for code, n in sorted(codes.items()))
    return (
        f"--strict: {plural(len(warnings), 'warning')} in {plural(len(routines), 'routine')} "
        f"fail the run: {listed}"
    )


def _next_steps(result: RunResult) -> list[str]:
    """Where to look after a run: the review page, the network, the CI command."""
    out = result.output_dir or "generated_routines"
    sops = result.sops_dir or "sops"
    if result.command == "check":
        if result.stale:
            return [f"next: sopc compile {sops} -o {out} brings the outputs up to date"]
        return []
    if result.dry_run or not result.sops:
        return []
    return [
        f"next: read {out}/REVIEW.md (each routine with its rules, steps, sources and issues);",
        f"      the agents are in {out}/agent_network/ (README: 'Running the generated agents');",
        f"      in CI, `sopc check {sops} -o {out}` fails when the outputs are stale.",
    ]


def _text(result: RunResult, *, quiet: bool = False, strict: bool = False) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # Off a terminal rich assumes 80 columns; CI logs are wider, and a cut SOP path is useless.
    # Every string from an SOP, the model or settings goes through escape(): `[/]` in an issue
    # message would otherwise be read as markup and crash after the outputs were written.
    console = Console(
        highlight=False,
        soft_wrap=True,
        emoji=False,
        width=None if sys.stdout.isatty() else 160,
    )
    note = f" ({escape(result.backend_note)})" if result.backend_note else ""
    model = f", model {escape(result.model)}" if result.model else ""
    console.print(f"backend: {escape(result.backend)}{note}{model}")
    for text in result.notes:
        if text.startswith(_ERROR):
            console.print(f"[red]error:[/] {escape(text.removeprefix(_ERROR))}")
        elif _stop(text) is None:
            console.print(f"[yellow]note:[/] {escape(text)}")
    for text in result.not_deployed:  # its agent runs without it until it validates
        console.print(f"[red]not deployed:[/] {escape(text)}")
    notable = [
        sop
        for sop in result.sops
        if sop.status not in ("unchanged",) or _counts(sop)[4:6] != (0, 0)
    ]
    shown = result.sops if len(result.sops) <= _FULL_TABLE else notable
    if shown:
        last = "to generate" if result.command == "check" or result.dry_run else "failed"
        table = Table(title=None, show_edge=False, pad_edge=False)
        for column in (
            "SOP",
            "routines",
            "generated",
            "unchanged",
            last,
            "warnings",
            "errors",
            "tokens",
        ):
            table.add_column(
                column, justify="left" if column == "SOP" else "right", overflow="fold"
            )
        for sop in shown:
            if sop.status == "input_error":
                table.add_row(escape(sop.source), "[red]unreadable[/]", "", "", "", "", "", "")
                continue
            table.add_row(escape(sop.source), *(str(n) if n else "-" for n in _counts(sop)))
        if len(shown) < len(result.sops):
            table.add_row(
                f"... {len(result.sops) - len(shown)} more SOPs, all unchanged", *[""] * 7
            )
        console.print(table)
    for sop in result.sops:
        if sop.error:
            console.print(f"[red]unreadable:[/] {escape(sop.error)}")
        for proc in sop.procedures:
            if proc.status == "failed":
                console.print(
                    f"[red]failed:[/] {escape(sop.source)}: {escape(proc.procedure_id)}: "
                    f"{escape(proc.error or '')}"
                )
            if proc.estimated_prompt_tokens is not None:
                console.print(
                    f"would generate {escape(proc.agent)}/{escape(proc.procedure_id)}: "
                    f"~{proc.estimated_prompt_tokens} prompt tokens"
                )
    _print_issues(console, result, quiet=quiet)
    for entry in result.stale:
        console.print(
            f"[red]{escape(entry.reason)}:[/] {escape(_stale_path(result, entry))}: "
            f"{escape(entry.detail)}"
        )
        for part in entry.parts:
            console.print(f"    {escape(part)}")
    verdict = _headline(result)
    if result.command == "check":
        verdict += (
            "; outputs are current"
            if not result.stale
            else f"; {plural(len(result.stale), 'problem')}"
        )
    console.print(escape(verdict))
    failing = _strict_verdict(result) if strict else None
    if failing:
        console.print(f"[red]{escape(failing)}[/]")
    for line in _next_steps(result):
        console.print(escape(line))
    stderr = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
    for error, hint in filter(None, map(_stop, result.notes)):
        stderr.print(f"[red]error:[/] {escape(error)}")
        stderr.print(f"hint: {escape(hint)}")


def _issue_text(issue: Issue) -> str:
    return f"{issue.routine_id} {issue.located()} [{issue.code}]"


def _stale_path(result: RunResult, entry: StaleEntry) -> str:
    folder = result.sops_dir if entry.where == "sops" else result.output_dir
    return f"{folder}/{entry.path}" if folder and folder != "." else entry.path


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, path: str | None, title: str, message: str) -> str:
    """One GitHub workflow command (`::error file=...,title=...::message`), escaped."""
    where = f"file={_escape_property(path)}," if path is not None else ""
    where += f"title={_escape_property(title)}"
    return f"::{level} {where}::{_escape_data(message)}"


def _annotations(result: RunResult) -> None:
    """GitHub workflow commands: one annotation per validation issue, stale output and failure."""
    lines: list[str] = []
    for sop in result.sops:
        path = _stale_path(
            result, StaleEntry(path=sop.source, where="sops", reason="stale", detail="")
        )
        if sop.error:
            lines.append(annotation("error", path, "sopc: unreadable SOP", sop.error))
        for proc in sop.procedures:
            if proc.status == "failed":
                lines.append(
                    annotation(
                        "error", path, f"sopc: {proc.procedure_id} not generated", proc.error or ""
                    )
                )
            for issue in proc.issues:
                level = {"error": "error", "warning": "warning"}.get(issue.severity, "notice")
                lines.append(annotation(level, path, f"sopc {issue.code}", _issue_text(issue)))
    for entry in result.stale:
        lines.append(
            annotation(
                "error", _stale_path(result, entry), f"sopc check: {entry.reason}", entry.detail
            )
        )
    for text in result.notes:
        if text.startswith(_ERROR):
            lines.append(annotation("error", None, "sopc", text.removeprefix(_ERROR)))
    for error, hint in filter(None, map(_stop, result.notes)):  # the whole run, not one file
        message = f"{error}\nhint: {hint}"
        lines.append(annotation("error", None, "sopc: generation stopped", message))
    for line in lines:
        print(line)


def markdown_summary(result: RunResult) -> str:
    """The run as Markdown, for `$GITHUB_STEP_SUMMARY`."""
    from sop_compiler.escape import md_cell, md_text

    title = "sopc check" if result.command == "check" else "sopc compile"
    out = [f"### {title}: {_headline(result)}", "", f"Backend: `{result.backend}`", ""]
    for error, hint in filter(None, map(_stop, result.notes)):
        out += [f"**error:** {md_text(error)}", "", f"hint: {md_text(hint)}", ""]
    rows = [
        sop
        for sop in result.sops
        if sop.status != "unchanged" or any(p.issues for p in sop.procedures)
    ]
    if rows:
        out += [
            "| SOP | routines | generated | unchanged | failed / to generate | warnings | errors |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for sop in rows:
            counts = _counts(sop)[:6]
            cells = ["unreadable", "", "", "", "", ""] if sop.error else [str(n) for n in counts]
            out.append(f"| {md_cell(sop.source)} | " + " | ".join(cells) + " |")
        out.append("")
    if result.stale:
        out += ["| problem | file | detail |", "|---|---|---|"]
        out += [
            f"| {entry.reason} | {md_cell(_stale_path(result, entry))} | {md_cell(entry.detail)} |"
            for entry in result.stale
        ]
        out.append("")
    return "\n".join(out) + "\n"
