"""The condition grammar: every form, both sides, and the verbatim fallback."""

from __future__ import annotations

import pytest

from sop_compiler.generate.offline.grammar import (
    Branch,
    Condition,
    Construct,
    Facts,
    Plain,
    Switch,
    Verbatim,
    read,
    read_items,
    read_table,
)


def _cond(text: str, children: tuple[Construct, ...] = ()) -> Condition:
    out = read(text, children)
    assert isinstance(out, Condition), out
    return out


def _texts(branch: Branch) -> list[str]:
    return [s.text for s in branch.steps if isinstance(s, Plain)]


def test_if_otherwise_both_sides() -> None:
    c = _cond(
        "If the amount is above 500, open a ticket for finance. Otherwise, refund it yourself."
    )
    assert c.test == "the amount is above 500"
    assert _texts(c.then) == ["open a ticket for finance"]
    assert _texts(c.otherwise) == ["refund it yourself"]


def test_when_otherwise_inline_threshold_not_inverted() -> None:
    c = _cond("When the amount is above 500, open a ticket; otherwise, issue the refund.")
    assert c.test == "the amount is above 500"
    assert _texts(c.then) == ["open a ticket"]
    assert "issue the refund" not in " ".join(_texts(c.then))
    assert _texts(c.otherwise) == ["issue the refund"]


def test_if_not_sentence_is_the_alternative() -> None:
    c = _cond("If the customer has the receipt, accept the return. If not, offer store credit.")
    assert _texts(c.then) == ["accept the return"]
    assert _texts(c.otherwise) == ["offer store credit"]


def test_condition_without_otherwise_continues() -> None:
    c = _cond("If the parcel is late, apologise.")
    assert _texts(c.then) == ["apologise"]
    assert c.otherwise.steps == () and c.otherwise.ends == "continue"


def test_number_with_thousands_comma_stays_in_test() -> None:
    c = _cond("If the amount is 1,000 or more, escalate to billing.")
    assert c.test == "the amount is 1,000 or more"
    assert c.then.ends == "escalate"


@pytest.mark.parametrize(
    ("text", "test"),
    [
        (
            "If the card was used abroad, or the customer cannot confirm the purchase, stop and "
            "escalate to fraud.",
            "the card was used abroad, or the customer cannot confirm the purchase",
        ),
        (
            "If the order is paid, and it has not shipped, cancel the order.",
            "the order is paid, and it has not shipped",
        ),
        (
            "If either the box is open or a seal is broken, refuse the return.",
            "either the box is open or a seal is broken",
        ),
    ],
)
def test_compound_test_kept_whole(text: str, test: str) -> None:
    c = _cond(text)
    assert c.test == test
    assert len(c.then.steps) == 1
    assert not any("Or " in s for s in _texts(c.then))


def test_stop_after_escalate_ends_the_branch() -> None:
    c = _cond("If the card was used abroad, or the customer cannot confirm it, stop and escalate.")
    assert c.then.ends == "escalate"
    assert c.otherwise.ends == "continue"
    for text, kind in [
        ("If the account is closed, hand off to the retention agent.", "handoff"),
        ("If nothing else is needed, close the case.", "resolve"),
        ("If the customer refuses, stop.", "stop"),
    ]:
        assert _cond(text).then.ends == kind


def test_nested_list_is_the_then_branch() -> None:
    children: tuple[Construct, ...] = (Plain("Check the serial"), Plain("Replace the unit"))
    c = _cond("If the device is under warranty:", children)
    assert c.test == "the device is under warranty"
    assert _texts(c.then) == ["Check the serial", "Replace the unit"]
    assert c.otherwise.steps == ()
    # nested items under a block that does not open a list are not guessed into a branch
    assert isinstance(read("If it is late, apologise.", children), Verbatim)


def test_unless_both_directions() -> None:
    for text in [
        "Unless the order has shipped, cancel it.",
        "Cancel it unless the order has shipped.",
    ]:
        c = _cond(text)
        assert c.test == "the order has shipped"
        assert c.then.steps == ()  # the test holds: do nothing
        assert [s.text.lower() for s in c.otherwise.steps if isinstance(s, Plain)] == ["cancel it"]


def test_only_if_both_directions() -> None:
    for text in [
        "Only if the customer is a Gold member, issue a voucher.",
        "Issue a voucher only if the customer is a Gold member.",
    ]:
        c = _cond(text)
        assert c.form == "only_if"
        assert c.test == "the customer is a Gold member"
        assert [s.text.lower() for s in c.then.steps if isinstance(s, Plain)] == ["issue a voucher"]
        assert c.otherwise.steps == ()


@pytest.mark.parametrize(
    "text",
    [
        "Is the device under warranty? Yes: replace it. No: offer a paid repair.",
        "Is the device under warranty? If yes, replace it. If no, offer a paid repair.",
    ],
)
def test_question_yes_no(text: str) -> None:
    c = _cond(text)
    assert c.test == "Is the device under warranty"
    assert _texts(c.then) == ["replace it"]
    assert _texts(c.otherwise) == ["offer a paid repair"]


def test_same_target_both_sides_is_verbatim() -> None:
    out = read("If the form is complete, go to step 7. Otherwise, continue with step 7.")
    assert isinstance(out, Verbatim)
    assert "same step" in out.reason


def test_goto_targets_kept() -> None:
    c = _cond("If the form is complete, go to step 7. Otherwise, go to step 4.")
    assert c.then.goto == "7" and c.otherwise.goto == "4"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("If it is late, apologise. Then refund the fee.", "scope"),
        ("If it is late apologise", "comma"),
        ("Otherwise, refund it.", "no condition"),
        ("If it is late, refund it if the customer asks.", "inside a branch"),
    ],
)
def test_unscoped_text_is_verbatim_with_reason(text: str, reason: str) -> None:
    out = read(text)
    assert isinstance(out, Verbatim)
    assert out.text == text
    assert reason in out.reason


def test_plain_sentences_then_condition() -> None:
    out = read("Look up the order. If it is late, apologise.")
    assert isinstance(out, list)
    assert isinstance(out[0], Plain) and out[0].text == "Look up the order"
    assert isinstance(out[1], Condition)


def test_sequential_ifs_on_one_subject_are_a_switch() -> None:
    out = read_items(
        [
            ("If the tier is Gold, offer 20%.", ()),
            ("If the tier is Silver, offer 10%.", ()),
            ("If the parcel is late, apologise.", ()),
        ]
    )
    assert isinstance(out[0], Switch)
    assert out[0].subject == "the tier"
    assert [c.test for c in out[0].cases] == ["the tier is Gold", "the tier is Silver"]
    assert _texts(out[0].cases[1].branch) == ["offer 10%"]
    assert isinstance(out[1], Condition)  # another subject: its own condition


def test_options_with_their_own_conditions_are_a_switch() -> None:
    out = read_items(
        [
            ("Option A: if the customer wants cash, issue a refund.", ()),
            ("Option B: if the customer prefers credit, issue store credit.", ()),
        ]
    )
    assert len(out) == 1 and isinstance(out[0], Switch)
    assert [_texts(c.branch) for c in out[0].cases] == [["issue a refund"], ["issue store credit"]]


def test_decision_table_is_a_switch_keyed_by_header() -> None:
    out = read_table(
        ["Tier", "Amount", "Action"],
        [
            ["Gold", "any", "Refund"],
            ["Silver", "under 50", "Refund"],
            ["", "", "Escalate to billing"],
        ],
    )
    assert isinstance(out, Switch)
    assert [c.test for c in out.cases] == ["tier is Gold", "tier is Silver and amount is under 50"]
    assert out.default.ends == "escalate"


def test_table_of_limits_is_facts_not_steps() -> None:
    out = read_table(["Tier", "Limit"], [["Gold", "15 minutes"], ["Silver", "5 minutes"]])
    assert isinstance(out, Facts)
    assert out.sentences() == ["Tier: Gold; Limit: 15 minutes.", "Tier: Silver; Limit: 5 minutes."]
    ragged = read_table(["Tier", "Action"], [["Gold"]])
    assert isinstance(ragged, Verbatim)


CORPUS = [
    "If the amount is above 500, open a ticket. Otherwise, refund it.",
    "When the amount is above 500, open a ticket; otherwise, refund it.",
    "If the form is complete, go to step 7. Otherwise, continue with step 7.",
    "If the form is complete, continue. Otherwise, continue.",
    "Unless the order has shipped, cancel it.",
    "Refund it only if the receipt is shown.",
    "Is it broken? Yes: replace it. No: continue.",
    "Is it broken? Yes: continue. No: continue.",
    "If it is broken, continue; otherwise continue as normal.",
]


@pytest.mark.parametrize("text", CORPUS)
def test_every_condition_targets_differ(text: str) -> None:
    out = read(text)
    if isinstance(out, Condition):
        assert out.then != out.otherwise
        assert out.then.steps or out.otherwise.steps
        assert not (out.then.goto is not None and out.then.goto == out.otherwise.goto)
    else:
        assert isinstance(out, Verbatim)
