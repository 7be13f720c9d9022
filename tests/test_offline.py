"""The offline backend: realistic SOPs in, the routine a support lead would expect out."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

from sop_compiler.catalog import load_catalog
from sop_compiler.config import Settings
from sop_compiler.generate import GenerationContext, get_backend, to_routine
from sop_compiler.generate.offline import OfflineBackend, build_draft
from sop_compiler.models import Issue, Procedure, RoutineDraft, Step, ToolCatalog
from sop_compiler.validate import check_draft, validate

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data" / "offline"
AGENTS = ("account", "billing", "shipping", "tech_support")
# Read at import: the autouse fixture removes SOPC_* variables before each test runs.
UPDATE_GOLDEN = os.environ.get("SOPC_UPDATE_GOLDEN") == "1"


def _spec_module() -> Any:
    spec = importlib.util.spec_from_file_location("offline_spec", DATA / "spec.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


procedure_from_spec = _spec_module().procedure_from_spec


@pytest.fixture(scope="module")
def catalog() -> ToolCatalog:
    return load_catalog(None, sop_root=REPO / "sample_sops")


def _draft(spec: str, catalog: ToolCatalog) -> tuple[RoutineDraft, Procedure]:
    procedure = procedure_from_spec(spec)
    return build_draft(procedure, catalog=catalog, agents=AGENTS), procedure


def _steps(draft: RoutineDraft) -> dict[str, Step]:
    out: dict[str, Step] = {}

    def visit(steps: list[Step]) -> None:
        for step in steps:
            out[step.id] = step
            visit(step.substeps)

    visit(draft.steps)
    return out


def _args(step: Step) -> dict[str, Any]:
    assert step.tool_call is not None
    return {
        a.name: a.value if a.value is not None else f"<{a.from_context}>"
        for a in step.tool_call.arguments
    }


def _errors(draft: RoutineDraft, procedure: Procedure, catalog: ToolCatalog) -> list[Issue]:
    issues = check_draft(draft, procedure=procedure, catalog=catalog, settings=Settings())
    return [i for i in issues if i.severity == "error"]


REFUND = (DATA / "damaged-item-refund" / "procedure.txt").read_text(encoding="utf-8")


def test_numbered_steps_with_if_otherwise_tools_and_escalation(catalog: ToolCatalog) -> None:
    draft, procedure = _draft(REFUND, catalog)
    steps = _steps(draft)
    assert [s.id for s in draft.steps] == [str(n) for n in range(1, 11)]
    assert draft.trigger == "Use when a customer reports that an item arrived damaged."
    # step 1 "Greet ... and ask for their order number": a say, then a polite ask
    assert steps["1"].kind == "say" and steps["1a"].kind == "ask"
    assert "Could you please share your order number?" in steps["1a"].text
    # by alias ("order management system"), argument from the ask in step 1a
    assert steps["2"].tool_call and steps["2"].tool_call.tool == "lookup_order"
    assert _args(steps["2"]) == {"order_id": "<the order number the customer gave in step 1a>"}
    # by backticks, enum value bound from "SMS code"
    assert _args(steps["3"])["method"] == "sms_code"
    # if / otherwise across two numbered items
    assert steps["5"].kind == "condition" and steps["5"].condition is not None
    assert steps["5"].condition.test == "the item is damaged beyond use"
    assert (steps["5"].condition.then_step, steps["5"].condition.else_step) == ("5a", "6")
    assert steps["5a"].tool_call and steps["5a"].tool_call.tool == "issue_refund"
    assert _args(steps["5a"]) == {
        "order_id": "<the order number the customer gave in step 1a>",
        "amount": 25,
        "reason": "damaged",
    }
    assert steps["5a"].next_step == "7"  # the then-branch skips the otherwise step
    assert steps["6"].tool_call and steps["6"].tool_call.tool == "create_return_label"
    # escalation under a condition
    assert steps["7a"].kind == "escalate" and steps["7a"].target == "Tier 2 support"
    # an action no tool covers: kept, flagged, never a call of the read-only CRM tool
    assert steps["8"].tool_call is None and "update_crm_notes" in steps["8"].text
    assert [(t.name, t.access, t.step_ids) for t in draft.tools_proposed] == [
        ("update_crm_notes", "write", ["8"])
    ]
    # closing steps per the routine conventions
    assert (steps["9"].kind, steps["10"].kind) == ("ask", "resolve")
    assert [(c.when, c.then) for c in draft.edge_cases] == [
        ("the order is older than 90 days", "Transfer the customer to the Billing team."),
        ("it is about marketplace orders", "Direct the customer to the seller."),
    ]
    assert _errors(draft, procedure, catalog) == []


def test_every_step_cites_its_block_with_a_verbatim_quote(catalog: ToolCatalog) -> None:
    draft, procedure = _draft(REFUND, catalog)
    texts = {b.id: getattr(b, "text", "") for b in procedure.blocks}
    for step in _steps(draft).values():
        if step.kind in ("ask", "resolve") and step.source is None:
            continue  # the closing steps
        assert step.source is not None, step.id
        [block_id] = step.source.block_ids
        assert step.source.quote in texts[block_id]
        assert len(step.source.quote.split()) <= 20
    report = validate(
        to_routine(draft, procedure, catalog),
        procedure=procedure,
        catalog=catalog,
        settings=Settings(),
    )
    assert report.coverage == 1.0


def test_nested_steps_goto_if_not_and_handoff(catalog: ToolCatalog) -> None:
    draft, procedure = _draft(
        (DATA / "lost-parcel" / "procedure.txt").read_text(encoding="utf-8"), catalog
    )
    steps = _steps(draft)
    # nested items are lettered sub-steps; "go to step 5" maps to the step the SOP numbers 5
    assert steps["2"].tool_call and steps["2"].tool_call.tool == "track_shipment"
    assert steps["2a"].condition and steps["2a"].condition.then_step == "2b"
    assert steps["2b"].kind == "ask" and steps["2b"].next_step == "4"
    assert steps["4"].text.startswith("Ask the customer whether they found the parcel")
    # "3. If the parcel is lost:" with bullets below: the bullets are the then-branch;
    # "4. If not, go to step 6." is the else target (SOP step 6 is routine step 5)
    assert steps["3"].condition is not None
    assert (steps["3"].condition.then_step, steps["3"].condition.else_step) == ("3a", "5")
    assert _args(steps["3a"]) == {
        "tracking_number": "<the tracking number the customer gave in step 1>",
        "claim_type": "lost",
    }
    assert steps["3b"].tool_call and steps["3b"].tool_call.tool == "reship_order"
    # "If so, close the case." after a question
    assert (
        steps["4a"].condition
        and steps["4a"].condition.test == "the customer answered yes in step 4"
    )
    assert steps["4b"].kind == "resolve"
    # a handoff to an agent group of this run
    assert steps["5a"].kind == "handoff" and steps["5a"].target == "billing"
    assert ("when", "then") and draft.edge_cases[-1].when == "the carrier rejects the claim"
    questions = " | ".join(draft.open_questions)
    assert '"a large amount"' in questions and '"if needed"' in questions
    assert _errors(draft, procedure, catalog) == []


def test_injected_text_is_left_out_and_never_adds_a_tool(catalog: ToolCatalog) -> None:
    draft, procedure = _draft(
        (DATA / "lost-parcel" / "procedure.txt").read_text(encoding="utf-8"), catalog
    )
    everything = draft.model_dump_json()
    assert all("Ignore all previous instructions" not in s.text for s in _steps(draft).values())
    assert "refunds_every" not in everything and "add_tool" not in everything
    assert any("left out of the steps" in q for q in draft.open_questions)
    called = {s.tool_call.tool for s in _steps(draft).values() if s.tool_call}
    assert called <= set(catalog.names())
    issues = check_draft(draft, procedure=procedure, catalog=catalog, settings=Settings())
    assert [i.code for i in issues].count("possible_injection") == 1


def test_paragraph_steps_when_in_case_should_and_unknown_goto(catalog: ToolCatalog) -> None:
    text = (DATA / "router-paragraphs" / "procedure.txt").read_text(encoding="utf-8")
    draft, procedure = _draft(text, catalog)
    steps = _steps(draft)
    assert draft.trigger == "Use for a customer who cannot get online at home."
    assert steps["2"].tool_call and steps["2"].tool_call.tool == "check_service_status"
    assert _args(steps["2"]) == {"postcode": "<the postcode the customer gave in step 1>"}
    assert steps["2a"].condition and steps["2a"].condition.test == "there is a known outage"
    assert steps["2c"].kind == "resolve"
    assert steps["3"].tool_call and steps["3"].tool_call.tool == "run_line_diagnostics"
    assert steps["3b"].tool_call and _args(steps["3b"])["window"] == "morning"
    assert steps["3a"].condition and steps["3a"].condition.else_step == "3c"
    assert steps["3e"].kind == "handoff" and steps["3e"].target == "tech_support"
    # "go to step 9" names no step of this procedure: no invented target, an open question
    assert steps["3c"].next_step is None
    assert (
        "Step 3c refers to step 9, which is not part of this procedure; it continues with the "
        "next step instead." in draft.open_questions
    )
    assert _errors(draft, procedure, catalog) == []
    assert any('"the customer is abusive" does not hold' in q for q in draft.open_questions)


def test_only_bullets_become_steps_from_imperative_sentences(catalog: ToolCatalog) -> None:
    draft, procedure = _draft(
        """
# Invoice address change
Customers sometimes move house.
- Ask the customer for the invoice number and the new billing address.
- Correct the invoice with `correct_invoice`.
- Tell the customer the corrected invoice arrives by email.
""",
        catalog,
    )
    steps = _steps(draft)
    assert [s.kind for s in draft.steps] == ["ask", "tool_call", "say", "ask", "resolve"]
    assert _args(steps["2"]) == {
        "invoice_id": "<the invoice number the customer gave in step 1>",
        "correction": "<the correction from the conversation>",
    }
    assert _errors(draft, procedure, catalog) == []


def test_without_catalog_tools_named_in_the_sop_are_proposed() -> None:
    draft, _ = _draft(
        """
# Refund
1. Look up the order with `lookup_order`.
2. Issue the refund.
3. Close the case.
""",
        ToolCatalog(),
    )
    steps = _steps(draft)
    assert all(s.tool_call is None for s in steps.values())
    assert [(t.name, t.access, t.step_ids) for t in draft.tools_proposed] == [
        ("lookup_order", "read", ["1"]),
        ("issue_refund", "write", ["2"]),
    ]
    assert steps["3"].kind == "resolve" and len(draft.steps) == 3  # ends already: no closing steps


def test_exceptions_and_escalation_sections_become_edge_cases(catalog: ToolCatalog) -> None:
    draft, _ = _draft(
        """
# Account closure
1. Verify the customer's identity with a photo ID.
2. Close the account with `close_account`.
## Exceptions
- If the account has an unpaid balance, transfer the customer to billing.
- Business accounts: escalate to the Enterprise team.
## Escalation
Escalate to the Fraud team if the customer reports unauthorized access.
| Situation | Action |
| Customer is deceased | Ask for a death certificate |
""",
        catalog,
    )
    assert [(c.when, c.then) for c in draft.edge_cases] == [
        ("the account has an unpaid balance", "Transfer the customer to billing."),
        ("it is about business accounts", "Escalate to the Enterprise team."),
        ("the customer reports unauthorized access", "Escalate to the Fraud team."),
        ("customer is deceased", "Ask for a death certificate"),
    ]
    steps = _steps(draft)
    assert _args(steps["1"])["method"] == "photo_id"
    assert all("Exceptions" not in s.text for s in steps.values())


def test_procedure_with_no_steps_says_so(catalog: ToolCatalog) -> None:
    draft, procedure = _draft("# Opening hours\nThe contact centre is open 8am to 8pm.\n", catalog)
    assert [s.kind for s in draft.steps] == [
        "resolve"
    ]  # no customer in the text: no "anything else?"
    assert any("found no steps" in q for q in draft.open_questions)
    assert _errors(draft, procedure, catalog) == []


def test_same_input_gives_identical_json(catalog: ToolCatalog) -> None:
    first, _ = _draft(REFUND, catalog)
    second, _ = _draft(REFUND, catalog)
    assert first.model_dump_json() == second.model_dump_json()
    reordered = ToolCatalog(tools=list(reversed(catalog.tools)))
    third, _ = _draft(REFUND, reordered)
    assert third.model_dump_json() == first.model_dump_json()


def test_backend_generate_validates_once_and_is_registered(catalog: ToolCatalog) -> None:
    settings = Settings(backend="offline")
    backend = get_backend(settings)
    assert isinstance(backend, OfflineBackend) and backend.uses_model is False
    procedure = procedure_from_spec(REFUND)
    calls: list[RoutineDraft] = []

    def check(draft: RoutineDraft) -> list[Issue]:
        calls.append(draft)
        return check_draft(draft, procedure=procedure, catalog=catalog, settings=settings)

    context = GenerationContext(catalog=catalog, settings=settings, agents=AGENTS)
    result = asyncio.run(backend.generate(procedure, context=context, validate=check))
    assert result.draft is not None and len(calls) == 1 and result.attempts == 1
    assert [i.code for i in result.issues] == [i.code for i in check(result.draft)]


@pytest.mark.parametrize("scenario", ["damaged-item-refund", "lost-parcel", "router-paragraphs"])
def test_golden(scenario: str, catalog: ToolCatalog) -> None:
    folder = DATA / scenario
    draft, _ = _draft((folder / "procedure.txt").read_text(encoding="utf-8"), catalog)
    actual = draft.model_dump_json(indent=2) + "\n"
    expected = folder / "expected.json"
    if UPDATE_GOLDEN:
        expected.write_text(actual, encoding="utf-8")
    assert expected.read_text(encoding="utf-8") == actual


def test_multi_sentence_conditional_items_and_escalation_with_ticket(catalog: ToolCatalog) -> None:
    text = (DATA / "multi-sentence-items" / "procedure.txt").read_text(encoding="utf-8")
    draft, procedure = _draft(text, catalog)
    steps = _steps(draft)
    # "If no account ..." is a condition (not "If no," = otherwise); its item is its branch
    assert steps["1a"].condition and steps["1a"].condition.test == "no account matches"
    assert (steps["1a"].condition.then_step, steps["1a"].condition.else_step) == ("1b", "2")
    assert steps["1d"].next_step == "3"  # "go to step 3": the SOP's step 3
    # a backticked enum value of a catalog tool is a call of that tool, never a proposed tool
    assert steps["2b"].tool_call and _args(steps["2b"])["method"] == "sms_code"
    assert draft.tools_proposed == []
    # escalating "with `create_ticket`" is the ticket: one call, and the SOP's "go to" holds
    assert steps["2c"].condition and steps["2c"].condition.else_step == "3"
    assert steps["2e"].tool_call and _args(steps["2e"])["team"] == "Account Security team"
    assert steps["2e"].text.startswith("Escalate to the Account Security team")
    assert steps["2e"].next_step == "3" and "2f" not in steps
    assert steps["3"].text == "Ask whether there is anything else you can help with."
    assert steps["3a"].kind == "resolve" and len(draft.steps) == 3
    assert _errors(draft, procedure, catalog) == []


def test_escalating_with_a_ticket_binds_the_team_the_sop_spells_out(catalog: ToolCatalog) -> None:
    draft, _ = _draft(
        """# Line fault
1. Book an engineer visit with `schedule_technician`.
2. If the earliest window is more than 3 days away, escalate to the Network Operations queue \
with `create_ticket` (priority high, team network-operations).
3. Tell the customer the date of the visit.
""",
        catalog,
    )
    steps = _steps(draft)
    # one ticket call, no second "escalate" step repeating it; the case goes on to step 3
    assert steps["2a"].tool_call and steps["2a"].tool_call.tool == "create_ticket"
    assert _args(steps["2a"])["team"] == "network-operations"
    assert _args(steps["2a"])["priority"] == "high"
    assert "2b" not in steps and steps["2"].condition and steps["2"].condition.else_step == "3"


def test_otherwise_answers_the_items_own_condition_and_ends_its_branch(
    catalog: ToolCatalog,
) -> None:
    draft, _ = _draft(
        """# Accepting a return
1. Look up the order with `lookup_order`.
2. Check the return window.
   a. If the return window has passed, explain the policy and do not create a label. \
If the customer says the item is faulty, transfer the customer to Tech Support instead.
   b. Otherwise, continue with step 3.
3. Create a return label with `create_return_label`.
4. Ask whether there is anything else you can help with, then close the contact.
""",
        catalog,
    )
    steps = _steps(draft)
    passed = steps["2a"].condition
    assert passed and passed.test == "the return window has passed" and passed.else_step == "3"
    # window passed and not faulty: no label is made, the case wraps up at step 4
    faulty = next(s for s in steps.values() if s.condition and "faulty" in s.condition.test)
    assert faulty.condition and faulty.condition.else_step == "4"


def test_sub_items_of_a_conditional_step_run_only_when_it_holds(catalog: ToolCatalog) -> None:
    draft, _ = _draft(
        """# Damaged
1. Look up the order with `lookup_order`.
2. If the damage is only cosmetic, offer a replacement or a partial refund.
   - If they choose the partial refund, transfer the customer to Billing.
   - Otherwise, reship the order with `reship_order`.
3. If the item is unusable, open a carrier claim with `open_carrier_claim`, claim type \
`damaged`, and reship the order with `reship_order`.
""",
        catalog,
    )
    steps = _steps(draft)
    assert steps["2"].condition and steps["2"].condition.else_step == "3"  # not into 2b
    # "..., and reship the order": a second call, not lost in the first one's text
    calls = [s.tool_call.tool for s in _steps(draft).values() if s.tool_call and s.id >= "3"]
    assert calls == ["open_carrier_claim", "reship_order"]


def test_phrasing_that_is_no_tool_call_and_tools_named_in_words(catalog: ToolCatalog) -> None:
    draft, _ = _draft(
        """# Closing an account
1. Verify the caller's identity with `verify_identity`, using method `sms_code`.
   1. If the customer has no mobile number on file, use security questions instead.
   2. If verification fails, do not close the account; follow CC-ACC-002 Identity Verification.
2. Find the order and the payment.
   1. Find the order with `lookup_order`.
3. Tell the customer what closure means: order history is kept for 7 years.
4. Ask them to connect one device and open any website.
5. Book a collection of the damaged item with the carrier.
6. Close the account with `close_account`.
""",
        catalog,
    )
    steps = _steps(draft)
    assert _args(steps["1b"]) == {
        "customer_id": "<the same customer ID as in step 1>",
        "method": "security_questions",
    }
    follow = next(s for s in steps.values() if s.text.startswith("Follow CC-ACC-002"))
    assert follow.tool_call is None and follow.next_step == "7"  # that SOP takes over: wrap up
    assert steps["7"].text.startswith("Ask whether there is anything else")
    assert [(t.name, t.step_ids) for t in draft.tools_proposed] == [("book_collection", ["5"])]
    assert steps["3"].substeps == [] and steps["4"].substeps == []


def test_trigger_comes_from_when_to_use_not_from_definitions(catalog: ToolCatalog) -> None:
    procedure = procedure_from_spec(
        """# Returns
## Definitions
Exchange: a return where the customer wants the same item in another size.
## When to use
Use this procedure when a customer asks for their money back for an order.
## Steps
1. Look up the order with `lookup_order`.
2. Issue the refund with `issue_refund`.
"""
    )
    definitions, when, steps = procedure.blocks[1:3], procedure.blocks[3:5], procedure.blocks[5:]
    procedure = procedure.model_copy(
        update={
            "context": [
                b.model_copy(update={"prov": b.prov.model_copy(update={"heading_path": [t]})})
                for b, t in ((definitions[1], "Definitions"), (when[1], "When to use"))
            ],
            "blocks": steps,
            "title": "Issuing a refund",
        }
    )
    draft = build_draft(procedure, catalog=catalog, agents=AGENTS)
    assert draft.trigger.endswith("when a customer asks for their money back for an order.")
    assert "same item" not in draft.trigger


def test_a_section_lead_in_is_the_first_step_of_each_procedure(catalog: ToolCatalog) -> None:
    from sop_compiler.models import Document, Heading, ListItem, Paragraph, Provenance
    from sop_compiler.segment import segment

    blocks: list[Heading | Paragraph | ListItem] = []

    def add(kind: type, text: str, **kw: Any) -> None:
        prov = Provenance(file="billing/refunds.md", paragraph=len(blocks))
        blocks.append(kind(id=f"b{len(blocks)}", prov=prov, text=text, **kw))

    add(Heading, "Refunds and Credits", level=1)
    add(Heading, "3 Procedure", level=1)
    add(Paragraph, "Before you start, open the customer's record and read the last three contacts.")
    tools = (("Issuing a refund", "lookup_order"), ("Applying a credit", "lookup_customer"))
    for title, first in tools:
        add(Heading, title, level=2)
        add(Heading, "When to use", level=3)
        add(Paragraph, f"Use this procedure when a customer asks about {title.lower()}.")
        add(Heading, "Steps", level=3)
        add(ListItem, f"Look them up with `{first}`.", marker="1.", ordered=True)
        add(ListItem, "Tell the customer what happens next.", marker="2.", ordered=True)
    document = Document(source="billing/refunds.md", format="markdown", sha256="0" * 64)
    document.blocks = list(blocks)
    procedures = segment(document, agent="billing")
    assert [p.title for p in procedures] == ["Issuing a refund", "Applying a credit"]
    for procedure, (_, tool) in zip(procedures, tools, strict=True):
        draft = build_draft(procedure, catalog=catalog, agents=AGENTS)
        first = draft.steps[0]
        assert first.text.startswith("Before you start, open the customer's record")
        assert first.source is not None and first.source.block_ids == ["b2"]
        assert draft.steps[1].tool_call is not None and draft.steps[1].tool_call.tool == tool
        # the trigger still comes from the procedure's own "When to use", not the lead-in
        assert draft.trigger == f"Use when a customer asks about {procedure.title.lower()}."
        assert _errors(draft, procedure, catalog) == []


def test_context_is_background_never_a_step(catalog: ToolCatalog) -> None:
    procedure = procedure_from_spec("# Issuing a refund\n1. Issue the refund with `issue_refund`.")
    lead = procedure_from_spec("Open the customer's record first.").blocks[0]
    parent = lead.model_copy(update={"prov": lead.prov.model_copy(update={"heading_path": ["A"]})})
    procedure = procedure.model_copy(
        update={"heading_path": ["A", "Issuing a refund"], "context": [parent]}
    )
    draft = build_draft(procedure, catalog=catalog, agents=AGENTS)
    # segment decides what the steps are: a lead-in it kept as context stays out of them
    assert all("record" not in step.text for step in _steps(draft).values())


def test_a_finding_that_means_follow_another_sop_ends_the_routine(catalog: ToolCatalog) -> None:
    step_1 = (
        "1. Run a line test with `run_line_diagnostics`. A line fault means the router is not to"
        " blame: follow CC-TS-001 Internet Outage Troubleshooting. If the test passes, transfer"
        " the customer to Shipping."
    )
    draft, procedure = _draft(
        f"# Router setup\n{step_1}\n2. Ask the customer to connect one device.\n", catalog
    )
    steps = _steps(draft)
    check = next(s for s in steps.values() if s.kind == "condition")
    assert check.condition is not None
    assert check.condition.test == "there is a line fault (the router is not to blame)"
    follow = steps[check.condition.then_step]
    assert follow.text.startswith("Follow CC-TS-001") and follow.tool_call is None
    # that SOP takes over: the case wraps up instead of carrying on with step 2
    assert follow.next_step is not None and steps[follow.next_step].text.startswith(
        "Ask whether there is anything else"
    )
    assert "line fault" not in steps["1"].text
    assert _errors(draft, procedure, catalog) == []


def test_defined_terms_are_no_instructions() -> None:
    from sop_compiler.text import is_instruction

    assert not is_instruction("Refund: money returned to the customer's original payment method.")
    assert not is_instruction("Document ID: CC-ACC-003 Owner: Grace Okafor")
    assert is_instruction("Check the order: it must be delivered.")
    assert is_instruction("Marketplace orders: direct the customer to the seller.")


def test_a_reference_table_with_several_columns_names_them(catalog: ToolCatalog) -> None:
    draft, _ = _draft(
        """# Issuing a refund
1. Issue the refund with `issue_refund`.
## Approval limits
| Role | Refund limit | Approval needed |
| Billing Agent | Up to $50 | None |
""",
        catalog,
    )
    # a table of values is reference knowledge, each cell with its column
    assert [k.fact for k in draft.knowledge] == [
        "Role: Billing Agent; Refund limit: Up to $50; Approval needed: None"
    ]
    assert draft.knowledge[0].source is not None
    assert draft.knowledge[0].source.quote == "Billing Agent Up to $50 None"
    assert draft.edge_cases == []


def test_alternative_cases_are_an_else_if_chain_that_ends_after_the_group(
    catalog: ToolCatalog,
) -> None:
    draft, procedure = _draft(
        """# Invoice corrections
1. Open the invoice with `get_invoice`.
2. Ask the customer what is wrong with the invoice.
   1. If the billing name is wrong, reissue the invoice with `correct_invoice`.
   2. If the VAT number is missing, correct it with `correct_invoice`.
   3. If an amount is wrong for any other reason and the difference is over $100, escalate \
to the Billing Supervisor queue with `create_ticket`. Otherwise, correct the amount with \
`correct_invoice`.
3. Tell the customer the corrected invoice will arrive by email.
""",
        catalog,
    )
    steps = _steps(draft)
    name, vat, amount, over = steps["2a"], steps["2c"], steps["2e"], steps["2f"]
    assert name.condition and name.condition.else_step == "2c"  # else-if, not fall-through
    assert vat.condition and vat.condition.else_step == "2e"
    assert steps["2b"].next_step == "3" and steps["2d"].next_step == "3"  # each case ends
    # "If A and B, X. Otherwise, Y.": the otherwise answers B inside case A
    assert amount.condition and amount.condition.test == "an amount is wrong for any other reason"
    assert amount.condition.else_step == "3"
    assert over.condition and over.condition.test == "the difference is over $100"
    assert (over.condition.then_step, over.condition.else_step) == ("2g", "2h")
    assert steps["2g"].next_step == "3" and steps["2h"].text.startswith("Correct the amount")
    assert any("none of its 3 cases" in q for q in draft.open_questions)
    assert _errors(draft, procedure, catalog) == []


def test_fallbacks_of_a_step_are_no_alternatives(catalog: ToolCatalog) -> None:
    draft, _ = _draft(
        """# Password reset
1. Verify the customer with `verify_identity` using method `email_code`.
   1. If the customer cannot access their email, use method `sms_code` instead.
   2. If verification fails three times, escalate to the Account Security team with \
`create_ticket` and go to step 2.
2. Ask whether there is anything else you can help with.
""",
        catalog,
    )
    steps = _steps(draft)
    # after the SMS fallback the failure check still runs
    assert steps["1b"].next_step is None and steps["1c"].condition is not None


def test_approval_comes_before_the_action_and_the_routine_goes_on(catalog: ToolCatalog) -> None:
    draft, _ = _draft(
        """# Lost parcel
1. Ask the customer whether they want a replacement or a refund.
   1. If they want a replacement, reship the order with `reship_order`. If the order total \
is over $300, escalate to the Shipping Supervisor queue for approval before you reship.
   2. If they want a refund, transfer the customer to Billing.
2. Build the evidence pack.
   1. Upload the evidence pack to the dispute portal.
3. If the disputed amount is over $1,000, escalate to the Billing Supervisor queue before \
you submit the evidence.
4. If a chargeback is open, never refund it: escalate to the Billing Supervisor queue and go \
to step 5.
5. Ask whether there is anything else you can help with.
""",
        catalog,
    )
    steps = _steps(draft)
    order = [s.text.split()[0] for s in steps.values()]
    kinds = {s.id: s for s in steps.values()}
    reship = next(s for s in steps.values() if s.tool_call and s.tool_call.tool == "reship_order")
    approval = next(s for s in steps.values() if "for approval" in s.text)
    assert order.index("Escalate") < order.index("Reship")
    assert approval.kind == "tool_call" and approval.tool_call is not None
    assert approval.tool_call.tool == "create_ticket" and _args(approval)["team"] == (
        "Shipping Supervisor queue"
    )
    assert int(approval.id[0]) == int(reship.id[0]) and approval.id < reship.id
    upload = next(s for s in steps.values() if s.text.startswith("Upload"))
    submit = next(s for s in steps.values() if "before you submit" in s.text)
    assert submit.id < upload.id and submit.kind == "tool_call"
    # an escalation the SOP goes on after is a ticket that keeps the SOP's "go to step 5"
    chargeback = next(
        s for s in steps.values() if s.text.startswith("Escalate to the Billing") and s.next_step
    )
    assert chargeback.kind == "tool_call" and kinds[chargeback.next_step].text.startswith("Ask")


def test_a_branch_that_says_the_request_cannot_go_on_ends_the_case(catalog: ToolCatalog) -> None:
    draft, _ = _draft(
        """# Reopening an account
1. Verify the caller's identity with `verify_identity`.
2. If the account was closed more than 14 days ago, explain that it cannot be reopened and \
offer to help the customer open a new account. Otherwise, open a ticket with `create_ticket`.
3. Tell the customer the account will be reopened within one business day.
""",
        catalog,
    )
    steps = _steps(draft)
    assert steps["2b"].next_step == "4" and steps["4"].text.startswith("Ask whether")
    assert steps["2c"].tool_call and steps["2c"].next_step is None  # the ticket goes on to 3


def test_proposed_tools_never_duplicate_catalog_tools_and_share_one_name(
    catalog: ToolCatalog,
) -> None:
    draft, _ = _draft(
        """# Password reset
1. Look up the customer with `lookup_customer`.
2. Send a password reset link with `send_password_reset`.
3. If the customer has not received the email, check the email address on the account and \
send the link once more.
4. Offer the retention discount in the retention offers tool.
5. Record the outcome in the case notes.
6. Record a case note with the ticket number.
""",
        catalog,
    )
    steps = _steps(draft)
    resend = next(s for s in steps.values() if s.text.startswith("Send the link once more"))
    assert resend.tool_call and resend.tool_call.tool == "send_password_reset"
    check = next(s for s in steps.values() if s.text.startswith("Check the email address"))
    assert "`lookup_customer` returned in step 1" in check.text
    assert [(t.name, t.step_ids) for t in draft.tools_proposed] == [
        ("offer_retention_discount", ["4"]),
        ("record_case_note", ["5", "6"]),
    ]


def test_trigger_is_a_routing_sentence_for_this_procedure() -> None:
    from sop_compiler.generate.offline.sections import sections
    from sop_compiler.generate.offline.trigger import trigger_for

    def trigger(title: str, purpose: str) -> str:
        procedure = procedure_from_spec(f"# {title}\n1. Look up the order.\n")
        context = procedure_from_spec(f"# Purpose\n{purpose}\n").blocks
        context = [
            b.model_copy(update={"prov": b.prov.model_copy(update={"heading_path": ["Purpose"]})})
            for b in context[1:]
        ]
        procedure = procedure.model_copy(update={"context": context, "title": title})
        return trigger_for(procedure, sections(procedure))

    shared = "This procedure explains how agents handle a parcel that the customer reports as \
lost or that arrived damaged."
    assert trigger("Package reported lost", shared) == (
        "Use for a parcel that the customer reports as lost."
    )
    assert trigger("Package arrived damaged", shared) == "Use for a parcel that arrived damaged."
    invoices = "Customers, most often small businesses, ask us to correct an invoice."
    assert trigger("Invoice Corrections", invoices) == (
        "Use when a customer asks us to correct an invoice."
    )
    assert trigger("Reopening an account", "To keep accounts safe.") == (
        "Use when a customer asks to reopen an account."
    )
    assert trigger("Identity Verification", "Roles and definitions.") == (
        "Use for identity verification."
    )


def test_anything_else_only_for_customer_facing_procedures(catalog: ToolCatalog) -> None:
    back_office, _ = _draft(
        "# Nightly close\n1. Export the ledger.\n2. Archive the logs.\n", catalog
    )
    assert not any("anything else" in s.text.lower() for s in back_office.steps)
    assert back_office.steps[-1].kind == "resolve"
    facing, _ = _draft(
        "# Greet\n1. Greet the customer.\n2. Note the reason for the call.\n", catalog
    )
    assert any("anything else" in s.text.lower() for s in facing.steps)


def test_getting_the_customer_somewhere_is_no_question_for_them(catalog: ToolCatalog) -> None:
    # "Get the customer back on supply first" asks them for nothing; "get the order number"
    # still does
    spec = (
        "# Off supply\n1. Get the customer back on supply first.\n"
        "2. Get the customer's order number.\n"
    )
    steps = _steps(_draft(spec, catalog)[0])
    assert steps["1"].kind != "ask" and "Could you" not in steps["1"].text
    assert steps["1"].tool_call is None
    assert steps["2"].kind == "ask"


def test_an_aside_with_commas_is_no_list_of_orders(catalog: ToolCatalog) -> None:
    # "(skip it, don't cancel)" is the first order's aside: no step "Don't cancel)."
    spec = (
        "# Unpaid accounts\n1. Take them off the next visit (skip it, don't cancel) and add "
        "them to the list for me.\n"
    )
    texts = [s.text for s in _steps(_draft(spec, catalog)[0]).values()]
    assert any("(skip it, don't cancel)" in t for t in texts), texts
    assert not any(t.startswith(("Don't cancel", "Skip it")) for t in texts), texts
    assert any(t.startswith("Add them to the list") for t in texts), texts


def test_our_own_system_hides_no_tool_and_you_must_not_keeps_its_not(
    catalog: ToolCatalog, tmp_path: Path
) -> None:
    tools = tmp_path / "tools.yaml"
    tools.write_text(
        "tools:\n  - name: log_incident\n    description: Write up an incident (injury, damage)"
        " with photos.\n    access: write\n",
        encoding="utf-8",
    )
    incidents = load_catalog(tools, sop_root=tmp_path)
    spec = (
        "# Damage at reset\n1. Photograph the damage and write up an incident on the system.\n"
        "2. You must not charge the last team for damage.\n"
    )
    steps = _steps(_draft(spec, incidents)[0])
    calls = [s.tool_call.tool for s in steps.values() if s.tool_call]
    assert calls == ["log_incident"]  # "on the system" names no other system
    assert any(s.text == "You must not charge the last team for damage." for s in steps.values())
