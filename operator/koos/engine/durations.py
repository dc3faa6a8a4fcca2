"""Durations as people write them in templates: Go style ("1h30m", "10s", "500ms") plus days.

Invariants:
- a duration is one or more `<number><unit>` parts, units in decreasing order, each at most
  once (`1h30m`, not `30m1h` or `1h1h`); a number may have a fraction (`1.5h`);
- a bare number (`30`, even `0`) is refused: seconds or minutes must never be guessed;
- `parse_duration` never returns a negative duration nor one longer than `MAX_DURATION`
  (a year: no sleep, timeout or backoff of a runbook is longer, and adding a longer one to a
  date could overflow it); `format_duration` shows one with a leading '-' (for messages
  only), and `parse_duration(format_duration(d)) == d` for any `d` from 0 to `MAX_DURATION`
  in whole milliseconds;
- `backoff_delay` never overflows, whatever the factor and the attempt.
"""

from __future__ import annotations

import datetime
import math
import re

# Longest unit first, so "ms" is tried before "m" and "s".
_UNITS: dict[str, datetime.timedelta] = {
    "d": datetime.timedelta(days=1),
    "h": datetime.timedelta(hours=1),
    "m": datetime.timedelta(minutes=1),
    "s": datetime.timedelta(seconds=1),
    "ms": datetime.timedelta(milliseconds=1),
}
_ORDER = list(_UNITS)
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|d|h|m|s)")
ACCEPTED_FORM = "a number and a unit, e.g. 30s, 5m, 1h30m, 500ms or 2d (units: d, h, m, s, ms)"
MAX_DURATION = datetime.timedelta(days=365)
# A text longer than this is no duration anyone writes; refusing it bounds the parsing.
_MAX_TEXT = 64


def parse_duration(text: str) -> datetime.timedelta:
    """The duration `text` stands for; ValueError naming the accepted form otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}: use {ACCEPTED_FORM}")
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"empty duration: use {ACCEPTED_FORM}")
    if len(stripped) > _MAX_TEXT:
        raise ValueError(f"invalid duration {stripped[:_MAX_TEXT]!r}…: use {ACCEPTED_FORM}")
    total = datetime.timedelta()
    position = 0
    last_unit = -1
    while position < len(stripped):
        match = _PART.match(stripped, position)
        if match is None:
            raise ValueError(f"invalid duration {text!r}: use {ACCEPTED_FORM}")
        number, unit = match.groups()
        rank = _ORDER.index(unit)
        if rank <= last_unit:
            raise ValueError(
                f"invalid duration {text!r}: give each unit once, largest first (e.g. 1h30m)"
            )
        last_unit = rank
        try:
            total += _UNITS[unit] * float(number)
        except OverflowError:
            total = datetime.timedelta.max
        if total > MAX_DURATION:
            raise ValueError(
                f"duration {text!r} is longer than the limit of {format_duration(MAX_DURATION)}"
            )
        position = match.end()
    return total


def backoff_delay(
    backoff: datetime.timedelta, factor: float, attempt: int, longest: datetime.timedelta
) -> datetime.timedelta:
    """The wait after failed attempt `attempt` (1 for the first): `backoff * factor **
    (attempt - 1)`, at most `longest`; computed on logarithms, so it cannot overflow."""
    if backoff <= datetime.timedelta() or attempt <= 1 or factor <= 1:
        return min(backoff, longest)
    if longest <= backoff:
        return longest
    growth = (attempt - 1) * math.log(factor)
    if growth >= math.log(longest / backoff):
        return longest
    return min(backoff * math.exp(growth), longest)


def format_duration(duration: datetime.timedelta) -> str:
    """The shortest text `parse_duration` reads back as `duration` (to the millisecond)."""
    if duration < datetime.timedelta():
        return "-" + format_duration(-duration)
    milliseconds = duration // datetime.timedelta(milliseconds=1)
    if milliseconds == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNITS.items():
        count, milliseconds = divmod(milliseconds, size // datetime.timedelta(milliseconds=1))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
