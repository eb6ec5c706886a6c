"""Property tests: any text parses without exception in bounded (linear) work, and parse → emit → parse is stable."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.fountain import emit_fountain, parse_fountain, speech_text
from work import count_calls

# Fountain-significant fragments, so generated text hits the interesting paths (cues, carets, notes, boneyard…)
FRAGMENTS = [
    "INT. ", "EXT ", "I/E ", ".", "..", "CUT TO:", "> ", " <", "<", ">", "~", "!", "@", "^", " ^", "#", "##", "=",
    "===", "[[", "]]", "/*", "*/", "*", "**", "_", "\\", "(", ")", "(V.O.)", "(beat)", "Title:", "Author: X",
    "JOHN", "MARY ", "R2D2", "^ ^", "@@", "(CONT’D)", "{{X: 1}}", "hello", "’", "'", "#1A#", "\n", "\n", "\n\n", "  \n", " ", "   ", "\t", "\r\n", "\ufeff",
]
script_like = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=80).map("".join)
any_text = st.one_of(script_like, st.text(max_size=300), st.binary(max_size=300).map(
    lambda b: b.decode("utf-8", errors="replace")))

def work_bound(text: str) -> int:
    """Calls the parser may make for `text`: linear in its length (measured ≈9 per character at most, on inputs
    built to make naive parsers loop), so a quadratic pass over the text cannot hide."""
    return 200 + 20 * len(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_any_text_parses_in_linear_work(text):
    assert count_calls(parse_fountain, text) <= work_bound(text)
    sp = parse_fountain(text)
    for _, d in sp.dialogues():
        assert d.character == d.character.upper().strip()
        for p in d.parts:
            speech_text(p.text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_parse_emit_parse_round_trip(text):
    first = parse_fountain(text)
    again = parse_fountain(emit_fountain(first))
    assert again.structure() == first.structure()


def test_pathological_inputs_are_linear():
    """Inputs that make naive regex parsers backtrack or loop: many openers, one huge paragraph, deep nesting."""
    for text in ["[[" * 20000, "/*" * 20000 + "*/", "(" * 20000, "A\n" * 20000, "*" * 40000 + "x",
                 "JOHN\n" + "(\n" * 10000, "[[" * 5000 + "a" * 100000 + "\n\n]]", "INT. " * 5000,
                 "Title: x\n" + "   y\n" * 10000]:
        assert count_calls(parse_fountain, text) <= work_bound(text), text[:20]
