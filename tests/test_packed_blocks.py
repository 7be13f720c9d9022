"""Packed text blocks (issue 17): a big SOP's blocks are small, and read as the models they were.

The text readers pack headings, paragraphs, list items and quotes into their document's rows
(models/_packed.py). Nothing a stage reads may tell: not the fields, not the JSON (the lock's
hashes are made of it), not a copy, not a renumbered id.
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
import threading
import tracemalloc
from pathlib import Path

from sop_compiler.clean import clean
from sop_compiler.config import Settings
from sop_compiler.ingest import ingest
from sop_compiler.ingest.base import Source
from sop_compiler.ingest.markdown import MarkdownReader
from sop_compiler.models import Document, Heading, ListItem, Paragraph, Quote
from sop_compiler.segment import segment

SOP = """\
# Refund policy

Applies to every order. Café owners — naïve or not — read this.

## 3.2 Issue a refund

1. Find the order.
2. If the order is older than 30 days, decline the refund.
   - Tell the customer why.
3. Otherwise, refund it.

> **Note** Never refund in cash.
"""


def _read(text: str = SOP) -> Document:
    data = text.encode("utf-8")
    source = Source(
        path=Path("/nonexistent/refunds.md"),
        name="refunds.md",
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return MarkdownReader().read(source, settings=Settings())


def test_packed_blocks_read_and_serialise_as_validated_ones() -> None:
    document = _read()
    kinds = {type(block) for block in document.blocks}
    assert kinds == {Heading, Paragraph, ListItem, Quote}
    heading = next(b for b in document.blocks if isinstance(b, Heading) and b.number)
    assert (heading.number, heading.text, heading.level) == ("3.2", "Issue a refund", 2)
    item = next(b for b in document.blocks if isinstance(b, ListItem) and b.level == 1)
    assert (item.marker, item.ordered, item.text) == ("•", False, "Tell the customer why.")
    assert item.prov.heading_path == ["Refund policy", "Issue a refund"]
    assert "Café owners — naïve" in document.blocks[1].text

    again = Document.model_validate_json(document.model_dump_json())
    assert again == document
    assert again.model_dump_json() == document.model_dump_json()
    # a routine's staleness is a hash of its blocks' JSON: packing changes no hash
    ours = [p.text_sha256() for p in segment(clean(document), agent="billing")]
    theirs = [p.text_sha256() for p in segment(clean(again), agent="billing")]
    assert ours == theirs and len(ours) == 1


def test_a_copy_of_a_packed_block_changes_only_the_copy() -> None:
    document = _read()
    step = next(b for b in document.blocks if isinstance(b, ListItem))
    before = step.model_dump()
    copy = step.model_copy(update={"text": "Find the order and the payment."})
    assert step.model_dump() == before
    assert copy.text == "Find the order and the payment."
    assert copy.model_dump(exclude={"text"}) == step.model_dump(exclude={"text"})
    for spelt in (
        "b007",
        "step-1",
        "b99999999999",
        "b" + "9" * 5000,
        "b",
        "",
    ):  # ids not of the b<n> form stay as spelt
        assert step.model_copy(update={"id": spelt}).id == spelt
    step.id = "b41"
    assert step.id == "b41" and copy.id == before["id"]


def test_a_big_markdown_sop_is_held_in_a_few_times_its_size(tmp_path: Path) -> None:
    """Read, cleaned and segmented, a 400 KB SOP of a step per line holds under 3x its size,
    and never needs 6x on the way (12x and 15x when every block was a pydantic model; the
    process's peak over the file, at 1-30 MB, is bench/hostile_bench.py's to measure)."""
    lines = ["# Refunds\n\n"] + [
        f"{n}. Check the order number {n} and tell the customer the refund amount.\n"
        for n in range(1, 5500)
    ]
    path = tmp_path / "big.md"
    path.write_text("".join(lines), encoding="utf-8")
    small = tmp_path / "small.md"
    small.write_text("".join(lines[:20]), encoding="utf-8")
    size = path.stat().st_size
    segment(clean(ingest(small, root=tmp_path)), agent="a")  # lazy imports, compiled patterns
    gc.collect()
    tracemalloc.start()
    try:
        document = clean(ingest(path, root=tmp_path))
        procedures = segment(document, agent="a")
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(len(p.blocks) for p in procedures) == 5500
    assert held / size < 3, f"held {held / size:.1f}x the file"
    assert peak / size < 6, f"peak {peak / size:.1f}x the file"


def test_a_long_text_is_kept_whole_not_sliced_at_every_read() -> None:
    """A 1 MB sentence is one block: each read of its text was a 1 MB copy, and the offline
    compile, which reads it often, took 3x longer per KB at 1 MB than at 100 KB."""
    long = "the agent checks the order and the refund amount with care " * 200
    document = _read(f"# Refunds\n\n{long}\n\n1. {long}\n\n2. Refund it.\n")
    paragraph, item = document.blocks[1], document.blocks[2]
    assert isinstance(item, ListItem) and item.marker == "1."
    assert paragraph.text == item.text == long.strip()
    assert paragraph.text is paragraph.text and item.text is item.text
    assert document.blocks[3].text == "Refund it."
    assert Document.model_validate_json(document.model_dump_json()) == document


def test_blocks_copied_from_several_threads_read_back_as_copied() -> None:
    """A copy of a packed block is a new row of its document: written from several threads at
    once (the switch interval at a microsecond), every copy still reads its own text and id."""
    document = _read()
    steps = [b for b in document.blocks if isinstance(b, ListItem)]
    copies: dict[tuple[int, int], ListItem] = {}

    def copy_all(worker: int) -> None:
        for n in range(1500):
            step = steps[n % len(steps)]
            copies[worker, n] = step.model_copy(update={"id": f"b{worker}{n}", "text": f"{n}"})

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=copy_all, args=(w,)) for w in range(1, 5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    wrong = [k for k, c in copies.items() if (c.id, c.text) != (f"b{k[0]}{k[1]}", f"{k[1]}")]
    assert len(copies) == 6000 and not wrong


def test_a_documents_json_and_schema_treat_text_blocks_as_models() -> None:
    document = _read()
    dumped = document.model_dump(exclude={"blocks": {0: {"prov"}}}, mode="json")
    assert "prov" not in dumped["blocks"][0] and "prov" in dumped["blocks"][1]
    only = document.model_dump(include={"blocks": {1: {"id", "text"}}})
    assert only["blocks"] == [{"id": "b2", "text": document.blocks[1].text}]
    schema = json.dumps(Document.model_json_schema())
    for name in ("Heading", "Paragraph", "ListItem", "Quote", "Table"):
        assert f'"title": "{name}"' in schema
