"""Container logs the kubelet stand-in captured, served as `pods/log` (with `follow`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class PodLogs:
    def __init__(self) -> None:
        self._text: dict[tuple[str, str, str], str] = {}
        self._open: set[tuple[str, str, str]] = set()
        self._wakeup = asyncio.Event()

    def start(self, namespace: str, pod: str, container: str) -> None:
        self._text.setdefault((namespace, pod, container), "")
        self._open.add((namespace, pod, container))
        self._wake()

    def append(self, namespace: str, pod: str, container: str, text: str) -> None:
        key = (namespace, pod, container)
        self._text[key] = self._text.get(key, "") + text
        self._wake()

    def finish(self, namespace: str, pod: str, container: str) -> None:
        self._open.discard((namespace, pod, container))
        self._wake()

    def forget(self, namespace: str, pod: str) -> None:
        for key in [k for k in self._text if k[:2] == (namespace, pod)]:
            self._text.pop(key, None)
            self._open.discard(key)
        self._wake()

    def read(self, namespace: str, pod: str, container: str) -> str | None:
        return self._text.get((namespace, pod, container))

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
