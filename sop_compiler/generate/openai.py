"""The openai backend: any OpenAI-compatible chat completions server, through the openai client.

The client's own retries are off: sopc retries itself so that it can honour Retry-After, stop at
once on faults no retry can fix, and say what to do about each fault.

Answers from a base URL are streamed: a request times out when no token arrives for
`idle_timeout` seconds, not because a slow local model takes long (`timeout` caps the total).
A local server keeps computing an abandoned answer, so a timeout against it is not retried: the
retry would only queue behind it.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sop_compiler.config import Settings
from sop_compiler.errors import ConfigError, GenerationError, redact_url
from sop_compiler.generate.capped import AnswerRefused, capped_client
from sop_compiler.generate.llm import (
    ChatRequest,
    ChatResponse,
    FatalBackendError,
    LLMBackend,
    ResponseFormatUnsupported,
    RetryableError,
    VisionUnsupported,
)
from sop_compiler.generate.stream import StreamTimeout
from sop_compiler.models import Usage

if TYPE_CHECKING:
    import openai

log = logging.getLogger("sop_compiler.generate")

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
_OPENAI_HOST = "api.openai.com"
# a server's words for "this model takes no images" (llama.cpp answers 500, others 400)
_NO_IMAGE = re.compile(
    r"image.{0,40}(not supported|unsupported|not allowed|not enabled|cannot|can't|disabled)"
    r"|(does not|doesn't|cannot|can't|not) (support|accept|handle|process).{0,30}image"
    r"|(multimodal|vision|mmproj).{0,40}(not|unsupported|disabled)",
    re.IGNORECASE,
)
_PROBE_TIMEOUT = 10.0  # seconds for GET /models and /props at the start of a run


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
        given = settings.base_url or os.environ.get("OPENAI_BASE_URL") or None
        # sopc.toml and --base-url refuse user info (config.py); OPENAI_BASE_URL may hold it.
        # The HTTP client would send it as Basic auth in place of the key, so it is never used:
        # every request, the probes and `sopc doctor` included, goes to the URL without it.
        self.base_url = _without_userinfo(given) if given else None
        key = os.environ.get("OPENAI_API_KEY") or None
        if key is None and self.base_url is None:
            raise ConfigError(
                "no API key: set OPENAI_API_KEY, "
                "or set base_url/OPENAI_BASE_URL for a local server",
                hint="or use --backend offline",
            )
        self._api_key = key or _PLACEHOLDER_KEY
        self._url_secrets = _url_secrets(given) if given else []
        # host[:port] only: a base URL's user:password@ and ?query must never reach a message
        self.host = _host(self.base_url) if self.base_url else "api.openai.com"
        if self.base_url and self.host is None:
            raise ConfigError(self._bad_url_message(), hint=_URL_HINT)
        self._client: openai.AsyncOpenAI | None = None
        self._log_filter: _ScrubLogs | None = None
        # prepare() builds the client in a worker thread while the first request may want it
        self._client_lock = threading.Lock()
        cloud = self.host == _OPENAI_HOST
        self.local = settings.local if settings.local is not None else is_local_url(self.base_url)
        self.streams = settings.stream if settings.stream is not None else not cloud
        self.default_max_tokens = not cloud
        # api.openai.com's reasoning models take max_completion_tokens only
        self._tokens_field = "max_completion_tokens" if cloud else "max_tokens"
        self.slots: int | None = None  # the server's parallel slots, when it reports them
        self.listed: list[str] | None = None  # the models GET /models lists, when it answers
        self._probed: asyncio.Future[None] | None = None
        self._reached = False  # True once any request got an HTTP answer
        self._unreachable: FatalBackendError | None = None  # found by the start-of-run probe
        self._usage_chunk = True  # ask streams for usage; off once a server rejects the option
        if given and self.base_url != given.strip():
            self.notes.append(
                f"the base URL {_redacted(given)!r} holds a user name or password: left out, "
                "only OPENAI_API_KEY is sent"
            )

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
        """The openai client (built on first use), for the Batch API and `sopc doctor`."""
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
                # no answer is read past max_answer_mb, compressed or not (capped.py)
                http_client=capped_client(int(self.settings.max_answer_mb * (1 << 20))),
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

    async def concurrency(self) -> int:
        """`jobs` when set; else the server's parallel slots, else 1 for a local server."""
        await self.probe()
        if "jobs" in self.settings.model_fields_set:
            return self.settings.jobs
        if self.slots:
            return self.slots
        return 1 if self.local else self.settings.jobs

    async def probe(self) -> None:
        """Once per run: is the server there, does it list the model, how many slots has it."""
        if self.base_url is None:
            return  # api.openai.com: the first request says all of it
        if self._probed is None:
            self._probed = asyncio.ensure_future(self._probe())
        await asyncio.shield(self._probed)

    async def _probe(self) -> None:
        from sop_compiler.generate.probe import is_listed, list_models, server_slots

        try:
            client = self._get_client()
        except Exception:  # the first request reports the base URL
            return
        found, slots = await asyncio.gather(
            list_models(client, timeout=_PROBE_TIMEOUT),
            server_slots(client, self.base_url or "", timeout=_PROBE_TIMEOUT),
        )
        if found.unreachable is not None:
            self._unreachable = FatalBackendError(
                self.scrub(f"cannot reach {self.host}: {found.unreachable}"), hint=_DEAD_HINT
            )
            return
        self._reached = True
        self.listed, self.slots = found.models, slots
        model = self.settings.model
        if self.listed and not is_listed(model, self.listed):
            note = self.scrub(
                f"{self.host} does not list model '{model}' (it lists: "
                f"{', '.join(self.listed[:5])}{' ...' if len(self.listed) > 5 else ''}): "
                "it may answer with another model; check --model"
            )
            self.notes.append(note)
            log.warning("%s", note)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One chat completion; faults become RetryableError, FatalBackendError, GenerationError."""
        import openai

        if self._unreachable is not None:
            raise self._unreachable
        try:
            client = self._get_client()
        except Exception as exc:  # the client parses the base URL when it is built
            raise FatalBackendError(self._bad_url_message(exc), hint=_URL_HINT) from None
        body = request.payload()
        if "max_tokens" in body and self._tokens_field != "max_tokens":
            body[self._tokens_field] = body.pop("max_tokens")
        try:
            if self.streams:
                response = await self._streamed(client, body)
            else:
                response = await self._whole(client, body)
        except StreamTimeout as exc:
            raise self._timeout_error(idle=exc.idle) from None
        except AnswerRefused as exc:  # a streamed body (the client wraps a whole one, below)
            raise self._refused(exc) from None
        except openai.APITimeoutError:
            raise self._timeout_error(idle=False) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            if isinstance(cause, AnswerRefused):
                raise self._refused(cause) from None
            if type(cause).__name__ in _BAD_URL_CAUSES:
                raise FatalBackendError(self._bad_url_message(cause), hint=_URL_HINT) from None
            message = self.scrub(
                f"connection to {self.host} failed: {type(cause).__name__}: {cause}"
            )
            # refused or unknown host before any answer: no server there, every request would
            # fail the same way (after a server answered, it may be restarting: retry)
            refused = type(cause).__name__ == "ConnectError"
            if refused and not self._reached:
                raise FatalBackendError(message, hint=_DEAD_HINT) from None
            raise RetryableError(message, fatal_when_exhausted=refused) from None
        except openai.APIStatusError as exc:
            self._reached = True
            if self._rejects_stream_options(exc):
                self._usage_chunk = False  # for the rest of the run; usage is then not known
                log.info("%s rejects stream_options; streaming without usage", self.host)
                return await self.complete(request)
            raise await self._status_error(exc, request) from None
        except openai.APIError as exc:  # an error event inside the stream (llama.cpp sends them)
            raise GenerationError(
                self.scrub(f"{self.host} ended the answer with an error: {_one_line(exc.message)}")
            ) from None
        except Exception as exc:
            # reading a stream's body raises the HTTP client's own errors (a dropped connection)
            if not any(cls.__name__ == "TransportError" for cls in type(exc).__mro__):
                raise
            raise RetryableError(
                self.scrub(
                    f"connection to {self.host} dropped mid-answer: {type(exc).__name__}: {exc}"
                )
            ) from None
        self._reached = True
        return response

    async def _whole(self, client: openai.AsyncOpenAI, body: dict[str, Any]) -> ChatResponse:
        from openai.types.chat import ChatCompletion

        # client.post skips the SDK's per-request walk of the typed parameters (the schema and
        # the messages), which costs milliseconds of CPU per call and limits throughput.
        completion = await client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        return self._from_completion(completion)

    async def _streamed(self, client: openai.AsyncOpenAI, body: dict[str, Any]) -> ChatResponse:
        """The answer as a stream (see stream.py); one body from a server that ignores it."""
        from sop_compiler.generate.stream import Streamed, stream_chat

        def counted() -> None:
            self.tokens_received += 1

        answer = await stream_chat(
            client,
            body,
            idle_timeout=self.settings.idle_timeout,
            timeout=self.settings.timeout,
            include_usage=self._usage_chunk,
            on_chunk=counted,
        )
        if not isinstance(answer, Streamed):
            return self._from_completion(answer)
        if answer.finish_reason is None and answer.content is None:
            raise GenerationError(
                f"{self.host} sent an empty stream (no choices): "
                "check the base URL (it usually ends in /v1), or set stream = false"
            )
        return ChatResponse(
            content=answer.content,
            finish_reason=answer.finish_reason,
            refusal=answer.refusal,
            usage=_usage(answer.usage),
        )

    def _from_completion(self, completion: object) -> ChatResponse:
        from openai.types.chat import ChatCompletion

        choices = (
            getattr(completion, "choices", None) if isinstance(completion, ChatCompletion) else None
        )
        if not isinstance(completion, ChatCompletion) or not choices:
            raise GenerationError(
                f"{self.host} did not answer like an OpenAI-compatible server (no choices): "
                "check the base URL (it usually ends in /v1)"
            )
        choice = choices[0]
        message = choice.message
        return ChatResponse(
            content=message.content,
            finish_reason=choice.finish_reason,
            refusal=getattr(message, "refusal", None),
            usage=_usage(completion.usage),
        )

    def _rejects_stream_options(self, exc: openai.APIStatusError) -> bool:
        """An older gateway's 400 for `stream_options` (asked for the usage chunk)."""
        detail = _error_message(exc.body) or ""
        return (
            self.streams
            and self._usage_chunk
            and exc.status_code in (400, 422)
            and "stream_options" in detail
        )

    def _refused(self, exc: AnswerRefused) -> GenerationError:
        """An answer too large to read (or in an unknown encoding): not retried, it would be
        the same again."""
        return GenerationError(self.scrub(f"{self.host}{exc.path}: {exc.reason}"))

    def _timeout_error(self, *, idle: bool) -> GenerationError:
        """A timeout: retried against a cloud endpoint, not against a busy local server."""
        if idle and self.streams:
            what = (
                f"no token from {self.host} for {self.settings.idle_timeout:g}s "
                "(raise `idle_timeout` in sopc.toml or SOPC_IDLE_TIMEOUT if the model is slow "
                "to start answering)"
            )
        else:
            what = (
                f"no answer from {self.host} within {self.settings.timeout:g}s "
                "(raise `timeout` in sopc.toml or SOPC_TIMEOUT if the model is slow)"
            )
        if self.local:
            return GenerationError(
                f"{what}; not retried: a local server is still busy with the abandoned answer"
            )
        return RetryableError(what)

    async def _status_error(
        self, exc: openai.APIStatusError, request: ChatRequest
    ) -> GenerationError:
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
            return await self._not_found(request, code=code, detail=detail)
        if status == 429 and code == "insufficient_quota":
            return FatalBackendError(
                f"429 insufficient_quota from {self.host}: add credit or use another key"
            )
        if status >= 400 and _NO_IMAGE.search(detail) and _has_images(request):
            return VisionUnsupported(f"{status} from {self.host}{said}")
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

    async def _not_found(
        self, request: ChatRequest, *, code: str | None, detail: str
    ) -> FatalBackendError:
        """A 404: the model, or the base URL's path? GET /models tells them apart."""
        from sop_compiler.generate.probe import is_listed, list_models

        model = request.model
        said_model = code == "model_not_found" or (model in detail and "model" in detail.lower())
        listed = None if said_model else (await list_models(self._get_client())).models
        if said_model or (listed and not is_listed(model, listed)):
            known = f" (it lists: {', '.join(listed[:5])})" if listed else ""
            return FatalBackendError(
                f"model '{model}' not found on {self.host}{known}: check --model "
                "(and that the base URL ends in /v1)"
            )
        shown = _redacted(self.base_url or "")
        where = (
            f"it lists model '{model}', so the path is wrong"
            if listed
            else "GET /models gives no model list either"
        )
        return FatalBackendError(
            self.scrub(
                f"404 Not Found from {self.host} for {shown.rstrip('/')}/chat/completions "
                f"({where}): check the base URL's path (it usually ends in /v1)"
            ),
            hint=_URL_HINT,
        )


_URL_HINT = "set base_url / OPENAI_BASE_URL to a URL such as http://localhost:8000/v1"
_DEAD_HINT = "is the server running? check base_url / OPENAI_BASE_URL (`sopc doctor` checks it)"


def is_local_url(url: str | None) -> bool:
    """True for a loopback, private-network or link-local host (and `localhost`, `*.local`)."""
    host = _host(url) if url else None
    if host is None:
        return False
    name = urlsplit(url.strip()).hostname or "" if url else ""
    name = name.rstrip(".").lower()
    if name in ("localhost", "host.docker.internal") or name.endswith((".localhost", ".local")):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_private or address.is_link_local


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _has_images(request: ChatRequest) -> bool:
    return any(
        not isinstance(message.content, str)
        and any(part.type == "image_url" for part in message.content)
        for message in request.messages
    )


def _usage(usage: Any) -> Usage:
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    return Usage(
        prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
        cached_prompt_tokens=(details.cached_tokens or 0) if details else 0,
        completion_tokens=(usage.completion_tokens or 0) if usage else 0,
    )


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


def _without_userinfo(url: str) -> str:
    """`url` without `user:password@` in its authority (malformed URLs too); the rest unchanged."""
    url = url.strip()
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    authority = rest[:cut].rpartition("@")[2]
    return f"{head}{sep}{authority}{rest[cut:]}"


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
