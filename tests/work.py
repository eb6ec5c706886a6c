"""Bounded-work checks instead of wall-clock limits: count the Python and builtin calls a function makes (the same
on every machine and under any load), so "linear in its input" is a number a test can bound."""

from __future__ import annotations

import sys


def count_calls(fn, *args, **kwargs) -> int:
    """How many Python functions and builtins (regex matches, str methods…) `fn(*args, **kwargs)` calls. Work inside
    one builtin (a regex's own backtracking) is not seen: pytest-timeout still bounds that."""
    calls = 0

    def profile(frame, event, arg):
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        fn(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    return calls
