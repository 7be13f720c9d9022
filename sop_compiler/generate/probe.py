"""Cheap questions to an OpenAI-compatible server: which models it lists, how many slots it has.

Used at the start of a run (a model the server does not list is a warning, `--jobs` defaults to
the slots), to explain a 404, and by `sopc doctor`. Every answer is best effort: a server that
does not have the endpoint simply gives no answer (None), never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import openai


@dataclass(frozen=True)
class ModelList:
    """GET /models: the ids listed (None: no usable answer), or why the server is unreachable."""

    models: list[str] | None = None
    unreachable: str | None = None  # connection refused, unknown host: nobody answers there


async def list_models(client: openai.AsyncOpenAI, *, timeout: float = 10.0) -> ModelList:
    """The model ids the server lists at GET {base_url}/models."""
    import openai

    try:
        body = await client.get("/models", cast_to=object, options={"timeout": timeout})
    except openai.APIConnectionError as exc:
        cause = exc.__cause__ or exc
        if type(cause).__name__ == "ConnectError":
            return ModelList(unreachable=f"{type(cause).__name__}: {cause}")
        return ModelList()
    except openai.APIError:  # a status error, a timeout, an answer that is not JSON
        return ModelList()
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return ModelList()
    ids = [str(item["id"]) for item in data if isinstance(item, dict) and item.get("id")]
    return ModelList(models=sorted(ids))


def is_listed(model: str, models: list[str]) -> bool:
    """True when `models` holds `model` (Ollama lists `name:latest` and serves it as `name`)."""
    return model in models or f"{model}:latest" in models


def server_root(base_url: str) -> str:
    """The server's root URL: the base URL without its query and a trailing `/v1`."""
    root = base_url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


async def server_slots(
    client: openai.AsyncOpenAI, base_url: str, *, timeout: float = 10.0
) -> int | None:
    """Requests the server computes in parallel: llama.cpp's GET /props `total_slots`."""
    import openai

    try:
        body: Any = await client.get(
            f"{server_root(base_url)}/props", cast_to=object, options={"timeout": timeout}
        )
    except openai.APIError:
        return None
    slots = body.get("total_slots") if isinstance(body, dict) else None
    if isinstance(slots, int) and not isinstance(slots, bool) and 0 < slots <= 256:
        return slots
    return None
