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
- compiled patterns, and RE2's refusals, are cached by text.
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
def _compiled(pattern: str) -> tuple[Any, str | None]:
    """(the compiled pattern, None), or (None, why RE2 refuses it).

    The refusal is a return value, not an exception, so it is cached as well: lru_cache does
    not keep exceptions, and a refused pattern can cost RE2 tens of milliseconds to give up
    on (`\\pL{1,1000}z`), which a Template repeating it must not pay again and again."""
    try:
        return re2.compile(pattern, _options()), None
    except re2.error as error:
        detail = error.args[0] if error.args else error
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return None, (
            f"not a valid regular expression for RE2, the linear-time engine koos uses: "
            f"{detail} (backreferences and lookahead/lookbehind are not supported)"
        )


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is refused, or None when RE2 compiles it."""
    return _compiled(pattern)[1]


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches somewhere in `text` (JSON-Schema's `pattern` searches);
    PatternError when RE2 refuses the pattern."""
    compiled, problem = _compiled(pattern)
    if compiled is None:
        raise PatternError(problem)
    return compiled.search(text) is not None
