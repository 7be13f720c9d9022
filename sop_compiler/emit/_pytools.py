"""Catalog tools as Python source: typed signatures, docstrings, decorators and delegation."""

from __future__ import annotations

import builtins
import keyword
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from sop_compiler.escape import CODE_WIDTH, py_docstring, py_literal, text_width
from sop_compiler.models import Routine, Tool, ToolCatalog

_SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}
# Names tools.py defines or imports itself, plus builtins its annotations rely on.
_RESERVED = frozenset(
    {
        "importlib",
        "inspect",
        "function_tool",
        "default_tool_error_function",
        "_call",
        "_tool_error",
        "Annotated",
        "Field",
        "ConversationContext",
        "RunContextWrapper",
        "VERIFIERS",
        "VERIFY_FIRST",
    }
) | frozenset(dir(builtins))
# JSON-schema keywords kept on a parameter as pydantic Field constraints, with Field's name.
_CONSTRAINTS = {
    "pattern": "pattern",
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minItems": "min_length",
    "maxItems": "max_length",
}
_MODEL_NAMES = frozenset(dir(BaseModel))


@dataclass(frozen=True)
class _Param:
    name: str  # as in the JSON schema
    py_name: str
    annotation: str
    literal_values: tuple[str, ...]  # for wrapping a long Literal[...] over lines
    optional: bool
    description: str
    constraints: tuple[str, ...] = ()  # `pattern=r"..."`, `ge=0`, as Field(...) arguments


@dataclass(frozen=True)
class ToolStub:
    """One @function_tool as source lines, ready for tools.py.j2."""

    name: str
    function: str
    source: str  # decorator, signature, docstring and body
    uses_literal: bool
    uses_field: bool = False


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


def _constraints(schema: Any, root: dict[str, Any]) -> tuple[str, ...]:
    """The schema's value constraints as `Field(...)` arguments (format goes in as a pattern
    only for the formats strict JSON schema knows; others stay in the description)."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return ()
    out: list[str] = []
    for keyword_name, field_name in _CONSTRAINTS.items():
        value = schema.get(keyword_name)
        if keyword_name == "pattern" and isinstance(value, str):
            out.append(f"pattern={py_literal(value)}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(f"{field_name}={value!r}")
    value = schema.get("format")
    if isinstance(value, str) and value:
        out.append(f"json_schema_extra={{'format': {py_literal(value)}}}")
    return tuple(out)


def _description(schema: Any) -> str:
    value = schema.get("description", "") if isinstance(schema, dict) else ""
    return str(value)


def _params(tool: Tool) -> tuple[list[_Param], bool]:
    schema = tool.parameters if isinstance(tool.parameters, dict) else {}
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    required_set = set(required) if isinstance(required, list) else set()
    taken: set[str] = {"ctx"}  # the run context comes first in every tool
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
                constraints=_constraints(prop, schema),
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
    if param.constraints:
        base = f"{annotation} | None" if param.optional and annotation != "Any" else annotation
        annotation = f"Annotated[{base}, Field({', '.join(param.constraints)})]"
        return f"{param.py_name}: {annotation}" + (" = None" if param.optional else "")
    if not param.optional:
        return f"{param.py_name}: {annotation}"
    if annotation == "Any" or annotation.endswith("| None"):
        return f"{param.py_name}: {annotation} = None"
    return f"{param.py_name}: {annotation} | None = None"


def _returns(tool: Tool) -> str:
    """The return annotation: the catalog's `returns` schema when it gives one, else Any."""
    if not tool.returns:
        return "Any"
    annotation, _, _ = _annotation(tool.returns, tool.returns)
    return annotation


def _signature(function: str, params: list[_Param], returns: str) -> str:
    head, tail = f"async def {function}(", f") -> {returns}:"
    context = "ctx: RunContextWrapper[ConversationContext]"
    flat = ", ".join([context, *(_param_source(p, indent=0, expand=False) for p in params)])
    if text_width(head + flat + tail) <= CODE_WIDTH:
        return head + flat + tail
    lines = [f"    {context},"]
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


def _body(tool: Tool, params: list[_Param], returns: str) -> str:
    name = py_literal(tool.name)
    entries = [f"{py_literal(p.name)}: {p.py_name}" for p in params]
    # A typed result is bound to a typed name first: returning Any as-is fails mypy --strict.
    keep = "return" if returns == "Any" else f"result: {returns} ="
    end = "" if returns == "Any" else "\n    return result"
    flat = f"    {keep} await _call(ctx, {name}, {{{', '.join(entries)}}}){end}"
    if all(text_width(line) <= CODE_WIDTH for line in flat.splitlines()):
        return flat
    lines = "".join(f"        {entry},\n" for entry in entries)
    return f"    arguments = {{\n{lines}    }}\n    {keep} await _call(ctx, {name}, arguments){end}"


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
                _signature(function, params, _returns(tool)),
                docstring,
                _body(tool, params, _returns(tool)),
            ]
        )
        uses_literal = any(p.literal_values for p in params)
        uses_field = any(p.constraints for p in params)
        stubs.append(ToolStub(tool.name, function, source, uses_literal, uses_field))
    return stubs


# Names ConversationContext defines itself: a slot of that name is not a separate field.
_CONTEXT_OWN = frozenset({"conversation_id", "verified", "ai_disclosed", "remember"})


def context_fields(routines: list[Routine], catalog: ToolCatalog) -> list[tuple[str, str, str]]:
    """The conversation context's fields: (name, annotation, description), one per slot name.

    A slot's type is that of the catalog parameter it feeds (when every such parameter has the
    same scalar type), else Any. Names that are not identifiers are left out.
    """
    descriptions: dict[str, str] = {}
    types: dict[str, set[str]] = {}
    for routine in sorted(routines, key=lambda r: (r.agent, r.id)):
        for slot in routine.collect:
            if slot.name.isidentifier() and not keyword.iskeyword(slot.name):
                descriptions.setdefault(slot.name, slot.description)
        for step in routine.walk():
            call = step.tool_call
            tool = catalog.get(call.tool) if call is not None else None
            if call is None or tool is None:
                continue
            properties = tool.parameters.get("properties")
            for argument in call.arguments:
                prop = properties.get(argument.name) if isinstance(properties, dict) else None
                if argument.slot and prop is not None:
                    annotation, literals, _ = _annotation(prop, tool.parameters)
                    types.setdefault(argument.slot, set()).add("str" if literals else annotation)
    fields = []
    for name in sorted(descriptions):
        if name in _CONTEXT_OWN or name.startswith("_"):
            continue
        found = types.get(name, set())
        annotation = next(iter(found)) if len(found) == 1 else "Any"
        if annotation not in _SCALARS.values() or annotation == "None":
            annotation = "Any"
        fields.append(
            (
                name,
                annotation if annotation == "Any" else f"{annotation} | None",
                descriptions[name],
            )
        )
    return fields
