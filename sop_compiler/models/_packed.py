"""The text blocks of one document, packed into a few arrays (issue 17).

A big Markdown or text SOP makes a block per line. As a pydantic model each such block cost about
860 bytes (two models, two dicts, five small objects) for a line of 75 characters: a 50 MB file
became 600 MB of blocks. `Rows` keeps what a heading, paragraph, list item or quote holds in
columns, its text in long shared strings, about 35 bytes a block besides the text; the block
objects the stages use are small views of one row each (see `TextBlock` in models/document.py).

Only the readers' `BlockBuilder` packs blocks. A block made any other way (a PDF's, a test's)
holds its own pydantic record, and reads the same.
"""

from __future__ import annotations

import threading
from array import array
from typing import Any

# Characters gathered before they are joined into one string: a block's text is a slice of one.
_CHUNK = 1 << 16
# A text this long is kept as it is: a slice is a copy, and stages read a block's text often.
_LONG = 1 << 12
# The fields set of the provenance the readers build, shared by every packed block's.
_PROV_SET = {"file", "paragraph", "heading_path"}
_identity = id  # `Rows.add` takes a block's `id`
_setattr = object.__setattr__


class Rows:
    """Columns of packed text blocks: row `r` is the `r`-th block packed here."""

    __slots__ = (
        "_bboxes",
        "_chunk",
        "_chunks",
        "_fields",
        "_id",
        "_ids",
        "_level",
        "_lock",
        "_long",
        "_marker",
        "_numbers",
        "_ordered",
        "_pages",
        "_paragraph",
        "_pending",
        "_pending_first",
        "_pending_size",
        "_place",
        "_place_index",
        "_places",
        "_size",
        "_start",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()  # a row is added by many appends; one writer at a time
        self._chunks: list[str] = []
        self._pending: list[str] = []  # the next chunk's pieces, joined when it is read or full
        self._pending_size = 0
        self._pending_first = 0  # the row of the first piece gathered
        self._chunk = array("i")  # the chunk a row's marker and text are in; -1: in _long
        self._start = array("i")  # where they start in it
        self._size = array("i")  # len(marker) + len(text)
        self._marker = array("i")  # len(marker): a list item's "1." comes before its text
        self._level = array("i")
        self._ordered = array("b")
        self._id = array("i")  # n of an id `b{n}`; -1 when the id is spelt otherwise (in _ids)
        self._paragraph = array("i")  # -1 for None
        self._place = array("i")  # index in _places: the file and heading path
        self._places: list[tuple[str, list[str]]] = []
        self._place_index: dict[tuple[str, int], int] = {}
        self._ids: dict[int, str] = {}
        self._long: dict[int, tuple[str, str]] = {}  # marker and text of a row of a long text
        self._numbers: dict[int, str] = {}  # a heading's printed number, when it has one
        self._pages: dict[int, int] = {}
        self._bboxes: dict[int, tuple[float, float, float, float]] = {}
        self._fields: dict[tuple[str, ...], set[str]] = {}

    def __len__(self) -> int:
        return len(self._size)

    def add(
        self,
        *,
        id: str,
        file: str,
        paragraph: int | None,
        heading_path: list[str],
        text: str,
        marker: str = "",
        level: int = 0,
        ordered: bool = False,
        number: str | None = None,
        page: int | None = None,
        bbox: tuple[float, float, float, float] | None = None,
    ) -> int:
        """Pack one block and return its row. Blocks that share a heading path share its list."""
        with self._lock:
            row = len(self._size)
            if len(text) >= _LONG:
                if self._pending:
                    self._seal()
                self._pending_first = row + 1  # the rows gathered are those after it
                self._long[row] = (marker, text)
                self._chunk.append(-1)
                self._start.append(0)
            else:
                if self._pending_size >= _CHUNK:
                    self._seal()
                self._chunk.append(len(self._chunks))
                self._start.append(self._pending_size)
                self._pending.append(marker)
                self._pending.append(text)
                self._pending_size += len(marker) + len(text)
            self._size.append(len(marker) + len(text))
            self._marker.append(len(marker))
            self._level.append(level)
            self._ordered.append(ordered)
            self._set_id(row, id, new=True)
            self._paragraph.append(-1 if paragraph is None else paragraph)
            # Keyed by the list's identity (the builder makes a new list for every heading); the
            # list is held in _places, so its id is not reused.
            key = (file, _identity(heading_path))
            place = self._place_index.get(key)
            if place is None:
                place = self._place_index[key] = len(self._places)
                self._places.append((file, heading_path))
            self._place.append(place)
            if number is not None:
                self._numbers[row] = number
            if page is not None:
                self._pages[row] = page
            if bbox is not None:
                self._bboxes[row] = bbox
            return row

    def _set_id(self, row: int, value: str, *, new: bool = False) -> None:
        digits = value[1:]
        plain = value[:1] == "b" and len(digits) <= 9 and digits.isascii() and digits.isdigit()
        n = int(digits) if plain else -1
        if n >= 0 and str(n) != digits:  # "b007" is not b7
            n = -1
        if new:
            self._id.append(n)
        else:
            self._id[row] = n
            self._ids.pop(row, None)
        if n < 0:
            self._ids[row] = value

    def _seal(self) -> None:
        self._chunks.append("".join(self._pending))
        self._pending = []
        self._pending_size = 0
        self._pending_first = len(self._size)

    # One method per field, named as the field: what `TextBlock`'s attributes read. Reading
    # changes nothing (rows are read from many threads): a row still gathered is read from its
    # pieces, under the writers' lock.

    def _read(self, row: int, text: bool) -> str:
        """A row's text (or its marker)."""
        chunk = self._chunk[row]
        if chunk < 0:
            return self._long[row][text]
        if chunk >= len(self._chunks):
            with self._lock:  # still gathered, unless a writer seals it meanwhile
                if chunk == len(self._chunks):
                    return self._pending[2 * (row - self._pending_first) + text]
        start = self._start[row]
        marker_end = start + self._marker[row]
        piece = slice(marker_end, start + self._size[row]) if text else slice(start, marker_end)
        return self._chunks[chunk][piece]

    def text(self, row: int) -> str:
        return self._read(row, True)

    def marker(self, row: int) -> str:
        return self._read(row, False)

    def id(self, row: int) -> str:
        n = self._id[row]
        return f"b{n}" if n >= 0 else self._ids[row]

    def level(self, row: int) -> int:
        return self._level[row]

    def ordered(self, row: int) -> bool:
        return bool(self._ordered[row])

    def number(self, row: int) -> str | None:
        return self._numbers.get(row)

    def prov(self, row: int) -> Any:
        from sop_compiler.models.document import Provenance

        file, path = self._places[self._place[row]]
        paragraph = self._paragraph[row]
        # What `Provenance.model_construct` makes, without its walk over the fields: stages
        # read a block's provenance often, and a packed block makes it each time.
        prov = Provenance.__new__(Provenance)
        values = {
            "file": file,
            "page": self._pages.get(row),
            "paragraph": None if paragraph < 0 else paragraph,
            "heading_path": path,
            "bbox": self._bboxes.get(row),
        }
        _setattr(prov, "__dict__", values)
        _setattr(prov, "__pydantic_fields_set__", _PROV_SET)
        _setattr(prov, "__pydantic_extra__", None)
        _setattr(prov, "__pydantic_private__", None)
        return prov

    def fields_set(self, names: tuple[str, ...]) -> set[str]:
        """One set of given field names for every record made of these rows."""
        found = self._fields.get(names)
        if found is None:
            found = self._fields[names] = set(names)
        return found

    def set(self, row: int, name: str, value: Any) -> None:
        """Change one field of a row (readers renumber ids; nothing else changes blocks)."""
        with self._lock:
            self._set(row, name, value)

    def _set(self, row: int, name: str, value: Any) -> None:
        if name == "id":
            self._set_id(row, value)
        elif name == "level":
            self._level[row] = value
        elif name == "ordered":
            self._ordered[row] = bool(value)
        elif name == "number":
            if value is None:
                self._numbers.pop(row, None)
            else:
                self._numbers[row] = value
        else:
            raise AttributeError(f"a packed block's {name} is not changed in place; use model_copy")
