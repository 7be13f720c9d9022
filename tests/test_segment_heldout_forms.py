"""segment: document forms first met in the held-out corpus, each built here in small, both ways.

Each test writes a short SOP of one form (never a held-out file) and reads it the way `sopc
compile` does; each form has a case that must become a procedure and one that must not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sop_compiler.config import Settings
from sop_compiler.models import ListItem, Paragraph, Procedure, block_text
from sop_compiler.pipeline import read_procedures


def _procedures(tmp_path: Path, name: str, text: str) -> list[Procedure]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = read_procedures(path, root=tmp_path, settings=Settings())
    assert result.error is None
    return result.procedures


def _titles(procedures: list[Procedure]) -> list[str]:
    return [p.title for p in procedures]


def _text(procedure: Procedure) -> str:
    return " ".join(block_text(b) for b in procedure.blocks)


def _background(procedure: Procedure) -> str:
    return " ".join(block_text(b) for b in procedure.context)


def _items(procedure: Procedure) -> list[ListItem]:
    return [b for b in procedure.blocks if isinstance(b, ListItem)]


_LIBRARY = """\
LIBRARY DESK SOP

1. RENEWING A LOAN
------------------
1) Find the member and the loan.
2) Renew the loan for 3 weeks.
3) Tell the member the new due date.

2. REPORTING A LOST BOOK
------------------------
1) Find the member and the loan.
2) Add the replacement fee to the account.
3) Mark the copy as lost.

3. STUDY ROOMS
----------------
Members can book a study room for up to 2 hours a day.

  - Check the room calendar for the day.
  - Rooms cannot be booked more than 7 days ahead.
  - Book the room and email the confirmation to the member.
"""


def test_a_sibling_with_its_own_instructions_is_a_procedure(tmp_path: Path) -> None:
    procedures = _procedures(tmp_path, "library.txt", _LIBRARY)
    assert _titles(procedures) == [
        "Renewing a loan",
        "Reporting a lost book",
        "Study rooms",
    ]
    # its instructions are its own: they never become steps of the other procedures
    for procedure in procedures[:2]:
        assert "Book the room" not in _text(procedure)
        assert "STUDY ROOMS" not in _text(procedure)
    assert "Book the room" in _text(procedures[2])


def test_a_sibling_of_rules_only_still_joins_every_procedure(tmp_path: Path) -> None:
    text = _LIBRARY.split("3. STUDY ROOMS")[0] + (
        "3. EXCEPTIONS\n-------------\nNever renew a loan that another member has reserved.\n"
    )
    procedures = _procedures(tmp_path, "library.txt", text)
    assert _titles(procedures) == ["Renewing a loan", "Reporting a lost book"]
    assert all("another member has reserved" in _text(p) for p in procedures)


def test_a_banner_is_a_heading_without_its_rules(tmp_path: Path) -> None:
    text = (
        "ACME SUPPORT\n\n"
        "--- READ ME FIRST ---\n"
        "Never ask a player for their password.\n\n"
        '== PROCEDURE 1: "I PAID BUT DID NOT GET MY ITEMS" ==\n\n'
        "Step 1. Get the player ID and the receipt ID.\n\n"
        "Step 2. Validate the receipt with the store.\n\n"
        "Step 3. Grant the items on the receipt.\n\n"
        "== PROCEDURE 2: BAN APPEALS ==\n\n"
        "Step 1. Look up the player and read the ban reason.\n\n"
        "Step 2. Submit an appeal with the player's statement.\n\n"
        'PART C - "MY CODE HAS EXPIRED" / "MY PARCEL IS GONE"\n\n'
        "  1. Find the parcel from the tracking number.\n"
        "  2. Extend the pickup and resend the code.\n"
    )
    procedures = _procedures(tmp_path, "support.txt", text)
    titles = _titles(procedures)
    assert titles == [
        'Procedure 1: "i paid but did not get my items"',
        "Procedure 2: ban appeals",
        'Part c - "my code has expired" / "my parcel is gone"',
    ]
    # "Read me first" is what holds for every procedure, not a procedure of its own
    for procedure in procedures:
        read = " ".join(block_text(b) for b in [*procedure.blocks, *procedure.context])
        assert "password" in read


def test_a_long_caps_sentence_is_no_banner(tmp_path: Path) -> None:
    text = (
        "Returns desk\n============\n\n"
        "1. Find the order.\n2. Refund the order.\n\n"
        "ALWAYS CHECK THE ORDER DATE BEFORE YOU REFUND AN ORDER FOR A CUSTOMER TODAY.\n"
    )
    procedures = _procedures(tmp_path, "returns.txt", text)
    assert len(procedures) == 1
    assert not any(h.startswith("ALWAYS") for p in procedures for h in p.heading_path)


def test_amendments_are_document_control(tmp_path: Path) -> None:
    text = (
        "# Lettings manual\n\n"
        "## C.1 Tenant reports a repair\n\n1. Log the repair.\n2. Book a contractor.\n\n"
        "## C.2 Rent arrears\n\n1. Check the rent account.\n2. Send the arrears reminder.\n\n"
        "## C.9 Amendments\n\nIssue 7: payment plans up to 6 months.\n"
    )
    titles = _titles(_procedures(tmp_path, "manual.md", text))
    assert titles == ["C.1 Tenant reports a repair", "C.2 Rent arrears"]


def test_amendments_that_instruct_are_a_request(tmp_path: Path) -> None:
    text = (
        "# Booking policy\n\n"
        "## Cancellations\n\nCancel the booking and refund the deposit.\n"
        "Send the cancellation email.\n\n"
        "## Amendments\n\nFind the booking. Change the date the guest asks for. "
        "Send the updated confirmation.\n"
    )
    titles = _titles(_procedures(tmp_path, "bookings.md", text))
    assert "Amendments" in titles


_TRIAGE = """\
# Reception handbook

## Booking an appointment and phone triage

Find the client and the pet in the system first.

### Red flags

If the owner reports difficulty breathing, it is an emergency:

1. Tell the owner to come in straight away.
2. Book the emergency slot.

### Everything else

Book the next suitable consult. Send the confirmation text.

## Repeat prescription requests

1. Open the patient record.
2. Queue the request for the vet.
"""


def test_a_task_heading_over_its_cases_is_one_procedure(tmp_path: Path) -> None:
    procedures = _procedures(tmp_path, "reception.md", _TRIAGE)
    assert _titles(procedures) == [
        "Booking an appointment and phone triage",
        "Repeat prescription requests",
    ]
    booking = _text(procedures[0])
    assert "Book the emergency slot" in booking and "next suitable consult" in booking


def test_a_numbered_sub_section_under_a_heading_without_lead_in_stays_the_procedure(
    tmp_path: Path,
) -> None:
    # no text of its own under "Booking ...": the numbered sub-section is the procedure and its
    # instructing sibling joins it, as before
    text = _TRIAGE.replace("Find the client and the pet in the system first.\n\n", "")
    titles = _titles(_procedures(tmp_path, "reception.md", text))
    assert titles[0] == "Red flags"


def test_transferring_things_is_a_task_transferring_to_a_person_a_rule(tmp_path: Path) -> None:
    text = (
        "# Ticket help\n\n"
        "## Transferring tickets\n\nLook up the order. Ask for the friend's email address. "
        "Transfer the tickets.\n\n"
        "## Refunds for cancelled events\n\nCheck the event status. Refund the tickets. "
        "Send the refund email.\n\n"
        "## Transferring to a supervisor\n\nAlways transfer a caller who asks for a manager.\n"
    )
    titles = _titles(_procedures(tmp_path, "tickets.md", text))
    assert "Transferring tickets" in titles
    assert "Transferring to a supervisor" not in titles


def test_a_document_title_over_one_procedure_and_its_rules_is_no_task(tmp_path: Path) -> None:
    text = (
        "# Prescription Refill Desk\n\n"
        "Document owner: Pharmacy Operations. Version 3.2, reviewed March 2026.\n\n"
        "## General rules\n- Confirm the patient's date of birth before discussing anything.\n\n"
        "## Request a refill\n1. Ask for the prescription number.\n2. Place the refill.\n"
    )
    titles = _titles(_procedures(tmp_path, "refills.md", text))
    assert titles == ["Request a refill"]


_RESULTS = """\
# Reception handbook

## Repeat prescription requests

1. Open the patient record.
2. Queue the request for the vet.

## Giving out lab results

Results come back to the vet who took the sample.

| Result status | What reception does |
|---|---|
| Reviewed, abnormal | Do not discuss. Book a vet callback within 24 hours. |
| Not yet reviewed | Do not discuss. Tell the owner results take 2 working days. |
"""


def test_a_table_of_what_to_do_is_a_procedure(tmp_path: Path) -> None:
    procedures = _procedures(tmp_path, "reception.md", _RESULTS)
    assert _titles(procedures) == ["Repeat prescription requests", "Giving out lab results"]
    assert "Book a vet callback" in _text(procedures[1])
    assert "Book a vet callback" not in _text(procedures[0])


def test_a_table_of_values_is_knowledge(tmp_path: Path) -> None:
    text = _RESULTS.replace("## Giving out lab results", "## Result turnaround").replace(
        "Do not discuss. Book a vet callback within 24 hours.", "1 working day"
    )
    text = text.replace("Do not discuss. Tell the owner results take 2 working days.", "2 days")
    titles = _titles(_procedures(tmp_path, "reception.md", text))
    assert titles == ["Repeat prescription requests"]


_GLOSSARY = """\
<h1>Harbourside Tax Services</h1>
<h2>How to use this document</h2>
<p>Read the procedure for the request in front of you and follow its steps in order.</p>
<h2>Key terms</h2>
<dl>
<dt>Engagement letter</dt><dd>the signed agreement; we cannot start without it.</dd>
<dt>Refund transfer</dt><dd>an optional product: the fee is taken out of the refund.</dd>
</dl>
<h2>Onboarding a new client</h2>
<ol><li>Search the client list first.</li><li>Create the engagement.</li>
<li>Send the engagement letter.</li></ol>
<h2>Filing an extension</h2>
<ol><li>Find the client.</li><li>File the extension.</li><li>Email the client.</li></ol>
"""


def test_a_glossary_and_a_how_to_use_section_are_background_not_steps(tmp_path: Path) -> None:
    procedures = _procedures(tmp_path, "tax.html", _GLOSSARY)
    assert _titles(procedures) == ["Onboarding a new client", "Filing an extension"]
    for procedure in procedures:
        own = _text(procedure)
        assert "Refund transfer" not in own and "follow its steps in order" not in own
        background = _background(procedure)
        assert "Refund transfer" in background and "follow its steps in order" in background


def test_a_section_of_cases_beside_the_procedures_still_joins_them(tmp_path: Path) -> None:
    # the other way: "Exceptions" is no background, every procedure reads it
    text = _GLOSSARY.replace("<h2>Key terms</h2>", "<h2>Exceptions</h2>").replace(
        "<dt>Refund transfer</dt><dd>an optional product: the fee is taken out of the refund.</dd>",
        "<dt>Business returns</dt><dd>Do not create the engagement: assign it to a reviewer.</dd>",
    )
    for procedure in _procedures(tmp_path, "tax.html", text):
        assert "assign it to a reviewer" in _text(procedure)


_SUBSECTIONS = """\
CLINIC DESK PROCEDURES

1. HOW TO USE

Follow the steps in order. Text marked NOTE is guidance.

2. PROCEDURES

2.1 Repeat prescription requests

(a) Find the patient in the system.
(b) Send the repeat request to the surgery.

2.2 Missed deliveries

(a) Find the patient and the delivery.
(b) Rebook the delivery on the next run.
"""


def test_sentence_case_sub_sections_alone_on_their_line_are_headings(tmp_path: Path) -> None:
    procedures = _procedures(tmp_path, "clinic.txt", _SUBSECTIONS)
    assert _titles(procedures) == ["Repeat prescription requests", "Missed deliveries"]
    assert "Rebook" not in _text(procedures[0]) and "Send the repeat" not in _text(procedures[1])


def test_numbered_orders_alone_on_their_lines_stay_steps(tmp_path: Path) -> None:
    text = (
        "Returns desk\n\n2. Handling a return\n\n2.1 Check the order\n\n2.2 Refund the "
        "customer\n\n2.3 Close the ticket\n"
    )
    (procedure,) = _procedures(tmp_path, "returns.txt", text)
    assert "Check the order" in _text(procedure) and "Close the ticket" in _text(procedure)


def test_a_numbered_application_section_is_background_and_its_rule_holds_everywhere(
    tmp_path: Path,
) -> None:
    text = (
        "<h1>Harbour Freight</h1>\n<h2>Section 1 &ndash; Application</h2>\n"
        "<p>Staff may only discuss a shipment with a party named on the booking.</p>\n"
        "<h2>Section 2 &ndash; Status enquiries</h2>\n<ol><li>Locate the booking.</li>"
        "<li>Check the tracking.</li><li>Tell the caller the ETA.</li></ol>\n"
        "<h2>Section 3 &ndash; Cancelling a booking</h2>\n<ol><li>Locate the booking.</li>"
        "<li>Cancel the booking.</li><li>Email the shipper.</li></ol>\n"
    )
    procedures = _procedures(tmp_path, "freight.html", text)
    assert _titles(procedures) == [
        "Section 2 – Status enquiries",
        "Section 3 – Cancelling a booking",
    ]
    for procedure in procedures:
        assert "named on the booking" in _background(procedure)


def test_letter_dotted_numbers_are_steps(tmp_path: Path) -> None:
    text = (
        "REMOVALS DESK\n\nSECTION A - BOOKING A MOVE\n\n"
        "A.1  Find the job in MoveBase.\nA.2  Check crew availability for the date.\n"
        "A.3  Book the move.\n\nSECTION B - CANCELLING A MOVE\n\n"
        "B.1  Find the job in MoveBase.\nB.2  Cancel the move.\nB.3  Email the customer.\n"
    )
    procedures = _procedures(tmp_path, "moves.txt", text)
    assert _titles(procedures) == ["Section a - booking a move", "Section b - cancelling a move"]
    items = _items(procedures[0])
    assert [b.marker for b in items] == ["A.1", "A.2", "A.3"]


def test_a_welcome_section_is_background_for_every_procedure(tmp_path: Path) -> None:
    text = (
        "<h1>Front desk procedures</h1><h2>Welcome / read me first</h2>"
        "<p>Hi all, this is the page for the front desk team. Be patient and explain things "
        "properly.</p><p>Heads up: parents will ring. We can't discuss a resident's tenancy "
        "with anyone else unless the resident has added them as a contact.</p>"
        "<h2>Lost key cards</h2><ol><li>Ask for photo ID.</li>"
        "<li>Cancel the old card.</li><li>Issue the new card.</li></ol><h2>Room transfers</h2>"
        "<ol><li>Find the resident.</li><li>Check the free rooms.</li><li>Book the transfer."
        "</li></ol>"
    )
    procedures = _procedures(tmp_path, "desk.html", text)
    assert _titles(procedures) == ["Lost key cards", "Room transfers"]
    for procedure in procedures:
        assert "Be patient" not in _text(procedure)
        assert "Be patient" in _background(procedure)


def test_checkbox_lines_are_items_and_a_request_and_its_facts_is_a_procedure(
    tmp_path: Path,
) -> None:
    text = (
        "LIBRARY CHECKLISTS\n\nCHECKLIST A - RENEWALS AND OVERDUE CHARGES\n\n"
        "[ ] Find the borrower.\n[ ] Renew each item the borrower asks for.\n"
        "[ ] Tell the borrower the new due date.\n\n"
        "CHECKLIST B - JOINING ONLINE\n\n[ ] Check for an existing card.\n"
        "[ ] Create the borrower record.\n[ ] Send the welcome notice.\n"
    )
    procedures = _procedures(tmp_path, "library.txt", text)
    assert len(procedures) == 2
    assert "Renew each item" in _text(procedures[0]) and "Renew" not in _text(procedures[1])
    items = _items(procedures[1])
    assert [b.text for b in items][:1] == ["Check for an existing card."]


_FORMAL = """\
# Customer Care Policy

## 4. Damaged items

4.1 The Adviser shall look up the order and ask the customer for a photograph.
4.2 If the damage is reported late, the Adviser shall decline the claim.

## 5. Cancellation of prepaid card plans

A customer may cancel a gift card within 14 days. The Adviser shall retrieve the card and
confirm the buyer's identity.

- If the card is unused, a full refund is due.
- Otherwise, the refund shall be the unused balance.

Where the buyer has died, the Administrator shall instead refer the request to Bereavements.

## 6. Card fees and plans

A card costs nothing to buy. The Adviser shall know the fees for every card plan.
"""


def test_formal_orders_to_a_role_and_a_request_of_a_thing_make_a_procedure(
    tmp_path: Path,
) -> None:
    procedures = _procedures(tmp_path, "care.md", _FORMAL)
    assert _titles(procedures) == ["Damaged items", "Cancellation of prepaid card plans"]
    damaged, cancel = procedures
    assert "full refund" not in _text(damaged)  # another request's steps never join it
    assert "full refund" in _text(cancel)
    # a heading of facts stays facts, whoever its text names
    assert all("fees for every card plan" not in _text(p) for p in procedures)


_BOXED = """\
FIXIT REPAIRS LTD
STORE SOP

PURPOSE
Steps for store staff.

CONTACTS
Store Manager ........ on site

------------------------------------------------------------
1. BOOKING A DEVICE IN
------------------------------------------------------------
1.1 Find the customer on the till system.
1.2 Create the repair job and print the ticket.

------------------------------------------------------------
2. COLLECTING A DEVICE
------------------------------------------------------------
2.1 Look up the job.
2.2 Take the balance payment and mark the job collected.

=== MACRO 3: Missed collection ===
Step 1. Look up the job.
Step 2. Book a new collection slot.

=== MACRO 4: Lost ticket ===
Step 1. Find the customer.
Step 2. Print a new ticket.
"""


def test_boxed_and_bannered_titles_are_sections_of_their_own(tmp_path: Path) -> None:
    titles = _titles(_procedures(tmp_path, "store.txt", _BOXED))
    assert titles == [
        "Booking a device in",
        "Collecting a device",
        "MACRO 3: Missed collection",
        "MACRO 4: Lost ticket",
    ]


def test_a_problem_with_a_thing_is_a_procedure_not_its_facts(tmp_path: Path) -> None:
    text = (
        "# Support handbook\n\n## Starting a session\n\n1. Find the account.\n2. Start the "
        "session.\n\n## Disputed session charges\n\n- Pull up the session history.\n- Refund "
        "the session if it ran on.\n\n## Session charges\n\nA session costs 40p per kWh.\n"
    )
    procedures = _procedures(tmp_path, "support.md", text)
    assert _titles(procedures) == ["Starting a session", "Disputed session charges"]
    assert "Refund the session" not in _text(procedures[0])


def test_step_lines_in_running_text_are_numbered_steps(tmp_path: Path) -> None:
    text = (
        "SUPPORT MACROS\n\n=== MACRO 1: Assisted collection ===\n"
        "For residents who cannot put their bin out.\n"
        "Step 1. Look up the property.\n"
        "Step 2. If someone else can, explain and close.\n"
        "Step 3. Decide:\n"
        "  * Eligible -> register the assisted collection.\n"
    )
    (procedure,) = _procedures(tmp_path, "macros.txt", text)
    items = _items(procedure)
    assert [item.marker for item in items if item.level == 0] == ["1.", "2.", "3."]
    assert items[2].text == "Decide:"  # a step, never a section title


def test_a_title_set_apart_by_blank_lines_is_a_section(tmp_path: Path) -> None:
    text = (
        "Roomy Rentals\nCustomer Team Playbook\n\n"
        "About this playbook\nThis is for everyone on the customer team.\n\n\n"
        "Ending a rental early\n\n"
        "1. Open the agreement and check the minimum term.\n"
        "2. Book the collection.\n\n\n"
        "Buying furniture outright\n\n"
        "1. Open the agreement.\n"
        "2. Take the buy-out payment.\n\n"
        "Be human.\n"
    )
    titles = _titles(_procedures(tmp_path, "playbook.txt", text))
    assert titles == ["Ending a rental early", "Buying furniture outright"]


def test_a_memo_s_titles_set_apart_are_peers_of_its_underlined_sections(tmp_path: Path) -> None:
    # a manager's email pasted into a text file: "RE: ..." titles set apart by blank lines
    # beside sections underlined with dashes. The dash in 'RE: "Where's my bike?" - late
    # returns' made it too long to be a title, so it and the next section were folded into
    # the one before; a reason why and what changed are no procedures
    text = (
        "From: Dana Hill\nSubject: Desk procedures\n\nMorning all,\n\n"
        "Why I'm sending this\n--------------------\n"
        "Two bikes went out unchecked last week. Never hand over a bike before the safety "
        "check.\n\n\n"
        "RE: Hiring a bike\n\n"
        "1) Find the customer's booking.\n2) Take the deposit.\n\n"
        "Damage on return\n----------------\n"
        "1) Photograph the damage.\n2) Charge the repair to the card on file.\n\n\n"
        'RE: "Where\'s my bike?" - late returns\n\n'
        "1) Find the booking.\n2) Text the customer a reminder.\n\n"
        "Changes since the last version\n------------------------------\n"
        "- Deposits: now taken by card only\n- New: late returns\n\n"
        "Thanks all,\nDana\n"
    )
    titles = _titles(_procedures(tmp_path, "memo.txt", text))
    assert titles == [
        "RE: Hiring a bike",
        "Damage on return",
        'RE: "Where\'s my bike?" - late returns',
    ]


def test_a_numbered_when_section_beside_procedures_is_a_procedure(tmp_path: Path) -> None:
    text = (
        "CINEMA SOP\n\n"
        "1  TICKET REFUNDS\n\n1.1  Find the booking.\n1.2  Refund the tickets.\n\n\n"
        "2  WHEN A SCREENING GOES WRONG\n\n2.1  Check the screening log.\n"
        "2.2  Send the apology email.\n"
    )
    procedures = _procedures(tmp_path, "cinema.txt", text)
    assert _titles(procedures) == ["Ticket refunds", "When a screening goes wrong"]
    assert "apology" not in _text(procedures[0])


_SPA = """\
# Spa desk playbook

## Booking a treatment

1. Find the guest by room number.
2. Check availability for the treatment.
3. Book the treatment.

## When a guest is unhappy with a treatment

1. Listen and apologise.
2. If the guest reports an injury, log an incident report.
3. Offer a voucher of up to £40 for other complaints.

## Closing the spa

1. Pull up the list of today's bookings.
2. Cancel each booking still showing as booked with the reason "no show".
"""


def test_a_case_heading_with_steps_of_its_own_beside_procedures_is_one(tmp_path: Path) -> None:
    procedures = _procedures(tmp_path, "spa.md", _SPA)
    assert _titles(procedures) == [
        "Booking a treatment",
        "When a guest is unhappy with a treatment",
        "Closing the spa",
    ]
    closing = procedures[-1]
    assert "voucher" not in _text(closing)  # the back-office sweep handles no complaints
    # beside one procedure, a case heading is still a part of it, with or without its own
    # heading for the procedure
    one = _SPA.split("## Closing the spa")[0]
    for text in (one, one.replace("## Booking a treatment\n", "")):
        procedures = _procedures(tmp_path, "one.md", text)
        assert len(procedures) == 1 and "voucher" in _text(procedures[0]), text


_HOTEL = """\
<html><body>
<section><h2>Arrivals and check-in</h2>
<dl><dt>Find the booking</dt><dd>Find the reservation by surname and arrival date.</dd>
<dt>Card hold</dt><dd>Place a card hold of £50 per night before you hand over keys.</dd>
<dt>Rooms</dt><dd>Allocate a room of the type booked.</dd>
<dt>Keys</dt><dd>Hand over the keys and tell the guest the breakfast times.</dd></dl></section>
<section><h2>When we are overbooked: walking a guest</h2>
<p>Walking means sending a guest with a confirmed booking to another hotel.</p>
<ul>
<li>Before you walk anyone, check availability once more.</li>
<li>Only the Duty Manager can authorise a walk. Call them before you say anything.</li>
<li>Book the guest into a partner hotel for the first night, up to £220.</li>
<li>If the guest was staying one night only, cancel our booking without any charge.</li>
</ul></section>
<section><h2>Night audit</h2>
<ol><li>Pull the list of group blocks due for release.</li><li>Release the unnamed rooms.</li>
<li>Charge each no-show the first night.</li></ol></section>
</body></html>
"""


def test_a_case_heading_over_bullets_that_instruct_beside_procedures_is_one(
    tmp_path: Path,
) -> None:
    # a hotel standards manual: the walk is a procedure of its own, never a part of check-in
    # and of the night audit (which would book partner hotels and cancel bookings)
    procedures = _procedures(tmp_path, "hotel.html", _HOTEL)
    assert _titles(procedures) == [
        "Arrivals and check-in",
        "When we are overbooked: walking a guest",
        "Night audit",
    ]
    assert all("partner hotel" not in _text(p) for p in (procedures[0], procedures[2]))


def test_a_checklist_of_numbered_boxes_is_a_numbered_list(tmp_path: Path) -> None:
    text = (
        "CALLOUT DESK CHECKLIST\n\n"
        + "-" * 40
        + "\nA. BOOKING A REPAIR CALLOUT\n"
        + "-" * 40
        + "\n"
        "[ ] 1. Find the customer account by postcode.\n"
        "[ ] 2. Check the engineer diary for the postcode area.\n"
        "[ ] 3. Covered -> book at GBP 0.\n"
        "       Not covered -> book as chargeable.\n"
    )
    (procedure,) = _procedures(tmp_path, "desk.txt", text)
    items = _items(procedure)
    assert [(b.ordered, b.marker, b.text[:4]) for b in items] == [
        (True, "1.", "Find"),
        (True, "2.", "Chec"),
        (True, "3.", "Cove"),
    ]


_CLAUSES = """\
# Ticket desk

## 3. Refunds

3.1 Find the booking with the booking reference.
3.2 If the performance was cancelled by us, refund the booking in full.
    The refund goes back to the card that paid.
3.3 Otherwise, explain that tickets are non-refundable.
"""


def test_numbered_lines_without_blank_lines_are_a_paragraph_each(tmp_path: Path) -> None:
    # Markdown joins "3.1 ..." lines into one paragraph: the steps, their condition and its
    # otherwise are read as one block, and the otherwise runs for everyone
    (procedure,) = _procedures(tmp_path, "desk.md", _CLAUSES)
    paragraphs = [block_text(b) for b in procedure.blocks if isinstance(b, Paragraph)]
    assert paragraphs == [
        "3.1 Find the booking with the booking reference.",
        "3.2 If the performance was cancelled by us, refund the booking in full.\n"
        "The refund goes back to the card that paid.",
        "3.3 Otherwise, explain that tickets are non-refundable.",
    ]
    # the same lines with blank lines between read the same, and so do lines under lines in
    # an HTML paragraph
    spaced = _CLAUSES.replace("\n3.", "\n\n3.")
    (again,) = _procedures(tmp_path, "spaced.md", spaced)
    assert [block_text(b) for b in again.blocks if isinstance(b, Paragraph)] == paragraphs
    lines = _CLAUSES.split("\n\n")[2].strip().split("\n")
    html = "<h1>Ticket desk</h1><h2>Refunds</h2><p>" + "<br>".join(lines) + "</p>"
    (page,) = _procedures(tmp_path, "desk.html", html)
    assert [" ".join(block_text(b).split()) for b in page.blocks[1:]] == [
        " ".join(text.split()) for text in paragraphs
    ]


def test_numbered_lines_in_one_word_paragraph_are_a_step_each(tmp_path: Path) -> None:
    # a Word paragraph with line breaks (Shift+Enter) between typed "3.1", "3.2" lines
    import docx

    document = docx.Document()
    document.add_heading("Refunds", level=1)
    paragraph = document.add_paragraph()
    for n, line in enumerate(("3.1 Find the booking.", "3.2 Refund the booking.")):
        run = paragraph.add_run(line)
        if n == 0:
            run.add_break()
    document.save(str(tmp_path / "desk.docx"))
    result = read_procedures(tmp_path / "desk.docx", root=tmp_path, settings=Settings())
    (procedure,) = result.procedures
    assert [(b.marker, b.text) for b in _items(procedure)] == [
        ("3.1", "Find the booking."),
        ("3.2", "Refund the booking."),
    ]
    # a paragraph that only starts with a number stays one paragraph
    (prose,) = _procedures(
        tmp_path, "prose.md", "# Desk\n\n1.5 million people called us\nlast year, a record.\n"
    )
    assert [" ".join(block_text(b).split()) for b in prose.blocks if isinstance(b, Paragraph)] == [
        "1.5 million people called us last year, a record."
    ]


_TITLED_POLICY = """\
# Customer Returns Policy

Owner: Head of Service

## Scope and Definitions

2.1. This policy applies to all store and online orders.
2.2. "Order" means one purchase with one receipt.

## 1. Refunds

1. Find the order with the order number.
2. Check the return window.
3. Refund the order to the original card.

## 2. Exchanges

1. Find the order with the order number.
2. Check stock of the new size.
3. Create the exchange order.
"""


def test_a_document_titled_policy_holds_its_procedures(tmp_path: Path) -> None:
    # "... Policy" names background when it heads a section of text; over sections of steps
    # it is the document's title, and each of them is a procedure. "Scope and Definitions",
    # numbered like steps, is background.
    procedures = _procedures(tmp_path, "returns.md", _TITLED_POLICY)
    assert _titles(procedures) == ["Refunds", "Exchanges"]
    assert all("This policy applies" in _background(p) for p in procedures)
    assert all("This policy applies" not in _text(p) for p in procedures)


def test_a_step_word_then_a_gap_is_a_numbered_step(tmp_path: Path) -> None:
    # "Step 1  Get the name ..." (a gap, no stop): the steps were one paragraph, and the
    # escalation of its step 4 ended the routine before steps 5 and 6
    text = (
        "7. FUNERAL ORDERS\n-----------------\n"
        "Step 1  Get the name of the deceased and the funeral date.\n"
        "Step 2  Put the postcode into the zone checker.\n"
        "Step 3\tPlace the order.\n"
        "Step 4 of the old process is gone.\n"
    )
    (procedure,) = _procedures(tmp_path, "funerals.txt", text)
    assert [(b.marker, b.text[:9]) for b in _items(procedure)] == [
        ("1.", "Get the n"),
        ("2.", "Put the p"),
        ("3.", "Place the"),
    ]


_EVERYTHING_RULES = (
    "{mark} NEVER WRITE A CARD NUMBER DOWN. Payments go through the till only.\n"
    "{mark} NEVER TELL A RECIPIENT WHO SENT THE FLOWERS IF THE CARD IS MARKED ANONYMOUS.\n"
    "{mark} Only the sender can change or cancel an order.\n"
)


@pytest.mark.parametrize(
    ("title", "mark"),
    [
        ("READ FIRST - APPLIES TO EVERYTHING BELOW", "*"),
        ("General Obligations", "-"),
    ],
)
def test_a_heading_over_rules_for_everything_gives_them_to_every_procedure(
    tmp_path: Path, title: str, mark: str
) -> None:
    # read as a task of its own ("READ" is a verb; three orders), its rules held for no
    # procedure but itself
    text = (
        f"# Order desk\n\n## {title}\n\n{_EVERYTHING_RULES.format(mark=mark)}\n"
        "## Same-day orders\n\n1. Check the postcode.\n2. Take the payment.\n"
        "3. Place the order.\n\n"
        "## Failed deliveries\n\n1. Open the order.\n2. Check the driver record.\n"
        "3. Rebook the delivery.\n"
    )
    procedures = _procedures(tmp_path, "desk.md", text)
    assert _titles(procedures) == ["Same-day orders", "Failed deliveries"]
    assert all("Only the sender can change" in _text(p) for p in procedures)


def test_general_obligations_in_numbered_clauses_are_every_procedures(tmp_path: Path) -> None:
    # "4.1 The Adviser shall verify ...", "4.2 The Adviser shall not disclose ...": read as
    # steps, the section was a procedure of its own and no other procedure kept its rules
    text = (
        "# Season Ticket Policy\n\n## 4. General Obligations\n\n"
        "4.1 The Adviser shall verify the identity of the Holder before taking any action.\n\n"
        "4.2 The Adviser shall not disclose journey history to any other person.\n\n"
        "4.3 The Adviser shall record every contact on the account.\n\n"
        "4.4 The Adviser shall not exceed the limits of authority. Refer any decision above "
        "them to the Team Leader.\n\n"
        "## 5. Procedures\n\n### 5.1 Refunds\n\n1. Find the season.\n2. Work out the refund.\n"
        "3. Issue the refund.\n\n### 5.2 Replacements\n\n1. Find the season.\n"
        "2. Cancel the lost card.\n3. Issue a new card.\n"
    )
    procedures = _procedures(tmp_path, "policy.md", text)
    assert _titles(procedures) == ["Refunds", "Replacements"]
    for procedure in procedures:
        assert "shall not disclose journey history" in _text(procedure) + _background(procedure)


def test_a_control_line_under_the_title_starts_no_procedure(tmp_path: Path) -> None:
    # "Document PPS-OPS-004, version 5. Owner: ... Internal use only." under the manual's title:
    # every sentence is document control, so no procedure starts with it as a step
    text = (
        "<h1>Prepayment Support Agent Manual</h1>\n"
        "<p>Document PPS-OPS-004, version 5. Owner: Head of Prepayment Operations. "
        "Internal use only.</p>\n"
        "<h2>Lost key</h2>\n<ol><li>Find the account.</li><li>Order a new key.</li></ol>\n"
        "<h2>Top-up not showing</h2>\n<ol><li>Find the account.</li><li>Resend the top-up."
        "</li></ol>\n"
    )
    procedures = _procedures(tmp_path, "manual.html", text)
    assert _titles(procedures) == ["Lost key", "Top-up not showing"]
    assert not any("PPS-OPS-004" in _text(p) for p in procedures)
    # a line under the title that instructs, beside a version, still starts each procedure
    told = text.replace("Internal use only.", "Always verify the caller first.")
    procedures = _procedures(tmp_path, "manual.html", told)
    assert all("verify the caller" in _text(p) for p in procedures)


_REPAIRS_MANUAL = """\
REPAIRS CONTACT CENTRE - OPERATING MANUAL RCC-07
Issue 5. Owner: Head of Repairs. Controlled copy: do not print.

2. SERVICE FACTS
================
2.1 Line open Monday to Friday 08:00 to 18:00.
2.2 Appointment slots: AM 08:00-12:00, PM 12:00-17:00.
2.3 Missed appointment compensation is £20 per missed appointment.

3. GENERAL RULES (ALL CALLS)
============================
3.1 NEVER promise a date or time that the system has not offered.
3.2 Do not discuss rent arrears on this line. Transfer to the Income Team.

4. ROUTINE REPAIRS
==================
4.1 Find the tenancy from the address.
4.2 Raise the job as ROUTINE.
4.3 Book the appointment with the tenant.

5. DAMP AND MOULD
=================
5.1 Check the repair history for damp reports.
5.2 Book the damp survey.
"""


def test_numbered_facts_and_rules_for_all_calls_are_no_procedures(tmp_path: Path) -> None:
    procedures = _procedures(tmp_path, "manual.txt", _REPAIRS_MANUAL)
    assert _titles(procedures) == ["Routine repairs", "Damp and mould"]
    for procedure in procedures:
        # the rules "(ALL CALLS)" hold in every procedure; the facts are its background
        assert "NEVER promise a date" in _text(procedure)
        assert "Line open Monday to Friday" in _background(procedure)
    # a section of numbered instructions under a facts-like heading is still a task
    told = _REPAIRS_MANUAL.replace(
        "2.1 Line open Monday to Friday 08:00 to 18:00.\n"
        "2.2 Appointment slots: AM 08:00-12:00, PM 12:00-17:00.\n",
        "2.1 Check the fee on the rate card.\n2.2 Take the fee by card.\n",
    ).replace("SERVICE FACTS", "FEES")
    assert "Fees" in _titles(_procedures(tmp_path, "manual.txt", told))


_NUMBERED_ON = """\
# Front-of-House Procedures

## 4.1 Taking a new booking
1. Ask which room and how many players.
2. Make the booking in the customer's name.
3. Take the full payment by card.

## 4.2 Cancelling a booking
4. Pull up the booking.
5. Cancel the booking and refund the card.
6. Email them the refund.
"""


def test_numbers_running_on_across_task_headings_are_separate_procedures(tmp_path: Path) -> None:
    # a word processor's "List Number" runs on (1-3, then 4-6) across headings that each name
    # a task: two procedures, as the headings say
    procedures = _procedures(tmp_path, "manual.md", _NUMBERED_ON)
    assert _titles(procedures) == ["Taking a new booking", "Cancelling a booking"]
    # a jump from one into the other makes them stages of one procedure
    jumped = _NUMBERED_ON.replace(
        "3. Take the full payment by card.", "3. If they cannot pay, go to step 5."
    )
    assert len(_procedures(tmp_path, "manual.md", jumped)) == 1
    # and so do stage headings that name no task
    stages = _NUMBERED_ON.replace("4.1 Taking a new booking", "First contact").replace(
        "4.2 Cancelling a booking", "Afterwards"
    )
    assert len(_procedures(tmp_path, "manual.md", stages)) == 1


def test_a_note_on_how_to_read_the_macros_below_starts_no_procedure(tmp_path: Path) -> None:
    text = (
        "# Rescue Desk Macro Library\n\n"
        "Exported from the ticketing system. Each macro below is what you run when the ticket "
        "type matches. Agents: read the box of a macro first, the steps after.\n\n"
        "## Macro 01 - Broken down\n\n1. Pull up the membership.\n2. Send a patrol.\n\n"
        "## Macro 02 - Where's my patrol?\n\n1. Pull up the membership.\n2. Check the ETA.\n"
    )
    procedures = _procedures(tmp_path, "macros.md", text)
    assert len(procedures) == 2
    assert not any("read the box" in _text(p) for p in procedures)


def test_a_page_history_after_the_procedures_is_no_step_of_them(tmp_path: Path) -> None:
    # an intranet page ends "Useful numbers" (a table) and "Page history" (dated bullets)
    text = _HOTEL.replace(
        "</body>",
        "<section><h2>Useful numbers</h2><ul><li>Reception: ext 100</li></ul></section>"
        "<section><h2>Page history</h2><ul><li>12 Nov 2026: credit note limit raised to"
        " £200.</li><li>2 Feb 2026: page created.</li></ul></section></body>",
    )
    procedures = _procedures(tmp_path, "hotel.html", text)
    assert all("page created" not in _text(p) for p in procedures)
