"""`Problem`: one thing wrong with a spec, where it is and what to fix. Template validation,
parameter resolution and Schedule validation all report them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where (a field path as the user wrote it) and what to fix."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"
