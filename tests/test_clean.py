"""clean: each rule against a golden file, plus the promises a reviewer relies on."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sop_compiler.clean import clean, join_lines
from sop_compiler.clean.sections import title_of
from sop_compiler.clean.text import clean_block
from sop_compiler.models import (
    Document,
    Figure,
    Heading,
    ListItem,
    Paragraph,
    Provenance,
    Table,
    block_text,
)

DATA = Path(__file__).resolve().parent / "data" / "clean"
# Read at import: the autouse fixture in conftest.py clears SOPC_* variables before each test.
UPDATE_GOLDEN = os.environ.get("SOPC_UPDATE_GOLDEN") == "1"
SCENARIOS = sorted(p.name for p in DATA.iterdir() if (p / "input.json").is_file())


def _load(name: str) -> Document:
    return Document.model_validate_json((DATA / name / "input.json").read_text(encoding="utf-8"))


def _dump(document: Document) -> str:
    return json.dumps(document.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def _texts(document: Document) -> list[str]:
    return [block_text(block) for block in document.blocks]


def _rules(document: Document) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for removal in document.removals:
        out.setdefault(removal.rule, []).append(removal.text)
    return out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden(scenario: str) -> None:
    """The cleaned document matches tests/data/clean/<scenario>/expected.json."""
    expected = DATA / scenario / "expected.json"
    actual = _dump(clean(_load(scenario)))
    if UPDATE_GOLDEN:
        expected.write_text(actual, encoding="utf-8")
    assert expected.is_file(), f"missing {expected}; run with SOPC_UPDATE_GOLDEN=1"
    assert actual == expected.read_text(encoding="utf-8")


def test_clean_is_pure_and_keeps_ids() -> None:
    """The input is untouched; every kept block keeps its id and provenance."""
    document = _load("running_header")
    before = _dump(document)
    cleaned = clean(document)
    assert _dump(document) == before
    original = {block.id: block.prov for block in document.blocks}
    assert all(original[block.id] == block.prov for block in cleaned.blocks)
    assert clean(cleaned).blocks == cleaned.blocks  # idempotent


def test_running_headers_and_footers() -> None:
    cleaned = clean(_load("running_header"))
    rules = _rules(cleaned)
    assert rules["running_header"] == ["ACME Customer Service — Internal"] * 4
    assert rules["running_footer"] == [f"Refunds SOP – v2.1 – Page {n} of 4" for n in range(1, 5)]
    assert "Body text on page 2 explains what to do next." in _texts(cleaned)


def test_a_step_that_repeats_on_every_page_or_says_page_3_is_kept() -> None:
    cleaned = clean(_load("running_header"))
    steps = [block for block in cleaned.blocks if isinstance(block, ListItem)]
    assert [step.text for step in steps].count("Page 3") == 4
    assert len(steps) == 8
    kept = clean(_load("page_number")).blocks
    assert any(isinstance(block, ListItem) and block.text == "Page 3" for block in kept)


def test_page_numbers_paginated() -> None:
    cleaned = clean(_load("page_number"))
    assert _rules(cleaned)["page_number"] == ["1", "- 2 -", "Page 3 of 4", "iv"]
    assert "3" in _texts(cleaned)  # a number in the middle of a page is content


def test_page_numbers_without_pages_only_unmistakable_forms() -> None:
    cleaned = clean(_load("page_number_text"))
    assert _rules(cleaned)["page_number"] == ["Page 2 of 3", "- 3 -"]
    assert _texts(cleaned) == ["LOST PARCELS", "Track the parcel.", "Page 2", "Wait 3 days."]


def test_table_of_contents() -> None:
    cleaned = clean(_load("toc"))
    removed = _rules(cleaned)["toc"]
    assert removed[:4] == [
        "Table of Contents",
        "1. Purpose ........ 2",
        "2. Procedure .... 3\n3. Escalation ....... 5",
        "Appendix A 7",
    ]
    assert removed[4:] == ["Refunds ..... 4", "Returns ..... 5", "Credits …… 6"]
    assert "Verify identity." in _texts(cleaned)
    assert "Step with leader-free text 3" in _texts(cleaned)


def test_markdown_contents_list_of_own_headings() -> None:
    cleaned = clean(_load("toc_markdown"))
    assert _rules(cleaned)["toc"] == ["Contents", "Scope", "Procedure"]
    assert _texts(cleaned)[1:3] == ["Scope", "All closures."]


def test_revision_history_and_approvals() -> None:
    cleaned = clean(_load("revision_history"))
    rules = _rules(cleaned)
    assert rules["revision_history"] == [  # in document order
        "Version | Date | Author | Change\n1.0 | 2023-01-01 | JD | First issue",
        "Revision History",
        "v2.0 — new limits",
        "Details",
        "More history.",
    ]
    assert rules["approval"][0] == "Document control"
    texts = _texts(cleaned)
    assert "Escalate to billing." in texts
    assert "Limit | Approver\n$50 | Agent\n$500 | Team lead" in texts  # not an approval table
    # A "Sign-off" section with numbered steps is a procedure, not boilerplate.
    assert "Ask the team lead to approve in the portal." in texts


def test_boilerplate_lines() -> None:
    cleaned = clean(_load("boilerplate"))
    assert _rules(cleaned)["boilerplate"] == [
        "Confidential – internal use only",
        "This document is the property of ACME Ltd.",
        "© 2024 ACME Ltd. All rights reserved.",
    ]
    texts = _texts(cleaned)
    assert "Use the status page before anything else." in texts
    assert "Confidential cases go to the security team." in texts
    assert texts[-1].startswith("Mark the ticket as confidential")


def _doc(*blocks: Paragraph | Table | ListItem) -> Document:
    return Document(source="sop.txt", format="text", sha256="0" * 64, blocks=list(blocks))


def _prov(index: int) -> Provenance:
    return Provenance(file="sop.txt", paragraph=index)


def test_document_control_fields_and_sign_off_lines_are_removed() -> None:
    meta = "Document ID: CC-TS-001 Owner: Ravi Menon, Team Lead Version: 4.0 Effective date: 1 May"
    kv = Table(id="b2", prov=_prov(2), rows=[["Document ID", "CC-BIL-009"], ["Owner", "T. Nowak"]])
    wide = Table(
        id="b3",
        prov=_prov(3),
        header=["Document ID", "Owner", "Version", "Effective date"],
        rows=[["CC-SHP-003", "Marcus Bell", "2.1", "6 May 2024"]],
    )
    limits = Table(id="b4", prov=_prov(4), header=["Role", "Limit"], rows=[["Agent", "$50"]])
    cleaned = clean(
        _doc(
            Paragraph(id="b1", prov=_prov(1), text=meta),
            kv,
            wide,
            limits,
            Paragraph(id="b5", prov=_prov(5), text="Approved by: Ravi Menon, 12 February 2024"),
            Paragraph(
                id="b6", prov=_prov(6), text="Acme Retail Ltd - Confidential - internal use only"
            ),
            Paragraph(id="b7", prov=_prov(7), text="Owner: the agent who took the call."),
        )
    )
    rules = _rules(cleaned)
    assert len(rules["document_control"]) == 3
    assert rules["boilerplate"] == [
        "Approved by: Ravi Menon, 12 February 2024",
        "Acme Retail Ltd - Confidential - internal use only",
    ]
    # a content table and a single "Owner:" sentence are not document control
    assert [b.id for b in cleaned.blocks] == ["b4", "b7"]


def test_hyphenation() -> None:
    texts = _texts(clean(_load("hyphenation")))
    assert texts[0] == "Ask the customer for the invoice number and the follow-Up date."
    assert texts[1] == "Check the email and the 2-3 day window."
    assert texts[2] == "Chargebacks"


def test_broken_lines_and_page_breaks() -> None:
    cleaned = clean(_load("broken_lines"))
    texts = _texts(cleaned)
    assert texts[0] == (
        "When a parcel arrives damaged the agent should ask for photos of the box and the item.\n"
        "Then continue:\n- open a claim\n1. Note the date"
    )
    assert texts[1] == (
        "If the customer cannot send photos, the agent records the reason in the ticket."
    )
    assert cleaned.blocks[1].id == "b2" and cleaned.blocks[1].prov.page == 1
    assert "Next section starts here." in texts  # capitalised: not a continuation
    assert "lowercase start on the same page stays separate." in texts
    assert cleaned.removals == []  # merges are not removals


def test_whitespace_and_unicode() -> None:
    cleaned = clean(_load("whitespace"))
    heading, para, item, code, table, figure = cleaned.blocks
    assert isinstance(heading, Heading) and heading.text == "Frequently asked questions"
    assert isinstance(para, Paragraph)
    assert para.text == "Café hours: 9–5, teatime and coordination."
    assert isinstance(item, ListItem) and item.text == "Greet the customer."
    assert code.text == "def f():\n\treturn 1"  # type: ignore[union-attr]
    assert isinstance(table, Table) and table.header == ["Col A", ""]
    assert table.rows == [["x", "y z"]]
    assert isinstance(figure, Figure) and figure.caption == "Flow chart"
    assert figure.text == "Step 1\nStep 2"
    assert [removal.rule for removal in cleaned.removals] == ["empty"]  # the "" block goes silently


@pytest.mark.parametrize(
    ("raw", "joined"),
    [
        ("one\ntwo", "one two"),
        ("Done.\nNext", "Done.\nNext"),
        ("Steps:\na) first\nb) second", "Steps:\na) first\nb) second"),
        ("para one\n \n\npara two", "para one\n\npara two"),
        ("ends with e-\n\nnew", "ends with e-\n\nnew"),
        ("Re-\nFund", "Re-Fund"),
    ],
)
def test_join_lines(raw: str, joined: str) -> None:
    assert join_lines(raw) == joined


def test_non_paginated_documents_keep_repeated_text() -> None:
    """Repetition alone proves nothing without pages: a text SOP may repeat a line on purpose."""
    blocks = [
        Paragraph(id=f"b{i}", prov=Provenance(file="a.md", paragraph=i), text="Check the order.")
        for i in range(6)
    ]
    document = Document(source="a.md", format="markdown", sha256="0" * 64, blocks=blocks)
    assert len(clean(document).blocks) == 6


_WORDS = st.sampled_from(
    [
        "Page",
        "3",
        "of",
        "12",
        "check",
        "the",
        "order",
        "Contents",
        "Revision",
        "History",
        "....",
        "-",
        "\n",
        "Confidential",
        "iv",
        "\u00a0",
        "\u00ad",
        "Approvals",
        "custo-",
        "mer",
    ]
)
_TEXT = st.lists(_WORDS, min_size=1, max_size=8).map(" ".join)


@st.composite
def _documents(draw: st.DrawFn) -> Document:
    paged = draw(st.booleans())
    blocks: list[Heading | Paragraph | ListItem] = []
    for index in range(draw(st.integers(min_value=1, max_value=30))):
        page = draw(st.integers(min_value=1, max_value=4)) if paged else None
        y = draw(st.sampled_from([30.0, 200.0, 790.0]))
        prov = Provenance(
            file="x.pdf",
            page=page,
            paragraph=None if paged else index,
            bbox=(72.0, y, 500.0, y + 12.0) if paged else None,
        )
        kind = draw(st.sampled_from(["heading", "paragraph", "item", "step"]))
        text = draw(_TEXT)
        if kind == "heading":
            level = draw(st.integers(1, 3))
            blocks.append(Heading(id=f"b{index}", prov=prov, text=text, level=level))
        elif kind == "paragraph":
            blocks.append(Paragraph(id=f"b{index}", prov=prov, text=text))
        else:
            blocks.append(
                ListItem(id=f"b{index}", prov=prov, text=text, marker="1.", ordered=kind == "step")
            )
    return Document(
        source="x.pdf",
        format="pdf" if paged else "text",
        sha256="0" * 64,
        page_count=4 if paged else None,
        blocks=blocks,
    )


_PROV = Provenance(file="x.pdf", page=1, bbox=(72.0, 30.0, 500.0, 42.0))


@settings(max_examples=150, deadline=None)
@given(_documents())
@example(  # found by hypothesis: "1. 3" under "Contents" names the heading "3 3" (title "3")
    Document(
        source="x.pdf",
        format="pdf",
        sha256="0" * 64,
        page_count=4,
        blocks=[
            Heading(id="b0", prov=_PROV, text="Contents", level=1),
            ListItem(id="b1", prov=_PROV, text="3", marker="1.", ordered=True),
            Paragraph(id="b2", prov=_PROV, text="Page"),
            Heading(id="b3", prov=_PROV, text="3 3", level=1),
        ],
    )
)
def test_cleaning_never_drops_a_step(document: Document) -> None:
    """Whatever the noise around them, numbered list items survive (unless blank or TOC lines)."""
    cleaned = clean(document)
    kept = {block.id for block in cleaned.blocks}
    # a heading's title without its number ("3 Refunds" is "Refunds"), as a contents list names it
    headings = {title_of(b).casefold() for b in document.blocks if isinstance(b, Heading)}
    headings |= {b.text.casefold() for b in document.blocks if isinstance(b, Heading)}
    # "Contents" or "3 Contents": the number is not part of the title
    contents = any(title_of(b) == "Contents" for b in document.blocks if isinstance(b, Heading))
    for block in document.blocks:
        # Under a Contents heading, an item that names one of the document's own headings is a
        # contents entry (a Markdown-style contents list), not a step.
        named = re.sub(r"^\d+(?:\.\d+)*[.)]?\s+", "", block.text.strip()).casefold()
        names_a_heading = contents and (
            block.text.strip().casefold() in headings or named in headings
        )
        if (
            isinstance(block, ListItem)
            and block.ordered
            and clean_block(block) is not None
            and "...." not in block.text
            and not names_a_heading
        ):
            assert block.id in kept, block.text
    assert clean(cleaned).blocks == cleaned.blocks


def test_a_lone_document_control_label_goes_with_its_fields() -> None:
    prov = Provenance(file="a.pdf", page=1)
    document = Document(
        source="a.pdf",
        format="pdf",
        sha256="0" * 64,
        blocks=[
            Paragraph(id="b1", prov=prov, text="Document control"),
            Paragraph(id="b2", prov=prov, text="Look up the order."),
        ],
    )
    cleaned = clean(document)
    assert _texts(cleaned) == ["Look up the order."]
    assert _rules(cleaned) == {"approval": ["Document control"]}


def test_an_ocr_rubber_stamp_is_removed_as_noise() -> None:
    prov = Provenance(file="account/scan.png", page=1)
    texts = [
        "If the caller is a police officer, ask them to write to the Legal team.",
        "CONTROLLEDCOPY ACCOUNTSECURITY.",  # the stamp, its spaces lost by OCR
        "CONTROLLED COPY",
        "DO NOT REFUND GIFT CARDS.",  # an instruction in capitals
        "MASTERCARD PAYMENTS",  # a label: MASTER is a stamp word, CARD is not
        "Controlled copies are kept by the Account Security team.",
    ]
    document = Document(
        source="account/scan.png",
        format="image",
        sha256="0" * 64,
        blocks=[Paragraph(id=f"b{i}", prov=prov, text=text) for i, text in enumerate(texts)],
    )
    cleaned = clean(document)
    assert _rules(cleaned) == {"stamp": ["CONTROLLEDCOPY ACCOUNTSECURITY.", "CONTROLLED COPY"]}
    assert _texts(cleaned) == [texts[0], *texts[3:]]


def test_a_stamp_in_a_list_item_is_never_removed() -> None:
    prov = Provenance(file="sop.txt", paragraph=0)
    item = ListItem(id="b0", prov=prov, text="CONTROLLEDCOPY", marker="1.", ordered=True)
    assert _texts(clean(_doc(item))) == ["CONTROLLEDCOPY"]


def test_removing_a_boilerplate_line_leaves_text_a_second_pass_keeps() -> None:
    document = _doc(Paragraph(id="b0", prov=_prov(0), text="Page \n \n Confidential"))
    cleaned = clean(document)
    assert _texts(cleaned) == ["Page"] and _rules(cleaned) == {"boilerplate": ["Confidential"]}
    assert clean(cleaned).blocks == cleaned.blocks
