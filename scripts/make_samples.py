"""Build the binary sample SOPs (PDF, DOCX, PNG) in sample_sops/, byte-for-byte reproducibly.

Run from the repository root:  python scripts/make_samples.py  [--out DIR]

The Markdown, text and HTML samples are written by hand and checked in; this script builds the files
that cannot be: two PDFs, two DOCX files and one "scanned" PNG page. Their wording lives below as a
small line-based markup (see `parse`), rendered by one PDF and one DOCX writer. Builds are
deterministic: fixed PDF and DOCX metadata, fixed zip timestamps and member order, no randomness.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import textwrap
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import docx
import pymupdf
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.shared import Pt

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_sops"
PDF_DATE = "D:20240301090000Z"
DOCX_DATE = datetime(2024, 3, 1, 9, 0, 0, tzinfo=timezone.utc)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# Letter paper, in points.
PAGE_W, PAGE_H = 612.0, 792.0
LEFT, RIGHT, TOP, BOTTOM = 72.0, 540.0, 80.0, 736.0
BODY = 9.5  # body text size; bold sub-headings use it too

# ---------------------------------------------------------------------------------------------
# The content markup. One block per line; a line indented at least to the text column of the
# block above continues it. Three spaces of indent per list level.
#   # Title / ## Title    heading, level 1 / 2        ** Text     bold sub-heading at body size
#   1. / 2.1 / a. text    numbered item               - text      bullet
#   Lead:: text           paragraph (or bullet) whose first words are bold
#   | a | b |             table row; the first row of a run of rows is the header
#   [[name]]              a hook the builder renders (figure, approval block...)
# ---------------------------------------------------------------------------------------------


@dataclass
class Block:
    """One parsed block of sample content."""

    kind: str  # heading, bold, item, bullet, para, table, hook
    text: str = ""
    level: int = 0
    marker: str = ""
    lead: str = ""
    rows: list[list[str]] = field(default_factory=list)
    col: int = 0  # text column, for continuation lines


_ITEM = re.compile(r"(\d+\.(?:\d+\.?)*|[a-z]\.)\s+(.*)")
_STARTS_BLOCK = re.compile(r"\||#|\*\*|\[\[|- |\d+\.|[a-z]\.\s|[^:|#]{1,60}::")


def parse(markup: str) -> list[Block]:
    """Parse the content markup into blocks."""
    blocks: list[Block] = []
    current: Block | None = None
    for raw in textwrap.dedent(markup).splitlines():
        line = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        if not line:
            current = None
            continue
        continues = (
            current is not None
            and current.kind in ("para", "item", "bullet")
            and (indent >= current.col or current.kind == "para")
        )
        if current is not None and continues and not _STARTS_BLOCK.match(line):
            current.text += " " + line
            continue
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if blocks and blocks[-1].kind == "table" and current is blocks[-1]:
                current.rows.append(cells)
            else:
                current = Block("table", rows=[cells])
                blocks.append(current)
            continue
        level = indent // 3
        if line.startswith("#"):
            hashes = len(line) - len(line.lstrip("#"))
            current = Block("heading", line[hashes:].strip(), level=hashes, col=99)
        elif line.startswith("**"):
            current = Block("bold", line[2:].strip(), col=99)
        elif line.startswith("[["):
            current = Block("hook", line.strip("[]"), col=99)
        elif line.startswith("- "):
            current = Block("bullet", line[2:], level=level, marker="•", col=indent + 2)
        elif match := _ITEM.fullmatch(line):
            current = Block(
                "item", match[2], level=level, marker=match[1], col=indent + len(match[1]) + 1
            )
        else:
            current = Block("para", line, col=indent + 1)
        if "::" in current.text:
            current.lead, _, current.text = current.text.partition("::")
            current.lead += " " if current.lead.endswith(":") else ": "
            current.text = current.text.strip()
        blocks.append(current)
    return blocks


# ---------------------------------------------------------------------------------------------
# A small flow-layout engine over pymupdf: wrapped text, hanging-indent items, ruled tables,
# figures, page breaks, and a record of the page each heading landed on.
# ---------------------------------------------------------------------------------------------

Run = tuple[str, bool]  # (text, bold)


@dataclass
class _Flow:
    doc: Any
    regular: Any = field(default_factory=lambda: pymupdf.Font("helv"))
    bold: Any = field(default_factory=lambda: pymupdf.Font("hebo"))
    page: Any = None
    y: float = 0.0
    headings: list[tuple[int, str, int]] = field(default_factory=list)  # level, title, page

    def new_page(self) -> None:
        self.page = self.doc.new_page(width=PAGE_W, height=PAGE_H)
        self.y = TOP

    def ensure(self, height: float) -> None:
        if self.page is None or self.y + height > BOTTOM:
            self.new_page()

    def font(self, bold: bool) -> Any:
        return self.bold if bold else self.regular

    def wrap(self, runs: Sequence[Run], size: float, width: float) -> list[list[Run]]:
        words = [(word, bold) for text, bold in runs for word in text.split()]
        lines: list[list[Run]] = [[]]
        used, space = 0.0, self.regular.text_length(" ", fontsize=size)
        for word, bold in words:
            w = self.font(bold).text_length(word, fontsize=size)
            if lines[-1] and used + space + w > width:
                lines.append([])
                used = 0.0
            used += (space if lines[-1] else 0.0) + w
            lines[-1].append((word, bold))
        return lines

    def put(
        self,
        x: float,
        y: float,
        text: str,
        *,
        size: float = BODY,
        bold: bool = False,
        color: tuple[float, float, float] = (0, 0, 0),
    ) -> None:
        """Write one line of text with its baseline at y."""
        writer = pymupdf.TextWriter(self.page.rect)
        writer.append((x, y), text, font=self.font(bold), fontsize=size)
        writer.write_text(self.page, color=color)

    def runs(
        self, runs: Sequence[Run], *, size: float = BODY, x: float = LEFT, after: float = 5
    ) -> None:
        """A wrapped paragraph of regular and bold runs."""
        leading = size * 1.3
        lines = self.wrap(runs, size, RIGHT - x)
        self.ensure(leading * min(len(lines), 2))
        for line in lines:
            self.ensure(leading)
            cursor = x
            # Consecutive words of one weight go out as one span, as a word processor writes them.
            groups: list[Run] = []
            for word, bold in line:
                if groups and groups[-1][1] == bold:
                    groups[-1] = (groups[-1][0] + " " + word, bold)
                else:
                    groups.append((word if not groups else " " + word, bold))
            for text, bold in groups:
                self.put(cursor, self.y + size, text, size=size, bold=bold)
                cursor += self.font(bold).text_length(text, fontsize=size)
            self.y += leading
        self.y += after

    def heading(self, text: str, level: int, *, size: float | None = None) -> None:
        size = size or {1: 14.0, 2: 11.5}.get(level, 10.0)
        self.ensure(size * 4 + 16)  # never strand a heading at the foot of a page
        self.y += 8 if level == 1 else 4
        self.put(LEFT, self.y + size, text, size=size, bold=True)
        self.y += size * 1.6
        self.headings.append((level, text, self.page.number + 1))

    def item(self, marker: str, runs: Sequence[Run], level: int) -> None:
        """A numbered, lettered or bulleted item with a hanging indent."""
        indent = LEFT + 20 * level
        self.ensure(28)  # keep the marker with the first two lines of its text
        self.put(indent, self.y + BODY, marker)
        self.runs(runs, x=indent + 20, after=3)

    def table(
        self, rows: Sequence[Sequence[str]], widths: Sequence[float], *, size: float = 9
    ) -> None:
        """A fully ruled table: a line on every cell edge, so table finders detect it."""
        leading, pad = size * 1.3, 4.0
        wrapped = [
            [self.wrap([(c, i == 0)], size, w - 2 * pad) for c, w in zip(row, widths, strict=True)]
            for i, row in enumerate(rows)
        ]
        heights = [max(len(cell) for cell in row) * leading + 2 * pad for row in wrapped]
        self.ensure(sum(heights) + 10)
        top, xs = self.y, [LEFT]
        for w in widths:
            xs.append(xs[-1] + w)
        self.page.draw_rect(
            pymupdf.Rect(xs[0], top, xs[-1], top + heights[0]), color=None, fill=(0.88, 0.9, 0.93)
        )
        y = top
        for row, height in zip(wrapped, heights, strict=True):
            for cell, cx in zip(row, xs[:-1], strict=True):
                for n, line in enumerate(cell):
                    text = " ".join(word for word, _ in line)
                    self.put(
                        cx + pad, y + pad + size + n * leading, text, size=size, bold=line[0][1]
                    )
            y += height
        shape = self.page.new_shape()
        y = top
        for height in [0.0, *heights]:
            y += height
            shape.draw_line((xs[0], y), (xs[-1], y))
        for x in xs:
            shape.draw_line((x, top), (x, y))
        shape.finish(color=(0, 0, 0), width=0.6)
        shape.commit()
        self.y = y + 10

    def image(self, png: bytes, width: float, height: float, caption: str) -> None:
        self.ensure(height + 30)
        x = LEFT + (RIGHT - LEFT - width) / 2
        self.page.insert_image(pymupdf.Rect(x, self.y, x + width, self.y + height), stream=png)
        self.y += height + 6
        self.centre(self.y + 9, caption, size=9)
        self.y += 22

    def centre(self, y: float, text: str, *, size: float, bold: bool = False) -> None:
        self.put(
            (PAGE_W - self.font(bold).text_length(text, fontsize=size)) / 2,
            y,
            text,
            size=size,
            bold=bold,
        )


def _column_widths(rows: Sequence[Sequence[str]], total: float = RIGHT - LEFT) -> list[float]:
    longest = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    weights = [min(max(n, 8), 60) + 4 for n in longest]  # + padding
    return [total * w / sum(weights) for w in weights]


PdfHook = Callable[[_Flow], None]


def _render_pdf(
    flow: _Flow, markup: str, hooks: dict[str, PdfHook], heading_size: float | None = None
) -> None:
    for block in parse(markup):
        runs: list[Run] = (
            [(block.lead, True), (block.text, False)] if block.lead else [(block.text, False)]
        )
        if block.kind == "heading":
            flow.heading(block.text, block.level, size=heading_size)
        elif block.kind == "bold":
            flow.runs([(block.text, True)], after=3)
        elif block.kind in ("item", "bullet"):
            flow.item(block.marker, runs, block.level)
        elif block.kind == "table":
            flow.table(block.rows, _column_widths(block.rows))
        elif block.kind == "hook":
            hooks[block.text](flow)
        else:
            flow.runs(runs)


def _running_header_footer(
    flow: _Flow, header: str | None, footer: Callable[[int, int], str]
) -> None:
    total = flow.doc.page_count
    for page in flow.doc:
        flow.page = page
        if header:
            flow.put(LEFT, 50, header, size=8.5, color=(0.3, 0.3, 0.3))
            page.draw_line((LEFT, 56), (RIGHT, 56), color=(0.5, 0.5, 0.5), width=0.5)
        page.draw_line((LEFT, 752), (RIGHT, 752), color=(0.5, 0.5, 0.5), width=0.5)
        flow.centre(766, footer(page.number + 1, total), size=8.5)


def _save_pdf(doc: Any, path: Path, title: str, author: str) -> None:
    doc.set_metadata(
        {
            "title": title,
            "author": author,
            "subject": "Customer Care Standard Operating Procedure",
            "keywords": "SOP, customer care",
            "creator": "sopc scripts/make_samples.py",
            "producer": "PyMuPDF",
            "creationDate": PDF_DATE,
            "modDate": PDF_DATE,
        }
    )
    doc.subset_fonts()
    path.write_bytes(doc.tobytes(garbage=4, deflate=True, no_new_id=True))


def _render_png(draw: Callable[[Any], None], width: float, height: float, dpi: int) -> bytes:
    """Draw onto a scratch pymupdf page and return it rendered as PNG bytes."""
    page = pymupdf.open().new_page(width=width, height=height)
    page.draw_rect(page.rect, color=None, fill=(1, 1, 1))
    draw(page)
    png: bytes = page.get_pixmap(dpi=dpi).tobytes("png")
    return png


# ---------------------------------------------------------------------------------------------
# 1. billing/refunds-and-credits.pdf
# ---------------------------------------------------------------------------------------------

INK = (0.1, 0.1, 0.2)


def _box(
    page: Any,
    rect: tuple[float, float, float, float],
    text: str,
    fill: tuple[float, float, float],
    *,
    round_: bool = False,
) -> None:
    page.draw_rect(rect, color=INK, fill=fill, width=1, radius=0.3 if round_ else None)
    box = pymupdf.Rect(rect[0] + 4, rect[1], rect[2] - 4, rect[3])
    text = text if "\n" in text else "\n" + text  # roughly centre one line vertically
    page.insert_textbox(box, text, fontname="helv", fontsize=9, align=pymupdf.TEXT_ALIGN_CENTER)


def _diamond(page: Any, cx: float, cy: float, text: str, w: float = 150, h: float = 68) -> None:
    points = [(cx, cy - h / 2), (cx + w / 2, cy), (cx, cy + h / 2), (cx - w / 2, cy)]
    page.draw_polyline(points, color=INK, fill=(1.0, 0.95, 0.8), width=1, closePath=True)
    rect = pymupdf.Rect(cx - w / 2 + 14, cy - 11, cx + w / 2 - 14, cy + 14)
    page.insert_textbox(rect, text, fontname="helv", fontsize=8.5, align=pymupdf.TEXT_ALIGN_CENTER)


def _arrow(
    page: Any,
    start: tuple[float, float],
    end: tuple[float, float],
    label: str = "",
    *,
    head: bool = True,
) -> None:
    page.draw_line(start, end, color=INK, width=1)
    (x0, y0), (x1, y1) = start, end
    if head:
        length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1e-6)
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        tip = [
            (x1, y1),
            (x1 - 7 * ux - 3.5 * uy, y1 - 7 * uy + 3.5 * ux),
            (x1 - 7 * ux + 3.5 * uy, y1 - 7 * uy - 3.5 * ux),
        ]
        page.draw_polyline(tip, color=INK, fill=INK, closePath=True)
    if label:
        page.insert_text(((x0 + x1) / 2 + 4, (y0 + y1) / 2 - 3), label, fontname="hebo", fontsize=8)


def _draw_refund_flowchart(page: Any) -> None:
    blue, green, red = (0.85, 0.92, 1.0), (0.86, 0.96, 0.86), (1.0, 0.88, 0.88)
    _box(page, (20, 12, 160, 46), "Customer asks for a refund", blue, round_=True)
    _arrow(page, (90, 46), (90, 64))
    _box(page, (20, 64, 160, 98), "Look up order\n(lookup_order)", blue)
    _arrow(page, (90, 98), (90, 116))
    _diamond(page, 90, 150, "Delivered within 30 days?")
    _arrow(page, (165, 150), (215, 150), "No")
    _box(page, (215, 133, 345, 167), "Offer account credit\n(apply_account_credit)", green)
    _arrow(page, (90, 184), (90, 206), "Yes")
    _diamond(page, 90, 240, "Refund over $200?")
    _arrow(page, (165, 240), (215, 240), "Yes")
    _box(page, (215, 223, 345, 257), "Escalate to Billing\nSupervisor queue", red)
    _arrow(page, (90, 274), (90, 294), "No")
    _box(page, (20, 294, 160, 328), "Issue refund\n(issue_refund)", green)
    _arrow(page, (160, 311), (375, 311))
    _box(page, (375, 294, 500, 328), "Confirm amount and\ntiming with customer", blue)
    _arrow(page, (345, 150), (437, 150), head=False)
    _arrow(page, (437, 150), (437, 294))
    page.insert_text((380, 30), "Refund decision flow", fontname="hebo", fontsize=11)
    page.insert_text((380, 44), "CC-BIL-004, section 3.1", fontname="helv", fontsize=8)


REFUNDS_TITLE = [
    ("Document ID:", "CC-BIL-004"),
    ("Owner:", "Priya Raman, Billing Operations Manager"),
    ("Version:", "3.2"),
    ("Effective date:", "1 March 2024"),
    ("Next review:", "1 March 2025"),
    ("Applies to:", "Billing agents (Tier 1 and Tier 2), Billing Supervisors"),
    ("Classification:", "Internal"),
]

REFUNDS = """
# 1. Purpose and scope
This procedure tells Billing agents how to handle a customer's request for a refund or an account
credit: how to check that the request is eligible, who may approve which amounts, which system to
use, and when to escalate. It exists so that customers are treated consistently and so that an
order is never refunded twice.

It applies to refunds and account credits for online and telephone orders placed with Acme Retail
and requested by phone, chat or email.
** In scope
- Full and partial refunds of orders paid by card, PayPal or gift card.
- Account credits for service failures such as late delivery or a missing item.
- Refunds that Shipping or Tech Support have agreed and transferred to Billing.
** Out of scope
- Card chargebacks and payment disputes: follow SOP CC-BIL-006.
- Store purchases, which are refunded in store.
- Business (B2B) accounts, which the Account Management team handles.

# 2. Definitions and roles
Refund:: money returned to the customer's original payment method.
Account credit:: a balance added to the customer's Acme account and used against future orders.
  Credits do not expire.
Order total:: what the customer paid for the order, including shipping and tax, less any earlier
  refunds.
Goodwill voucher:: a discretionary voucher offered to keep a customer's goodwill when no refund is
  owed.
Billing Supervisor queue:: the ticket queue worked by Billing Supervisors (team
  billing-supervisors in the ticketing system).

Billing Agent (Tier 1):: handles requests up to the limit in Table 1.
Senior Billing Agent (Tier 2):: handles larger refunds and approves account credits over $50.
Billing Supervisor:: approves refunds over $200 and works the Billing Supervisor queue within
  2 business days.
Billing Operations Manager:: owns this SOP and approves refunds over $1,000.

# 3. Procedure
Before you start, open the customer's record and read the last three contacts. If the customer
contacted us about the same order in the last 7 days, continue the existing case instead of
opening a new one.
## 3.1 Issuing a refund
** When to use
Use this procedure when a customer asks for their money back for an order or part of an order.
** Steps
1. Find the order in the order management system (lookup_order) using the order number the
   customer gives you.
   a. If the customer does not have the order number, search for the customer by email address
      with lookup_customer and pick the order from their order list.
   b. Confirm the customer's name and the delivery postcode on the order. If they do not match,
      do not discuss the order; go to step 9.
2. Check that the order is eligible for a refund.
   a. If the order was delivered more than 30 days ago, explain the 30-day refund policy and offer
      an account credit instead (section 3.2); go to step 6.
   b. If the customer has not yet returned the items, transfer the customer to Shipping to arrange
      a return label. Do not refund before the carrier has scanned the return.
   c. If a chargeback is open on the order, never refund it: escalate to the Billing Supervisor
      queue and go to step 8.
3. Work out the refund amount.
   a. For a full refund, use the order total.
   b. For a partial refund, add up the price of the affected items. Add the original shipping
      charge only if the whole order was faulty or never delivered.
4. Check the refund amount against your approval limit in Table 1.
   a. If the refund amount is over $200, escalate to the Billing Supervisor queue: open a ticket
      with create_ticket (priority high, team billing-supervisors) holding the order number, the
      amount and the reason. Tell the customer that a supervisor will review the request within
      2 business days, then go to step 8.
   b. Otherwise, continue with step 5.
5. Issue the refund with the Refund Tool (issue_refund), entering the order number, the amount and
   one reason code: DAMAGED, NOT_RECEIVED, NOT_AS_DESCRIBED or CHANGE_OF_MIND.
   a. If the Refund Tool rejects the refund because the original card has expired, apply an
      account credit for the same amount instead (section 3.2).
   b. Read the confirmation number back to the customer.
6. Tell the customer the amount and when to expect it: 3-5 business days for cards, 24 hours for
   PayPal, straight away for gift cards and account credit.
7. If the customer is still unhappy with the outcome, send the customer a goodwill voucher for $10
   from the voucher system. Only one goodwill voucher per customer in 90 days.
8. Record a case note with the order number, the amount, the reason code and the confirmation
   number or ticket number.
9. Ask whether there is anything else you can help with, then close the contact.

## 3.2 Applying an account credit
Use an account credit when a refund to the original payment method is not possible, when the
customer prefers credit, or as compensation for a service failure.
** Steps
1. Look up the customer with lookup_customer and confirm that the account is active.
   a. If the account is closed or suspended, do not apply a credit; escalate to the Billing
      Supervisor queue.
2. Decide the credit amount.
   a. For a refund the Refund Tool rejected, use the refund amount from section 3.1.
   b. For a late delivery, credit $5 per order. For a missing item, credit the item price.
3. If the credit is over $50, ask a Senior Billing Agent to approve it and put their name in the
   reason. Otherwise, no approval is needed.
4. Apply the credit with the Account Credit tool (apply_account_credit), entering the customer ID,
   the amount and the reason.
5. Tell the customer that the credit is on their account and is used automatically at their next
   checkout. Credits do not expire.

## 3.3 Approval limits and decision flow
Table 1 shows how much each role may refund without further approval. The limits apply per order.
Figure 1 summarises the decisions in section 3.1.
[[keep-with-table]]
** Table 1: Refund approval limits by tier
| Role | Refund limit | Approval needed |
| Billing Agent (Tier 1) | Up to $50 | None |
| Senior Billing Agent (Tier 2) | Up to $200 | None; record the reason code |
| Billing Supervisor | Up to $1,000 | Supervisor approval recorded in the ticket |
| Billing Operations Manager | Over $1,000 | Finance Director sign-off |
[[flowchart]]

# 4. Escalation
Escalate by opening a ticket in the ticketing system (create_ticket) for the team named below.
Never promise the customer the outcome of an escalation.
- If the refund amount is over $200, escalate to the Billing Supervisor queue (priority high).
- If the customer mentions fraud, a card they do not recognise or identity theft, escalate to the
  Fraud Team (priority urgent) and do not issue any refund.
- If the customer threatens legal action or writes to us through a regulator, escalate to the
  Customer Relations team.
- If a refund has still not arrived 10 business days after it was issued, escalate to Payments
  Operations with the confirmation number.

# 5. Exceptions
- Gift card orders:: refund to a new gift card, never to a bank card or in cash.
- Orders paid partly with account credit:: refund the card part with issue_refund and return the
  credit part with apply_account_credit.
- Bereavement:: if the account holder has died, do not follow this procedure; transfer the caller
  to Account Services (CC-ACC-003).
- Marketplace orders:: items sold by a marketplace seller are refunded by the seller. Give the
  customer the seller's contact details.

# 6. Notes
- Do not split a refund into smaller refunds to stay within your limit. Split refunds are audited
  every month.
- The Refund Tool times out after 60 seconds. If it does, check the order for a refund before you
  try again, so that the customer is not refunded twice.

# 7. References
- CC-BIL-006 Payment Disputes and Chargebacks
- CC-SHP-005 Returns and Exchanges
- CC-ACC-003 Account Closure
- Acme Retail Refund Policy (customer-facing), January 2024 edition

# 8. Revision history
| Version | Date | Author | Change |
| 1.0 | 4 Jan 2021 | M. Osei | First issue. |
| 2.0 | 15 Jun 2022 | M. Osei | Added account credits (section 3.2). |
| 3.0 | 9 Jan 2023 | P. Raman | New approval limits; the Refund Tool replaces manual card refunds. |
| 3.1 | 2 Oct 2023 | D. Whitfield | Added the chargeback check (step 2c). |
| 3.2 | 1 Mar 2024 | D. Whitfield | Goodwill vouchers (step 7); Figure 1 added. |

# 9. Approval
[[approval]]
"""

REFUNDS_APPROVAL = [
    ("Prepared by", "Dana Whitfield, Billing Process Analyst", "12 February 2024"),
    ("Reviewed by", "Tomasz Nowak, Billing Supervisor", "19 February 2024"),
    ("Approved by", "Priya Raman, Billing Operations Manager", "26 February 2024"),
]


def _approval_block(flow: _Flow) -> None:
    for role, who, date in REFUNDS_APPROVAL:
        flow.ensure(40)
        flow.put(LEFT, flow.y + 10, role + ":", bold=True)
        flow.put(LEFT + 85, flow.y + 10, who)
        flow.put(LEFT + 330, flow.y + 10, "Date: " + date)
        flow.page.draw_line((LEFT + 85, flow.y + 28), (LEFT + 300, flow.y + 28), width=0.5)
        flow.put(LEFT + 85, flow.y + 36, "Signature", size=7, color=(0.4, 0.4, 0.4))
        flow.y += 42


def _contents_page(flow: _Flow, page: Any) -> None:
    flow.page = page
    flow.put(LEFT, TOP + 14, "Contents", size=16, bold=True)
    y, size = TOP + 44, 10.5
    for level, title, page_no in flow.headings:
        x, font = LEFT + (0 if level == 1 else 18), flow.font(level == 1)
        number = str(page_no)
        num_w = flow.regular.text_length(number, fontsize=size)
        room = RIGHT - num_w - 6 - x - font.text_length(title, fontsize=size)
        dots = " ." * int(room / font.text_length(" .", fontsize=size))
        flow.put(x, y, title + dots, size=size, bold=level == 1)
        flow.put(RIGHT - num_w, y, number, size=size)
        y += 19


def build_refunds_pdf(path: Path) -> None:
    """billing/refunds-and-credits.pdf: title page, contents, outline, table, flowchart."""
    doc = pymupdf.open()
    flow = _Flow(doc)
    flow.new_page()
    flow.centre(170, "ACME RETAIL", size=13, bold=True)
    flow.centre(190, "Customer Care Standard Operating Procedure", size=11)
    flow.centre(250, "Refunds and Account Credits", size=24, bold=True)
    flow.centre(280, "SOP CC-BIL-004", size=12)
    flow.y = 340
    flow.runs([("Document control", True)], size=11, after=6)
    for label, value in REFUNDS_TITLE:
        flow.put(LEFT + 40, flow.y + 10, label, bold=True)
        flow.put(LEFT + 150, flow.y + 10, value)
        flow.y += 16
    flow.y += 30
    flow.runs(
        [
            (
                "Printed copies are uncontrolled. Always check the Policy Portal for the current "
                "version before use.",
                False,
            )
        ],
        x=LEFT + 40,
    )
    doc.new_page(width=PAGE_W, height=PAGE_H)  # contents: filled in once page numbers are known
    flow.new_page()
    chart = _render_png(_draw_refund_flowchart, 520, 340, dpi=144)
    _render_pdf(
        flow,
        REFUNDS,
        {
            "keep-with-table": lambda f: f.ensure(130),
            "flowchart": lambda f: f.image(chart, 400, 262, "Figure 1: Refund decision flow"),
            "approval": _approval_block,
        },
    )
    _contents_page(flow, doc[1])
    doc.set_toc([[level, title, page_no] for level, title, page_no in flow.headings])
    _running_header_footer(
        flow,
        "Acme Retail — Customer Care SOP CC-BIL-004",
        lambda n, m: f"Confidential — internal use only | Page {n} of {m}",
    )
    _save_pdf(doc, path, "Refunds and Account Credits (CC-BIL-004)", "Billing Operations")


# ---------------------------------------------------------------------------------------------
# 2. shipping/delivery-exceptions.pdf (no outline: headings only by size and weight)
# ---------------------------------------------------------------------------------------------

DELIVERY = """
# Purpose
A delivery exception is any carrier event that stops a parcel moving toward the customer. This
procedure tells Shipping agents how to read the exception, what to tell the customer and when to
reship, claim or escalate, so that customers hear one consistent answer whichever agent they reach.

# Scope
All parcels shipped from Acme Retail warehouses with our contracted carriers. Freight deliveries of
large appliances follow the freight desk process and are out of scope.

# Definitions
Exception code:: the code the carrier tracking portal shows for the event (Table 1).
Scan:: a tracking event recorded by the carrier when the parcel is handled.
Shipping Supervisor queue:: the ticket queue for team shipping-supervisors.

# Procedure A: Handling a delivery exception
1. Find the parcel.
   1.1 Look up the order in the order management system and note the tracking number.
   1.2 Check the latest scan events with track_shipment.
2. Find the exception code in Table 1 and follow the action for that code.
   2.1 If the code is ADDR, confirm the full delivery address with the customer, then update the
       delivery address in the carrier portal.
   2.2 If the code is NOACC, tell the customer the carrier will try again on the next business day
       and that they can name a safe place.
   2.3 If the code is DMG, follow SOP CC-SHP-003 Lost or Damaged Package.
   2.4 If the code is RTS, reship the order with reship_order once the parcel is back in the
       warehouse.
3. If the parcel has shown no new scan for 5 business days, open a carrier claim with
   open_carrier_claim (claim type lost) and tell the customer we will update them within 48 hours.
   3.1 If the order total is over $500, also escalate to the Shipping Supervisor queue with
       create_ticket (priority high).
   3.2 Otherwise, no escalation is needed.
4. If the customer asks for a refund instead of waiting, transfer the customer to Billing.
5. Record the exception code and the action you took in the case notes, then ask whether there is
   anything else you can help with.
[[keep-with-table]]
** Table 1: Carrier exception codes
| Code | What the carrier means | Action |
| ADDR | Address incomplete or not found | Confirm the address; update it with the carrier (2.1) |
| NOACC | No access, or nobody home to sign | Second attempt next business day (step 2.2) |
| DMG | Damaged in transit | Follow CC-SHP-003 |
| WTHR | Weather or force majeure delay | Tell the customer; no action for 3 days |
| CUST | Held at customs | Escalate to the Shipping Supervisor queue |
| RTS | Returned to sender | Reship when the parcel is back (step 2.4) |

# Procedure B: Redirecting a parcel
1. Check with track_shipment whether the parcel has reached the delivery depot.
2. If it has reached the depot, tell the customer a redirect is no longer possible and offer
   collection from the depot instead.
3. Otherwise, request the redirect in the carrier portal. Carriers charge $4.99 for a redirect; we
   absorb the charge.

# Escalation
- If a WTHR exception lasts more than 3 days, escalate to the Shipping Supervisor queue.
- If a parcel is held at customs (CUST), escalate to the Shipping Supervisor queue; agents must not
  give customs advice.
- If the customer reports a safety issue with a delivered item, escalate to Product Safety
  (priority urgent) with create_ticket.

# Exceptions
- Perishable goods:: do not wait for a second attempt. Reship immediately with reship_order and
  tell the customer to refuse the late parcel.
- PO Box addresses:: only the postal service can deliver to a PO Box. If another carrier holds the
  parcel, ask the customer for a street address.

# Revision history
| Version | Date | Change |
| 1.2 | 3 Jul 2023 | Added Procedure B (redirects). |
| 1.3 | 18 Dec 2023 | Perishable goods exception. |
| 1.4 | 15 Apr 2024 | New carrier codes WTHR and CUST. |
"""


def build_delivery_exceptions_pdf(path: Path) -> None:
    """shipping/delivery-exceptions.pdf: 1. / 1.1 lists and a code table, with no outline."""
    doc = pymupdf.open()
    flow = _Flow(doc)
    flow.new_page()
    flow.put(LEFT, flow.y + 18, "Delivery Exceptions", size=20, bold=True)
    flow.y += 30
    flow.put(
        LEFT,
        flow.y + 11,
        "Shipping Customer Care — Standard Operating Procedure CC-SHP-002",
        size=11,
        color=(0.25, 0.25, 0.25),
    )
    flow.y += 24
    flow.runs([("Owner: ", True), ("Marcus Bell, Shipping Customer Care Lead", False)], after=1)
    flow.runs(
        [
            ("Version: ", True),
            ("1.4", False),
            ("    Effective date: ", True),
            ("15 April 2024", False),
            ("    Review: ", True),
            ("annually", False),
        ],
        after=4,
    )
    flow.page.draw_line((LEFT, flow.y), (RIGHT, flow.y), color=(0.4, 0.4, 0.4), width=0.5)
    flow.y += 8
    _render_pdf(flow, DELIVERY, {"keep-with-table": lambda f: f.ensure(170)}, heading_size=12.5)
    footer = "Acme Retail internal | Printed copies are uncontrolled | Page {}"
    _running_header_footer(flow, None, lambda n, m: footer.format(n))
    _save_pdf(doc, path, "Delivery Exceptions (CC-SHP-002)", "Shipping Customer Care")


# ---------------------------------------------------------------------------------------------
# DOCX: real Word numbering, fixed core properties, a stable zip.
# ---------------------------------------------------------------------------------------------


def _numbering(document: Any) -> Any:
    return document.part.numbering_part.element


def _add_multilevel_list(document: Any, abstract_id: int) -> None:
    """Define a 1. / 1.1 / a. list the way Word stores a multi-level list."""
    formats = [
        ("decimal", "%1.", 360, 360),
        ("decimal", "%1.%2", 864, 504),
        ("lowerLetter", "%3.", 1296, 360),
    ]
    levels = "".join(
        f'<w:lvl w:ilvl="{i}"><w:start w:val="1"/><w:numFmt w:val="{fmt}"/>'
        f'<w:lvlText w:val="{text}"/><w:lvlJc w:val="left"/>'
        f'<w:pPr><w:ind w:left="{left}" w:hanging="{hanging}"/></w:pPr></w:lvl>'
        for i, (fmt, text, left, hanging) in enumerate(formats)
    )
    abstract = parse_xml(
        f'<w:abstractNum {nsdecls("w")} w:abstractNumId="{abstract_id}">'
        f'<w:multiLevelType w:val="multilevel"/>{levels}</w:abstractNum>'
    )
    # Schema order: every abstractNum comes before the first num.
    _numbering(document).find(qn("w:num")).addprevious(abstract)


def _new_num(document: Any, abstract_id: int, num_id: int) -> int:
    """A list instance that restarts at 1 (Word's "Restart numbering")."""
    _numbering(document).append(
        parse_xml(
            f'<w:num {nsdecls("w")} w:numId="{num_id}"><w:abstractNumId w:val="{abstract_id}"/>'
            f'<w:lvlOverride w:ilvl="0"><w:startOverride w:val="1"/></w:lvlOverride></w:num>'
        )
    )
    return num_id


def _abstract_of(document: Any, style: str) -> int:
    num_id = str(document.styles[style].element.pPr.numPr.numId.val)
    for num in _numbering(document).findall(qn("w:num")):
        if num.get(qn("w:numId")) == num_id:
            return int(num.find(qn("w:abstractNumId")).get(qn("w:val")))
    raise KeyError(style)


def _set_num(paragraph: Any, num_id: int, level: int) -> None:
    num_pr = paragraph._p.get_or_add_pPr().get_or_add_numPr()
    num_pr.get_or_add_ilvl().val = level
    num_pr.get_or_add_numId().val = num_id


def _add_runs(paragraph: Any, block: Block) -> Any:
    if block.lead:
        paragraph.add_run(block.lead).bold = True
    paragraph.add_run(block.text)
    return paragraph


def _table(document: Any, rows: Sequence[Sequence[str]]) -> Any:
    table = document.add_table(rows=0, cols=len(rows[0]))
    table.style = "Table Grid"
    for index, row in enumerate(rows):
        for cell, text in zip(table.add_row().cells, row, strict=True):
            cell.paragraphs[0].add_run(text).bold = index == 0
    return table


class _Numbering:
    """How a DOCX sample numbers its items: a Word multi-level list, or List Number styles."""

    def __init__(self, document: Any, *, styles: bool) -> None:
        self.document, self.styles = document, styles
        self.next_id = 200
        self.current: dict[int, int] = {}  # list level -> numId in use
        if styles:
            self.sub_abstract = _abstract_of(document, "List Number 2")
            self.top_abstract = _abstract_of(document, "List Number")
            self.lists_started = 0
        else:
            _add_multilevel_list(document, abstract_id=20)

    def restart(self) -> None:
        self.current = {}

    def add(self, block: Block) -> Any:
        document = self.document
        if not self.styles:
            if 0 not in self.current:
                self.next_id += 1
                self.current[0] = _new_num(document, 20, self.next_id)
            paragraph = _add_runs(document.add_paragraph(style="List Paragraph"), block)
            _set_num(paragraph, self.current[0], block.level)
            return paragraph
        # Built-in styles: level 0 is "List Number" (numbering from the style itself for the
        # first list, a restarted instance afterwards), level 1 is "List Number 2", restarted for
        # each group of sub-steps as Word does when a writer picks "Restart at 1".
        style = "List Number" if block.level == 0 else "List Number 2"
        paragraph = _add_runs(document.add_paragraph(style=style), block)
        if block.level == 0:
            self.current.pop(1, None)
            if 0 not in self.current:
                self.lists_started += 1
                self.current[0] = 0
                if self.lists_started > 1:
                    self.next_id += 1
                    self.current[0] = _new_num(document, self.top_abstract, self.next_id)
            if self.current[0]:
                _set_num(paragraph, self.current[0], 0)
        else:
            if 1 not in self.current:
                self.next_id += 1
                self.current[1] = _new_num(document, self.sub_abstract, self.next_id)
            _set_num(paragraph, self.current[1], 0)
        return paragraph


DocxHook = Callable[[Any], None]


def _render_docx(
    document: Any, markup: str, numbering: _Numbering, hooks: dict[str, DocxHook]
) -> None:
    for block in parse(markup):
        if block.kind != "item":
            numbering.restart()
        if block.kind == "heading":
            document.add_heading(block.text, level=block.level)
        elif block.kind == "bold":
            document.add_paragraph(block.text, style="Caption")
        elif block.kind == "item":
            numbering.add(block)
        elif block.kind == "bullet":
            _add_runs(document.add_paragraph(style="List Bullet"), block)
        elif block.kind == "table":
            _table(document, block.rows)
        elif block.kind == "hook":
            hooks[block.text](document)
        else:
            _add_runs(document.add_paragraph(), block)


def _header_footer(document: Any, header: str, footer: str) -> None:
    section = document.sections[0]
    section.header.paragraphs[0].text = header
    paragraph = section.footer.paragraphs[0]
    paragraph.text = footer + " | Page "
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    # A PAGE field with a cached result, as Word saves it.
    paragraph._p.append(
        parse_xml(
            f'<w:fldSimple {nsdecls("w")} w:instr=" PAGE "><w:r><w:t>1</w:t></w:r></w:fldSimple>'
        )
    )


def _new_document() -> Any:
    document = docx.Document()
    document.styles["Normal"].font.name = "Calibri"
    document.styles["Normal"].font.size = Pt(10.5)
    return document


def _save_docx(document: Any, path: Path, title: str, author: str) -> None:
    props = document.core_properties
    props.title, props.author, props.last_modified_by = title, author, author
    props.subject, props.keywords = "Customer Care Standard Operating Procedure", "SOP"
    props.created = props.modified = DOCX_DATE
    props.revision = 1
    buffer = io.BytesIO()
    document.save(buffer)
    path.write_bytes(_stable_zip(buffer.getvalue()))


def _stable_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed timestamps and sorted members: same content, same bytes."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for name in sorted(source.namelist()):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0
            info.external_attr = 0
            target.writestr(info, source.read(name))
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# 3. billing/payment-disputes.docx
# ---------------------------------------------------------------------------------------------


def _draw_dispute_timeline(page: Any) -> None:
    page.draw_line((20, 40), (340, 40), color=(0.2, 0.3, 0.5), width=2)
    for x, day, label in [
        (20, "Day 0", "Notice received"),
        (130, "Day 2", "Customer contacted"),
        (235, "Day 7", "Evidence sent"),
        (340, "Day 20", "Network deadline"),
    ]:
        page.draw_circle((x, 40), 5, color=(0.2, 0.3, 0.5), fill=(0.85, 0.9, 1.0))
        page.insert_text((x - 12, 26), day, fontname="hebo", fontsize=8)
        page.insert_text((x - 18, 60), label, fontname="helv", fontsize=7)


DISPUTES = """
# Purpose
This procedure tells Billing agents how to respond when a customer's bank disputes a card payment
(a chargeback) or asks for information about it (a retrieval request). A complete and timely
response wins most disputes; a late one loses them all.

# Scope
Chargebacks and retrieval requests on card payments for Acme Retail orders. Disputes raised with
PayPal follow the PayPal Resolution Center guide and are out of scope.

# Definitions
- Chargeback:: a payment reversed by the customer's bank after the customer disputes it.
- Retrieval request:: a bank's request for information before it decides on a chargeback.
- Representment:: our response to a chargeback, with evidence, asking the bank to reverse it.
- Evidence pack:: the documents we send with a representment.

# Roles
Billing agents handle disputes up to $1,000. The Billing Supervisor approves representments over
$1,000. The Fraud Team owns every dispute the customer does not recognise.

# Procedure
## Handling a new chargeback notice
Chargeback notices arrive in the Disputes inbox every morning. Work them oldest first.
1. Find the order and the payment.
   1.1 Find the order in the order management system (lookup_order) using the order number on the
       chargeback notice.
   1.2 Open the invoice with get_invoice and note the payment reference and the amount charged.
2. Check whether the customer has already been refunded.
   2.1 If a refund for the same amount was already issued, accept the chargeback in the dispute
       portal and record the refund confirmation number. Never refund the order again.
   2.2 Otherwise, continue with step 3.
3. Contact the customer within 2 business days.
   3.1 Look up the customer with lookup_customer and call the phone number on the account.
      a. If the customer does not recognise the payment, treat it as possible fraud: place a fraud
         hold on the account and escalate to the Fraud Team with create_ticket (priority urgent).
         Go to step 6.
      b. If the customer recognises the payment and says the parcel never arrived, transfer the
         customer to Shipping to trace the parcel.
      c. If the customer agrees to withdraw the dispute, ask them to contact their bank and note
         the date they agreed.
   3.2 If you cannot reach the customer after two attempts, continue without them.
4. Build the evidence pack: the invoice, proof of delivery from track_shipment, and the customer's
   contact history.
   4.1 Upload the evidence pack to the card processor's dispute portal before the deadline in
       Table 1.
5. If the disputed amount is over $1,000, escalate to the Billing Supervisor queue before you
   submit the evidence.
6. Record the dispute reference, the evidence sent and the outcome date in the case notes.

## Responding to a retrieval request
1. Open the invoice with get_invoice.
2. Send the invoice and the proof of delivery through the dispute portal within 7 days.
   2.1 If the order was never shipped, do not reply; issue a full refund with issue_refund instead
       and note the retrieval reference as the reason.
3. Set a reminder to check for a chargeback after 10 days.

## Dispute deadlines
** Table 1: Response deadlines and evidence by dispute type
[[deadlines]]
[[timeline]]

# Escalation
- Escalate to the Billing Supervisor queue when the disputed amount is over $1,000 or the customer
  has more than two open disputes.
- Escalate to the Fraud Team (priority urgent) when the customer does not recognise the payment.
- If a deadline in Table 1 will be missed, escalate to the Billing Supervisor queue at once.

# Exceptions
- Gift card purchases cannot be charged back; refer the bank to the gift card terms.
- If the customer already returned the goods and the return was scanned, do not fight the dispute:
  accept it and record the return tracking number.

# Notes
Never issue a refund while a chargeback is open: the customer would be paid twice. Banks decide
within 30 to 60 days of our response; tell the customer that we do not control the timing.

# References
- CC-BIL-004 Refunds and Account Credits
- Card network dispute rules, 2024 edition

# Revision history
| Version | Date | Author | Change |
| 2.1 | 12 Jun 2023 | T. Nowak | Retrieval requests added. |
| 2.2 | 30 Sep 2023 | T. Nowak | Deadlines table updated for Mastercard. |
| 2.3 | 8 Jan 2024 | D. Whitfield | Fraud hold step; timeline figure. |

# Approval
Approved by:: Priya Raman, Billing Operations Manager, 2 January 2024
"""

DEADLINE_ROWS = [
    ["Fraud / not recognised", "20", "45", "Proof of delivery, device and IP address, AVS result"],
    ["Goods not received", "20", "45", "Proof of delivery with signature or photo"],
    ["Not as described", "20", "45", "Product page, return policy, customer contacts"],
    ["Duplicate charge", "20", "45", "Invoice showing a single charge"],
]


def _deadlines_table(document: Any) -> None:
    """A table whose header has a cell merged across two columns and two merged down."""
    table = document.add_table(rows=2, cols=4)
    table.style = "Table Grid"
    top, sub = table.rows[0].cells, table.rows[1].cells
    for cell, text in [
        (top[0], "Dispute type"),
        (top[1], "Response deadline (days)"),
        (top[3], "Evidence needed"),
        (sub[1], "Visa"),
        (sub[2], "Mastercard"),
    ]:
        cell.paragraphs[0].add_run(text).bold = True
    top[1].merge(top[2])
    top[0].merge(sub[0])
    top[3].merge(sub[3])
    for row in DEADLINE_ROWS:
        for cell, text in zip(table.add_row().cells, row, strict=True):
            cell.text = text


def _merge_title_row(table: Any) -> None:
    merged = table.rows[0].cells[0].merge(table.rows[0].cells[1])
    for extra in merged.paragraphs[1:]:  # merge() keeps the absorbed cell's empty paragraph
        extra._p.getparent().remove(extra._p)


def build_payment_disputes_docx(path: Path) -> None:
    """billing/payment-disputes.docx: multi-level Word numbering, merged cells, an image."""
    document = _new_document()
    document.add_paragraph("Payment Disputes and Chargebacks", style="Title")
    document.add_paragraph(
        "Customer Care Standard Operating Procedure CC-BIL-006", style="Subtitle"
    )
    control = _table(
        document,
        [
            ["Document control", ""],
            ["Document ID", "CC-BIL-006"],
            ["Owner", "Priya Raman, Billing Operations Manager"],
            ["Version", "2.3"],
            ["Effective date", "8 January 2024"],
            ["Next review", "8 January 2025"],
        ],
    )
    _merge_title_row(control)
    document.add_paragraph().add_run("Printed copies are uncontrolled.").italic = True
    timeline = _render_png(_draw_dispute_timeline, 360, 72, dpi=120)

    def add_timeline(doc: Any) -> None:
        doc.add_paragraph().add_run().add_picture(io.BytesIO(timeline), width=Pt(300))
        doc.add_paragraph("Figure 1: A typical chargeback timeline", style="Caption")

    _render_docx(
        document,
        DISPUTES,
        _Numbering(document, styles=False),
        {"deadlines": _deadlines_table, "timeline": add_timeline},
    )
    _header_footer(
        document, "Acme Retail — Customer Care SOP CC-BIL-006", "Confidential — internal use only"
    )
    _save_docx(
        document, path, "Payment Disputes and Chargebacks (CC-BIL-006)", "Billing Operations"
    )


# ---------------------------------------------------------------------------------------------
# 4. account/account-closure.docx (numbering from the built-in List Number styles)
# ---------------------------------------------------------------------------------------------

CLOSURE = """
Document ID:: CC-ACC-003    Version: 2.0    Effective date: 1 February 2024
Owner:: Grace Okafor, Account Services Team Lead

Printed copies are uncontrolled. The Policy Portal holds the current version.

# 1. Purpose
To close customer accounts safely and only at the request of the verified account holder, while
giving the customer a fair chance to stay.

# 2. Scope
Personal Acme Retail accounts closed by phone or chat. Business accounts are managed by Account
Management and are out of scope.

# 3. Definitions
- Cooling-off period:: the 14 days after closure during which an account can be reopened.
- Outstanding balance:: money the customer owes us, such as an unpaid invoice.
- Team Lead approval:: a second person's approval in the Account Closure tool.

# 4. Procedure
## 4.1 Closing an account at the customer's request
1. Verify the caller's identity with verify_identity, using an SMS code (sms_code).
   a. If the customer has no mobile number on file, use security questions instead.
   b. If verification fails, do not close the account and do not say whether an account exists;
      follow CC-ACC-002 Identity Verification.
2. Look up the customer with lookup_customer and check for open orders, an outstanding balance and
   unused account credit.
3. If the customer has an outstanding balance, transfer the customer to Billing to settle it. The
   account cannot be closed until the balance is zero.
4. If there are open orders, explain that the account can be closed only once they are delivered or
   cancelled, and offer a call back. Otherwise, continue with step 5.
5. Ask why the customer is leaving and record the reason code.
   a. If the reason is price, offer the retention discount (20% off for 6 months) in the retention
      offers tool. If the customer accepts, end the closure and go to step 9.
   b. If the reason is a service fault, offer to transfer the customer to Tech Support first.
6. Tell the customer what closure means: order history is kept for 7 years for tax purposes,
   unused account credit is lost, and saved cards are deleted.
   a. Cancel the customer's marketing subscriptions in the email platform.
7. Close the account with close_account, entering the customer ID and the reason code. A Team Lead
   must approve the closure in the tool.
8. Tell the customer a confirmation email will follow within 24 hours and that the account can be
   reopened within 14 days.
9. Ask whether there is anything else you can help with, then end the contact.

## 4.2 Reopening an account in the cooling-off period
1. Verify the caller's identity with verify_identity.
2. If the account was closed more than 14 days ago, explain that it cannot be reopened and offer to
   help the customer open a new account. Otherwise, open a ticket for Account Services with
   create_ticket (priority normal) asking for the account to be reopened.
3. Tell the customer the account will be reopened within one business day.

# 5. Exceptions
| Situation | What to do |
| The account holder has died | Do not use close_account. Transfer the caller to the Bereavement team and ask for a copy of the death certificate. |
| Account under fraud investigation | Do not close it. Escalate to the Fraud Team with create_ticket (priority urgent). |
| Caller holds a power of attorney | Ask for the attorney documents and open a ticket for Account Services; do not close the account on the call. |
| Customer asks for all their data to be deleted | Close the account as usual, then log a data erasure request with the Privacy team. |

# 6. Escalation
If a Team Lead is not available to approve a closure within 4 hours, escalate to the Account
Services Manager. If the customer complains about the closure process, escalate to Customer
Relations.

# 7. Notes
Closing an account cannot be undone after 14 days. When in doubt, do not close: a call back costs
less than a wrongly closed account.

# 8. Revision history
| Version | Date | Author | Change |
| 1.0 | 20 Mar 2022 | G. Okafor | First issue. |
| 1.1 | 5 Sep 2022 | G. Okafor | Cooling-off period extended to 14 days. |
| 2.0 | 1 Feb 2024 | L. Fernandes | Retention offer; Team Lead approval in the tool. |

# 9. Approval
Approved by:: Grace Okafor, Account Services Team Lead, 25 January 2024
"""  # noqa: E501  (table rows stay on one line each)


def build_account_closure_docx(path: Path) -> None:
    """account/account-closure.docx: List Number styles, an exceptions table, revision history."""
    document = _new_document()
    document.add_paragraph("Account Closure", style="Title")
    _render_docx(document, CLOSURE, _Numbering(document, styles=True), {})
    _header_footer(
        document,
        "Acme Retail — Customer Care SOP CC-ACC-003 Account Closure",
        "Internal — Printed copies are uncontrolled",
    )
    _save_docx(document, path, "Account Closure (CC-ACC-003)", "Account Services")


# ---------------------------------------------------------------------------------------------
# 5. account/identity-verification-scan.png (a "scanned" page: its text exists only as pixels)
# ---------------------------------------------------------------------------------------------

SCAN = """
!ACME RETAIL — CUSTOMER CARE
Standard Operating Procedure CC-ACC-002

#Identity Verification
Owner: Account Security Lead    Version: 1.3    Effective date: 1 November 2023

##Purpose
Confirm that a caller is the account holder before discussing or changing an account.

##Procedure
1. Look up the customer with lookup_customer using the email address or customer ID.
2. Verify the caller with verify_identity. Send an SMS code (sms_code) first.
      a. If there is no mobile number on file, send an email code (email_code).
      b. If neither code arrives, ask the security questions (security_questions).
3. If the caller fails verification three times, do not disclose any account details.
    Lock the account with the security lock and escalate to the Account Security team.
4. For account closure or a change of account owner, also require photo ID (photo_id).
5. Record the verification method in the case notes.

##Exceptions
If the caller is a police officer or a solicitor, do not verify them on the call; ask them
to write to the Legal team.

Printed copies are uncontrolled.
"""


def scan_text() -> str:
    """The words printed on the scanned identity-verification page, one line per row."""
    lines = (line.lstrip("!#").strip() for line in SCAN.strip().splitlines())
    return "\n".join(line for line in lines if line)


def build_identity_scan_png(path: Path) -> None:
    """account/identity-verification-scan.png: one Letter page at 150 dpi on grey paper."""
    doc = pymupdf.open()
    flow = _Flow(doc)
    flow.new_page()
    page = flow.page
    page.draw_rect(page.rect, color=None, fill=(0.93, 0.925, 0.9))
    for cy in (160, 632):  # punched holes, as on a page taken out of a binder
        page.draw_circle((30, cy), 9, color=None, fill=(0.8, 0.8, 0.78))
    seed = 12345  # speckle from a fixed linear congruential sequence, not random()
    for _ in range(140):
        seed = (seed * 1103515245 + 12345) % 2**31
        x = 20 + seed % 570
        seed = (seed * 1103515245 + 12345) % 2**31
        page.draw_circle(
            (x, 20 + seed % 750), 0.6 + (seed % 3) * 0.3, color=None, fill=(0.55, 0.55, 0.55)
        )
    writer = pymupdf.TextWriter(page.rect)
    y = 90.0
    for raw in SCAN.strip().splitlines():
        size, bold = {"!": (11, True), "#": (20, True)}.get(raw[:1], (10.5, False))
        if raw.startswith("##"):
            size = 13
        text = raw.lstrip("!#")
        y += (size if text else 6) * 1.45
        if text:
            indent = len(text) - len(text.lstrip())
            writer.append((LEFT + indent * 3, y), text.strip(), font=flow.font(bold), fontsize=size)
    writer.append((PAGE_W / 2 - 25, 760), "Page 1 of 1", font=flow.regular, fontsize=8)
    # A slight skew, as from a sheet fed into a scanner at an angle.
    writer.write_text(
        page,
        color=(0.12, 0.12, 0.14),
        morph=(pymupdf.Point(PAGE_W / 2, PAGE_H / 2), pymupdf.Matrix(-0.6)),
    )
    page.draw_rect(pymupdf.Rect(400, 640, 540, 690), color=(0.6, 0.1, 0.1), width=1.5)
    page.insert_textbox(
        pymupdf.Rect(400, 648, 540, 690),
        "CONTROLLED COPY\nACCOUNT SECURITY",
        fontname="hebo",
        fontsize=9,
        color=(0.6, 0.1, 0.1),
        align=pymupdf.TEXT_ALIGN_CENTER,
    )
    path.write_bytes(page.get_pixmap(dpi=150).tobytes("png"))


# ---------------------------------------------------------------------------------------------

BUILDERS: dict[str, Callable[[Path], None]] = {
    "billing/refunds-and-credits.pdf": build_refunds_pdf,
    "billing/payment-disputes.docx": build_payment_disputes_docx,
    "shipping/delivery-exceptions.pdf": build_delivery_exceptions_pdf,
    "account/account-closure.docx": build_account_closure_docx,
    "account/identity-verification-scan.png": build_identity_scan_png,
}


def build_all(out_dir: Path = SAMPLE_DIR) -> list[Path]:
    """Build every binary sample under `out_dir`; return the paths written."""
    written = []
    for name, build in BUILDERS.items():
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        build(target)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: python scripts/make_samples.py [--out DIR]."""
    parser = argparse.ArgumentParser(description="Build the binary sample SOPs.")
    parser.add_argument("--out", type=Path, default=SAMPLE_DIR, help="folder to write into")
    args = parser.parse_args(argv)
    for path in build_all(args.out):
        print(path.relative_to(args.out).as_posix())
    return 0


if __name__ == "__main__":
    sys.exit(main())
