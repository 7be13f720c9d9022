"""The blind held-out corpora (issue 11): tests/data/heldout*/<case>/ are well formed.

Every case has its document, `tools.yaml` and `gold.yaml`; the gold loads; every quote, condition
and fact is a verbatim substring of the document after whitespace folding (markup excluded); every
heading is a heading of the document; every tool the gold names is in the case's catalog. Nothing
here compiles a document: the corpora are measured by `bench/fidelity.py --heldout` and
`--heldout2` only. tests/data/heldout2 is a second blind corpus, in domains the first does not use;
tests/data/heldout3 is a third, in domains neither of the first two uses; tests/data/heldout4 is a
fourth, in domains none of the first three uses; tests/data/heldout5 is a fifth, in domains none of
the first four uses; tests/data/heldout6 is a sixth, in domains none of the first five uses;
tests/data/heldout7 is a seventh, in domains none of the first six uses.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import yaml
from gold import DOCUMENT_NAMES, Gold, iter_cases

HELDOUT = Path(__file__).parent / "data" / "heldout"
HELDOUT2 = Path(__file__).parent / "data" / "heldout2"
HELDOUT3 = Path(__file__).parent / "data" / "heldout3"
HELDOUT4 = Path(__file__).parent / "data" / "heldout4"
HELDOUT5 = Path(__file__).parent / "data" / "heldout5"
HELDOUT6 = Path(__file__).parent / "data" / "heldout6"
HELDOUT7 = Path(__file__).parent / "data" / "heldout7"
# corpus -> (its folder, at least this many cases, at least this many procedures)
CORPORA = {
    "heldout": (HELDOUT, 10, 25),
    "heldout2": (HELDOUT2, 6, 20),
    "heldout3": (HELDOUT3, 6, 20),
    "heldout4": (HELDOUT4, 6, 20),
    "heldout5": (HELDOUT5, 6, 20),
    "heldout6": (HELDOUT6, 6, 20),
    "heldout7": (HELDOUT7, 6, 20),
}
ROOTS = (HELDOUT, HELDOUT2, HELDOUT3, HELDOUT4, HELDOUT5, HELDOUT6, HELDOUT7)
CASE_DIRS = sorted(p for root in ROOTS for p in root.iterdir() if p.is_dir())
CASES = [case for root in ROOTS for case in iter_cases(root)]

_SPACE = re.compile(r"\s+")
_MD_LINE_MARK = re.compile(r"^\s*(?:#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)", re.MULTILINE)
_HTML_HEADING = re.compile(r"<h[1-6][^>]*>(.*?)</h[1-6]>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]+>")
_HTML_DROP = re.compile(r"<(script|style)\b.*?</\1>", re.IGNORECASE | re.DOTALL)


def _fold(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _words(document: Path) -> str:
    """The document's words, markup excluded, whitespace folded (GOLD_FORMAT.md)."""
    raw = document.read_text(encoding="utf-8")
    if document.suffix == ".html":
        text = html.unescape(_HTML_TAG.sub(" ", _HTML_DROP.sub(" ", raw)))
    elif document.suffix == ".md":
        text = _MD_LINE_MARK.sub(" ", raw)
        text = text.replace("**", "").replace("`", "").replace("|", " ").replace("*", "")
    else:
        text = raw
    return _fold(text)


def _headings(document: Path) -> set[str]:
    """Candidate heading texts, case- and space-insensitive."""
    raw = document.read_text(encoding="utf-8")
    if document.suffix == ".html":
        found = [html.unescape(_HTML_TAG.sub(" ", h)) for h in _HTML_HEADING.findall(raw)]
    elif document.suffix == ".md":
        found = [line.lstrip("#") for line in raw.splitlines() if line.startswith("#")]
    else:
        found = raw.splitlines()
    return {_fold(h).casefold() for h in found if h.strip()}


def _catalog(tools_path: Path) -> set[str]:
    data = yaml.safe_load(tools_path.read_text(encoding="utf-8"))
    names = [tool["name"] for tool in data["tools"]]
    assert len(names) == len(set(names)), f"{tools_path}: duplicate tool names"
    for tool in data["tools"]:
        assert tool["access"] in ("read", "write"), f"{tools_path}: {tool['name']} access"
        assert tool["description"], f"{tools_path}: {tool['name']} has no description"
        assert tool["parameters"]["type"] == "object", f"{tools_path}: {tool['name']} parameters"
    return set(names)


def _quotes(gold: Gold) -> list[str]:
    quotes = list(gold.knowledge) + [rule.quote for rule in gold.document_rules]
    for procedure in gold.procedures:
        quotes += [rule.quote for rule in procedure.rules]
        quotes += [branch.condition for branch in procedure.branches]
    return quotes


def _tools_named(gold: Gold) -> set[str]:
    named = {tool for rule in gold.document_rules for tool in rule.governs}
    for procedure in gold.procedures:
        named |= set(procedure.must_call) | set(procedure.must_not_call) | set(procedure.may_call)
        named |= {tool for rule in procedure.rules for tool in rule.governs}
        for branch in procedure.branches:
            for side in (branch.then, branch.otherwise):
                if side is not None:
                    named |= set(side.calls) | set(side.not_calls)
    return named


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_corpus_size(corpus: str) -> None:
    root, min_cases, min_procedures = CORPORA[corpus]
    cases = list(iter_cases(root))
    assert len(cases) >= min_cases
    assert sum(len(gold.procedures) for *_, gold in cases) >= min_procedures
    assert len({gold.domain for *_, gold in cases}) == len(cases), "one domain per case"
    assert len({document.suffix for _, document, _, _ in cases}) >= 3, "mixed formats"


def test_corpora_do_not_share_domains_or_case_names() -> None:
    first, second = list(iter_cases(HELDOUT)), list(iter_cases(HELDOUT2))
    shared = {g.domain for *_, g in first} & {g.domain for *_, g in second}
    assert not shared, f"heldout2 reuses domains of heldout: {sorted(shared)}"
    names = {c.name for c, *_ in first} & {c.name for c, *_ in second}
    assert not names, f"heldout2 reuses case names of heldout: {sorted(names)}"


def test_third_corpus_shares_no_domain_or_case_name_with_the_first_two() -> None:
    earlier = list(iter_cases(HELDOUT)) + list(iter_cases(HELDOUT2))
    third = list(iter_cases(HELDOUT3))
    shared = {g.domain for *_, g in earlier} & {g.domain for *_, g in third}
    assert not shared, f"heldout3 reuses domains of heldout or heldout2: {sorted(shared)}"
    names = {c.name for c, *_ in earlier} & {c.name for c, *_ in third}
    assert not names, f"heldout3 reuses case names of heldout or heldout2: {sorted(names)}"


def test_fourth_corpus_shares_no_domain_or_case_name_with_the_first_three() -> None:
    earlier = [case for root in (HELDOUT, HELDOUT2, HELDOUT3) for case in iter_cases(root)]
    fourth = list(iter_cases(HELDOUT4))
    shared = {g.domain for *_, g in earlier} & {g.domain for *_, g in fourth}
    assert not shared, f"heldout4 reuses domains of an earlier corpus: {sorted(shared)}"
    names = {c.name for c, *_ in earlier} & {c.name for c, *_ in fourth}
    assert not names, f"heldout4 reuses case names of an earlier corpus: {sorted(names)}"


def test_fifth_corpus_shares_no_domain_or_case_name_with_the_first_four() -> None:
    earlier = [case for root in ROOTS[:4] for case in iter_cases(root)]
    fifth = list(iter_cases(HELDOUT5))
    shared = {g.domain for *_, g in earlier} & {g.domain for *_, g in fifth}
    assert not shared, f"heldout5 reuses domains of an earlier corpus: {sorted(shared)}"
    names = {c.name for c, *_ in earlier} & {c.name for c, *_ in fifth}
    assert not names, f"heldout5 reuses case names of an earlier corpus: {sorted(names)}"


def test_sixth_corpus_shares_no_domain_or_case_name_with_the_first_five() -> None:
    earlier = [case for root in ROOTS[:5] for case in iter_cases(root)]
    sixth = list(iter_cases(HELDOUT6))
    shared = {g.domain for *_, g in earlier} & {g.domain for *_, g in sixth}
    assert not shared, f"heldout6 reuses domains of an earlier corpus: {sorted(shared)}"
    names = {c.name for c, *_ in earlier} & {c.name for c, *_ in sixth}
    assert not names, f"heldout6 reuses case names of an earlier corpus: {sorted(names)}"


def test_seventh_corpus_shares_no_domain_or_case_name_with_the_first_six() -> None:
    earlier = [case for root in ROOTS[:6] for case in iter_cases(root)]
    seventh = list(iter_cases(HELDOUT7))
    shared = {g.domain for *_, g in earlier} & {g.domain for *_, g in seventh}
    assert not shared, f"heldout7 reuses domains of an earlier corpus: {sorted(shared)}"
    names = {c.name for c, *_ in earlier} & {c.name for c, *_ in seventh}
    assert not names, f"heldout7 reuses case names of an earlier corpus: {sorted(names)}"


@pytest.mark.parametrize(
    "case_dir", CASE_DIRS, ids=[f"{p.parent.name}/{p.name}" for p in CASE_DIRS]
)
def test_case_files(case_dir: Path) -> None:
    names = {p.name for p in case_dir.iterdir()}
    documents = names & set(DOCUMENT_NAMES)
    assert len(documents) == 1, f"{case_dir}: exactly one document, found {sorted(documents)}"
    assert {"tools.yaml", "gold.yaml"} <= names, f"{case_dir}: tools.yaml and gold.yaml"


@pytest.mark.parametrize(
    ("case_dir", "document", "tools_path", "gold"),
    CASES,
    ids=[f"{case[0].parent.name}/{case[0].name}" for case in CASES],
)
def test_case_gold(case_dir: Path, document: Path, tools_path: Path, gold: Gold) -> None:
    assert document.is_file(), f"{case_dir}: gold names {gold.document}, not in the folder"
    words = _words(document)
    missing = [q for q in _quotes(gold) if _fold(q) not in words]
    assert not missing, f"{case_dir}: not verbatim in {document.name}: {missing}"

    headings = _headings(document)
    wanted = [p.heading for p in gold.procedures] + list(gold.not_procedures)
    absent = [h for h in wanted if _fold(h).casefold() not in headings]
    assert not absent, f"{case_dir}: not a heading of {document.name}: {absent}"

    catalog = _catalog(tools_path)
    assert 6 <= len(catalog) <= 15, f"{tools_path}: {len(catalog)} tools"
    unknown = sorted(_tools_named(gold) - catalog)
    assert not unknown, f"{case_dir}: gold names tools not in tools.yaml: {unknown}"
    for procedure in gold.procedures:
        both = set(procedure.must_call) & set(procedure.must_not_call)
        assert not both, f"{case_dir}: {procedure.heading}: must and must-not call {both}"
        assert not set(procedure.may_call) & set(procedure.must_not_call)
