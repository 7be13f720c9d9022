"""Tool binding by name, alias and verb-object meaning; no fragment-named proposed tools."""

from __future__ import annotations

from sop_compiler.generate.offline.binding import bind
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
