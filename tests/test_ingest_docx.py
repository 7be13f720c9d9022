"""DOCX reader: Word list numbers, headings, tables, figures, and hostile packages."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import zipfile
from pathlib import Path

import pytest
from docx_factory import (
    feature_docx,
    linked_image_docx,
    png_bytes,
    sop_docx,
    with_extra_parts,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from sop_compiler.config import Limits, Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest import ingest
from sop_compiler.ingest.base import Source
from sop_compiler.ingest.docx import DocxReader
from sop_compiler.models import Document, Figure, Heading, ListItem, Paragraph, Table, block_text

DATA = Path(__file__).parent / "data" / "docx"


def _read(tmp_path: Path, data: bytes, name: str = "sop.docx", **settings: object) -> Document:
    path = tmp_path / name
    path.write_bytes(data)
    return ingest(path, root=tmp_path, settings=Settings(**settings))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Document:
    return _read(tmp_path_factory.mktemp("docx"), feature_docx())


def _items(document: Document) -> list[tuple[str, int, str]]:
    return [(b.marker, b.level, b.text) for b in document.blocks if isinstance(b, ListItem)]


def test_multilevel_numbering_shows_the_numbers_a_reader_sees(features: Document) -> None:
    items = _items(features)
    assert items[:8] == [
        ("1.", 0, "Verify the customer."),
        ("2.", 0, "Look up the order with lookup_order."),
        ("2.1", 1, "Check the order date."),
        ("2.2", 1, "Check the amount."),
        ("a.", 2, "Ask for a photo if damaged."),
        ("b.", 2, "Ask for the receipt."),
        ("3.", 0, "Issue the refund."),
        ("3.1", 1, "Confirm by email."),
    ]


def test_list_styles_carry_numbering_and_depth(features: Document) -> None:
    items = {
        text: (marker, level, ordered)
        for marker, level, text in _items(features)
        for ordered in [marker not in {"•"}]
    }
    assert items["Escalate to billing when the amount exceeds 500 EUR."] == ("1.", 0, True)
    assert items["Record the escalation."] == ("2.", 0, True)
    assert items["Manager approval"] == ("•", 0, False)
    assert items["Team lead approval"] == ("•", 1, False)
    # A second w:num on the same abstract list with a startOverride restarts at 1.
    assert items["A new list starts again at one."] == ("1.", 0, True)
    # Numbers typed by hand are list items too.
    assert items["Typed by hand"][:2] == ("2.", 0)


def test_headings_title_and_heading_paths(features: Document) -> None:
    headings = [(b.text, b.level) for b in features.blocks if isinstance(b, Heading)]
    assert headings == [("Refund Procedure", 1), ("Scope", 1), ("Steps", 1), ("Escalation", 2)]
    assert features.title == "Refund Procedure"
    step = next(b for b in features.blocks if isinstance(b, ListItem) and b.marker == "2.1")
    assert step.prov.heading_path == ["Steps"]
    escalate = next(b for b in features.blocks if b.prov.heading_path == ["Steps", "Escalation"])
    assert block_text(escalate).startswith("Escalate to billing")


def test_table_header_and_merged_cells(features: Document) -> None:
    (table,) = [b for b in features.blocks if isinstance(b, Table)]
    assert table.header == ["Case", "Action", "Owner"]
    assert table.rows == [
        ["Damaged item", "Send a return label", "Shipping"],
        ["Lost parcel", "Open a carrier claim", ""],  # vertical merge: shown once, above
        ["Late parcel: wait 5 days", "", "Support"],  # horizontal merge: text once
    ]


def test_inline_image_is_a_figure_with_bytes_and_caption(features: Document) -> None:
    (figure,) = [b for b in features.blocks if isinstance(b, Figure)]
    assert figure.image is not None and figure.image.mime == "image/png"
    assert features.images[figure.image.sha256] == png_bytes()
    assert figure.caption == "Figure 1: Refund flowchart"
    assert not any(
        b.text == "Figure 1: Refund flowchart" for b in features.blocks if isinstance(b, Paragraph)
    )


def test_headers_footers_excluded_content_controls_and_text_boxes_read(features: Document) -> None:
    texts = [block_text(b) for b in features.blocks]
    everything = "\n".join(texts)
    assert "running header" not in everything and "Page footer" not in everything
    assert texts.count("Text inside a content control.") == 1
    assert texts.count("Text inside a text box.") == 1  # the VML fallback copy is not read twice
    assert "Anchor paragraph." in texts


def test_block_ids_and_provenance_are_in_reading_order(features: Document) -> None:
    assert [b.id for b in features.blocks] == [f"b{i}" for i in range(1, len(features.blocks) + 1)]
    indexes = [b.prov.paragraph for b in features.blocks]
    assert all(isinstance(i, int) for i in indexes)
    assert indexes == sorted(indexes)  # type: ignore[type-var]
    assert {b.prov.file for b in features.blocks} == {"sop.docx"}


def test_generated_sop_restarts_numbering_per_procedure(tmp_path: Path) -> None:
    document = _read(tmp_path, sop_docx(pages=3))
    firsts = [
        b for b in document.blocks if isinstance(b, ListItem) and b.text.startswith("Step 1:")
    ]
    assert [b.marker for b in firsts] == ["1.", "1.", "1."]
    subs = [b.marker for b in document.blocks if isinstance(b, ListItem) and b.level == 1]
    assert subs[:2] == ["a.", "b."]
    assert sum(isinstance(b, Table) for b in document.blocks) == 3


def test_numbered_heading_styles_get_their_number(tmp_path: Path) -> None:
    import docx
    from docx_factory import add_numbering, numbered

    document = docx.Document()
    outline = add_numbering(document, [("decimal", "%1."), ("decimal", "%1.%2")])
    for text, level in [("Scope", 0), ("Steps", 0), ("Refunds", 1)]:
        numbered(document, text, outline, level).style = f"Heading {level + 1}"
    document.add_paragraph("Body.")
    buffer = io.BytesIO()
    document.save(buffer)
    read = _read(tmp_path, buffer.getvalue())
    headings = [(b.number, b.text, b.level) for b in read.blocks if isinstance(b, Heading)]
    assert headings == [("1", "Scope", 1), ("2", "Steps", 1), ("2.1", "Refunds", 2)]
    assert read.blocks[-1].prov.heading_path == ["Steps", "Refunds"]


# -- hostile packages -------------------------------------------------------------------------


def test_not_a_zip(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        _read(tmp_path, b"This is plain text pretending to be a Word file.\n" * 3)
    assert str(err.value) == "sop.docx: is not a valid .docx (not a zip archive)"


def _bomb(megabytes: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(megabytes):
                member.write(chunk)
    return buffer.getvalue()


def test_zip_bomb_rejected_from_the_listing_without_inflating(tmp_path: Path) -> None:
    bomb = _bomb(300)
    assert len(bomb) < 3 * 1024 * 1024
    started = time.perf_counter()
    with pytest.raises(InputError) as err:
        _read(tmp_path, bomb)
    assert time.perf_counter() - started < 1.0
    assert "max_unzipped_mb" in str(err.value) and "zip bomb" in str(err.value)
    assert err.value.hint is not None and "sopc.toml" in err.value.hint
    with pytest.raises(InputError) as err:
        _read(tmp_path, bomb, limits=Limits(max_unzipped_mb=1000))
    assert "expands" in str(err.value) and "max_zip_ratio" in str(err.value)


def test_missing_main_document_and_corrupt_xml(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(InputError, match=r"no word/document\.xml"):
        _read(tmp_path, buffer.getvalue())
    broken = with_extra_parts(feature_docx(), {}, {"word/document.xml": "<w:document><w:body"})
    with pytest.raises(InputError, match=r"is not a valid \.docx: "):
        _read(tmp_path, broken)


def test_macros_and_external_relationships_are_never_used(tmp_path: Path) -> None:
    template = (
        '<Relationship Id="rIdT" TargetMode="External" Target="http://example.invalid/t.dotm" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'attachedTemplate"/>'
    )
    base = feature_docx()
    rels = zipfile.ZipFile(io.BytesIO(base)).read("word/_rels/document.xml.rels").decode()
    rels = rels.replace("</Relationships>", template + "</Relationships>")
    data = with_extra_parts(
        base,
        {"word/vbaProject.bin": b"\xd0\xcf\x11\xe0 macro"},
        {"word/_rels/document.xml.rels": rels},
    )
    document = _read(tmp_path, data)
    notices = {n.code: n.message for n in document.notices}
    assert notices["macros"] == "macros were ignored (never run)"
    assert "attachedTemplate" in notices["external_links"]
    assert any(b.text == "Verify the customer." for b in document.blocks if isinstance(b, ListItem))


def test_linked_image_is_a_figure_without_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the reader tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    document = _read(tmp_path, linked_image_docx())
    (figure,) = [b for b in document.blocks if isinstance(b, Figure)]
    assert figure.image is None and figure.caption == "Remote diagram"
    codes = {n.code for n in document.notices}
    assert {"image_not_fetched", "external_links"} <= codes


# -- golden -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["features", "generated-sop"])
def test_golden(scenario: str) -> None:
    folder = DATA / scenario
    source = folder / "source.docx"
    update = os.environ.get("SOPC_UPDATE_GOLDEN") == "1"
    if update:
        folder.mkdir(parents=True, exist_ok=True)
        source.write_bytes(feature_docx() if scenario == "features" else sop_docx(pages=2))
    document = ingest(source, root=folder, settings=Settings())
    actual = json.dumps(document.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
    expected = folder / "expected.json"
    if update:
        expected.write_text(actual, encoding="utf-8")
    # A missing golden file is a failure: writing it here would make the test pass untested.
    assert expected.is_file(), f"missing {expected}; run with SOPC_UPDATE_GOLDEN=1 and review it"
    assert actual == expected.read_text(encoding="utf-8")
    assert document.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


# -- fuzz -------------------------------------------------------------------------------------

_FEATURES = feature_docx()
_DOCUMENT_XML = zipfile.ZipFile(io.BytesIO(_FEATURES)).read("word/document.xml").decode()
_NUMBERING_XML = zipfile.ZipFile(io.BytesIO(_FEATURES)).read("word/numbering.xml").decode()
_VALUES = re.compile(r'w:(?:val|ilvl|numId|abstractNumId)="[^"]*"')


@settings(max_examples=40, deadline=None)
@given(
    part=st.sampled_from(["word/document.xml", "word/numbering.xml"]),
    picks=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=8),
    value=st.sampled_from(["", "-1", "99", "abc", "0", "1000000", "restart", "%9.%1", "\u0000"]),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=20_000)),
)
def test_fuzz_damaged_docx_gives_a_document_or_an_input_error(
    part: str, picks: list[int], value: str, cut: int | None
) -> None:
    xml = _DOCUMENT_XML if part == "word/document.xml" else _NUMBERING_XML
    matches = list(_VALUES.finditer(xml))
    for pick in sorted({p % len(matches) for p in picks}, reverse=True):
        m = matches[pick]
        name = m.group(0).split("=")[0]
        xml = xml[: m.start()] + f'{name}="{value}"' + xml[m.end() :]
    if cut is not None:
        xml = xml[:cut]
    data = with_extra_parts(_FEATURES, {}, {part: xml})
    source = Source(path=Path("fuzz.docx"), name="fuzz.docx", data=data, sha256="")
    try:
        DocxReader().read(source, settings=Settings())
    except InputError as exc:
        assert str(exc).startswith("fuzz.docx: is not a valid .docx")
