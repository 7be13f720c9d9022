"""Plain-text reader, and the line grammar (list markers, numbered titles) other readers share."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sop_compiler.config import Settings
from sop_compiler.ingest._text_decode import BlockBuilder, decode_text
from sop_compiler.ingest.base import Reader, Source
from sop_compiler.models import Document
from sop_compiler.text import is_instruction

__all__ = [
    "ListNester",
    "Marker",
    "TextReader",
    "numbered_pieces",
    "parse_marker",
    "split_heading_number",
]

_ORDERED = re.compile(
    r"""^(?:
        \((?P<paren>[0-9]{1,3}|[a-zA-Z]|[ivxlcdm]{1,6}|[IVXLCDM]{1,6})\)
      | (?P<dotted>(?:[0-9]{1,3}|[A-Z])(?:\.[0-9]{1,3})+)(?P<dpunct>[.)]?)
      | (?P<num>[0-9]{1,3})(?P<npunct>[.)])
      | (?P<roman>[ivxlcdm]{2,6}|[IVXLCDM]{2,6})(?P<rpunct>[.)])
      | (?P<alpha>[a-zA-Z])(?P<apunct>[.)])
    )[ \t]+(?P<text>\S.*)$""",
    re.X,
)
# "Step 1. Look up", "Step 2: Check", "Step 3 - Book", and "Step 4  Check the board" (a gap
# before a capital)
_STEP_WORD = re.compile(
    r"^(?:step|stage)[ \t]+(?P<num>[0-9]{1,3})"
    r"(?:[ \t]*(?:[.:)]|[ \t][-\u2013\u2014])[ \t]+|[ \t]+(?=(?-i:[A-Z])))"
    r"(?P<text>\S.*)$",
    re.IGNORECASE,
)
# "- ...", "• ...", and the checkboxes of a checklist: "[ ] ...", "[x] ...", "☐ ..."
_BULLET = re.compile(r"^(?P<bullet>[-*+•·▪◦‣–]|\[[ xX]?\]|[☐☑☒])[ \t]+(?P<text>\S.*)$")
# "-> If the card declines twice, stop.": an arrow under an item
_ARROW = re.compile(r"^(?:-+>|=+>|[→⇒])[ \t]+(?P<text>\S.*)$")
_ROMAN = re.compile(r"^[ivxlcdm]+$", re.I)
_HEADING_NUMBER = re.compile(r"^(?P<number>[0-9]{1,3}(?:\.[0-9]{1,3})*)\.?[ \t]+(?P<title>\S.*)$")
_RULE = re.compile(r"^(?:={3,}|-{3,})$")
_GRID_RULE = re.compile(r"^\+(?:[-=:]+\+)+$")
_PIPE_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?$")
# A rule under the header of a column-aligned table: "-------  ------------  ------".
_COLUMN_RULE = re.compile(r"^-{2,}(?:[ \t]+-{2,})+$")
_GAP = re.compile(r"[ \t]{2,}")
_MIN_COLUMNS = 3  # two columns are too often a definition list or a "Label:  value" line
_SMALL_WORDS = frozenset(
    {"a", "an", "and", "as", "at", "but", "by", "for", "from", "in", "into", "of", "on", "or"}
    | {"per", "the", "to", "via", "vs", "with"}
)


@dataclass(frozen=True)
class Marker:
    """A list marker at the start of a line."""

    marker: str  # as printed: "1.", "2.1", "a)", "(iv)", "•"
    ordered: bool
    style: str  # what siblings share, e.g. "num", "dotted2", "(alpha)", "bullet"
    depth: int  # numbering depth: 2 for "2.1"
    text: str


def parse_marker(line: str) -> Marker | None:
    """The list marker that starts `line` (already stripped), or None."""
    bullet = _BULLET.match(line)
    if bullet:
        numbered = parse_marker(bullet["text"]) if bullet["bullet"][:1] in "[☐☑☒" else None
        if numbered is not None and numbered.ordered:
            return numbered  # "[ ] 3. Book the slot.": a numbered step of a checklist
        return Marker("•", False, "bullet", 1, bullet["text"].strip())
    if step := _STEP_WORD.match(line):  # "Step 1. Look up the property": a step, never a title
        return Marker(f"{step['num']}.", True, "step", 1, step["text"].strip())
    m = _ORDERED.match(line)
    if m is None:
        return None
    text = m["text"].strip()
    if m["paren"]:
        token = m["paren"]
        return Marker(f"({token})", True, f"({_kind(token)})", 1, text)
    if m["dotted"]:
        number = m["dotted"]
        depth = number.count(".") + 1
        return Marker(number + m["dpunct"], True, f"dotted{depth}", depth, text)
    if m["num"]:
        return Marker(m["num"] + m["npunct"], True, "num", 1, text)
    if m["roman"]:
        token, punct = m["roman"], m["rpunct"]
    else:
        token, punct = m["alpha"], m["apunct"]
    return Marker(token + punct, True, _kind(token), 1, text)


def numbered_pieces(text: str) -> list[tuple[int, str]]:
    """The pieces of a paragraph whose lines, one under the other, each start with a list
    marker ("3.1 Find the booking", "a) ...", "(ii) ...", "Step 2: ...", "• ...", "[ ] ..."):
    one per marked line, as if blank lines stood between them, each as (its first line's
    offset, its text). A line without a mark continues the one above it. Any other text is one
    piece ("1.5 million people called\nlast year" is prose that starts with a number).
    """
    lines = text.split("\n")
    marked = [n for n, line in enumerate(lines) if parse_marker(line.strip()) is not None]
    if len(marked) < 2 or marked[0] != 0:
        return [(0, text)]
    ends = [*marked[1:], len(lines)]
    return [(start, "\n".join(lines[start:end])) for start, end in zip(marked, ends, strict=True)]


def _kind(token: str) -> str:
    if token.isdigit():
        return "num"
    if len(token) == 1 and token.lower() != "i":
        return "ALPHA" if token.isupper() else "alpha"  # "c." after "b." is a letter, not 100
    if _ROMAN.match(token):
        return "ROMAN" if token.isupper() else "roman"
    return "ALPHA" if token.isupper() else "alpha"


def split_heading_number(text: str) -> tuple[str | None, str]:
    """Split a printed section number off a heading: "3.2 Refunds" -> ("3.2", "Refunds")."""
    stripped = text.strip()
    m = _HEADING_NUMBER.match(stripped)
    # "2024 Policy" and "3 Refunds" are titles that start with a number, not numbered sections.
    if m is None or "." not in stripped.split()[0]:
        return None, stripped
    return m["number"], m["title"].strip()


def looks_like_title(text: str) -> bool:
    """Short, no closing punctuation, and ALL CAPS or Title Case."""
    words = text.split()
    if not words or len(words) > 10 or len(text) > 80 or text[-1] in ".;,!?":
        return False
    if not any(ch.isalpha() for ch in text):
        return False
    if text.isupper():
        return True
    if not words[0][:1].isupper():
        return False
    return all(w[:1].isupper() or not w[:1].isalpha() or w.lower() in _SMALL_WORDS for w in words)


class ListNester:
    """Turns (indent, marker style) of consecutive list items into nesting levels."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []
        self._last: dict[int, str] = {}

    def reset(self) -> None:
        """Forget open lists (after a heading)."""
        self._stack.clear()
        self._last.clear()

    def level(self, indent: int, marker: Marker) -> int:
        """Nesting level (0 = top) of an item at `indent` with `marker`."""
        style = self._resolve(marker)
        while self._stack and self._stack[-1][0] > indent:
            self._stack.pop()
        if self._stack and self._stack[-1][0] == indent:
            k = len(self._stack) - 1
            while k >= 0 and self._stack[k][0] == indent:
                if self._stack[k][1] == style:
                    del self._stack[k + 1 :]
                    self._last[k] = marker.marker
                    return k
                k -= 1
        self._stack.append((indent, style))
        self._last[len(self._stack) - 1] = marker.marker
        return len(self._stack) - 1

    def _resolve(self, marker: Marker) -> str:
        """Single letters i, v, x are roman numerals unless they continue a lettered list."""
        style = marker.style
        top = self._stack[-1][1] if self._stack else ""
        letter = marker.marker.strip("().").rstrip(")").lower()
        if style.lower().startswith(("roman", "(roman")) and letter == "i":
            previous = self._last.get(len(self._stack) - 1, "").strip("().").rstrip(")").lower()
            if top.lower().startswith(("alpha", "(alpha")) and previous == "h":
                return style.replace("roman", "alpha").replace("ROMAN", "ALPHA")
        same_roman = top.lower() == style.lower().replace("alpha", "roman")
        if style.lower().startswith(("alpha", "(alpha")) and letter in {"v", "x"} and same_roman:
            return style.replace("alpha", "roman").replace("ALPHA", "ROMAN")
        return style


@dataclass
class _Item:
    marker: Marker
    level: int
    indent: int
    start: int
    lines: list[str]


class TextReader(Reader):
    """Reads .txt files: headings, numbered and bulleted lists, paragraphs, simple tables."""

    format = "text"
    suffixes = (".txt", ".text")

    def read(self, source: Source, *, settings: Settings) -> Document:
        """Decode the text and parse its line structure."""
        text, notices = decode_text(source)
        builder = BlockBuilder(source, self.format)
        builder.document.notices.extend(notices)
        _TextParser(text.split("\n"), builder).run()
        return builder.document


# "Check the order", "Refund a payment": an order, where a title names a subject
_ORDER = re.compile(r"^\S+\s+(?:the|a|an|their|its|this|that|your|his|her|them|it)\b", re.I)


def _indent(line: str) -> int:
    expanded = line.expandtabs(4)
    return len(expanded) - len(expanded.lstrip())


class _TextParser:
    def __init__(self, lines: list[str], builder: BlockBuilder) -> None:
        self.lines = [line.rstrip() for line in lines]
        self.b = builder
        self.nester = ListNester()
        self.para: list[str] = []
        self.para_start = 0
        self.item: _Item | None = None
        self.title_line = _title_line(self.lines)
        self.last_level = 0  # of the last heading; 0 before any

    def flush(self) -> None:
        if self.para:
            self.b.paragraph("\n".join(self.para), self.para_start)
            self.para = []
        if self.item is not None:
            it = self.item
            self.b.list_item(
                "\n".join(it.lines),
                level=it.level,
                marker=it.marker.marker,
                ordered=it.marker.ordered,
                index=it.start,
            )
            self.item = None

    def run(self) -> None:
        lines = self.lines
        i, n = 0, len(lines)
        prev_blank = True
        while i < n:
            line = lines[i]
            stripped = line.strip()
            if not stripped:
                if self.para:
                    self.flush()
                prev_blank = True
                i += 1
                continue
            indent = _indent(line)
            nxt = lines[i + 1].strip() if i + 1 < n else ""
            if _RULE.match(stripped):  # a stray rule line is decoration
                self.flush()
                prev_blank, i = True, i + 1
                continue
            underlined = _RULE.match(nxt) and not self.para and (self.item is None or prev_blank)
            if underlined and len(stripped) <= 100:
                self.flush()
                if nxt[0] == "=" and i == self.title_line:
                    self.b.document.title = stripped
                # a title between two rules ("-----\n1. BOOKING A REPAIR\n-----") is boxed: a
                # section as major as an "=" underlined one, never a sub-section of the bare
                # capitals heading before it
                boxed = i > 0 and _RULE.match(lines[i - 1].strip()) is not None
                self._heading(stripped, 1 if nxt[0] == "=" or boxed else 2, i)
                prev_blank, i = True, i + 2
                continue
            if "|" in stripped or "\t" in stripped or _GRID_RULE.match(stripped):
                consumed = self._table(i)
            else:
                consumed = self._aligned_table(i) if self.item is None or prev_blank else 0
            if consumed:
                prev_blank, i = True, i + consumed
                continue
            marker = parse_marker(stripped)
            lone = False  # a sentence-case title set apart (_lone_title), read below
            arrow = _ARROW.match(stripped)
            if arrow and self.item is not None and self.item.lines[-1].endswith((".", "?", "!")):
                # under "Card over the phone? Take it on the card machine app.", the arrow leads
                # a sub-item; under a case ("Receipt already fulfilled"), it says what to do
                marker = Marker("•", False, "bullet", 1, arrow["text"])
            if marker is not None and self._is_numbered_heading(marker, i, prev_blank):
                self.flush()
                number = marker.marker.rstrip(".)")
                self._heading(marker.text, marker.depth, i, number=number)
            elif (
                marker is None
                and (
                    (prev_blank and _caps_heading(stripped))
                    or _banner_heading(stripped)  # "=== MACRO WR-01: Missed bin collection ==="
                    or (lone := self._lone_title(i))
                )
                and (self.title_line is None or i > self.title_line)
            ):
                # ALL-CAPS lines above the underlined title are a letterhead, not sections.
                self.flush()
                # a title set apart is a peer of the section before it ("RE: Escorts" after
                # "Useful numbers" underlined with dashes), never its parent
                level = self.last_level if lone and self.last_level else 1
                self._heading(_undecorated(stripped), level, i)
            elif marker is not None:
                self.flush()
                level = self.nester.level(indent, marker)
                self.item = _Item(marker, level, indent, i, [marker.text])
            elif self.item is not None and (not prev_blank or indent > self.item.indent):
                self.item.lines.append(stripped)
            else:
                if self.item is not None:
                    self.flush()
                if not self.para:
                    self.para_start = i
                self.para.append(stripped)
            prev_blank = False
            i += 1
        self.flush()

    def _heading(self, text: str, level: int, index: int, number: str | None = None) -> None:
        self.nester.reset()
        self.last_level = level
        self.b.heading(text, level, index, number=number)

    def _lone_title(self, i: int) -> bool:
        """ "Ending a rental early" set apart by two blank lines above and one below: a section
        title in sentence case (one blank line above is any short paragraph)."""
        line = self.lines[i].strip()
        # 'RE: "Where's my transport?" - late and missed pickups': a dash is no word
        words = [word for word in line.split() if any(ch.isalnum() for ch in word)]
        above = [self.lines[j].strip() for j in range(max(0, i - 2), i)]
        below = self.lines[i + 1].strip() if i + 1 < len(self.lines) else ""
        return (
            i >= 2
            and above == ["", ""]
            and not below
            and 1 <= len(words) <= 8
            and line[:1].isupper()
            and line[-1] not in ".;,:!?"
            and _indent(self.lines[i]) == 0
        )

    def _is_numbered_heading(self, marker: Marker, i: int, prev_blank: bool) -> bool:
        numbered = marker.style.startswith("dotted") or (
            marker.style == "num" and marker.marker.endswith(".")
        )
        if not numbered or _indent(self.lines[i]) > 0:
            return False
        if not looks_like_title(marker.text) and not self._section_line(marker, i, prev_blank):
            return False
        if marker.text.isupper():
            return True
        # Title Case items inside a run of items ("1. Check Order\n2. Issue Refund") are steps.
        if self.item is not None and not prev_blank:
            return False
        nxt = self.lines[i + 1].strip() if i + 1 < len(self.lines) else ""
        after = parse_marker(nxt)
        return after is None or after.style != marker.style

    def _section_line(self, marker: Marker, i: int, prev_blank: bool) -> bool:
        """ "4.1 Repeat prescription requests" alone between blank lines: a sub-section in
        sentence case. A numbered order ("2.3 Check the order") stays a step."""
        nxt = self.lines[i + 1].strip() if i + 1 < len(self.lines) else ""
        body = next((line.strip() for line in self.lines[i + 1 :] if line.strip()), "")
        after = parse_marker(body)
        words = marker.text.split()
        return (
            marker.style.startswith("dotted")
            and prev_blank
            and not nxt
            and (after is None or after.style != marker.style)  # "2.4 ..." next: a list
            and 0 < len(words) <= 10
            and marker.text[:1].isupper()
            and marker.text[-1] not in ".;,:!?"
            and not (is_instruction(marker.text) and _ORDER.match(marker.text))
        )

    def _aligned_table(self, i: int) -> int:
        """Parse a table whose columns line up with spaces; return lines consumed (0 if none).

        Either a header over a rule of dash groups, or two or more lines of at least three
        cells separated by runs of spaces (as revision histories are typed in plain text).
        """
        lines = self.lines
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if _COLUMN_RULE.match(nxt.strip()):
            offset = _indent(nxt)
            starts = [offset + start for start in _columns(nxt.strip())]
            header = _cut(lines[i].expandtabs(4), starts)
            end = i + 2
            while end < len(lines) and lines[end].strip():
                end += 1
            rows = [_cut(lines[k].expandtabs(4), starts) for k in range(i + 2, end)]
            self.flush()
            self.b.table(rows, i, header=header)
            return end - i
        width = len(_gap_cells(lines[i]))
        if width < _MIN_COLUMNS:
            return 0
        end = i + 1
        while end < len(lines) and len(_gap_cells(lines[end])) == width:
            end += 1
        if end - i < 2:
            return 0
        self.flush()
        self.b.table([_gap_cells(lines[k]) for k in range(i, end)], i)
        return end - i

    def _table(self, i: int) -> int:
        """Parse a pipe or tab-separated table starting at line i; return lines consumed."""
        lines = self.lines
        first = lines[i].strip()
        grid = _GRID_RULE.match(first) is not None  # "+------+-----+" around "| a | b |" rows
        if grid or first.count("|") >= 2 or (first.startswith("|") and first.count("|") >= 1):
            end = i
            while end < len(lines) and (
                (lines[end].strip().count("|") >= 1 and lines[end].strip())
                or (grid and _GRID_RULE.match(lines[end].strip()))
            ):
                end += 1
            block = [lines[k].strip() for k in range(i, end)]
            if len(block) < 2:
                return 0
            header: list[str] | None = None
            rows: list[list[str]] = []
            for k, row in enumerate(block):
                if _PIPE_SEPARATOR.match(row) or _GRID_RULE.match(row):
                    # the rule under the first row: that row is the header
                    if k == (2 if grid else 1) and len(rows) == 1:
                        header = rows.pop()
                    continue
                rows.append([cell.strip() for cell in row.strip("|").split("|")])
            if not rows and header is None:
                return 0
            self.flush()
            self.b.table(rows, i, header=header)
            return end - i
        cells = _tab_cells(first)
        if len(cells) < 2:
            return 0
        end = i + 1
        while end < len(lines) and len(_tab_cells(lines[end].strip())) == len(cells):
            end += 1
        if end - i < 2:
            return 0
        self.flush()
        self.b.table([_tab_cells(lines[k].strip()) for k in range(i, end)], i)
        return end - i


def _title_line(lines: list[str]) -> int | None:
    """The line of the document title: the first text underlined with `===`."""
    for index in range(len(lines) - 1):
        if lines[index].strip() and re.match(r"^={3,}$", lines[index + 1].strip()):
            return index
    return None


def _columns(rule: str) -> list[int]:
    """Start offsets of the dash groups of a column rule."""
    return [m.start() for m in re.finditer(r"-{2,}", rule)]


def _cut(line: str, starts: list[int]) -> list[str]:
    """A line cut at the column offsets of its table's rule."""
    cells = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(line)
        cells.append(line[start:end].strip())
    return cells


def _gap_cells(line: str) -> list[str]:
    return [cell for cell in _GAP.split(line.strip()) if cell]


def _tab_cells(line: str) -> list[str]:
    if "\t" not in line:
        return []
    return [cell.strip() for cell in re.split(r"\t+", line)]


# The rules a plain-text banner puts around its title: "== PROCEDURE 2: BAN APPEALS ==".
_BANNER = re.compile(r"^[=~*#+-]{2,}[ \t]*|[ \t]*[=~*#+-]{2,}$")


def _undecorated(line: str) -> str:
    """A banner's title: "--- READ ME FIRST ---" -> "READ ME FIRST"."""
    return _BANNER.sub("", line).strip() or line


_BANNERED = re.compile(
    r"^(?:={2,}|~{2,}|\*{3,}|#{2,}|\+{2,}|-{3,})\s*(?P<title>[^=~*#+]+?)\s*(?:={2,}|~{2,}|\*{3,}|#{2,}|\+{2,}|-{3,})$"
)


def _banner_heading(line: str) -> bool:
    """A title between banner rules, in any case: "=== MACRO WR-01: Missed bin collection ==="."""
    match = _BANNERED.match(line) if len(line) <= 200 else None  # a title is short
    if match is None:
        return False
    title = match.group("title")
    return (
        1 <= len(title.split()) <= 12 and title[-1] not in ".;," and any(c.isalpha() for c in title)
    )


_BRACKETED_END = re.compile(r"(?<=\S)\s+\([^()]*\)$")


def _caps_heading(line: str) -> bool:
    """An ALL-CAPS line of at most ten words, banner rules and quotes aside.

    'PART A - "MY CODE HAS EXPIRED" / "MY PARCEL IS GONE"' and
    '== PROCEDURE 1: "I PAID BUT DIDN'T GET MY ITEMS" ==' are headings: a dash, a slash or a
    rule is no word.
    """
    bare = _undecorated(line)
    # "DAILY VACCINATION SWEEP (back office)", "PROCEDURE E: FRIDAY RUN (back office, no
    # customer on the line)": who does it, in brackets, is no part of the caps or the length
    head = _BRACKETED_END.sub("", bare)
    if len(head) > 80 or len(bare) > 140:
        return False
    letters = [ch for ch in head if ch.isalpha()]
    words = [word for word in head.split() if any(ch.isalnum() for ch in word)]
    return (
        len(letters) >= 2
        and all(ch.isupper() for ch in letters)
        and bare[-1] not in ".;,"
        and len(words) <= 10
    )
