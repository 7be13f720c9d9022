"""sopc: compile Standard Operating Procedures into agent routines and Agents SDK code.

Importing this package is cheap: readers (pymupdf, python-docx) and backends (openai) are imported
only when a stage needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The version lives in pyproject.toml only; read from the installed metadata on first use, since
# importlib.metadata costs more than the rest of this module.
__version__: str

__all__ = [
    "ConfigError",
    "Document",
    "GenerationError",
    "InputError",
    "Procedure",
    "Routine",
    "Settings",
    "SopcError",
    "ToolCatalog",
    "ValidationReport",
    "__version__",
    "compile_folder",
    "inspect_path",
    "load_settings",
]

if TYPE_CHECKING:
    from sop_compiler.config import Settings, load_settings
    from sop_compiler.errors import ConfigError, GenerationError, InputError, SopcError
    from sop_compiler.models import Document, Procedure, Routine, ToolCatalog, ValidationReport
    from sop_compiler.pipeline import compile_folder, inspect_path

_LAZY = {
    "Settings": "sop_compiler.config",
    "load_settings": "sop_compiler.config",
    "SopcError": "sop_compiler.errors",
    "InputError": "sop_compiler.errors",
    "ConfigError": "sop_compiler.errors",
    "GenerationError": "sop_compiler.errors",
    "Document": "sop_compiler.models",
    "Procedure": "sop_compiler.models",
    "Routine": "sop_compiler.models",
    "ToolCatalog": "sop_compiler.models",
    "ValidationReport": "sop_compiler.models",
    "compile_folder": "sop_compiler.pipeline",
    "inspect_path": "sop_compiler.pipeline",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sop-compiler")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    import importlib

    if name == "__version__":
        globals()["__version__"] = found = _version()
        return found
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sop_compiler' has no attribute {name!r}")
