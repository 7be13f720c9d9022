"""eval: scenarios that prove a routine does what its SOP says (`sopc eval`, `sopc scenarios`).

Scenarios run on the routine interpreter (`sop_compiler/interpret.py`), the one walk of a routine.

scenario.py   the scenario format (YAML, one file per routine) and its loader
evaluate.py   deterministic eval: replay reviewed scenarios, compare, count covered paths
draft.py      draft scenarios, one per path, never over reviewed ones
from_sop.py   scenarios a model writes from the SOP text alone, replayed on the routine
sop_answer.py the model's answer for from_sop: its JSON schema, the prompt, parsing
agree.py      replay a scenario from the SOP on its routine; where the two disagree
paths_report.py  `sopc paths`: every path of every routine, and checks over paths
report.py     the terminal table, JSON and JUnit XML
live.py       live eval: each scenario as a conversation with the emitted network
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sop_compiler.config import Settings
from sop_compiler.eval.draft import DraftReport, draft_scenarios
from sop_compiler.eval.evaluate import EvalReport, evaluate
from sop_compiler.eval.live import CustomerKind, LiveReport
from sop_compiler.eval.paths_report import RoutinePathsView
from sop_compiler.eval.scenario import Scenario, ScenarioError, scenario_schema
from sop_compiler.interpret import Trace, explore, interpret

if TYPE_CHECKING:
    from sop_compiler.eval.from_sop import SopDrafts

__all__ = [
    "DraftReport",
    "EvalReport",
    "Scenario",
    "ScenarioError",
    "Trace",
    "draft_folder",
    "eval_folder",
    "explore",
    "interpret",
    "live_folder",
    "paths_folder",
    "scenario_schema",
    "scenarios_folder",
    "sop_drafts_folder",
    "stale_scenarios",
]


def scenarios_folder(sops: Path, settings: Settings) -> Path:
    """The scenario folder: the `scenarios` setting, else `<sops>/scenarios`."""
    if settings.scenarios is not None:
        return settings.scenarios
    return (sops if sops.is_dir() else sops.parent) / "scenarios"


def eval_folder(sops: Path, *, settings: Settings) -> EvalReport:
    """Replay every reviewed scenario of `sops` against the routines in `settings.output`."""
    from sop_compiler.catalog import load_catalog

    catalog = load_catalog(settings.tools, sop_root=sops if sops.is_dir() else sops.parent)
    folder = scenarios_folder(sops, settings)
    return evaluate(folder, output=settings.output, catalog=catalog, shown=folder)


def draft_folder(sops: Path, *, settings: Settings) -> DraftReport:
    """Write draft scenarios (one per path) for every routine in `settings.output`."""
    from sop_compiler.catalog import load_catalog

    catalog = load_catalog(settings.tools, sop_root=sops if sops.is_dir() else sops.parent)
    folder = scenarios_folder(sops, settings)
    return draft_scenarios(folder, output=settings.output, catalog=catalog, shown=folder)


def sop_drafts_folder(sops: Path, *, settings: Settings, dry_run: bool = False) -> SopDrafts:
    """Ask the configured model for scenarios of every procedure of `sops`, from the SOP text
    alone; replay each on its routine in `settings.output` and write them as drafts (`dry_run`:
    only estimate the model calls and tokens)."""
    import asyncio

    from sop_compiler.catalog import load_catalog, sop_root
    from sop_compiler.errors import ConfigError
    from sop_compiler.eval.from_sop import draft_from_sop
    from sop_compiler.generate import get_backend
    from sop_compiler.generate.llm import LLMBackend
    from sop_compiler.ingest import discover
    from sop_compiler.pipeline import read_procedures

    backend = get_backend(settings)
    if not isinstance(backend, LLMBackend):
        raise ConfigError(
            "--from-sop needs a model: set OPENAI_API_KEY or OPENAI_BASE_URL (or `base_url` "
            "in sopc.toml), or pass --backend openai"
        )
    root = sop_root(sops)
    catalog = load_catalog(settings.tools, sop_root=root)
    files, _ = discover(sops)
    results = [read_procedures(file, root=root, settings=settings) for file in files]
    procedures = [procedure for result in results for procedure in result.procedures]
    folder = scenarios_folder(sops, settings)

    async def run() -> SopDrafts:
        try:
            return await draft_from_sop(
                folder,
                output=settings.output,
                procedures=procedures,
                catalog=catalog,
                backend=backend,
                shown=folder,
                dry_run=dry_run,
            )
        finally:
            await backend.aclose()

    report = asyncio.run(run())
    report.notes[:0] = [f"{r.source}: not read: {r.error}" for r in results if r.error]
    return report


def paths_folder(sops: Path, *, settings: Settings) -> list[RoutinePathsView]:
    """Every path (and path check) of the routines in `settings.output`."""
    from sop_compiler.catalog import load_catalog
    from sop_compiler.eval.paths_report import routine_paths

    catalog = load_catalog(settings.tools, sop_root=sops if sops.is_dir() else sops.parent)
    return routine_paths(settings.output, catalog)


def live_folder(
    sops: Path,
    *,
    settings: Settings,
    trials: int = 1,
    max_turns: int = 8,
    customer: CustomerKind = "model",
    dry_run: bool = False,
    judge: bool = False,
) -> LiveReport:
    """Run each reviewed scenario of `sops` as conversations with the network in the output."""
    from sop_compiler.catalog import load_catalog
    from sop_compiler.eval.live import evaluate_live

    catalog = load_catalog(settings.tools, sop_root=sops if sops.is_dir() else sops.parent)
    folder = scenarios_folder(sops, settings)
    return evaluate_live(
        folder, output=settings.output, settings=settings, tools=catalog.names(),
        trials=trials, max_turns=max_turns, jobs=settings.jobs, customer=customer,
        dry_run=dry_run, judge=judge, shown=folder,
    )  # fmt: skip


# what a failing replay says when the scenario, not the routine's behaviour, is out of date
_STALE = ("no longer exists", "is no catalog tool", "is no agent of the network", "now asks",
          "not a condition")  # fmt: skip


def stale_scenarios(sops: Path, *, settings: Settings) -> list[str]:
    """The reviewed scenarios that no longer fit their routine (a step, test, tool or agent they
    name is gone or changed), and the routines with paths no reviewed scenario walks: one line
    each. Empty when there is no scenario folder."""
    if not scenarios_folder(sops, settings).is_dir():
        return []
    report = eval_folder(sops, settings=settings)
    out = [f"{error} (scenario file)" for error in report.errors]
    for result in report.results:
        reasons = [d for d in result.differences if any(mark in d for mark in _STALE)]
        if reasons:
            out.append(f"{result.file}:{result.line}: {result.name!r}: {'; '.join(reasons)}")
    for entry in report.coverage:
        if entry.covered < entry.paths:
            missing = entry.paths - entry.covered
            out.append(
                f"{entry.routine}: {missing} of {entry.paths} paths have no reviewed scenario "
                "(`sopc scenarios` drafts them)"
            )
    return out
