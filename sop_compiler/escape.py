"""Escaping for every place where SOP, catalog or model text lands in an output file.

Shared by `emit` (the files) and `render` (the run summary), so neither depends on the other.
Python: text only ever becomes a string literal built here, escaped character by character, so no
input can end a literal early or smuggle in code. Markdown: HTML and code-fence characters become
entities, so nothing can open a fence, close one, or inject a tag. Mermaid: labels are quoted and
every character that Mermaid or Markdown could read as syntax becomes a `#code;` entity.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

__all__ = [
    "CODE_WIDTH",
    "md_block_safe",
    "md_cell",
    "md_code",
    "md_prose",
    "md_text",
    "mermaid_label",
    "one_line",
    "py_docstring",
    "py_literal",
    "py_string",
    "terminal_text",
    "text_width",
]

CODE_WIDTH = 88  # ruff's default line length, so emitted code passes any project's E501

_SIMPLE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_WHITESPACE = re.compile(r"\s+")


def one_line(text: str) -> str:
    """The text with every run of whitespace (newlines included) collapsed to one space."""
    return _WHITESPACE.sub(" ", text).strip()


def text_width(text: str) -> int:
    """Columns `text` takes in an editor (wide East Asian characters count twice)."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _escape_char(char: str, *, keep_newline: bool = False) -> str:
    if keep_newline and char == "\n":
        return char
    if char in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape(text: str) -> str:
    return "".join(_escape_char(char) for char in text)


def py_literal(text: str) -> str:
    """A double-quoted Python string literal whose value is exactly `text`."""
    return f'"{_escape(text)}"'


def _split_keeping_spaces(text: str) -> list[str]:
    """Pieces that concatenate back to `text`, each a word with its trailing whitespace."""
    pieces: list[str] = []
    for line in text.splitlines(keepends=True):
        pieces.extend(re.findall(r"\S*\s*", line)[:-1] or [line])
    return pieces


def py_string(text: str, *, indent: int, prefix: int = 30) -> str:
    """A Python expression for `text` that keeps every line within CODE_WIDTH.

    Short text gives one literal. Longer text gives a parenthesised implicit concatenation, one
    literal per line, split after whitespace and after every newline. `indent` is the column of
    the statement that holds the expression; `prefix` allows for what precedes it on its line.
    """
    single = py_literal(text)
    if indent + prefix + text_width(single) <= CODE_WIDTH and "\n" not in text[:-1]:
        return single
    inner = " " * (indent + 4)
    room = CODE_WIDTH - len(inner) - 2
    chunks: list[str] = []
    current, width, line_ended = "", 0, False
    for piece in _split_keeping_spaces(text):
        escaped = _escape(piece)
        piece_width = text_width(escaped)
        if current and (width + piece_width > room or line_ended):
            chunks.append(current)
            current, width = "", 0
        line_ended = piece.endswith(("\n", "\r"))
        while piece_width > room:  # a word longer than a line: cut it between characters
            head, escaped = _cut(escaped, room - width)
            chunks.append(current + head)
            current, width = "", 0
            piece_width = text_width(escaped)
        current += escaped
        width += piece_width
    if current or not chunks:
        chunks.append(current)
    lines = "\n".join(f'{inner}"{chunk}"' for chunk in chunks)
    return f"(\n{lines}\n{' ' * indent})"


def _cut(escaped: str, room: int) -> tuple[str, str]:
    """Split escaped text at most `room` columns in, never inside an escape sequence."""
    tokens = re.findall(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|.)|.", escaped, re.DOTALL)
    head, width = "", 0
    for index, token in enumerate(tokens):
        token_width = text_width(token)
        if head and width + token_width > room:
            return head, "".join(tokens[index:])
        head += token
        width += token_width
    return head, ""


def _wrap_words(words: list[str], width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in words:
        if current and text_width(current) + 1 + text_width(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines


def py_docstring(summary: str, *, indent: int, args: Sequence[tuple[str, str]] = ()) -> str:
    """A triple-quoted docstring (Google style, with an Args section), safe for any text.

    Every backslash and double quote is escaped, so no text can end the docstring, and
    non-printable characters become escapes. Paragraphs are re-wrapped to CODE_WIDTH.
    """
    pad = " " * indent
    width = CODE_WIDTH - indent
    lines: list[str] = []
    for paragraph in re.split(r"\n\s*\n", summary.strip()):
        words = [_escape(word) for word in paragraph.split()]
        if words:
            if lines:
                lines.append("")
            # The first paragraph shares its first line with the opening quotes.
            lines.extend(_wrap_words(words, width if lines else width - 3))
    if not lines:
        lines.append("(No description.)")
    args = [(name, one_line(description)) for name, description in args if description.strip()]
    if args:
        lines += ["", "Args:"]
        for name, description in args:
            words = [_escape(word) for word in f"{name}: {description}".split()]
            wrapped = _wrap_words(words, width - 8)
            lines.append(f"    {wrapped[0]}")
            lines.extend(f"        {line}" for line in wrapped[1:])
    if len(lines) == 1 and text_width(lines[0]) + 6 <= width:
        return f'{pad}"""{lines[0]}"""'
    body = "\n".join(f"{pad}{line}" if line else "" for line in lines[1:])
    return f'{pad}"""{lines[0]}\n{body}\n{pad}"""'


# Markdown: entities for what could open HTML, code spans or fences; backslashes for the rest.
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "&#96;", "|": "&#124;"}
_MD_BACKSLASHED = set("\\*_[]#~!")


def _bare_ampersand(text: str, at: int) -> bool:
    """An `&` that can open no entity or character reference ("Meet & Greet"): it stays `&`,
    as the SOP wrote it, so the diff a reviewer reads shows no `&amp;`."""
    return text[at] == "&" and not _ENTITY_START.match(text, at + 1)


_ENTITY_START = re.compile(r"[#A-Za-z0-9]")


def md_text(text: str) -> str:
    """Text safe to place inline in Markdown: one line, no HTML, no code spans or fences."""
    out: list[str] = []
    line = one_line(text)
    for at, char in enumerate(line):
        if _bare_ampersand(line, at):
            out.append(char)
        elif char in _MD_ENTITIES:
            out.append(_MD_ENTITIES[char])
        elif char in _MD_BACKSLASHED:
            out.append("\\" + char)
        elif not char.isprintable():
            out.append(" ")
        else:
            out.append(char)
    escaped = "".join(out)
    return md_block_safe(_inert_links(escaped))


# What would make a link or an image of escaped text (a tracking pixel, a live phishing link):
# an inline or reference link's `](`, `][` or definition `]:`, and a bare URL GitHub autolinks.
_LINK_SYNTAX = re.compile(r"(?<!\\)\](?=[(\[:])")
_AUTOLINK = re.compile(r"(?i)\b(?:(https?|ftp|mailto)(?=:)|(www)(?=\.))")


def _inert_links(escaped: str) -> str:
    """Escaped Markdown in which no link, image or autolink is live (the text reads the same).

    A backslash before the `(`, `[` or `:` after `]` leaves brackets as text; one before the
    `:` of a scheme or the `.` after `www` stops autolinking.
    """
    escaped = _LINK_SYNTAX.sub(lambda m: "]\\", escaped)
    return _AUTOLINK.sub(lambda m: m.group() + "\\", escaped)


_PROSE_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BACKTICK_RUN = re.compile(r"`{3,}")
_BLOCK_MARK = re.compile(r"^[#+*=|-]")
_ORDERED_MARK = re.compile(r"^(\d{1,9})([.)])")


def md_prose(text: str) -> str:
    """One line of prose for Markdown an agent reads: no HTML tag, no code fence.

    `<`, `>` and an `&` that could open an entity become entities, and a run of three or more
    backticks becomes `&#96;` entities. Single and double backticks stay, so code spans an SOP
    writes (tool names) still work, and the text stays readable; `*`, `_` and `[` are left
    alone for the same reason.
    Links, images and autolinks are made inert (`](` becomes `]\\(`, `https:` `https\\:`).
    """
    line = one_line(text)
    out = [
        char
        if _bare_ampersand(line, at)
        else _PROSE_ENTITIES.get(char, char if char.isprintable() else " ")
        for at, char in enumerate(line)
    ]
    escaped = " ".join("".join(out).split())  # control characters must not leave an indent
    return _inert_links(_BACKTICK_RUN.sub(lambda run: "&#96;" * len(run.group()), escaped))


def md_code(text: str) -> str:
    """A one-line code span for `text`, or escaped prose when the span could not hold it.

    A backtick would end the span early, and `<`, `>` or `&` would be live HTML if a stray
    backtick elsewhere on the line paired the span's delimiters differently.
    """
    line = one_line(text)
    if not line or any(char in line for char in "`<>&") or not line.isprintable():
        return md_prose(line)
    return f"`{line}`"


def md_block_safe(line: str) -> str:
    """A line of already-escaped Markdown that cannot start a heading, list or table.

    Only ASCII punctuation can be backslash-escaped, so `1.` becomes `1\\.`, not `\\1.`.
    """
    if _BLOCK_MARK.match(line):
        return "\\" + line
    return _ORDERED_MARK.sub(r"\1\\\2", line, count=1)


def md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell (pipes are already entities in md_text)."""
    return md_text(text) or " "


_MERMAID_ENTITIES = {
    '"': "#quot;",
    "#": "#35;",
    "&": "#amp;",
    "<": "#lt;",
    ">": "#gt;",
    "`": "#96;",
    "%": "#37;",
    "{": "#123;",
    "}": "#125;",
    "\\": "#92;",
    "|": "#124;",
}


def mermaid_label(text: str, *, max_len: int = 60) -> str:
    """A quoted Mermaid label: truncated, one line, every syntax character as an entity."""
    label = one_line(text)
    if len(label) > max_len:
        label = label[: max_len - 1].rstrip() + "…"
    escaped = "".join(
        _MERMAID_ENTITIES.get(char, char if char.isprintable() else " ") for char in label
    )
    # "[portal](https://...)" stays text, never a link, wherever the label is shown
    return f'"{escaped.replace("](", "]#40;")}"'


# Control and bidi characters of file names and SOP text must not reach a terminal (escape
# sequences, Trojan-Source reordering): they are shown escaped, as `\x1b`.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def terminal_text(text: str) -> str:
    """`text` with control and bidi characters escaped, for anything printed to a terminal."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
