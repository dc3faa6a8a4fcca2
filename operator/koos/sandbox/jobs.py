"""PLACEHOLDER being replaced by the jobs helper."""

from __future__ import annotations

import asyncio
from typing import Any

DEFAULT_NODE = "sandbox-node"


def build_node(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {}}


class JobController:
    def __init__(self, state: Any, mode: str = "scripted") -> None:
        self.state = state

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        pass
