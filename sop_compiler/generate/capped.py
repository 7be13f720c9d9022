"""A cap on the bytes read from any one HTTP answer, counted after decompression.

A server may answer with anything: a body of gigabytes, or a small gzip body that inflates to
one (a gzip bomb). Every answer the openai client reads (chat completions streamed or whole,
error bodies, GET /models) passes through `capped_client`'s response hook: sopc inflates the
body itself, in bounded pieces, and stops with `AnswerRefused` once `limit` bytes have come out,
so the memory one answer takes is bounded by the limit, never by what the server sends.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

__all__ = ["AnswerRefused", "capped_client"]

_PIECE = 1 << 20  # bytes inflated per step: a bomb never inflates in one call
_ENCODINGS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class AnswerRefused(Exception):
    """An answer body sopc will not read: larger than the limit, or in an unknown encoding."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def capped_client(limit: int, **kwargs: Any) -> Any:
    """openai's default async HTTP client, reading at most `limit` decoded bytes per answer.

    Returns an `httpx` (or `httpx2`, whichever the installed openai uses) `AsyncClient`.
    """
    import importlib

    import openai

    base: Any = openai.DefaultAsyncHttpxClient
    # The HTTP library openai is built on (httpx or its successor httpx2): the stream wrapper
    # must be that library's AsyncByteStream.
    http = importlib.import_module(
        next(c for c in base.__mro__ if c.__name__ == "AsyncClient").__module__.split(".")[0]
    )

    class _Capped(http.AsyncByteStream):  # type: ignore[misc, name-defined]
        def __init__(self, raw: Any, wbits: int | None, path: str) -> None:
            self._raw, self._wbits, self._path = raw, wbits, path

        async def __aiter__(self) -> AsyncIterator[bytes]:
            inflate = zlib.decompressobj(self._wbits) if self._wbits is not None else None
            first, total = True, 0
            async for chunk in self._raw:
                if inflate is None:
                    pieces = [chunk]
                else:
                    try:
                        pieces = list(_inflate(inflate, chunk, limit - total + 1))
                    except zlib.error:
                        if not (first and self._wbits == zlib.MAX_WBITS):
                            raise AnswerRefused(self._path, "a corrupt compressed body") from None
                        # "deflate" is sent with and without the zlib header
                        inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                        pieces = list(_inflate(inflate, chunk, limit - total + 1))
                first = False
                for piece in pieces:
                    total += len(piece)
                    if total > limit:
                        raise AnswerRefused(self._path, _too_large(limit))
                    yield piece
            if inflate is not None and (rest := inflate.flush()):
                if total + len(rest) > limit:
                    raise AnswerRefused(self._path, _too_large(limit))
                yield rest

        async def aclose(self) -> None:
            await self._raw.aclose()

    async def cap(response: Any) -> None:
        path = str(response.request.url.path)
        said = response.headers.get("content-encoding", "")
        codings = [c.strip().lower() for c in said.split(",") if c.strip().lower() != "identity"]
        codings = [c for c in codings if c]
        if len(codings) > 1 or (codings and codings[0] not in _ENCODINGS):
            raise AnswerRefused(path, f"content encoding {said!r}, which sopc does not read")
        if codings:
            del response.headers["content-encoding"]  # inflated here, so the client must not
        wbits = _ENCODINGS[codings[0]] if codings else None
        response.stream = _Capped(response.stream, wbits, path)

    hooks = kwargs.pop("event_hooks", {})
    return base(
        event_hooks={**hooks, "response": [*hooks.get("response", []), cap]},
        headers={"Accept-Encoding": ", ".join(sorted(set(_ENCODINGS) - {"x-gzip"}))},
        **kwargs,
    )


def _inflate(inflate: Any, data: bytes, room: int) -> Iterator[bytes]:
    """`data` inflated in pieces of at most 1 MiB, stopping once `room` bytes came out."""
    out = 0
    piece = inflate.decompress(data, min(_PIECE, room))
    while piece:
        yield piece
        out += len(piece)
        if out >= room or not inflate.unconsumed_tail:
            break
        piece = inflate.decompress(inflate.unconsumed_tail, min(_PIECE, room - out))
        if not piece:
            break


def _too_large(limit: int) -> str:
    mib = limit / (1 << 20)
    size = f"{mib:g} MiB" if mib >= 1 else f"{limit} bytes"
    return f"the answer is larger than {size} (max_answer_mb); not read further"
