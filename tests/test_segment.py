"""Tests for pipeline.translation.segment: lossless splitting, protected tokens, sentence splitting, join."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.translation.segment import (
    PROTECTED_PATTERNS,
    PROTECTED_RE,
    Segment,
    join,
    join_must_survive,
    segment,
    sentences,
    split_must_survive,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A hang guard for everything that runs the regexes over adversarial or random input: a backtracking
# regression must fail the test, not hang CI (needs pytest-timeout, in the dev extra). Not a speed
# assertion: these take well under a second each.
HANG_GUARD = pytest.mark.timeout(60)

TRICKY = [
    "",
    " ",
    "   \n\t  \r\n ",
    "<image>\nWhat is in the picture?",
    "What is in the picture?\n<image>",
    "<image 1> Which option best describes the graph? (A) linear (B) quadratic (C) none",
    "<image 1>\nWhich option is correct?\n(A) cat\n(B) dog\nA. yes\nB) no",
    "What colour is the shape in <image 1>? And in <image 2>?",
    "- first item\n- second item\n* star item\n+ plus item\n  1. nested one\n  2) nested two",
    "# Title\n## Subtitle\nSome text under it.\n> A quoted line.\n> > Nested quote.",
    "Here is code:\n```python\ndef f(x):\n    return x. Not prose.\n```\nThat was the code. Nice!",
    "Unclosed fence ```python\nprint('hi')",
    "Call `foo(bar)` to do it, or ``a `b` c`` instead.",
    "The area is $\\pi r^2$ and $$E = mc^2$$ holds. Also \\(a+b\\) and \\[x^2\\].",
    "\\begin{align} a &= b \\\\[2pt] c &= d \\end{align} Then we solve \\frac{1}{2} x.",
    "It costs $5 and $10, not $x$ dollars.",
    "See https://example.com/path?q=1&r=2. Or visit www.example.org, then http://a.b/c_(d).",
    "Mail me at jane.doe+vl@example.co.uk. Thanks.",
    "Too    many   spaces   here.",
    "Tabs\tbetween\twords.\tAnd a sentence.",
    "Windows line\r\nendings\r\n",
    "Trailing newline.\n",
    "?!...",
    "😀🎉 👍",
    "Great job! 😀",
    "3.14",
    "1,000 people, 42% of them, paid 3.50 each.",
    "e.g. this is fine, i.e. not split. Mr. Smith met Dr. Jones vs. Prof. X at 5 p.m. today.",
    "See Fig. 3 and No. 7 for details. No. It is red.",
    "The value is 3.14. Pi is irrational.",
    "我很好。你呢？今天天气很好！",
    "He said \"Stop!\" and left. \"Fine.\" She nodded. (Really?) Yes.",
    "Wait... what? Yes… ok.",
    "<|im_start|>user<br/>Hello <b>bold</b> world.<|im_end|>",
    "\u00a0Non-breaking\u00a0space\u3000and ideographic space.\u2028Next line.",
    "---\n***\n| a | b |\n|---|---|",
]

# Pieces of text that must never end up inside a translatable segment.
TOKENS = [
    "<image>",
    "<image 3>",
    "<image_2>",
    "https://example.com/a/b?c=1",
    "www.example.org",
    "```\ncode here\n```",
    "```python\nprint(1)\n```",
    "`inline code`",
    "$x^2$",
    "$$\\int_0^1 x\\,dx$$",
    "\\(a+b\\)",
    "\\[y = mx + b\\]",
    "\\begin{equation}z\\end{equation}",
    "jane@example.com",
]

PROSE = [
    "Hello there.",
    "How are you?",
    "What is in the picture?",
    "e.g. this",
    "Mr. Smith",
    "3.14 is pi.",
    "It costs $5.",
    "Wow!",
    "No.",
    "(A) cat",
    "我很好。",
    "Great job",
    "don't",
    "...",
    "42%",
    "😀",
    "x",
]

# Every separator ends in whitespace, so each block starts at a word start. (Glued text can change
# what a token is: "$x$2" is not math, "awww.com" is not a URL; st.text() blocks cover gluing.)
SEPARATORS = [" ", "  ", "\n", "\n\n", "\t", "\r\n", ". ", "? ", "\n- ", "\n1. ", "\n# ", "\n(B) ", "\n> "]

blocks = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(TOKENS), st.sampled_from(PROSE), st.text(max_size=4)),
        st.sampled_from(SEPARATORS),
    ),
    max_size=12,
).map(lambda pairs: "".join(a + b for a, b in pairs))

# Patterns whose matches don't depend on the characters around them, so none may match inside a
# translatable segment. (Line markers need a line start; e-mail, www. and $..$ look at neighbours.)
_CONTEXT_FREE = [
    p
    for name, p in PROTECTED_PATTERNS.items()
    if name not in {"line_marker", "tilde_fence", "email", "url", "math_inline"}
] + [
    re.compile(r"(?<![\w+@-])(?:https?|ftp)://[^\s<>\"'`.,;:!?)\]}*]"),  # a URL with a scheme
    re.compile(r"\\\((?:[^\\]|\\[^(])*?\\\)"),  # \( .. \)
]


def check_invariants(text: str) -> list[Segment]:
    segs = segment(text)
    assert "".join(s.text for s in segs) == text
    for s in segs:
        assert isinstance(s, Segment)
        assert s.text, "empty segment"
        if s.translate:
            assert s.text == s.text.strip(), f"whitespace-padded: {s.text!r}"
            assert any(c.isalpha() for c in s.text), f"letter-free: {s.text!r}"
            assert "\n" not in s.text and "\t" not in s.text and "  " not in s.text
            for p in _CONTEXT_FREE:
                assert p.search(s.text) is None, f"{p.pattern!r} inside {s.text!r}"
    return segs


# ---------------------------------------------------------------- round trip and invariants


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip_and_invariants(text):
    check_invariants(text)


@HANG_GUARD
@SETTINGS
@given(st.text())
def test_round_trip_arbitrary_text(text):
    check_invariants(text)


@HANG_GUARD
@SETTINGS
@given(blocks)
def test_round_trip_building_blocks(text):
    segs = check_invariants(text)
    for s in segs:
        if s.translate:
            for tok in TOKENS:
                assert tok not in s.text


@pytest.mark.parametrize("tok", TOKENS)
def test_tokens_protected_in_context(tok):
    text = f"Look at {tok} closely. Then answer {tok}? Done."
    segs = check_invariants(text)
    assert sum(1 for s in segs if s.text == tok and not s.translate) == 2
    assert sentences(text) == ["Look at", "closely.", "Then answer", "Done."]


def test_empty_and_blank():
    assert segment("") == []
    assert segment("  \n ") == [Segment("  \n ", False)]
    assert sentences("?!... 😀 42% 3.14 1,000") == []


# ---------------------------------------------------------------- the documented examples


def test_inline_token_cuts_sentence():
    assert segment("What colour is the shape in <image 1>?") == [
        Segment("What colour is the shape in", True),
        Segment(" ", False),
        Segment("<image 1>", False),
        Segment("?", False),
    ]


def test_llava_prompt():
    assert segment("<image>\nWhat is in the picture?") == [
        Segment("<image>", False),
        Segment("\n", False),
        Segment("What is in the picture?", True),
    ]


def test_mmmu_options_on_lines():
    text = "<image 1> Which option is correct?\n(A) a red cat\n(B) a blue dog\nC. none"
    segs = check_invariants(text)
    assert sentences(text) == ["Which option is correct?", "a red cat", "a blue dog", "none"]
    kept = [s.text for s in segs if not s.translate]
    assert "(A) " in kept and "(B) " in kept and "C. " in kept and "<image 1>" in kept


def test_markdown_markers():
    text = "# Title\n- item one\n  2. item two\n3) three\n> quoted\n## Sub heading"
    segs = check_invariants(text)
    assert sentences(text) == ["Title", "item one", "item two", "three", "quoted", "Sub heading"]
    kept = [s.text for s in segs if not s.translate]
    for marker in ["# ", "- ", "  2. ", "3) ", "> ", "## "]:
        assert marker in kept


def test_markers_only_at_line_start():
    # a dash or (A) mid-line is prose; "-5" and "#1" are not markers
    assert sentences("Pick one - or (A) the other") == ["Pick one - or (A) the other"]
    assert sentences("-5 degrees today") == ["-5 degrees today"]
    assert sentences("#1 seller") == ["#1 seller"]


def test_code_fence_with_prose():
    text = "Run this:\n```bash\necho hi. Bye.\n```\nIt prints hi."
    assert sentences(text) == ["Run this:", "It prints hi."]
    assert any(s.text == "```bash\necho hi. Bye.\n```" and not s.translate for s in segment(text))


def test_latex_and_dollars():
    assert sentences("The area is $\\pi r^2$ here.") == ["The area is", "here."]
    assert sentences("It costs $5 and $10 today.") == ["It costs $5 and $10 today."]
    assert sentences("Solve $$x^2 = 4$$ now.") == ["Solve", "now."]
    assert sentences("Use \\(a\\) or \\[b\\] please.") == ["Use", "or", "please."]


def test_url_keeps_sentence_punctuation_out():
    segs = segment("Visit https://example.com/a.")
    assert segs == [
        Segment("Visit", True),
        Segment(" ", False),
        Segment("https://example.com/a", False),
        Segment(".", False),
    ]


def test_whitespace_runs_are_kept():
    assert segment("a  b\tc\r\nd") == [
        Segment("a", True),
        Segment("  ", False),
        Segment("b", True),
        Segment("\t", False),
        Segment("c", True),
        Segment("\r\n", False),
        Segment("d", True),
    ]


def test_letter_free_pieces_kept():
    for text in ["3.14", "1,000", "42%", "?!", "😀", "→ ★ ©", "---"]:
        assert segment(text) == [Segment(text, False)]


# ---------------------------------------------------------------- sentence splitting


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello there. How are you?", ["Hello there.", "How are you?"]),
        ("e.g. this", ["e.g. this"]),
        ("3.14 is pi.", ["3.14 is pi."]),
        ("The value is 3.14. Pi is irrational.", ["The value is 3.14.", "Pi is irrational."]),
        ("Mr. Smith and Mrs. Brown met Dr. Jones.", ["Mr. Smith and Mrs. Brown met Dr. Jones."]),
        ("Apples vs. Oranges etc. are fruit.", ["Apples vs. Oranges etc. are fruit."]),
        ("See Fig. 3 and No. 7 here.", ["See Fig. 3 and No. 7 here."]),
        ("Is it blue? No. It is red.", ["Is it blue?", "No.", "It is red."]),
        ("He lives in the U.S. now.", ["He lives in the U.S. now."]),
        ("Wow! Great. Really?", ["Wow!", "Great.", "Really?"]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ('"Is it?" She asked.', ['"Is it?"', "She asked."]),
        ("(See above.) Next one.", ["(See above.)", "Next one."]),
        ("Wait… What?", ["Wait…", "What?"]),
        ("Wait... what?", ["Wait... what?"]),
        ("我很好。你呢？", ["我很好。", "你呢？"]),
        ("Hi.There", ["Hi.There"]),
    ],
)
def test_sentence_splitting(text, expected):
    assert sentences(text) == expected
    check_invariants(text)


# ---------------------------------------------------------------- join


@HANG_GUARD
@SETTINGS
@given(st.one_of(st.text(), blocks))
def test_join_identity(text):
    segs = segment(text)
    assert join(segs, [s.text for s in segs if s.translate], "fra_Latn") == text


@HANG_GUARD
@SETTINGS
@given(blocks)
def test_join_uppercase_keeps_protected(text):
    segs = segment(text)
    out = join(segs, [s.text.upper() for s in segs if s.translate], "deu_Latn")
    assert out == "".join(s.text.upper() if s.translate else s.text for s in segs)


def test_join_uppercase_example():
    text = "<image 1> What is this? See https://example.com/x and $x^2$.\n- an item"
    segs = segment(text)
    out = join(segs, [s.text.upper() for s in segs if s.translate], "spa_Latn")
    assert out == "<image 1> WHAT IS THIS? SEE https://example.com/x AND $x^2$.\n- AN ITEM"


def test_join_cjk_drops_inter_sentence_spaces_keeps_newlines():
    text = "Hello there. How are you?\nFine. Thanks!"
    segs = segment(text)
    tr = ["你好。", "你好吗？", "很好。", "谢谢！"]
    assert join(segs, tr, "zho_Hans") == "你好。你好吗？\n很好。谢谢！"
    assert join(segs, ["こんにちは。", "お元気ですか？", "元気です。", "ありがとう！"], "jpn_Jpan") == (
        "こんにちは。お元気ですか？\n元気です。ありがとう！"
    )
    assert join(segs, ["Bonjour.", "Ça va ?", "Bien.", "Merci !"], "fra_Latn") == "Bonjour. Ça va ?\nBien. Merci !"


def test_join_cjk_keeps_a_space_that_keeps_numbers_apart():
    # dropping the space between "...7." and "5..." would turn two numbers into "7.5"
    text = "It is 7. 5 cats are here. Ok."
    segs = segment(text)
    assert join(segs, ["它是 7.", "5 只猫在这里。", "好。"], "zho_Hans") == "它是 7. 5 只猫在这里。好。"
    assert join(segs, ["它是7。", "5只猫在这里。", "好。"], "zho_Hans") == "它是7。5只猫在这里。好。"


def test_join_cjk_keeps_space_next_to_protected():
    text = "Look at <image 1>. What is it?"
    segs = segment(text)
    # " " after "<image 1>." sits between a kept "." and a sentence: kept
    assert join(segs, ["看", "这是什么？"], "zho_Hans") == "看 <image 1>. 这是什么？"


def test_join_wrong_count():
    segs = segment("One. Two.")
    with pytest.raises(ValueError):
        join(segs, ["Un."], "fra_Latn")
    with pytest.raises(ValueError):
        join(segs, ["Un.", "Deux.", "Trois."], "fra_Latn")
    with pytest.raises(ValueError):
        join(segment("<image>"), ["x"], "fra_Latn")
    assert join(segment("<image>"), [], "fra_Latn") == "<image>"


# ---------------------------------------------------------------- patterns and speed


# name -> (text, the token found in it, a near miss that the pattern must NOT match)
PATTERN_CASES = {
    "code_fence": ("Run:\n```py\nx = 1\n```\nok", "```py\nx = 1\n```", "two ``ticks`` only"),
    "tilde_fence": ("Run:\n~~~\nx = 1\n~~~\nok", "~~~\nx = 1\n~~~", "wow~~~ nice~~~"),
    "latex_env": ("So \\begin{align}a &= b\\end{align} holds", "\\begin{align}a &= b\\end{align}",
                  "\\begin{align} a \\end{equation}"),
    "math_display": ("Then $$E = mc^2$$ holds", "$$E = mc^2$$", "it costs $$ now"),
    "math_inline": ("The area is $\\pi r^2$ here", "$\\pi r^2$", "It costs $5 and $10 today."),
    "inline_code": ("Call `f(x)` now", "`f(x)`", "a `tick that\nspans lines`"),
    "url": ("See https://example.com/a?b=1.", "https://example.com/a?b=1", "awww.example.org and http:/x"),
    "email": ("Mail jane.doe+x@example.co.uk now", "jane.doe+x@example.co.uk", "jane@localhost"),
    "tag": ("Look at <image 2> here", "<image 2>", "if a < b > c then <3"),
    "latex_command": ("Use \\frac{1}{2} here", "\\frac{1}{2}", "C:\\ 5 and \\123"),
    "line_marker": ("Intro\n  (B) an option", "  (B) ", "a - b, -5 degrees, #1 seller"),
}


def test_every_protected_pattern_matches_its_token_and_not_a_near_miss():
    assert set(PATTERN_CASES) == set(PROTECTED_PATTERNS), "a new pattern needs a case here"
    for name, (text, token, near_miss) in PATTERN_CASES.items():
        pattern = PROTECTED_PATTERNS[name]
        found = pattern.search(text)
        assert found is not None and found.group() == token, name
        assert pattern.search(near_miss) is None, f"{name} matched {near_miss!r}"
        # the combined scan finds the same token in context, and segment keeps it verbatim
        assert token in [m.group() for m in PROTECTED_RE.finditer(text)], name
        assert Segment(token, False) in segment(text), name


@pytest.mark.parametrize(
    "text",
    [
        " " * 50_000,
        "a" * 50_000,
        "\\( " * 20_000,
        "\\[ " * 20_000,
        "\\begin{x} " * 5_000,
        "$ $a " * 10_000,
        "``x " * 10_000,
        ". " * 20_000,
        "a." * 25_000,
        "<a" * 25_000,
        "Hello there. See <image 1> at https://x.org/a. e.g. $x$ is 3.14.\n- item\n" * 600,
        # long runs of punctuation, nested brackets, numbers, amounts and emoji
        "!" * 50_000,
        "?!." * 20_000,
        "…" * 30_000,
        "(" * 20_000 + ")" * 20_000,
        "{" * 30_000,
        "\\frac{" * 5_000,
        "1," * 25_000,
        "1." * 25_000 + "a",
        "1\u00a0" * 25_000 + "x",
        "$1 " * 10_000,
        "$" * 50_000 + "1",
        "1 %" * 15_000,
        "👍🏽\u200d" * 10_000,
        "The price rose from $4.50 to $5.25, i.e. 16.7%. 😀 " * 1_000,
    ],
    ids=lambda t: f"{t[:10]!r}x{len(t)}",
)
@HANG_GUARD
def test_pathological_inputs_round_trip(text):
    # These inputs once made naive regexes backtrack; they must still segment and round-trip.
    segs = segment(text)
    assert "".join(s.text for s in segs) == text
    pieces = split_must_survive(text)
    assert "".join(p.text for p in pieces) == text
    assert join_must_survive(pieces, [p.text for p in pieces if p.translate]) == text.strip()
