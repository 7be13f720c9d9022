"""generate: turn each Procedure into a RoutineDraft with a backend (the only stage with an LLM)."""

from __future__ import annotations

import importlib
import os

from sop_compiler.config import Settings
from sop_compiler.errors import ConfigError
from sop_compiler.generate.base import Backend, GenerationContext, GenerationResult
from sop_compiler.models import (
    Block,
    Flowchart,
    Procedure,
    Routine,
    RoutineDraft,
    RoutineSource,
    SourceRef,
    Step,
    ToolCatalog,
)

__all__ = [
    "Backend",
    "GenerationContext",
    "GenerationResult",
    "get_backend",
    "resolve_backend_name",
    "to_routine",
]

_BACKENDS: dict[str, str] = {
    "offline": "sop_compiler.generate.offline:OfflineBackend",
    "openai": "sop_compiler.generate.openai:OpenAIBackend",
    "fake": "sop_compiler.generate.fake:FakeBackend",
}


def resolve_backend_name(settings: Settings) -> str:
    """`auto` means openai when a key or base URL is configured, offline otherwise."""
    if settings.backend != "auto":
        return settings.backend
    configured = (
        os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL") or settings.base_url
    )
    return "openai" if configured else "offline"


BACKEND_NAMES: tuple[str, ...] = tuple(sorted(_BACKENDS))


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as `name` (imported on first use); errors list the known."""
    try:
        target = _BACKENDS[name]
    except KeyError:
        known = ", ".join(BACKEND_NAMES)
        raise ConfigError(f"unknown backend {name!r} (known: {known})") from None
    module, _, cls = target.partition(":")
    backend: type[Backend] = getattr(importlib.import_module(module), cls)
    return backend


def get_backend(settings: Settings) -> Backend:
    """Build the backend the settings name."""
    return backend_class(resolve_backend_name(settings))(settings)


def _fill_source(ref: SourceRef | None, blocks: dict[str, Block], file: str) -> SourceRef | None:
    if ref is None:
        return None
    first = next((blocks[i] for i in ref.block_ids if i in blocks), None)
    return ref.model_copy(
        update={
            "file": file,
            "page": first.prov.page if first else None,
            "paragraph": first.prov.paragraph if first else None,
        }
    )


def to_routine(draft: RoutineDraft, procedure: Procedure, catalog: ToolCatalog) -> Routine:
    """Give a draft its identity and source, resolve citations' provenance, list tools used."""
    blocks = {block.id: block for block in [*procedure.context, *procedure.blocks]}

    def fix_steps(steps: list[Step]) -> list[Step]:
        return [
            step.model_copy(
                update={
                    "source": _fill_source(step.source, blocks, procedure.source),
                    "substeps": fix_steps(step.substeps),
                }
            )
            for step in steps
        ]

    edge_cases = [
        case.model_copy(update={"source": _fill_source(case.source, blocks, procedure.source)})
        for case in draft.edge_cases
    ]
    rules = [
        rule.model_copy(update={"source": _fill_source(rule.source, blocks, procedure.source)})
        for rule in draft.rules
    ]
    knowledge = [
        item.model_copy(update={"source": _fill_source(item.source, blocks, procedure.source)})
        for item in draft.knowledge
    ]
    routine = Routine(
        **draft.model_dump(exclude={"steps", "edge_cases", "rules", "knowledge"}),
        steps=fix_steps(draft.steps),
        edge_cases=edge_cases,
        rules=rules,
        knowledge=knowledge,
        id=procedure.id,
        agent=procedure.agent,
        source=RoutineSource(
            file=procedure.source, sha256=procedure.source_sha256, section=procedure.heading_path
        ),
        source_flowchart=next((b for b in procedure.blocks if isinstance(b, Flowchart)), None),
    )
    used = {
        step.tool_call.tool
        for step in routine.walk()
        if step.tool_call and catalog.get(step.tool_call.tool)
    }
    routine.tools_used = sorted(used)
    return routine
