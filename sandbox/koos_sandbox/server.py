"""The HTTP face of the sandbox: routing, authentication, content negotiation, and the
request log. It parses a Kubernetes REST path into (resource, namespace, name, subresource),
maps the method to a Kubernetes verb, and hands the work to `reads` and `writes`.

Every request is recorded; every refusal is a `kind: Status` body. A failure inside a watch
ends the stream; it never becomes an ERROR event, which kopf would treat as fatal.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

import yaml
from aiohttp import web

from koos_sandbox import discovery, errors, limits, nodeapi, openapi, reads
from koos_sandbox.apply import manager_of
from koos_sandbox.apply_write import apply_write
from koos_sandbox.audit import Record
from koos_sandbox.auth import UserInfo
from koos_sandbox.errors import ApiError
from koos_sandbox.protobuf import decode_object, is_protobuf
from koos_sandbox.registry import ResourceType
from koos_sandbox.requestctx import request_warnings, reset_request_warnings
from koos_sandbox.state import State
from koos_sandbox.write_check import check_custom_kind
from koos_sandbox.writes import WriteOptions

NAMESPACE_SUBRESOURCES = ("status", "finalize")
APPLY = "application/apply-patch+yaml"


@dataclass
class Target:
    group: str
    version: str
    rt: ResourceType | None
    plural: str
    namespace: str
    name: str
    subresource: str


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(body), status=status, content_type="application/json", headers=headers
    )


def error_response(error: ApiError) -> web.Response:
    return json_response(error.status(), error.code, error.headers)


def parse_path(path: str) -> tuple[str, str, list[str]] | None:
    """`/api/v1/...` or `/apis/g/v/...` → (group, version, rest segments)."""
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if len(parts) >= 2 and parts[0] == "api":
        return "", parts[1], parts[2:]
    if len(parts) >= 3 and parts[0] == "apis":
        return parts[1], parts[2], parts[3:]
    return None


def resolve(state: State, group: str, version: str, rest: list[str]) -> Target:
    namespace = ""
    if (
        len(rest) >= 3
        and rest[0] == "namespaces"
        and not (len(rest) == 3 and group == "" and rest[2] in NAMESPACE_SUBRESOURCES)
    ):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    rt = state.registry.find(group, version, plural)
    if rt is None:
        if (group, version) in discovery.VIRTUAL:
            return Target(group, version, None, plural, namespace, name, sub)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if rt.namespaced and not namespace and name and plural != "namespaces":
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if not rt.namespaced and namespace:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if sub and sub not in rt.subresources:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return Target(group, version, rt, plural, namespace, name, sub)


def verb_of(method: str, target: Target, query: Any) -> str:
    if method == "GET":
        if not target.name:
            return "watch" if query.get("watch") in ("true", "1") else "list"
        return "get"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    raise errors.method_not_allowed()


class Server:
    def __init__(self, state: State) -> None:
        self.state = state
        # One byte over the limit still reads, so that `_read_json` can tell it apart.
        self.app = web.Application(client_max_size=limits.MAX_BODY_BYTES + 2)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        record = Record(
            user="",
            groups=(),
            verb=request.method.lower(),
            group="",
            version="",
            resource="",
            subresource="",
            namespace="",
            name="",
            content_type=request.content_type,
            path=request.path,
            query=request.query_string,
        )
        try:
            response = await self._handle(request, record)
        except ApiError as error:
            response = error_response(error)
        except RecursionError:
            # A backstop: bodies nested past limits.MAX_DEPTH are refused before any
            # recursive code sees them, so this would be a path that forgot to check.
            self.state.log.exception("nesting too deep serving %s", request.path)
            response = error_response(limits.too_deep("the request could not be handled"))
        except asyncio.CancelledError:
            record.code = 499
            self.state.requests.add(record)
            raise
        except Exception as exc:  # an internal failure is a 500 Status, as in the apiserver
            self.state.log.exception("internal error serving %s", request.path)
            response = error_response(ApiError(500, "InternalError", f"Internal error: {exc}"))
        if not record.code:
            record.code = response.status
        self.state.requests.add(record)
        return response

    async def _handle(self, request: web.Request, record: Record) -> web.StreamResponse:
        reset_request_warnings()
        path = request.path
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        user = self.state.authn.authenticate(
            request.headers.get("Authorization"),
            request.headers.get("Impersonate-User"),
            request.headers.getall("Impersonate-Group", []),
        )
        record.user, record.groups = user.username, user.groups
        if path == "/version":
            return json_response(discovery.VERSION)
        if path == "/openapi/v3":
            return json_response(openapi.root_doc(self.state.registry))
        if path == "/openapi/v2":
            if "protobuf" in request.headers.get("Accept", ""):
                return web.Response(body=openapi.v2_protobuf(), content_type=openapi.V2_PROTOBUF)
            return json_response(openapi.v2_doc())
        if path.startswith("/openapi/v3/"):
            parsed_gv = parse_path(path[len("/openapi/v3") :])
            doc = None
            if parsed_gv is not None and not parsed_gv[2]:
                doc = openapi.group_version_doc(self.state.registry, *parsed_gv[:2])
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return json_response(doc)
        if path == "/api":
            return json_response(discovery.api_versions(request.host))
        if path == "/apis":
            return json_response(discovery.api_group_list(self.state.registry))
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "apis":
            doc = discovery.api_group(self.state.registry, parts[1])
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return json_response(doc)
        parsed = parse_path(path)
        if parsed is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        group, version, rest = parsed
        if not rest:
            doc = discovery.api_resource_list(self.state.registry, group, version)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return json_response(doc)
        target = resolve(self.state, group, version, rest)
        verb = verb_of(request.method, target, request.query)
        record.verb, record.group, record.version = verb, group, version
        record.resource, record.subresource = target.plural, target.subresource
        record.namespace, record.name = target.namespace, target.name
        resource_key = (
            f"{target.plural}/{target.subresource}" if target.subresource else (target.plural)
        )
        latency = self.state.faults.latency_for(verb, resource_key)
        if latency:
            await asyncio.sleep(latency)
        fault = self.state.faults.error_for(verb, resource_key)
        if fault is not None:
            raise fault
        if target.rt is None:
            return await self._virtual(request, user, target)
        if target.rt.namespaced and not target.namespace and verb not in ("list", "watch"):
            # The all-namespaces path of a namespaced resource only lists and watches.
            raise errors.method_not_allowed()
        self.state.authz.check(
            user, verb, group, target.plural, target.namespace, target.name, target.subresource
        )
        return await self._dispatch(request, user, verb, target)

    async def _dispatch(
        self, request: web.Request, user: UserInfo, verb: str, target: Target
    ) -> web.StreamResponse:
        rt = target.rt
        assert rt is not None
        state, query = self.state, request.query
        if target.subresource == "log":
            return await reads.pod_log(state, request, target.namespace, target.name)
        if target.subresource in ("token", "binding"):
            if request.method != "POST":
                raise errors.method_not_allowed()
            body = await _read_json(request, allow_empty=True) or {}
            if target.subresource == "binding":
                return json_response(nodeapi.bind(state, target.namespace, target.name, body), 201)
            answer = nodeapi.token_request(state, target.namespace, target.name, body)
            return json_response(answer, 201)
        if verb == "get":
            obj = state.store.get(rt, target.namespace, target.name)
            return json_response(
                reads.render_get(rt, obj, request.headers.get("Accept", ""), query)
            )
        if verb == "list":
            return json_response(reads.render_list(state, rt, target.namespace, request))
        if verb == "watch":
            return await reads.watch(state, rt, target.namespace, request)
        opts = WriteOptions(
            dry_run=query.get("dryRun") == "All",
            field_validation=query.get("fieldValidation", ""),
            subresource=target.subresource,
            field_manager=query.get("fieldManager", ""),
            force=query.get("force") == "true",
        )
        if verb == "patch" and request.content_type != APPLY and "force" in query:
            raise errors.invalid(
                "PatchOptions",
                "",
                "meta.k8s.io",
                [("force", "Forbidden: may not be specified for non-apply patch")],
            )
        if request.content_type != APPLY and not opts.field_manager:
            manager = manager_of("", request.headers.get("User-Agent", ""))
            opts = replace(opts, field_manager=manager)
        if verb == "delete":
            options = await _read_json(request, allow_empty=True) or {}
            for param in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
                if param in query:
                    options[param] = query[param]
            obj = await state.writes.delete(
                user, rt, target.namespace, target.name, options, opts.dry_run
            )
            return json_response(obj, 200, _warning_headers(request_warnings()))
        if verb == "deletecollection":
            return json_response(await reads.delete_collection(state, user, rt, target, request))
        body = await _read_json(request)
        if verb in ("create", "update"):
            check_custom_kind(rt, body, await request.read())
        if verb == "create":
            if target.name:
                raise errors.method_not_allowed()
            obj = await state.writes.create(user, rt, target.namespace, body, opts)
            return json_response(obj, 201, _warning_headers(request_warnings()))
        if verb == "update":
            obj = await state.writes.update(user, rt, target.namespace, target.name, body, opts)
            return json_response(obj, 200, _warning_headers(request_warnings()))
        content_type = request.content_type
        if content_type == APPLY:
            obj, created = await apply_write(
                state.writes, user, rt, target.namespace, target.name, body, opts
            )
            return json_response(obj, 201 if created else 200, _warning_headers(request_warnings()))
        obj = await state.writes.patch(
            user, rt, target.namespace, target.name, content_type, body, opts
        )
        return json_response(obj, 200, _warning_headers(request_warnings()))

    async def _virtual(self, request: web.Request, user: UserInfo, target: Target) -> web.Response:
        if request.method != "POST":
            raise errors.method_not_allowed()
        body = await _read_json(request)
        if target.plural == "selfsubjectreviews":
            return json_response(
                {
                    "kind": "SelfSubjectReview",
                    "apiVersion": "authentication.k8s.io/v1",
                    "metadata": {"creationTimestamp": None},
                    "status": {"userInfo": user.as_dict()},
                },
                201,
            )
        if target.plural == "selfsubjectaccessreviews":
            attrs = (body.get("spec") or {}).get("resourceAttributes") or {}
            allowed = self.state.authz.allows(
                user,
                attrs.get("verb", ""),
                attrs.get("group", ""),
                attrs.get("resource", ""),
                attrs.get("namespace", ""),
            )
            return json_response({**body, "status": {"allowed": allowed}}, 201)
        if target.plural == "subjectaccessreviews":
            # Whether another user may do something: the caller needs the right to ask.
            self.state.authz.check(user, "create", target.group, target.plural, "")
            spec = body.get("spec") or {}
            attrs = spec.get("resourceAttributes") or {}
            subject = UserInfo(
                str(spec.get("user", "")),
                str(spec.get("uid", "")),
                tuple(spec.get("groups") or ()),
                dict(spec.get("extra") or {}),
            )
            allowed = self.state.authz.allows(
                subject,
                attrs.get("verb", ""),
                attrs.get("group", ""),
                attrs.get("resource", ""),
                attrs.get("namespace", ""),
            )
            return json_response({**body, "status": {"allowed": allowed}}, 201)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")


def _warning_headers(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    return {
        "Warning": ", ".join(f'299 - "{w.replace(chr(34), chr(92) + chr(34))}"' for w in warnings)
    }


async def _read_json(request: web.Request, allow_empty: bool = False) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise limits.body_too_large() from None
    if len(raw) > limits.MAX_BODY_BYTES:
        raise limits.body_too_large()
    if not raw.strip():
        if allow_empty:
            return None
        raise errors.bad_request("the request body is empty")
    content_type = request.content_type
    try:
        if is_protobuf(content_type):
            body = decode_object(raw)
        elif content_type in ("application/yaml", "application/apply-patch+yaml"):
            body = yaml.safe_load(raw)
        else:
            body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"error decoding request body: {exc}") from exc
    except RecursionError:
        raise limits.too_deep("error decoding request body") from None
    limits.check_depth(body, "error decoding request body")
    return body
