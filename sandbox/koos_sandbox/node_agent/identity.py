"""How a container reaches the API server as its Pod's ServiceAccount.

A kubelet mounts a projected token and the cluster CA at
/var/run/secrets/kubernetes.io/serviceaccount and sets `KUBERNETES_SERVICE_HOST`/`PORT`
(the `kubernetes` Service). A local process cannot have that path, so the agent gives it:

- `KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`, `KUBERNETES_SERVICE_PORT_HTTPS`: the
  API server the agent itself talks to (a process on this host reaches it directly);
- `KUBECONFIG`: a kubeconfig in the Pod's own folder (mode 0600, the folder 0700) with that
  server, its CA and a token from the TokenRequest API
  (`POST /api/v1/namespaces/{ns}/serviceaccounts/{sa}/token`, default audience, one hour,
  bound to the Pod, so it stops working when the Pod is deleted).

`automountServiceAccountToken: false` on the Pod (or, when the Pod does not say, on its
ServiceAccount) means no token: the kubeconfig is then empty, so `kubectl` fails as it does in
a Pod without a token (and never falls back to this host's ~/.kube/config). The token is not
refreshed (Pods here are short-lived; it lasts an hour).
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import yaml

from koos_sandbox.node_agent.client import Api, ApiFailure, Credentials
from koos_sandbox.objects import Obj

TOKEN_SECONDS = 3600
log = logging.getLogger("koos_sandbox.node_agent")


async def wants_token(api: Api, pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    ns, sa = pod["metadata"].get("namespace", ""), _account(pod)
    found = await api.get(f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}")
    return found is None or found.get("automountServiceAccountToken") is not False


def _account(pod: Obj) -> str:
    spec = pod.get("spec") or {}
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")


async def request_token(api: Api, pod: Obj) -> str:
    meta = pod["metadata"]
    ns, sa = meta.get("namespace", ""), _account(pod)
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": TOKEN_SECONDS,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }
    answer = await api.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token", body)
    return str(answer["status"]["token"])


def kubeconfig(credentials: Credentials, namespace: str, token: str | None) -> Obj:
    if token is None:
        # Empty: kubectl then tries the in-cluster config and, without a token, fails as in
        # a Pod without one (and never reads this host's ~/.kube/config).
        return {"apiVersion": "v1", "kind": "Config"}
    cluster: Obj = {"server": credentials.server}
    if credentials.ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(credentials.ca_pem).decode()
    if credentials.insecure:
        cluster["insecure-skip-tls-verify"] = True
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": "pod", "user": {"token": token}}],
        "contexts": [
            {
                "name": "pod",
                "context": {"cluster": "cluster", "user": "pod", "namespace": namespace},
            }
        ],
        "current-context": "pod",
        "preferences": {},
    }


def write_kubeconfig(home: Path, config: Obj) -> Path:
    """The kubeconfig in the Pod's folder (0700), readable by its owner only (0600)."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    path = home / "kubeconfig"
    path.touch(0o600)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def prepare(api: Api, credentials: Credentials, pod: Obj, home: Path) -> dict[str, str]:
    """The Pod's folder with its kubeconfig, and the variables that point a process at it."""
    token = None
    try:
        if await wants_token(api, pod):
            token = await request_token(api, pod)
    except ApiFailure as failure:
        log.warning(
            "no ServiceAccount token for pod %s/%s: %s",
            pod["metadata"].get("namespace"),
            pod["metadata"]["name"],
            failure,
        )
    namespace = pod["metadata"].get("namespace", "")
    path = write_kubeconfig(home, kubeconfig(credentials, namespace, token))
    host, port = credentials.host_port
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": str(port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
        "KUBECONFIG": str(path),
    }
