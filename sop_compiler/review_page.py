"""`sopc review OUT --html FILE`: one self-contained HTML page for reviewers who would rather click.

Per routine, its steps beside the SOP text they cite: each step links to its quote and back,
rules and edge cases with theirs, steps that cite nothing marked as added by the compiler,
errors and warnings highlighted on the steps they name, every path, and the flowchart (rendered
in the page when a `mermaid.min.js` is given to embed; else its Mermaid source is shown). The
page loads nothing from the network: no script, style or font comes from anywhere but the file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2
from pydantic import ValidationError

from sop_compiler.emit.review import routine_flowchart
from sop_compiler.errors import InputError
from sop_compiler.escape import one_line
from sop_compiler.files import TEMPLATES
from sop_compiler.lock import read_lock
from sop_compiler.models import Issue, Routine, SourceRef
from sop_compiler.paths import enumerate_paths

__all__ = ["review_page"]

_SHOWN_PATHS = 40
_MAX_SCRIPT_MB = 20


@dataclass
class _Quote:
    anchor: str
    where: str
    text: str
    cited_by: list[tuple[str, str]] = field(default_factory=list)  # (label, anchor)


@dataclass
class _SopBlock:
    """One block of the SOP procedure, with the quotes that cite it."""

    id: str
    kind: str  # heading, text, table, figure
    text: str
    context: bool  # from the document's shared context (general rules, definitions)
    quotes: list[_Quote] = field(default_factory=list)


@dataclass
class _Row:
    anchor: str
    id: str
    kind: str
    text: str
    detail: str
    quote: _Quote | None
    issues: list[Issue]

    @property
    def level(self) -> str:
        levels = {issue.severity for issue in self.issues}
        return next((lv for lv in ("error", "warning", "info") if lv in levels), "")


@dataclass
class _Page:
    anchor: str
    routine: Routine
    agent: str
    rows: list[_Row]
    rules: list[tuple[str, str, _Quote | None]]
    cases: list[tuple[str, str, _Quote | None]]
    quotes: list[_Quote]
    issues: list[Issue]
    paths: list[str]
    more_paths: bool
    flowchart: str
    step_anchor: dict[str, str]
    blocks: list[_SopBlock]  # the procedure's SOP text, when the SOP folder was given
    unplaced: list[_Quote]  # quotes of blocks not found in it

    def count(self, severity: str) -> int:
        return sum(issue.severity == severity for issue in self.issues)


def review_page(out: Path, *, mermaid_js: Path | None = None, sops: Path | None = None) -> bytes:
    """The review page of an output folder (as `sopc compile` wrote it), as UTF-8 HTML.

    With `sops` (the SOP folder), each routine is shown beside the whole text of its procedure,
    each quote inside the block it comes from; without it, beside the quotes alone.
    """
    routines, issues = _load(out)
    script = _script(mermaid_js) if mermaid_js is not None else None
    texts = _sop_texts(sops, routines) if sops is not None else {}
    pages = [
        _page(
            routine,
            issues.get((routine.agent, routine.id), []),
            n,
            texts.get((routine.source.file, routine.id)),
        )
        for n, routine in enumerate(routines, start=1)
    ]
    html = (
        _environment()
        .get_template("review.html.j2")
        .render(pages=pages, folder=out.name or str(out), mermaid=script)
    )
    return html.encode("utf-8", "backslashreplace")


def _load(out: Path) -> tuple[list[Routine], dict[tuple[str, str], list[Issue]]]:
    folder = out / "routines"
    if not folder.is_dir():
        raise InputError(
            "no routines/ folder here: not an output folder of sopc compile",
            path=out,
            hint="give the folder sopc compile wrote: sopc review generated_routines --html r.html",
        )
    routines = []
    for path in sorted(folder.rglob("*.json")):
        try:
            routines.append(Routine.model_validate_json(path.read_bytes()))
        except (OSError, ValidationError) as exc:
            raise InputError(
                f"not a routine sopc wrote: {one_line(str(exc))[:200]}", path=path
            ) from None
    lock, _ = read_lock(out)
    issues: dict[tuple[str, str], list[Issue]] = {}
    for sop in lock.sops.values():
        for proc_id, entry in sop.procedures.items():
            issues[(entry.agent, proc_id)] = list(entry.issues)
    routines.sort(key=lambda r: (r.agent, r.id))
    return routines, issues


def _sop_texts(sops: Path, routines: list[Routine]) -> dict[tuple[str, str], list[_SopBlock]]:
    """(SOP file, procedure id) -> its blocks, read again from the SOP folder."""
    from sop_compiler.catalog import sop_root
    from sop_compiler.config import load_settings
    from sop_compiler.models import Figure, Heading, Table, block_text
    from sop_compiler.pipeline import read_procedures

    if not sops.is_dir():
        raise InputError(
            "not a folder: give the SOP folder the outputs were compiled from", path=sops
        )
    root = sop_root(sops)
    settings = load_settings(sops)
    out: dict[tuple[str, str], list[_SopBlock]] = {}
    for file in sorted({routine.source.file for routine in routines}):
        path = root / file
        if not file or not path.is_file():
            continue
        found = read_procedures(path, root=root, settings=settings)
        for procedure in found.procedures:
            blocks = []
            for context, group in ((True, procedure.context), (False, procedure.blocks)):
                for block in group:
                    kind = (
                        "heading"
                        if isinstance(block, Heading)
                        else "table"
                        if isinstance(block, Table)
                        else "figure"
                        if isinstance(block, Figure)
                        else "text"
                    )
                    blocks.append(_SopBlock(block.id, kind, block_text(block), context))
            out[(file, procedure.id)] = blocks
    return out


def _script(path: Path) -> str:
    try:
        if path.stat().st_size > _MAX_SCRIPT_MB * 1024 * 1024:
            raise InputError(f"larger than {_MAX_SCRIPT_MB} MiB: not mermaid.min.js", path=path)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the Mermaid script: {exc}", path=path) from None
    # Inside <script>, only `</script` ends the element; `<\/script` means the same to JS (in a
    # string and in a regex) and ends nothing.
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _where(ref: SourceRef, fallback: str) -> str:
    where = ref.file or fallback
    if ref.page is not None:
        return f"{where} p.{ref.page}"
    if ref.paragraph is not None:
        return f"{where} ¶{ref.paragraph}"
    return where


def _page(
    routine: Routine, issues: list[Issue], number: int, blocks: list[_SopBlock] | None
) -> _Page:
    anchor = f"r{number}-{_slug(routine.id)[:60]}"
    quotes: dict[tuple[tuple[str, ...], str], _Quote] = {}

    def cite(ref: SourceRef | None, label: str, back: str) -> _Quote | None:
        if ref is None:
            return None
        key = (tuple(ref.block_ids), ref.quote)
        if key not in quotes:
            quotes[key] = _Quote(
                anchor=f"{anchor}-q{len(quotes) + 1}",
                where=_where(ref, routine.source.file),
                text=one_line(ref.quote),
            )
        quotes[key].cited_by.append((label, back))
        return quotes[key]

    by_step: dict[str, list[Issue]] = {}
    for issue in issues:
        if issue.step_id:
            by_step.setdefault(issue.step_id, []).append(issue)
    rows = []
    for step in routine.walk():
        step_anchor = f"{anchor}-s{_slug(step.id)}"
        detail = ""
        if step.tool_call is not None:
            detail = f"calls {step.tool_call.tool}"
        elif step.condition is not None:
            detail = f"if {step.condition.test}: go to {step.condition.then_step}" + (
                f", else {step.condition.else_step}" if step.condition.else_step else ""
            )
        elif step.switch is not None:
            detail = "; ".join(f"{c.when}: go to {c.goto}" for c in step.switch.cases)
        elif step.kind == "call" and step.routine:
            detail = f"follows {step.routine}"
        elif step.target:
            detail = f"to {step.target}"
        rows.append(
            _Row(
                anchor=step_anchor,
                id=step.id,
                kind=step.kind,
                text=one_line(step.text),
                detail=one_line(detail),
                quote=cite(step.source, f"step {step.id}", step_anchor),
                issues=by_step.get(step.id, []),
            )
        )
    rules: list[tuple[str, str, _Quote | None]] = [
        (str(rule.kind), one_line(rule.text), cite(rule.source, f"rule {n}", f"{anchor}-rule{n}"))
        for n, rule in enumerate(routine.rules, start=1)
    ]
    cases = [
        (
            one_line(case.when),
            one_line(case.then),
            cite(case.source, f"edge case {n}", f"{anchor}-case{n}"),
        )
        for n, case in enumerate(routine.edge_cases, start=1)
    ]
    found = enumerate_paths(routine, limit=_SHOWN_PATHS)
    order = {"error": 0, "warning": 1, "info": 2}
    placed = _place(quotes, blocks or [])
    return _Page(
        anchor=anchor,
        routine=routine,
        agent=routine.agent,
        rows=rows,
        rules=rules,
        cases=cases,
        quotes=sorted(quotes.values(), key=lambda q: _natural(q.where)),
        issues=sorted(issues, key=lambda i: (order.get(i.severity, 3), i.code)),
        paths=[path.describe() for path in found.paths],
        more_paths=not found.complete,
        flowchart="\n".join(routine_flowchart(routine)),
        step_anchor={row.id: row.anchor for row in reversed(rows)},
        blocks=blocks or [],
        unplaced=[quote for quote in quotes.values() if id(quote) not in placed],
    )


def _place(quotes: dict[tuple[tuple[str, ...], str], _Quote], blocks: list[_SopBlock]) -> set[int]:
    """Put each quote in the first block it cites; the ids of the quotes placed."""
    by_id = {block.id: block for block in blocks}
    placed: set[int] = set()
    for (block_ids, _), quote in quotes.items():
        home = next((by_id[b] for b in block_ids if b in by_id), None)
        if home is not None:
            home.quotes.append(quote)
            placed.add(id(quote))
    return placed


def _natural(text: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


@cache
def _environment() -> jinja2.Environment:
    # HTML: autoescape on, so every SOP and model string is text, never markup.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["json"] = lambda value: json.dumps(value)
    return env
