"""Plain text, Markdown and HTML readers: structure, encodings, and hostile content."""

from __future__ import annotations

import base64
import json
import os
import socket
from pathlib import Path

import pytest
from docx_factory import png_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sop_compiler.config import Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest import ingest
from sop_compiler.ingest.base import Source, get_reader
from sop_compiler.ingest.text import TextReader
from sop_compiler.models import (
    Code,
    Document,
    Figure,
    Heading,
    ListItem,
    Paragraph,
    Quote,
    Table,
    block_text,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Readers never fetch anything: any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a reader tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _read(tmp_path: Path, name: str, data: bytes | str) -> Document:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return ingest(path, root=tmp_path, settings=Settings())


def _items(document: Document) -> list[tuple[str, int, str]]:
    return [(b.marker, b.level, b.text) for b in document.blocks if isinstance(b, ListItem)]


def _all_text(document: Document) -> str:
    return "\n".join(block_text(b) for b in document.blocks)


# -- plain text -------------------------------------------------------------------------------


def test_text_headings_caps_underlined_and_numbered(tmp_path: Path) -> None:
    document = _read(
        tmp_path,
        "sop.txt",
        "RETURNS POLICY\n\nIntro line.\n\nScope\n-----\nAll orders.\n\n"
        "3. ELIGIBILITY\nText.\n\n3.2 Damaged Items\nMore text.\n",
    )
    headings = [(b.text, b.level, b.number) for b in document.blocks if isinstance(b, Heading)]
    assert headings == [
        ("RETURNS POLICY", 1, None),
        ("Scope", 2, None),
        ("ELIGIBILITY", 1, "3"),
        ("Damaged Items", 2, "3.2"),
    ]
    damaged = next(b for b in document.blocks if block_text(b) == "More text.")
    assert damaged.prov.heading_path == ["ELIGIBILITY", "Damaged Items"]
    assert damaged.prov.paragraph == 12  # 0-based line number


def test_text_caps_heading_with_who_runs_it_in_brackets(tmp_path: Path) -> None:
    # "DAILY VACCINATION SWEEP (back office)" ran on as steps of the procedure above it
    document = _read(
        tmp_path,
        "sop.txt",
        "INJURY DURING A GROOM\n1. Log an incident.\n\n"
        "DAILY VACCINATION SWEEP (back office)\n1. Pull tomorrow's appointments.\n\n"
        "PROCEDURE E: FRIDAY FAILED-PAYMENTS RUN (back office, no customer on the line)\n"
        "1. Pull the list of failed payments.\n\n"
        "Refunds (see below)\n",
    )
    headings = [b.text for b in document.blocks if isinstance(b, Heading)]
    assert headings == [
        "INJURY DURING A GROOM",
        "DAILY VACCINATION SWEEP (back office)",
        "PROCEDURE E: FRIDAY FAILED-PAYMENTS RUN (back office, no customer on the line)",
    ]


def test_text_steps_nest_by_indent_and_numbering(tmp_path: Path) -> None:
    document = _read(
        tmp_path,
        "steps.txt",
        "1. Ask for the order id.\n2. Look it up.\n   It may take a minute.\n"
        "2.1 Check the date\n2.2 Check the amount\n    a) photo\n    b) receipt\n"
        "        (i) front\n        (ii) back\n3) Refund.\n- note one\n• note two\n",
    )
    assert _items(document) == [
        ("1.", 0, "Ask for the order id."),
        ("2.", 0, "Look it up.\nIt may take a minute."),
        ("2.1", 1, "Check the date"),
        ("2.2", 1, "Check the amount"),
        ("a)", 2, "photo"),
        ("b)", 2, "receipt"),
        ("(i)", 3, "front"),
        ("(ii)", 3, "back"),
        ("3)", 0, "Refund."),
        ("•", 1, "note one"),
        ("•", 1, "note two"),
    ]


def test_text_an_arrow_under_a_sentence_is_a_sub_item_under_a_case_its_action(
    tmp_path: Path,
) -> None:
    # a window cleaner's handover email: "Step 2 - Card over the phone? Take it on the card
    # machine app." over "-> If the card declines twice, stop. ...": the fallback was glued to
    # the step's order, so the card payment became "Take it ... -> If the card declines twice"
    document = _read(
        tmp_path,
        "handover.txt",
        "  Step 1 - Card over the phone? Take it on the card machine app.\n"
        "           -> If the card declines twice, send a payment link instead.\n"
        "  Step 2 - Decide:\n"
        "     * Receipt already used\n"
        "         -> do not grant it again.\n",
    )
    assert _items(document) == [
        ("1.", 0, "Card over the phone? Take it on the card machine app."),
        ("•", 1, "If the card declines twice, send a payment link instead."),
        ("2.", 0, "Decide:"),
        # under a case with no sentence of its own, the arrow says what to do in it
        ("•", 1, "Receipt already used\n-> do not grant it again."),
    ]


def test_text_title_case_steps_in_a_run_stay_steps(tmp_path: Path) -> None:
    document = _read(tmp_path, "s.txt", "Steps:\n1. Check Order Status\n2. Issue Refund\n")
    assert [m for m, _, _ in _items(document)] == ["1.", "2."]
    assert not any(isinstance(b, Heading) for b in document.blocks)


def test_text_tables_pipe_and_tab(tmp_path: Path) -> None:
    document = _read(
        tmp_path, "t.txt", "| Fee | Amount |\n|---|---|\n| Late | 5 |\n\nA\tB\n1\t2\n3\t4\n"
    )
    tables = [b for b in document.blocks if isinstance(b, Table)]
    assert [(t.header, t.rows) for t in tables] == [
        (["Fee", "Amount"], [["Late", "5"]]),
        (None, [["A", "B"], ["1", "2"], ["3", "4"]]),
    ]


def test_text_grid_tables_drawn_with_plus_and_dashes(tmp_path: Path) -> None:
    # "+-----+-----+" borders around "| a | b |" rows: a table, not a paragraph of rules and bars
    document = _read(
        tmp_path,
        "t.txt",
        "1. Quote the fee.\n\n  Fee bands\n"
        "  +--------------+--------+\n"
        "  | Age          | Fee    |\n"
        "  +==============+========+\n"
        "  | Under 2      | GBP 0  |\n"
        "  | 2 to 6       | GBP 69 |\n"
        "  +--------------+--------+\n",
    )
    tables = [b for b in document.blocks if isinstance(b, Table)]
    assert [(t.header, t.rows) for t in tables] == [
        (["Age", "Fee"], [["Under 2", "GBP 0"], ["2 to 6", "GBP 69"]])
    ]
    assert "+--" not in _all_text(document)


# -- encodings --------------------------------------------------------------------------------


def test_text_column_tables_and_letterhead_above_the_title(tmp_path: Path) -> None:
    text = (
        "ACME RETAIL - CUSTOMER CARE\n\nDevice Setup\n============\n\nPURPOSE\n\nHelp.\n\n"
        "REVISION HISTORY\n\n"
        "Version  Date          Author     Change\n"
        "-------  ------------  ---------  ----------------\n"
        "3.0      9 May 2022    R. Menon   Line test added.\n"
        "3.1      14 Nov 2022   R. Menon   Alarm escalation.\n\n"
        "2.1  11 Dec 2023  Acme Hub 4 added.\n"
        "2.2  8 Apr 2024   Keeping the old Wi-Fi name.\n"
    )
    document = _read(tmp_path, "setup.txt", text)
    # the letterhead is no section; the underlined line is the document's title
    headings = [b.text for b in document.blocks if isinstance(b, Heading)]
    assert headings == ["Device Setup", "PURPOSE", "REVISION HISTORY"]
    assert document.title == "Device Setup"
    # version rows are table rows, never numbered steps "3.0", "2.1"
    assert _items(document) == []
    ruled, spaced = [b for b in document.blocks if isinstance(b, Table)]
    assert ruled.header == ["Version", "Date", "Author", "Change"]
    assert ruled.rows[1] == ["3.1", "14 Nov 2022", "R. Menon", "Alarm escalation."]
    assert spaced.rows == [
        ["2.1", "11 Dec 2023", "Acme Hub 4 added."],
        ["2.2", "8 Apr 2024", "Keeping the old Wi-Fi name."],
    ]


def test_latin1_text_is_decoded_with_a_notice(tmp_path: Path) -> None:
    document = _read(
        tmp_path, "l.txt", "Rückerstattung für Café-Kunden: prüfen.\n".encode("latin-1")
    )
    assert _all_text(document) == "Rückerstattung für Café-Kunden: prüfen."
    assert [(n.code, n.message) for n in document.notices] == [("encoding", "decoded as cp1252")]


def test_utf16_with_bom(tmp_path: Path) -> None:
    text = "# Überblick\n\n1. Schritt eins\n"
    for encoding in ("utf-16", "utf-16-be", "utf-32"):
        data = text.encode(encoding)
        if encoding == "utf-16-be":
            data = b"\xfe\xff" + data
        document = _read(tmp_path, "u.md", data)
        assert [block_text(b) for b in document.blocks] == ["Überblick", "Schritt eins"]
        assert document.notices == []


def test_mixed_encodings_keep_utf8_and_count_bad_bytes(tmp_path: Path) -> None:
    data = "Größe: ok\n".encode() + "Gebühr: 5 €\n".encode("cp1252")
    document = _read(tmp_path, "m.txt", data)
    assert "Größe: ok" in _all_text(document)
    assert "Geb\ufffdhr: 5 \ufffd" in _all_text(document)
    (notice,) = document.notices
    assert notice.code == "encoding" and "2 invalid byte(s)" in notice.message


def test_binary_named_md_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        _read(tmp_path, "evil.md", bytes(range(256)) * 8)
    assert str(err.value) == "evil.md: looks like binary data, not text"
    with pytest.raises(InputError, match="binary"):
        _read(tmp_path, "ctl.txt", b"ab\x01\x02\x03\x04\x05\x06cd\x07\x08" * 20)


def test_whitespace_only_after_decoding(tmp_path: Path) -> None:
    data = " \n\t\n".encode("utf-16")
    source = Source(path=tmp_path / "w.txt", name="w.txt", data=data, sha256="0" * 64)
    with pytest.raises(InputError, match=r"file is empty \(only whitespace\)"):
        TextReader().read(source, settings=Settings())


# -- markdown ---------------------------------------------------------------------------------


def test_markdown_lists_tables_code_quotes(tmp_path: Path) -> None:
    document = _read(
        tmp_path,
        "m.md",
        "# Refunds\n\n3. third\n4. fourth\n   - bullet\n     1) deep\n\n"
        "| A | B |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('x')\n```\n\n> Quoted **note**\n",
    )
    assert _items(document) == [
        ("3.", 0, "third"),
        ("4.", 0, "fourth"),
        ("•", 1, "bullet"),
        ("1)", 2, "deep"),
    ]
    (table,) = [b for b in document.blocks if isinstance(b, Table)]
    assert (table.header, table.rows) == (["A", "B"], [["1", "2"]])
    (code,) = [b for b in document.blocks if isinstance(b, Code)]
    assert (code.text, code.language) == ("print('x')", "python")
    (quote,) = [b for b in document.blocks if isinstance(b, Quote)]
    assert quote.text == "Quoted note"


def test_markdown_images_local_remote_and_outside(tmp_path: Path) -> None:
    sops = tmp_path / "sops"
    sops.mkdir()
    (sops / "flow.png").write_bytes(png_bytes())
    (tmp_path / "secret.png").write_bytes(png_bytes(rgb=(0, 0, 0)))
    document = _read(
        sops,
        "m.md",
        "![Local flow](flow.png)\n\n![Remote](https://example.invalid/a.png)\n\n"
        "![Outside](../secret.png)\n",
    )
    figures = [b for b in document.blocks if isinstance(b, Figure)]
    assert [f.caption for f in figures] == ["Local flow", "Remote", "Outside"]
    local = figures[0].image
    assert local is not None and document.images[local.sha256] == png_bytes()
    assert figures[1].image is None and figures[2].image is None
    codes = [n.code for n in document.notices]
    assert codes == ["image_not_fetched", "image_unread"]


def test_markdown_raw_html_is_stripped_and_scripts_dropped(tmp_path: Path) -> None:
    document = _read(
        tmp_path,
        "r.md",
        "Hello <b>there</b> <script>steal()</script> friend.\n\n"
        "<div>Block <i>html</i><script>alert('boom')</script><style>p{}</style></div>\n",
    )
    texts = [block_text(b) for b in document.blocks]
    assert texts == ["Hello there friend.", "Block html"]


# -- html -------------------------------------------------------------------------------------


def test_html_hostile_content_is_skipped_never_run_or_fetched(tmp_path: Path) -> None:
    pixel = base64.b64encode(png_bytes()).decode()
    document = _read(
        tmp_path,
        "h.html",
        "<html><head><script>var secret='SCRIPT TEXT'</script></head><body>"
        "<nav>Menu</nav><h1>Title</h1><iframe src='https://evil.invalid'>frame text</iframe>"
        "<p onclick='x()'>Visible <a href='javascript:evil()'>link</a></p>"
        "<img src='https://evil.invalid/t.png' alt='Remote'>"
        f"<img src='data:image/png;base64,{pixel}' alt='Inline'>"
        "<noscript>noscript text</noscript><object data='x.swf'>object text</object>"
        "</body></html>",
    )
    text = _all_text(document)
    for absent in ("SCRIPT TEXT", "Menu", "frame text", "noscript text", "object text"):
        assert absent not in text
    assert [block_text(b) for b in document.blocks[:2]] == ["Title", "Visible link"]
    remote, inline = [b for b in document.blocks if isinstance(b, Figure)]
    assert remote.image is None and remote.caption == "Remote"
    assert inline.image is not None and document.images[inline.image.sha256] == png_bytes()
    skipped = next(n for n in document.notices if n.code == "html_skipped").message
    for name in ("<script>", "<iframe>", "<nav>", "<object>", "<noscript>"):
        assert name in skipped


def test_html_lists_and_tables(tmp_path: Path) -> None:
    document = _read(
        tmp_path,
        "l.html",
        "<ol start='2'><li>two<ul><li>dot</li></ul></li><li>three</li></ol>"
        "<ol type='i'><li>one</li><li>two</li></ol>"
        "<table><tr><th>H1</th><th>H2</th><th>H3</th></tr>"
        "<tr><td colspan='2'>wide</td><td rowspan='2'>tall</td></tr><tr><td>a</td><td>b</td></tr>"
        "</table><pre><code class='language-sh'>echo hi</code></pre>",
    )
    assert _items(document) == [
        ("2.", 0, "two"),
        ("•", 1, "dot"),
        ("3.", 0, "three"),
        ("i.", 0, "one"),
        ("ii.", 0, "two"),
    ]
    (table,) = [b for b in document.blocks if isinstance(b, Table)]
    assert table.header == ["H1", "H2", "H3"]
    assert table.rows == [["wide", "", "tall"], ["a", "b", ""]]
    (code,) = [b for b in document.blocks if isinstance(b, Code)]
    assert (code.text, code.language) == ("echo hi", "sh")


def test_html_paragraph_provenance_and_headings(tmp_path: Path) -> None:
    document = _read(tmp_path, "p.html", "<h2>2.1 Verify</h2><p>Body</p>")
    heading, paragraph = document.blocks
    assert isinstance(heading, Heading) and (heading.number, heading.text) == ("2.1", "Verify")
    assert isinstance(paragraph, Paragraph) and paragraph.prov.heading_path == ["Verify"]
    assert paragraph.prov.paragraph == 1


def test_html_breadcrumb_trails_are_site_chrome(tmp_path: Path) -> None:
    html = (
        '<div class="breadcrumbs"><a href="/">Home</a> &rsaquo; Shipping</div>'
        '<ol aria-label="Breadcrumb"><li>Home</li><li>Returns</li></ol>'
        "<h1>Returns</h1><p>Look up the order.</p>"
    )
    document = _read(tmp_path, "r.html", html)
    assert [block_text(b) for b in document.blocks] == ["Returns", "Look up the order."]


# -- golden -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "text/numbered-steps/source.txt",
        "markdown/numbered-steps/source.md",
        "markdown/raw-html/source.md",
        "html/site-chrome/source.html",
    ],
)
def test_golden(source: str) -> None:
    path = DATA / source
    document = ingest(path, root=path.parent, settings=Settings())
    actual = json.dumps(document.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
    expected = path.parent / "expected.json"
    if os.environ.get("SOPC_UPDATE_GOLDEN") == "1":
        expected.write_text(actual, encoding="utf-8")
    # A missing golden file is a failure: writing it here would make the test pass untested.
    assert expected.is_file(), f"missing {expected}; run with SOPC_UPDATE_GOLDEN=1 and review it"
    assert actual == expected.read_text(encoding="utf-8")


# -- fuzz -------------------------------------------------------------------------------------

_FUZZ_TOKENS = ["<script>", "</p>", "<li>", "<ol start='x'>", "<td colspan='9999999'>", "```"]
_FUZZ_ALPHABET = st.sampled_from([*"abc XYZ019.-*•|\t\n\r()#>`![]<>/=\"'é", *_FUZZ_TOKENS])


@pytest.mark.parametrize("suffix", [".txt", ".md", ".html"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=600), st.lists(_FUZZ_ALPHABET, max_size=120)))
def test_fuzz_readers_only_raise_input_errors(suffix: str, data: bytes | list[str]) -> None:
    raw = "".join(data).encode("utf-8") if isinstance(data, list) else data
    fmt = {".txt": "text", ".md": "markdown", ".html": "html"}[suffix]
    source = Source(
        path=Path("/nonexistent/sop" + suffix), name="sop" + suffix, data=raw, sha256=""
    )
    try:
        document = get_reader(fmt).read(source, settings=Settings())
    except InputError:
        return
    assert [b.id for b in document.blocks] == [f"b{i}" for i in range(1, len(document.blocks) + 1)]


def test_markdown_checklist_boxes_are_no_part_of_the_step(tmp_path: Path) -> None:
    # a README-style SOP: "- [ ] Pull up the member's account." is the step "Pull up ..."
    document = _read(
        tmp_path,
        "sop.md",
        "# Damage\n\n- [ ] Pull up the member's account.\n- [x] Log the damage report.\n"
        "- [link] stays as written\n",
    )
    texts = [text for _, _, text in _items(document)]
    assert texts == [
        "Pull up the member's account.",
        "Log the damage report.",
        "[link] stays as written",
    ]
