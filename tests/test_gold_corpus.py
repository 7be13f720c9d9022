"""The gold corpora load, and every quote, heading and tool name in them is real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gold import Gold, GoldRule, iter_cases, load_gold_set

from sop_compiler.catalog import load_catalog
from sop_compiler.ingest import ingest

DATA = Path(__file__).parent / "data"
SAMPLES = Path(__file__).parent.parent / "sample_sops"
CASES = [*iter_cases(DATA / "policies"), *iter_cases(DATA / "fidelity")]
_MARKUP = re.compile(r"[*_`#|]+")


def _fold(text: str) -> str:
    return " ".join(_MARKUP.sub(" ", text).split()).casefold()


def _texts(path: Path) -> tuple[str, set[str]]:
    document = ingest(path, root=path.parent)
    parts: list[str] = []
    headings: set[str] = set()
    for block in document.blocks:
        if block.kind == "heading":
            headings.add(_fold(block.text))
        if block.kind == "table":
            for row in [*([block.header] if block.header else []), *block.rows]:
                parts.append(" ".join(row))
        elif getattr(block, "text", None):
            parts.append(str(getattr(block, "text", "")))
    return _fold(" ".join(parts)), headings


def _rules(gold: Gold) -> list[GoldRule]:
    return [*gold.document_rules, *(r for p in gold.procedures for r in p.rules)]


def _check(gold: Gold, document: Path, tools: Path) -> None:
    text, headings = _texts(document)
    quotes = [r.quote for r in _rules(gold)] + gold.knowledge
    quotes += [b.condition for p in gold.procedures for b in p.branches]
    missing = [q for q in quotes if _fold(q) not in text]
    assert not missing, f"{document}: not verbatim in the document: {missing}"
    wanted = [p.heading for p in gold.procedures] + gold.not_procedures
    absent = [h for h in wanted if _fold(h) not in headings]
    assert not absent, f"{document}: no such heading: {absent}"
    names = {t.name for t in load_catalog(tools, sop_root=tools.parent).tools}
    used = {n for r in _rules(gold) for n in r.governs}
    for p in gold.procedures:
        used |= {*p.must_call, *p.must_not_call}
        for b in p.branches:
            for side in (b.then, b.otherwise):
                if side is not None:
                    used |= {*side.calls, *side.not_calls}
    assert used <= names, f"{document}: tools not in {tools.name}: {sorted(used - names)}"


def test_corpus_sizes() -> None:
    assert len(list(iter_cases(DATA / "policies"))) >= 6
    assert len(list(iter_cases(DATA / "fidelity"))) >= 10


@pytest.mark.parametrize("case", CASES, ids=[c[0].name for c in CASES])
def test_case_is_consistent(case: tuple[Path, Path, Path, Gold]) -> None:
    _case_dir, document, tools, gold = case
    _check(gold, document, tools)


def test_sample_sops_gold() -> None:
    gold_set = load_gold_set(DATA / "fidelity" / "sample_sops.gold.yaml")
    for gold in gold_set.documents:
        _check(gold, SAMPLES / gold.document, SAMPLES / "tools.yaml")
