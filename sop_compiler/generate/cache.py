"""The response cache: unchanged requests never cost a call and always give the same answer.

Entries live in `<cache_dir>/<key[:2]>/<key>.json`, keyed by the SHA-256 of the full request
(model, settings, messages including images, response format and schema) plus the prompt template
version. An entry holds the answer and its token usage, never headers, the API key or the base
URL's credentials (an answer that echoes them is stored scrubbed).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from sop_compiler.files import replace_file
from sop_compiler.generate import prompts
from sop_compiler.generate.llm import ChatRequest, ChatResponse
from sop_compiler.models import Usage

log = logging.getLogger("sop_compiler.generate")

CACHE_FORMAT = 1  # bump when the entry layout changes


class ResponseCache:
    """Answers by request hash in a folder; `refresh=True` skips reads but still writes."""

    def __init__(self, folder: Path, *, refresh: bool = False) -> None:
        self.folder = Path(folder)
        self.refresh = refresh
        self._write_failed = False
        # The API key and the base URL's credentials: an answer that echoes one is stored with
        # `***` in its place (the run sets them once the backend knows them).
        self.secrets: list[str] = []

    def key(self, request: ChatRequest) -> str:
        """SHA-256 of the canonical request, the prompt template version and the schema."""
        version = prompts.PROMPT_TEMPLATE_VERSION
        head = f"sopc-cache/{CACHE_FORMAT}\n{version}\n{prompts.schema_sha256()}\n"
        return hashlib.sha256((head + request.canonical_json()).encode()).hexdigest()

    def path(self, key: str) -> Path:
        """Where the entry for `key` lives."""
        return self.folder / key[:2] / f"{key}.json"

    def get(self, request: ChatRequest, *, key: str | None = None) -> ChatResponse | None:
        """The cached answer (usage counts one cached response, no tokens), or None.

        `key` is `self.key(request)` when the caller already has it (hashing is not free).
        """
        if self.refresh:
            return None
        path = self.path(key or self.key(request))
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            content = entry["content"]
            finish_reason = entry.get("finish_reason")
            if not isinstance(content, str) or entry.get("format") != CACHE_FORMAT:
                return None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            log.debug("ignoring unreadable cache entry %s", path.name)
            return None
        return ChatResponse(
            content=content,
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
            usage=Usage(cached_responses=1),
            cached=True,
        )

    def put(self, request: ChatRequest, response: ChatResponse, *, key: str | None = None) -> None:
        """Store an answer atomically; a cache that cannot be written only costs a warning."""
        key = key or self.key(request)
        entry = {
            "format": CACHE_FORMAT,
            "model": self._scrub(request.model),
            "content": None if response.content is None else self._scrub(response.content),
            "finish_reason": response.finish_reason,
            "usage": {
                "prompt_tokens": response.usage.prompt_tokens,
                "cached_prompt_tokens": response.usage.cached_prompt_tokens,
                "completion_tokens": response.usage.completion_tokens,
            },
        }
        try:
            self._ensure_folder()
            _write_atomic(
                self.path(key), json.dumps(entry, sort_keys=True, ensure_ascii=False, indent=1)
            )
        except OSError as exc:
            if not self._write_failed:
                log.warning(
                    "cannot write the response cache in %s: %s", self.folder, exc.strerror or exc
                )
                self._write_failed = True

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def _ensure_folder(self) -> None:
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True, exist_ok=True)
        ignore = self.folder / ".gitignore"
        if not ignore.exists():
            _write_atomic(ignore, "# created by sopc: the response cache is never committed\n*\n")


def _write_atomic(path: Path, text: str) -> None:
    """Write atomically; cache entries hold SOP text and stay private to the user."""
    replace_file(path, text.encode("utf-8"), mode=0o600)
