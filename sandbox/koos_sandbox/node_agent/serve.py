"""The node agent's kubelet endpoint: `GET /containerLogs/{namespace}/{pod}/{container}`
over HTTPS, which kube-apiserver dials for `kubectl logs` (the Node's InternalIP and
`status.daemonEndpoints.kubeletEndpoint.Port`), and `/healthz`.

Query parameters as the kubelet takes them: `follow`, `tailLines`, `timestamps`,
`limitBytes`. Refusals are the kubelet's: 404 for a Pod this node does not run or a container
it does not have, 400 `container "c" in pod "p" is waiting to start: <reason>` for one that
has not started. It listens on the agent's host (loopback by default) and authenticates no
caller: anyone who can reach the port can read the logs of this node's containers.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from koos_sandbox.logs import PodLogs, now_nano
from koos_sandbox.objects import Obj

PodFinder = Callable[[str, str], Obj | None]


def build_app(logs: PodLogs, find_pod: PodFinder) -> web.Application:
    app = web.Application()

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def container_logs(request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        container = request.match_info["container"]
        pod = find_pod(ns, name)
        if pod is None:
            raise web.HTTPNotFound(text=f'pod "{ns}/{name}" does not exist\n')
        spec = pod.get("spec") or {}
        names = [
            c.get("name")
            for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        ]
        if container not in names:
            raise web.HTTPNotFound(text=f'container "{container}" not found in pod "{ns}/{name}"\n')
        if not logs.has(ns, name, container):
            raise web.HTTPBadRequest(
                text=f'container "{container}" in pod "{name}" is waiting to start: '
                f"{_waiting_reason(pod, container)}"
            )
        query = request.query
        tail = _int(query.get("tailLines"))
        limit = _int(query.get("limitBytes"))
        stamps = query.get("timestamps") in ("true", "1")
        lines = (
            logs.stamped(ns, name, container)
            if stamps
            else [("", line) for line in (logs.read(ns, name, container) or "").splitlines(True)]
        )
        sent = len("".join(line for _, line in lines))
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        text = "".join(f"{t} {line}" if stamps else line for t, line in lines)
        body = text.encode()
        if limit is not None:
            body = body[:limit]
        if query.get("follow") not in ("true", "1"):
            return web.Response(body=body, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        written, line_start = len(body), True
        try:
            await response.write(body)
            skip = sent
            async for chunk in logs.follow(ns, name, container):
                if skip:
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                if not chunk:
                    continue
                if stamps:
                    out = []
                    for piece in chunk.splitlines(True):
                        out.append(f"{now_nano()} {piece}" if line_start else piece)
                        line_start = piece.endswith("\n")
                    chunk = "".join(out)
                data = chunk.encode()
                if limit is not None:
                    data = data[: max(0, limit - written)]
                    if not data:
                        break
                written += len(data)
                await response.write(data)
            await response.write_eof()
        except ConnectionResetError:
            pass
        return response

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    return app


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as error:
        raise web.HTTPBadRequest(text=f"invalid integer: {value!r}\n") from error


def _waiting_reason(pod: Obj, container: str) -> str:
    status = pod.get("status") or {}
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        if cs.get("name") == container:
            reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
            if reason:
                return str(reason)
    return "ContainerCreating"
