"""The sample SOP set: the build script reproduces the checked-in binaries, and each sample has the
features the rest of sopc is tested against (see sample_sops/README.md)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_sops"
AREAS = {"billing", "shipping", "tech_support", "account"}
CATALOG = [
    "lookup_order",
    "lookup_customer",
    "verify_identity",
    "issue_refund",
    "apply_account_credit",
    "get_invoice",
    "correct_invoice",
    "track_shipment",
    "create_return_label",
    "reship_order",
    "open_carrier_claim",
    "check_service_status",
    "run_line_diagnostics",
    "schedule_technician",
    "send_password_reset",
    "unlock_account",
    "close_account",
    "create_ticket",
]
SOP_SUFFIXES = {".pdf", ".docx", ".md", ".txt", ".html", ".png"}

pymupdf = pytest.importorskip("pymupdf")
docx = pytest.importorskip("docx")


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", REPO / "scripts/make_samples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_samples", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _load_script()


@pytest.fixture(scope="module")
def rebuilt(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    script.build_all(out)
    return out


def _sops() -> list[Path]:
    return sorted(
        p for p in SAMPLES.rglob("*") if p.suffix in SOP_SUFFIXES and p.name.lower() != "readme.md"
    )


# --- extraction helpers ----------------------------------------------------------------------


def _pdf_summary(path: Path) -> dict[str, Any]:
    with pymupdf.open(path) as doc:
        return {
            "pages": [page.get_text() for page in doc],
            "toc": doc.get_toc(),
            "images": [len(page.get_images()) for page in doc],
            "dates": (doc.metadata["creationDate"], doc.metadata["modDate"]),
        }


def _docx_summary(path: Path) -> dict[str, Any]:
    document = docx.Document(str(path))
    paragraphs = []
    for p in document.paragraphs:
        num = p._p.pPr.numPr if p._p.pPr is not None else None
        numbering = None if num is None else (num.numId.val, num.ilvl.val)
        paragraphs.append((p.style.name, numbering, p.text))
    section = document.sections[0]
    return {
        "paragraphs": paragraphs,
        "tables": [[[c.text for c in row.cells] for row in t.rows] for t in document.tables],
        "header": [p.text for p in section.header.paragraphs],
        "footer": [p.text for p in section.footer.paragraphs],
        "images": len(document.inline_shapes),
        "numbering": document.part.numbering_part.element.xml,
        "created": document.core_properties.created,
    }


def _text(path: Path, script: ModuleType) -> str:
    """The readable text of any sample (for the scanned image: the text the script printed)."""
    if path.suffix == ".pdf":
        return "\n".join(_pdf_summary(path)["pages"])
    if path.suffix == ".docx":
        summary = _docx_summary(path)
        cells = [cell for table in summary["tables"] for row in table for cell in row]
        return "\n".join([text for _, _, text in summary["paragraphs"]] + cells)
    if path.suffix == ".png":
        return str(script.scan_text())
    return path.read_text(encoding="utf-8")


def _thumbnail(path: Path) -> tuple[int, int, bytes]:
    pix = pymupdf.Pixmap(str(path))
    small = pymupdf.Pixmap(pix, 128, 166, None)
    return pix.width, pix.height, bytes(small.samples)


# --- the script reproduces the checked-in files ----------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "billing/refunds-and-credits.pdf",
        "shipping/delivery-exceptions.pdf",
    ],
)
def test_rebuilt_pdf_matches_checked_in(rebuilt: Path, name: str) -> None:
    assert _pdf_summary(rebuilt / name) == _pdf_summary(SAMPLES / name)


@pytest.mark.parametrize(
    "name",
    [
        "billing/payment-disputes.docx",
        "account/account-closure.docx",
    ],
)
def test_rebuilt_docx_matches_checked_in(rebuilt: Path, name: str) -> None:
    assert _docx_summary(rebuilt / name) == _docx_summary(SAMPLES / name)


def test_rebuilt_scan_matches_checked_in(rebuilt: Path) -> None:
    name = "account/identity-verification-scan.png"
    width, height, new = _thumbnail(rebuilt / name)
    old = _thumbnail(SAMPLES / name)
    assert (width, height) == old[:2]
    # Renderers differ slightly between pymupdf versions; the page must still look the same.
    mean_diff = sum(abs(a - b) for a, b in zip(new, old[2], strict=True)) / len(new)
    assert mean_diff < 3


def test_command_line_build_is_byte_for_byte_deterministic(
    script: ModuleType, rebuilt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert script.main(["--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == list(script.BUILDERS)
    for name in script.BUILDERS:
        assert (tmp_path / name).read_bytes() == (rebuilt / name).read_bytes(), name


def test_docx_zips_have_fixed_timestamps_and_sorted_members() -> None:
    import zipfile

    for path in SAMPLES.rglob("*.docx"):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            assert names == sorted(names)
            assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


# --- the set as a whole ----------------------------------------------------------------------


def test_set_covers_every_area_and_format() -> None:
    sops = _sops()
    assert len(sops) >= 10
    assert {p.relative_to(SAMPLES).parts[0] for p in sops} == AREAS
    assert {p.suffix for p in sops} == SOP_SUFFIXES
    for area in AREAS:
        assert len([p for p in sops if p.parent.name == area]) >= 2, area
    assert (SAMPLES / "README.md").is_file()


def test_every_sop_reads_like_a_controlled_document(script: ModuleType) -> None:
    for path in _sops():
        text = _text(path, script)
        lowered = text.lower()
        for needle in (
            "owner",
            "version",
            "effective date",
            "purpose",
            "printed copies are uncontrolled",
        ):
            assert needle in lowered, (path.name, needle)
        assert re.search(r"\bIf\b", text), path.name
        if path.suffix != ".png":
            assert "scope" in lowered and "revision history" in lowered, path.name


def test_catalog_tools_and_uncatalogued_actions_appear(script: ModuleType) -> None:
    texts = {p.name: " ".join(_text(p, script).split()) for p in _sops()}  # unwrap lines
    everything = "\n".join(texts.values())
    assert [tool for tool in CATALOG if tool not in everything] == []
    for name, text in texts.items():
        assert any(tool in text for tool in CATALOG), name
    # Actions no catalog tool covers, so that compiling shows proposed tools.
    assert "goodwill voucher" in texts["refunds-and-credits.pdf"]
    assert "mailing address in the CRM" in texts["invoice-corrections.md"]
    assert "replacement router" in texts["internet-outage-troubleshooting.txt"]
    assert "marketing subscriptions" in texts["account-closure.docx"]
    # Conditions, escalations and handoffs between areas.
    assert "Otherwise" in everything and "escalate to" in everything.lower()
    assert "transfer the customer to Billing" in texts["internet-outage-troubleshooting.txt"]
    assert "transfer the customer to Shipping" in texts["invoice-corrections.md"]


def test_text_samples_have_their_hard_cases() -> None:
    outage = (SAMPLES / "tech_support/internet-outage-troubleshooting.txt").read_text()
    assert re.search(r"^ ?\d+\. .*\n {4}\S", outage, re.M)  # indented continuation lines
    assert "go to step 9" in outage and "go to step 7" in outage
    assert re.search(r"^[A-Z ]{6,}$", outage, re.M) and re.search(r"^-{6,}$", outage, re.M)
    prose = (SAMPLES / "tech_support/device-setup.txt").read_text()
    assert not re.search(r"^\s*(\d+\.|[a-z]\.|[-*•])\s", prose, re.M)  # no list markers at all
    assert prose.count("If ") >= 2 and "`run_line_diagnostics`" in prose
    html = (SAMPLES / "shipping/returns-and-exchanges.html").read_text()
    for needle in ("<nav", "<script", "<footer", '<ol type="a">', "<table"):
        assert needle in html
    markdown = (SAMPLES / "shipping/lost-or-damaged-package.md").read_text()
    assert "\n> " in markdown and "`open_carrier_claim`" in markdown
    assert re.search(r"^   1\. ", markdown, re.M)  # a nested numbered list


# --- the binary samples' features ------------------------------------------------------------


def test_refunds_pdf_features() -> None:
    with pymupdf.open(SAMPLES / "billing/refunds-and-credits.pdf") as doc:
        assert 4 <= doc.page_count <= 6
        toc = doc.get_toc()
        assert [1, "3. Procedure"] in [entry[:2] for entry in toc]
        assert [2, "3.1 Issuing a refund"] in [entry[:2] for entry in toc]
        pages = [page.get_text() for page in doc]
        for number, text in enumerate(pages, start=1):
            assert "Acme Retail — Customer Care SOP CC-BIL-004" in text
            assert f"Confidential — internal use only | Page {number} of {doc.page_count}" in text
        assert "Contents" in pages[1] and ". . . ." in pages[1]
        assert "Owner:" in pages[0] and "Effective date:" in pages[0]
        headers = [t.extract()[0] for page in doc for t in page.find_tables().tables]
        assert ["Role", "Refund limit", "Approval needed"] in headers
        assert ["Version", "Date", "Author", "Change"] in headers
        figure_pages = [i for i, page in enumerate(doc) if page.get_images()]
        assert len(figure_pages) == 1
        assert "Figure 1: Refund decision flow" in pages[figure_pages[0]]
        spans = [
            s
            for page in doc
            for b in page.get_text("dict")["blocks"]
            for line in b.get("lines", [])
            for s in line["spans"]
        ]
        assert any(s["text"] == "Steps" and s["flags"] & 16 and s["size"] < 10 for s in spans)
        assert any(s["text"].strip() == "a." for s in spans)
        assert doc.metadata["creationDate"] == "D:20240301090000Z"


def test_delivery_exceptions_pdf_features() -> None:
    with pymupdf.open(SAMPLES / "shipping/delivery-exceptions.pdf") as doc:
        assert 2 <= doc.page_count <= 3 and doc.get_toc() == []
        text = "\n".join(page.get_text() for page in doc)
        assert "2.1" in text and "Procedure A: Handling a delivery exception" in text
        tables = [t.extract() for page in doc for t in page.find_tables().tables]
        assert any(table[0] == ["Code", "What the carrier means", "Action"] for table in tables)


def test_payment_disputes_docx_features() -> None:
    summary = _docx_summary(SAMPLES / "billing/payment-disputes.docx")
    levels = {numbering[1] for _, numbering, _ in summary["paragraphs"] if numbering}
    assert levels == {0, 1, 2}
    assert 'w:val="%1.%2"' in summary["numbering"] and 'w:val="lowerLetter"' in summary["numbering"]
    assert {"Heading 1", "Heading 2"} <= {style for style, _, _ in summary["paragraphs"]}
    assert "Notes" in [text for style, _, text in summary["paragraphs"] if style == "Heading 1"]
    deadlines = next(t for t in summary["tables"] if t[0][0] == "Dispute type")
    assert deadlines[0][1] == deadlines[0][2] == "Response deadline (days)"  # merged across
    assert deadlines[1][0] == "Dispute type"  # merged down
    assert summary["images"] == 1
    body = "\n".join(text for _, _, text in summary["paragraphs"])
    assert "CC-BIL-006" in summary["header"][0] and "Confidential" in summary["footer"][0]
    assert summary["header"][0] not in body


def test_account_closure_docx_features() -> None:
    summary = _docx_summary(SAMPLES / "account/account-closure.docx")
    styles = [style for style, _, _ in summary["paragraphs"]]
    assert styles.count("List Number") >= 9 and "List Number 2" in styles
    assert [t[0] for t in summary["tables"]] == [
        ["Situation", "What to do"],
        ["Version", "Date", "Author", "Change"],
    ]
    assert summary["header"][0] and summary["footer"][0]


def test_scan_is_an_image_without_text(script: ModuleType) -> None:
    path = SAMPLES / "account/identity-verification-scan.png"
    with pymupdf.open(path) as doc:
        assert doc[0].get_text().strip() == ""
    assert _thumbnail(path)[:2] == (1275, 1650)  # Letter at 150 dpi
    assert "verify_identity" in script.scan_text()
