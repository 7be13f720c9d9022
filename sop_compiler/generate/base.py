"""What a backend is: something that turns a Procedure into a RoutineDraft."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from sop_compiler.config import Settings
from sop_compiler.errors import GenerationError
from sop_compiler.models import Issue, Procedure, RoutineDraft, ToolCatalog, Usage


@dataclass(frozen=True)
class GenerationContext:
    """What every backend gets besides the procedure."""

    catalog: ToolCatalog
    settings: Settings
    agents: tuple[str, ...] = ()  # agent groups of this run, for handoff targets


@dataclass
class GenerationResult:
    """One procedure's outcome: a draft, or the reason there is none."""

    procedure_id: str
    draft: RoutineDraft | None = None
    error: str | None = None
    issues: list[Issue] = field(default_factory=list)  # validation issues left after repair
    usage: Usage = field(default_factory=Usage)
    attempts: int = 0


class Backend(ABC):
    """A routine writer. Subclasses register themselves by `name`."""

    name: ClassVar[str]
    uses_model: ClassVar[bool] = False  # True when generate() may call an LLM (and so costs money)
    # True: a routine is regenerated whenever the catalog or agent set changes (free and
    # deterministic backends: outputs never depend on build history). False: only when a tool it
    # uses fails re-validation or a new tool covers one it proposed (see lock/staleness.py).
    whole_catalog: ClassVar[bool] = True
    # Set when a fault stops every later call (bad key, unknown model, no quota): the run stops
    # generating, and procedures whose result carries this error's message are left for later.
    fatal_error: GenerationError | None = None
    tokens_received: int = 0  # streamed chunks received so far, for progress on a terminal

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def fingerprint_for(cls, settings: Settings) -> dict[str, object]:
        """What changes this backend's output under `settings` (for the lock); builds no client."""
        return {"backend": cls.name}

    def fingerprint(self) -> dict[str, object]:
        """This backend's `fingerprint_for` its own settings."""
        return self.fingerprint_for(self.settings)

    def prepare(self) -> None:  # noqa: B027 - optional hook, most backends need nothing
        """Import and build what the first request needs.

        Called in a worker thread while SOPs are read, so that the first request does not wait
        for imports. Errors are ignored there: the first request reports them.
        """

    @abstractmethod
    async def generate(
        self,
        procedure: Procedure,
        *,
        context: GenerationContext,
        validate: Callable[[RoutineDraft], list[Issue]],
    ) -> GenerationResult:
        """Write a draft for `procedure`; `validate` checks a draft (used by repair loops)."""

    def run_notes(self) -> list[str]:
        """What the run's summary should tell once (a capability the server turned out to lack)."""
        return []

    async def concurrency(self) -> int:
        """How many procedures to generate at once; called once, before the first request."""
        return self.settings.jobs

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release clients and connections."""
