"""PDF reader (pymupdf): headings, lists, tables, figures and scanned pages, page by page.

Pass 1 reads each page once with `get_text("dict")` into small records (lines, tables, images)
and frees the page; pass 2 turns the records into blocks once the body font size is known.
Running headers, footers and page numbers are kept as ordinary blocks: `clean` removes them.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections import deque
from typing import Any

from sop_compiler.config import Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest.base import Reader, Source
from sop_compiler.ingest.image import ocr_hint
from sop_compiler.ingest.ocr import ocr_read, structure_lines
from sop_compiler.ingest.pdf import _diagram, _page
from sop_compiler.ingest.pdf._page import FigureItem, Item, PageRecord, Stats
from sop_compiler.ingest.pdf._structure import Builder, make_style
from sop_compiler.models import Document, Heading, Notice, Provenance

__all__ = ["PdfReader"]

_SCAN_DPI = 150


@functools.lru_cache(maxsize=1)
def _pymupdf() -> Any:
    pymupdf: Any = importlib.import_module("pymupdf")

    # the table finder otherwise prints an advert on stdout, which would corrupt `--format json`
    pymupdf.no_recommend_layout()
    return pymupdf


class PdfReader(Reader):
    """Reads a PDF into blocks in reading order, with page numbers and boxes in provenance."""

    format = "pdf"
    suffixes = (".pdf",)

    def read(self, source: Source, *, settings: Settings) -> Document:
        """Parse the PDF; raise InputError for corrupt, encrypted or over-long files."""
        pymupdf = _pymupdf()
        tools = pymupdf.TOOLS
        errors, warnings = tools.mupdf_display_errors(), tools.mupdf_display_warnings()
        # MuPDF would print repair chatter on stderr; problems are reported as errors or notices
        tools.mupdf_display_errors(False)
        tools.mupdf_display_warnings(False)
        try:
            return self._read(pymupdf, source, settings)
        finally:
            tools.mupdf_display_errors(errors)
            tools.mupdf_display_warnings(warnings)

    def _read(self, pymupdf: Any, source: Source, settings: Settings) -> Document:
        name = source.name
        try:
            pdf = pymupdf.open(stream=source.data, filetype="pdf")
        except Exception:
            raise InputError("is not a readable PDF (corrupt or truncated)", path=name) from None
        with pdf:
            if pdf.needs_pass:
                raise InputError("is encrypted; a password is needed to read it", path=name)
            if pdf.is_repaired and b"%%EOF" not in source.data[-4096:]:
                # MuPDF rebuilds what it can of a cut-off file; reading half an SOP would lose steps
                raise InputError("is truncated: the end of the PDF is missing", path=name)
            pages = pdf.page_count
            if pages == 0:
                raise InputError(
                    "is not a readable PDF (corrupt or truncated): no pages", path=name
                )
            limit = settings.limits.max_pages
            if pages > limit:
                raise InputError(
                    f"has {pages} pages, more than the limit of {limit} "
                    "(setting `limits.max_pages`)",
                    path=name,
                    hint="raise `limits.max_pages` in sopc.toml",
                )
            document = Document(
                source=name, format=self.format, sha256=source.sha256, page_count=pages
            )
            stats = Stats()
            records: deque[PageRecord] = deque()
            for index in range(pages):
                try:
                    records.append(
                        _read_page(pdf.load_page(index), index + 1, document, stats, settings)
                    )
                except Exception as exc:  # one damaged page must not lose the rest of the file
                    detail = " ".join(str(exc).split())[:160] or type(exc).__name__
                    document.notices.append(
                        Notice(
                            code="damaged_page",
                            message=f"page {index + 1} could not be read: {detail}",
                            prov=Provenance(file=name, page=index + 1),
                        )
                    )
            if pdf.is_repaired:
                document.notices.append(
                    Notice(
                        code="repaired_pdf",
                        message="the file is damaged; some content may be missing",
                    )
                )
            metadata_title = " ".join(str((pdf.metadata or {}).get("title") or "").split())
            toc = _outline(pdf)
        builder = Builder(document, make_style(stats, toc))
        while records:  # popping frees each page's records as soon as its blocks exist
            builder.add_page(records.popleft())
        first_heading = next((b.text for b in document.blocks if isinstance(b, Heading)), None)
        document.title = metadata_title or first_heading
        return document


def _outline(pdf: Any) -> list[list[object]]:
    try:
        toc: list[list[object]] = pdf.get_toc(simple=True)
    except Exception:  # a broken outline is not worth losing the document over
        return []
    return toc


def _read_page(
    page: Any, number: int, document: Document, stats: Stats, settings: Settings
) -> PageRecord:
    width, height = float(page.rect.width), float(page.rect.height)
    pymupdf = _pymupdf()
    # one get_text call gives text, images and (for the table gate) vector outlines
    page_dict = page.get_text("dict", flags=pymupdf.TEXTFLAGS_DICT | pymupdf.TEXT_COLLECT_VECTORS)
    lines, images, vectors = _page.page_lines(page_dict)
    del page_dict
    others: list[Item] = []
    diagram = None
    if _diagram.looks_drawn(vectors) and not _page.is_scanned(lines, images, width, height):
        try:
            diagram = _diagram.read_diagram(page, page.get_text("words"))
        except Exception:  # a drawing the recovery cannot handle is read as text, as before
            diagram = None
    if diagram is not None:
        # a page that is mainly a flowchart: its words are the graph's, not lines of text
        others.append(
            _page.FlowchartItem(
                diagram.bbox, diagram.nodes, diagram.edges, diagram.entry, diagram.unread
            )
        )
        lines = _page.outside(lines, [_grow(diagram.bbox, 2.0)])
        others += _page.image_figures(images, document.add_image)
    elif _page.is_scanned(lines, images, width, height):
        others.append(_scanned_figure(page, number, document, settings))
    else:
        area = _page.table_area(vectors)
        if area is not None:
            try:
                tables, areas = _page.extract_tables(page, lines, area)
            except Exception:  # the table finder failing leaves the text as paragraphs
                tables, areas = [], []
            others += tables
            lines = _page.outside(lines, areas)
        others += _page.image_figures(images, document.add_image)
    items, edges = _page.reading_order(lines, others, width, height)
    _page.count(stats, [item for item in items if isinstance(item, _page.Line)], height)
    return PageRecord(number=number, width=width, height=height, items=items, right_edges=edges)


def _grow(box: tuple[float, float, float, float], by: float) -> tuple[float, float, float, float]:
    return (box[0] - by, box[1] - by, box[2] + by, box[3] + by)


def _scan_dpi(width: float, height: float, max_pixels: int) -> float:
    """_SCAN_DPI, or the highest resolution whose rendering stays within `max_pixels`."""
    scale = _SCAN_DPI / 72
    # +1: the rendered size is rounded up to whole pixels
    if (width * scale + 1) * (height * scale + 1) <= max_pixels:
        return _SCAN_DPI
    zoom = math.sqrt(max_pixels / max(width * height, 1.0))
    while zoom > 1e-6 and (width * zoom + 1) * (height * zoom + 1) > max_pixels:
        zoom *= 0.99
    return zoom * 72


def _scanned_figure(page: Any, number: int, document: Document, settings: Settings) -> FigureItem:
    """Render a page that is only an image, so OCR or a vision model can read it."""
    width, height = float(page.rect.width), float(page.rect.height)
    dpi = _scan_dpi(width, height, settings.limits.max_image_pixels)
    prov = Provenance(file=document.source, page=number)
    if dpi == _SCAN_DPI:
        pixmap = page.get_pixmap(dpi=_SCAN_DPI)
    else:
        # a huge mediabox at 150 dpi would allocate gigabytes: render coarser, and say so
        zoom = dpi / 72
        pixmap = page.get_pixmap(matrix=_pymupdf().Matrix(zoom, zoom))
        document.notices.append(
            Notice(
                code="scanned_page_downscaled",
                message=(
                    f"page {number} ({width:.0f}x{height:.0f} pt) was rendered at {dpi:.3g} dpi "
                    f"instead of {_SCAN_DPI} to stay within `limits.max_image_pixels`; "
                    "small text may be unreadable"
                ),
                prov=prov,
            )
        )
    png: bytes = pixmap.tobytes("png")
    ref = document.add_image(png, "image/png", pixmap.width, pixmap.height)
    result = ocr_read(png, engine=settings.ocr)
    message = f"page {number} is a scanned image without a text layer; " + (
        f"its text was read by OCR ({result.engine}): check it against the image"
        if result is not None
        else f"it was not read: {ocr_hint(settings)}"
    )
    document.notices.append(Notice(code="scanned_page", message=message, prov=prov))
    bbox = (0.0, 0.0, float(page.rect.width), float(page.rect.height))
    if result is None:
        return FigureItem(bbox=bbox, image=ref, scanned=True)
    # OCR boxes in pixels of the rendering -> points, as PDF boxes are
    blocks = tuple(block.scaled(72 / dpi) for block in structure_lines(result.lines))
    return FigureItem(
        bbox=bbox, image=ref, scanned=True, text=result.text or None, read=True, ocr=blocks
    )
