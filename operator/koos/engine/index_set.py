"""Sets of item indexes as compact ranges: "0-4999,5002" (as a Kubernetes Indexed Job's
`completedIndexes`).

A loop step's status keeps which items succeeded and which failed in this form, so its size
grows with the number of runs of consecutive indexes, not with the number of items: a loop
of 10,000 items that all succeed is "0-9999"; the worst case, every other item failed, is
5,000 numbers per set (about 24 KiB each). Pure functions; `parse` refuses anything `format`
would not write.
"""

from __future__ import annotations

from collections.abc import Iterable


def format_ranges(indexes: Iterable[int]) -> str | None:
    """The ranges of `indexes` ("0-2,5,7-9"), None for an empty set."""
    ordered = sorted(set(indexes))
    if not ordered:
        return None
    parts: list[str] = []
    start = previous = ordered[0]
    for index in ordered[1:]:
        if index != previous + 1:
            parts.append(_part(start, previous))
            start = index
        previous = index
    parts.append(_part(start, previous))
    return ",".join(parts)


def _part(start: int, end: int) -> str:
    return str(start) if start == end else f"{start}-{end}"


def parse_ranges(text: str | None, limit: int) -> set[int]:
    """The indexes of `text` as `format_ranges` writes it, each below `limit` (a status
    edited by hand cannot make a huge set); ValueError for anything else."""
    found: set[int] = set()
    if not text:
        return found
    for part in text.split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"not an index range: {part!r}")
        start, end = int(first), int(last) if last else int(first)
        if end < start or end >= limit:
            raise ValueError(f"not an index range: {part!r}")
        found.update(range(start, end + 1))
    return found
