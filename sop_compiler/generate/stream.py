"""One streamed chat completion, given up on when the server goes silent.

A slow local model is not a fault: a stream that keeps sending tokens runs until `timeout` (a
generous cap on the total); one that sends nothing for `idle_timeout` seconds, the first token
included, is abandoned. Closing the stream drops the connection, so the server can stop
computing the answer.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletion

__all__ = ["StreamTimeout", "Streamed", "stream_chat"]

_T = TypeVar("_T")


class StreamTimeout(Exception):
    """The stream went silent for `idle_timeout` (`idle`), or ran past the total `timeout`."""

    def __init__(self, *, idle: bool) -> None:
        super().__init__("idle" if idle else "total")
        self.idle = idle


@dataclass(frozen=True)
class Streamed:
    """A streamed answer, joined: its text, why it stopped, a refusal, and the usage chunk."""

    content: str | None
    finish_reason: str | None
    refusal: str | None
    usage: Any  # the final chunk's usage (openai CompletionUsage), None when not sent
    chunks: int  # content chunks received


async def stream_chat(
    client: openai.AsyncOpenAI,
    body: dict[str, Any],
    *,
    idle_timeout: float,
    timeout: float,
    include_usage: bool = True,
    on_chunk: Callable[[], None] = lambda: None,
) -> Streamed | ChatCompletion | None:
    """POST /chat/completions as a stream; `on_chunk()` after each content chunk.

    `include_usage` asks for the usage chunk (`stream_options`, which some gateways reject).

    Returns the joined stream, or the ChatCompletion of a server that ignored `stream` and
    answered with one body (None when that body is not a chat completion).

    Raises:
        StreamTimeout: no chunk for `idle_timeout` seconds, or past `timeout` in total.
    """
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    async def timed(awaitable: Awaitable[_T]) -> _T:
        wait = max(0.0, min(idle_timeout, deadline - loop.time()))
        try:
            if sys.version_info >= (3, 11):  # no task per chunk, unlike wait_for on 3.11
                async with asyncio.timeout(wait):
                    return await awaitable
            return await asyncio.wait_for(awaitable, wait)
        except asyncio.TimeoutError:
            raise StreamTimeout(idle=deadline - loop.time() > 0.001) from None

    stream = await timed(
        client.post(
            "/chat/completions",
            body={
                **body,
                "stream": True,
                **({"stream_options": {"include_usage": True}} if include_usage else {}),
            },
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
        )
    )
    try:
        if "text/event-stream" not in stream.response.headers.get("content-type", ""):
            raw = await timed(stream.response.aread())
            try:
                return ChatCompletion.model_validate_json(raw)
            except ValueError:
                return None
        return await _join(stream.__aiter__(), timed, on_chunk)
    finally:
        # closing drops the connection: a server notices and stops computing the answer
        await stream.close()


async def _join(
    chunks: Any, timed: Callable[[Awaitable[Any]], Awaitable[Any]], on_chunk: Callable[[], None]
) -> Streamed:
    parts: list[str] = []
    refusal: list[str] = []
    finish: str | None = None
    usage: Any = None
    while True:
        try:
            chunk = await timed(chunks.__anext__())
        except StopAsyncIteration:
            break
        if getattr(chunk, "usage", None):
            usage = chunk.usage
        for choice in getattr(chunk, "choices", None) or []:
            delta = choice.delta
            if delta is not None and delta.content:
                parts.append(delta.content)
                on_chunk()
            if delta is not None and getattr(delta, "refusal", None):
                refusal.append(delta.refusal)
            if choice.finish_reason:
                finish = choice.finish_reason
    return Streamed(
        content="".join(parts) if parts else None,
        finish_reason=finish,
        refusal="".join(refusal) or None,
        usage=usage,
        chunks=len(parts),
    )
