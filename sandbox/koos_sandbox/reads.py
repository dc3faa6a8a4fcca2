"""The read path: get, list (selectors, pagination, Tables), watch, pod logs, tokens.

A watch sends only events newer than the requested resourceVersion, in order; from "0" or
no version it first sends the current objects as ADDED. A version older than the retained
log gets one ERROR event with a 410 Status (the only ERROR a watch ever sends), and an
object that stops or starts matching a selector arrives as DELETED or ADDED, as from the
apiserver's watch cache.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from koos_sandbox import errors, nodeapi, tables
from koos_sandbox.auth import UserInfo
from koos_sandbox.errors import ApiError
from koos_sandbox.registry import ResourceType
from koos_sandbox.selectors import parse_field_selector, parse_label_selector
from koos_sandbox.state import State
from koos_sandbox.store import Event, Obj, WatchClosed, WatchExpired


def wants_table(accept: str) -> bool:
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def render_get(rt: ResourceType, obj: Obj, accept: str, query: Any) -> Obj:
    if wants_table(accept):
        return tables.build_table(
            rt, [obj], now=datetime.now(UTC), include_object=query.get("includeObject", "Metadata")
        )
    return obj


class _Matcher:
    def __init__(self, rt: ResourceType, namespace: str, query: Any) -> None:
        self.namespace = namespace
        self.labels = parse_label_selector(query.get("labelSelector", ""))
        self.fields = parse_field_selector(
            query.get("fieldSelector", ""), rt.kind, custom=rt.custom, namespaced=rt.namespaced
        )

    def __call__(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace and meta.get("namespace", "") != self.namespace:
            return False
        return self.labels.matches(meta.get("labels") or {}) and self.fields.matches(obj)


def int_param(query: Any, name: str, default: int = 0) -> int:
    text = query.get(name, "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError as exc:
        raise errors.bad_request(f'invalid value for {name}: "{text}" is not an integer') from exc


def _decode_continue(token: str) -> tuple[str, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["start"]), int(data["rv"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise errors.bad_request(f"continue key is not valid: {exc}") from exc


def render_list(state: State, rt: ResourceType, namespace: str, request: web.Request) -> Obj:
    query = request.query
    matches = _Matcher(rt, namespace, query)
    items = [o for o in state.store.items(rt.key, namespace or None) if matches(o)]
    list_rv = state.store.rv
    if query.get("continue"):
        # Later pages answer with the first page's version, so a watch from it misses nothing
        # (objects changed in between arrive again as events).
        start, list_rv = _decode_continue(query["continue"])
        items = [o for o in items if _sort_key(o) > start]
    meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
    limit = int_param(query, "limit")
    if limit > 0 and len(items) > limit:
        remaining = len(items) - limit
        items = items[:limit]
        token = {"rv": list_rv, "start": _sort_key(items[-1])}
        meta["continue"] = base64.urlsafe_b64encode(_dumps(token)).decode()
        meta["remainingItemCount"] = remaining
    if wants_table(request.headers.get("Accept", "")):
        return tables.build_table(
            rt,
            items,
            now=datetime.now(UTC),
            include_object=query.get("includeObject", "Metadata"),
            list_meta=meta,
        )
    return {"apiVersion": rt.api_version, "kind": rt.list_kind, "metadata": meta, "items": items}


def _sort_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def _classify(event: Event, matches: _Matcher) -> str | None:
    """The event type a watcher with these selectors sees, or None when it sees nothing."""
    now_in = matches(event.obj)
    was_in = matches(event.old)
    if event.type == "ADDED":
        return "ADDED" if now_in else None
    if event.type == "DELETED":
        return "DELETED" if was_in or now_in else None
    if now_in and was_in:
        return "MODIFIED"
    if now_in:
        return "ADDED"
    if was_in:
        return "DELETED"
    return None


async def watch(
    state: State, rt: ResourceType, namespace: str, request: web.Request
) -> web.StreamResponse:
    query = request.query
    matches = _Matcher(rt, namespace, query)
    bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
    send_initial = query.get("sendInitialEvents") in ("true", "1")
    table = wants_table(request.headers.get("Accept", ""))
    include = query.get("includeObject", "Metadata")
    rv_param = query.get("resourceVersion", "")
    timeout = int_param(query, "timeoutSeconds") or None
    initial: list[Obj] = []
    if rv_param in ("", "0") or send_initial:
        initial = [o for o in state.store.items(rt.key, namespace or None) if matches(o)]
        since = state.store.rv
    else:
        try:
            since = int(rv_param)
        except ValueError as exc:
            raise errors.bad_request(f'invalid resource version "{rv_param}"') from exc
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    first_table = True

    async def send(kind: str, obj: Obj) -> None:
        nonlocal first_table
        if table and kind in ("ADDED", "MODIFIED", "DELETED"):
            obj = tables.build_table(
                rt,
                [obj],
                now=datetime.now(UTC),
                include_object=include,
                with_column_definitions=first_table,
            )
            first_table = False
        await response.write(_dumps({"type": kind, "object": obj}) + b"\n")

    def bookmark(rv: int, initial_end: bool = False) -> Obj:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}

    try:
        async with asyncio.timeout(timeout):
            if rv_param not in ("", "0") and state.store.take_forced_expiry(rt.key):
                raise WatchExpired(f"too old resource version: {since} ({state.store.rv})")
            for obj in initial:
                await send("ADDED", obj)
            if send_initial and bookmarks:
                await send("BOOKMARK", bookmark(since, initial_end=True))
            stream = state.store.events_since(since, rt.key, bookmark_every=state.bookmark_interval)
            async for item in stream:
                if isinstance(item, int):
                    if bookmarks:
                        await send("BOOKMARK", bookmark(item))
                    continue
                kind = _classify(item, matches)
                if kind is not None:
                    await send(kind, item.obj)
    except WatchExpired as expired:
        status = errors.gone(str(expired)).status()
        await response.write(_dumps({"type": "ERROR", "object": status}) + b"\n")
    except (TimeoutError, WatchClosed, ConnectionResetError):
        pass
    except Exception:
        # Never an ERROR event: kopf treats any but 410 as fatal. Closing makes it re-watch.
        state.log.exception("watch of %s ended by an internal error", rt.group_resource)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def pod_log(
    state: State, request: web.Request, namespace: str, name: str
) -> web.StreamResponse:
    pod_type = state.registry.find("", "v1", "pods")
    assert pod_type is not None
    pod = state.store.get(pod_type, namespace, name)
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    container = request.query.get("container", "")
    if not container:
        if len(containers) != 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(containers)}]"
            )
        container = containers[0]
    elif container not in containers:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    if not state.logs.has(namespace, name, container):
        # Not one the sandbox's own (scripted) kubelet ran: ask the Pod's node, as
        # kube-apiserver does.
        address = nodeapi.kubelet_address(state, pod)
        if address is None:
            raise errors.bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            )
        return await nodeapi.proxy_log(request, address, namespace, name, container)
    tail = request.query.get("tailLines")
    if request.query.get("follow") not in ("true", "1"):
        text = state.logs.read(namespace, name, container) or ""
        return web.Response(text=_tail(text, tail), content_type="text/plain")
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    first = True
    try:
        async for chunk in state.logs.follow(namespace, name, container):
            await response.write((_tail(chunk, tail) if first else chunk).encode())
            first = False
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response


def _tail(text: str, lines: str | None) -> str:
    if not lines:
        return text
    kept = text.splitlines(keepends=True)
    return "".join(kept[-int(lines) :]) if int(lines) > 0 else ""


async def delete_collection(
    state: State, user: UserInfo, rt: ResourceType, target: Any, request: web.Request
) -> Obj:
    matches = _Matcher(rt, target.namespace, request.query)
    deleted = []
    for obj in [o for o in state.store.items(rt.key, target.namespace or None) if matches(o)]:
        meta = obj["metadata"]
        try:
            deleted.append(
                await state.writes.delete(
                    user, rt, meta.get("namespace", ""), meta["name"], {}, False
                )
            )
        except ApiError as error:
            if error.code != 404:
                raise
    return {"apiVersion": rt.api_version, "kind": rt.list_kind, "metadata": {}, "items": deleted}
