"""The openai backend: any OpenAI-compatible chat completions server, through the openai client.

The client's own retries are off: sopc retries itself so that it can honour Retry-After, stop at
once on faults no retry can fix, and say what to do about each fault.
"""

from __future__ import annotations

import email.utils
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sop_compiler.config import Settings
from sop_compiler.errors import ConfigError, GenerationError, redact_url
from sop_compiler.generate.llm import (
    ChatRequest,
    ChatResponse,
    FatalBackendError,
    LLMBackend,
    ResponseFormatUnsupported,
    RetryableError,
)
from sop_compiler.models import Usage

if TYPE_CHECKING:
    import openai

_PLACEHOLDER_KEY = "sk-no-key"  # local servers ignore the key, but the client needs one
_FORMAT_WORDS = (
    "response_format",
    "json_schema",
    "json_object",
    "structured output",
    "guided_json",
)
# httpx / httpx2 exception names for a URL no request can be sent to: retrying cannot help
_BAD_URL_CAUSES = frozenset({"UnsupportedProtocol", "InvalidURL"})
# the HTTP client logs every request's full URL (user info, query) at INFO level
_HTTP_LOGGERS = ("httpx", "httpx2")


class _ScrubLogs(logging.Filter):
    """Removes the base URL's credentials from the HTTP client's log lines."""

    def __init__(self, scrub: Callable[[str], str]) -> None:
        super().__init__()
        self._scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message, scrubbed; never drop it."""
        record.msg, record.args = self._scrub(record.getMessage()), None
        return True


class OpenAIBackend(LLMBackend):
    """Rewrites procedures with a chat model on OpenAI or any OpenAI-compatible server."""

    name = "openai"
    uses_model = True

    def __init__(self, settings: Settings, *, refresh: bool = False) -> None:
        super().__init__(settings, refresh=refresh)
        self.base_url = settings.base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = os.environ.get("OPENAI_API_KEY") or None
        if key is None and self.base_url is None:
            raise ConfigError(
                "no API key: set OPENAI_API_KEY, "
                "or set base_url/OPENAI_BASE_URL for a local server",
                hint="or use --backend offline",
            )
        self._api_key = key or _PLACEHOLDER_KEY
        self._url_secrets = _url_secrets(self.base_url) if self.base_url else []
        # host[:port] only: a base URL's user:password@ and ?query must never reach a message
        self.host = _host(self.base_url) if self.base_url else "api.openai.com"
        if self.base_url and self.host is None:
            raise ConfigError(self._bad_url_message(), hint=_URL_HINT)
        self._client: openai.AsyncOpenAI | None = None
        self._log_filter: _ScrubLogs | None = None
        # prepare() builds the client in a worker thread while the first request may want it
        self._client_lock = threading.Lock()

    def secrets(self) -> list[str]:
        """The API key and the base URL's credentials, so that no message can carry them."""
        key = [self._api_key] if self._api_key != _PLACEHOLDER_KEY else []
        return key + self._url_secrets

    def _bad_url_message(self, cause: object = None) -> str:
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        shown = _redacted(self.base_url or "")
        return self.scrub(f"base URL {shown!r} is not a valid http(s) URL{detail}")

    def prepare(self) -> None:
        """Import openai (about 0.5 s) and build the client while SOPs are read."""
        self._get_client()

    def client(self) -> openai.AsyncOpenAI:
        """The openai client (built on first use), for the Batch API (generate/batch.py)."""
        return self._get_client()

    def _get_client(self) -> openai.AsyncOpenAI:
        with self._client_lock:
            return self._build_client()

    def _build_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            import openai

            base_url, query = _split_query(self.base_url) if self.base_url else (None, None)
            if self._url_secrets and self._log_filter is None:
                self._log_filter = _ScrubLogs(self.scrub)
                for name in _HTTP_LOGGERS:
                    logging.getLogger(name).addFilter(self._log_filter)
            # the client would paste a query string into the middle of each request path, so
            # gateways' `?api-version=...` goes in as a default query parameter instead
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=base_url,
                default_query=query,
                timeout=self.settings.timeout,
                max_retries=0,
            )
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._log_filter is not None:
            for name in _HTTP_LOGGERS:
                logging.getLogger(name).removeFilter(self._log_filter)
            self._log_filter = None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One chat completion; faults become RetryableError, FatalBackendError, GenerationError."""
        import openai
        from openai.types.chat import ChatCompletion

        try:
            client = self._get_client()
        except Exception as exc:  # the client parses the base URL when it is built
            raise FatalBackendError(self._bad_url_message(exc), hint=_URL_HINT) from None
        try:
            # client.post skips the SDK's per-request walk of the typed parameters (the schema and
            # the messages), which costs milliseconds of CPU per call and limits throughput.
            completion = await client.post(
                "/chat/completions", body=request.payload(), cast_to=ChatCompletion
            )
        except openai.APITimeoutError:
            raise RetryableError(
                f"no answer from {self.host} within {self.settings.timeout:g}s "
                "(raise `timeout` in sopc.toml or SOPC_TIMEOUT if the model is slow)"
            ) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            if type(cause).__name__ in _BAD_URL_CAUSES:
                raise FatalBackendError(self._bad_url_message(cause), hint=_URL_HINT) from None
            raise RetryableError(
                self.scrub(f"connection to {self.host} failed: {type(cause).__name__}: {cause}")
            ) from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc, request) from None
        choices = (
            getattr(completion, "choices", None) if isinstance(completion, ChatCompletion) else None
        )
        if not choices:
            raise GenerationError(
                f"{self.host} did not answer like an OpenAI-compatible server (no choices): "
                "check the base URL (it usually ends in /v1)"
            )
        choice = choices[0]
        message = choice.message
        usage = completion.usage
        details = usage.prompt_tokens_details if usage else None
        return ChatResponse(
            content=message.content,
            finish_reason=choice.finish_reason,
            refusal=getattr(message, "refusal", None),
            usage=Usage(
                prompt_tokens=usage.prompt_tokens if usage else 0,
                cached_prompt_tokens=(details.cached_tokens or 0) if details else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
            ),
        )

    def _status_error(self, exc: openai.APIStatusError, request: ChatRequest) -> GenerationError:
        """Map an HTTP error to what sopc does about it, with a message that says what to fix."""
        status = exc.status_code
        detail = self.scrub(_error_message(exc.body) or "")
        code = exc.code or _error_field(exc.body, "code") or _error_field(exc.body, "type")
        said = f": {detail}" if detail else ""
        if status == 401:
            return FatalBackendError(f"401 Unauthorized from {self.host}: check OPENAI_API_KEY")
        if status == 403:
            return FatalBackendError(
                f"403 Forbidden from {self.host}: the key may not use model '{request.model}' "
                f"(check OPENAI_API_KEY, its project, and --model){said}"
            )
        if status == 404:
            return FatalBackendError(
                f"model '{request.model}' not found on {self.host}: check --model "
                "(and that the base URL ends in /v1)"
            )
        if status == 429 and code == "insufficient_quota":
            return FatalBackendError(
                f"429 insufficient_quota from {self.host}: add credit or use another key"
            )
        if status in (408, 409, 429) or status >= 500:
            reason = {408: "Request Timeout", 409: "Conflict", 429: "Too Many Requests"}.get(
                status, "server error"
            )
            return RetryableError(
                f"{status} {reason} from {self.host}{said}", retry_after=_retry_after(exc)
            )
        if (
            status == 400
            and request.response_format != "text"
            and any(word in detail.lower() for word in _FORMAT_WORDS)
        ):
            return ResponseFormatUnsupported(f"400 Bad Request from {self.host}{said}")
        hint = (
            " (the model may not accept images: set vision = false)"
            if "image" in detail.lower()
            else ""
        )
        return GenerationError(f"{status} from {self.host}{said}{hint}")


_URL_HINT = "set base_url / OPENAI_BASE_URL to a URL such as http://localhost:8000/v1"


def _host(url: str) -> str | None:
    """`host[:port]` of an http(s) URL, without user info; None if it is not such a URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None else host


def _split_query(url: str) -> tuple[str, dict[str, object] | None]:
    """The URL without its query and fragment, and the query as parameters (None if none)."""
    parts = urlsplit(url.strip())
    params: dict[str, object] = dict(parse_qsl(parts.query, keep_blank_values=True))
    return parts._replace(query="", fragment="").geturl(), params or None


def _redacted(url: str) -> str:
    """`url` without user info, query or fragment, even when it is malformed."""
    return redact_url(url)


def _url_secrets(url: str) -> list[str]:
    """Parts of the base URL that may be credentials: user info, password, query and its values."""
    head, _, rest = url.strip().partition("://")
    authority = (rest if rest else head).split("/", 1)[0]
    whole: list[str] = []  # always scrubbed
    parts: list[str] = []  # scrubbed when long enough to be a secret rather than ordinary text
    if "@" in authority:
        userinfo = authority.rpartition("@")[0]
        whole.append(userinfo)
        parts.append(userinfo.partition(":")[2])
    query = urlsplit(url.strip()).query
    if query:
        whole.append(query)
        parts += [value for _, value in parse_qsl(query, keep_blank_values=True)]
    found = {v for v in whole if len(v) >= 2} | {v for v in parts if len(v) >= 8}
    found |= {unquote(value) for value in found}
    return sorted(found, key=lambda v: (-len(v), v))  # longest first: no partial replacement


def _error_object(body: object) -> dict[str, Any] | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        return inner if isinstance(inner, dict) else body
    return None


def _error_field(body: object, name: str) -> str | None:
    error = _error_object(body)
    value = error.get(name) if error else None
    return str(value) if value is not None else None


def _error_message(body: object) -> str | None:
    """The server's own one-line explanation, shortened."""
    message = _error_field(body, "message")
    if message is None and isinstance(body, str):
        message = body
    return " ".join(message.split())[:300] if message else None


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds the server asks us to wait (retry-after-ms, retry-after seconds or HTTP date)."""
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        parsed = email.utils.parsedate_tz(value)
        if parsed is not None:
            return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None
