import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from zerosum.games.parsing import (
    MAX_FREE_MOVE_CHARS,
    MAX_SCAN_CHARS,
    last_boxed,
    names_any,
    parse_action,
)

KUHN = ["check", "bet"]


@pytest.mark.parametrize(
    "response, expected",
    [
        (r"I think betting is best. \boxed{bet}", "bet"),
        (r"\boxed{check} no wait... \boxed{bet}", "bet"),  # the last boxed answer wins
        (r"\boxed{\text{bet}}", "bet"),  # LaTeX text wrapper
        (r"\boxed{\textbf{\text{Check}}}", "check"),  # nested wrappers, wrong case
        (r"\boxed{ BET }", "bet"),  # whitespace and case
        (r"\boxed{[bet]}", "bet"),  # bracketed inside the box
        (r"\boxed {bet}", "bet"),  # space before the brace
        ("I will [check] here", "check"),  # fallback: last bracketed legal action
        ("[bet] or [check]? Final: [check]", "check"),
        ("[bet] then [raise]", "bet"),  # the last *legal* bracketed action
        (r"\boxed{I bet}", None),  # extra words inside the box are not guessed at
        (r"\boxed{fold}", None),  # not legal here
        (r"\boxed{} [bet]", None),  # an empty box is an answer, and an invalid one
        ("", None),
        ("   ", None),
        ("just words", None),
        (r"\boxed{bet", None),  # unbalanced
        (r"\boxed{check} and then \boxed{bet", "check"),  # unbalanced last: earlier one counts
        ("😀 \\boxed{béte}", None),
    ],
)
def test_parse_table(response, expected):
    parsed = parse_action(response, KUHN)
    assert parsed.action == expected
    assert parsed.valid == (expected is not None)
    if expected is None:
        assert parsed.reason


def test_nested_braces():
    assert last_boxed(r"x \boxed{\frac{1}{2}} y") == r"\frac{1}{2}"
    assert parse_action(r"\boxed{{4}}", [str(i) for i in range(9)]).action == "4"


def test_reasons_name_the_problem():
    assert "not a legal action" in parse_action(r"\boxed{raise}", KUHN).reason
    assert parse_action("", KUHN).reason == "empty response"
    assert "no \\boxed{}" in parse_action("hmm", KUHN, fallback="none").reason


def test_no_fallback_ignores_brackets():
    assert parse_action("[bet]", KUHN, fallback="none").action is None
    with pytest.raises(ValueError, match="unknown parser fallback 'guess'"):
        parse_action("[bet]", KUHN, fallback="guess")


def test_free_text_moves():
    move = parse_action(r"Let me offer... \boxed{[Offer: 2 Wood -> 1 Gold]}", None)
    assert move.action == "[Offer: 2 Wood -> 1 Gold]"
    assert parse_action("thinking [Accept]", None).action == "[Accept]"
    assert parse_action(r"\boxed{" + "a" * 1000 + "}", None).action is None
    assert parse_action("", None).action is None


@given(st.text(max_size=700))
def test_free_text_whole_answer_fallback(text):
    # last_mention in a free-text game: without a box or a bracketed span the whole answer is
    # the message (trimmed, bounded); the stricter fallbacks keep rejecting it.
    assume("\\boxed" not in text and not re.search(r"\[[^\[\]]+\]", text))
    parsed = parse_action(text, None, fallback="last_mention")
    if not text.strip():
        assert parsed.action is None and parsed.reason == "empty response"
    elif len(text.strip()) > MAX_FREE_MOVE_CHARS:
        assert parsed.action is None and "longer than" in parsed.reason
    else:
        assert parsed.action == text.strip()
    assert parse_action(text, None).action is None
    assert parse_action(text, None, fallback="none").action is None


def test_free_text_whole_answer_prefers_box_and_brackets():
    assert parse_action(r"so \boxed{hello there} ok", None, "last_mention").action == "hello there"
    assert parse_action("I say [Accept] now", None, "last_mention").action == "[Accept]"


@pytest.mark.timeout(20)  # a hang guard, not a speed assertion
@pytest.mark.parametrize(
    "blob",
    [
        "x" * 1_000_000,
        "\\boxed{" * 150_000,
        "{" * 1_000_000,
        "[" * 500_000 + "]" * 500_000,
        "é漢😀" * 300_000,
    ],
)
def test_huge_inputs_are_bounded(blob):
    # Only a bounded tail is scanned: a 1 MB response parses exactly like its last 20 kB.
    for suffix, expected in ((r"\boxed{bet}", "bet"), ("", None), ("[check]", "check")):
        parsed = parse_action(blob + suffix, KUHN)
        assert parsed.action == expected
        assert parsed == parse_action((blob + suffix)[-MAX_SCAN_CHARS:], KUHN)


@pytest.mark.parametrize(
    "response, expected",
    [
        ("So the final action is to check 1 chip.", "check"),
        ("I could bet, but I will CHECK", "check"),
        ("betting is tempting; I bet.", "bet"),  # 'betting' is not the word 'bet'
        ("I [check]... no, bet", "check"),  # a bracketed action still wins over a mention
        (r"\boxed{raise} but bet", None),  # a boxed answer is final, even when invalid
        ("alphabet soup", None),
    ],
)
def test_last_mention_fallback(response, expected):
    assert parse_action(response, KUHN, fallback="last_mention").action == expected
    if expected is not None:
        assert parse_action(response, KUHN).action != expected or "[" in response


@pytest.mark.parametrize(
    "text, named",
    [
        ("I have the K, so bet.", True),
        ("K.", True),
        ("Kings are strong", True),
        ("my king", True),
        ("OK, I check", False),  # the K of OK is no card
        ("kick the ball", False),
        ("a k", False),  # the letter must be a capital
        ("the Kingdom", False),
        ("I have the Q", False),  # another card
    ],
)
def test_a_reasoning_names_a_card_by_its_letter_or_its_name(text, named):
    assert names_any(text, ("K", "king")) is named


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz ,.!?", max_size=60))
def test_lowercase_text_names_a_card_exactly_when_it_holds_the_name(text):
    assert names_any(text, ("K", "king")) is (re.search(r"\bkings?\b", text) is not None)
    assert names_any(f"{text} K {text}", ("K", "king"))
