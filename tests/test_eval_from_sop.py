"""`sopc scenarios --from-sop`: scenarios a model writes from the SOP text alone, replayed on the
routine; disagreements reported. Through the real openai client against the local test server,
and through the shipped fake backend."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from llm_server import LLMServer, Reply, completion
from typer.testing import CliRunner

from sop_compiler.cli import app
from sop_compiler.config import load_settings
from sop_compiler.eval.from_sop import SopDrafts, draft_from_sop
from sop_compiler.eval.report import render_drafts
from sop_compiler.eval.scenario import load_scenario_file, routine_of
from sop_compiler.generate.fake import FakeBackend
from sop_compiler.models import Procedure

REPO = Path(__file__).resolve().parents[1]
REFUND = "refunds-and-credits--issuing-a-refund"
CREDIT = "refunds-and-credits--applying-an-account-credit"
KEY = "sk-from-sop-secret-1234"

# What the SOP says before the refund amount is checked (each cited, as the model is asked to).
ELIGIBLE = [
    ("the customer contacted us about the same order in the last 7 days", False, "b48"),
    ("the customer does not have the order number", False, "b54"),
    ("the name and postcode do not match", False, "b57"),
    ("the order was delivered more than 30 days ago", False, "b59"),
    ("the customer has not yet returned the items", False, "b60"),
    ("a chargeback is open on the order", False, "b61"),
    ("it is for a full refund", True, "b63"),
]


def scenario(
    name: str,
    conditions: list[tuple[str, bool, str]],
    calls: list[tuple[str, dict[str, Any]]],
    *,
    not_called: list[str] | None = None,
    ending: str = "resolve",
    to: str | None = None,
) -> dict[str, Any]:
    """One scenario as the answer schema has it."""
    return {
        "name": name,
        "message": "My order A-1 arrived broken, I want my money back.",
        "facts": [{"name": "order_id", "value": "A-1"}],
        "conditions": [{"statement": s, "holds": h, "source": b} for s, h, b in conditions],
        "tool_results": [],
        "expect": {
            "tool_calls": [
                {"tool": tool, "arguments": [{"name": k, "value": v} for k, v in args.items()]}
                for tool, args in calls
            ],
            "not_called": not_called or [],
            "ending": {"kind": ending, "to": to},
            "priority": None,
            "category": None,
        },
    }


OVER = ("the refund amount is over $200", True, "b66")
SUPERVISOR = ("create_ticket", {"priority": "high", "team": "billing-supervisors"})
AGREES = scenario(
    "a refund over the limit goes to a supervisor",
    [*ELIGIBLE, OVER],
    [("lookup_order", {}), SUPERVISOR],
    not_called=["issue_refund"],
)
DISAGREES = scenario(
    "a refund over the limit is issued after approval",
    [*ELIGIBLE, OVER],
    [("lookup_order", {}), SUPERVISOR, ("issue_refund", {})],
)
THRESHOLD = scenario(
    "a refund over $100 goes to a supervisor",
    [*ELIGIBLE, ("the refund amount is over $100", True, "b66")],
    [("lookup_order", {}), SUPERVISOR],
    not_called=["issue_refund"],
)
FRAUD = scenario(
    "a customer who mentions fraud goes to the Fraud Team",
    [*ELIGIBLE, ("the customer mentions fraud", True, "b99")],
    [("lookup_order", {})],
    not_called=["issue_refund"],
    ending="escalate",
    to="Fraud Team",
)
INVENTED = scenario(
    "an invented tool",
    [*ELIGIBLE, OVER],
    [("lookup_order", {}), ("teleport_parcel", {}), SUPERVISOR],
    not_called=["issue_refund"],
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The refund SOP of sample_sops, compiled offline once."""
    root = tmp_path_factory.mktemp("from-sop")
    sops = root / "sops"
    (sops / "billing").mkdir(parents=True)
    shutil.copy(REPO / "sample_sops/tools.yaml", sops / "tools.yaml")
    shutil.copy(REPO / "sample_sops/billing/refunds-and-credits.pdf", sops / "billing")
    result = CliRunner().invoke(
        app, ["compile", str(sops), "-o", str(root / "out"), "--backend", "offline"]
    )
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def project(compiled: Path, tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(compiled / "sops", tmp_path / "sops")
    shutil.copytree(compiled / "out", tmp_path / "out")
    return tmp_path / "sops", tmp_path / "out"


def _answer(*scenarios: dict[str, Any]) -> str:
    return json.dumps({"scenarios": list(scenarios)})


def _responder(refund: str) -> Any:
    def respond(body: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(body["messages"])
        return completion(refund if "Title: Issuing a refund" in text else _answer())

    return respond


def _env(monkeypatch: pytest.MonkeyPatch, server: LLMServer, cache: Path) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("SOPC_MODEL", "test-model")
    monkeypatch.setenv("SOPC_CACHE_DIR", str(cache))


def test_a_disagreement_is_reported_over_http_and_a_rerun_costs_nothing(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sops, out = project
    args = ["scenarios", str(sops), "-o", str(out), "--from-sop", "--format", "json"]
    answer = _answer(AGREES, DISAGREES, THRESHOLD, FRAUD)
    with LLMServer(responder=_responder(answer)) as server:
        _env(monkeypatch, server, sops.parent / "cache")
        server.queue(Reply(status=429, headers={"Retry-After": "0"}, body={"error": {}}))
        result = CliRunner().invoke(app, args)
        requests = list(server.chat_requests)
        written = (sops / "scenarios/billing" / f"{REFUND}.sop.draft.yaml").read_bytes()
        again = CliRunner().invoke(app, args)
        text = CliRunner().invoke(app, args[:-2])
        calls_again = len(server.chat_requests) - len(requests)
    assert result.exit_code == 0, result.output  # drafts prove nothing: exit 0
    report = json.loads(result.stdout)["from_sop"]
    checks = {check["name"]: check for check in report["checks"]}
    assert checks[AGREES["name"]]["status"] == "agrees", checks[AGREES["name"]]
    wrong = checks[DISAGREES["name"]]
    assert wrong["status"] == "disagrees"
    assert wrong["disagreements"][0] == (
        "expects `issue_refund`; the routine does not call it on that path"
    )
    assert "5a then" in wrong["path"] and wrong["path"].endswith("-> resolve")
    threshold = checks[THRESHOLD["name"]]
    assert threshold["status"] == "disagrees" and threshold["disagreements"] == [
        "step 5a tests 'the refund amount is over $200'; the SOP (b66) says "
        "'the refund amount is over $100'"
    ]
    fraud = checks[FRAUD["name"]]  # the routine has this as an edge case only, no step
    assert fraud["status"] == "disagrees" and fraud["untested"] == [
        "the customer mentions fraud [b99]"
    ]
    assert any(
        d.startswith("ending: expected escalate to Fraud Team") for d in fraud["disagreements"]
    )
    assert checks[AGREES["name"]]["untested"] == [] and checks[AGREES["name"]]["unsettled"] == []
    assert report["summary"]["disagrees"] == 3 and report["summary"]["agrees"] == 1
    # two procedures, one 429 retried; tokens as the server counted them
    assert len(requests) == 3 and report["usage"]["calls"] == 2
    assert report["usage"]["prompt_tokens"] == 2000
    body = requests[-1].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "scenarios"
    prompt = "\n".join(r.messages_text() for r in requests)
    assert "[b66]" in prompt and "refund amount is over $200" in prompt  # the SOP, cited
    # the SOP text alone: nothing of the routine (its rendered calls, step kinds, paths)
    assert "Call `create_ticket` with" not in prompt and "then_step" not in prompt
    assert "Hand off to the Shipping agent" not in prompt and 'billing-supervisors"' not in prompt
    # the drafts: valid scenario files, every one a draft, the decisions of the path replayed
    drafts = load_scenario_file(sops / "scenarios/billing" / f"{REFUND}.sop.draft.yaml")
    assert drafts.routine == REFUND and all(s.draft for s in drafts.scenarios)
    assert [d.step for d in drafts.scenarios[0].decisions][-1] == "5a"
    assert b"# DISAGREES with the routine" in written
    assert not (sops / "scenarios/billing" / f"{CREDIT}.sop.draft.yaml").exists()
    # the rerun: every answer from the cache, the same bytes
    assert again.exit_code == 0 and calls_again == 0
    assert json.loads(again.stdout)["from_sop"]["usage"]["cached_responses"] == 2
    assert (sops / "scenarios/billing" / f"{REFUND}.sop.draft.yaml").read_bytes() == written
    assert "DISAGREES: billing/" in text.stdout and "from the SOP: 4 scenarios, 3 disagree" in (
        text.stdout
    )
    everything = result.output + text.output + written.decode()
    everything += "".join(p.read_text() for p in (sops.parent / "cache").rglob("*.json"))
    assert KEY not in everything


def test_a_malformed_answer_twice_over_is_one_line_and_exit_3(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sops, out = project
    garbage = '{"scenarios": [{"name": "x"}]}'  # every attempt for the refund is malformed
    with LLMServer(responder=_responder(garbage)) as server:
        _env(monkeypatch, server, sops.parent / "cache")
        result = CliRunner().invoke(app, ["scenarios", str(sops), "-o", str(out), "--from-sop"])
        repairs = [r for r in server.chat_requests if "cannot be used" in r.messages_text()]
    assert result.exit_code == 3, result.output
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    head = "error: no scenarios from the SOP: billing/refunds-and-credits.pdf: "
    assert line.startswith(
        f"{head}billing/{REFUND}: no valid scenarios after 3 attempt(s): schema: "
    )
    assert "Traceback" not in result.output and len(repairs) == 2


def _procedures(sops: Path) -> list[Procedure]:
    from sop_compiler.pipeline import read_procedures

    settings = load_settings(sops, overrides={})
    read = read_procedures(
        sops / "billing/refunds-and-credits.pdf", root=sops.resolve(), settings=settings
    )
    return read.procedures


def _run(sops: Path, out: Path, backend: FakeBackend) -> SopDrafts:
    catalog_path = sops / "tools.yaml"
    from sop_compiler.catalog import load_catalog

    catalog = load_catalog(catalog_path, sop_root=sops)
    return asyncio.run(
        draft_from_sop(
            sops / "scenarios",
            output=out,
            procedures=_procedures(sops),
            catalog=catalog,
            backend=backend,
        )
    )


def _fake(sops: Path) -> FakeBackend:
    return FakeBackend(load_settings(sops, overrides={"backend": "fake"}))


def test_the_fake_backend_repairs_a_malformed_answer_and_drops_unknown_tools(
    project: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sops, out = project
    backend = _fake(sops)
    backend.queue("this is no JSON at all", _answer(INVENTED), procedure_id=REFUND)
    report = _run(sops, out, backend)
    [check] = report.checks
    assert check.notes == ["`teleport_parcel` is no catalog tool: dropped from expect.tool_calls"]
    assert check.status == "agrees", check
    refund_calls = [c for c in backend.calls if "Issuing a refund" in c.canonical_json()]
    assert len(refund_calls) == 2 and "cannot be used" in refund_calls[1].canonical_json()
    assert "the answer holds no JSON object" in refund_calls[1].canonical_json()
    render_drafts(report_drafts(), fmt="text", sop=report)
    shown = capsys.readouterr().out
    assert "dropped from expect.tool_calls" in shown and "0 disagree" in shown
    written = yaml.safe_load((sops / "scenarios/billing" / f"{REFUND}.sop.draft.yaml").read_text())
    assert [c["tool"] for c in written[0]["expect"]["tool_calls"]] == [
        "lookup_order",
        "create_ticket",
    ]


def report_drafts() -> Any:
    from sop_compiler.eval.draft import DraftReport

    return DraftReport()


def test_reviewed_or_unreadable_sop_drafts_are_never_overwritten(
    project: tuple[Path, Path],
) -> None:
    sops, out = project
    folder = sops / "scenarios/billing"
    folder.mkdir(parents=True)
    reviewed = folder / f"{REFUND}.sop.draft.yaml"
    reviewed.write_text(
        "- name: kept by a reviewer\n  expect:\n    ending: {kind: resolve}\n", encoding="utf-8"
    )
    broken = folder / f"{CREDIT}.sop.draft.yaml"
    broken.write_text("- name: [unclosed\n", encoding="utf-8")
    before = reviewed.read_bytes(), broken.read_bytes()
    backend = _fake(sops)
    backend.queue(_answer(DISAGREES))
    report = _run(sops, out, backend)
    assert (reviewed.read_bytes(), broken.read_bytes()) == before
    assert backend.calls == [] and backend.pending() == 1  # nothing asked for either
    assert any("holds reviewed scenarios" in note for note in report.notes)
    assert len(report.errors) == 1 and "invalid YAML" in report.errors[0]
    result = CliRunner().invoke(
        app, ["scenarios", str(sops), "-o", str(out), "--from-sop", "--backend", "fake"]
    )
    assert result.exit_code == 2 and (reviewed.read_bytes(), broken.read_bytes()) == before


def test_without_a_model_nothing_changes(project: tuple[Path, Path]) -> None:
    sops, out = project
    offline = CliRunner().invoke(app, ["scenarios", str(sops), "-o", str(out), "--format", "json"])
    assert offline.exit_code == 0 and "from_sop" not in json.loads(offline.stdout)
    assert not list((sops / "scenarios").rglob("*.sop.draft.yaml"))
    needs = CliRunner().invoke(
        app, ["scenarios", str(sops), "-o", str(out), "--from-sop", "--backend", "offline"]
    )
    assert needs.exit_code == 2
    assert needs.stderr.strip().splitlines()[0].startswith("error: --from-sop needs a model")
    # the fake backend with nothing scripted writes no scenario, and says so
    fake = CliRunner().invoke(
        app, ["scenarios", str(sops), "-o", str(out), "--from-sop", "--backend", "fake"]
    )
    assert fake.exit_code == 0, fake.output
    assert "the model wrote no usable scenario" in fake.stdout
    assert not list((sops / "scenarios").rglob("*.sop.draft.yaml"))


def test_a_reviewed_sop_scenario_belongs_to_its_routine_and_eval_runs_it(
    project: tuple[Path, Path],
) -> None:
    assert routine_of(Path(f"billing/{REFUND}.sop.draft.yaml")) == ("billing", REFUND)
    sops, out = project
    backend = _fake(sops)
    backend.queue(_answer(DISAGREES), procedure_id=REFUND)
    _run(sops, out, backend)
    path = sops / "scenarios/billing" / f"{REFUND}.sop.draft.yaml"
    path.write_text(path.read_text().replace("  draft: true\n", ""), encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", str(sops), "-o", str(out), "--format", "json"])
    assert result.exit_code == 1, result.output  # the reviewer kept it: the routine now fails
    [failed] = json.loads(result.stdout)["results"]
    assert failed["routine"] == f"billing/{REFUND}" and failed["status"] == "failed"


def test_a_server_without_json_schema_gets_the_schema_in_the_prompt_and_no_key_is_written(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_server import error

    sops, out = project
    echo = dict(AGREES, message=f"my key is {KEY}")  # a server that echoes the key
    with LLMServer(responder=_responder(_answer(echo))) as server:
        _env(monkeypatch, server, sops.parent / "cache")
        monkeypatch.setenv("SOPC_JOBS", "1")
        server.queue(error(400, "response_format json_schema is not supported by this server"))
        result = CliRunner().invoke(
            app, ["scenarios", str(sops), "-o", str(out), "--from-sop", "--format", "json"]
        )
        kinds = [r.body.get("response_format", {}).get("type") for r in server.chat_requests]
        prompts = [r.messages_text() for r in server.chat_requests]
    assert result.exit_code == 0, result.output
    assert kinds[0] == "json_schema" and set(kinds[1:]) == {"json_object"}
    assert all('"SopScenario"' in text for text in prompts[1:])  # the schema, in the prompt
    [check] = json.loads(result.stdout)["from_sop"]["checks"]
    assert check["status"] == "agrees"
    written = (sops / "scenarios/billing" / f"{REFUND}.sop.draft.yaml").read_text()
    cached = "".join(p.read_text() for p in (sops.parent / "cache").rglob("*.json"))
    assert "my key is ***" in written and KEY not in written + cached + result.output


# --- the replay on synthetic routines: conditions, switches, what the scenario leaves open ------

TOOLS = """\
tools:
  - name: lookup_order
    description: Look up an order.
    parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
  - name: issue_refund
    description: Refund an order.
    access: write
    parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
  - name: create_ticket
    description: Open a ticket.
    access: write
    parameters: {type: object, properties: {team: {type: string}}, required: [team]}
"""


def _routine() -> Any:
    from sop_compiler.models.routine import Routine

    def step(id: str, kind: str = "say", **fields: Any) -> dict[str, Any]:
        return {"id": id, "kind": kind, "text": f"step {id}", **fields}

    def tool(id: str, name: str, **arguments: Any) -> dict[str, Any]:
        args = [{"name": k, "value": v} for k, v in arguments.items()]
        return step(id, "tool_call", tool_call={"tool": name, "arguments": args})

    cases = [{"when": "damaged", "goto": "3"}, {"when": "late", "goto": "5"}]
    return Routine.model_validate(
        {
            "id": "refund",
            "agent": "billing",
            "title": "Refund",
            "trigger": "Use for refunds.",
            "source": {"file": "billing/refund.md", "sha256": "0" * 64},
            "steps": [
                tool("1", "lookup_order"),
                step(
                    "2",
                    "switch",
                    switch={"subject": "the reason for the refund", "cases": cases, "default": "7"},
                ),
                step(
                    "3",
                    "condition",
                    source={"block_ids": ["b4"], "quote": "over $200"},
                    condition={
                        "test": "the amount is over $200",
                        "then_step": "6",
                        "else_step": "4",
                    },
                ),
                tool("4", "issue_refund"),
                step("4a", "resolve"),
                tool("5", "create_ticket", team="late-deliveries"),
                step("6", "escalate", target="Billing Supervisor queue"),
                step("7", "escalate", target="Customer Relations"),
            ],
        }
    )


def _check(tmp_path: Path, wire: dict[str, Any]) -> Any:
    from sop_compiler.catalog import load_catalog
    from sop_compiler.eval.agree import check_scenario
    from sop_compiler.eval.scenario import ScenarioFile
    from sop_compiler.eval.sop_answer import SopScenario, to_scenario

    (tmp_path / "tools.yaml").write_text(TOOLS, encoding="utf-8")
    catalog = load_catalog(tmp_path / "tools.yaml", sop_root=tmp_path)
    routine = _routine()
    parsed = SopScenario.model_validate(wire)
    draft, _ = to_scenario(parsed, agent="billing", catalog=catalog)
    file = ScenarioFile(path="x.sop.draft.yaml", agent="billing", routine="refund", scenarios=[])
    return check_scenario(
        draft,
        parsed.conditions,
        file=file,
        routine=routine,
        routines={("billing", "refund"): routine},
        catalog=catalog,
    )


def test_a_switch_case_and_a_cited_condition_are_settled_from_the_sop_statements(
    tmp_path: Path,
) -> None:
    wire = scenario(
        "a damaged item under the limit is refunded",
        [
            ("the reason for the refund is damaged", True, "b2"),
            ("the amount is over 200 dollars", False, "b4"),
        ],
        [("lookup_order", {}), ("issue_refund", {})],
    )
    decided, check = _check(tmp_path, wire)
    assert check.status == "agrees", check
    assert [(d.step, d.take) for d in decided.decisions] == [("2", "damaged"), ("3", "else")]
    wire["conditions"][1]["holds"] = True  # over the limit: the routine escalates instead
    _, over = _check(tmp_path, wire)
    assert (
        over.status == "disagrees"
        and over.path == "2 damaged, 3 then -> escalate to Billing Supervisor queue"
    )
    assert (
        over.disagreements[0] == "expects `issue_refund`; the routine does not call it on that path"
    )
    assert any(
        d.startswith("ending: expected resolve, actual escalate") for d in over.disagreements
    )


def test_ways_the_scenario_leaves_open_are_named_and_never_called_agreement(
    tmp_path: Path,
) -> None:
    wire = scenario(
        "a late parcel",
        [],
        [("create_ticket", {"team": "late-deliveries"})],
        ending="escalate",
        to="Billing Supervisor queue",
    )
    decided, check = _check(tmp_path, wire)
    assert check.status == "unsettled"
    assert check.unsettled == ["step 2 ('the reason for the refund'): the replay took late"]
    assert [(d.step, d.take) for d in decided.decisions] == [("2", "late")]
    # a statement no step is about: named, so a reviewer sees a branch the routine lacks
    wire["conditions"] = [
        {"statement": "the customer mentions fraud", "holds": True, "source": "b9"}
    ]
    _, fraud = _check(tmp_path, wire)
    assert fraud.untested == ["the customer mentions fraud [b9]"]


def test_a_dry_run_estimates_calls_and_tokens_and_writes_nothing(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sops, out = project
    args = ["scenarios", str(sops), "-o", str(out), "--from-sop"]
    with LLMServer(responder=_responder(_answer(AGREES))) as server:
        _env(monkeypatch, server, sops.parent / "cache")
        dry = CliRunner().invoke(app, [*args, "--dry-run", "--format", "json"])
        asked = len(server.chat_requests)
        assert not (sops / "scenarios").exists()  # not even the path drafts
        assert CliRunner().invoke(app, args).exit_code == 0  # the real run fills the cache
        again = CliRunner().invoke(app, [*args, "--dry-run"])
        calls = len(server.chat_requests)
    assert dry.exit_code == 0, dry.output
    estimate = json.loads(dry.stdout)["from_sop"]["estimate"]
    assert estimate["model_calls"] == 2 and estimate["cached_answers"] == 0
    assert estimate["input_tokens"] > 1000 and asked == 0
    assert "from the SOP (dry run): 0 model calls, 2 answers cached" in again.stdout
    assert calls == 2  # only the real run asked
    alone = CliRunner().invoke(app, ["scenarios", str(sops), "-o", str(out), "--dry-run"])
    assert alone.exit_code == 2 and "--dry-run goes with --from-sop" in alone.stderr
