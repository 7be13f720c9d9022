"""PDF reader: headings, lists, tables, figures, scanned pages; golden files; bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pdf_factory
import pytest

from sop_compiler.config import Limits, Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest import ingest
from sop_compiler.ingest.ocr import OcrResult, layout_text
from sop_compiler.models import Document, Figure, Heading, ListItem, Paragraph, Table

DATA = Path(__file__).parent / "data" / "pdf"
# read at import: the autouse fixture in conftest.py removes SOPC_* variables before each test
UPDATE_GOLDEN = os.environ.get("SOPC_UPDATE_GOLDEN") == "1"
OFF = Settings(ocr="off")


def read(tmp_path: Path, data: bytes, name: str = "sop.pdf", settings: Settings = OFF) -> Document:
    path = tmp_path / name
    path.write_bytes(data)
    return ingest(path, root=tmp_path, settings=settings)


def headings(doc: Document) -> list[tuple[int, str | None, str]]:
    return [(b.level, b.number, b.text) for b in doc.blocks if isinstance(b, Heading)]


# --- golden files ------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(pdf_factory.SCENARIOS))
def test_golden(scenario: str) -> None:
    folder = DATA / scenario
    source, expected = folder / "source.pdf", folder / "expected.json"
    if UPDATE_GOLDEN:
        folder.mkdir(parents=True, exist_ok=True)
        source.write_bytes(pdf_factory.SCENARIOS[scenario]())
    document = ingest(source, root=folder, settings=OFF)
    actual = document.model_dump_json(indent=2) + "\n"
    if UPDATE_GOLDEN:
        expected.write_text(actual, encoding="utf-8")
    assert actual == expected.read_text(encoding="utf-8")


def test_factory_is_deterministic() -> None:
    # golden files keep a stable sha256 only if rebuilding gives the same bytes
    assert pdf_factory.table() == pdf_factory.table()
    assert pdf_factory.scanned_page() == pdf_factory.scanned_page()


# --- structure ---------------------------------------------------------------------------------


def test_numbered_steps_keep_markers_levels_and_wrapped_lines(tmp_path: Path) -> None:
    doc = read(tmp_path, pdf_factory.numbered_steps())
    assert headings(doc) == [
        (1, None, "Password Reset Procedure"),
        (2, "1", "Purpose"),
        (2, "2", "Procedure"),
        (3, "2.1", "Exceptions"),
    ]
    items = [(b.marker, b.level, b.ordered) for b in doc.blocks if isinstance(b, ListItem)]
    assert items == [
        ("1.", 0, True),
        ("2.", 0, True),
        ("a)", 1, True),
        ("b)", 1, True),
        ("(i)", 2, True),
        ("3.", 0, True),
        ("•", 1, False),
        ("•", 1, False),
        ("4.", 0, True),
        ("-", 0, False),
    ]
    second = next(b for b in doc.blocks if isinstance(b, ListItem) and b.marker == "2.")
    # the wrapped line stays in its item, as a visual line break; the marker is not in the text
    assert second.text.startswith("Look up the customer with `lookup_customer`")
    assert "\n" in second.text and "try again before going further." in second.text
    assert not any(isinstance(b, Paragraph) and "try again" in b.text for b in doc.blocks)
    exceptions = next(b for b in doc.blocks if isinstance(b, ListItem) and b.marker == "-")
    assert exceptions.prov.heading_path == ["Password Reset Procedure", "Procedure", "Exceptions"]
    assert [b.id for b in doc.blocks] == [f"b{i}" for i in range(1, len(doc.blocks) + 1)]
    assert doc.title == "Password Reset Procedure"


def test_running_header_footer_and_page_numbers_are_kept_with_place(tmp_path: Path) -> None:
    doc = read(tmp_path, pdf_factory.header_footer(pages=3))
    assert doc.page_count == 3
    header = [
        b for b in doc.blocks if isinstance(b, Paragraph) and b.text.startswith("ACME Support")
    ]
    footer = [b for b in doc.blocks if isinstance(b, Paragraph) and b.text.startswith("Page ")]
    assert [b.prov.page for b in header] == [1, 2, 3]
    assert [b.text for b in footer] == ["Page 1 of 3", "Page 2 of 3", "Page 3 of 3"]
    assert all(b.prov.bbox is not None and b.prov.bbox[1] > 700 for b in footer)
    assert len({b.prov.bbox for b in header}) == 1  # same place on every page, for clean to find
    # a running header is never mistaken for a heading
    assert [text for _, _, text in headings(doc)] == [
        "Refund Handling",
        "Stage 1",
        "Stage 2",
        "Stage 3",
    ]
    assert doc.title == "Refund Handling SOP"  # from the metadata


def test_table_rows_keep_word_spaces_and_text_is_not_repeated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = read(tmp_path, pdf_factory.table())
    tables = [b for b in doc.blocks if isinstance(b, Table)]
    assert len(tables) == 1
    assert tables[0].header == ["Order value", "Agent action", "Approval"]
    assert tables[0].rows[0] == ["Under $50", "Refund up to $50", "None"]
    assert tables[0].rows[2] == ["Over $500", "Escalate to billing", "Billing manager"]
    texts = [b.text for b in doc.blocks if isinstance(b, Paragraph)]
    assert texts == [
        "Agents may approve refunds within these limits without a supervisor.",
        "Record the approval in the ticket before issuing the refund.",
    ]
    assert [b.kind for b in doc.blocks] == ["heading", "paragraph", "table", "paragraph"]
    assert capsys.readouterr().out == ""  # pymupdf's advert must not reach stdout


def test_outline_gives_levels_and_bold_lines_become_subheadings(tmp_path: Path) -> None:
    doc = read(tmp_path, pdf_factory.outline_bold_subheadings())
    assert headings(doc) == [
        (1, None, "Shipping Exceptions"),
        (2, None, "Lost parcels"),
        (3, None, "Before you start"),
        (3, None, "Opening a claim"),
        (2, None, "Damaged parcels"),
        (3, None, "Photos required"),
    ]
    sentence = next(b for b in doc.blocks if "ends with a period" in getattr(b, "text", ""))
    assert isinstance(sentence, Paragraph)
    photos = next(
        b for b in doc.blocks if isinstance(b, Paragraph) and b.text.startswith("Ask the")
    )
    assert photos.prov.page == 2
    assert photos.prov.heading_path == ["Shipping Exceptions", "Damaged parcels", "Photos required"]


def test_scanned_page_is_rendered_and_reported(tmp_path: Path) -> None:
    doc = read(tmp_path, pdf_factory.scanned_page())
    figure = doc.blocks[-1]
    assert isinstance(figure, Figure) and figure.scanned_page and figure.prov.page == 2
    assert figure.image is not None and figure.image.mime == "image/png"
    assert doc.images[figure.image.sha256].startswith(b"\x89PNG")
    assert figure.read is False and figure.text is None
    assert [(n.code, n.prov.page if n.prov else None) for n in doc.notices] == [("scanned_page", 2)]
    assert "not read" in doc.notices[0].message and "OCR is off" in doc.notices[0].message


def test_scanned_page_text_comes_from_ocr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, str]] = []

    def fake_ocr(data: bytes, *, engine: str = "auto") -> OcrResult:
        calls.append((data[:8], engine))
        text = "Account closure form\n1. Confirm the customer's identity."
        return OcrResult("tesseract", tuple(layout_text(text)))

    monkeypatch.setattr("sop_compiler.ingest.pdf.ocr_read", fake_ocr)
    doc = read(tmp_path, pdf_factory.scanned_page(), settings=Settings(ocr="auto"))
    figure = next(b for b in doc.blocks if isinstance(b, Figure))
    assert figure.read is True and figure.prov.page == 2
    assert figure.text is not None and figure.text.startswith("Account closure form")
    step = doc.blocks[-1]  # the OCR text follows its figure as blocks
    assert isinstance(step, ListItem) and (step.marker, step.prov.page) == ("1.", 2)
    assert calls == [(b"\x89PNG\r\n\x1a\n", "auto")]
    assert "read by OCR (tesseract)" in doc.notices[0].message


def test_figure_with_caption_and_tiny_images_skipped(tmp_path: Path) -> None:
    doc = read(tmp_path, pdf_factory.figure_with_caption())
    figures = [b for b in doc.blocks if isinstance(b, Figure)]
    assert len(figures) == 1  # the 10 px icon is decoration
    figure = figures[0]
    assert figure.caption == "Figure 1: Escalation flowchart"
    assert figure.image is not None and (figure.image.width, figure.image.height) == (200, 100)
    assert len(doc.images[figure.image.sha256]) > 0
    assert not any(isinstance(b, Paragraph) and b.text.startswith("Figure 1") for b in doc.blocks)
    assert [b.kind for b in doc.blocks] == ["heading", "paragraph", "figure", "paragraph"]


def test_two_columns_read_left_column_first(tmp_path: Path) -> None:
    doc = read(tmp_path, pdf_factory.two_columns())
    texts = [b.text for b in doc.blocks if isinstance(b, (Paragraph, Heading))]
    assert texts[0] == "Two Column Notice"
    assert texts[1].startswith("Left column sentence 1") and "Right" not in texts[1]
    assert texts[2].startswith("Right column sentence 1") and "Left" not in texts[2]


def test_table_of_contents_lines_stay_separate_paragraphs(tmp_path: Path) -> None:
    w = pdf_factory.Writer()
    w.heading("Contents", size=16)
    for entry in ("1. Purpose . . . . . . . . . . 2", "2. Procedure . . . . . . . . . . 3"):
        w.paragraph(entry, bold=True, gap=0)
    doc = read(tmp_path, w.finish())
    assert [(b.kind, getattr(b, "text", "")) for b in doc.blocks[1:]] == [
        ("paragraph", "1. Purpose . . . . . . . . . . 2"),
        ("paragraph", "2. Procedure . . . . . . . . . . 3"),
    ]  # neither headings nor list items: `clean` drops them as a table of contents


def test_damaged_page_is_reported_and_the_rest_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sop_compiler.ingest.pdf import _page

    real = _page.page_lines
    seen = {"n": 0}

    def flaky(page_dict: dict[str, object]) -> object:
        seen["n"] += 1
        if seen["n"] == 2:
            raise RuntimeError("syntax error in content stream")
        return real(page_dict)  # type: ignore[arg-type]

    monkeypatch.setattr(_page, "page_lines", flaky)
    doc = read(tmp_path, pdf_factory.header_footer(pages=3))
    assert [b.prov.page for b in doc.blocks if isinstance(b, Heading)] == [1, 1, 3]
    assert [(n.code, n.prov.page if n.prov else None) for n in doc.notices] == [("damaged_page", 2)]


def test_reader_module_does_not_import_pymupdf_until_used() -> None:
    code = "import sys, sop_compiler.ingest.pdf; print('pymupdf' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- bad input ---------------------------------------------------------------------------------


def test_encrypted_pdf_needs_a_password(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        read(tmp_path, pdf_factory.encrypted(), name="secret.pdf")
    assert str(err.value) == "secret.pdf: is encrypted; a password is needed to read it"


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.9])
def test_truncated_pdf_is_an_error(tmp_path: Path, fraction: float) -> None:
    data = pdf_factory.header_footer()
    with pytest.raises(InputError) as err:
        read(tmp_path, data[: int(len(data) * fraction)], name="cut.pdf")
    assert str(err.value).startswith("cut.pdf: is ")
    assert "truncated" in str(err.value)


def test_corrupt_pdf_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^junk\.pdf: is not a readable PDF"):
        read(tmp_path, b"%PDF-1.7\n" + b"\x00garbage" * 50, name="junk.pdf")


def test_page_limit_names_the_setting(tmp_path: Path) -> None:
    settings = Settings(ocr="off", limits=Limits(max_pages=2))
    with pytest.raises(InputError) as err:
        read(tmp_path, pdf_factory.header_footer(pages=3), name="long.pdf", settings=settings)
    assert "long.pdf" in str(err.value) and "3 pages" in str(err.value)
    assert "limit of 2" in str(err.value) and "limits.max_pages" in str(err.value)


def test_title_page_lines_beside_the_title_are_paragraphs(tmp_path: Path) -> None:
    # with an outline: only the page's largest line is a heading until the outline starts
    w = pdf_factory.Writer()
    w.heading("ACME RETAIL", size=13)
    w.paragraph("Customer Care Standard Operating Procedure", size=12)
    w.heading("Refunds and Account Credits", size=24)
    w.heading("SOP CC-BIL-004", size=12, bold=False)
    w.new_page()
    w.heading("1 Purpose", size=16)
    w.paragraph("This procedure says how to refund an order.")
    doc = read(tmp_path, w.finish(toc=[(1, "1 Purpose", 2)]))
    assert headings(doc) == [(1, None, "Refunds and Account Credits"), (1, "1", "Purpose")]
    texts = [b.text for b in doc.blocks if isinstance(b, Paragraph)]
    assert texts[0].startswith("ACME RETAIL") and "SOP CC-BIL-004" in texts
    # without one: a plain subtitle right under the title is no level-3 heading
    w = pdf_factory.Writer()
    w.heading("Delivery Exceptions", size=20)
    w.heading(
        "Shipping Customer Care - Standard Operating Procedure CC-SHP-002", size=12.5, bold=False
    )
    w.heading("Purpose", size=14)
    w.paragraph("A delivery exception is any carrier event that stops a parcel.")
    w.heading("Scope", size=14)
    w.paragraph("All parcels.")
    doc = read(tmp_path, w.finish(), name="delivery.pdf")
    assert headings(doc) == [
        (1, None, "Delivery Exceptions"),
        (2, None, "Purpose"),
        (2, None, "Scope"),
    ]


# --- ruled grids read without pymupdf's table finder -------------------------------------------

_GRID_ROWS = [
    ["Order value", "Agent action", "Approval"],
    ["Under $50", "Refund up to $50", "None"],
    ["$50 to $500", "Refund after checking the order", "Team lead"],
    ["Over $500", "Escalate to billing", "Billing manager"],
]


def _grid_pdf(
    rows: list[list[str | None]],
    *,
    widths: tuple[float, ...] = (120, 200, 150),
    heights: list[float] | None = None,
    no_wall: frozenset[tuple[int, int]] = frozenset(),  # (column rule, row) left out: merged
    no_rule: frozenset[tuple[int, int]] = frozenset(),  # (row rule, column) left out
) -> bytes:
    """A page with a paragraph and a table drawn rule by rule, the first row in bold."""
    import pymupdf

    heights = heights or [20.0] * len(rows)
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 90), "Agents may approve refunds within these limits.", fontsize=10)
    xs = [72.0]
    for w in widths:
        xs.append(xs[-1] + w)
    ys = [130.0]
    for h in heights:
        ys.append(ys[-1] + h)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            for k, part in enumerate((cell or "").split("\n")):
                font = "hebo" if r == 0 else "helv"
                page.insert_text((xs[c] + 4, ys[r] + 14 + 12 * k), part, fontname=font, fontsize=10)
    for r, y in enumerate(ys):
        for c in range(len(widths)):
            if (r, c) not in no_rule:
                page.draw_line((xs[c], y), (xs[c + 1], y))
    for c, x in enumerate(xs):
        for r in range(len(rows)):
            if (c, r) not in no_wall:
                page.draw_line((x, ys[r]), (x, ys[r + 1]))
    page.insert_text((72, ys[-1] + 30), "Record the approval in the ticket.", fontsize=10)
    data: bytes = doc.tobytes()
    return data


def _tables_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes
) -> tuple[list[Table], list[Table], int]:
    """Tables read as shipped and with the grid builder off, and the table finder's calls."""
    import pymupdf

    from sop_compiler.ingest.pdf import _grid

    calls = []
    find_tables = pymupdf.Page.find_tables

    def counted(self: object, *args: object, **kwargs: object) -> object:
        calls.append(1)
        return find_tables(self, *args, **kwargs)

    monkeypatch.setattr(pymupdf.Page, "find_tables", counted)
    fast = [b for b in read(tmp_path, data).blocks if isinstance(b, Table)]
    used = len(calls)
    monkeypatch.setattr(_grid, "ruled_tables", lambda *args, **kwargs: None)
    slow = [b for b in read(tmp_path, data, name="slow.pdf").blocks if isinstance(b, Table)]
    for table in (*fast, *slow):
        table.prov.file = ""  # the two reads differ only in file name
    return fast, slow, used


def test_ruled_grid_is_built_without_the_table_finder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow, finder_calls = _tables_both_ways(tmp_path, monkeypatch, _grid_pdf(_GRID_ROWS))
    assert finder_calls == 0
    assert fast == slow  # the same table, box and header as pymupdf's table finder gives
    assert fast[0].header == _GRID_ROWS[0]
    assert fast[0].rows == _GRID_ROWS[1:]
    assert fast[0].prov.bbox == (72.0, 130.0, 542.0, 210.0)


def test_ruled_grid_keeps_word_spaces_and_joins_wrapped_cell_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[list[str | None]] = [
        ["Order value", "Agent action", "Approval"],
        ["Under $50", "Refund up to $50\nafter checking the order", "None"],
        ["Over $500", "Escalate  to billing", "Billing manager"],
    ]
    data = _grid_pdf(rows, heights=[20, 34, 20])
    fast, slow, finder_calls = _tables_both_ways(tmp_path, monkeypatch, data)
    assert finder_calls == 0
    assert fast == slow
    assert fast[0].rows == [
        ["Under $50", "Refund up to $50 after checking the order", "None"],
        ["Over $500", "Escalate to billing", "Billing manager"],
    ]


def test_merged_cells_put_text_in_the_first_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[list[str | None]] = [
        ["Order value", "Agent action", "Approval"],
        ["Refunds", None, None],  # a section row across the whole table
        ["Under $50", "Refund up to $50", "None"],
        ["Over $500 escalates to the billing team", None, "Billing manager"],
    ]
    data = _grid_pdf(rows, no_wall=frozenset({(1, 1), (2, 1), (1, 3)}))
    fast, slow, finder_calls = _tables_both_ways(tmp_path, monkeypatch, data)
    assert finder_calls == 0
    assert fast == slow
    assert fast[0].rows == [
        ["Refunds", "", ""],
        ["Under $50", "Refund up to $50", "None"],
        ["Over $500 escalates to the billing team", "", "Billing manager"],
    ]


@pytest.mark.parametrize(
    "irregular",
    [
        {"no_rule": frozenset({(2, 0)})},  # a cell merged down two rows
        {"no_wall": frozenset({(0, 2), (3, 2)})},  # outer rules missing on one row
    ],
    ids=["merged-rows", "partly-ruled"],
)
def test_partly_ruled_table_falls_back_to_the_table_finder(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    irregular: dict[str, frozenset[tuple[int, int]]],
) -> None:
    fast, slow, finder_calls = _tables_both_ways(
        tmp_path, monkeypatch, _grid_pdf(_GRID_ROWS, **irregular)
    )
    assert finder_calls == 1
    assert fast == slow
    assert fast  # the table finder still reads it
