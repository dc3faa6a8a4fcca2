"""The request log: one record per API request, for tests that count requests or derive RBAC.

A record names the caller, the Kubernetes verb (get, list, watch, create, update, patch,
delete, deletecollection), the group/version/resource/subresource, namespace, name, the
request content type and the response code, like an audit log at Metadata level.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class Record:
    user: str
    groups: tuple[str, ...]
    verb: str
    group: str
    version: str
    resource: str
    subresource: str
    namespace: str
    name: str
    content_type: str
    path: str
    query: str = ""
    code: int = 0
    time: float = field(default_factory=time.time)

    @property
    def is_write(self) -> bool:
        return self.verb in ("create", "update", "patch", "delete", "deletecollection")


class RequestLog:
    def __init__(self, limit: int = 200_000) -> None:
        self.records: list[Record] = []
        self.limit = limit

    def add(self, record: Record) -> None:
        self.records.append(record)
        if len(self.records) > self.limit:
            del self.records[: len(self.records) - self.limit]

    def clear(self) -> None:
        self.records.clear()

    def mark(self) -> int:
        """A position to count from: `since(mark)` is everything after it."""
        return len(self.records)

    def since(self, mark: int = 0) -> list[Record]:
        return self.records[mark:]

    def select(
        self, where: Callable[[Record], bool] | None = None, *, since: int = 0
    ) -> list[Record]:
        return [r for r in self.since(since) if where is None or where(r)]


def summarize(records: Iterable[Record]) -> dict[tuple[str, str, str], int]:
    """(verb, group/resource, subresource) → count."""
    out: dict[tuple[str, str, str], int] = {}
    for r in records:
        key = (r.verb, f"{r.resource}.{r.group}" if r.group else r.resource, r.subresource)
        out[key] = out.get(key, 0) + 1
    return out
