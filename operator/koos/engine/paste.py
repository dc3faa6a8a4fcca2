"""What may be pasted into a shell script as text: the rule behind `{{ … }}` in `run.script`,
`run.command` and `run.args`.

A value pasted into a script is code. Only values whose every possible form is known to be
inert may go there; everything else reaches the container as an environment variable
(`env: [{name: X, value: "{{ … }}"}]`, then `"$X"` in the script), which the shell never
parses. Pasteable:

- `params.x` when x has an `enum` (the template's author wrote every value), or a `pattern`
  that admits only inert text (`pattern_is_inert`);
- `steps.<name>.phase` (one of a few fixed words) and `execution.name`/`.namespace`
  (Kubernetes names: lowercase letters, digits, '-' and '.').

Never pasteable: step outputs and loop items (text a container or a parameter wrote).

`pattern_is_inert` decides from the pattern's structure, not from sample values: the pattern
must be anchored (`^…$` around the whole of it, no `|` outside a group, no multi-line flag:
JSON-Schema patterns search, so an unanchored one accepts "ok; rm -rf /"), and every
character it can match must be in `INERT` — ASCII letters, digits (and the Unicode letters
and digits of `\\w`/`\\d`), and `_ . , : / = + @ % -`. So `^.*$`, `^[^;]+$`, `^\\S+$` and
`^[a-z ]+$` do not count (any character, a negated class, a space). A pattern the parser
cannot read, or one with back-references or look-around, does not count either.
"""

from __future__ import annotations

import re
import re._constants as sre  # type: ignore[import-not-found,unused-ignore]
import re._parser as sre_parse  # type: ignore[import-not-found,unused-ignore]
import string
from typing import Any

from koos.api.template import Parameter

INERT = frozenset(string.ascii_letters + string.digits + "_.,:/=+@%-")
_SAFE_CATEGORIES = {sre.CATEGORY_DIGIT, sre.CATEGORY_WORD}
_WIDEST_RANGE = 256  # a longer class range is not read character by character: refused


def is_safe_to_paste(parameter: Parameter) -> bool:
    """Whether `{{ params.x }}` may be pasted into a script: every value is known in advance
    (an enum) or inert (an inert pattern)."""
    if parameter.enum is not None:
        return True
    return parameter.pattern is not None and pattern_is_inert(parameter.pattern)


def pattern_is_inert(pattern: str) -> bool:
    """Whether every string `pattern` accepts (searched, as JSON-Schema does) is inert text:
    see the module docstring."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return False
    if parsed.state.flags & sre.SRE_FLAG_MULTILINE:
        return False
    items = list(parsed.data)
    if len(items) < 2 or items[0] != (sre.AT, sre.AT_BEGINNING):
        return False
    if items[-1] not in ((sre.AT, sre.AT_END), (sre.AT, sre.AT_END_STRING)):
        return False
    return _inert(items)


def _inert(items: Any) -> bool:
    for op, arg in items:
        if op in (sre.AT,):
            continue
        if op == sre.LITERAL:
            if chr(arg) not in INERT:
                return False
        elif op == sre.IN:
            if not _inert_class(arg):
                return False
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)):
            if not _inert(arg[2]):
                return False
        elif op == sre.SUBPATTERN:
            add_flags = arg[1]
            if add_flags & sre.SRE_FLAG_MULTILINE or not _inert(arg[3]):
                return False
        elif op == sre.BRANCH:
            if not all(_inert(branch) for branch in arg[1]):
                return False
        elif op == getattr(sre, "ATOMIC_GROUP", None):
            if not _inert(arg):
                return False
        else:
            # ANY, NOT_LITERAL, CATEGORY outside a class, back-references, look-around,
            # conditionals: anything that may match text not written in the pattern.
            return False
    return True


def _inert_class(items: Any) -> bool:
    for op, arg in items:
        if op == sre.LITERAL:
            if chr(arg) not in INERT:
                return False
        elif op == sre.RANGE:
            low, high = arg
            if high - low > _WIDEST_RANGE or any(chr(c) not in INERT for c in range(low, high + 1)):
                return False
        elif op == sre.CATEGORY:
            if arg not in _SAFE_CATEGORIES:
                return False
        else:  # NEGATE and anything else
            return False
    return True
