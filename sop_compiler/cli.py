"""The `sopc` command line: parse options, build settings, call the core, render the result.

Heavy modules (pymupdf, openai, the pipeline) are imported inside the commands so that
`sopc --help` stays instant.
"""

from __future__ import annotations

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
        "Example: sopc compile sops/ -o generated_routines/"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich help formatter imports rich.markdown and costs ~100 ms per call.
    rich_markup_mode=None,
)


class RunFormat(str, Enum):
    text = "text"
    json = "json"
    github = "github"


class InspectFormat(str, Enum):
    text = "text"
    json = "json"


class DiffFormat(str, Enum):
    markdown = "markdown"
    json = "json"


_state: dict[str, bool] = {"debug": False}

SopsArg = Annotated[
    Path, typer.Argument(help="Folder of SOP files (or one file).", show_default=False)
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Output folder [default: generated_routines].")
]
FormatOpt = Annotated[
    RunFormat, typer.Option("--format", help="text, json (stdout), or github (annotations).")
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


def _guard(run: Callable[[], int]) -> None:
    """Run a command body; map errors to one line and an exit code (tracebacks with --debug)."""
    try:
        code = run()
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


def _settings(sops: Path, **overrides: Any) -> Any:
    from sop_compiler.config import load_settings

    return load_settings(sops, overrides=overrides)


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
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on validation warnings too.")
    ] = False,
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
    fmt: FormatOpt = RunFormat.text,
) -> None:
    """Compile a folder of SOPs into routines, agent code and a review page.

    Example: sopc compile sample_sops -o generated_routines
    """

    def run() -> int:
        from sop_compiler.pipeline import compile_folder
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
        result = compile_folder(
            sops,
            settings=settings,
            check=check,
            strict=strict,
            refresh=refresh,
            dry_run=dry_run,
            fmt=fmt.value,
        )
        render_run(result, fmt=fmt.value)
        return result.exit_code

    _guard(run)


@app.command()
def check(
    sops: SopsArg, output: OutputOpt = None, tools: ToolsOpt = None, fmt: FormatOpt = RunFormat.text
) -> None:
    """Exit 1 if generated outputs are stale, missing, orphaned or hand-edited; calls no model.

    Example: sopc check sample_sops -o generated_routines
    """

    def run() -> int:
        from sop_compiler.pipeline import compile_folder
        from sop_compiler.render import render_run

        settings = _settings(sops, output=output, tools=tools)
        result = compile_folder(sops, settings=settings, check=True, fmt=fmt.value)
        render_run(result, fmt=fmt.value)
        return result.exit_code

    _guard(run)


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="An SOP file or folder.", show_default=False)],
    fmt: Annotated[
        InspectFormat, typer.Option("--format", help="text or json.")
    ] = InspectFormat.text,
) -> None:
    """Show what sopc understood: blocks with provenance, what cleaning removed, procedures.

    Example: sopc inspect sample_sops/billing/refunds.pdf
    """

    def run() -> int:
        from sop_compiler.pipeline import inspect_path
        from sop_compiler.render import render_inspect

        results = inspect_path(path, settings=_settings(path))
        render_inspect(results, fmt=fmt.value)
        return int(ExitCode.INPUT) if any(result.error for result in results) else 0

    _guard(run)


@app.command()
def diff(
    old: Annotated[
        str,
        typer.Argument(help="Old output folder, or a git revision (then NEW is a revision too)."),
    ],
    new: Annotated[str, typer.Argument(help="New output folder, or a git revision.")],
    output: OutputOpt = None,
    fmt: Annotated[
        DiffFormat, typer.Option("--format", help="markdown or json.")
    ] = DiffFormat.markdown,
) -> None:
    """Structural diff of two routine sets, as Markdown for a pull-request comment.

    Example: sopc diff origin/main HEAD -o generated_routines
    """

    def run() -> int:
        from sop_compiler.diff import diff_outputs
        from sop_compiler.render import render_diff

        render_diff(diff_outputs(old, new, output=output), fmt=fmt.value)
        return 0

    _guard(run)


@app.command()
def schema(
    scenario: Annotated[
        bool, typer.Option("--scenario", help="The schema of a scenario file instead.")
    ] = False,
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

    _guard(run)


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
) -> None:
    """Replay every reviewed scenario through its routine; exit 1 if one fails, 2 if malformed.

    Example: sopc eval sample_sops -o generated_routines --junit eval.xml
    """

    def run() -> int:
        from sop_compiler.eval import eval_folder
        from sop_compiler.eval.report import render_eval, write_junit

        settings = _settings(sops, output=output, tools=tools, scenarios=scenarios)
        report = eval_folder(sops, settings=settings)
        if junit is not None:
            write_junit(report, junit)
        render_eval(report, fmt=fmt.value)
        return report.exit_code

    _guard(run)


@app.command()
def scenarios(
    sops: SopsArg,
    output: OutputOpt = None,
    tools: ToolsOpt = None,
    folder: Annotated[
        Path | None, typer.Option("--scenarios", help="Scenario folder [default: SOPS/scenarios].")
    ] = None,
    fmt: Annotated[
        InspectFormat, typer.Option("--format", help="text or json.")
    ] = InspectFormat.text,
) -> None:
    """Write draft scenarios, one per path through each routine; never over reviewed ones.

    Example: sopc scenarios sample_sops -o generated_routines
    """

    def run() -> int:
        from sop_compiler.eval import draft_folder
        from sop_compiler.eval.report import render_drafts

        settings = _settings(sops, output=output, tools=tools, scenarios=folder)
        report = draft_folder(sops, settings=settings)
        render_drafts(report, fmt=fmt.value)
        return int(ExitCode.USAGE) if report.errors else 0

    _guard(run)
