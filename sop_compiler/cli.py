"""The `sopc` command line: parse options, build settings, call the core, render the result.

Heavy modules (pymupdf, openai, the pipeline) are imported inside the commands so that
`sopc --help` stays instant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from sop_compiler.errors import ExitCode, SopcError

app = typer.Typer(
    name="sopc",
    help=(
        "sopc compiles Standard Operating Procedures (PDF, DOCX, Markdown, text, HTML, images) "
        "into "
        "agent routines and OpenAI Agents SDK code.\n\n"
        "Example: sopc compile sample_sops -o /tmp/routines (then open /tmp/routines/REVIEW.md)"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich help formatter imports rich.markdown and costs ~100 ms per call.
    rich_markup_mode=None,
)


class RunFormat(str, Enum):
    """The output formats every command takes (`markdown` is `diff`'s older name for text)."""

    text = "text"
    json = "json"
    github = "github"
    markdown = "markdown"


_state: dict[str, bool] = {"debug": False}
# 128 + SIGPIPE: what `git log | head` exits with when the reader goes away.
_BROKEN_PIPE = 141

SopsArg = Annotated[
    Path, typer.Argument(help="Folder of SOP files (or one file).", show_default=False)
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Output folder [default: generated_routines].")
]
FormatOpt = Annotated[
    RunFormat,
    typer.Option(
        "--format",
        help="text, json (stdout), or github (text plus annotations and the job summary).",
    ),
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Fail on validation warnings too, and say which.")
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Counts only: do not list each warning.")
]
DebugOpt = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks for errors (also before the command).")
]
ToolsOpt = Annotated[
    Path | None, typer.Option("--tools", help="Tool catalog [default: tools.yaml beside the SOPs].")
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend", help="offline, openai or fake [default: openai if a key or URL is set]."
    ),
]


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    """Compile SOPs into agent routines."""
    _state["debug"] = debug


def _fail(exc: SopcError) -> NoReturn:
    from sop_compiler.render import print_error

    print_error(exc)
    raise typer.Exit(int(exc.exit_code))


def _guard(run: Callable[[], int], *, debug: bool = False) -> None:
    """Run a command body; map errors to one line and an exit code (tracebacks with --debug)."""
    _state["debug"] = _state["debug"] or debug
    try:
        code = run()
    except BrokenPipeError:
        _quiet_stdout()
        raise typer.Exit(_BROKEN_PIPE) from None
    except SopcError as exc:
        if _state["debug"]:
            raise
        _fail(exc)
    except KeyboardInterrupt:
        print("interrupted: completed routines were kept", file=sys.stderr)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except typer.Exit:
        raise
    except Exception as exc:  # a bug or an unforeseen environment: one line, not a traceback
        if _state["debug"]:
            raise
        message = " ".join(str(exc).split())
        print(
            f"internal error: {type(exc).__name__}: {message} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        raise typer.Exit(int(ExitCode.FAILED)) from None
    raise typer.Exit(code)


def _quiet_stdout() -> None:
    """The reader of stdout went away (`sopc diff | head`): stop writing, say nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no real file (a test runner's buffer)
        pass


def _format(fmt: RunFormat) -> str:
    return "text" if fmt is RunFormat.markdown else fmt.value


def _settings(sops: Path, **overrides: Any) -> Any:
    from sop_compiler.config import load_settings

    return load_settings(sops, overrides=overrides)


ExplainOpt = Annotated[
    bool,
    typer.Option("--explain", help="List the parts of each stale routine's key (check, --check)."),
]


@app.command()
def compile(
    sops: SopsArg,
    output: OutputOpt = None,
    backend: BackendOpt = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model name for the openai backend.")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="OpenAI-compatible server URL.")
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="Procedures generated at once.")
    ] = None,
    tools: ToolsOpt = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if outputs are stale.")
    ] = False,
    strict: StrictOpt = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write the response cache.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Regenerate everything; refresh the cache.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List what would call the model, with token estimates."),
    ] = False,
    quiet: QuietOpt = False,
    fmt: FormatOpt = RunFormat.text,
    explain: ExplainOpt = False,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch", help="Use the OpenAI Batch API: submit, then run again to collect."
        ),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Compile a folder of SOPs into routines, agent code and a review page.

    Example: sopc compile sample_sops -o /tmp/routines
    """

    def run() -> int:
        from sop_compiler.pipeline import CompileInterrupted, compile_folder
        from sop_compiler.render import render_run

        settings = _settings(
            sops,
            output=output,
            backend=backend,
            model=model,
            base_url=base_url,
            jobs=jobs,
            tools=tools,
            cache=False if no_cache else None,
        )
        try:
            result = compile_folder(
                sops,
                settings=settings,
                check=check,
                strict=strict,
                refresh=refresh,
                dry_run=dry_run,
                fmt=_format(fmt),
                explain=explain,
                batch=batch,
            )
        except CompileInterrupted as stop:  # the summary of what was kept, then "interrupted"
            render_run(stop.result, fmt=_format(fmt), quiet=quiet, strict=strict)
            raise KeyboardInterrupt from None
        render_run(result, fmt=_format(fmt), quiet=quiet, strict=strict)
        return result.exit_code

    _guard(run, debug=debug)


@app.command()
def check(
    sops: SopsArg,
    output: OutputOpt = None,
    tools: ToolsOpt = None,
    strict: StrictOpt = False,
    quiet: QuietOpt = False,
    fmt: FormatOpt = RunFormat.text,
    explain: ExplainOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Exit 1 if generated outputs are stale, missing, orphaned or hand-edited, or a reviewed
    scenario no longer fits its routine; calls no model.

    Example: sopc check sample_sops -o generated_routines --strict
    """

    def run() -> int:
        from sop_compiler.pipeline import compile_folder
        from sop_compiler.render import render_run

        settings = _settings(sops, output=output, tools=tools)
        result = compile_folder(
            sops, settings=settings, check=True, strict=strict, fmt=_format(fmt), explain=explain
        )
        render_run(result, fmt=_format(fmt), quiet=quiet, strict=strict)
        if result.exit_code != 0:
            return result.exit_code
        from sop_compiler.escape import terminal_text
        from sop_compiler.eval import stale_scenarios

        stale = stale_scenarios(sops, settings=settings)  # outputs current: do scenarios fit?
        for line in stale:
            print(f"stale scenario: {terminal_text(line)}", file=sys.stderr)
        return int(ExitCode.FAILED) if stale else 0

    _guard(run, debug=debug)


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="An SOP file or folder.", show_default=False)],
    tools: ToolsOpt = None,
    fmt: FormatOpt = RunFormat.text,
    debug: DebugOpt = False,
) -> None:
    """Show what sopc understood: blocks with provenance, what cleaning removed, procedures.

    Example: sopc inspect sample_sops/billing/refunds-and-credits.pdf
    """

    def run() -> int:
        from sop_compiler.pipeline import inspect_path
        from sop_compiler.render import render_inspect

        results = inspect_path(path, settings=_settings(path, tools=tools))
        render_inspect(results, fmt=_format(fmt))
        return int(ExitCode.INPUT) if any(result.error for result in results) else 0

    _guard(run, debug=debug)


@app.command()
def diff(
    old: Annotated[
        str,
        typer.Argument(help="Old output folder, or a git revision (then NEW is a revision too)."),
    ],
    new: Annotated[str, typer.Argument(help="New output folder, or a git revision.")],
    output: OutputOpt = None,
    fmt: Annotated[
        RunFormat,
        typer.Option(
            "--format",
            help="text (Markdown), json, or github (Markdown, also added to the job summary).",
        ),
    ] = RunFormat.text,
    debug: DebugOpt = False,
) -> None:
    """Structural diff of two routine sets, as Markdown for a pull-request comment.

    Example: sopc diff HEAD~1 HEAD -o generated_routines
    """

    def run() -> int:
        from sop_compiler.diff import diff_outputs
        from sop_compiler.render import render_diff

        render_diff(diff_outputs(old, new, output=output), fmt=_format(fmt))
        return 0

    _guard(run, debug=debug)


@app.command()
def schema(
    scenario: Annotated[
        bool, typer.Option("--scenario", help="The schema of a scenario file instead.")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Print the strict JSON schema the LLM backend sends with every request (a routine draft).

    Example: sopc schema > routine.schema.json; sopc schema --scenario > scenario.schema.json
    """

    def run() -> int:
        import json

        if scenario:
            from sop_compiler.eval.scenario import scenario_schema

            print(json.dumps(scenario_schema(), indent=2, sort_keys=True))
            return 0
        from sop_compiler.generate.prompts import routine_schema

        print(json.dumps(routine_schema(), indent=2, sort_keys=True))
        return 0

    _guard(run, debug=debug)


@app.command()
def doctor(
    path: Annotated[
        Path,
        typer.Argument(help="Folder whose sopc.toml is read [default: .].", show_default=False),
    ] = Path("."),
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="OpenAI-compatible server URL.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name to check.")] = None,
    fmt: FormatOpt = RunFormat.text,
    debug: DebugOpt = False,
) -> None:
    """Check an endpoint: reachable, model listed, structured output, vision, slots, speed.

    Example: sopc doctor --base-url http://localhost:8080/v1 --model qwen2.5-7b-instruct
    """

    def run() -> int:
        from sop_compiler.generate.doctor import diagnose
        from sop_compiler.render.doctor import render_doctor

        report = diagnose(_settings(path, base_url=base_url, model=model))
        render_doctor(report, fmt="json" if fmt is RunFormat.json else "text")
        return report.exit_code

    _guard(run, debug=debug)


@app.command()
def init(
    folder: Annotated[
        Path,
        typer.Argument(help="Project folder [default: the current folder].", show_default=False),
    ] = Path("."),
    sops: Annotated[str, typer.Option("--sops", help="SOP folder, relative to FOLDER.")] = "sops",
    output: Annotated[
        str, typer.Option("--output", "-o", help="Output folder, relative to FOLDER.")
    ] = "generated_routines",
    debug: DebugOpt = False,
) -> None:
    """Start a project: sopc.toml, a starter tools.yaml, .gitignore lines, a CI workflow.

    Files that exist are kept, never overwritten. Example: sopc init --sops sops
    """

    def run() -> int:
        from sop_compiler.scaffold import init_project

        for line in init_project(folder, sops=sops, output=output):
            print(line)
        return 0

    _guard(run, debug=debug)


@app.command()
def review(
    output: Annotated[
        Path, typer.Argument(help="The output folder sopc compile wrote.", show_default=False)
    ],
    html: Annotated[
        Path, typer.Option("--html", help="The HTML file to write.", show_default=False)
    ],
    mermaid_js: Annotated[
        Path | None,
        typer.Option(
            "--mermaid-js",
            envvar="SOPC_MERMAID_JS",
            help="mermaid.min.js to embed, so the page draws the flowcharts (without it the "
            "Mermaid source is shown).",
        ),
    ] = None,
    sops: Annotated[
        Path | None,
        typer.Option(
            "--sops",
            help="The SOP folder: show each routine beside the whole text of its procedure "
            "(else beside the quotes alone).",
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Write one self-contained HTML page: each routine beside the SOP text its steps cite.

    Example: sopc review generated_routines --html review.html --sops sample_sops
    """

    def run() -> int:
        from sop_compiler.errors import OutputError
        from sop_compiler.files import replace_file
        from sop_compiler.review_page import review_page

        page = review_page(output, mermaid_js=mermaid_js, sops=sops)
        try:
            replace_file(html, page)
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror or exc}", path=html) from None
        print(f"wrote {html} ({len(page) // 1024} KiB); open it in a browser")
        return 0

    _guard(run, debug=debug)


@app.command("eval")
def eval_(
    sops: SopsArg,
    output: OutputOpt = None,
    tools: ToolsOpt = None,
    scenarios: Annotated[
        Path | None, typer.Option("--scenarios", help="Scenario folder [default: SOPS/scenarios].")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write the results as JUnit XML here.")
    ] = None,
    fmt: FormatOpt = RunFormat.text,
    debug: DebugOpt = False,
    live: Annotated[
        bool, typer.Option("--live", help="Run each scenario as a conversation with the network.")
    ] = False,
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="--live: runs per scenario (pass^k).")
    ] = 1,
    max_turns: Annotated[
        int, typer.Option("--max-turns", min=1, help="--live: customer turns per conversation.")
    ] = 8,
    customer: Annotated[
        str, typer.Option("--customer", help="--live: `model` (the backend's) or `scripted`.")
    ] = "model",
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="--live: conversations at once.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="--live: estimate model calls and tokens only.")
    ] = False,
    judge: Annotated[
        bool, typer.Option("--judge", help="--live: also grade each reply with a judge model.")
    ] = False,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline", help="Fail when a result drops against this stored --format json."
        ),
    ] = None,
) -> None:
    """Replay every reviewed scenario through its routine; exit 1 if one fails, 2 if malformed.

    Example: sopc eval sample_sops -o generated_routines --junit eval.xml
    With --live, each scenario runs through the emitted agent network (see README, Live eval).
    """

    def run() -> int:
        if live:
            return _eval_live(sops, output=output, tools=tools, scenarios=scenarios, junit=junit,
                              fmt=_format(fmt), trials=trials, max_turns=max_turns,
                              customer=customer, jobs=jobs, dry_run=dry_run,
                              judge=judge, baseline=baseline)  # fmt: skip
        from sop_compiler.eval import eval_folder
        from sop_compiler.eval.report import eval_payload, render_eval, write_junit

        settings = _settings(sops, output=output, tools=tools, scenarios=scenarios)
        report = eval_folder(sops, settings=settings)
        if junit is not None:
            write_junit(report, junit)
        render_eval(report, fmt=_format(fmt))
        return _against(baseline, eval_payload(report), report.exit_code)

    _guard(run, debug=debug)


def _against(baseline: Path | None, payload: dict[str, Any], code: int) -> int:
    """`code`, or 1 when this run dropped against `baseline` (each drop on stderr)."""
    if baseline is None or code == int(ExitCode.USAGE):
        return code
    from sop_compiler.escape import terminal_text
    from sop_compiler.eval.baseline import regressions

    dropped = regressions(payload, baseline)
    for line in dropped:
        print(f"regression: {terminal_text(line)}", file=sys.stderr)
    return int(ExitCode.FAILED) if dropped else code


def _eval_live(sops: Path, *, output: Path | None, tools: Path | None, scenarios: Path | None,
               junit: Path | None, fmt: str, trials: int, max_turns: int, customer: str,
               jobs: int | None, dry_run: bool, judge: bool,
               baseline: Path | None) -> int:  # fmt: skip
    from sop_compiler.eval import live_folder
    from sop_compiler.eval.report import live_payload, render_live, write_junit

    if customer not in ("model", "scripted"):
        from sop_compiler.errors import ConfigError

        raise ConfigError(f"--customer is `model` or `scripted`, not {customer!r}")
    overrides: dict[str, Any] = {"output": output, "tools": tools, "scenarios": scenarios}
    if jobs is not None:
        overrides["jobs"] = jobs
    settings = _settings(sops, **overrides)
    report = live_folder(sops, settings=settings, trials=trials, max_turns=max_turns,
                         customer="model" if customer == "model" else "scripted",
                         dry_run=dry_run, judge=judge)  # fmt: skip
    if junit is not None and not dry_run:
        write_junit(report.as_eval(), junit)
    render_live(report, fmt=fmt)
    if dry_run:
        return int(ExitCode.USAGE) if report.errors else 0
    return _against(baseline, live_payload(report), report.exit_code)


@app.command()
def scenarios(
    sops: SopsArg,
    output: OutputOpt = None,
    tools: ToolsOpt = None,
    folder: Annotated[
        Path | None, typer.Option("--scenarios", help="Scenario folder [default: SOPS/scenarios].")
    ] = None,
    fmt: FormatOpt = RunFormat.text,
    debug: DebugOpt = False,
    from_sop: Annotated[
        bool,
        typer.Option(
            "--from-sop", help="Also have the model write scenarios from the SOP text alone."
        ),
    ] = False,
    backend: BackendOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="--from-sop: estimate model calls and tokens only.")
    ] = False,
) -> None:
    """Write draft scenarios, one per path through each routine; never over reviewed ones.

    With --from-sop, the configured model also writes scenarios from each SOP's text alone
    (never the routine), replayed on the routine: disagreements are printed.
    Example: sopc scenarios sample_sops -o generated_routines
    """

    def run() -> int:
        from sop_compiler.eval import DraftReport, draft_folder, sop_drafts_folder
        from sop_compiler.eval.report import render_drafts

        overrides: dict[str, Any] = {"output": output, "tools": tools, "scenarios": folder}
        if backend is not None:
            overrides["backend"] = backend
        if dry_run and not from_sop:
            from sop_compiler.errors import ConfigError

            raise ConfigError("--dry-run goes with --from-sop (path drafts cost nothing)")
        settings = _settings(sops, **overrides)
        report = DraftReport() if dry_run else draft_folder(sops, settings=settings)
        sop = sop_drafts_folder(sops, settings=settings, dry_run=dry_run) if from_sop else None
        render_drafts(report, fmt="json" if fmt is RunFormat.json else "text", sop=sop)
        if report.errors or (sop is not None and sop.errors):
            return int(ExitCode.USAGE)
        return int(ExitCode.PARTIAL) if sop is not None and sop.failed else 0

    _guard(run, debug=debug)


@app.command()
def paths(
    sops: SopsArg,
    output: OutputOpt = None,
    tools: ToolsOpt = None,
    fmt: FormatOpt = RunFormat.text,
    debug: DebugOpt = False,
) -> None:
    """List every path through each routine (ways taken, calls, ending) and check them.

    Exit 1 when a path check finds an error (a path with no ending).
    Example: sopc paths sample_sops -o generated_routines
    """

    def run() -> int:
        from sop_compiler.eval import paths_folder
        from sop_compiler.eval.report import render_paths

        settings = _settings(sops, output=output, tools=tools)
        views = paths_folder(sops, settings=settings)
        render_paths(views, fmt=_format(fmt))
        failed = any(check.severity == "error" for view in views for check in view.checks)
        return int(ExitCode.FAILED) if failed else 0

    _guard(run, debug=debug)
