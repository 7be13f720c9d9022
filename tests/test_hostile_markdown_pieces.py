"""A big Markdown file is parsed piece by piece (issue 17): the pieces read as the whole does.

The reader parses a window of lines at a time and keeps every top-level block (and every item of
a top-level list) but the last, which may be cut by the window's end. Whatever the window, the
Document, and the procedures segment finds in it, must be those of one parse of the whole text:
headings, fences, tables, quotes, HTML blocks and list items cut by a window's end included.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from sop_compiler.clean import clean
from sop_compiler.config import Settings
from sop_compiler.ingest import markdown
from sop_compiler.ingest.base import Source
from sop_compiler.models import Document, Heading, ListItem, Paragraph, Provenance
from sop_compiler.segment import segment

# Sections whose blocks cross any window's end: a fence holding a heading line and a blank
# line, a table, a list with a nested list and a fence inside an item, a quote with a lazy line,
# an HTML block, a setext heading, an indented code block, links and an image whose reference
# definitions come later (one with its title on the next line).
MULTI_SECTION = """\
# Refunds

Refunds are handled by the billing team. See [the policy][policy] first.

## Issue a refund

1. Ask for the order number.
2. Check the order in the system:
   ```
   lookup --order N

   # not a heading: inside the fence
   ```
3. Confirm the amount with the customer.
   - If the amount is over 500, ask a supervisor.
   - Otherwise go on.
4. Issue the refund.

| Amount | Who approves |
|--------|--------------|
| <= 500 | the agent    |
| > 500  | a supervisor |
| > 5000 | finance      |

```python
def refund(order):
    # still code
    return order

## still code too
```

Escalation
==========

> Never promise a date.
> - unless the carrier confirmed it
lazy continuation of the quote

<div>
Raw HTML block
## not a heading either
</div>

    indented code
    # not a heading

## Close the case

- Write a note. ![flow][chart]
- Close the ticket.

10. Numbered from ten.
11. And eleven.

[policy]: https://example.com/policy "Refund policy"
[chart]:
  flow.png
  'The flow'
"""


def _source(text: str, name: str = "refunds.md") -> Source:
    data = text.encode("utf-8")
    return Source(
        path=Path("/nonexistent") / name,
        name=name,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _read(
    text: str, window: int, monkeypatch: pytest.MonkeyPatch, piece: int = markdown.PIECE
) -> Document:
    monkeypatch.setattr(markdown, "WINDOW", window)
    monkeypatch.setattr(markdown, "PIECE", piece)
    return markdown.MarkdownReader().read(_source(text), settings=Settings())


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def test_one_window_is_one_parse_of_the_whole_text() -> None:
    """The reference the other tests compare with: a window past the end is a plain parse."""
    pieces = list(markdown.parse_pieces(_parser(), MULTI_SECTION, window=10**9))
    whole = _parser().parse(MULTI_SECTION)
    assert len(pieces) == 1
    assert [(t.type, t.map, t.content) for t in pieces[0]] == [
        (t.type, t.map, t.content) for t in whole
    ]


@pytest.mark.parametrize("window", [1, 7, 40, 120, 333])
def test_pieces_read_as_the_whole_document(window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _read(MULTI_SECTION, 10**9, monkeypatch)
    pieces = list(markdown.parse_pieces(_parser(), MULTI_SECTION, window=window))
    assert len(pieces) > (5 if window < 100 else 2)  # really read in pieces
    pieced = _read(MULTI_SECTION, window, monkeypatch)
    assert pieced.model_dump_json() == whole.model_dump_json()
    # and segment finds the same procedures, block for block
    ours = [p.model_dump_json() for p in segment(clean(pieced), agent="billing")]
    theirs = [p.model_dump_json() for p in segment(clean(whole), agent="billing")]
    assert ours == theirs and ours


def test_what_crosses_a_window_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fence, table, quote and references cut by small windows keep their meaning."""
    document = _read(MULTI_SECTION, 7, monkeypatch)
    texts = [getattr(block, "text", None) for block in document.blocks]
    headings = [block.text for block in document.blocks if isinstance(block, Heading)]
    assert headings == ["Refunds", "Issue a refund", "Escalation", "Close the case"]
    assert any(text and "# not a heading: inside the fence" in text for text in texts)
    assert any(text and "## still code too" in text for text in texts)
    tables = [block for block in document.blocks if block.kind == "table"]
    assert len(tables) == 1 and len(tables[0].rows) == 3
    # a reference defined at the end of the file still makes a link of the first paragraph
    assert any(text and text.endswith("See the policy first.") for text in texts)
    items = [block for block in document.blocks if isinstance(block, ListItem)]
    assert [item.marker for item in items if item.level == 0][-2:] == ["10.", "11."]
    assert [item.level for item in items[:6]] == [0, 0, 0, 1, 1, 0]
    # line numbers are those of the whole file
    close = next(
        b for b in document.blocks if isinstance(b, ListItem) and b.text == "Close the ticket."
    )
    assert close.prov.paragraph == MULTI_SECTION.split("\n").index("- Close the ticket.")


def test_a_long_single_list_is_read_item_by_item(monkeypatch: pytest.MonkeyPatch) -> None:
    """One section of thousands of steps (the benchmark's shape) is cut between its items."""
    text = "# Refunds\n\n" + "".join(f"{n}. Check order {n}.\n" for n in range(1, 2001))
    pieces = list(markdown.parse_pieces(_parser(), text, window=256))
    assert len(pieces) > 50
    assert max(len(piece) for piece in pieces) < 200  # never the whole list's tokens at once
    pieced = _read(text, 256, monkeypatch)
    assert pieced.model_dump_json() == _read(text, 10**9, monkeypatch).model_dump_json()
    steps = [block for block in pieced.blocks if isinstance(block, ListItem)]
    assert len(steps) == 2000 and steps[-1].marker == "2000." and steps[-1].prov.paragraph == 2001


def test_a_definition_cut_by_the_window_is_not_kept_half_read() -> None:
    """`[r]: url` with its title on the next line, cut between the two, is read whole."""
    text = "[link][r]\n\n[r]: /first\n  'title'\n\n[r]: /second\n\n[link][r]\n"
    whole = _parser().render(text)
    for window in (1, 3, 12, 20):
        tokens = [
            t for piece in markdown.parse_pieces(_parser(), text, window=window) for t in piece
        ]
        assert _parser().renderer.render(tokens, _parser().options, {}) == whole


_LINES = st.sampled_from(
    [
        "# Heading\n", "## Sub\n", "1. step\n", "2. step two\n", "- bullet\n", "  - nested\n",
        "   continued\n", "\n", "plain text\n", "```\n", "~~~\n", "| a | b |\n", "|---|---|\n",
        "> quote\n", "[x]: /url\n", "see [x] here\n", "<div>\n", "</div>\n", "<!-- c\n", "-->\n",
        "    code\n", "Title\n", "===\n", "---\n", "* star\n", "![i][x]\n", "10) ten\n",
    ]
)  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(_LINES, min_size=1, max_size=40),
    window=st.integers(1, 90),
    piece=st.integers(1, 60),
)
def test_any_markdown_reads_the_same_in_pieces(
    lines: list[str], window: int, piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsed a window at a time, from a text held in pieces let go as the parse passes them."""
    text = "".join(lines) + "end\n"
    assert _read(text, window, monkeypatch, piece).model_dump_json() == (
        _read(text, 10**9, monkeypatch).model_dump_json()
    )


@settings(max_examples=80, deadline=None)
@given(text=st.text(st.sampled_from("ab\n]:"), max_size=60), size=st.integers(1, 9), data=st.data())
def test_text_in_pieces_reads_as_the_text(text: str, size: int, data: st.DataObject) -> None:
    pieces = markdown.Pieces(text, size)
    assert len(pieces) == len(text) and pieces.defines_links == ("]:" in text)
    pos = 0
    for _ in range(5):
        start = data.draw(st.integers(pos, len(text) + 2))
        end = data.draw(st.integers(start, len(text) + 5))
        assert pieces[start:end] == text[start:end]
        assert pieces.newline(start) == text.find("\n", start)
        pos = data.draw(st.integers(pos, len(text)))
        pieces.forget_before(pos)  # what comes after `pos` still reads
        assert pieces[pos : len(text)] == text[pos:]
    if pos >= 2 * size:  # and what was let go is never read as something else
        with pytest.raises(ValueError, match="let go"):
            pieces[0:1]


def test_built_blocks_are_the_models_validation_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks are built without a second validation and share what they can: still equal to
    validated ones, with the same fields set, and no block changes when a later one is built."""
    document = _read("# A\n\nText.\n\n1. Step.\n\n## B\n\n- Item.\n", 10**9, monkeypatch)
    _, paragraph, step, _, item = document.blocks
    assert isinstance(paragraph, Paragraph) and isinstance(step, ListItem)
    for block in document.blocks:
        again = type(block).model_validate(block.model_dump())
        assert again == block
        assert again.model_fields_set | {"kind"} >= block.model_fields_set
        assert block.model_dump(exclude_unset=True) == type(block)(
            **block.model_dump(exclude_unset=True)
        ).model_dump(exclude_unset=True)
    assert paragraph.prov.heading_path == ["A"] and item.prov.heading_path == ["A", "B"]
    assert isinstance(paragraph.prov, Provenance)
    step.id = "b99"  # readers renumber blocks: no other block changes
    assert paragraph.id == "b2" and paragraph.model_fields_set == {"id", "prov", "text"}
