"""The blind held-out corpora (issue 11): tests/data/heldout*/<case>/ are well formed.

Every case has its document, `tools.yaml` and `gold.yaml`; the gold loads; every quote, condition
and fact is a verbatim substring of the document after whitespace folding (markup excluded); every
heading is a heading of the document; every tool the gold names is in the case's catalog. Nothing
here compiles a document: the corpora are measured by `bench/fidelity.py --heldout` and
`--heldout2` to `--heldout18` only; each later corpus (tests/data/heldout2 to heldout18) is written
blind too, in domains and case names no earlier corpus uses.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import docx
import pytest
import yaml
from gold import DOCUMENT_NAMES, Gold, iter_cases

DATA = Path(__file__).parent / "data"
# corpus -> (its folder, at least this many cases, at least this many procedures), oldest first
CORPORA = {
    "heldout": (DATA / "heldout", 10, 25),
    **{f"heldout{n}": (DATA / f"heldout{n}", 6, 20) for n in range(2, 8)},
    "heldout8": (DATA / "heldout8", 4, 15),
    "heldout9": (DATA / "heldout9", 4, 15),
    "heldout10": (DATA / "heldout10", 4, 15),
    "heldout11": (DATA / "heldout11", 4, 15),
    "heldout12": (DATA / "heldout12", 4, 15),
    "heldout13": (DATA / "heldout13", 4, 15),
    "heldout14": (DATA / "heldout14", 4, 15),
    "heldout15": (DATA / "heldout15", 4, 15),
    "heldout16": (DATA / "heldout16", 4, 15),
    "heldout17": (DATA / "heldout17", 4, 15),
    "heldout18": (DATA / "heldout18", 4, 15),
}
ROOTS = tuple(root for root, _, _ in CORPORA.values())
CASE_DIRS = sorted(p for root in ROOTS for p in root.iterdir() if p.is_dir())
CASES = [case for root in ROOTS for case in iter_cases(root)]

_SPACE = re.compile(r"\s+")
_MD_LINE_MARK = re.compile(r"^\s*(?:#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)", re.MULTILINE)
_HTML_HEADING = re.compile(r"<h[1-6][^>]*>(.*?)</h[1-6]>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]+>")
_HTML_DROP = re.compile(r"<(script|style)\b.*?</\1>", re.IGNORECASE | re.DOTALL)


def _fold(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _docx_lines(document: Path) -> tuple[list[str], list[str]]:
    """A Word file's paragraph and table-cell texts, and its heading paragraphs."""
    word = docx.Document(str(document))
    lines = [p.text for p in word.paragraphs]
    lines += [cell.text for table in word.tables for row in table.rows for cell in row.cells]
    headings = [p.text for p in word.paragraphs if p.style.name.startswith(("Heading", "Title"))]
    return lines, headings


def _words(document: Path) -> str:
    """The document's words, markup excluded, whitespace folded (the gold format, tests/gold.py)."""
    if document.suffix == ".docx":
        return _fold(" ".join(_docx_lines(document)[0]))
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
    if document.suffix == ".docx":
        return {_fold(h).casefold() for h in _docx_lines(document)[1] if h.strip()}
    raw = document.read_text(encoding="utf-8")
    if document.suffix == ".html":
        found = [html.unescape(_HTML_TAG.sub(" ", h)) for h in _HTML_HEADING.findall(raw)]
    elif document.suffix == ".md":
        found = [line.lstrip("#") for line in raw.splitlines() if line.startswith("#")]
    else:  # "== Prices and times ==": a wiki export's heading marks are no part of it
        found = [part for line in raw.splitlines() for part in (line, line.strip().strip("="))]
    folded = {_fold(h).casefold() for h in found if h.strip()}
    # "4. SCRIPT A: ESCAPE OF WATER" printed, "SCRIPT A: ESCAPE OF WATER" in the gold: the
    # numbering a heading carries and a procedure's title drops (as bench/fidelity.py matches)
    return folded | {_NUMBERING.sub("", h) for h in folded}


_NUMBERING = re.compile(r"^(?:\d+(?:\.\d+)*|\(?[a-z]\))[.:)]?\s+")


def _catalog(tools_path: Path) -> set[str]:
    data = yaml.safe_load(tools_path.read_text(encoding="utf-8"))
    names = [tool["name"] for tool in data["tools"]]
    assert len(names) == len(set(names)), f"{tools_path}: duplicate tool names"
    for tool in data["tools"]:
        assert tool["access"] in ("read", "write"), f"{tools_path}: {tool['name']} access"
        assert tool["description"], f"{tools_path}: {tool['name']} has no description"
        assert tool["parameters"]["type"] == "object", f"{tools_path}: {tool['name']} parameters"
    return set(names)


# held out 8 and 9 write their knowledge as summaries of the document's facts (tables and
# reference lines in other words), so those are no quotes; "facts kept" reads 0 there
_SUMMARISED_FACTS = {"heldout8", "heldout9"}


def _quotes(gold: Gold, corpus: str) -> list[str]:
    facts = [] if corpus in _SUMMARISED_FACTS else list(gold.knowledge)
    quotes = facts + [rule.quote for rule in gold.document_rules]
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


@pytest.mark.parametrize("later", range(1, len(ROOTS)), ids=list(CORPORA)[1:])
def test_each_corpus_shares_no_domain_or_case_name_with_the_earlier_ones(later: int) -> None:
    earlier = [case for root in ROOTS[:later] for case in iter_cases(root)]
    cases = list(iter_cases(ROOTS[later]))
    name = list(CORPORA)[later]
    shared = {g.domain for *_, g in earlier} & {g.domain for *_, g in cases}
    assert not shared, f"{name} reuses domains of an earlier corpus: {sorted(shared)}"
    names = {c.name for c, *_ in earlier} & {c.name for c, *_ in cases}
    assert not names, f"{name} reuses case names of an earlier corpus: {sorted(names)}"


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
    missing = [q for q in _quotes(gold, case_dir.parent.name) if _fold(q) not in words]
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
