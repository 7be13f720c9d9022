"""The tool catalog: the sample loads, discovery works, and every mistake is one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sop_compiler.catalog import load_catalog
from sop_compiler.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

SAMPLE_TOOLS = {
    "lookup_order": ("read", False),
    "lookup_customer": ("read", False),
    "verify_identity": ("read", False),
    "issue_refund": ("write", True),
    "apply_account_credit": ("write", True),
    "get_invoice": ("read", False),
    "correct_invoice": ("write", False),
    "track_shipment": ("read", False),
    "create_return_label": ("write", False),
    "reship_order": ("write", True),
    "open_carrier_claim": ("write", False),
    "check_service_status": ("read", False),
    "run_line_diagnostics": ("read", False),
    "schedule_technician": ("write", False),
    "send_password_reset": ("write", False),
    "unlock_account": ("write", False),
    "close_account": ("write", True),
    "create_ticket": ("write", False),
}


def test_sample_catalog_matches_the_documented_tools() -> None:
    catalog = load_catalog(None, sop_root=REPO / "sample_sops")
    assert catalog.source == "tools.yaml"
    assert {t.name: (t.access, t.needs_approval) for t in catalog.tools} == SAMPLE_TOOLS
    verify = catalog.get("verify_identity")
    assert verify is not None
    assert verify.parameters["properties"]["method"]["enum"] == [
        "sms_code",
        "email_code",
        "security_questions",
        "photo_id",
    ]
    claim = catalog.get("open_carrier_claim")
    assert claim is not None and "carrier claim" in claim.aliases
    refund = catalog.get("issue_refund")
    assert refund is not None and refund.parameters["properties"]["amount"]["type"] == "number"
    assert all(t.description and t.parameters["type"] == "object" for t in catalog.tools)


def test_discovery_order_and_empty_default(tmp_path: Path) -> None:
    assert load_catalog(None, sop_root=tmp_path).tools == []
    (tmp_path / "tools.json").write_text(
        json.dumps({"tools": [{"name": "a_json", "description": "d"}]})
    )
    assert load_catalog(None, sop_root=tmp_path).names() == ["a_json"]
    (tmp_path / "tools.yml").write_text("tools:\n  - name: a_yml\n    description: d\n")
    assert load_catalog(None, sop_root=tmp_path).names() == ["a_yml"]
    (tmp_path / "tools.yaml").write_text("tools:\n  - name: a_yaml\n    description: d\n")
    assert load_catalog(None, sop_root=tmp_path).names() == ["a_yaml"]
    (tmp_path / "empty.yaml").write_text("")
    assert load_catalog(tmp_path / "empty.yaml", sop_root=tmp_path).tools == []


def test_explicit_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tool catalog not found") as info:
        load_catalog(tmp_path / "nope.yaml", sop_root=tmp_path)
    assert info.value.path is not None and info.value.path.endswith("nope.yaml")


def test_outside_catalog_is_named_by_file_name_only(tmp_path: Path) -> None:
    (tmp_path / "cat.yaml").write_text("tools: []\n")
    sops = tmp_path / "sops"
    sops.mkdir()
    assert load_catalog(tmp_path / "cat.yaml", sop_root=sops).source == "cat.yaml"


def test_short_form_params(tmp_path: Path) -> None:
    (tmp_path / "tools.yaml").write_text(
        "tools:\n"
        "  - name: issue_refund\n"
        "    description: Refund.\n"
        "    access: write\n"
        "    needs_approval: true\n"
        "    params:\n"
        "      order_id: string\n"
        "      amount: number\n"
        "      note: str?\n"
        "      reason: [damaged, late]\n"
    )
    tool = load_catalog(None, sop_root=tmp_path).tools[0]
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string"},
            "amount": {"type": "number"},
            "note": {"type": "string"},
            "reason": {"enum": ["damaged", "late"], "type": "string"},
        },
        "required": ["order_id", "amount", "reason"],
    }


def _tool(**fields: object) -> str:
    entry = {"name": "lookup_order", "description": "Look up an order.", **fields}
    return json.dumps({"tools": [entry]})


BAD = [
    ("tools:\n  - name: a\n    description: [unclosed\n", r"invalid YAML at line \d+"),
    ("- just a list\n", "expected a mapping with a `tools:` list"),
    ("tools: {a: 1}\n", "`tools` must be a list"),
    ("tools: []\nextra: 1\n", "unknown top-level key `extra`"),
    (_tool(colour="red"), "tool `lookup_order`: unknown key `colour`"),
    (_tool(name="LookupOrder"), "tool `LookupOrder`: invalid name"),
    (_tool(name="class"), "tool `class`: invalid name"),
    (_tool(name=""), "tool #1: missing `name`"),
    (_tool(description=""), "missing `description`"),
    (_tool(parameters={"type": "objekt"}), "not a valid JSON schema"),
    (_tool(parameters={"type": "array"}), "must have `type: object`"),
    (
        # `on: {type: boolean}` and `required: [on]`: YAML 1.1 reads a bare `on` as true
        "tools:\n  - name: set_test_mode\n    description: Put a system on test.\n"
        "    parameters:\n      type: object\n      properties:\n        on: {type: boolean}\n"
        "      required: [on]\n",
        "tool `set_test_mode`: `parameters` names a parameter `on` or `yes`, which YAML reads "
        'as a boolean: quote the name \\("on"\\)',
    ),
    (
        _tool(parameters={"type": "object", "properties": {"order-id": {"type": "string"}}}),
        "parameter name `order-id` is not a valid identifier",
    ),
    (
        _tool(parameters={"type": "object", "properties": {}, "required": ["order_id"]}),
        "required parameter `order_id` is not in `properties`",
    ),
    (
        _tool(parameters={"type": "object", "properties": {"method": {"$ref": "#/$defs/Method"}}}),
        "tool `lookup_order`: `parameters` refers to '#/\\$defs/Method', which is not in",
    ),
    (
        _tool(
            parameters={
                "type": "object",
                "properties": {"o": {"$ref": "https://example.com/order.json"}},
            }
        ),
        "tool `lookup_order`: `parameters` refers to 'https://example.com/order.json'",
    ),
    (_tool(name="a" * 65), f"tool `{'a' * 65}`: name is 65 characters long; .* at most 64"),
    (_tool(access="delete"), "`access` must be `read` or `write`"),
    (_tool(needs_approval="yes"), "`needs_approval` must be true or false"),
    (_tool(aliases="oms"), "`aliases` must be a list"),
    (_tool(params={"amount": "money"}), "parameter `amount`: unknown type 'money'"),
    (_tool(params={"a": "string"}, parameters={"type": "object"}), "either `parameters`"),
    (
        json.dumps(
            {"tools": [{"name": "a", "description": "d"}, {"name": "a", "description": "e"}]}
        ),
        "tool `a`: duplicate tool name `a`",
    ),
    (
        json.dumps(
            {
                "tools": [
                    {"name": "a", "description": "d", "aliases": ["OMS"]},
                    {"name": "b", "description": "e", "aliases": ["oms"]},
                ]
            }
        ),
        "tool `b`: duplicate name or alias `oms` \\(also used by `a`\\)",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_catalog_errors_are_one_line_and_name_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    suffix = ".json" if text.startswith("{") else ".yaml"
    path = tmp_path / f"tools{suffix}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        load_catalog(path, sop_root=tmp_path)
    assert info.value.path == str(path)
    assert "\n" not in str(info.value)


def test_bad_json_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    path.write_text('{\n  "tools": [\n    {"name": }\n  ]\n}\n')
    with pytest.raises(ConfigError, match="invalid JSON at line 3"):
        load_catalog(None, sop_root=tmp_path)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text("tools: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_catalog(None, sop_root=tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "tools.yaml").write_bytes(b"tools:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_catalog(None, sop_root=tmp_path)


def test_refs_into_defs_load(tmp_path: Path) -> None:
    # the shape pydantic's model_json_schema() writes for an enum parameter
    parameters = {
        "type": "object",
        "$defs": {"Method": {"type": "string", "enum": ["sms_code", "email_code"]}},
        "properties": {
            "method": {"$ref": "#/$defs/Method"},
            "note": {"type": "string", "default": {"$ref": "not a schema, just a default"}},
        },
        "required": ["method"],
    }
    path = tmp_path / "tools.json"
    path.write_text(_tool(name="verify_identity", parameters=parameters), encoding="utf-8")
    tool = load_catalog(path, sop_root=tmp_path).get("verify_identity")
    assert tool is not None and tool.parameters == parameters


def test_tool_name_of_64_characters_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    path.write_text(_tool(name="a" * 64), encoding="utf-8")
    assert load_catalog(path, sop_root=tmp_path).names() == ["a" * 64]
