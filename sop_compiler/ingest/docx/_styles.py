"""Paragraph styles (headings, inherited numbering, bold) and list numbers from numbering.xml."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sop_compiler.ingest._text_decode import format_number
from sop_compiler.ingest.docx import _ns as ns

_HEADING_NAME = re.compile(r"^heading\s*([1-9])$", re.I)
_FALSE = frozenset({"0", "false", "off", "none"})
_FORMATS = {
    "decimal": "decimal",
    "lowerLetter": "lower-alpha",
    "upperLetter": "upper-alpha",
    "lowerRoman": "lower-roman",
    "upperRoman": "upper-roman",
}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _level_index(value: str | None) -> int:
    """A list level 0-8; out-of-range values from a damaged file are clamped."""
    return max(0, min(_int(value, 0), 8))


def int_attr(element: Any, default: int) -> int:
    """An element's integer `w:val`, or `default` when it is missing or not a number."""
    return _int(element.get(ns.VAL), default)


def on(element: Any) -> bool:
    """Whether an OOXML toggle (`<w:b/>`, `<w:tblHeader w:val="true"/>`) is set."""
    return element is not None and element.get(ns.VAL, "1").lower() not in _FALSE


def num_pr(ppr: Any) -> tuple[str | None, int | None]:
    """(numId, ilvl) from a paragraph properties element; (None, None) when absent."""
    if ppr is None:
        return None, None
    numpr = ppr.find(ns.NUMPR)
    if numpr is None:
        return None, None
    num = numpr.find(ns.NUM_ID)
    lvl = numpr.find(ns.ILVL)
    return (
        num.get(ns.VAL) if num is not None else None,
        _level_index(lvl.get(ns.VAL)) if lvl is not None else None,
    )


@dataclass
class _Style:
    name: str
    based_on: str | None
    num_id: str | None
    ilvl: int | None
    outline: int | None
    bold: bool | None


class Styles:
    """Style lookups with `basedOn` inheritance, computed once per style id."""

    def __init__(self, root: Any | None) -> None:
        self._styles: dict[str, _Style] = {}
        self.default_paragraph: str | None = None
        self._cache: dict[tuple[str, str], Any] = {}
        if root is None:
            return
        for style in root.iterchildren(ns.STYLE):
            style_id = style.get(ns.STYLE_ID)
            if style_id is None:
                continue
            name_el = style.find(ns.NAME)
            based = style.find(ns.BASED_ON)
            ppr = style.find(ns.PPR)
            rpr = style.find(ns.RPR)
            num_id, ilvl = num_pr(ppr)
            outline = ppr.find(ns.OUTLINE_LVL) if ppr is not None else None
            bold = rpr.find(ns.B) if rpr is not None else None
            self._styles[style_id] = _Style(
                name=(name_el.get(ns.VAL, "") if name_el is not None else style_id).strip(),
                based_on=based.get(ns.VAL) if based is not None else None,
                num_id=num_id,
                ilvl=ilvl,
                outline=_int(outline.get(ns.VAL), 9) if outline is not None else None,
                bold=on(bold) if bold is not None else None,
            )
            if style.get(ns.TYPE) == "paragraph" and style.get(ns.DEFAULT) in ("1", "true"):
                self.default_paragraph = style_id

    def _chain(self, style_id: str | None) -> list[_Style]:
        chain: list[_Style] = []
        seen: set[str] = set()
        while style_id is not None and style_id in self._styles and style_id not in seen:
            seen.add(style_id)
            style = self._styles[style_id]
            chain.append(style)
            style_id = style.based_on
        return chain

    def name(self, style_id: str | None) -> str:
        """The style's name as stored (built-in names are English, e.g. `heading 1`)."""
        style = self._styles.get(style_id or "")
        return style.name if style is not None else (style_id or "")

    def heading_level(self, style_id: str | None) -> int | None:
        """1-9 for heading styles (by name or outline level, inherited), 1 for Title, else None."""
        key = ("heading", style_id or "")
        if key not in self._cache:
            level: int | None = None
            for style in self._chain(style_id):
                match = _HEADING_NAME.match(style.name)
                if match:
                    level = int(match[1])
                elif style.name.lower() == "title":
                    level = 1
                elif style.outline is not None:
                    level = style.outline + 1 if style.outline < 9 else None
                else:
                    continue
                break
            self._cache[key] = level
        result: int | None = self._cache[key]
        return result

    def numbering(self, style_id: str | None) -> tuple[str | None, int | None]:
        """(numId, ilvl) a paragraph inherits from its style, e.g. `List Number 2`."""
        key = ("num", style_id or "")
        if key not in self._cache:
            found: tuple[str | None, int | None] = (None, None)
            for style in self._chain(style_id):
                if style.num_id is not None:
                    found = (style.num_id, style.ilvl)
                    break
            self._cache[key] = found
        result: tuple[str | None, int | None] = self._cache[key]
        return result

    def bold(self, style_id: str | None) -> bool:
        """Whether text in this (paragraph or character) style is bold."""
        for style in self._chain(style_id):
            if style.bold is not None:
                return style.bold
        return False


@dataclass(frozen=True)
class _Level:
    fmt: str
    text: str
    start: int
    restart: int | None
    legal: bool
    style: str | None


@dataclass
class _Num:
    abstract: str
    starts: dict[int, int] = field(default_factory=dict)
    levels: dict[int, _Level] = field(default_factory=dict)


@dataclass(frozen=True)
class Marker:
    """A rendered list number: what a reader sees, and whether it counts (bullets do not)."""

    text: str
    ordered: bool


def _level(lvl: Any) -> tuple[int, _Level]:
    fmt = lvl.find(ns.NUM_FMT)
    text = lvl.find(ns.LVL_TEXT)
    start = lvl.find(ns.START)
    restart = lvl.find(ns.LVL_RESTART)
    style = lvl.find(ns.PSTYLE)
    return _level_index(lvl.get(ns.ILVL_ATTR)), _Level(
        fmt=fmt.get(ns.VAL, "decimal") if fmt is not None else "decimal",
        text=text.get(ns.VAL, "") if text is not None else "",
        start=_int(start.get(ns.VAL), 1) if start is not None else 1,
        restart=_int(restart.get(ns.VAL), 1) if restart is not None else None,
        legal=on(lvl.find(ns.IS_LGL)),
        style=style.get(ns.VAL) if style is not None else None,
    )


class Numbering:
    """Counts list items the way Word does and renders the number a reader sees."""

    def __init__(self, root: Any | None, styles: Styles) -> None:
        self._abstract: dict[str, dict[int, _Level]] = {}
        self._style_link: dict[str, str] = {}
        self._nums: dict[str, _Num] = {}
        self._counters: dict[str, list[int | None]] = {}
        self._styles = styles
        if root is None:
            return
        for abstract in root.iterchildren(ns.ABSTRACT_NUM):
            abstract_id = abstract.get(ns.ABSTRACT_NUM_ID, "")
            self._abstract[abstract_id] = dict(_level(lvl) for lvl in abstract.iterchildren(ns.LVL))
            link = abstract.find(ns.NUM_STYLE_LINK)
            if link is not None:
                self._style_link[abstract_id] = link.get(ns.VAL, "")
        for num in root.iterchildren(ns.NUM):
            abstract_el = num.find(ns.ABSTRACT_NUM_ID)
            entry = _Num(abstract=abstract_el.get(ns.VAL, "") if abstract_el is not None else "")
            for override in num.iterchildren(ns.LVL_OVERRIDE):
                ilvl = _level_index(override.get(ns.ILVL_ATTR))
                start = override.find(ns.START_OVERRIDE)
                if start is not None:
                    entry.starts[ilvl] = _int(start.get(ns.VAL), 1)
                lvl = override.find(ns.LVL)
                if lvl is not None:
                    entry.levels[ilvl] = _level(lvl)[1]
            self._nums[num.get(ns.NUM_ID_ATTR, "")] = entry

    def _levels(self, num: _Num) -> dict[int, _Level]:
        abstract_id = num.abstract
        for _ in range(3):  # numStyleLink: the abstract's levels live behind a style's list
            if abstract_id not in self._style_link:
                break
            linked_num = self._styles.numbering(self._style_link[abstract_id])[0]
            target = self._nums.get(linked_num or "")
            if target is None or target.abstract == abstract_id:
                break
            abstract_id = target.abstract
        levels = dict(self._abstract.get(abstract_id, {}))
        levels.update(num.levels)
        return levels

    def level_of_style(self, num_id: str, style_id: str | None) -> int:
        """The level whose `w:pStyle` names this style (how heading styles bind to levels)."""
        num = self._nums.get(num_id)
        if num is None or style_id is None:
            return 0
        for ilvl, level in sorted(self._levels(num).items()):
            if level.style == style_id:
                return ilvl
        return 0

    def next(self, num_id: str, ilvl: int) -> Marker | None:
        """Advance the counter of (numId, level) and render its marker; None if not a list."""
        num = self._nums.get(num_id)
        if num is None:
            return None
        levels = self._levels(num)
        if not levels:
            return None
        if ilvl not in levels:
            lower = [k for k in levels if k <= ilvl]
            ilvl = max(lower) if lower else min(levels)
        level = levels[ilvl]
        # Instances of one abstract list continue each other's count unless one restarts it.
        key = f"num:{num_id}" if num.starts else f"abstract:{num.abstract}"
        counters = self._counters.setdefault(key, [None] * 10)
        current = counters[ilvl]
        counters[ilvl] = self._start(num, levels, ilvl) if current is None else current + 1
        for deeper in range(ilvl + 1, 10):
            restart = levels[deeper].restart if deeper in levels else None
            if restart != 0:
                counters[deeper] = None
        for shallower in range(ilvl):
            if counters[shallower] is None:
                counters[shallower] = self._start(num, levels, shallower)
        if level.fmt == "bullet":
            return Marker("•", False)
        if level.fmt == "none" and "%" not in level.text:
            return None if not level.text.strip() else Marker(level.text.strip(), False)

        def render(match: re.Match[str]) -> str:
            k = int(match[1]) - 1
            value = counters[k] or 0
            fmt = levels[k].fmt if k in levels else "decimal"
            if level.legal or fmt not in _FORMATS:
                return f"{value:02d}" if fmt == "decimalZero" and not level.legal else str(value)
            return format_number(value, _FORMATS[fmt])

        return Marker(re.sub(r"%([1-9])", render, level.text).strip(), True)

    @staticmethod
    def _start(num: _Num, levels: dict[int, _Level], ilvl: int) -> int:
        if ilvl in num.starts:
            return num.starts[ilvl]
        return levels[ilvl].start if ilvl in levels else 1
