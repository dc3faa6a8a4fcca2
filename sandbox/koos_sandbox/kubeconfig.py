"""A kubeconfig for the sandbox: the admin as current context, and a context per named user."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

CLUSTER = "koos-sandbox"


def build_kubeconfig(
    url: str,
    ca_pem: bytes,
    tokens: Mapping[str, str],
    current: str = "admin",
    namespace: str = "default",
    cluster: str = CLUSTER,
) -> dict[str, Any]:
    """A kubeconfig with a user and a context per entry of `tokens` (the admin's context is
    named after the cluster, the others after their user), `current`'s context selected. The
    real test ground (tests/ground/realplane.py) writes its kubeconfigs with it too."""

    def context_name(user: str) -> str:
        return cluster if user == "admin" else user

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}} for user, token in tokens.items()],
        "contexts": [
            {
                "name": context_name(user),
                "context": {"cluster": cluster, "user": user, "namespace": namespace},
            }
            for user in tokens
        ],
        "current-context": context_name(current),
        "preferences": {},
    }
