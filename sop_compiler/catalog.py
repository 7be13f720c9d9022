"""Load and check the tool catalog (`tools.yaml`, `tools.yml` or `tools.json`)."""

from __future__ import annotations

import json
import keyword
import re
from pathlib import Path
from typing import Any

import yaml

from sop_compiler.errors import ConfigError
from sop_compiler.models import Tool, ToolCatalog

__all__ = ["CATALOG_NAMES", "load_catalog", "sop_root"]

CATALOG_NAMES = ("tools.yaml", "tools.yml", "tools.json")
_MAX_BYTES = 5 * 1024 * 1024  # a catalog is a hand-written list; anything bigger is a mistake
_MAX_VALUES = 1_000_000  # values after YAML aliases are expanded (a 5 MiB file holds fewer)
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_MAX_NAME = 64  # OpenAI rejects function names longer than this
_TOOL_KEYS = ("name", "description", "parameters", "params", "access", "needs_approval", "aliases")
# Short-form parameter types (`params: {order_id: string}`) and the JSON-schema type they mean.
_SHORT_TYPES = {
    "string": "string",
    "str": "string",
    "number": "number",
    "float": "number",
    "integer": "integer",
    "int": "integer",
    "boolean": "boolean",
    "bool": "boolean",
}


def sop_root(path: Path) -> Path:
    """The SOP folder that `path` belongs to (resolved).

    A folder is its own root. A single file's root is the nearest folder holding a tool catalog,
    from the file's own folder up to the working directory (when the file is inside it), else
    the file's folder: `sopc compile sops/billing/refunds.pdf` then finds `sops/tools.yaml` and
    keeps the file's agent group (`billing`), as compiling the whole folder would.
    """
    path = path.resolve()
    if path.is_dir():
        return path
    folder = path.parent
    cwd = Path.cwd().resolve()
    candidates = [folder]
    if folder.is_relative_to(cwd):
        candidates += [parent for parent in folder.parents if parent.is_relative_to(cwd)]
    for candidate in candidates:
        if any((candidate / name).is_file() for name in CATALOG_NAMES):
            return candidate
    return folder


def load_catalog(path: Path | None, *, sop_root: Path) -> ToolCatalog:
    """Read the catalog at `path`, else `tools.yaml|yml|json` in `sop_root`; none -> empty catalog.

    Raises ConfigError (one line naming the file and the tool) for anything malformed.
    """
    if path is None:
        path = next(
            (sop_root / name for name in CATALOG_NAMES if (sop_root / name).is_file()), None
        )
        if path is None:
            return ToolCatalog()
    elif not path.is_file():
        raise ConfigError("tool catalog not found", path=path)
    data = _parse(path)
    tools = _check_document(data, path)
    return ToolCatalog(tools=tools, source=_display_name(path, sop_root))


def _display_name(path: Path, sop_root: Path) -> str:
    # No absolute paths in outputs: relative to the SOP folder when inside it, else the file name.
    try:
        return path.resolve().relative_to(sop_root.resolve()).as_posix()
    except ValueError:
        return path.name


def _parse(path: Path) -> Any:
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ConfigError(
                f"tool catalog is larger than {_MAX_BYTES // 1024 // 1024} MiB", path=path
            )
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(f"cannot read tool catalog: {reason}", path=path) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"invalid JSON at line {exc.lineno}: {exc.msg}", path=path) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or "syntax error"
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"invalid YAML{where}: {problem}", path=path) from None
    count, unencodable = _walk(data)
    if count > _MAX_VALUES:
        raise ConfigError(
            f"tool catalog expands to more than {_MAX_VALUES:,} values "
            "(YAML aliases repeating large parts, or a self-referencing alias)",
            path=path,
        )
    if unencodable is not None:
        raise ConfigError(
            f"tool catalog holds {unencodable!r}, which is not valid Unicode text "
            "(an escaped lone surrogate such as \\udcff): generated code could not import it",
            path=path,
        )
    return data


def _walk(data: Any) -> tuple[int, str | None]:
    """How many values `data` holds once aliases are expanded, and its first non-UTF-8 string.

    YAML aliases share one object, so an 800-byte file can stand for 10^8 values (or for an
    endless one, when an alias refers to its own parent); everything that walks the catalog
    later would pay for each. The walk is iterative and stops counting past `_MAX_VALUES + 1`.
    YAML's and JSON's escapes can spell a lone surrogate (`"\\udcff"`), a string no file and
    no pydantic schema can hold: the emitted package would fail to import.
    """
    count = 0
    unencodable: str | None = None
    stack = [data]
    while stack:
        value = stack.pop()
        count += 1
        if count > _MAX_VALUES:
            break
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and unencodable is None:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                unencodable = value[:40]
    return count, unencodable


def _check_document(data: Any, path: Path) -> list[Tool]:
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping with a `tools:` list at the top", path=path)
    unknown = sorted(str(key) for key in data if key != "tools")
    if unknown:
        raise ConfigError(f"unknown top-level key `{unknown[0]}` (expected `tools`)", path=path)
    entries = data.get("tools") or []
    if not isinstance(entries, list):
        raise ConfigError("`tools` must be a list of tools", path=path)
    tools: list[Tool] = []
    seen: dict[str, str] = {}  # lower-cased name or alias -> tool that claims it
    for index, entry in enumerate(entries, start=1):
        tool = _check_tool(entry, index, path)
        for claim in [tool.name, *tool.aliases]:
            key = claim.casefold()
            if key in seen:
                what = "tool name" if claim == tool.name and seen[key] == claim else "name or alias"
                raise ConfigError(
                    f"tool `{tool.name}`: duplicate {what} `{claim}` (also used by `{seen[key]}`)",
                    path=path,
                )
            seen[key] = tool.name
        tools.append(tool)
    return tools


def _check_tool(entry: Any, index: int, path: Path) -> Tool:
    if not isinstance(entry, dict):
        raise ConfigError(
            f"tool #{index}: expected a mapping with `name` and `description`", path=path
        )
    name = entry.get("name")
    label = f"tool `{name}`" if isinstance(name, str) and name else f"tool #{index}"

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{label}: {message}", path=path)

    unknown = sorted(str(key) for key in entry if key not in _TOOL_KEYS)
    if unknown:
        raise fail(f"unknown key `{unknown[0]}` (known: {', '.join(_TOOL_KEYS)})")
    if not isinstance(name, str) or not name:
        raise fail("missing `name`")
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise fail("invalid name: use a snake_case identifier that is not a Python keyword")
    if len(name) > _MAX_NAME:
        raise fail(
            f"name is {len(name)} characters long; OpenAI allows at most {_MAX_NAME} for a tool"
        )
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip():
        raise fail("missing `description`")
    if "parameters" in entry and "params" in entry:
        raise fail("give either `parameters` (JSON schema) or `params` (short form), not both")
    if "params" in entry:
        parameters = _expand_short_params(entry["params"], fail)
    else:
        parameters = entry.get("parameters") or {"type": "object", "properties": {}, "required": []}
    _check_parameters(parameters, fail)
    access = entry.get("access", "read")
    if access not in ("read", "write"):
        raise fail(f"`access` must be `read` or `write`, not {access!r}")
    needs_approval = entry.get("needs_approval", False)
    if not isinstance(needs_approval, bool):
        raise fail("`needs_approval` must be true or false")
    aliases = entry.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise fail("`aliases` must be a list of non-empty strings")
    return Tool(
        name=name,
        description=description.strip(),
        parameters=parameters,
        access=access,
        needs_approval=needs_approval,
        aliases=[" ".join(alias.split()) for alias in aliases],
    )


def _expand_short_params(params: Any, fail: Any) -> dict[str, Any]:
    """`{order_id: string, amount: number?, method: [sms_code, email_code]}` -> a JSON schema."""
    if not isinstance(params, dict):
        raise fail("`params` must map parameter names to types")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for raw_name, raw_type in params.items():
        name = str(raw_name)
        optional = False
        if isinstance(raw_type, list):
            if not raw_type or not all(isinstance(v, (str, int, float)) for v in raw_type):
                raise fail(f"parameter `{name}`: an enum must be a non-empty list of values")
            schema: dict[str, Any] = {"enum": list(raw_type)}
            if all(isinstance(v, str) for v in raw_type):
                schema["type"] = "string"
        elif isinstance(raw_type, str):
            optional = raw_type.endswith("?")
            short = raw_type.rstrip("?").strip().lower()
            if short not in _SHORT_TYPES:
                known = ", ".join(sorted(set(_SHORT_TYPES.values())))
                raise fail(f"parameter `{name}`: unknown type {raw_type!r} (known: {known})")
            schema = {"type": _SHORT_TYPES[short]}
        else:
            raise fail(f"parameter `{name}`: give a type name or a list of allowed values")
        properties[name] = schema
        if not optional:
            required.append(name)
    return {"type": "object", "properties": properties, "required": required}


def _yaml_boolean_name(parameters: dict[Any, Any]) -> str | None:
    """A parameter name YAML turned into true or false, as the file probably spelt it."""
    properties = parameters.get("properties")
    names = list(properties) if isinstance(properties, dict) else []
    required = parameters.get("required")
    names += required if isinstance(required, list) else []
    for name in names:
        if isinstance(name, bool):
            return "`on` or `yes`" if name else "`off` or `no`"
    return None


def _check_parameters(parameters: Any, fail: Any) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(parameters, dict):
        raise fail("`parameters` must be a JSON schema object")
    said = _yaml_boolean_name(parameters)
    if said is not None:
        # `on:` and `required: [on]`: YAML 1.1 reads a bare on/off/yes/no as true or false
        raise fail(
            f"`parameters` names a parameter {said}, which YAML reads as a boolean: "
            'quote the name ("on")'
        )
    try:
        Draft202012Validator.check_schema(parameters)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        raise fail(
            f"`parameters` is not a valid JSON schema{f' at {where}' if where else ''}: "
            f"{exc.message}"
        ) from None
    if parameters.get("type") != "object":
        raise fail("`parameters` must have `type: object`")
    ref = _unresolvable_ref(parameters)
    if ref is not None:
        raise fail(f"`parameters` refers to {ref!r}, which is not in the schema")
    properties = parameters.get("properties", {})
    if not isinstance(properties, dict):
        raise fail("`parameters.properties` must be a mapping")
    for name in properties:
        if not str(name).isidentifier() or keyword.iskeyword(str(name)):
            raise fail(f"parameter name `{name}` is not a valid identifier")
    for name in parameters.get("required", []):
        if name not in properties:
            raise fail(f"required parameter `{name}` is not in `properties`")


def _unresolvable_ref(parameters: dict[str, Any]) -> str | None:
    """The first `$ref` in the schema that does not resolve (refs are never fetched), or None."""
    from jsonschema_specifications import REGISTRY
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    # Walk subschemas only (never `enum`, `const` or `default` values), with the resolver that
    # jsonschema itself builds: the local document plus the bundled meta-schemas.
    root = DRAFT202012.create_resource(parameters)
    todo = [(root, REGISTRY.resolver_with_root(root))]
    while todo:
        resource, resolver = todo.pop()
        contents = resource.contents
        if isinstance(contents, dict):
            for keyword in ("$ref", "$dynamicRef"):
                ref = contents.get(keyword)
                if isinstance(ref, str):
                    try:
                        resolver.lookup(ref)
                    except Unresolvable:
                        return ref
        todo += [(sub, resolver.in_subresource(sub)) for sub in resource.subresources()]
    return None
