"""How eval and drafting results are shown: a rich table, JSON, JUnit XML. No logic."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from sop_compiler.errors import OutputError
from sop_compiler.escape import terminal_text
from sop_compiler.eval.draft import DraftReport
from sop_compiler.eval.evaluate import EvalReport
from sop_compiler.eval.live import LiveReport
from sop_compiler.eval.paths_report import RoutinePathsView
from sop_compiler.files import replace_file

if TYPE_CHECKING:
    from sop_compiler.eval.from_sop import SopDrafts

__all__ = [
    "eval_payload",
    "junit_xml",
    "live_payload",
    "render_drafts",
    "render_eval",
    "render_live",
    "render_paths",
    "write_junit",
]


def eval_payload(report: EvalReport) -> dict[str, Any]:
    """The `--format json` of a deterministic eval (what `--baseline` reads back)."""
    payload = report.model_dump(mode="json")
    payload["summary"] = _summary(report)
    return payload


def live_payload(report: LiveReport) -> dict[str, Any]:
    """The `--format json` of a live eval (what `--baseline` reads back)."""
    payload = report.model_dump(mode="json")
    payload["summary"] = {
        "scenarios": len(report.results),
        "failed": report.failed,
        "malformed_files": len(report.errors),
        "exit_code": report.exit_code,
    }
    return payload


def render_eval(report: EvalReport, *, fmt: str) -> None:
    """Print the eval report: `text` (a table per routine, then each failure), `json`, or
    `github` (an annotation per failing scenario and malformed file, then the text)."""
    if fmt == "json":
        print(json.dumps(eval_payload(report), indent=2, sort_keys=True))
        return
    if fmt == "github":
        for line in _annotations(report):
            print(line)
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    # As the compile summary: full width in CI logs, the terminal's width at a terminal.
    console = Console(
        highlight=False, soft_wrap=True, emoji=False, width=None if sys.stdout.isatty() else 160
    )
    table = Table(box=None, show_edge=False, pad_edge=False)
    for column in ("routine", "scenarios", "passed", "failed", "paths covered"):
        table.add_column(
            column, justify="left" if column == "routine" else "right", overflow="fold"
        )
    by_routine: dict[str, list[str]] = {}
    for result in report.results:
        by_routine.setdefault(result.routine, []).append(result.status)
    coverage = {entry.routine: entry for entry in report.coverage}
    for routine in sorted(set(by_routine) | set(coverage)):
        statuses = by_routine.get(routine, [])
        failed = statuses.count("failed")
        entry = coverage.get(routine)
        paths = f"{entry.covered}/{entry.paths}" if entry else "(no routine)"
        table.add_row(
            escape(terminal_text(routine)),
            str(len(statuses)),
            str(statuses.count("passed")),
            f"[red]{failed}[/red]" if failed else "-",
            paths if entry is None or entry.covered == entry.paths else f"[yellow]{paths}[/yellow]",
        )
    console.print(table)
    for result in report.results:
        if result.status == "failed":
            console.print(
                f"[red]FAIL[/red] {escape(terminal_text(result.file))}:{result.line} "
                f"{escape(terminal_text(result.name))}",
                markup=True,
            )
            for difference in result.differences:
                for line in difference.splitlines():
                    console.print(f"    {terminal_text(line)}", markup=False)
    for entry in report.coverage:
        if entry.uncovered_numbers:
            shown = ", ".join(str(n) for n in entry.uncovered_numbers[:30])
            more = ", ..." if len(entry.uncovered_numbers) > 30 else ""
            drafts = f"; {entry.drafts} drafts to review" if entry.drafts else ""
            print(
                f"uncovered: {terminal_text(entry.routine)}: paths {shown}{more} of "
                f"{entry.paths} (numbered as in `sopc paths` and REVIEW.md){drafts}"
            )
    if not report.results and not report.errors:
        print(
            "note: no reviewed scenarios: nothing is proven (draft them with `sopc scenarios`)",
            file=sys.stderr,
        )
    console.print(_sentence(report), markup=False)


def _annotations(report: EvalReport) -> list[str]:
    """GitHub workflow commands, on the scenario's file and line."""

    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    lines = []
    for result in report.results:
        if result.status == "failed":
            where = f"file={prop(result.file)},line={result.line},title={prop('sopc eval')}"
            message = f"{result.name}: " + "\n".join(result.differences)
            lines.append(f"::error {where}::{data(message)}")
    for error in report.errors:
        path, _, rest = error.partition(": ")
        file, _, line = path.rpartition(":")
        where = f"file={prop(file)},line={line}" if line.isdigit() else f"file={prop(path)}"
        lines.append(f"::error {where},title={prop('sopc eval: malformed scenario')}::{data(rest)}")
    return lines


def _summary(report: EvalReport) -> dict[str, int]:
    paths = sum(entry.paths for entry in report.coverage)
    covered = sum(entry.covered for entry in report.coverage)
    return {
        "scenarios": len(report.results),
        "passed": report.passed,
        "failed": report.failed,
        "drafts_skipped": report.drafts,
        "malformed_files": len(report.errors),
        "paths": paths,
        "paths_covered": covered,
        "exit_code": report.exit_code,
    }


def _sentence(report: EvalReport) -> str:
    summary = _summary(report)
    parts = [f"{summary['scenarios']} scenarios: {summary['passed']} passed"]
    parts.append(f"{summary['failed']} failed")
    if report.drafts:
        parts.append(f"{report.drafts} drafts skipped")
    if report.errors:
        parts.append(f"{len(report.errors)} malformed files")
    parts.append(f"paths covered {summary['paths_covered']}/{summary['paths']}")
    return ", ".join(parts)


def junit_xml(report: EvalReport) -> str:
    """The report as JUnit XML: a test suite per routine, a test case per scenario."""
    root = ET.Element("testsuites", name="sopc eval")
    suites: dict[str, ET.Element] = {}
    for result in report.results:
        suite = suites.get(result.routine)
        if suite is None:
            suite = ET.SubElement(root, "testsuite", name=result.routine)
            suites[result.routine] = suite
        case = ET.SubElement(
            suite, "testcase", name=result.name, classname=result.routine,
            file=result.file, line=str(result.line),
        )  # fmt: skip
        if result.status == "failed":
            failure = ET.SubElement(case, "failure", message=result.differences[0].splitlines()[0])
            failure.text = "\n".join(result.differences)
    if report.errors:
        suite = ET.SubElement(root, "testsuite", name="scenario files")
        for error in report.errors:
            case = ET.SubElement(suite, "testcase", name=error.split(": ", 1)[0])
            ET.SubElement(case, "error", message=error)
    for suite in root:
        cases = list(suite)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(case.find("failure") is not None for case in cases)))
        suite.set("errors", str(sum(case.find("error") is not None for case in cases)))
    root.set("tests", str(len(report.results) + len(report.errors)))
    root.set("failures", str(report.failed))
    root.set("errors", str(len(report.errors)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(report: EvalReport, path: Path) -> None:
    """Write the JUnit XML file (atomically)."""
    try:
        replace_file(path, junit_xml(report).encode("utf-8"))
    except OSError as exc:
        raise OutputError(f"cannot write JUnit XML: {exc.strerror or exc}", path=path) from None


def render_drafts(report: DraftReport, *, fmt: str, sop: SopDrafts | None = None) -> None:
    """Print what drafting wrote and the notes for the reviewer (and, with `sop`, what the
    scenarios written from the SOP text say about the routines)."""
    if sop is not None and sop.estimate is not None:  # --dry-run: nothing was drafted
        if fmt == "json":
            print(json.dumps({"from_sop": sop.model_dump(mode="json")}, indent=2, sort_keys=True))
            return
        for error in sop.errors:
            print(f"error: {terminal_text(error)}", file=sys.stderr)
        for note in sop.notes:
            print(f"note: {terminal_text(note)}")
        e = sop.estimate
        print(
            f"from the SOP (dry run): {e['model_calls']} model calls, {e['cached_answers']} "
            f"answers cached, about {e['input_tokens']} input tokens (more if answers need "
            "repair); nothing written"
        )
        return
    if fmt == "json":
        payload = report.model_dump(mode="json")
        if sop is not None:
            payload["from_sop"] = sop.model_dump(mode="json") | {"summary": _sop_summary(sop)}
        print(json.dumps(payload, indent=2, sort_keys=True))
        return
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    for path in report.written:
        print(f"wrote {terminal_text(path)}")
    for path in report.removed:
        print(f"removed {terminal_text(path)} (every path has a reviewed scenario)")
    for note in report.notes:
        print(f"note: {terminal_text(note)}")
    summary = (
        f"{report.drafts} draft scenarios in {len(report.written)} files written, "
        f"{report.unchanged} unchanged, {report.complete} routines with every path reviewed"
    )
    if report.drafts:
        summary += "; review each draft against its SOP, then remove `draft: true`"
    print(summary)
    if sop is not None:
        _render_sop(sop)


def _sop_summary(sop: SopDrafts) -> dict[str, int]:
    counts = {status: 0 for status in ("agrees", "disagrees", "unsettled")}
    for check in sop.checks:
        counts[check.status] += 1
    return {
        "scenarios": len(sop.checks),
        **counts,
        "failed": len(sop.failed),
        "model_calls": sop.usage.calls,
        "cached_answers": sop.usage.cached_responses,
        "input_tokens": sop.usage.prompt_tokens,
        "output_tokens": sop.usage.completion_tokens,
    }


def _render_sop(sop: SopDrafts) -> None:
    """Scenarios from the SOP: every disagreement loud, then one summary line."""
    for error in sop.errors:
        print(f"error: {terminal_text(error)}", file=sys.stderr)
    for failed in sop.failed:
        print(f"error: no scenarios from the SOP: {terminal_text(failed)}", file=sys.stderr)
    for path in sop.written:
        print(f"wrote {terminal_text(path)}")
    for note in sop.notes:
        print(f"note: {terminal_text(note)}")
    for check in sop.checks:
        head = f"{terminal_text(check.routine)}: scenario {terminal_text(repr(check.name))}"
        for note in check.notes:
            print(f"note: {head}: {terminal_text(note)}")
        if check.status == "disagrees":
            print(f"DISAGREES: {head} (from the SOP) and the routine differ")
            for item in check.disagreements:
                for line in item.splitlines():
                    print(f"    {terminal_text(line)}")
            if check.path:
                path, file = terminal_text(check.path), terminal_text(check.file)
                print(f"    (closest path: {path}; in {file})")
        elif check.status == "unsettled":
            print(f"unsettled: {head} (from the SOP) agrees only on ways it does not state:")
            for item in check.unsettled:
                print(f"    {terminal_text(item)}")
        for item in check.untested:
            print(f"note: {head}: the routine tests nothing like the SOP's {terminal_text(item)!r}")
    counts = _sop_summary(sop)
    tokens = counts["input_tokens"] + counts["output_tokens"]
    print(
        f"from the SOP: {counts['scenarios']} scenarios, {counts['disagrees']} disagree with "
        f"their routine, {counts['unsettled']} unsettled, {counts['agrees']} agree; "
        f"{counts['model_calls']} model calls, {counts['cached_answers']} cached, {tokens} tokens"
    )
    if counts["disagrees"]:
        print(
            "review each disagreement: the SOP, the routine or the scenario is wrong "
            "(drafts prove nothing until reviewed)"
        )


def render_paths(views: list[RoutinePathsView], *, fmt: str) -> None:
    """`sopc paths`: each routine's paths, one block each, and its path checks."""
    if fmt == "json":
        print(json.dumps([view.model_dump() for view in views], indent=2, ensure_ascii=False))
        return
    for view in views:
        more = "" if view.complete else " (more paths than were walked)"
        name = f"{terminal_text(view.agent)}/{terminal_text(view.routine)}"
        print(f"{name}: {len(view.paths)} paths{more}")
        for path in view.paths:
            ways = "; ".join(terminal_text(w) for w in path.ways) or "no branch"
            print(f"  {path.number}. {ways}")
            print(f"     calls: {', '.join(terminal_text(c) for c in path.calls) or 'none'}")
            if path.collected:
                print(f"     collects: {', '.join(path.collected)}")
            print(f"     ends: {terminal_text(path.ending)}")
        for check in view.checks:
            print(f"  {check.severity} {check.code}: {terminal_text(check.message)}")
    checks = [check for view in views for check in view.checks]
    errors = sum(check.severity == "error" for check in checks)
    print(
        f"{len(views)} routines, {sum(len(v.paths) for v in views)} paths; "
        f"{errors} errors, {len(checks) - errors} warnings"
    )


def render_live(report: LiveReport, *, fmt: str) -> None:
    """Print the live eval report: the metrics, a row per scenario, each failing trial."""
    if fmt == "json":
        print(json.dumps(live_payload(report), indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    console = Console(
        highlight=False, soft_wrap=True, emoji=False, width=None if sys.stdout.isatty() else 160
    )
    if report.dry_run:
        estimate = report.estimate
        console.print(
            f"dry run: would make about {estimate.get('agent_calls', 0)} agent model calls and "
            f"{estimate.get('customer_calls', 0)} customer model calls, about "
            f"{estimate.get('input_tokens', 0)} input tokens (cached answers cost none)",
            markup=False,
        )
        return
    table = Table(box=None, show_edge=False, pad_edge=False)
    for column in ("routine", "scenario", "trials passed", "routed to", "ending"):
        table.add_column(column, overflow="fold")
    for result in report.results:
        passed = sum(trial.passed for trial in result.trials)
        last = result.trials[-1] if result.trials else None
        shown = f"{passed}/{len(result.trials)}"
        table.add_row(
            escape(terminal_text(result.routine)),
            escape(terminal_text(result.name)),
            shown if passed == len(result.trials) else f"[red]{shown}[/red]",
            escape(terminal_text(last.routed_to or "-")) if last else "-",
            escape(terminal_text(last.ending or "-")) if last else "-",
        )
    console.print(table)
    for result in report.results:
        if result.status == "failed":
            console.print(
                f"[red]FAIL[/red] {escape(terminal_text(result.file))}:{result.line} "
                f"{escape(terminal_text(result.name))}",
                markup=True,
            )
            for number, trial in enumerate(result.trials, 1):
                for difference in trial.differences:
                    console.print(f"    trial {number}: {terminal_text(difference)}", markup=False)
    metrics = report.metrics

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    console.print(
        f"pass^{metrics.k} {pct(metrics.pass_k)}, routing {pct(metrics.routing_accuracy)}, "
        f"tool precision {pct(metrics.tool_precision)}, recall {pct(metrics.tool_recall)}, "
        f"forbidden calls {metrics.forbidden_calls}, ending {pct(metrics.ending_accuracy)}, "
        f"category {pct(metrics.category_accuracy)}, priority {pct(metrics.priority_accuracy)}",
        markup=False,
    )
    if report.grades:
        grades = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.grades.items())
        console.print(f"judge grades (1-5, not pass/fail): {grades}", markup=False)
    usage = report.usage
    console.print(
        f"{len(report.results)} scenarios x {metrics.k} trials: {report.failed} failed; "
        f"{usage.model_calls} model calls ({usage.cached_calls} cached), "
        f"{usage.input_tokens} input + {usage.output_tokens} output tokens",
        markup=False,
    )
