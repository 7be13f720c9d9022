"""Tool binding by name, alias and verb-object meaning; no fragment-named proposed tools."""

from __future__ import annotations

from sop_compiler.generate.offline.binding import bind, is_statement
from sop_compiler.models import ToolCatalog
from sop_compiler.models.catalog import Tool

CATALOG = ToolCatalog(
    tools=[
        Tool(name="cancel_reservation", description="Cancel a reservation by id.", access="write"),
        Tool(name="update_user_details", description="Update the user's address or email."),
        Tool(name="get_order", description="Look up an order.", aliases=["order lookup"]),
    ]
)


def test_binds_by_name_in_backticks_and_alias() -> None:
    assert bind("Call `get_order` with the id", CATALOG).tool == "get_order"
    assert bind("Run the order lookup", CATALOG).tool == "get_order"


def test_binds_verb_object_by_meaning() -> None:
    assert bind("Cancel the booking", CATALOG).tool == "cancel_reservation"
    assert bind("Change the customer's address", CATALOG).tool == "update_user_details"
    assert bind("Find the order", CATALOG).tool == "get_order"


def test_no_fragment_named_tools() -> None:
    assert bind("otherwise issue a refund", CATALOG).proposed is None
    assert bind("email address", CATALOG).proposed is None


def test_proposed_from_action_names_close_tool() -> None:
    out = bind("Cancel the subscription", CATALOG)
    assert out.tool is None
    assert out.proposed == "cancel_subscription"
    assert out.close == "cancel_reservation"


def test_open_reads_a_record_unless_a_tool_creates_what_it_names() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(name="fetch_leave_balance", description="Return an employee's leave balance."),
            Tool(name="create_ticket", description="Open a ticket for a team.", access="write"),
            Tool(name="get_ticket", description="Return a ticket's status."),
        ]
    )
    assert bind("Open the employee's leave balance", catalog).tool == "fetch_leave_balance"
    assert bind("Open a ticket for the network team", catalog).tool == "create_ticket"


def test_open_the_thing_a_tool_creates_when_a_read_has_only_whose_it_is_in_common() -> None:
    # `list_storage_accounts` "Open storage accounts with unit rate ...": "open" an adjective,
    # and "customer's" all it shares with the claim opened
    catalog = ToolCatalog(
        tools=[
            Tool(name="open_damage_claim", description="Open a damage claim.", access="write"),
            Tool(name="list_storage_accounts", description="Open storage accounts with rates."),
        ]
    )
    claim = "Open the claim with photos and the customer's description of each item."
    assert bind(claim, catalog).tool == "open_damage_claim"
    assert bind("Open the customer's storage account", catalog).tool == "list_storage_accounts"


def test_synonyms_of_the_verbs_policies_use() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(name="end_membership", description="End a membership.", access="write"),
            Tool(
                name="switch_line_plan", description="Move a line to another plan.", access="write"
            ),
            Tool(name="undelete_project", description="Bring back a project from the trash."),
        ]
    )
    assert bind("Cancel a subscription", catalog).tool == "end_membership"
    assert bind("Change a plan", catalog).tool == "switch_line_plan"
    assert bind("Restore the project", catalog).tool == "undelete_project"


MESSAGES = ToolCatalog(
    tools=[
        Tool(
            name="send_sms",
            description="Send a templated SMS to the renter's mobile.",
            access="write",
        ),
        Tool(
            name="send_email", description="Send a templated email to the member.", access="write"
        ),
        Tool(
            name="send_tenant_letter",
            description="Send a standard letter or email to the tenants.",
            access="write",
        ),
        Tool(name="find_member", description="Look up a member by email address or number."),
    ]
)


def test_messages_bind_by_what_is_sent() -> None:
    assert bind("Send the cancellation confirmation email", MESSAGES).tool == "send_email"
    assert bind("Text the updated agreement to the renter", MESSAGES).tool == "send_sms"
    assert bind("Send the refund confirmation text", MESSAGES).tool == "send_sms"
    assert bind("Email it to the member", MESSAGES).tool == "send_email"
    assert bind("Send the tenant the repair booked letter", MESSAGES).tool == "send_tenant_letter"


def test_email_as_a_noun_is_no_message() -> None:
    assert bind("Email address of the member", MESSAGES).tool is None
    assert bind("email address", MESSAGES).proposed is None


def test_a_light_verb_over_the_tools_own_action() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(name="freeze_membership", description="Freeze a membership.", access="write"),
            Tool(name="create_payment_plan", description="Create a payment plan.", access="write"),
        ]
    )
    assert bind("Set up the freeze", catalog).tool == "freeze_membership"
    assert bind("Set up the plan", catalog).tool == "create_payment_plan"


def test_a_check_calls_the_catalogs_own_check_only() -> None:
    from sop_compiler.generate.offline.phrases import read_clause
    from sop_compiler.generate.offline.tools import ToolIndex

    tools = ToolIndex(
        ToolCatalog(
            tools=[
                Tool(name="verify_borrower", description="Verify a caller is the borrower."),
                Tool(name="get_loan", description="Return a loan and the borrower's email."),
            ]
        )
    )
    verify = read_clause("Verify the caller.", tools=tools, agents=())
    assert [(a.kind, a.tool.tool.name if a.tool else None) for a in verify.actions] == [
        ("tool_call", "verify_borrower")
    ]
    # "check the email on the loan" reads what was looked up: no call of its own
    check = read_clause("Check the email on the loan.", tools=tools, agents=())
    assert all(a.kind != "tool_call" for a in check.actions)
    assert bind("Pull up the loan", tools.catalog).tool == "get_loan"


def test_a_sentence_that_orders_nothing_binds_nothing() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="book_extra_session",
                description="Book an additional session for a child; it goes on the invoice.",
                access="write",
            )
        ]
    )
    assert bind("Book an extra session for Friday.", catalog).tool == "book_extra_session"
    # a statement binds nothing by meaning: no order starts it
    assert bind("Parents often book additional sessions for a child.", catalog).tool is None


def test_a_case_label_over_nothing_to_do_is_a_statement_and_a_label_over_a_list_is_not() -> None:
    from sop_compiler.generate.offline.binding import is_statement

    assert is_statement("Returned to sender already: nothing can be done by us.")
    assert not is_statement("Build the evidence pack: the invoice and the proof of delivery.")
    assert not is_statement("Fraud flag set: escalate to Fraud Review.")


def test_a_quoted_template_name_is_not_what_is_sent() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="request_vet_authorisation",
                description="Send a request to the customer's vet practice. Returns a reference.",
                access="write",
            ),
            Tool(name="send_email", description="Send a template email to the customer."),
        ]
    )
    said = 'Send the customer the "adverse reaction received" email so they have the reference'
    assert bind(said, catalog).tool == "send_email"


def test_to_review_a_record_is_to_read_it() -> None:
    catalog = ToolCatalog(
        tools=[Tool(name="get_duty_register", description="Return the duty register for a site.")]
    )
    assert bind("Review the duty register for the site", catalog).tool == "get_duty_register"


def test_a_catalog_tools_own_verb_is_an_order_and_a_plural_noun_is_not() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(name="retry_payment", description="Retry a failed card payment.", access="write"),
            Tool(name="amend_cake_order", description="Change a cake order.", access="write"),
            Tool(name="refund_booking", description="Refund a booking.", access="write"),
        ]
    )
    assert bind("Retry the card payment once.", catalog).tool == "retry_payment"
    assert bind("Amend or cancel the order first", catalog).tool == "amend_cake_order"
    assert bind("Refunds above GBP 250 need a Team Leader's approval", catalog).tool is None


def test_a_write_tools_described_verb_is_an_order_too() -> None:
    # `submit_return` "Transmit a return to the IRS and the state by e-file": "Transmit the
    # return" is its call, though "transmit" is no verb the compiler otherwise knows
    catalog = ToolCatalog(
        tools=[
            Tool(name="submit_return", description="Transmit a return by e-file.", access="write"),
            Tool(name="get_return_status", description="Status of a return.", access="read"),
        ]
    )
    assert bind("Transmit the return.", catalog).tool == "submit_return"
    assert bind("Status of the return is shown on the file.", catalog).tool is None


def test_the_tools_own_verb_with_its_object_said_further_on() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(name="take_payment", description="Take a card payment.", access="write"),
            Tool(name="find_tenant", description="Find a tenant by name."),
        ]
    )
    said = "Take the first month's fee and the security deposit in a single payment."
    assert bind(said, catalog).tool == "take_payment"
    assert bind("Take the tenant's name and phone number", catalog).tool is None


def test_a_light_verb_over_what_the_tool_makes() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(name="add_booking_note", description="Add a note to a booking.", access="write"),
            Tool(name="find_booking", description="Look up a booking by reference."),
        ]
    )
    assert bind("Make a note on the booking of what was agreed.", catalog).tool == (
        "add_booking_note"
    )


def test_the_tool_named_for_the_object_beats_one_that_only_describes_it() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="lookup_enrolment",
                description="Return a student's enrolments with course, class and fees paid.",
            ),
            Tool(
                name="check_class_availability",
                description="Return the number of enrolled students and free places.",
            ),
        ]
    )
    said = "Check that the new class has space."
    assert bind(said, catalog).tool == "check_class_availability"


def test_a_message_is_sent_with_the_catalogs_one_message_tool_or_its_channel() -> None:
    one = ToolCatalog(
        tools=[
            Tool(
                name="send_customer_message",
                description="Email a standard letter to the customer.",
                access="write",
            ),
            Tool(name="send_replacement", description="Ship a replacement item.", access="write"),
        ]
    )
    assert bind("Send the booking confirmation.", one).tool == "send_customer_message"
    assert bind("Send the spare part to the workshop.", one).tool != "send_customer_message"
    two = ToolCatalog(
        tools=[
            Tool(name="send_sms", description="Send a text message.", access="write"),
            Tool(name="send_letter", description="Post a letter.", access="write"),
        ]
    )
    assert bind("Send a reminder by sms.", two).tool == "send_sms"
    assert bind("Send the reminder.", two).tool is None  # which channel is not written


def test_who_a_tool_is_for_is_no_reason_to_bind_it() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="issue_spa_voucher",
                description="Add a spa voucher to the guest's stay.",
                access="write",
            ),
            Tool(
                name="post_folio_charge",
                description="Post a charge to a resident guest's hotel folio.",
                access="write",
            ),
            Tool(
                name="issue_guest_pass",
                description="Register a guest and send them a day pass.",
                access="write",
            ),
        ]
    )
    said = "Add the charge to the guest's room bill"
    assert bind(said, catalog).tool == "post_folio_charge"
    assert bind("Register the guest", catalog).tool == "issue_guest_pass"  # the guest is it


def test_checking_who_is_calling_is_the_catalogs_identity_check() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="verify_keeper",
                description="Confirm that the caller is the registered keeper of the vehicle.",
            ),
            Tool(name="lookup_vehicle", description="Look up a vehicle by registration."),
        ]
    )
    for said in (
        "Check the caller's details against the V5C logbook",
        "Check the caller is the account holder or an authorised user",
    ):
        assert bind(said, catalog).tool == "verify_keeper", said
    assert bind("Check the vehicle's mileage", catalog).tool != "verify_keeper"


def test_a_list_is_pulled_with_the_tool_that_lists_it() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(name="list_day_bookings", description="List every spa booking for a date."),
            Tool(name="lookup_guest", description="Find a hotel guest by room number."),
        ]
    )
    assert bind("Pull up the list of today's bookings.", catalog).tool == "list_day_bookings"
    assert bind("List every booking still showing as booked", catalog).tool == ("list_day_bookings")


def test_a_read_tool_described_as_what_it_returns_is_a_lookup() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="quote_treatment_price",
                description="Return the standard price and guarantee window for a treatment.",
            ),
            Tool(name="book_callout", description="Book a callout.", access="write"),
        ]
    )
    said = "Look up the price on the rate card for the pest and property."
    assert bind(said, catalog).tool == "quote_treatment_price"


def test_confirming_the_identity_of_the_account_holder_is_the_identity_check() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="verify_account_holder",
                description="Check that the caller is the named person on the account.",
            ),
            Tool(
                name="set_roaming_status",
                description="Turn international roaming on or off for a line.",
                access="write",
            ),
        ]
    )
    said = "Confirm the identity of the Account Holder by security PIN."
    assert bind(said, catalog).tool == "verify_account_holder"
    assert bind("Check who they are: a photo on a video call.", catalog).tool == (
        "verify_account_holder"
    )


def test_a_verb_over_it_binds_no_tool_by_its_verb_alone() -> None:
    # "If a replacement coach can be found, the controller books it": `book_assistance` is the
    # catalog's one booking tool, and no booking of a coach
    catalog = ToolCatalog(
        tools=[Tool(name="book_assistance", description="Book boarding help.", access="write")]
    )
    assert bind("Book it.", catalog).tool is None


def test_the_tools_action_said_as_a_noun_binds_it_over_a_verb_it_shares_less_with() -> None:
    # "Take the £50 security deposit on a card pre-authorisation" took a payment
    catalog = ToolCatalog(
        tools=[
            Tool(name="take_payment", description="Take a card payment.", access="write"),
            Tool(
                name="preauthorise_card",
                description="Place a pre-authorisation hold on a card for a security deposit.",
                access="write",
            ),
            Tool(name="refund_deposit", description="Refund a security deposit.", access="write"),
        ]
    )
    held = "Take the £50 security deposit on a card pre-authorisation"
    assert bind(held, catalog).tool == "preauthorise_card"
    assert bind("Take the balance by card", catalog).tool == "take_payment"
    # the action said as a verb still decides: a refund is never the hold
    assert bind("Refund the deposit held on the card pre-authorisation", catalog).tool == (
        "refund_deposit"
    )


def test_the_one_tool_of_an_action_only_it_does_binds_without_its_object() -> None:
    # "Refund the unused days to the original card" and `refund_hire`; a verb said of many
    # things ("cancel", "issue") still needs its object
    catalog = ToolCatalog(
        tools=[
            Tool(name="refund_hire", description="Pay a hire back to the card.", access="write"),
            Tool(name="cancel_booking", description="Cancel a booking.", access="write"),
            Tool(name="find_hire", description="Find a hire by its number."),
        ]
    )
    assert bind("Refund the unused days to the original card.", catalog).tool == "refund_hire"
    assert bind("Cancel the barrier pass.", catalog).tool is None
    assert bind("Refund them.", catalog).tool is None  # only who: nothing said of what


def test_raise_changes_only_an_amount() -> None:
    # "Raise a job with Metering Operations" called `switch_to_credit_mode` (raise = change)
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="switch_to_credit_mode",
                description="Switch a meter to credit mode.",
                access="write",
            ),
            Tool(
                name="change_credit_limit",
                description="Change a card's credit limit.",
                access="write",
            ),
        ]
    )
    assert bind("Raise a job with Metering Operations.", catalog).tool is None
    assert bind("Raise the credit limit to £500.", catalog).tool == "change_credit_limit"


def test_a_list_of_things_named_like_a_write_tool_is_the_list_tool() -> None:
    # "Pull the list of open delayed bag files": "open" is an adjective there, and
    # `open_delayed_bag_file` opens one
    catalog = ToolCatalog(
        tools=[
            Tool(name="open_delayed_bag_file", description="Open a bag file.", access="write"),
            Tool(name="find_bag_file", description="Find delayed bag files by reference."),
            Tool(name="list_open_files", description="List open delayed bag files."),
        ]
    )
    said = "Pull the list of open delayed bag files that are 5 days old or more"
    assert bind(said, catalog).tool == "list_open_files"
    assert bind("Open delayed bag file for the passenger", catalog).tool == "open_delayed_bag_file"


def test_an_action_done_again_is_its_own_verb_unless_a_tool_does_it_again() -> None:
    # "Rebook the appointment", "Re-run the trace on each one": booking and tracing again
    catalog = ToolCatalog(
        tools=[
            Tool(name="book_appointment", description="Book an appointment.", access="write"),
            Tool(name="trace_bag", description="Run a world trace on a bag."),
            Tool(name="send_text", description="Text the tenant.", access="write"),
            Tool(name="resend_code", description="Resend the top-up code.", access="write"),
        ]
    )
    assert bind("Rebook the appointment", catalog).tool == "book_appointment"
    assert bind("Re-run the trace on each one", catalog).tool == "trace_bag"
    assert bind("Resend the code", catalog).tool == "resend_code"


def test_the_things_a_description_lists_in_brackets_are_what_the_tool_acts_on() -> None:
    # `take_payment` "Take a card payment (rent, deposit, arrears)": "Take the first month's
    # rent plus the deposit" is that payment, and so is "take any money"
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="take_payment",
                description="Take a card payment at the counter (rent, deposit, arrears).",
                access="write",
            ),
            Tool(name="take_photo", description="Take a photo of the item.", access="write"),
        ]
    )
    assert bind("Take the first month's rent plus the deposit", catalog).tool == "take_payment"
    assert bind("Take the money for the repair", catalog).tool == "take_payment"
    assert bind("Take a photo of the damage", catalog).tool == "take_photo"


def test_the_call_centres_words_for_security_are_the_identity_check() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="verify_account_holder",
                description="Confirm the caller is the account holder, using security questions.",
            ),
            Tool(name="find_account", description="Find a customer's energy account."),
        ]
    )
    for said in (
        "Take the caller through security",
        "Complete ID&V",
        "Pass security questions before anything else",
        "Ask for the password",
        "Ask the caller for their memorable word",
        "Confirm who you're talking to",
    ):
        assert bind(said, catalog).tool == "verify_account_holder", said
    # asking for what is not a secret is no check of who is calling
    assert bind("Ask for the account number", catalog).tool != "verify_account_holder"
    assert bind("Take the caller through the options", catalog).tool != "verify_account_holder"


def test_a_looked_up_record_is_not_the_tool_whose_name_says_up() -> None:
    # "up" of "bring up" / "look up" is no object: `get_top_up_history` is not the account
    catalog = ToolCatalog(
        tools=[
            Tool(name="find_account", description="Find a customer's energy account."),
            Tool(
                name="get_top_up_history",
                description="List the payments made to the account, and whether each is applied.",
            ),
        ]
    )
    for said in ("Bring up the account", "Look up the account", "Pull up the account"):
        assert bind(said, catalog).tool == "find_account", said
    assert bind("Look up their top-up history", catalog).tool == "get_top_up_history"


def test_getting_a_person_somewhere_reads_no_record() -> None:
    catalog = ToolCatalog(
        tools=[Tool(name="find_account", description="Find a customer's account and supply.")]
    )
    assert bind("Get the customer back on supply first", catalog).tool is None
    assert bind("Get the customer's account", catalog).tool == "find_account"


def test_the_particle_of_a_phrasal_verb_is_no_object() -> None:
    # "off" is what "take ... off" says; only "next visit" names a thing, and that is not what
    # `cancel_regular_service` takes off
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="cancel_regular_service",
                description="Take the customer off the round permanently.",
                access="write",
            ),
            Tool(
                name="skip_next_visit",
                description="Skip the customer's next regular visit.",
                access="write",
            ),
            Tool(
                name="cancel_delivery",
                description="Take a booked bag off a van delivery round.",
                access="write",
            ),
        ]
    )
    assert bind("Take them off the next visit", catalog).tool != "cancel_regular_service"
    assert bind("Take the customer off the round permanently", catalog).tool in (
        "cancel_regular_service",
        "cancel_delivery",
    )
    assert bind("Take the bag off tomorrow's delivery round", catalog).tool == "cancel_delivery"


def test_a_light_verb_over_what_a_making_tool_names_is_that_tool() -> None:
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="create_booking",
                description="Book a room slot in the customer's name.",
                access="write",
            ),
            Tool(name="find_booking", description="Find a booking by reference or name."),
        ]
    )
    assert bind("Make the booking in the customer's name", catalog).tool == "create_booking"
    # what is made is a note, not the booking it is on
    assert bind("Make a note on the booking", catalog).tool != "create_booking"


def test_a_message_to_the_writer_is_no_message_to_the_customer() -> None:
    # "Text me the name if they sound like they'd stay" (a window cleaner away on holiday)
    # texted the customer with `text_customer`
    catalog = ToolCatalog(
        tools=[
            Tool(name="text_customer", description="Send the customer an SMS.", access="write"),
            Tool(name="email_customer", description="Email the customer.", access="write"),
        ]
    )
    assert bind("Text me the name", catalog).tool is None
    assert bind("Email us the form", catalog).tool is None
    assert bind("Text the customer the date", catalog).tool == "text_customer"


def test_a_phrasal_verb_around_its_object_and_a_car_for_a_vehicle() -> None:
    # a tyre garage: "Get the registration and look the car up" with `lookup_vehicle`
    catalog = ToolCatalog(
        tools=[
            Tool(name="lookup_vehicle", description="Find a vehicle by its registration."),
            Tool(name="book_fitting", description="Book a tyre fitting.", access="write"),
        ]
    )
    assert bind("look the car up", catalog).tool == "lookup_vehicle"
    assert bind("look up the car", catalog).tool == "lookup_vehicle"
    assert bind("Book the fitting", catalog).tool == "book_fitting"


def test_messaging_a_team_calls_the_tool_that_messages_it_never_a_customers_tool() -> None:
    # a formalwear franchise: "Email the hire desk so they can book a second van" called
    # `send_customer_text`; "Tell the parent ..." is what to say to a caller, not `notify_parent`
    catalog = ToolCatalog(
        tools=[
            Tool(name="send_customer_text", description="Text the customer.", access="write"),
            Tool(name="message_hire_desk", description="Message the hire desk.", access="write"),
            Tool(name="notify_parent", description="Write to a pupil's parents.", access="write"),
        ]
    )
    assert bind("Email the hire desk so they can book a second van", catalog).tool == (
        "message_hire_desk"
    )
    assert bind("Tell the parent the bus is late", catalog).tool != "notify_parent"
    # "If the customer says no, ask the Head Office hire desk to transfer stock"
    assert bind("ask the hire desk to transfer stock", catalog).tool == "message_hire_desk"
    assert bind("Text the customer the date", catalog).tool == "send_customer_text"


def test_a_making_verb_never_means_the_tool_that_undoes_it() -> None:
    # a ferry macro: "If it's a Saver fare, add the £25 amendment fee. Do not waive the fee"
    # called `waive_amendment_fee` ("Remove the amendment fee"), the forbidden tool
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="waive_amendment_fee",
                description="Remove the amendment fee from a booking.",
                access="write",
            ),
            Tool(name="add_booking_note", description="Add a note to a booking.", access="write"),
        ]
    )
    assert bind("Add the £25 amendment fee", catalog).tool is None
    assert bind("Waive the amendment fee", catalog).tool == "waive_amendment_fee"
    assert bind("Make a note on the booking", catalog).tool == "add_booking_note"


def test_opening_a_new_record_reads_none() -> None:
    # "If there isn't one, open a new account" called `find_customer_account`
    catalog = ToolCatalog(
        tools=[Tool(name="find_customer_account", description="Find a customer's account.")]
    )
    assert bind("Open a new account", catalog).tool is None
    assert bind("Open the account", catalog).tool == "find_customer_account"


def test_an_action_a_description_offers_after_or_is_the_tools_own() -> None:
    # a wine club: "Yes: rebook once more, but it's £8.50 redelivery" and `reschedule_shipment`
    # "Move a scheduled shipment, or rebook a returned one, to a new delivery date"
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="reschedule_shipment",
                description="Move a scheduled shipment, or rebook a returned one, to a new "
                "delivery date.",
                access="write",
            ),
            Tool(
                name="book_courier_collection",
                description="Book a courier to collect a case from the member.",
                access="write",
            ),
            Tool(
                name="flag_repair_job",
                description="Set a flag on a repair job (for example PRIORITY REBOOK).",
                access="write",
            ),
        ]
    )
    assert bind("Rebook the delivery for a date they choose", catalog).tool == (
        "reschedule_shipment"
    )
    assert bind("Book a courier collection for the case", catalog).tool == (
        "book_courier_collection"
    )


def test_allocating_is_assigning() -> None:
    # a hotel's check-in: "Allocate a room of the type booked" and `assign_room`
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="assign_room",
                description="Check a guest in by allocating a specific room to their reservation.",
                access="write",
            ),
            Tool(name="check_room_availability", description="Check how many rooms are free."),
        ]
    )
    assert bind("Allocate a room of the type booked", catalog).tool == "assign_room"


def test_a_tool_whose_every_name_word_is_said_with_its_own_verb() -> None:
    # a claims script: "Check the policy has escape of water cover" is `check_cover`, not
    # `find_policy` by the synonym check ~ find; a synonym of the verb alone never counts
    catalog = ToolCatalog(
        tools=[
            Tool(name="find_policy", description="Find a policy by number or by postcode."),
            Tool(name="check_cover", description="Check whether a policy covers a loss."),
            Tool(name="send_email", description="Send an email.", access="write"),
            Tool(
                name="send_esign_envelope",
                description="Send an agreement for electronic signature.",
                access="write",
            ),
        ]
    )
    assert bind("Check the policy has escape of water cover", catalog).tool == "check_cover"
    assert bind("Find the policy", catalog).tool == "find_policy"
    assert bind("Send the agreement for electronic signature", catalog).tool == (
        "send_esign_envelope"
    )


def test_putting_money_back_on_a_card_refunds_it_never_charges_it_again() -> None:
    # a billing runbook: "Put the second payment back on their card" beside
    # `retry_card_payment` "Attempt the charge ... again on the card on file"
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="retry_card_payment",
                description="Attempt the charge for an unpaid invoice again on the card on file.",
                access="write",
            ),
            Tool(
                name="refund_to_card",
                description="Refund a payment back to the card that made it.",
                access="write",
            ),
        ]
    )
    assert bind("Put the second payment back on their card", catalog).tool == "refund_to_card"
    assert bind("Retry the card payment", catalog).tool == "retry_card_payment"


def test_taking_a_night_off_a_booking_takes_no_payment() -> None:
    # a hotel walk: "take the first night off their booking so they come back to us on night
    # two" never calls `charge_card_on_file` "Take a payment now from the card held on a
    # booking"; "take the money" does
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="charge_card_on_file",
                description="Take a payment now from the card held on a booking.",
                access="write",
            ),
        ]
    )
    assert bind("Take the first night off their booking", catalog).tool is None
    assert bind("Take the payment from the card", catalog).tool == "charge_card_on_file"


def test_running_a_report_and_passing_someone_through_security() -> None:
    # a charity: "Pass them through security", "Run the failed collections report"; a school
    # caterer: "Check you are speaking to the account holder: ask for the child's date of birth"
    catalog = ToolCatalog(
        tools=[
            Tool(name="find_supporter", description="Find a supporter record by number."),
            Tool(
                name="verify_supporter",
                description="Run the security check that the caller is the supporter.",
            ),
            Tool(
                name="list_failed_collections",
                description="Report of Direct Debit collections that failed in a date range.",
            ),
            Tool(name="get_direct_debit", description="Return the supporter's Direct Debit."),
        ]
    )
    for said in (
        "Pass them through security before you discuss any gift",
        "Check you are speaking to the account holder: ask for their date of birth",
    ):
        assert bind(said, catalog).tool == "verify_supporter", said
    assert bind("Run the failed collections report for last week", catalog).tool == (
        "list_failed_collections"
    )


def test_telling_a_role_a_hand_over_tool_names_reaches_them() -> None:
    # a car subscription sweep: "If more than 10 cars are overdue, tell the Member Care
    # Manager" with `refer_to_team` "Refer a case to another team (..., Member Care Manager)"
    catalog = ToolCatalog(
        tools=[
            Tool(name="find_member", description="Look up a member's account."),
            Tool(
                name="refer_to_team",
                description="Refer a case to another team (Fleet Desk, Recoveries, Member "
                "Care Manager) or a school's business manager.",
                access="write",
            ),
        ]
    )
    assert bind("Tell the Member Care Manager.", catalog).tool == "refer_to_team"
    assert bind("Tell the member their manager will call", catalog).tool is None
    assert bind("Tell the customer the price", catalog).tool is None


def test_a_read_tool_makes_nothing_and_a_tie_goes_to_the_verb_said() -> None:
    # a hotel standards manual: "Check availability for the group's dates" bound
    # `get_group_block` (a synonym of check, listed first), and "add them to the block at the
    # group rate" bound the same read tool, as if adding made a block
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="get_group_block",
                description="Open a group block by group reference and return its rooming "
                "list, room count and release date.",
            ),
            Tool(
                name="check_room_availability",
                description="Check how many rooms of each type are free for a range of nights.",
            ),
        ]
    )
    assert bind("Check availability for the group's dates first.", catalog).tool == (
        "check_room_availability"
    )
    assert bind("Add them to the block at the group rate", catalog).tool is None


def test_a_tie_never_goes_to_a_tool_that_shares_only_whose_it_is() -> None:
    # the tie to the verb said sent "Send the customer a replacement router" to
    # `send_password_reset`, which shares only "customer" with it
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="reship_order",
                description="Send a free replacement of an order's items.",
                access="write",
            ),
            Tool(
                name="send_password_reset",
                description="Email the customer a single-use password reset link.",
                access="write",
            ),
        ]
    )
    assert bind("Send the customer a replacement router", catalog).tool == "reship_order"


def test_a_write_tool_s_verb_alone_is_second_to_the_tool_of_the_things_said() -> None:
    # a meal-kit playbook: "Add it as an allergen flag on the account" called `add_box_credit`
    # (its verb, and "account" in common) over `set_allergen_flag`; and "Credit for a box
    # someone couldn't eat is the full box value" is a fact about credit, no call of it
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="add_box_credit",
                description="Put a credit on the subscriber's account.",
                access="write",
            ),
            Tool(
                name="set_allergen_flag",
                description="Record an allergen on the account so the packing line excludes "
                "recipes containing it.",
                access="write",
            ),
            Tool(name="lookup_account", description="Look up a customer's account."),
        ]
    )
    assert bind("Add it as an allergen flag on the account", catalog).tool == "set_allergen_flag"
    assert bind("Add the allergen flag as well, so the next box is safe", catalog).tool == (
        "set_allergen_flag"
    )
    assert bind("Look up the customer's account by phone number", catalog).tool == (
        "lookup_account"
    )
    assert is_statement("Credit for a box someone couldn't eat is the full box value")
