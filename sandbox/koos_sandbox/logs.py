"""Container logs a kubelet stand-in captured, served as `pods/log` (with `follow`), with
the time each piece of output arrived (for `timestamps`)."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator
from datetime import UTC, datetime


def now_nano() -> str:
    """The kubelet's log timestamp: RFC 3339 with nanoseconds (here microseconds + 000)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


class PodLogs:
    def __init__(self) -> None:
        self._text: dict[tuple[str, str, str], str] = {}
        self._open: set[tuple[str, str, str]] = set()
        self._stamps: dict[tuple[str, str, str], tuple[list[int], list[str]]] = {}
        self._wakeup = asyncio.Event()

    def start(self, namespace: str, pod: str, container: str) -> None:
        self._text.setdefault((namespace, pod, container), "")
        self._open.add((namespace, pod, container))
        self._wake()

    def append(self, namespace: str, pod: str, container: str, text: str) -> None:
        key = (namespace, pod, container)
        before = self._text.get(key, "")
        offsets, stamps = self._stamps.setdefault(key, ([], []))
        offsets.append(len(before))
        stamps.append(now_nano())
        self._text[key] = before + text
        self._wake()

    def finish(self, namespace: str, pod: str, container: str) -> None:
        self._open.discard((namespace, pod, container))
        self._wake()

    def forget(self, namespace: str, pod: str) -> None:
        for key in [k for k in self._text if k[:2] == (namespace, pod)]:
            self._text.pop(key, None)
            self._stamps.pop(key, None)
            self._open.discard(key)
        self._wake()

    def read(self, namespace: str, pod: str, container: str) -> str | None:
        return self._text.get((namespace, pod, container))

    def stamped(self, namespace: str, pod: str, container: str) -> list[tuple[str, str]]:
        """(arrival time, line) of every line so far (the time of the output it began in)."""
        key = (namespace, pod, container)
        text = self._text.get(key, "")
        offsets, stamps = self._stamps.get(key, ([], []))
        out, start = [], 0
        for line in text.splitlines(keepends=True):
            at = bisect.bisect_right(offsets, start) - 1
            out.append((stamps[at] if at >= 0 else now_nano(), line))
            start += len(line)
        return out

    def has(self, namespace: str, pod: str, container: str) -> bool:
        return (namespace, pod, container) in self._text

    async def follow(self, namespace: str, pod: str, container: str) -> AsyncIterator[str]:
        """The text so far, then each addition, until the container ends."""
        key = (namespace, pod, container)
        sent = 0
        while True:
            wake = self._wakeup
            text = self._text.get(key)
            if text is None:
                return
            if len(text) > sent:
                yield text[sent:]
                sent = len(text)
            if key not in self._open:
                return
            await wake.wait()

    def _wake(self) -> None:
        wake, self._wakeup = self._wakeup, asyncio.Event()
        wake.set()
