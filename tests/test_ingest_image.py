"""Image reader and OCR plumbing: one Figure per image, text from OCR when an engine exists."""

from __future__ import annotations

import os
import stat
import struct
import time
import zlib
from pathlib import Path

import pdf_factory
import pymupdf
import pytest

from sop_compiler.config import Limits, Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest import ingest, ocr
from sop_compiler.ingest.image import image_size
from sop_compiler.models import Figure, Heading, ListItem


def _no_ocr(data: bytes, *, engine: str = "auto") -> None:
    return None


@pytest.fixture
def no_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behave like a machine without rapidocr or tesseract, whatever this one has."""
    monkeypatch.setattr("sop_compiler.ingest.image.ocr_read", _no_ocr)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_png_becomes_one_unread_figure_with_its_bytes(tmp_path: Path, no_ocr: None) -> None:
    data = pdf_factory.png(300, 150)
    doc = ingest(write(tmp_path, "flow.png", data), root=tmp_path)
    assert doc.format == "image" and len(doc.blocks) == 1
    figure = doc.blocks[0]
    assert isinstance(figure, Figure) and figure.id == "b1"
    assert figure.image is not None
    assert (figure.image.mime, figure.image.width, figure.image.height) == ("image/png", 300, 150)
    assert doc.images[figure.image.sha256] == data
    assert figure.read is False and figure.text is None
    assert figure.prov.file == "flow.png"
    [notice] = doc.notices
    assert notice.code == "figure_unread"
    assert notice.message == (
        "flow.png was not read: install the `ocr` extra (rapidocr-onnxruntime) or tesseract"
    )


def test_jpeg_size_from_header(tmp_path: Path, no_ocr: None) -> None:
    data = pymupdf.Pixmap(pdf_factory.png(64, 40)).tobytes("jpeg")
    assert image_size(data) == ("image/jpeg", 64, 40)
    doc = ingest(write(tmp_path, "scan.jpeg", data), root=tmp_path)
    figure = doc.blocks[0]
    assert isinstance(figure, Figure) and figure.image is not None
    assert figure.image.mime == "image/jpeg" and figure.image.width == 64


def test_ocr_text_marks_the_figure_read_and_becomes_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def fake(data: bytes, *, engine: str = "auto") -> ocr.OcrResult:
        seen.append(engine)
        return ocr.OcrResult("tesseract", tuple(ocr.layout_text("REFUNDS\n\n1. Check order")))

    monkeypatch.setattr("sop_compiler.ingest.image.ocr_read", fake)
    doc = ingest(
        write(tmp_path, "flow.png", pdf_factory.png()),
        root=tmp_path,
        settings=Settings(ocr="tesseract"),
    )
    figure, heading, item = doc.blocks
    assert isinstance(figure, Figure)
    assert (figure.text, figure.read) == ("REFUNDS\n1. Check order", True)
    assert isinstance(heading, Heading) and heading.text == "REFUNDS"
    assert isinstance(item, ListItem) and (item.marker, item.text) == ("1.", "Check order")
    assert item.prov.heading_path == ["REFUNDS"] and doc.title == "REFUNDS"
    assert [(n.code, n.message) for n in doc.notices] == [
        ("ocr", "text read by OCR (tesseract): check it against the image")
    ]
    assert seen == ["tesseract"]


def test_ocr_off_says_so(tmp_path: Path) -> None:
    doc = ingest(
        write(tmp_path, "flow.png", pdf_factory.png()), root=tmp_path, settings=Settings(ocr="off")
    )
    assert doc.notices[0].message == "flow.png was not read: OCR is off (setting `ocr`)"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,  # PNG magic, no real header
        b"\xff\xd8\xff\xe0" + b"junk" * 20,  # JPEG magic, no frame
        pdf_factory.png()[:60],  # header intact, pixel data cut off
    ],
)
def test_invalid_image_is_an_error_naming_the_file(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InputError) as err:
        ingest(write(tmp_path, "broken.png", data), root=tmp_path)
    assert str(err.value) == "broken.png: not a valid PNG/JPEG image"


# --- OCR plumbing ------------------------------------------------------------------------------


class _FakeRapid:
    """Answers like RapidOCR: ([box, text, score], ...), elapsed; boxes out of reading order."""

    def __call__(self, data: bytes) -> tuple[list[list[object]], float]:
        def box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
            return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

        return (
            [
                [box(200, 52, 300, 70), "the order", 0.9],
                [box(10, 10, 120, 30), "Refund", 0.9],
                [box(10, 50, 190, 72), "2. Check", 0.9],
                [box(130, 11, 220, 29), "policy", 0.9],
            ],
            0.01,
        )


def test_rapidocr_results_become_lines_in_reading_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr, "_rapidocr", lambda: _FakeRapid())
    assert ocr.ocr_engine("auto") == "rapidocr"
    assert ocr.ocr_image(b"png", engine="auto") == "Refund policy\n2. Check the order"
    assert ocr.ocr_image(b"png", engine="off") is None


def test_tesseract_binary_is_used_when_rapidocr_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "tesseract"
    script.write_text(
        "#!/bin/sh\ncat > /dev/null\nprintf 'Refund policy\\n\\n2. Check the order\\n'\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(ocr, "_rapidocr", lambda: None)
    assert ocr.ocr_engine("auto") == "tesseract"
    assert ocr.ocr_image(b"png") == "Refund policy\n2. Check the order"
    assert ocr.ocr_image(b"png", engine="rapidocr") is None


def test_no_engine_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr, "_rapidocr", lambda: None)
    monkeypatch.setattr(ocr.shutil, "which", lambda name: None)
    assert ocr.ocr_engine("auto") is None
    assert ocr.ocr_image(b"png") is None


# --- decompression bombs -----------------------------------------------------------------------


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header declares `width` x `height` RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # one filtered row of zeros: valid zlib, far less than the image needs
    idat = zlib.compress(b"\x00" * (1 + 3 * min(width, 4096)), 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_png_declaring_a_huge_canvas_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(data: bytes) -> bool:
        raise AssertionError("the image was decoded before the pixel limit was checked")

    def no_ocr_either(data: bytes, *, engine: str = "auto") -> None:
        raise AssertionError("OCR ran before the pixel limit was checked")

    monkeypatch.setattr("sop_compiler.ingest.image._decodes", never)
    monkeypatch.setattr("sop_compiler.ingest.image.ocr_read", no_ocr_either)
    data = _png_claiming(30_000, 30_000)
    assert len(data) < 1024 and image_size(data) == ("image/png", 30_000, 30_000)

    started = time.monotonic()
    with pytest.raises(InputError) as err:
        ingest(write(tmp_path, "bomb.png", data), root=tmp_path)
    assert time.monotonic() - started < 2
    message = str(err.value)
    assert message.startswith("bomb.png: image is 30000x30000 pixels")
    assert "`limits.max_image_pixels`" in message
    assert err.value.hint is not None and "max_image_pixels" in err.value.hint


def test_pixel_limit_is_a_setting(tmp_path: Path, no_ocr: None) -> None:
    path = write(tmp_path, "flow.png", pdf_factory.png(300, 150))  # 45,000 pixels
    strict = Settings(limits=Limits(max_image_pixels=40_000))
    with pytest.raises(InputError, match="more than the limit of 40,000"):
        ingest(path, root=tmp_path, settings=strict)
    doc = ingest(path, root=tmp_path, settings=Settings(limits=Limits(max_image_pixels=45_000)))
    assert isinstance(doc.blocks[0], Figure)
    assert Settings().limits.max_image_pixels == 50_000_000


def test_scanned_pdf_page_with_a_huge_mediabox_renders_at_reduced_dpi(tmp_path: Path) -> None:
    pdf = pymupdf.open()
    page = pdf.new_page(width=3000, height=2000)  # at 150 dpi: 6250 x 4167 pixels (26 MP)
    page.insert_image(page.rect, stream=pdf_factory.png(60, 40))
    data = pdf.tobytes()
    limit = 1_000_000
    settings = Settings(ocr="off", limits=Limits(max_image_pixels=limit))

    doc = ingest(write(tmp_path, "poster.pdf", data), root=tmp_path, settings=settings)
    [figure] = [b for b in doc.blocks if isinstance(b, Figure)]
    assert figure.scanned_page and figure.image is not None
    width, height = figure.image.width or 0, figure.image.height or 0
    assert width * height <= limit and width * height > 0.9 * limit
    assert abs(width / height - 1.5) < 0.01
    [notice] = [n for n in doc.notices if n.code == "scanned_page_downscaled"]
    assert "rendered at 29.1 dpi instead of 150" in notice.message
    assert "`limits.max_image_pixels`" in notice.message

    default = ingest(write(tmp_path, "scan.pdf", pdf_factory.scanned_page()), root=tmp_path)
    assert not [n for n in default.notices if n.code == "scanned_page_downscaled"]
