"""Regular expressions a Template gives (parameter `pattern`s), evaluated in linear time.

A pattern runs on every Execution's parameters, in the operator and in the admission webhook,
so a pattern that backtracks (`^(a+)+$` on thirty `a`s and a `b`) would stall them for
everyone (issue 10, item 3). Every pattern koos evaluates is compiled with RE2, whose
matching takes time linear in the text, whatever the pattern:

- a pattern RE2 cannot compile — it uses backreferences (`\\1`), lookaround (`(?=…)`,
  `(?<!…)`), or repeats too large to build — is refused where the Template is applied,
  with a message saying so (`pattern_problem`);
- RE2's `$` (no multi-line flag) ends the text, as ECMA-262's does in JSON-Schema: it does not
  match before a final newline the way Python's `$` does, so "web\\n" never passes `^[a-z]+$`;
- compiled patterns are cached by text.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

__all__ = ["PatternError", "pattern_problem", "search"]

# RE2 refuses a pattern whose program would need more memory than this (bytes).
_MAX_MEMORY = 8 << 20


class PatternError(ValueError):
    """A pattern RE2 does not accept; the message says why and what to do."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is the user's, reported as a Problem
    options.max_mem = _MAX_MEMORY
    return options


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _options())
    except re2.error as error:
        detail = error.args[0] if error.args else error
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise PatternError(
            f"not a valid regular expression for RE2, the linear-time engine koos uses: "
            f"{detail} (backreferences and lookahead/lookbehind are not supported)"
        ) from None


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is refused, or None when RE2 compiles it."""
    try:
        _compiled(pattern)
    except PatternError as error:
        return str(error)
    return None


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches somewhere in `text` (JSON-Schema's `pattern` searches)."""
    return _compiled(pattern).search(text) is not None
