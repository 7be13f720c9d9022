"""Build small, deterministic SOP PDFs with pymupdf, for tests and benchmarks.

Every builder returns the PDF bytes; the same arguments always give byte-identical files (fixed
metadata, no new /ID), so golden files keep a stable sha256.
"""

from __future__ import annotations

from collections.abc import Sequence

import pymupdf

WIDTH, HEIGHT = 612.0, 792.0  # US Letter
MARGIN = 72.0
BODY = 11.0
_FIXED_DATE = "D:20240101000000Z"


class Writer:
    """A tiny flowing-layout writer: headings, wrapped paragraphs, lists, ruled tables, images."""

    def __init__(self, *, header: str | None = None, footer: bool = False) -> None:
        self.doc = pymupdf.open()
        self.header = header
        self.footer = footer
        self.page: pymupdf.Page = self._new_page()
        self.y = MARGIN

    def _new_page(self) -> pymupdf.Page:
        page = self.doc.new_page(width=WIDTH, height=HEIGHT)
        if self.header:
            page.insert_text((MARGIN, 40), self.header, fontname="helv", fontsize=9)
        self.y = MARGIN
        return page

    def _room(self, height: float) -> None:
        if self.y + height > HEIGHT - MARGIN:
            self.page = self._new_page()

    def new_page(self) -> None:
        """Continue on a fresh page."""
        self.page = self._new_page()

    def heading(self, text: str, *, size: float = 16, bold: bool = True) -> None:
        """A heading line in a larger (or bold) font, with space above."""
        self._room(size * 3)
        self.y += size * 0.8
        self.page.insert_text(
            (MARGIN, self.y + size), text, fontname="hebo" if bold else "helv", fontsize=size
        )
        self.y += size * 1.3 + 4

    def paragraph(
        self,
        text: str,
        *,
        x: float = MARGIN,
        size: float = BODY,
        bold: bool = False,
        gap: float = 6,
    ) -> None:
        """A paragraph wrapped to the right margin, lines 1.3 x size apart."""
        font = "hebo" if bold else "helv"
        for line in _wrap(text, WIDTH - MARGIN - x, font, size):
            self._room(size * 1.3)
            self.page.insert_text((x, self.y + size), line, fontname=font, fontsize=size)
            self.y += size * 1.3
        self.y += gap

    def item(self, marker: str, text: str, *, level: int = 0, size: float = BODY) -> None:
        """A list item: marker at the level's indent, wrapped text hanging after it."""
        x = MARGIN + 18 + level * 20
        text_x = x + 20
        lines = _wrap(text, WIDTH - MARGIN - text_x, "helv", size)
        for i, line in enumerate(lines):
            self._room(size * 1.3)
            if i == 0:
                _text(self.page, (x, self.y + size), marker, size=size)
            self.page.insert_text((text_x, self.y + size), line, fontname="helv", fontsize=size)
            self.y += size * 1.3
        self.y += 3

    def table(
        self, rows: Sequence[Sequence[str]], *, widths: Sequence[float] | None = None
    ) -> None:
        """A fully ruled grid; the first row in bold."""
        ncols = len(rows[0])
        widths = list(widths or [(WIDTH - 2 * MARGIN) / ncols] * ncols)
        row_h = 20.0
        self._room(row_h * len(rows) + 12)
        self.y += 6
        top = self.y
        for r, row in enumerate(rows):
            x = MARGIN
            for c, cell in enumerate(row):
                font = "hebo" if r == 0 else "helv"
                self.page.insert_text(
                    (x + 4, top + r * row_h + 14), cell, fontname=font, fontsize=10
                )
                x += widths[c]
        right = MARGIN + sum(widths)
        for r in range(len(rows) + 1):
            self.page.draw_line((MARGIN, top + r * row_h), (right, top + r * row_h))
        x = MARGIN
        for c in range(ncols + 1):
            self.page.draw_line((x, top), (x, top + row_h * len(rows)))
            if c < ncols:
                x += widths[c]
        self.y = top + row_h * len(rows) + 12

    def image(
        self, png: bytes, *, width: float = 240, height: float = 120, caption: str = ""
    ) -> None:
        """An embedded image, optionally with a caption line below it."""
        self._room(height + 30)
        rect = pymupdf.Rect(MARGIN, self.y, MARGIN + width, self.y + height)
        self.page.insert_image(rect, stream=png)
        self.y += height + 4
        if caption:
            self.paragraph(caption, size=9)

    def finish(self, *, title: str = "", toc: Sequence[tuple[int, str, int]] = ()) -> bytes:
        """Add footers, outline and metadata; return the PDF bytes."""
        count = self.doc.page_count
        if self.footer:
            for number, page in enumerate(self.doc, start=1):
                page.insert_text(
                    (WIDTH / 2 - 20, HEIGHT - 36),
                    f"Page {number} of {count}",
                    fontname="helv",
                    fontsize=9,
                )
        if toc:
            self.doc.set_toc([list(entry) for entry in toc])
        return _save(self.doc, title)


def _text(page: pymupdf.Page, point: tuple[float, float], text: str, *, size: float) -> None:
    """Write text; non-Latin-1 marks (•, ▪, –) need an embedded font to survive as printed."""
    if text.isascii():
        page.insert_text(point, text, fontname="helv", fontsize=size)
        return
    writer = pymupdf.TextWriter(page.rect)
    writer.append(point, text, font=pymupdf.Font("helv"), fontsize=size)
    writer.write_text(page)


def _save(doc: pymupdf.Document, title: str = "") -> bytes:
    doc.set_metadata(
        {
            "title": title,
            "author": "",
            "subject": "",
            "keywords": "",
            "creator": "sopc tests",
            "producer": "sopc tests",
            "creationDate": _FIXED_DATE,
            "modDate": _FIXED_DATE,
        }
    )
    data: bytes = doc.tobytes(garbage=3, deflate=True, no_new_id=True)
    doc.close()
    return data


def _wrap(text: str, width: float, font: str, size: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and pymupdf.get_text_length(candidate, fontname=font, fontsize=size) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def png(width: int = 120, height: int = 80, *, shade: int = 180) -> bytes:
    """A plain grey PNG of the given size, with a dark frame (so it is not blank)."""
    pixmap = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, width, height), False)
    pixmap.clear_with(shade)
    pixmap.clear_with(40, pymupdf.IRect(0, 0, width, 3))
    data: bytes = pixmap.tobytes("png")
    return data


def text_png(lines: Sequence[str], *, dpi: int = 100) -> bytes:
    """A PNG of black text on white, like a scan of a printed page."""
    doc = pymupdf.open()
    page = doc.new_page(width=WIDTH, height=HEIGHT)
    y = MARGIN
    for line in lines:
        page.insert_text((MARGIN, y), line, fontname="helv", fontsize=14)
        y += 24
    data: bytes = page.get_pixmap(dpi=dpi).tobytes("png")
    doc.close()
    return data


# --- scenarios --------------------------------------------------------------------------------


def header_footer(pages: int = 3) -> bytes:
    """A multi-page SOP with a running header, a "Page N of M" footer and numbered steps."""
    w = Writer(header="ACME Support - Refund Handling SOP (internal)", footer=True)
    w.heading("Refund Handling", size=18)
    w.paragraph(
        "This procedure explains how support agents handle refund requests from customers who "
        "paid by card or by invoice. Follow every step in order."
    )
    for page in range(pages):
        if page:
            w.new_page()
        w.heading(f"{page + 1}. Stage {page + 1}", size=14)
        w.paragraph(
            f"Work through stage {page + 1} before moving on to the next stage of the refund."
        )
        for step in range(1, 4):
            w.item(
                f"{step}.",
                f"Do task {step} of stage {page + 1} and record the outcome in the ticket.",
            )
    return w.finish(title="Refund Handling SOP")


def numbered_steps() -> bytes:
    """Headings with numbered, lettered and bulleted lists, nested by indentation; wrapped items."""
    w = Writer()
    w.heading("Password Reset Procedure", size=18)
    w.heading("1 Purpose", size=14)
    w.paragraph(
        "Agents use this procedure when a customer cannot sign in to their account and asks for a "
        "password reset by phone or chat."
    )
    w.heading("2 Procedure", size=14)
    w.item("1.", "Greet the customer and ask for the email address on the account.")
    w.item(
        "2.",
        "Look up the customer with `lookup_customer` using the email address. If no account is "
        "found, ask the customer to check the spelling and try again before going further.",
    )
    w.item("a)", "If the account is locked, unlock it with `unlock_account`.", level=1)
    w.item("b)", "If the account is closed, go to step 4.", level=1)
    w.item("(i)", "Closed by the customer: explain how to reopen it.", level=2)
    w.item("3.", "Verify the caller's identity with one of these methods:")
    w.item("•", "an SMS code sent to the phone number on file;", level=1)
    w.item("•", "an email code sent to the address on file.", level=1)
    w.item("4.", "Send the reset link with `send_password_reset` and resolve the case.")
    w.heading("2.1 Exceptions", size=12)
    w.item("-", "Escalate to the security team if the caller fails verification twice.")
    return w.finish(title="")


def table() -> bytes:
    """A ruled table with a bold header row, between two paragraphs."""
    w = Writer()
    w.heading("Refund Limits", size=16)
    w.paragraph("Agents may approve refunds within these limits without a supervisor.")
    w.table(
        [
            ["Order value", "Agent action", "Approval"],
            ["Under $50", "Refund up to $50", "None"],
            ["$50 to $500", "Refund after checking the order", "Team lead"],
            ["Over $500", "Escalate to billing", "Billing manager"],
        ],
        widths=[130, 220, 118],
    )
    w.paragraph("Record the approval in the ticket before issuing the refund.")
    return w.finish(title="Refund Limits")


def outline_bold_subheadings() -> bytes:
    """An outline (bookmarks) for the sections; bold body-size sub-headings below them."""
    w = Writer()
    w.heading("Shipping Exceptions", size=13, bold=False)
    w.paragraph("How to handle parcels that are late, lost or damaged in transit.")
    w.heading("Lost parcels", size=13, bold=False)
    w.paragraph("Before you start", bold=True, gap=2)
    w.paragraph(
        "Check the tracking history with `track_shipment` and confirm the delivery address."
    )
    w.paragraph("Opening a claim", bold=True, gap=2)
    w.paragraph("Open a carrier claim with `open_carrier_claim` when the parcel is 10 days late.")
    w.paragraph("This bold sentence is not a heading because it ends with a period.", bold=True)
    w.new_page()
    w.heading("Damaged parcels", size=13, bold=False)
    w.paragraph("Photos required", bold=True, gap=2)
    w.paragraph("Ask the customer for photos of the box and the item, then create a return label.")
    toc = [(1, "Shipping Exceptions", 1), (2, "Lost parcels", 1), (2, "Damaged parcels", 2)]
    return w.finish(title="Shipping Exceptions", toc=toc)


def scanned_page() -> bytes:
    """Page 1 has text; page 2 is only an image of text (a scan with no text layer)."""
    w = Writer()
    w.heading("Account Closure", size=16)
    w.paragraph("The signed closure form is scanned on the next page.")
    w.new_page()
    scan = text_png(
        ["Account closure form", "1. Confirm the customer's identity.", "2. Close the account."]
    )
    w.page.insert_image(w.page.rect, stream=scan)
    return w.finish(title="")


def figure_with_caption() -> bytes:
    """A paragraph, a flowchart image with a caption, a tiny decorative icon."""
    w = Writer()
    w.heading("Escalation Flow", size=16)
    w.paragraph("The flowchart below shows when to escalate a case.")
    w.image(png(200, 100), caption="Figure 1: Escalation flowchart")
    w.page.insert_image(pymupdf.Rect(500, 40, 510, 50), stream=png(10, 10))
    w.paragraph("Escalate only after the checks in the flowchart.")
    return w.finish()


def two_columns() -> bytes:
    """A full-width title over two columns of paragraphs."""
    doc = pymupdf.open()
    page = doc.new_page(width=WIDTH, height=HEIGHT)
    page.insert_text((MARGIN, 90), "Two Column Notice", fontname="hebo", fontsize=18)
    col_w = (WIDTH - 2 * MARGIN - 20) / 2
    for col, word in enumerate(("Left", "Right")):
        x = MARGIN + col * (col_w + 20)
        y = 130.0
        text = " ".join(f"{word} column sentence {i} explains a rule." for i in range(1, 9))
        for line in _wrap(text, col_w, "helv", BODY):
            page.insert_text((x, y), line, fontname="helv", fontsize=BODY)
            y += BODY * 1.3
    return _save(doc)


def encrypted() -> bytes:
    """A PDF that needs a user password to open."""
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "Secret SOP", fontname="helv", fontsize=11)
    data: bytes = doc.tobytes(
        encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="user", owner_pw="owner", no_new_id=True
    )
    return data


def many_pages(pages: int = 100, *, table_every: int = 10, image_every: int = 25) -> bytes:
    """A long SOP: a section per page with numbered steps, a table every `table_every` pages."""
    w = Writer(header="ACME Support - Operations Manual", footer=True)
    w.heading("Operations Manual", size=20)
    icon = png(160, 90)
    for number in range(1, pages + 1):
        if number > 1:
            w.new_page()
        w.heading(f"{number}. Procedure {number}", size=14)
        w.paragraph(
            f"This section describes procedure {number}. Agents follow it when a customer contacts "
            "support about an order, an invoice or a delivery problem, and record every action."
        )
        w.heading(f"{number}.1 Steps", size=12)
        for step in range(1, 6):
            w.item(
                f"{step}.",
                f"Perform step {step} of procedure {number}; if it fails, escalate to tier 2.",
            )
            if step == 2:
                w.item("a)", "Check the order status with `lookup_order`.", level=1)
                w.item("b)", "If the order is missing, create a ticket.", level=1)
        if table_every and number % table_every == 0:
            w.table(
                [["Case", "Action"], ["Small refund", "Refund up to $50"], ["Large", "Escalate"]]
            )
        elif image_every and number % image_every == 0:
            w.image(icon, caption=f"Figure {number}: Flow for procedure {number}")
        else:
            w.paragraph("Note: keep the customer informed at every step and confirm the outcome.")
    return w.finish(title="Operations Manual")


SCENARIOS = {
    "header-footer": header_footer,
    "numbered-steps": numbered_steps,
    "table": table,
    "outline-bold-subheadings": outline_bold_subheadings,
    "scanned-page": scanned_page,
}
