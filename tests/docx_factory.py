"""Builds test .docx files with python-docx, including real Word numbering definitions.

Used by tests/test_ingest_docx.py and by the DOCX benchmark (`sop_docx(pages=...)`).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from typing import Any

import docx
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.shared import Inches

W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def png_bytes(width: int = 4, height: int = 3, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A small valid PNG, built without Pillow so tests control every byte."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return (
            struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def add_numbering(
    document: Any, levels: list[tuple[str, str]], *, restart_of: int | None = None
) -> int:
    """Add an abstract numbering with `levels` [(numFmt, lvlText)] and a num using it; return numId.

    With `restart_of=<numId>`, add instead a new num on the same abstract with a startOverride,
    the way Word restarts a list at 1.
    """
    numbering = document.part.numbering_part.element
    nums = numbering.findall(qn("w:num"))
    num_id = max([int(n.get(qn("w:numId"))) for n in nums] + [0]) + 1
    if restart_of is None:
        abstracts = numbering.findall(qn("w:abstractNum"))
        abstract_id = max([int(a.get(qn("w:abstractNumId"))) for a in abstracts] + [0]) + 1
        lvls = "".join(
            f'<w:lvl w:ilvl="{i}"><w:start w:val="1"/><w:numFmt w:val="{fmt}"/>'
            f'<w:lvlText w:val="{text}"/><w:lvlJc w:val="left"/>'
            f'<w:pPr><w:ind w:left="{720 * (i + 1)}" w:hanging="360"/></w:pPr></w:lvl>'
            for i, (fmt, text) in enumerate(levels)
        )
        abstract = parse_xml(
            f'<w:abstractNum {W_NS} w:abstractNumId="{abstract_id}">'
            f'<w:multiLevelType w:val="multilevel"/>{lvls}</w:abstractNum>'
        )
        first_num = numbering.find(qn("w:num"))
        if first_num is not None:
            first_num.addprevious(abstract)
        else:
            numbering.append(abstract)
        override = ""
    else:
        source = next(n for n in nums if int(n.get(qn("w:numId"))) == restart_of)
        abstract_id = int(source.find(qn("w:abstractNumId")).get(qn("w:val")))
        override = '<w:lvlOverride w:ilvl="0"><w:startOverride w:val="1"/></w:lvlOverride>'
    numbering.append(
        parse_xml(
            f'<w:num {W_NS} w:numId="{num_id}"><w:abstractNumId w:val="{abstract_id}"/>'
            f"{override}</w:num>"
        )
    )
    return num_id


def numbered(document: Any, text: str, num_id: int, ilvl: int = 0) -> Any:
    """A paragraph numbered by `num_id` at level `ilvl` (numPr on the paragraph itself)."""
    paragraph = document.add_paragraph(text)
    ppr = paragraph._p.get_or_add_pPr()
    ppr.append(
        parse_xml(f'<w:numPr {W_NS}><w:ilvl w:val="{ilvl}"/><w:numId w:val="{num_id}"/></w:numPr>')
    )
    return paragraph


def add_content_control(document: Any, text: str) -> None:
    """A block-level content control (w:sdt) holding one paragraph: not in doc.paragraphs."""
    sdt = parse_xml(
        f'<w:sdt {W_NS}><w:sdtPr><w:alias w:val="Policy"/></w:sdtPr><w:sdtContent>'
        f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:sdtContent></w:sdt>"
    )
    document.element.body.insert(len(document.element.body) - 1, sdt)


def add_text_box(document: Any, anchor_text: str, box_text: str) -> None:
    """A paragraph anchoring a text box, written the way Word does: a DrawingML shape plus a
    VML fallback holding the same text (which must be read once)."""
    box = f"<w:txbxContent><w:p><w:r><w:t>{box_text}</w:t></w:r></w:p></w:txbxContent>"
    xml = (
        f"<w:p {nsdecls('w', 'wp')} "
        'xmlns:v="urn:schemas-microsoft-com:vml" '
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
        'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
        'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main">'
        f"<w:r><w:t>{anchor_text}</w:t></w:r><w:r><mc:AlternateContent>"
        '<mc:Choice Requires="wps"><w:drawing><wp:anchor><wp:docPr id="90" name="Text Box 1"/>'
        "<a:graphic><a:graphicData><wps:wsp><wps:txbx>"
        f"{box}</wps:txbx></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing>"
        "</mc:Choice><mc:Fallback><w:pict><v:shape><v:textbox>"
        f"{box}</v:textbox></v:shape></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>"
    )
    document.element.body.insert(len(document.element.body) - 1, parse_xml(xml))


def merged_table(document: Any) -> Any:
    """A 4x3 table: bold header row, a horizontal merge and a vertical merge."""
    table = document.add_table(rows=4, cols=3)
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, ["Case", "Action", "Owner"], strict=True):
        cell.paragraphs[0].add_run(text).bold = True
    rows = [
        ["Damaged item", "Send a return label", "Shipping"],
        ["Lost parcel", "Open a carrier claim", "Shipping"],
        ["Late parcel", "", "Support"],
    ]
    for r, values in enumerate(rows, start=1):
        for c, value in enumerate(values):
            table.cell(r, c).text = value
    table.cell(1, 2).merge(table.cell(2, 2)).text = "Shipping"  # vertical: spans rows 1-2
    merged = table.cell(3, 0).merge(table.cell(3, 1))  # horizontal: one cell over two columns
    merged.text = "Late parcel: wait 5 days"
    return table


def feature_docx() -> bytes:
    """One document with every DOCX feature the reader must handle."""
    document = docx.Document()
    section = document.sections[0]
    section.header.paragraphs[0].text = "ACME Confidential - running header"
    section.footer.paragraphs[0].text = "Page footer text"
    document.add_paragraph("Refund Procedure", style="Title")
    document.add_heading("Scope", level=1)
    document.add_paragraph("This SOP covers refunds for online orders.")
    document.add_heading("Steps", level=1)
    steps = add_numbering(
        document, [("decimal", "%1."), ("decimal", "%1.%2"), ("lowerLetter", "%3.")]
    )
    numbered(document, "Verify the customer.", steps, 0)
    numbered(document, "Look up the order with lookup_order.", steps, 0)
    numbered(document, "Check the order date.", steps, 1)
    numbered(document, "Check the amount.", steps, 1)
    numbered(document, "Ask for a photo if damaged.", steps, 2)
    numbered(document, "Ask for the receipt.", steps, 2)
    numbered(document, "Issue the refund.", steps, 0)
    numbered(document, "Confirm by email.", steps, 1)
    document.add_heading("Escalation", level=2)
    document.add_paragraph(
        "Escalate to billing when the amount exceeds 500 EUR.", style="List Number"
    )
    document.add_paragraph("Record the escalation.", style="List Number")
    document.add_paragraph("Manager approval", style="List Bullet")
    document.add_paragraph("Team lead approval", style="List Bullet 2")
    restarted = add_numbering(document, [], restart_of=steps)
    numbered(document, "A new list starts again at one.", restarted, 0)
    merged_table(document)
    document.add_paragraph().add_run().add_picture(io.BytesIO(png_bytes()), width=Inches(1))
    document.add_paragraph("Figure 1: Refund flowchart", style="Caption")
    add_content_control(document, "Text inside a content control.")
    add_text_box(document, "Anchor paragraph.", "Text inside a text box.")
    document.add_paragraph("2. Typed by hand")
    document.add_paragraph("3. Also typed by hand")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def sop_docx(pages: int = 10) -> bytes:
    """A realistic SOP of roughly `pages` pages: headings, numbered steps, bullets, tables."""
    document = docx.Document()
    document.add_paragraph("Customer Service Procedures", style="Title")
    steps = add_numbering(document, [("decimal", "%1."), ("lowerLetter", "%2.")])
    for page in range(1, pages + 1):
        document.add_heading(f"{page}. Procedure {page}", level=1)
        document.add_paragraph(
            "This procedure explains how an agent handles a customer request from the first "
            "contact to resolution, including the checks that must be made before any refund."
        )
        num = steps if page == 1 else add_numbering(document, [], restart_of=steps)
        for step in range(1, 7):
            numbered(document, f"Step {step}: check the order with lookup_order and note it.", num)
            if step % 3 == 0:
                numbered(document, "If the order is late, go to the next step.", num, 1)
                numbered(document, "Otherwise, escalate to billing.", num, 1)
        document.add_paragraph("Keep the customer informed.", style="List Bullet")
        document.add_heading("Fees", level=2)
        table = document.add_table(rows=5, cols=3)
        for r in range(5):
            for c in range(3):
                table.cell(r, c).text = f"Row {r} col {c}" if r else f"Header {c}"
        document.add_paragraph("Notes: refunds above the limit need approval by a team lead.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def linked_image_docx() -> bytes:
    """A document whose only image is linked to a remote URL (must never be fetched)."""
    from docx.opc.constants import RELATIONSHIP_TYPE as RT

    document = docx.Document()
    document.add_paragraph("See the linked diagram.")
    rel_id = document.part.relate_to(
        "https://example.invalid/diagram.png", RT.IMAGE, is_external=True
    )
    xml = (
        f"<w:p {nsdecls('w', 'wp', 'a', 'pic', 'r')}><w:r><w:drawing><wp:inline>"
        '<wp:extent cx="914400" cy="914400"/>'
        '<wp:docPr id="7" name="Linked" descr="Remote diagram"/>'
        "<a:graphic><a:graphicData><pic:pic><pic:blipFill>"
        f'<a:blip r:link="{rel_id}"/></pic:blipFill></pic:pic></a:graphicData></a:graphic>'
        "</wp:inline></w:drawing></w:r></w:p>"
    )
    document.element.body.insert(len(document.element.body) - 1, parse_xml(xml))
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def with_extra_parts(
    data: bytes, extra: dict[str, bytes], rels_xml: dict[str, str] | None = None
) -> bytes:
    """Copy a .docx, adding members (e.g. word/vbaProject.bin) and replacing given .rels files."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if rels_xml and info.filename in rels_xml:
                content = rels_xml[info.filename].encode()
            target.writestr(info.filename, content)
        for name, content in extra.items():
            target.writestr(name, content)
        for name, xml in (rels_xml or {}).items():
            if name not in source.namelist():
                target.writestr(name, xml)
    return out.getvalue()
