"""Character and line cleaning inside blocks: unicode, whitespace, hyphenation, broken lines."""

from __future__ import annotations

import re
import unicodedata

from sop_compiler.clean._common import AnyBlock, removal
from sop_compiler.models import (
    Code,
    Flowchart,
    Heading,
    ListItem,
    Paragraph,
    Quote,
    Removal,
    Table,
    block_text,
)

_SPACES = "\u00a0\u1680\u202f\u205f\u3000\t" + "".join(map(chr, range(0x2000, 0x200B)))
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_TRANSLATE: dict[int, str | None] = {
    **{ord(ch): " " for ch in _SPACES},
    **{ord(ch): None for ch in _INVISIBLE},
    **{ord(ch): "\n" for ch in "\u2028\u2029\x0b\x0c\x85"},
    # Other C0/C1 control characters never carry meaning in an SOP and can hide text.
    **{code: None for code in [*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F, *range(0x80, 0x85)]},
    **{code: None for code in range(0x86, 0xA0)},
}
_TRANSLATE_CODE = {**_TRANSLATE, ord("\t"): "\t"}
_RUNS = re.compile(r" {2,}")
_LIST_MARKER = re.compile(
    r"^(?:[-*•‣◦▪●○■□–—+]|\(?\d+(?:\.\d+)*[.)]|\(?[a-zA-Z][.)]|\([ivxIVX]+\)|[ivxIVX]+[.)])\s"
)
_SENTENCE_END = re.compile(r"[.!?:;][\"'”’)\]]*$")
_HYPHEN_END = re.compile(r"[^\W_]-$")


def normalize_chars(text: str, *, keep_tabs: bool = False) -> str:
    """NFC, `\\n` line ends, odd spaces as spaces; soft hyphens and invisible characters gone."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u00ad\n", "")  # a soft hyphen at a line end joins the word
    text = unicodedata.normalize("NFC", text)
    return text.translate(_TRANSLATE_CODE if keep_tabs else _TRANSLATE)


def _collapse(line: str) -> str:
    return _RUNS.sub(" ", line).strip()


def join_lines(text: str) -> str:
    """Join lines broken mid-sentence and words hyphenated across lines; keep real breaks.

    A break stays when the line ends a sentence or the next line starts with a list marker; runs
    of blank lines become one blank line. `custo-\\nmer` becomes `customer`; `follow-\\nUp`
    keeps its hyphen.
    """
    # Each output line as the pieces it is joined from, its ends read from its last piece: a
    # paragraph of many lines was joined and searched again at each line, in quadratic time.
    out: list[list[str]] = []
    hard_break = False
    for raw in normalize_chars(text).split("\n"):
        line = _collapse(raw)
        if not line:
            hard_break = bool(out)
            continue
        if not out:
            out.append([line])
        elif hard_break:
            out += [[""], [line]]  # a blank line is a paragraph break: keep it
        elif _ends(_HYPHEN_END, out[-1]) and line[0].isalnum():
            prev = out[-1]
            if _tail(prev)[-2].islower() and line[0].islower():
                prev[-1] = prev[-1][:-1]  # `custo-` + `mer`: the hyphen goes
            prev.append(line)
        elif _LIST_MARKER.match(line) or _ends(_SENTENCE_END, out[-1]):
            out.append([line])
        else:
            out[-1].append(f" {line}")
        hard_break = False
    return "\n".join("".join(parts) for parts in out)


_CLOSERS = "\"'”’)]"


def _tail(parts: list[str]) -> str:
    """The last pieces of a line made of `parts`, at least 2 characters of it when it has them."""
    tail = ""
    for piece in reversed(parts):
        tail = piece + tail
        if len(tail) >= 2:
            break
    return tail


def _ends(pattern: re.Pattern[str], parts: list[str]) -> bool:
    """`pattern` (anchored at the end) matches the line made of `parts`."""
    tail = _tail(parts)
    if tail.rstrip(_CLOSERS):  # what it can match ends in the tail
        return pattern.search(tail) is not None
    return pattern.search("".join(parts)) is not None


def _one_line(text: str) -> str:
    return _collapse(join_lines(text).replace("\n", " "))


def clean_block(block: AnyBlock) -> AnyBlock | None:
    """The block with clean text, or None when nothing is left of it."""
    # A block cleaning leaves as it was is kept, not copied: a big SOP's blocks are then not
    # held twice while it is cleaned (issue 17).
    if isinstance(block, Paragraph | ListItem | Quote):
        text = join_lines(block.text)
        return _with_text(block, text) if text else None
    if isinstance(block, Heading):
        text = _one_line(block.text)
        return _with_text(block, text) if text else None
    if isinstance(block, Code):
        lines = [line.rstrip() for line in normalize_chars(block.text, keep_tabs=True).split("\n")]
        text = "\n".join(lines).strip("\n")
        return block.model_copy(update={"text": text}) if text.strip() else None
    if isinstance(block, Table):
        header = [_one_line(cell) for cell in block.header] if block.header else None
        rows = [[_one_line(cell) for cell in row] for row in block.rows]
        rows = [row for row in rows if any(row)]
        if header is not None and not any(header):
            header = None
        if header is None and not rows:
            return None
        caption = _one_line(block.caption) if block.caption else None
        return block.model_copy(update={"header": header, "rows": rows, "caption": caption or None})
    if isinstance(block, Flowchart):
        nodes = [node.model_copy(update={"text": _one_line(node.text)}) for node in block.nodes]
        return block.model_copy(update={"nodes": nodes})
    # Figures always stay: the image itself is content even without a caption.
    caption = _one_line(block.caption) if block.caption else None
    ocr = None
    if block.text:
        ocr_lines = map(_collapse, normalize_chars(block.text).split("\n"))
        ocr = "\n".join(line for line in ocr_lines if line)
    return block.model_copy(update={"caption": caption or None, "text": ocr or None})


def _with_text(block: AnyBlock, text: str) -> AnyBlock:
    unchanged = text == getattr(block, "text", None)
    return block if unchanged else block.model_copy(update={"text": text})


def clean_blocks(blocks: list[AnyBlock]) -> tuple[list[AnyBlock], list[Removal]]:
    """Clean every block's text; drop blocks left empty (recorded when they held whitespace)."""
    kept: list[AnyBlock] = []
    removed: list[Removal] = []
    for block in blocks:
        cleaned = clean_block(block)
        if cleaned is not None:
            kept.append(cleaned)
        elif block_text(block):
            removed.append(removal("empty", "only whitespace or invisible characters", block))
    return kept, removed


def merge_page_breaks(blocks: list[AnyBlock]) -> list[AnyBlock]:
    """Join a paragraph split across a page break into its first part (which keeps its id).

    The split is recognised when the block before the break does not end a sentence and the
    first block on the next page is a paragraph starting with a lowercase letter.
    """
    out: list[AnyBlock] = []
    for block in blocks:
        prev = out[-1] if out else None
        if (
            isinstance(block, Paragraph)
            and isinstance(prev, Paragraph | ListItem)
            and prev.prov.page is not None
            and block.prov.page == prev.prov.page + 1
            and block.text[:1].islower()
            and not _SENTENCE_END.search(prev.text)
        ):
            if _HYPHEN_END.search(prev.text) and prev.text[-2].islower():
                text = prev.text[:-1] + block.text
            else:
                text = f"{prev.text} {block.text}"
            out[-1] = prev.model_copy(update={"text": text})
            continue
        out.append(block)
    return out
