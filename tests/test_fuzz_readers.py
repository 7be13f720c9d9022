"""Fuzz every reader through `ingest`: damaged files give a Document or an InputError, nothing else.

Small valid seeds (PDF, DOCX, Markdown, HTML, text) are mutated byte-wise by hypothesis (flips,
cuts, deletions, duplications, inserted tokens that readers special-case). For DOCX the XML inside
the zip is mutated too, since a mutated zip rarely gets past the checksum. Bounded so that the
whole file runs in well under a minute on two cores.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx_factory
import pdf_factory
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sop_compiler.config import Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest import ingest
from sop_compiler.models import Document

pytestmark = pytest.mark.timeout(120)

MARKDOWN = b"""# Refunds

## Issue a refund

1. Ask the customer for the order number.
   a. If they do not have it, look them up with `lookup_customer`.
2. Look up the order with `lookup_order`.

| Case | Action |
|------|--------|
| Late | Escalate |

<div>raw <b>html</b></div>

```
code
```

![flow](flow.png)
"""

HTML = b"""<!DOCTYPE html><html><head><title>Returns</title><script>x()</script></head>
<body><nav>Home</nav><h1>Returns</h1><h2>Start a return</h2>
<ol><li>Ask for the order number.<ul><li>Check the date.</li></ul></li>
<li>Create a label with <code>create_return_label</code>.</li></ol>
<table><tr><th>Case</th><th>Action</th></tr><tr><td>Damaged</td><td>Reship</td></tr></table>
<img src="data:image/png;base64,iVBORw0KGgo=" alt="x"><p>Done &amp; dusted.</p></body></html>
"""

TEXT = b"""REFUNDS
=======

1. Ask the customer for the order number.
   1.1 Check the order date.
2. If the order is older than 30 days, escalate to billing.

Case\tAction
Late\tEscalate
"""

# Tokens the readers treat specially: BOMs, NULs, magic numbers, markup that opens or closes.
TOKENS = [
    b"\x00", b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf", b"\xff", b"\xc3", b"\r", b"\n\n",
    b"%PDF-1.7", b"PK\x03\x04", b"%%EOF", b"endobj", b"stream\n", b"endstream", b"obj <<",
    b"/Encrypt", b"xref", b"trailer", b"<script>", b"</li>", b"<ol>", b"<table>", b"<h1>",
    b"<!--", b"```", b"|", b"#", b"1. ", b"a) ", b"<w:p>", b"</w:p>", b"</w:t>", b"<w:numPr>",
    b"&#0;", b"&amp", b"<![CDATA[", b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>",
    b"\xe2\x80\xae", b"\t" * 40, b" " * 200,
]  # fmt: skip

_FUZZ_SETTINGS = Settings(ocr="off")


def _mutations(seed: bytes, *, max_edits: int = 6) -> st.SearchStrategy[bytes]:
    where = st.floats(min_value=0.0, max_value=1.0)
    edit = st.one_of(
        st.tuples(st.just("flip"), where, st.integers(0, 255)),
        st.tuples(st.just("cut"), where, st.just(0)),
        st.tuples(st.just("delete"), where, st.integers(1, 2048)),
        st.tuples(st.just("duplicate"), where, st.integers(1, 2048)),
        st.tuples(st.just("insert"), where, st.sampled_from(TOKENS)),
        st.tuples(st.just("insert"), where, st.binary(min_size=1, max_size=32)),
    )
    return st.lists(edit, min_size=1, max_size=max_edits).map(lambda edits: _apply(seed, edits))


def _apply(data: bytes, edits: list[tuple[str, float, object]]) -> bytes:
    for kind, fraction, arg in edits:
        at = int(fraction * len(data))
        if kind == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([int(arg)]) + data[at + 1 :]  # type: ignore[call-overload]
        elif kind == "cut":
            data = data[:at]
        elif kind == "delete":
            data = data[:at] + data[at + int(arg) :]  # type: ignore[call-overload]
        elif kind == "duplicate":
            data = data[:at] + data[at : at + int(arg)] + data[at:]  # type: ignore[call-overload]
        elif kind == "insert":
            assert isinstance(arg, bytes)
            data = data[:at] + arg + data[at:]
    return data


def _read(tmp: Path, name: str, data: bytes) -> None:
    """`ingest` must return a Document with blocks, or raise InputError naming the file."""
    path = tmp / name
    path.write_bytes(data)
    try:
        document = ingest(path, root=tmp, settings=_FUZZ_SETTINGS)
    except InputError as exc:
        assert exc.path == name, exc
        assert "\n" not in exc.message
        return
    assert isinstance(document, Document) and document.blocks


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


_PDF = pdf_factory.numbered_steps()
_DOCX = docx_factory.sop_docx(1)
_DOCX_XML = zipfile.ZipFile(io.BytesIO(_DOCX)).read("word/document.xml")

_FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FAST
@given(data=_mutations(_PDF))
def test_fuzz_pdf(tmp: Path, data: bytes) -> None:
    _read(tmp, "fuzz.pdf", data)


@_FAST
@given(data=_mutations(_DOCX))
def test_fuzz_docx_bytes(tmp: Path, data: bytes) -> None:
    _read(tmp, "fuzz.docx", data)


@_FAST
@given(xml=_mutations(_DOCX_XML))
def test_fuzz_docx_xml(tmp: Path, xml: bytes) -> None:
    data = docx_factory.with_extra_parts(_DOCX, {}, {"word/document.xml": xml.decode("latin-1")})
    _read(tmp, "fuzz.docx", data)


_TEXTUAL = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_TEXTUAL
@given(data=_mutations(MARKDOWN, max_edits=10))
def test_fuzz_markdown(tmp: Path, data: bytes) -> None:
    _read(tmp, "fuzz.md", data)


@_TEXTUAL
@given(data=_mutations(HTML, max_edits=10))
def test_fuzz_html(tmp: Path, data: bytes) -> None:
    _read(tmp, "fuzz.html", data)


@_TEXTUAL
@given(data=_mutations(TEXT, max_edits=10))
def test_fuzz_text(tmp: Path, data: bytes) -> None:
    _read(tmp, "fuzz.txt", data)


@_TEXTUAL
@given(
    data=st.binary(max_size=512), suffix=st.sampled_from([".pdf", ".docx", ".md", ".html", ".txt"])
)
def test_fuzz_random_bytes_under_every_suffix(tmp: Path, data: bytes, suffix: str) -> None:
    _read(tmp, f"random{suffix}", data)


def test_docx_external_entity_is_never_resolved(tmp_path: Path) -> None:
    """An XXE in document.xml must not read a local file into the SOP text."""
    secret = tmp_path / "secret.txt"
    secret.write_text("XXE-SECRET-CONTENT")
    xml = _DOCX_XML.decode()
    declaration = f"<!DOCTYPE w:document [<!ENTITY xxe SYSTEM 'file://{secret}'>]>"
    head, _, body = xml.partition("?>")
    xml = f"{head}?>{declaration}{body}".replace("Procedure 1</w:t>", "Procedure &xxe;</w:t>", 1)
    data = docx_factory.with_extra_parts(_DOCX, {}, {"word/document.xml": xml})
    path = tmp_path / "xxe.docx"
    path.write_bytes(data)
    try:
        document = ingest(path, root=tmp_path, settings=_FUZZ_SETTINGS)
    except InputError:
        return
    assert "XXE-SECRET-CONTENT" not in document.model_dump_json()


@pytest.mark.parametrize("name", ["odd.html", "odd.md", "odd.txt"])
def test_utf16_bom_with_an_odd_byte_count_is_read_with_a_note(tmp_path: Path, name: str) -> None:
    """Found by the fuzzer: a UTF-16 file cut mid-character crashed the decoder."""
    text = "Refunds\n\n1. Ask the customer for the order number.\n".encode("utf-16-le")
    path = tmp_path / name
    path.write_bytes(b"\xff\xfe" + text + b">")
    document = ingest(path, root=tmp_path, settings=_FUZZ_SETTINGS)
    assert "order number" in document.model_dump_json()
    assert any("invalid byte" in notice.message for notice in document.notices)


@pytest.mark.parametrize("name", ["cdata.html", "cdata.md"])
def test_broken_marked_section_does_not_crash_the_html_parser(tmp_path: Path, name: str) -> None:
    """Found by the fuzzer: `<![CDAT` made the stdlib HTML parser raise."""
    path = tmp_path / name
    path.write_bytes(b"<![CDAT\x01[>Refunds\n\n1. Ask the customer for the order number.\n")
    document = ingest(path, root=tmp_path, settings=_FUZZ_SETTINGS)
    assert "order number" in document.model_dump_json()


def test_docx_whose_main_part_is_not_a_document_is_an_input_error(tmp_path: Path) -> None:
    """Found by the fuzzer: a damaged root element left python-docx without a `body`."""
    xml = _DOCX_XML.decode().replace("<w:document ", "<w:documentx ", 1)
    xml = xml.replace("</w:document>", "</w:documentx>")
    path = tmp_path / "root.docx"
    path.write_bytes(docx_factory.with_extra_parts(_DOCX, {}, {"word/document.xml": xml}))
    with pytest.raises(InputError, match=r"^root\.docx: is not a valid \.docx"):
        ingest(path, root=tmp_path, settings=_FUZZ_SETTINGS)
