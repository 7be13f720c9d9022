"""segment: procedures from the heading tree, stable ids; slug and identifier safety."""

from __future__ import annotations

import keyword
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sop_compiler.models import (
    Document,
    Figure,
    Heading,
    ImageRef,
    ListItem,
    Notice,
    Paragraph,
    Procedure,
    Provenance,
    Table,
)
from sop_compiler.segment import segment
from sop_compiler.slug import dedupe, identifier, slugify

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class _Doc:
    """Builds a Document block by block, the way a reader would."""

    def __init__(self, source: str = "billing/refunds.md") -> None:
        self.source = source
        self.blocks: list[Heading | Paragraph | ListItem | Figure] = []

    def _prov(self) -> Provenance:
        return Provenance(file=self.source, paragraph=len(self.blocks))

    def _id(self) -> str:
        return f"b{len(self.blocks)}"

    def h(self, text: str, level: int = 1) -> _Doc:
        self.blocks.append(Heading(id=self._id(), prov=self._prov(), text=text, level=level))
        return self

    def p(self, text: str) -> _Doc:
        self.blocks.append(Paragraph(id=self._id(), prov=self._prov(), text=text))
        return self

    def steps(self, *texts: str) -> _Doc:
        for number, text in enumerate(texts, 1):
            marker = f"{number}."
            self.blocks.append(
                ListItem(id=self._id(), prov=self._prov(), text=text, marker=marker, ordered=True)
            )
        return self

    def figure(self, caption: str | None = None) -> _Doc:
        image = ImageRef(sha256="f" * 64, mime="image/png", width=10, height=10)
        self.blocks.append(Figure(id=self._id(), prov=self._prov(), image=image, caption=caption))
        return self

    def doc(self, title: str | None = None, notices: list[Notice] | None = None) -> Document:
        return Document(
            source=self.source,
            format="markdown",
            sha256="a" * 64,
            title=title,
            blocks=list(self.blocks),
            notices=notices or [],
        )


def _ids(procedure: Procedure) -> list[str]:
    return [block.id for block in procedure.blocks]


def _summary(procedures: list[Procedure]) -> list[tuple[str, str]]:
    return [(p.id, p.title) for p in procedures]


def _refunds() -> Document:
    return (
        _Doc()
        .h("Refunds SOP")
        .h("1. Purpose", 2)
        .p("How agents handle refunds.")
        .h("2. Scope", 2)
        .p("All orders.")
        .h("3. Issue a refund", 2)
        .steps("Look up the order.", "Issue the refund.")
        .h("3.1 Exceptions", 3)
        .steps("If the order is older than 90 days, escalate.", "Log it.")
        .h("3.2 Notes", 3)
        .p("Refunds take 5 days.")
        .h("4. Partial refund", 2)
        .steps("Ask which items are damaged.", "Refund those items.")
        .h("5. Escalation", 2)
        .p("Escalate to the billing team.")
        .doc()
    )


def test_each_section_with_steps_is_a_procedure_and_subsections_stay() -> None:
    procedures = segment(_refunds(), agent="billing")
    assert _summary(procedures) == [
        ("refunds--issue-a-refund", "Issue a refund"),
        ("refunds--partial-refund", "Partial refund"),
    ]
    issue, partial = procedures
    # heading, steps, exceptions, notes, then the escalation rules both procedures share
    assert _ids(issue) == [f"b{i}" for i in range(5, 13)] + ["b16", "b17"]
    assert _ids(partial) == ["b13", "b14", "b15", "b16", "b17"]
    assert issue.heading_path == ["Refunds SOP", "Issue a refund"]
    assert issue.agent == "billing" and issue.source == "billing/refunds.md"
    assert issue.source_sha256 == "a" * 64
    # Purpose and scope are every procedure's background context (not read as steps).
    context = [block.id for block in partial.context]
    assert context == ["b1", "b2", "b3", "b4"]
    assert not set(context) & set(_ids(partial))


def test_single_procedure_takes_the_file_stem_and_a_generic_title_is_replaced() -> None:
    document = (
        _Doc("account/password-reset.md")
        .h("Password reset")
        .h("Purpose", 2)
        .p("Resets.")
        .h("Procedure", 2)
        .steps("Verify identity.", "Send the reset link.")
        .h("Escalation", 2)
        .p("Escalate to security.")
        .doc()
    )
    (procedure,) = segment(document, agent="account")
    assert procedure.id == "password-reset"
    assert procedure.title == "Password reset"
    assert [b.id for b in procedure.context] == ["b1", "b2"]
    assert _ids(procedure) == ["b3", "b4", "b5", "b6", "b7"]  # escalation stays with the steps


def test_no_headings_numbered_steps() -> None:
    document = _Doc("shipping/lost_parcel.txt").steps("Track it.", "Open a claim.").doc()
    (procedure,) = segment(document, agent="shipping")
    assert procedure.id == "lost-parcel"
    assert procedure.title == "Lost parcel"
    assert _ids(procedure) == ["b0", "b1"]
    titled = _Doc("x.txt").steps("Track it.", "Open a claim.").doc(title="Lost parcels")
    assert segment(titled, agent="general")[0].title == "Lost parcels"


def test_imperative_paragraphs_count_as_steps() -> None:
    document = (
        _Doc()
        .h("Guide")
        .h("Background", 2)
        .p("Some history.")
        .h("Greeting", 2)
        .p("Greet the customer.")
        .p("Ask for the order number.")
        .p("Check it.")
        .h("Closing", 2)
        .p("Thank the customer.")
        .p("Close the ticket.")
        .p("Log the call.")
        .doc()
    )
    assert [p.title for p in segment(document, agent="a")] == ["Greeting", "Closing"]


def test_policy_only_document_is_one_procedure() -> None:
    document = (
        _Doc("general/conduct.md")
        .h("Code of conduct")
        .p("Be polite.")
        .h("Privacy", 2)
        .p("Never share data.")
        .doc()
    )
    (procedure,) = segment(document, agent="general")
    assert procedure.id == "conduct" and procedure.title == "Code of conduct"
    assert _ids(procedure) == ["b0", "b1", "b2", "b3"]
    assert procedure.context == []


def test_figure_only_document() -> None:
    where = Provenance(file="f.png", paragraph=0)
    notice = Notice(code="figure_unread", message="not read", prov=where)
    document = _Doc("tech/flow.png").figure().doc(notices=[notice])
    (procedure,) = segment(document, agent="tech")
    assert procedure.id == "flow" and _ids(procedure) == ["b0"]
    assert procedure.notices == [notice]


def test_notices_follow_their_blocks() -> None:
    far = Notice(code="figure_unread", message="x", prov=Provenance(file="r.md", paragraph=99))
    near = Notice(code="figure_unread", message="y", prov=Provenance(file="r.md", paragraph=6))
    everywhere = Notice(code="encoding", message="latin-1")
    document = _refunds().model_copy(update={"notices": [far, near, everywhere]})
    issue, partial = segment(document, agent="billing")
    assert issue.notices == [near, everywhere]
    assert partial.notices == [everywhere]


def test_nested_procedure_groups() -> None:
    document = (
        _Doc("billing/all.md")
        .h("Billing")
        .p("Applies to all billing contacts.")
        .h("Refunds", 2)
        .h("Full refund", 3)
        .steps("Check.", "Refund.")
        .h("Partial refund", 3)
        .steps("Ask.", "Refund part.")
        .h("Invoices", 2)
        .steps("Find the invoice.", "Correct it.")
        .doc()
    )
    procedures = segment(document, agent="billing")
    assert [p.heading_path for p in procedures] == [
        ["Billing", "Refunds", "Full refund"],
        ["Billing", "Refunds", "Partial refund"],
        ["Billing", "Invoices"],
    ]
    assert [b.id for b in procedures[0].context] == ["b1"]


def test_section_with_own_steps_and_child_procedures_loses_nothing() -> None:
    document = (
        _Doc()
        .h("Returns")
        .steps("Greet.", "Ask for the order.")
        .h("Damaged", 2)
        .steps("Ask for photos.", "Reship.")
        .h("Wrong item", 2)
        .steps("Create a label.", "Reship.")
        .doc()
    )
    procedures = segment(document, agent="a")
    covered = sorted(b.id for p in procedures for b in p.blocks)
    assert covered == sorted(b.id for b in document.blocks)
    assert [p.title for p in procedures] == ["Returns", "Damaged", "Wrong item"]


def _numbered(doc: _Doc, start: int, *texts: str) -> _Doc:
    for number, text in enumerate(texts, start):
        prov = Provenance(file=doc.source, paragraph=len(doc.blocks))
        bid = f"b{len(doc.blocks)}"
        doc.blocks.append(ListItem(id=bid, prov=prov, text=text, marker=f"{number}.", ordered=True))
    return doc


def test_sub_sections_that_continue_the_numbering_are_one_procedure() -> None:
    doc = _Doc("tech/outage.txt").h("Outage", 1).h("Purpose", 2).p("Restore service.")
    doc.h("Procedure", 2).h("Checking for an outage", 3)
    _numbered(doc, 1, "Ask for the postcode.", "If there is an outage, go to step 4.")
    doc.h("Testing the line", 3)
    _numbered(doc, 3, "Run a line test.", "Ask whether there is anything else.")
    doc.h("Escalation", 2).steps("If the line is for a medical alarm, escalate.", "Log it.")
    (procedure,) = segment(doc.doc(title="Outage"), agent="tech")
    # steps 1-2 and 3-4 are stages of one procedure: "go to step 4" crosses them
    assert (procedure.id, procedure.title) == ("outage", "Outage")
    items = [b.text for b in procedure.blocks if isinstance(b, ListItem)]
    assert items[:4] == [
        "Ask for the postcode.",
        "If there is an outage, go to step 4.",
        "Run a line test.",
        "Ask whether there is anything else.",
    ]
    assert "If the line is for a medical alarm, escalate." in items  # and its escalation rules


def test_shared_exceptions_and_reference_tables_join_every_procedure() -> None:
    prov = Provenance(file="returns.html", paragraph=99)
    table = Table(id="t", prov=prov, header=["Category", "Window"])
    doc = _Doc("shipping/returns.html").h("Returns", 1).h("Definitions", 2).p("Exchange: a swap.")
    doc.h("Procedure", 2).h("Accepting a return", 3).steps("Look up the order.", "Make a label.")
    doc.h("Arranging an exchange", 3).steps("Check the stock.", "Reserve the item.")
    doc.h("Return windows", 2)
    doc.blocks.append(table.model_copy(update={"id": f"b{len(doc.blocks)}"}))
    doc.h("Exceptions", 2).p("Hygiene items cannot be returned once opened.")
    doc.h("References", 2).p("CC-SHP-003 Lost or Damaged Package")
    procedures = segment(doc.doc(), agent="shipping")
    assert [p.title for p in procedures] == ["Accepting a return", "Arranging an exchange"]
    for procedure in procedures:
        texts = [getattr(b, "text", "") for b in procedure.blocks]
        assert "Return windows" in texts and "Exceptions" in texts
        assert "Hygiene items cannot be returned once opened." in texts
        assert any(isinstance(b, Table) for b in procedure.blocks)
        # definitions and references stay background: no rule for the agent to follow
        assert "References" not in texts and "Exchange: a swap." not in texts


def test_a_procedure_written_as_prose_is_found_and_a_caps_title_is_tidied() -> None:
    doc = _Doc("tech/device-setup.txt").h("PURPOSE", 1).p("This guide helps agents.")
    doc.h("SETTING UP THE ROUTER", 1).p(
        "Start by finding the order with lookup_order. If it has not arrived, check where it is"
        " and tell the customer when to expect it."
    ).p(
        "Once it is there, ask them to plug it in. When the light is green, it is online. "
        "Book an engineer visit if nothing works."
    )
    doc.h("ESCALATION", 1).p("If nothing works, escalate to the team lead.")
    (procedure,) = segment(doc.doc(), agent="tech")
    assert procedure.title == "Setting up the router"
    assert procedure.blocks[0].id == "b2" and procedure.blocks[-1].id == "b6"


def _lead_in_doc(*lead: str) -> Document:
    doc = _Doc().h("Refunds SOP").h("3 Procedure", 2)
    for text in lead:
        doc.p(text)
    doc.h("3.1 Issuing a refund", 3).steps("Look up the order.", "Issue the refund.")
    doc.h("3.2 Applying a credit", 3).steps("Look up the customer.", "Apply the credit.")
    return doc.doc()


def test_a_lead_in_instruction_starts_every_procedure_of_the_section() -> None:
    document = _lead_in_doc(
        "Before you start, open the customer's record and read the last three contacts.",
        "This section holds two procedures.",
    )
    refund, credit = segment(document, agent="billing")
    for procedure, heading in ((refund, "b4"), (credit, "b7")):
        # the instruction is the procedure's first block, ahead of its heading; the
        # description beside it stays background
        assert _ids(procedure)[:2] == ["b2", heading]
        assert [b.id for b in procedure.context] == ["b3"]
        assert procedure.heading_path[-1] == procedure.title


def test_a_lead_in_of_a_single_procedure_joins_it_but_a_procedure_intro_stays_context() -> None:
    nested = _Doc().h("Refunds SOP").h("Refunds", 2).p("Always open the customer's record first.")
    nested.h("Issuing a refund", 3).steps("Look up the order.", "Issue the refund.")
    (procedure,) = segment(nested.doc(), agent="billing")
    assert procedure.title == "Issuing a refund"
    assert _ids(procedure)[0] == "b2" and procedure.context == []
    # under a generic "Steps" heading the section is the procedure: its intro is background
    own = _Doc().h("Refunds").p("Always open the customer's record first.")
    own.h("Steps", 2).steps("Look up the order.", "Issue the refund.")
    (procedure,) = segment(own.doc(), agent="billing")
    assert procedure.title == "Refunds" and [b.id for b in procedure.context] == ["b1"]


@pytest.mark.parametrize(
    "text",
    [
        "Follow the procedure below that matches the customer's request.",
        "Use section 3.2 for credits.",
        "Refunds are paid back to the original payment method.",
    ],
)
def test_a_lead_in_that_points_at_the_procedures_or_describes_stays_context(text: str) -> None:
    for procedure in segment(_lead_in_doc(text), agent="billing"):
        assert [b.id for b in procedure.context] == ["b2"]
        assert isinstance(procedure.blocks[0], Heading)


def test_colliding_titles_get_numbered_ids() -> None:
    document = (
        _Doc()
        .h("A")
        .h("Refund", 2)
        .steps("One.", "Two.")
        .h("REFUND!", 2)
        .steps("One.", "Two.")
        .h("Refund", 2)
        .steps("One.", "Two.")
        .doc()
    )
    ids = [p.id for p in segment(document, agent="a")]
    assert ids == ["refunds--refund", "refunds--refund-2", "refunds--refund-3"]


def test_hostile_titles_and_file_names_give_safe_ids() -> None:
    document = (
        _Doc("../../etc/pass\x00wd.md")
        .h("Top")
        .h("../../../etc/passwd", 2)
        .steps("One.", "Two.")
        .h("/abs/path\x07\x1b[31m", 2)
        .steps("One.", "Two.")
        .h("x" * 500, 2)
        .steps("One.", "Two.")
        .h("退款", 2)
        .steps("One.", "Two.")
        .doc()
    )
    ids = [p.id for p in segment(document, agent="a")]
    assert len(set(ids)) == len(ids) == 4
    for proc_id in ids:
        stem, _, title = proc_id.partition("--")
        assert SLUG.match(stem) and SLUG.match(title), proc_id
        assert len(title) <= 60
    assert ids[0] == "pass-wd--etc-passwd"


def test_segment_is_deterministic() -> None:
    first = [p.model_dump_json() for p in segment(_refunds(), agent="billing")]
    assert first == [p.model_dump_json() for p in segment(_refunds(), agent="billing")]


# --- slug.py -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Issue a Refund", "issue-a-refund"),
        ("Rückerstattung ÄÖÜ café", "ruckerstattung-aou-cafe"),
        ("  --..--  ", "procedure"),
        ("..", "procedure"),
        ("../etc/passwd", "etc-passwd"),
        ("C:\\Windows\\System32", "c-windows-system32"),
    ],
)
def test_slugify_examples(text: str, slug: str) -> None:
    assert slugify(text) == slug


def test_long_names_with_a_common_prefix_stay_distinct() -> None:
    a, b = slugify("a" * 80 + " one"), slugify("a" * 80 + " two")
    assert a != b and len(a) <= 60 and len(b) <= 60


def test_non_latin_titles_stay_distinct() -> None:
    assert slugify("退款") != slugify("发票")
    assert slugify("退款").startswith("procedure-")


@given(st.text(), st.integers(min_value=1, max_value=120))
def test_slugify_is_always_safe(text: str, max_len: int) -> None:
    slug = slugify(text, max_len=max_len)
    assert SLUG.match(slug)
    assert len(slug) <= max(max_len, 16)
    assert slug not in {".", ".."}
    assert slug == slugify(text, max_len=max_len)


@given(st.text())
def test_identifier_is_a_valid_python_name(text: str) -> None:
    name = identifier(text, reserved={"agents"})
    assert name.isidentifier() and name.isascii()
    assert not keyword.iskeyword(name) and not keyword.issoftkeyword(name)
    assert name != "agents"


@pytest.mark.parametrize(
    ("text", "name"),
    [("class", "class_"), ("2024 billing", "_2024_billing"), ("agents", "agents_")],
)
def test_identifier_examples(text: str, name: str) -> None:
    assert identifier(text, reserved={"agents"}) == name


@given(st.lists(st.sampled_from(["a", "b", "a-2", "c"]), max_size=12))
def test_dedupe_makes_names_unique_and_keeps_first(names: list[str]) -> None:
    out = dedupe(names)
    assert len(set(out)) == len(out) == len(names)
    assert all(o == n or o.startswith(f"{n}-") for o, n in zip(out, names, strict=True))


def test_a_macro_over_agent_actions_and_a_reply_is_named_for_the_macro() -> None:
    # a ferry helpdesk's macro library: "Macro: Change of vehicle" over "Agent actions" (the
    # steps) and "Reply" (the script) became four procedures all titled "Agent actions"
    d = _Doc().h("Macro library", 1)
    for name in ("Change of vehicle", "Missed sailing"):
        d.h(f"Macro: {name}", 2).h("Agent actions", 3)
        d.steps("Open the booking.", "Update the vehicle details.", "Send the confirmation.")
        d.h("Reply", 3).p("Hi, we've updated your booking.")
    procedures = segment(d.doc(), agent="bookings")
    assert [p.title for p in procedures] == ["Macro: Change of vehicle", "Macro: Missed sailing"]
