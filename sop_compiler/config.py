"""Settings: defaults < `sopc.toml` or `[tool.sopc]` < `SOPC_*` environment < command line.

The API key is never a setting: it is read from `OPENAI_API_KEY` at the moment the client is
built, so it cannot end up in a dumped config, the lock file, the cache or an error message.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sop_compiler.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BackendName = Literal["auto", "offline", "openai", "fake"]


class Limits(BaseModel):
    """Size limits on input files; raise them in config when a real SOP needs it."""

    model_config = ConfigDict(extra="forbid")

    max_file_mb: float = Field(default=100, description="Largest SOP file read, in MiB.")
    max_pages: int = Field(default=5000, description="Most PDF pages read from one file.")
    max_unzipped_mb: float = Field(
        default=300, description="Largest total uncompressed size of a .docx."
    )
    max_zip_ratio: float = Field(
        default=200, description="Largest compression ratio of a .docx member."
    )


class AgentSettings(BaseModel):
    """Overrides for one agent group (a folder under the SOP root)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Display name of the agent, e.g. `Billing`.")
    description: str | None = Field(default=None, description="Handoff description override.")


class Settings(BaseModel):
    """Everything a run can be configured with."""

    model_config = ConfigDict(extra="forbid")

    output: Path = Field(default=Path("generated_routines"), description="Output folder.")
    backend: BackendName = "auto"
    model: str = "gpt-5-mini"
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL (else OPENAI_BASE_URL)."
    )
    timeout: float = Field(default=120.0, gt=0, description="Seconds per model request.")
    max_retries: int = Field(default=4, ge=0)
    temperature: float | None = None
    seed: int | None = None
    structured_output: Literal["json_schema", "json_object", "text"] = "json_schema"
    vision: bool = Field(default=True, description="Send figures and scanned pages as images.")
    repair_attempts: int = Field(default=2, ge=0)
    jobs: int = Field(default=4, ge=1, le=256)
    cache_dir: Path = Field(default=Path(".sopc-cache"), description="Response cache folder.")
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
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read settings: {exc}", path=path) from None


def _env_settings(environ: dict[str, str]) -> dict[str, Any]:
    fields = Settings.model_fields
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith("SOPC_"):
            name = key[5:].lower()
            if name in fields and name not in {"agents", "limits"}:
                out[name] = value
    return out


def load_settings(
    start: Path | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Merge file, environment and command-line settings (paths relative to the file)."""
    start = (start or Path.cwd()).resolve()
    if start.is_file():
        start = start.parent
    data, origin = _read_file_settings(start)
    env = _env_settings(dict(os.environ if environ is None else environ))
    merged = {**data, **env, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(
            f"invalid setting `{where}`: {first['msg']}", path=origin or "settings"
        ) from None
    if origin is not None:
        base = origin.parent
        for name in ("cache_dir", "tools"):
            value = getattr(settings, name)
            if value is not None and not value.is_absolute() and name in data and name not in env:
                setattr(settings, name, base / value)
    return settings
