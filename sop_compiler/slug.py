"""Safe names from hostile text: slugs for ids and file names, identifiers for emitted Python.

Every name that reaches an output path or generated code passes through here, so the guarantees
are strict: ASCII only, bounded length, never empty, never `.`/`..`, and long names that share a
prefix stay distinct (a short hash of the full text is appended when truncating).
"""

from __future__ import annotations

import hashlib
import keyword
import re
import unicodedata
from collections.abc import Iterable

__all__ = ["agent_key", "dedupe", "identifier", "slugify"]

_NON_SLUG = re.compile(r"[^a-z0-9]+")
_HASH_LEN = 8
_MIN_LEN = 2 * _HASH_LEN


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]


def slugify(text: str, *, max_len: int = 60, fallback: str = "procedure") -> str:
    """A lowercase ASCII slug of `text` (`[a-z0-9]` runs joined by single dashes).

    Unicode is transliterated (NFKD, accents dropped). Names longer than `max_len` are cut and
    given a hash suffix of the full text, so two long names never share a slug. Text with nothing
    sluggable gives `fallback` (with a hash suffix when the text had letters or digits, so that
    two different non-Latin titles still get different slugs).
    """
    max_len = max(max_len, _MIN_LEN)
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NON_SLUG.sub("-", ascii_text.lower()).strip("-")
    if not slug:
        base = _NON_SLUG.sub("-", fallback.lower()).strip("-") or "procedure"
        if not any(ch.isalnum() for ch in text):
            return base[:max_len].strip("-") or "procedure"[:max_len]
        slug = f"{base[: max_len - _HASH_LEN - 1].strip('-')}-{_digest(text)}"
        return slug
    if len(slug) > max_len:
        head = slug[: max_len - _HASH_LEN - 1].rstrip("-")
        slug = f"{head}-{_digest(text)}" if head else _digest(text)
    return slug


def identifier(text: str, *, reserved: Iterable[str] = ()) -> str:
    """A valid, non-keyword Python identifier from `text` (`refund-requests` -> `refund_requests`).

    Names that start with a digit get a leading `_`; keywords, soft keywords and any name in
    `reserved` (e.g. `agents`, the SDK's import name) get a trailing `_`.
    """
    name = slugify(text).replace("-", "_")
    if name[0].isdigit():
        name = f"_{name}"
    taken = set(reserved)
    while keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in taken:
        name = f"{name}_"
    return name


def dedupe(names: Iterable[str]) -> list[str]:
    """The names in order, later repeats suffixed `-2`, `-3`, ... so that all are unique."""
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}-{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


def agent_key(name: str) -> str:
    """How a handoff target names an agent: case, separators and a trailing `agent` ignored.

    `tech_support`, `Tech Support` and `Tech-Support agent` are the same agent; validate and
    emit both match handoff targets with this key.
    """
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    words = [word for word in _NON_SLUG.split(text.lower()) if word]
    if len(words) > 1 and words[-1] == "agent":
        words.pop()
    return " ".join(words)
