"""Fidelity of the offline compiler on the gold corpora: does each routine say what its SOP says?

    python bench/fidelity.py            every case under tests/data/policies and tests/data/fidelity
    python bench/fidelity.py --json     the same numbers as JSON

For every gold procedure it compiles the document with the offline backend (no network) and
counts: the procedure found under its heading; each gold rule kept as a rule that cites it (and
with the gold kind, and the gold tools in `governs`); each gold fact kept as knowledge or a rule;
each must-call tool called; each must-not-call tool absent; validation errors. Ratios are shares of
the gold items, so they compare across versions of sopc.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from gold import Gold, GoldRule, iter_cases  # noqa: E402

from sop_compiler.catalog import load_catalog  # noqa: E402
from sop_compiler.config import Settings  # noqa: E402
from sop_compiler.generate.offline import build_draft  # noqa: E402
from sop_compiler.models import Procedure, RoutineDraft, walk_steps  # noqa: E402
from sop_compiler.pipeline import read_procedures  # noqa: E402
from sop_compiler.validate import check_draft  # noqa: E402

_MARKUP = re.compile(r"[*_`#|]+")


def _fold(text: str) -> str:
    return " ".join(_MARKUP.sub(" ", text).split()).casefold().rstrip(".")


@dataclass
class Tally:
    """Counts of gold items and of those the routines keep."""

    counts: dict[str, list[int]] = field(default_factory=dict)

    def add(self, name: str, ok: bool) -> None:
        hit, total = self.counts.setdefault(name, [0, 0])
        self.counts[name] = [hit + int(ok), total + 1]

    def ratio(self, name: str) -> str:
        hit, total = self.counts.get(name, [0, 0])
        return f"{hit}/{total} ({hit / total:.0%})" if total else "-"


def _match(title: str, heading: str) -> bool:
    return _fold(title) == _fold(heading) or _fold(title).endswith(_fold(heading))


def _score_rule(gold: GoldRule, draft: RoutineDraft, tally: Tally) -> None:
    quote = _fold(gold.quote)
    found = [
        r
        for r in draft.rules
        if quote in _fold(r.text) or (r.source and _fold(r.source.quote) in quote)
    ]
    tally.add("rules kept", bool(found))
    tally.add("rule kind agrees", any(r.kind == gold.kind for r in found))
    for tool in gold.governs:
        tally.add("rule governs gold tool", any(tool in r.governs for r in found))


def _called(draft: RoutineDraft) -> set[str]:
    return {s.tool_call.tool for s in walk_steps(draft.steps) if s.tool_call is not None}


def score_case(document: Path, tools: Path, gold: Gold, tally: Tally) -> None:
    settings = Settings()
    catalog = load_catalog(tools, sop_root=tools.parent)
    result = read_procedures(document, root=document.parent, settings=settings)
    procedures: list[Procedure] = result.procedures
    for wanted in gold.procedures:
        procedure = next((p for p in procedures if _match(p.title, wanted.heading)), None)
        tally.add("procedures found", procedure is not None)
        if procedure is None and len(procedures) == 1 and len(gold.procedures) == 1:
            procedure = procedures[0]  # one procedure, titled after the document
        if procedure is None:
            continue
        draft = build_draft(procedure, catalog=catalog)
        for rule in [*gold.document_rules, *wanted.rules]:
            _score_rule(rule, draft, tally)
        called = _called(draft)
        for tool in wanted.must_call:
            tally.add("must-call tools called", tool in called)
        for tool in wanted.must_not_call:
            tally.add("must-not-call tools absent", tool not in called)
        issues = check_draft(draft, procedure=procedure, catalog=catalog, settings=settings)
        clean = not any(issue.severity == "error" for issue in issues)
        tally.add("routines without validation errors", clean)
        kept = " ".join(_fold(k.fact) for k in draft.knowledge) + " "
        kept += " ".join(_fold(r.text) for r in draft.rules)
        for fact in gold.knowledge:
            tally.add("facts kept", _fold(fact) in kept)
    names = {_fold(p.title) for p in procedures}
    for heading in gold.not_procedures:
        tally.add("non-procedure sections kept out", _fold(heading) not in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tally = Tally()
    for root in ("policies", "fidelity"):
        for _, document, tools, gold in iter_cases(REPO / "tests" / "data" / root):
            score_case(document, tools, gold, tally)
    if args.json:
        print(json.dumps(tally.counts, indent=2, sort_keys=True))
        return 0
    width = max(len(name) for name in tally.counts)
    for name in tally.counts:
        print(f"{name:<{width}}  {tally.ratio(name)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
