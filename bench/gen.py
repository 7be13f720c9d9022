"""Generate benchmark inputs: SOP-like PDFs and DOCX files of a given page count, and SOP folders.

Every generator is deterministic and returns the ground truth (how many headings, steps and tables
it wrote) so that structure kept by each converter can be compared with what is really there.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path

STEPS = [
    "Ask the customer for the order number and the email address on the account.",
    "Look up the order with `lookup_order` and confirm the delivery address.",
    "If the order was delivered more than 30 days ago, explain the return policy and go to step 6.",
    "Otherwise, create a return label with `create_return_label` and send it to the customer.",
    "When the customer reports damage, ask for a photo of the package and the item.",
    "Escalate to the Logistics Supervisor queue if the carrier refuses the claim.",
]

TABLE = [
    ["Role", "Refund limit", "Approval"],
    ["Agent", "$50", "None"],
    ["Team lead", "$200", "Supervisor"],
    ["Supervisor", "$1,000", "Manager"],
]


@dataclass(frozen=True)
class Truth:
    """What a generated document really holds."""

    pages: int
    headings: int
    steps: int
    tables: int
    table_pages: int
    images: int


def _png(width: int = 160, height: int = 90) -> bytes:
    import pymupdf

    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, width, height), False)
    pix.set_rect(pix.irect, (40, 90, 160))
    pix.set_rect(pymupdf.IRect(10, 10, width - 10, height - 10), (230, 230, 230))
    return bytes(pix.tobytes("png"))


def make_pdf(path: Path, pages: int, *, table_every: int = 5, image_every: int = 7) -> Truth:
    """An SOP PDF: running header/footer, numbered headings, steps, ruled tables, images."""
    import pymupdf

    doc = pymupdf.open()
    image = _png()
    headings = steps = tables = table_pages = images = 0
    for number in range(1, pages + 1):
        page = doc.new_page(width=595, height=842)
        page.insert_text((50, 40), "Acme Retail — Customer Care SOP CC-BENCH-001", fontsize=8)
        page.insert_text(
            (50, 820), f"Confidential — internal use only | Page {number} of {pages}", fontsize=8
        )
        y = 90.0
        page.insert_text(
            (50, y), f"{number}. Handling case type {number}", fontsize=15, fontname="helv"
        )
        headings += 1
        y += 30
        page.insert_text((50, y), f"{number}.1 Procedure", fontsize=11, fontname="hebo")
        headings += 1
        y += 22
        for index, step in enumerate(STEPS, start=1):
            page.insert_text((60, y), f"{index}.", fontsize=10)
            page.insert_text((80, y), step, fontsize=10)
            steps += 1
            y += 18
        y += 10
        page.insert_text(
            (50, y),
            "Agents must record every contact in the case history before closing the case.",
            fontsize=10,
        )
        y += 30
        if number % table_every == 0:
            rows = TABLE
            x0, width, height = 50.0, 495.0, 20.0
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    page.insert_text(
                        (x0 + 5 + c * width / 3, y + r * height + 14), cell, fontsize=10
                    )
            for r in range(len(rows) + 1):
                page.draw_line((x0, y + r * height), (x0 + width, y + r * height))
            for c in range(4):
                page.draw_line(
                    (x0 + c * width / 3, y), (x0 + c * width / 3, y + len(rows) * height)
                )
            y += len(rows) * height + 20
            tables += 1
            table_pages += 1
        if number % image_every == 0:
            page.insert_image(pymupdf.Rect(50, y, 210, y + 90), stream=image)
            page.insert_text((50, y + 105), f"Figure {number}: Decision flow", fontsize=9)
            images += 1
    doc.set_metadata(
        {
            "title": "Benchmark SOP",
            "creationDate": "D:20260101000000",
            "modDate": "D:20260101000000",
        }
    )
    doc.save(path, garbage=3, deflate=True)
    doc.close()
    return Truth(pages, headings, steps, tables, table_pages, images)


def make_docx(path: Path, pages: int, *, image_every: int = 7) -> Truth:
    """An SOP DOCX of about `pages` pages, written the way Word writes one.

    Real numbering definitions (numPr on each paragraph, restarted per procedure, lettered
    sub-steps), a running header and footer, headings, a bullet, a table per page and a figure
    every `image_every` pages. Built with the DOCX tests' factory (tests/docx_factory.py), so the
    benchmark reads the same kind of file the reader is tested on.
    """
    import docx
    from docx.shared import Inches

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from docx_factory import add_numbering, numbered

    document = docx.Document()
    section = document.sections[0]
    section.header.paragraphs[0].text = "Acme Retail - Customer Care SOP CC-BENCH-001"
    section.footer.paragraphs[0].text = "Confidential - internal use only"
    image = _png()
    steps_num = add_numbering(document, [("decimal", "%1."), ("lowerLetter", "%2.")])
    headings = steps = tables = images = 0
    for number in range(1, pages + 1):
        document.add_heading(f"{number}. Handling case type {number}", level=1)
        document.add_paragraph(
            "This procedure explains how an agent handles the request from the first contact "
            "to resolution, including the checks that must be made before any refund."
        )
        document.add_heading("Procedure", level=2)
        headings += 2
        num = steps_num if number == 1 else add_numbering(document, [], restart_of=steps_num)
        for index, step in enumerate(STEPS, start=1):
            numbered(document, step, num)
            steps += 1
            if index % 3 == 0:
                numbered(
                    document, "If the customer is a business account, note the VAT number.", num, 1
                )
                numbered(document, "Otherwise, continue with the next step.", num, 1)
                steps += 2
        document.add_paragraph("Keep the customer informed at every step.", style="List Bullet")
        table = document.add_table(rows=4, cols=3)
        table.style = "Table Grid"
        for r, row in enumerate(TABLE):
            for c, text in enumerate(row):
                table.cell(r, c).text = text
        tables += 1
        if number % image_every == 0:
            document.add_paragraph().add_run().add_picture(io.BytesIO(image), width=Inches(2))
            document.add_paragraph(f"Figure {number}: Decision flow", style="Caption")
            images += 1
        document.add_paragraph(
            "Agents must record every contact in the case history before closing."
        )
    buffer = io.BytesIO()
    document.save(buffer)
    path.write_bytes(buffer.getvalue())
    return Truth(pages, headings, steps, tables, tables, images)


def make_sop_folder(root: Path, count: int) -> None:
    """`count` small Markdown SOPs over four agent folders, with a tool catalog."""
    areas = ["billing", "shipping", "tech_support", "account"]
    for index in range(count):
        folder = root / areas[index % len(areas)]
        folder.mkdir(parents=True, exist_ok=True)
        body = "\n".join(f"{n}. {step}" for n, step in enumerate(STEPS, start=1))
        (folder / f"sop-{index:04d}.md").write_text(
            f"# Procedure {index}\n\n## Purpose\n\nHandle case type {index}.\n\n"
            f"## Steps\n\n{body}\n",
            encoding="utf-8",
        )
    (root / "tools.yaml").write_text(
        """\
tools:
  - name: lookup_order
    description: Look up an order.
    access: read
    parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
  - name: create_return_label
    description: Create a return label.
    access: write
    needs_approval: false
    parameters:
      type: object
      properties: {order_id: {type: string}, reason: {type: string}}
      required: [order_id, reason]
""",
        encoding="utf-8",
    )
