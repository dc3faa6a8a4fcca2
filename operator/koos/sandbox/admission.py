"""PLACEHOLDER being replaced by the admission helper."""

from __future__ import annotations

from typing import Any


class WebhookAdmission:
    def __init__(self, store: Any, registry: Any) -> None:
        pass

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def mutate(self, request: Any) -> Any:
        return request.obj

    async def validate(self, request: Any) -> None:
        return None
