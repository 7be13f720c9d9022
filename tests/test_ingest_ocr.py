"""OCR -> structure: boxes become lines, lines become headings, nested steps and paragraphs.

The unit tests feed synthetic rapidocr boxes (no OCR engine needed). The real-OCR tests read the
sample scan and a scanned PDF page once each (OCR takes seconds a page) and skip, with a reason,
where rapidocr is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pdf_factory
import pytest
from typer.testing import CliRunner

from sop_compiler.clean import clean
from sop_compiler.cli import app
from sop_compiler.config import Settings
from sop_compiler.ingest import ingest, ocr
from sop_compiler.ingest.ocr import (
    OcrResult,
    layout_boxes,
    layout_text,
    structure_lines,
    to_model_blocks,
)
from sop_compiler.models import Document, Figure, Heading, ListItem, Paragraph
from sop_compiler.segment import segment

ROOT = Path(__file__).resolve().parent.parent
SCAN = ROOT / "sample_sops" / "account" / "identity-verification-scan.png"
HAS_RAPIDOCR = importlib.util.find_spec("rapidocr_onnxruntime") is not None
needs_rapidocr = pytest.mark.skipif(
    not HAS_RAPIDOCR, reason="needs the `ocr` extra (rapidocr-onnxruntime)"
)


# --- synthetic scans ---------------------------------------------------------------------------


def box(x0: float, y0: float, x1: float, y1: float, text: str, slope: float = 0.0) -> list[Any]:
    """One rapidocr result: the corners of an upright box, turned as a crooked scan turns them."""
    cos, sin = math.cos(math.atan(slope)), math.sin(math.atan(slope))
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return [[[x * cos - y * sin, x * sin + y * cos] for x, y in corners], text, 0.9]


def scan(page: str, *, slope: float = 0.0) -> list[list[Any]]:
    """Boxes for a page written as text: leading spaces indent 10 px each, `#` is large print,
    a blank line is white space, and `|` splits a line into two boxes."""
    out: list[list[Any]] = []
    y = 100.0
    for raw in page.strip("\n").splitlines():
        if not raw.strip():
            y += 20
            continue
        height = 42.0 if raw.lstrip().startswith("#") else 28.0
        text = raw.replace("#", "")
        x = 150.0 + 10 * (len(text) - len(text.lstrip()))
        for part in text.strip().split("|"):
            words = part.strip()
            out.append(box(x, y, x + 10 * len(words), y + height, words, slope))
            x += 10 * len(words) + 15
        y += height + 4
    return out


def kinds(page: str, *, slope: float = 0.0) -> list[tuple[str, int, str, str]]:
    """(kind, level, marker, text) of each block structured from a synthetic page."""
    blocks = structure_lines(layout_boxes(scan(page, slope=slope)))
    return [(b.kind, b.level, b.marker, b.text) for b in blocks]


SOP = """
ACME RETAIL
#Identity Verification

Purpose
Confirm that a caller is the account holder before discussing or changing an account.

Procedure
1. Look up the customer with lookup_customer using the email address.
2. Verify the caller with verify_identity. Send an SMS code first.
  . a. If there is no mobile number on file, send an email code.
    b. If neither code arrives, ask the security questions.
3.If the caller fails verification three times, do not disclose details.
   Lock the account and escalate to the Account Security team.
4. Record the verification method in the case notes.

ESCALATION
Call the duty manager when the security team cannot be reached
within one hour.
"""

EXPECTED = [
    ("paragraph", 0, "", "ACME RETAIL"),
    ("heading", 1, "", "Identity Verification"),
    ("heading", 2, "", "Purpose"),
    (
        "paragraph",
        0,
        "",
        "Confirm that a caller is the account holder before discussing or changing an account.",
    ),
    ("heading", 2, "", "Procedure"),
    ("list_item", 0, "1.", "Look up the customer with lookup_customer using the email address."),
    ("list_item", 0, "2.", "Verify the caller with verify_identity. Send an SMS code first."),
    ("list_item", 1, "a.", "If there is no mobile number on file, send an email code."),
    ("list_item", 1, "b.", "If neither code arrives, ask the security questions."),
    (
        "list_item",
        0,
        "3.",
        "If the caller fails verification three times, do not disclose details.\n"
        "Lock the account and escalate to the Account Security team.",
    ),
    ("list_item", 0, "4.", "Record the verification method in the case notes."),
    ("heading", 2, "", "ESCALATION"),
    (
        "paragraph",
        0,
        "",
        "Call the duty manager when the security team cannot be reached\nwithin one hour.",
    ),
]


def test_a_scanned_sop_becomes_headings_nested_steps_and_paragraphs() -> None:
    # large print is level 1, standalone titles under it level 2; the letterhead above the
    # title stays text; ". a." loses its speck and "3.If" its glue; wrapped lines join
    assert kinds(SOP) == EXPECTED


def test_a_crooked_scan_reads_the_same() -> None:
    # 1.5 degrees: over the page the left margin drifts by 20 px, more than an indent step
    assert kinds(SOP, slope=0.026) == EXPECTED


def test_boxes_in_any_order_give_the_same_lines() -> None:
    boxes = scan("Refund | policy\n\n2. Check | the order | today", slope=0.01)
    shuffled = list(boxes)
    random.Random(7).shuffle(shuffled)
    lines = layout_boxes(boxes)
    assert [line.text for line in lines] == ["Refund policy", "2. Check the order today"]
    assert layout_boxes(shuffled) == lines
    assert [line.gap_before for line in lines] == [True, True]


def test_speck_before_a_marker_does_not_shift_its_indent() -> None:
    # ". a." starts 20 px left of "b.": measured from the speck, "b." would nest under "a."
    lines = layout_boxes(scan("1. Check the order number.\n  . a. Ask for it.\n    b. Look it up."))
    assert [line.text for line in lines][1:] == ["a. Ask for it.", "b. Look it up."]
    assert lines[1].indent == lines[2].indent == 1
    blocks = structure_lines(lines)
    assert [(b.marker, b.level) for b in blocks] == [("1.", 0), ("a.", 1), ("b.", 1)]


def test_titles_in_running_text_stay_text() -> None:
    page = """
#Refunds

Customer Service Agents
must always check the order first.
The Refund Policy
Applies to all orders.
"""
    assert kinds(page) == [
        ("heading", 1, "", "Refunds"),
        (
            "paragraph",
            0,
            "",
            "Customer Service Agents\nmust always check the order first.\n"
            "The Refund Policy\nApplies to all orders.",
        ),
    ]


def test_numbered_sections_are_headings_and_title_case_steps_are_steps() -> None:
    page = """
1. PURPOSE
This procedure covers refunds.

2. Procedure
Follow these steps.
1. Check Order
2. Issue Refund
"""
    blocks = structure_lines(layout_boxes(scan(page)))
    assert [(b.kind, b.level, b.number or b.marker, b.text) for b in blocks] == [
        ("heading", 1, "1", "PURPOSE"),
        ("paragraph", 0, "", "This procedure covers refunds."),
        ("heading", 1, "2", "Procedure"),
        ("paragraph", 0, "", "Follow these steps."),
        ("list_item", 0, "1.", "Check Order"),
        ("list_item", 0, "2.", "Issue Refund"),
    ]


def test_a_step_followed_by_a_new_sentence_at_the_margin_ends() -> None:
    page = """
1. Look up the order with
lookup_order.
2. Refund the order.
Refunds over 100 need approval.
"""
    assert kinds(page) == [
        ("list_item", 0, "1.", "Look up the order with\nlookup_order."),
        ("list_item", 0, "2.", "Refund the order."),
        ("paragraph", 0, "", "Refunds over 100 need approval."),
    ]


def test_tesseract_text_follows_the_same_rules() -> None:
    text = "PASSWORD RESET\n\n1. Find the account.\n2.Send the link.\n a. Ask again.\n\nDone.\n"
    lines = layout_text(text)
    assert [(line.text, line.gap_before) for line in lines] == [
        ("PASSWORD RESET", True),
        ("1. Find the account.", True),
        ("2. Send the link.", False),
        ("a. Ask again.", False),
        ("Done.", True),
    ]
    blocks = structure_lines(lines)
    assert [(b.kind, b.level, b.marker) for b in blocks] == [
        ("heading", 1, ""),
        ("list_item", 0, "1."),
        ("list_item", 0, "2."),
        ("list_item", 1, "a."),
        ("paragraph", 0, ""),
    ]


def test_model_blocks_carry_page_line_index_heading_path_and_box() -> None:
    blocks = structure_lines(layout_boxes(scan("#Refunds\n\nSteps\n1. Check the order.")))
    headings = [(1, "Policies")]
    out = to_model_blocks(
        [b.scaled(0.5) for b in blocks], file="a.pdf", page=3, headings=headings, with_bbox=True
    )
    title, steps, item = out
    assert isinstance(title, Heading) and title.prov.heading_path == []
    assert isinstance(steps, Heading) and steps.prov.heading_path == ["Refunds"]
    assert isinstance(item, ListItem) and item.prov.heading_path == ["Refunds", "Steps"]
    assert (item.prov.page, item.prov.paragraph) == (3, 2)
    assert item.prov.bbox == (75.0, 99.0, 170.0, 113.0)
    assert headings == [(1, "Refunds"), (2, "Steps")]  # the caller's stack moves on


class _FakeRapid:
    """Answers like RapidOCR, with the boxes of a synthetic page; records what it was given."""

    def __init__(self, page: str) -> None:
        self.boxes = scan(page)
        self.calls: list[bytes] = []

    def __call__(self, data: bytes) -> tuple[list[list[Any]], float]:
        self.calls.append(data[:8])
        return self.boxes, 0.01


def test_image_reader_puts_the_figure_first_then_the_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ocr, "_rapidocr", lambda: _FakeRapid("#Refunds\n\n1. Check the order."))
    path = tmp_path / "refunds.png"
    path.write_bytes(pdf_factory.png())
    doc = ingest(path, root=tmp_path, settings=Settings(ocr="auto"))
    figure, heading, item = doc.blocks
    assert [b.id for b in doc.blocks] == ["b1", "b2", "b3"]
    assert isinstance(figure, Figure) and figure.read and not figure.scanned_page
    assert figure.text == "Refunds\n1. Check the order."
    assert isinstance(heading, Heading) and (heading.level, heading.text) == (1, "Refunds")
    assert isinstance(item, ListItem) and item.prov.heading_path == ["Refunds"]
    assert item.prov.bbox is None and doc.title == "Refunds"
    assert [n.code for n in doc.notices] == ["ocr"]


def test_ocr_off_keeps_only_the_unread_figure(tmp_path: Path) -> None:
    path = tmp_path / "refunds.png"
    path.write_bytes(pdf_factory.png())
    doc = ingest(path, root=tmp_path, settings=Settings(ocr="off"))
    assert len(doc.blocks) == 1 and [n.code for n in doc.notices] == ["figure_unread"]


def test_scanned_pdf_page_gets_blocks_after_its_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _FakeRapid("Closure Form\n\n1. Confirm the identity.\n2. Close the account.")
    monkeypatch.setattr(ocr, "_rapidocr", lambda: engine)
    path = tmp_path / "closure.pdf"
    path.write_bytes(pdf_factory.scanned_page())
    doc = ingest(path, root=tmp_path, settings=Settings(ocr="auto"))
    assert engine.calls == [b"\x89PNG\r\n\x1a\n"]  # the page, rendered
    index = next(i for i, b in enumerate(doc.blocks) if isinstance(b, Figure))
    figure, *rest = doc.blocks[index:]
    assert isinstance(figure, Figure) and figure.scanned_page and figure.read
    assert [(type(b).__name__, getattr(b, "marker", ""), b.prov.page) for b in rest] == [
        ("Heading", "", 2),
        ("ListItem", "1.", 2),
        ("ListItem", "2.", 2),
    ]
    # under the PDF's own title, boxes in points: the page was rendered at 150 dpi
    assert rest[1].prov.heading_path == ["Account Closure", "Closure Form"]
    assert rest[1].prov.bbox == (72.0, 73.0, 187.2, 86.4)
    message = doc.notices[0].message
    assert "read by OCR (rapidocr): check it against the image" in message


# --- real OCR ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scan_result() -> OcrResult:
    """The sample scan, read by rapidocr once for this module."""
    if not HAS_RAPIDOCR:
        pytest.skip("needs the `ocr` extra (rapidocr-onnxruntime)")
    result = ocr.ocr_read(SCAN.read_bytes(), engine="rapidocr")
    assert result is not None
    return result


@pytest.fixture(scope="module")
def reuse_scan(scan_result: OcrResult) -> Iterator[None]:
    """Readers get the module's OCR result for the sample scan instead of reading it again."""
    real = ocr.ocr_read
    data = SCAN.read_bytes()

    def cached(image: bytes, *, engine: str = "auto") -> OcrResult | None:
        return scan_result if image == data else real(image, engine=engine)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sop_compiler.ingest.image.ocr_read", cached)
        yield


@pytest.fixture(scope="module")
def scan_doc(reuse_scan: None) -> Document:
    return ingest(SCAN, root=SCAN.parent.parent, settings=Settings(ocr="auto"))


@needs_rapidocr
def test_sample_scan_headings_and_steps(scan_doc: Document) -> None:
    figure = scan_doc.blocks[0]
    assert isinstance(figure, Figure) and figure.read and figure.text
    assert "Identity Verification" in figure.text
    headings = [(b.level, b.text) for b in scan_doc.blocks if isinstance(b, Heading)]
    assert headings == [
        (1, "Identity Verification"),
        (2, "Purpose"),
        (2, "Procedure"),
        (2, "Exceptions"),
    ]
    items = [b for b in scan_doc.blocks if isinstance(b, ListItem)]
    assert [(b.marker, b.level) for b in items] == [
        ("1.", 0),
        ("2.", 0),
        ("a.", 1),
        ("b.", 1),
        ("3.", 0),
        ("4.", 0),
        ("5.", 0),
    ]
    assert all(b.prov.heading_path == ["Identity Verification", "Procedure"] for b in items)
    assert "verify_identity" in items[1].text and "email_code" in items[2].text
    assert "escalate to the Account Security team" in items[4].text  # its wrapped line
    exceptions = [b for b in scan_doc.blocks if b.prov.heading_path[-1:] == ["Exceptions"]]
    assert isinstance(exceptions[0], Paragraph)
    assert exceptions[0].text.endswith("ask them\nto write to the Legal team.")
    assert scan_doc.title == "Identity Verification"
    assert [n.code for n in scan_doc.notices] == ["ocr"]


@needs_rapidocr
def test_sample_scan_segments_into_one_procedure(scan_doc: Document) -> None:
    [procedure] = segment(clean(scan_doc), agent="account")
    assert procedure.title == "Identity Verification"
    steps = [b for b in procedure.blocks if isinstance(b, ListItem)]
    assert [b.marker for b in steps] == ["1.", "2.", "a.", "b.", "3.", "4.", "5."]


@needs_rapidocr
def test_inspect_json_shows_the_scanned_structure(reuse_scan: None) -> None:
    result = CliRunner().invoke(app, ["inspect", str(SCAN), "--format", "json"])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)
    blocks = entry["document"]["blocks"]
    assert blocks[0]["kind"] == "figure" and blocks[0]["read"] is True
    assert [b["text"] for b in blocks if b["kind"] == "heading"] == [
        "Identity Verification",
        "Purpose",
        "Procedure",
        "Exceptions",
    ]
    markers = [(b["marker"], b["level"]) for b in blocks if b["kind"] == "list_item"]
    assert markers == [("1.", 0), ("2.", 0), ("a.", 1), ("b.", 1), ("3.", 0), ("4.", 0), ("5.", 0)]
    assert [p["title"] for p in entry["procedures"]] == ["Identity Verification"]


@needs_rapidocr
def test_real_ocr_of_a_scanned_pdf_page(tmp_path: Path) -> None:
    path = tmp_path / "closure.pdf"
    path.write_bytes(pdf_factory.scanned_page())
    doc = ingest(path, root=tmp_path, settings=Settings(ocr="rapidocr"))
    items = [b for b in doc.blocks if isinstance(b, ListItem)]
    assert [(b.marker, b.prov.page) for b in items] == [("1.", 2), ("2.", 2)]
    assert items[0].text == "Confirm the customer's identity."
    # the scan's own title ("Account closure form", its spaces lost) sits under the PDF's
    assert items[0].prov.heading_path[0] == "Account Closure"
    assert len(items[0].prov.heading_path) == 2
