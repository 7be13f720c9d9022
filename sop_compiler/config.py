"""Settings: defaults < `sopc.toml` or `[tool.sopc]` < `SOPC_*` environment < command line.

The API key is never a setting: it is read from `OPENAI_API_KEY` at the moment the client is
built, so it cannot end up in a dumped config, the lock file, the cache or an error message.
"""

from __future__ import annotations

import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sop_compiler.errors import ConfigError, redact_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "AgentSettings",
    "BackendName",
    "Limits",
    "NetworkSettings",
    "Settings",
    "agent_group_for",
    "load_settings",
    "user_cache_dir",
]

BackendName = Literal["auto", "offline", "openai", "fake"]
# Settings that name files: relative values in a settings file mean "relative to that file".
_PATH_SETTINGS = ("output", "tools", "cache_dir", "scenarios")


def user_cache_dir() -> Path:
    """The user's cache folder for sopc (`~/.cache/sopc` on Linux), never the working folder."""
    from platformdirs import user_cache_path

    return user_cache_path("sopc", appauthor=False)


class Limits(BaseModel):
    """Size limits on input files; raise them in config when a real SOP needs it."""

    model_config = ConfigDict(extra="forbid")

    max_file_mb: float = Field(default=100, gt=0, description="Largest SOP file read, in MiB.")
    max_pages: int = Field(default=5000, gt=0, description="Most PDF pages read from one file.")
    max_unzipped_mb: float = Field(
        default=300, gt=0, description="Largest total uncompressed size of a .docx."
    )
    max_zip_ratio: float = Field(
        default=200, gt=0, description="Largest compression ratio of a .docx member."
    )
    max_image_pixels: int = Field(
        default=50_000_000,
        gt=0,
        description="Largest image (width x height) decoded or rendered, in pixels.",
    )
    max_procedure_kb: float = Field(
        default=2048,
        gt=0,
        description=(
            "Most text one procedure may hold, in KiB: a routine an agent follows is far smaller, "
            "and compiling one this big takes hundreds of times its size in memory."
        ),
    )


class NetworkSettings(BaseModel):
    """How the emitted agent network behaves (`[network]` in sopc.toml)."""

    model_config = ConfigDict(extra="forbid")

    disclose_ai: bool = Field(
        default=True,
        description="Triage tells the customer, once, that they are talking with an AI assistant.",
    )
    guardrails: str | None = Field(
        default=None,
        description=(
            "A module whose `input_guardrails` and `output_guardrails` lists are attached to "
            "every agent, e.g. `guardrails` for guardrails.py beside the network."
        ),
    )
    max_tokens: int | None = Field(
        default=1024,
        gt=0,
        description="Default output limit of every agent's model (ModelSettings.max_tokens).",
    )
    index_routines: int = Field(
        default=8,
        ge=1,
        description="An agent with more routines than this reads an index and loads one.",
    )
    index_chars: int = Field(
        default=24_000,
        ge=1,
        description="An agent whose routines exceed this many characters reads an index.",
    )

    @field_validator("guardrails")
    @classmethod
    def _module_name(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not all(part.isidentifier() for part in value.strip().split(".")):
            raise ValueError(f"must be a Python module name such as `guardrails`, not {value!r}")
        return value.strip()


class AgentSettings(BaseModel):
    """Overrides for one agent group (a folder under the SOP root)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Display name of the agent, e.g. `Billing`.")
    description: str | None = Field(default=None, description="Handoff description override.")
    include: list[str] = Field(
        default_factory=list,
        description=(
            "SOP paths that belong to this group whatever their folder: glob patterns relative "
            "to the SOP folder (`*` within a folder, `**` across folders, `billing/` a folder)."
        ),
    )

    @field_validator("include")
    @classmethod
    def _relative_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            parts = pattern.replace("\\", "/").split("/")
            if not pattern.strip() or pattern.startswith(("/", "\\")) or ".." in parts:
                raise ValueError(
                    f"include pattern {pattern!r} must be a glob relative to the SOP folder"
                )
        return patterns


# OpenAI-style secret keys (sk-..., sk-proj-...): never a model name
_API_KEY_SHAPE = re.compile(r"sk-[A-Za-z0-9_\-]{16,}")


class Settings(BaseModel):
    """Everything a run can be configured with."""

    model_config = ConfigDict(extra="forbid")

    output: Path = Field(default=Path("generated_routines"), description="Output folder.")
    backend: BackendName = "auto"
    model: str = "gpt-5-mini"
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL (else OPENAI_BASE_URL)."
    )
    timeout: float = Field(
        default=600.0,
        gt=0,
        description=(
            "Most seconds one model request may take in total (a generous cap: a streamed "
            "answer that keeps sending tokens is not cut off by a short one; see idle_timeout)."
        ),
    )
    max_retries: int = Field(default=4, ge=0)
    temperature: float | None = None
    seed: int | None = None
    structured_output: Literal["json_schema", "json_object", "text"] = "json_schema"
    vision: bool = Field(default=True, description="Send figures and scanned pages as images.")
    repair_attempts: int = Field(default=2, ge=0)
    jobs: int = Field(default=4, ge=1, le=256)
    cache_dir: Path = Field(
        default_factory=lambda: user_cache_dir(),
        description="Response and stat cache folder [default: the user cache folder].",
    )
    cache: bool = True
    tools: Path | None = Field(
        default=None, description="Tool catalog; default tools.yaml beside the SOPs."
    )
    implementation_module: str = Field(
        default="tool_impl", description="Module that implements the tools (never generated)."
    )
    coverage_threshold: float = Field(default=0.8, ge=0, le=1)
    ocr: Literal["auto", "off", "rapidocr", "tesseract"] = "auto"
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    idle_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a streamed answer may send no token before sopc gives up on it.",
    )
    stream: bool | None = Field(
        default=None,
        description=(
            "Stream answers (idle timeout, token progress); default: on for a base URL, off for "
            "api.openai.com."
        ),
    )
    local: bool | None = Field(
        default=None,
        description=(
            "The server is local (a timeout is not retried, --jobs defaults to its slots); "
            "default: a loopback or private-network base URL."
        ),
    )
    max_tokens: int | None = Field(
        default=None,
        ge=16,
        description=(
            "Output token limit sent with each request; default sized to the routine schema "
            "and the procedure (sent to api.openai.com only when set)."
        ),
    )
    warnings: dict[str, Literal["error", "warning", "info"]] = Field(
        default_factory=dict,
        description=(
            "Severity per issue code (`[warnings]` table): raise a warning to an error, lower it "
            "to info; errors stay errors (a routine with errors is never deployed)."
        ),
    )
    scenarios: Path | None = Field(
        default=None,
        description="Eval scenarios (`<agent>/<routine id>.yaml`); default `<sops>/scenarios`.",
    )
    max_answer_mb: float = Field(
        default=32,
        gt=0,
        description=(
            "Largest model answer read, in MiB once decompressed (a streamed answer's events "
            "included); a larger one is an error, never read whole."
        ),
    )
    check_import: bool = Field(
        default=True,
        description=(
            "Import the emitted agent_network in a fresh Python (about 1.5 s) whenever a run "
            "rewrites it; a package that does not import fails the run."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
            raise ValueError(
                f"must start with http:// or https:// (e.g. http://localhost:8000/v1), "
                f"not {redact_url(value)[:60]!r}"
            )
        if "@" in rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]:
            # The HTTP client would send user:password as Basic auth instead of the API key.
            raise ValueError(
                f"must not hold a user name or password ({redact_url(value)[:60]!r} is shown "
                "without them): set the API key in OPENAI_API_KEY"
            )
        return value

    @field_validator("model")
    @classmethod
    def _not_a_key(cls, value: str) -> str:
        # A key pasted into --model would be written to _config.py, the lock and the cache.
        if _API_KEY_SHAPE.fullmatch(value.strip()):
            raise ValueError(
                "looks like an API key, not a model name (the key belongs in OPENAI_API_KEY)"
            )
        return value


def agent_group_for(source: str, settings: Settings) -> str | None:
    """The agent group whose `include` patterns match an SOP path, or None (its folder decides).

    `source` is the SOP's path relative to the SOP folder, with `/` separators (as
    `Document.source`). Groups are tried in name order, so the answer never depends on the order
    of the settings file.
    """
    path = source.replace("\\", "/")
    for group in sorted(settings.agents):
        if any(_glob(pattern).fullmatch(path) for pattern in settings.agents[group].include):
            return group
    return None


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """A glob as a regex: `*`, `?` stay within a folder, `**` spans folders, `dir/` = `dir/**`."""
    pattern = pattern.replace("\\", "/").strip()
    if pattern.endswith("/"):
        pattern += "**"
    segments = pattern.split("/")
    out: list[str] = []
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if segment == "**":
            out.append(".*" if last else "(?:.*/)?")
        else:
            out.append(_glob_segment(segment) + ("" if last else "/"))
    return re.compile("".join(out))


def _glob_segment(segment: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        close = segment.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif close > 0:
            body = segment[i + 1 : close]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            out.append(f"[{'^/' if negate else ''}{body}]")
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _read_file_settings(start: Path) -> tuple[dict[str, Any], Path | None]:
    for folder in [start, *start.parents]:
        toml = folder / "sopc.toml"
        if toml.is_file():
            return _load_toml(toml), toml
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            data = _load_toml(pyproject).get("tool", {}).get("sopc")
            if data is not None:
                return data, pyproject
    return {}, None


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read settings: {exc}", path=path) from None
    return data


def _env_settings(environ: dict[str, str]) -> dict[str, Any]:
    fields = Settings.model_fields
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith("SOPC_"):
            name = key[5:].lower()
            if name in fields and name not in {"agents", "limits", "network", "warnings"}:
                out[name] = value
    return out


def _rebase(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """File settings with their relative paths made relative to the file's folder."""
    out = dict(data)
    for name in _PATH_SETTINGS:
        value = out.get(name)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            out[name] = str(base / value)
    return out


def load_settings(
    start: Path | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Merge file, environment and command-line settings.

    Relative paths in the settings file are relative to that file's folder; relative paths from
    `SOPC_*` variables and the command line are relative to the current directory.
    """
    start = (start or Path.cwd()).resolve()
    if start.is_file():
        start = start.parent
    data, origin = _read_file_settings(start)
    if origin is not None:
        data = _rebase(data, origin.parent)
    env = _env_settings(dict(os.environ if environ is None else environ))
    cli = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return Settings.model_validate({**data, **env, **cli})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        name = str(first["loc"][0]) if first["loc"] else ""
        # Blame the layer whose value won the merge, so the user edits the right place.
        if name in cli:
            source = f"--{name.replace('_', '-')}"
            raise ConfigError(f"invalid value for {source}: {message}") from None
        if name in env:
            raise ConfigError(f"invalid value for SOPC_{name.upper()}: {message}") from None
        raise ConfigError(
            f"invalid setting `{where}`: {message}", path=origin or "settings"
        ) from None
