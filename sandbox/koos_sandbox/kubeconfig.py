"""A kubeconfig for the sandbox: the admin as current context, and a context per named user."""

from __future__ import annotations

import base64
from typing import Any

CLUSTER = "koos-sandbox"


def build_kubeconfig(
    url: str,
    ca_pem: bytes,
    admin_token: str,
    user_tokens: dict[str, str],
    namespace: str = "default",
) -> dict[str, Any]:
    users = [{"name": "admin", "user": {"token": admin_token}}]
    contexts = [
        {"name": CLUSTER, "context": {"cluster": CLUSTER, "user": "admin", "namespace": namespace}}
    ]
    for name, token in user_tokens.items():
        users.append({"name": name, "user": {"token": token}})
        contexts.append(
            {"name": name, "context": {"cluster": CLUSTER, "user": name, "namespace": namespace}}
        )
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER,
                "cluster": {
                    "server": url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": users,
        "contexts": contexts,
        "current-context": CLUSTER,
        "preferences": {},
    }
