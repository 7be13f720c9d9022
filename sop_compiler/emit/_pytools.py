"""Catalog tools as Python source: typed signatures, docstrings, decorators and delegation."""

from __future__ import annotations

import builtins
import keyword
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from sop_compiler.escape import CODE_WIDTH, py_docstring, py_literal, text_width
from sop_compiler.models import Tool

_SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}
# Names tools.py defines or imports itself, plus builtins its annotations rely on.
_RESERVED = frozenset(
    {"importlib", "inspect", "function_tool", "default_tool_error_function", "_call", "_tool_error"}
) | frozenset(dir(builtins))
_MODEL_NAMES = frozenset(dir(BaseModel))


@dataclass(frozen=True)
class _Param:
    name: str  # as in the JSON schema
    py_name: str
    annotation: str
    literal_values: tuple[str, ...]  # for wrapping a long Literal[...] over lines
    optional: bool
    description: str


@dataclass(frozen=True)
class ToolStub:
    """One @function_tool as source lines, ready for tools.py.j2."""

    name: str
    function: str
    source: str  # decorator, signature, docstring and body
    uses_literal: bool


def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    """`schema` with local `$ref`s (`#/$defs/Priority`) followed inside the tool's `root` schema.

    A ref that leaves the document, does not resolve or loops is returned as it is (typed Any).
    """
    seen: set[str] = set()
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        ref = schema["$ref"]
        if not ref.startswith("#") or ref in seen:
            return schema
        seen.add(ref)
        target: Any = root
        for token in ref[1:].split("/")[1:]:
            key = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or key not in target:
                return schema
            target = target[key]
        schema = target
    return schema


def _annotation(schema: Any, root: dict[str, Any]) -> tuple[str, tuple[str, ...], bool]:
    """Python annotation for a JSON schema; the bool says whether strict mode can express it."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return "Any", (), False
    enum = schema.get("enum")
    if (
        isinstance(enum, list)
        and enum
        and all(isinstance(v, (str, int, bool)) or v is None for v in enum)
    ):
        values = tuple(py_literal(v) if isinstance(v, str) else repr(v) for v in enum)
        return f"Literal[{', '.join(values)}]", values, True
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    parts: list[str] = []
    strict = True
    for kind in kinds:
        if kind in _SCALARS:
            parts.append(_SCALARS[kind])
        elif kind == "array":
            item, _, item_strict = _annotation(schema.get("items", {}), root)
            parts.append(f"list[{item}]")
            strict = strict and item_strict
        elif kind == "object":
            parts.append("dict[str, Any]")
            strict = False
        else:
            return "Any", (), False
    unique = list(dict.fromkeys(parts))
    if "None" in unique:  # keep `X | None` order readable
        unique = [*(p for p in unique if p != "None"), "None"]
    return " | ".join(unique), (), strict


def _py_name(name: str, taken: set[str], *, field: bool = False) -> str:
    """A Python name for a tool or parameter; fields also suit pydantic (the SDK's arg model)."""
    candidate = (
        name
        if name.isidentifier() and name.isascii()
        else "".join(
            char if char.isascii() and (char.isalnum() or char == "_") else "_" for char in name
        )
    )
    if field:  # pydantic refuses leading underscores and BaseModel's own attribute names
        candidate = candidate.lstrip("_")
    # pydantic reserves the `model_` prefix: a suffix cannot lift that, so such names get a prefix
    if not candidate or candidate[0].isdigit() or (field and candidate.startswith("model_")):
        candidate = f"arg_{candidate}" if field else f"_{candidate}"
    while (
        keyword.iskeyword(candidate)
        or keyword.issoftkeyword(candidate)
        or candidate in taken
        or (field and candidate in _MODEL_NAMES)
    ):
        candidate = f"{candidate}_"
    taken.add(candidate)
    return candidate


def _description(schema: Any) -> str:
    value = schema.get("description", "") if isinstance(schema, dict) else ""
    return str(value)


def _params(tool: Tool) -> tuple[list[_Param], bool]:
    schema = tool.parameters if isinstance(tool.parameters, dict) else {}
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    required_set = set(required) if isinstance(required, list) else set()
    taken: set[str] = set()
    params: list[_Param] = []
    strict = True
    for name, prop in properties.items():
        annotation, literals, prop_strict = _annotation(prop, schema)
        strict = strict and prop_strict
        # a $ref'd definition may carry the description the property itself lacks
        description = _description(prop) or _description(_resolve(prop, schema))
        params.append(
            _Param(
                name=str(name),
                py_name=_py_name(str(name), taken, field=True),
                annotation=annotation,
                literal_values=literals,
                optional=name not in required_set,
                description=description,
            )
        )
    # Python wants parameters with defaults last; keep the schema's order otherwise.
    params.sort(key=lambda p: p.optional)
    return params, strict


def _param_source(param: _Param, *, indent: int, expand: bool) -> str:
    annotation = param.annotation
    if expand and param.literal_values:
        pad = " " * (indent + 4)
        values = "".join(f"{pad}{value},\n" for value in param.literal_values)
        annotation = f"Literal[\n{values}{' ' * indent}]"
    if not param.optional:
        return f"{param.py_name}: {annotation}"
    if annotation == "Any" or annotation.endswith("| None"):
        return f"{param.py_name}: {annotation} = None"
    return f"{param.py_name}: {annotation} | None = None"


def _signature(function: str, params: list[_Param]) -> str:
    head, tail = f"async def {function}(", ") -> Any:"
    flat = ", ".join(_param_source(p, indent=0, expand=False) for p in params)
    if text_width(head + flat + tail) <= CODE_WIDTH:
        return head + flat + tail
    lines = []
    for param in params:
        line = f"    {_param_source(param, indent=4, expand=False)},"
        if text_width(line) > CODE_WIDTH and param.literal_values:
            line = f"    {_param_source(param, indent=4, expand=True)},"
        lines.append(line)
    return head + "\n" + "\n".join(lines) + "\n" + tail


def _decorator(tool: Tool, function: str, strict: bool) -> str:
    options = []
    if function != tool.name:
        options.append(f"name_override={py_literal(tool.name)}")
    if tool.needs_approval:
        options.append("needs_approval=True")
    if not strict:  # object or untyped parameters: the SDK's strict schema cannot express them
        options.append("strict_mode=False")
    options.append("failure_error_function=_tool_error")
    flat = f"@function_tool({', '.join(options)})"
    if text_width(flat) <= CODE_WIDTH:
        return flat
    return "@function_tool(\n" + "".join(f"    {option},\n" for option in options) + ")"


def _body(tool: Tool, params: list[_Param]) -> str:
    name = py_literal(tool.name)
    entries = [f"{py_literal(p.name)}: {p.py_name}" for p in params]
    flat = f"    return await _call({name}, {{{', '.join(entries)}}})"
    if text_width(flat) <= CODE_WIDTH:
        return flat
    lines = "".join(f"        {entry},\n" for entry in entries)
    return f"    arguments = {{\n{lines}    }}\n    return await _call({name}, arguments)"


def tool_stubs(tools: list[Tool]) -> list[ToolStub]:
    """One stub per tool, sorted by name, with function names that cannot shadow anything."""
    taken = set(_RESERVED)
    stubs = []
    for tool in sorted(tools, key=lambda t: t.name):
        function = _py_name(tool.name, taken)
        params, strict = _params(tool)
        docstring = py_docstring(
            tool.description, indent=4, args=[(p.py_name, p.description) for p in params]
        )
        source = "\n".join(
            [
                _decorator(tool, function, strict),
                _signature(function, params),
                docstring,
                _body(tool, params),
            ]
        )
        uses_literal = any(p.literal_values for p in params)
        stubs.append(ToolStub(tool.name, function, source, uses_literal))
    return stubs
