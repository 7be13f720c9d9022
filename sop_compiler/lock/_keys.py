"""The backend of a run and the keys that decide which outputs are current."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sop_compiler.config import Settings, agent_group_for
from sop_compiler.files import templates_sha
from sop_compiler.generate.base import Backend
from sop_compiler.lock._file import (
    OUTPUT_VERSION,
    RENDER_VERSION,
    sha256_json,
)
from sop_compiler.models import (
    InspectResult,
    Routine,
    ToolCatalog,
)

ProcState = Literal["current", "rerender", "generate"]
ProcStatus = Literal["generated", "unchanged", "failed", "would_generate"]
Reader = Callable[..., InspectResult]
# Settings that change neither reading, validation nor rendering, or that the backend fingerprint
# already covers; everything else (including settings added later) is output-relevant.
_NOT_OUTPUT_SETTINGS = frozenset(
    {
        "output",
        "jobs",
        "cache_dir",
        "cache",
        "tools",
        "timeout",
        "max_retries",
        "base_url",
        "backend",
        "temperature",
        "seed",
        "structured_output",
        "repair_attempts",
        "vision",
        "scenarios",  # eval inputs: no compiled output depends on them
    }
)


@dataclass(frozen=True)
class ChosenBackend:
    """The backend of a run, or (for --check and --dry-run) just what identifies it."""

    name: str
    fingerprint: dict[str, Any]
    uses_model: bool
    note: str | None = None
    backend: Backend | None = None


def backend_for(
    settings: Settings,
    *,
    given: Backend | None,
    recorded: dict[str, Any],
    build: bool,
    refresh: bool = False,
) -> ChosenBackend:
    """The run's backend; without `build`, only its fingerprint (no key needed, nothing connects).

    With `backend = "auto"`, --check compares against the backend recorded in the lock: whether a
    CI job happens to have an API key must not decide whether outputs are current.
    """
    from sop_compiler.generate import BACKEND_NAMES, backend_class, resolve_backend_name

    if given is not None:
        return ChosenBackend(given.name, given.fingerprint(), given.uses_model, None, given)
    name = resolve_backend_name(settings)
    note = None
    if settings.backend == "auto":
        note = (
            "no API key or base URL set" if name == "offline" else "an API key or base URL is set"
        )
        if not build and recorded.get("backend") in BACKEND_NAMES:
            name, note = str(recorded["backend"]), "as recorded in sopc.lock"
    cls = backend_class(name)
    chosen = settings.model_copy(update={"backend": name})
    if build:
        backend = cls(chosen)
        if refresh and hasattr(backend, "refresh"):
            backend.refresh = True  # re-ask the model instead of reusing cached answers
        return ChosenBackend(name, backend.fingerprint(), backend.uses_model, note, backend)
    return ChosenBackend(name, cls.fingerprint_for(chosen), cls.uses_model, note, None)


@dataclass(frozen=True)
class Keys:
    """The run-wide parts of every cache key."""

    sopc: str
    backend: dict[str, Any]
    backend_sha: str
    catalog: str
    schema: str
    prompts: str
    templates: str
    settings: str
    agents: str = ""

    @classmethod
    def compute(
        cls,
        *,
        settings: Settings,
        catalog: ToolCatalog,
        backend: dict[str, Any],
        agents: Iterable[str] = (),
    ) -> Keys:
        """Hash the backend fingerprint, catalog, schema, templates and output-relevant settings.

        `agents` is the run's agent set: handoff targets resolve against it and prompts list it,
        so a routine depends on it, and a build must not depend on which folders came first.
        """
        relevant = settings.model_dump(mode="json", exclude=set(_NOT_OUTPUT_SETTINGS))
        return cls(
            sopc=OUTPUT_VERSION,
            backend=backend,
            backend_sha=sha256_json(backend),
            catalog=catalog.sha256(),
            schema=_schema_sha(),
            prompts=templates_sha(under="prompts"),
            templates=templates_sha(),
            settings=sha256_json(relevant),
            agents=sha256_json(sorted(set(agents))),
        )

    # The parts are hex digests or version strings (no NUL), so joining them is unambiguous.
    def sop(self, sha256: str) -> str:
        """Key under which an SOP's procedure list in the lock is trusted without reading it."""
        return _join_sha(sha256, self.sopc, self.settings)

    def input(self, text: str) -> str:
        """Key of everything that decides a generated routine."""
        return _join_sha(
            text, self.backend_sha, self.catalog, self.schema, self.prompts, self.sopc, self.agents
        )

    def render(self, input_key: str) -> str:
        """Key of everything that decides a routine's report and rendered files."""
        return _join_sha(input_key, self.templates, self.settings, self.catalog, RENDER_VERSION)


@functools.cache
def _schema_sha() -> str:
    # Fixed for the life of the process, and generating the schema costs more than a no-op run's
    # planning of a few hundred SOPs.
    return sha256_json(Routine.model_json_schema())


def _join_sha(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def agent_for(source: str, settings: Settings) -> str:
    """An SOP's agent group: an `[agents.X] include` match, else its folder (`general` at top)."""
    return agent_group_for(source, settings) or source.rpartition("/")[0] or "general"


def routine_json_path(outputs: dict[str, str]) -> str | None:
    """The routine's structured JSON among its outputs."""
    return next(
        (rel for rel in sorted(outputs) if rel.startswith("routines/") and rel.endswith(".json")),
        None,
    )
