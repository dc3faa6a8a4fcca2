"""What the API server serves to schedulers and kubelets: `pods/binding`, the TokenRequest
API (`serviceaccounts/token`), and `pods/log` by dialing the kubelet of the Pod's Node.

- Binding: sets `spec.nodeName` of an unbound Pod and condition PodScheduled True, as
  kube-apiserver's binding REST does; a Pod already bound is a 409, one being deleted too.
- TokenRequest: a random token for the ServiceAccount, valid `expirationSeconds` (default
  3600, at least 600) and, when `boundObjectRef` names a Pod, only while that Pod (and the
  ServiceAccount) exists. It authenticates as `system:serviceaccount:<ns>:<sa>` in groups
  `system:serviceaccounts` and `system:serviceaccounts:<ns>`, with the pod name/uid extras
  kube-apiserver adds.
- pods/log: a container the sandbox's scripted kubelet ran is read from its memory; any other
  is asked of the kubelet at the Node's InternalIP and `daemonEndpoints.kubeletEndpoint.Port`
  (`GET /containerLogs/{ns}/{pod}/{container}`, HTTPS, as kube-apiserver does without
  `--kubelet-certificate-authority`: the kubelet's serving certificate is not verified).
"""

from __future__ import annotations

import copy
import ssl
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from koos_sandbox import errors
from koos_sandbox.auth import UserInfo, service_account_user
from koos_sandbox.errors import ApiError
from koos_sandbox.objects import Obj, condition, merge_conditions
from koos_sandbox.state import State

MIN_EXPIRATION, DEFAULT_EXPIRATION = 600, 3600
AUDIENCE = "https://kubernetes.default.svc.cluster.local"


def _rt(state: State, plural: str) -> Any:
    rt = state.registry.find("", "v1", plural)
    assert rt is not None
    return rt


def bind(state: State, namespace: str, name: str, body: Obj) -> Obj:
    target = (body or {}).get("target") or {}
    node = str(target.get("name") or "")
    if not node:
        raise errors.invalid(
            "Binding", name, "", [("target.name", "Required value: name is required")]
        )
    pod_rt = _rt(state, "pods")
    pod = state.store.get(pod_rt, namespace, name)
    if "deletionTimestamp" in pod["metadata"]:
        raise errors.conflict(
            "pods", name, "", f"pod {name} is being deleted, cannot be assigned to a host"
        )
    bound = (pod.get("spec") or {}).get("nodeName")
    if bound:
        raise errors.conflict("pods", name, "", f'pod {name} is already assigned to node "{bound}"')
    new = copy.deepcopy(pod)
    new["spec"]["nodeName"] = node
    status = new.setdefault("status", {})
    status["conditions"] = merge_conditions(
        status.get("conditions") or [], [condition("PodScheduled", "True")]
    )
    state.store.replace(pod_rt, pod, new)
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": 201,
    }


def token_request(state: State, namespace: str, name: str, body: Obj | None) -> Obj:
    sa = state.store.get(_rt(state, "serviceaccounts"), namespace, name)
    spec = (body or {}).get("spec") or {}
    seconds = spec.get("expirationSeconds")
    seconds = DEFAULT_EXPIRATION if seconds is None else seconds
    if not isinstance(seconds, int) or seconds < MIN_EXPIRATION:
        raise errors.invalid(
            "TokenRequest",
            name,
            "authentication.k8s.io",
            [
                (
                    "spec.expirationSeconds",
                    f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                )
            ],
        )
    user = service_account_user(namespace, name)
    bound_uids = [sa["metadata"]["uid"]]
    ref = spec.get("boundObjectRef") or None
    if ref:
        if ref.get("kind") != "Pod":
            raise errors.invalid(
                "TokenRequest",
                name,
                "authentication.k8s.io",
                [("spec.boundObjectRef.kind", f'Unsupported value: "{ref.get("kind")}"')],
            )
        pod = state.store.get(_rt(state, "pods"), namespace, str(ref.get("name", "")))
        uid = pod["metadata"]["uid"]
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.conflict(
                "pods",
                pod["metadata"]["name"],
                "",
                f"the UID in the bound object reference ({ref['uid']}) does not match "
                f"the UID in record. The object might have been deleted and then recreated",
            )
        bound_uids.append(uid)
        extra = {
            "authentication.kubernetes.io/pod-name": [pod["metadata"]["name"]],
            "authentication.kubernetes.io/pod-uid": [uid],
        }
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            extra["authentication.kubernetes.io/node-name"] = [str(node)]
        user = UserInfo(user.username, sa["metadata"]["uid"], user.groups, extra)
    else:
        user = UserInfo(user.username, sa["metadata"]["uid"], user.groups)
    expires = time.time() + seconds
    token = state.authn.add_bound(user, expires, tuple(bound_uids))
    stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "spec": {
            "audiences": spec.get("audiences") or [AUDIENCE],
            "expirationSeconds": seconds,
            "boundObjectRef": ref,
        },
        "status": {"token": token, "expirationTimestamp": stamp},
    }


def kubelet_address(state: State, pod: Obj) -> tuple[str, int] | None:
    """Where the kubelet of the Pod's Node serves (InternalIP, kubeletEndpoint port)."""
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name in state.kubelet_nodes:
        return None  # the sandbox's own store-level kubelet: its logs are in `state.logs`
    node = state.store.find(_rt(state, "nodes"), "", str(node_name)) if node_name else None
    if node is None:
        return None
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    ips = [a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"]
    return (ips[0], int(port)) if ips and port else None


async def proxy_log(
    request: web.Request, address: tuple[str, int], namespace: str, name: str, container: str
) -> web.StreamResponse:
    """Stream the kubelet's answer for the container's log back to the caller."""
    query = {
        k: v
        for k, v in request.query.items()
        if k in ("follow", "tailLines", "timestamps", "limitBytes", "previous", "sinceSeconds")
    }
    url = f"https://{address[0]}:{address[1]}/containerLogs/{namespace}/{name}/{container}"
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, params=query, ssl=context) as answer,
        ):
            if answer.status >= 300:
                text = (await answer.text()).strip()
                raise ApiError(answer.status, _reason(answer.status), text or answer.reason or "")
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            try:
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:
                pass
            return response
    except aiohttp.ClientError as error:
        raise ApiError(
            500,
            "InternalError",
            f'Get "{url}": {error}',
        ) from error


def _reason(code: int) -> str:
    return {400: "BadRequest", 403: "Forbidden", 404: "NotFound"}.get(code, "InternalError")
