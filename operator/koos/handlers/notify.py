"""Approval notifications: a JSON POST to a webhook (Slack, DingTalk, Teams incoming hooks
accept its `text`), optionally signed with HMAC-SHA256, retried with backoff in the
background. A failed delivery never blocks or fails a run; it shows as an Event."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from typing import Any

import aiohttp

from koos.api.approval import ApprovalStatus
from koos.k8s.apply import post_object_event
from koos.k8s.client import Kube, KubeError

log = logging.getLogger("koos.notify")
BACKOFFS = (1.0, 5.0, 30.0, 120.0)


def notification(
    namespace: str, name: str, spec: dict[str, Any], status: ApprovalStatus
) -> dict[str, Any]:
    execution = (spec.get("executionRef") or {}).get("name", "")
    approve = f"kubectl annotate approval {name} -n {namespace} koos.io/decision=approve"
    reject = (
        f"kubectl annotate approval {name} -n {namespace} koos.io/decision=reject "
        'koos.io/reason="why"'
    )
    lines = [f"[koos] Approval {namespace}/{name} is {status.phase}: {status.message or ''}"]
    if spec.get("message"):
        lines.append(str(spec["message"]))
    if status.phase == "Pending":
        lines += [f"Approve: {approve}", f"Reject:  {reject}"]
    return {
        "text": "\n".join(lines),
        "approval": name,
        "namespace": namespace,
        "execution": execution,
        "phase": status.phase,
        "message": spec.get("message"),
        "commands": {"approve": approve, "reject": reject},
    }


class Notifier:
    def __init__(self, kube: Kube, backoffs: tuple[float, ...] = BACKOFFS) -> None:
        self.kube = kube
        self.backoffs = backoffs
        self.tasks: set[asyncio.Task[None]] = set()

    def announce(
        self, namespace: str, name: str, body: dict[str, Any], status: ApprovalStatus
    ) -> None:
        spec = body.get("spec") or {}
        hook = ((spec.get("notify") or {}).get("webhook")) or None
        if not hook or not hook.get("url"):
            return
        task = asyncio.create_task(
            self._deliver(namespace, name, hook, notification(namespace, name, spec, status))
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _secret(self, namespace: str, ref: dict[str, Any] | None) -> bytes | None:
        if not ref:
            return None
        secret = await self.kube.get(f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}")
        value = (secret.get("data") or {}).get(ref["key"])
        return base64.b64decode(value) if value else None

    async def _deliver(
        self, namespace: str, name: str, hook: dict[str, Any], payload: dict[str, Any]
    ) -> None:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        error = ""
        for attempt, delay in enumerate((0.0, *self.backoffs)):
            if delay:
                await asyncio.sleep(delay)  # a background retry, never in a handler
            try:
                key = await self._secret(namespace, hook.get("secretRef"))
                if key:
                    digest = hmac.new(key, body, hashlib.sha256).hexdigest()
                    headers["X-Koos-Signature"] = f"sha256={digest}"
                timeout = aiohttp.ClientTimeout(total=10)
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.post(hook["url"], data=body, headers=headers) as response,
                ):
                    if response.status < 300:
                        log.info(
                            "Notified approval=%s/%s phase=%s",
                            namespace,
                            name,
                            payload["phase"],
                        )
                        return
                    error = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError, KubeError, OSError) as exc:
                error = str(exc) or type(exc).__name__
            log.warning(
                "Notification failed approval=%s/%s attempt=%d: %s",
                namespace,
                name,
                attempt + 1,
                error,
            )
        await self._event(namespace, name, f"Could not notify {hook['url']}: {error}")

    async def _event(self, namespace: str, name: str, message: str) -> None:
        await post_object_event(
            self.kube, namespace, "Approval", name, "Warning", "NotificationFailed", message
        )
