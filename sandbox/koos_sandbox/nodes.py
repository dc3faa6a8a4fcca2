"""The sandbox's Nodes: one Ready Node describing this machine, and how one is lost.

A lost Node is what the node lifecycle controller makes of a kubelet that stopped posting
status: every condition Unknown (reason NodeStatusUnknown) and the `unreachable` taints.
"""

from __future__ import annotations

import copy
import os
import platform

from koos_sandbox.objects import Obj, now_rfc3339

DEFAULT_NODE = "sandbox-node"
UNREACHABLE = "node.kubernetes.io/unreachable"


def build_node(name: str) -> Obj:
    """A Ready Node describing this machine, as a kubelet registers it."""
    now = now_rfc3339()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    cpu = str(os.cpu_count() or 1)
    capacity = {"cpu": cpu, "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    conditions = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    return {
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch,
            },
        },
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "reason": r,
                    "message": m,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
                for t, s, r, m in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "capacity": capacity,
            "allocatable": dict(capacity),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": arch,
                "operatingSystem": "linux",
                "osImage": "koos sandbox",
                "kernelVersion": platform.release(),
                "kubeletVersion": "v1.32.0",
                "kubeProxyVersion": "v1.32.0",
                "containerRuntimeVersion": "sandbox://0.1.0",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


def node_ready(node: Obj | None) -> bool:
    conditions = ((node or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def with_readiness(node: Obj, ready: bool) -> Obj:
    """A copy of `node` Ready again, or lost (conditions Unknown, unreachable taints)."""
    new = copy.deepcopy(node)
    now = now_rfc3339()
    fresh = {c["type"]: c for c in build_node(node["metadata"]["name"])["status"]["conditions"]}
    for cond in new.setdefault("status", {}).setdefault("conditions", []):
        if ready and cond.get("type") in fresh:
            cond.update(fresh[cond["type"]])
        elif not ready and cond.get("status") != "Unknown":
            cond.update(
                status="Unknown",
                reason="NodeStatusUnknown",
                message="Kubelet stopped posting node status.",
                lastTransitionTime=now,
            )
    spec = new.setdefault("spec", {})
    taints = [t for t in spec.get("taints") or [] if t.get("key") != UNREACHABLE]
    if not ready:
        taints += [
            {"key": UNREACHABLE, "effect": "NoSchedule"},
            {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": now},
        ]
    spec["taints"] = taints
    if not taints:
        del spec["taints"]
    return new
