"""The only place that knows the order of the stages.

    ingest -> clean -> segment -> generate -> validate -> emit
"""

from __future__ import annotations

from pathlib import Path

from sop_compiler.clean import clean
from sop_compiler.config import Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest import discover, ingest
from sop_compiler.models import InspectResult, Procedure
from sop_compiler.segment import segment


def agent_for(source: str) -> str:
    """The agent group of an SOP: its folder relative to the SOP root (`general` at the top)."""
    parent = source.rpartition("/")[0]
    return parent or "general"


def read_procedures(path: Path, *, root: Path, settings: Settings) -> InspectResult:
    """Ingest, clean and segment one file; an InputError becomes the result's error."""
    try:
        document = clean(ingest(path, root=root, settings=settings))
    except InputError as exc:
        return InspectResult(source=exc.path or path.name, error=str(exc))
    procedures: list[Procedure] = segment(document, agent=agent_for(document.source))
    return InspectResult(source=document.source, document=document, procedures=procedures)


def inspect_path(path: Path, *, settings: Settings) -> list[InspectResult]:
    """What sopc understood of a file, or of every SOP file in a folder."""
    root = path.resolve() if path.is_dir() else path.resolve().parent
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    files, skipped = discover(path)
    results = [read_procedures(file, root=root, settings=settings) for file in files]
    results += [
        InspectResult(source=p.resolve().relative_to(root).as_posix() if p.resolve().is_relative_to(root) else str(p),
                      error=f"{p.name}: skipped: {why}")
        for p, why in skipped
    ]
    return sorted(results, key=lambda r: r.source)
