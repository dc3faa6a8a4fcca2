"""Small pure helpers on Kubernetes objects, shared by the API server and the node agent.

Nothing here holds state or touches a store: the node agent (node_agent/) uses these and
reaches the cluster only through the Kubernetes API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, status: str, reason: str = "", message: str = "") -> Obj:
    found: Obj = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": now_rfc3339(),
    }
    if reason:
        found["reason"] = reason
    if message:
        found["message"] = message
    return found


def merge_conditions(old: list[Obj], new: list[Obj]) -> list[Obj]:
    """`new` in order, then old ones of other types; a transition time moves only when the
    status does."""
    by_type = {c.get("type"): c for c in old}
    out = []
    for item in new:
        before = by_type.pop(item["type"], None)
        if before is not None and before.get("status") == item["status"]:
            item = {**item, "lastTransitionTime": before.get("lastTransitionTime")}
        out.append(item)
    return out + list(by_type.values())
