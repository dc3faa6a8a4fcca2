"""Dynamic admission: Mutating/ValidatingWebhookConfigurations called as kube-apiserver calls them.

At every write the configurations are read from the store, sorted by name, and their webhooks
taken in order (generic/webhook.go, configuration/*_webhook_manager.go). A webhook is called
when, as in `ShouldCallHook`, its `namespaceSelector`, its `objectSelector` and one of its
`rules` all match; it receives a real AdmissionReview over HTTP(S) (`clientConfig.url`, with
`caBundle` as the only trust root for https) and its answer is checked like
`VerifyAdmissionResponse` does.

- Mutating webhooks run one after another, each seeing the object as the previous patch left
  it (mutating/dispatcher.go); `JSONPatch` responses are applied to the object.
- Validating webhooks run concurrently; when several refuse, the first refusal in webhook
  order is answered (the apiserver answers whichever reaches its channel first).
- DELETE: the write path calls only `validate` (object None, old object set). As in
  `rest.AdmissionToValidateObjectDeleteFunc`, mutating webhooks are called for it too, first;
  a patch from one of them is a 500, as in the apiserver.
- The configurations themselves (and admission policies) are never sent to webhooks
  (`rules.IsExemptAdmissionConfigurationResource`), so a bad webhook can always be deleted.

Refusals, worded as the apiserver words them:
- `allowed: false` → `admission webhook "<name>" denied the request: <status.message>`
  (or `: <status.reason>`, or ` without explanation`), with `status.code` (below 400 or
  unset → 400), `status.reason` and `status.details` as given (errors/statuserror.go).
- A failed call (refused connection, timeout, non-2xx answer, malformed review, uid
  mismatch...) with `failurePolicy: Fail` (the v1 default) → 500 InternalError
  `Internal error occurred: failed calling webhook "<name>": <reason>`; with `Ignore` the
  webhook is skipped. Transport reasons use Go's wording (`failed to call webhook: Post
  "<url>?timeout=10s": dial tcp 127.0.0.1:1: connect: connection refused`, `... context
  deadline exceeded`); some (JSON decode and TLS details) are approximations.
- dryRun with `sideEffects` other than None/NoneOnDryRun → 400 BadRequest `admission webhook
  "<name>" does not support dry run`, whatever the failure policy; without `sideEffects` at
  all → a call failure `Webhook SideEffects is nil`.

Not emulated (documented choices): `matchPolicy: Equivalent` is treated as Exact (a rule
naming only another served version of a resource does not match, and no conversion is done);
`matchConditions` (CEL) are ignored, the webhook is called as if they matched;
`reinvocationPolicy: IfNeeded` never re-invokes; `clientConfig.service` cannot be reached
from the sandbox and is a call failure (the failure policy decides); audit annotations are
dropped. The configurations are not validated when stored (the write
path trusts built-in kinds), so values a v1 apiserver refuses (`sideEffects: Some`,
`timeoutSeconds: 60`, http URLs) are accepted here; `timeoutSeconds` is clamped to 1..30.

The review is sent as the first of `admissionReviewVersions` the sandbox knows (v1, v1beta1;
v1 when unset). For a Namespace object, `request.namespace` is the Namespace's own name, as
since Kubernetes 1.20. Warnings returned by webhooks are collected per HTTP request (see
`request_warnings`).
Calls are plain aiohttp requests on the server's event loop: nothing blocks, and a webhook
that never answers costs at most its `timeoutSeconds`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import logging
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from koos.sandbox import errors
from koos.sandbox.errors import ApiError
from koos.sandbox.patch import json_patch
from koos.sandbox.registry import Registry, ResourceType
from koos.sandbox.requestctx import request_warnings, reset_request_warnings
from koos.sandbox.selectors import LabelSelector, selector_from_dict
from koos.sandbox.store import Obj, Store
from koos.sandbox.writes import AdmissionRequest

log = logging.getLogger("koos.sandbox.admission")

GROUP = "admissionregistration.k8s.io"
MUTATING = (GROUP, "mutatingwebhookconfigurations")
VALIDATING = (GROUP, "validatingwebhookconfigurations")
EXEMPT_KINDS = frozenset(
    {
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
    }
)
NAMESPACES = ("", "v1", "namespaces")
DEFAULT_TIMEOUT = 10
MAX_TIMEOUT = 30
_OPTIONS_KINDS = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}
_REVIEW_VERSIONS = ("v1", "v1beta1")


def _warn(warnings: list[str], text: Any) -> None:
    if isinstance(text, str) and text and text not in warnings:
        warnings.append(text)


# ---- errors --------------------------------------------------------------------------------


class _CallFailed(Exception):
    """`webhookutil.ErrCallingWebhook`: the webhook could not be asked; the failure policy
    decides. `reason` is the text after `failed calling webhook "<name>": `."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookStatusError(ApiError):
    """A refusal whose Status body comes from a webhook: fields it left empty stay out of
    the body, as Go's `omitempty` leaves them out (a webhook may send no reason)."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(
            int(status["code"]),
            str(status.get("reason") or ""),
            str(status["message"]),
            details=status.get("details") or None,
        )
        self._status = status

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
        for key in ("status", "message", "reason", "details", "code"):
            if self._status.get(key) not in (None, "", {}):
                body[key] = self._status[key]
        return body


def internal_error(message: str) -> ApiError:
    """`apierrors.NewInternalError(err)`."""
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        details={"causes": [{"message": message}]},
    )


def denied(webhook: str, result: Any) -> WebhookStatusError:
    """`webhookerrors.ToStatusErr`: the webhook's own Status, with the apiserver's prefix."""
    status = dict(result) if isinstance(result, Mapping) else {}
    code = status.get("code")
    status["code"] = code if isinstance(code, int) and code >= 400 else 400
    if status.get("status") in (None, "", "Success"):
        status["status"] = "Failure"
    by = f'admission webhook "{webhook}" denied the request'
    if status.get("message"):
        status["message"] = f"{by}: {status['message']}"
    elif status.get("reason"):
        status["message"] = f"{by}: {status['reason']}"
    else:
        status["message"] = f"{by} without explanation"
    return WebhookStatusError(status)


def dry_run_unsupported(webhook: str) -> ApiError:
    return errors.bad_request(f'admission webhook "{webhook}" does not support dry run')


# ---- webhooks as configured ----------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Webhook:
    """One entry of a configuration's `webhooks`, with the v1 defaults applied."""

    configuration: str
    mutating: bool
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    @property
    def ignore_failures(self) -> bool:
        return bool(self.spec.get("failurePolicy", "Fail") == "Ignore")

    @property
    def side_effects(self) -> str | None:
        value = self.spec.get("sideEffects")
        return value if isinstance(value, str) else None

    @property
    def timeout(self) -> int:
        value = self.spec.get("timeoutSeconds")
        if not isinstance(value, int) or isinstance(value, bool):
            return DEFAULT_TIMEOUT
        return min(max(value, 1), MAX_TIMEOUT)

    @property
    def rules(self) -> list[dict[str, Any]]:
        return [r for r in _list(self.spec.get("rules")) if isinstance(r, dict)]

    @property
    def client_config(self) -> dict[str, Any]:
        return _dict(self.spec.get("clientConfig"))

    @property
    def review_version(self) -> str | None:
        versions = self.spec.get("admissionReviewVersions")
        if versions is None:
            return "v1"
        for version in _list(versions):
            if version in _REVIEW_VERSIONS:
                return str(version)
        return None


def _webhooks(store: Store, key: tuple[str, str], mutating: bool) -> list[Webhook]:
    found: list[Webhook] = []
    configurations = sorted(store.items(key), key=lambda c: c["metadata"]["name"])
    for configuration in configurations:
        name = configuration["metadata"]["name"]
        for spec in _list(configuration.get("webhooks")):
            if isinstance(spec, dict):
                found.append(Webhook(name, mutating, spec))
    return found


# ---- matching (predicates/rules, predicates/namespace, predicates/object) ------------------


def is_exempt(rt: ResourceType) -> bool:
    return rt.group == GROUP and rt.kind in EXEMPT_KINDS


def review_namespace(request: AdmissionRequest) -> str:
    """The request's namespace as admission sees it: for a Namespace object, its own name
    (set for every operation since Kubernetes 1.20, kubernetes/kubernetes#95012)."""
    if request.rt.key == ("", "namespaces"):
        return request.name
    return request.namespace


def _is_namespace_resource(rt: ResourceType) -> bool:
    return (rt.group, rt.version, rt.plural) == NAMESPACES


def rule_matches(rule: Mapping[str, Any], request: AdmissionRequest) -> bool:
    """`rules.Matcher.Matches`: scope, operation, group, version, resource[/subresource]."""
    rt = request.rt
    scope = rule.get("scope") or "*"
    namespace = review_namespace(request)
    if scope == "Namespaced":
        if _is_namespace_resource(rt) or not namespace:
            return False
    elif scope == "Cluster":
        if not (_is_namespace_resource(rt) or not namespace):
            return False
    elif scope != "*":
        return False
    operations = _list(rule.get("operations"))
    if "*" not in operations and request.operation not in operations:
        return False
    groups, versions = _list(rule.get("apiGroups")), _list(rule.get("apiVersions"))
    if "*" not in groups and rt.group not in groups:
        return False
    if "*" not in versions and rt.version not in versions:
        return False
    for resource in _list(rule.get("resources")):
        if not isinstance(resource, str):
            continue
        res, _, sub = resource.partition("/")
        if res in ("*", rt.plural) and sub in ("*", request.subresource):
            return True
    return False


def _labels(obj: Obj | None) -> dict[str, str]:
    if obj is None:
        return {}
    return _dict(_dict(obj.get("metadata")).get("labels"))


def _parse_selector(selector: Any) -> LabelSelector:
    """`GetParsedNamespaceSelector`/`GetParsedObjectSelector`: unset is `{}` (everything);
    a selector that does not parse is a 500."""
    try:
        return selector_from_dict(_dict(selector))
    except ApiError as error:
        raise internal_error(error.message) from error
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise internal_error(str(error)) from error


# ---- the AdmissionReview -------------------------------------------------------------------


def _user_info(request: AdmissionRequest) -> dict[str, Any]:
    info = request.user.as_dict()
    # authenticationv1.UserInfo: every field is omitempty.
    return {k: v for k, v in info.items() if v not in (None, "", [], {})}


def _options(request: AdmissionRequest) -> dict[str, Any]:
    given = dict(request.options or {})
    given.pop("apiVersion", None)
    kind = given.pop("kind", None) or _OPTIONS_KINDS.get(request.operation, "")
    options: dict[str, Any] = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
    for key, value in given.items():
        if key == "gracePeriodSeconds" and isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        elif key == "orphanDependents" and isinstance(value, str):
            value = value.lower() == "true"
        options[key] = value
    if request.dry_run:
        options.setdefault("dryRun", ["All"])
    return options


def build_review(request: AdmissionRequest, uid: str, api_version: str = "v1") -> dict[str, Any]:
    """The AdmissionReview the apiserver POSTs (request/admissionreview.go)."""
    rt = request.rt
    kind = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    resource = {"group": rt.group, "version": rt.version, "resource": rt.plural}
    body: dict[str, Any] = {"uid": uid, "kind": kind, "resource": resource}
    if request.subresource:
        body["subResource"] = request.subresource
    body["requestKind"] = dict(kind)
    body["requestResource"] = dict(resource)
    if request.subresource:
        body["requestSubResource"] = request.subresource
    if request.name:
        body["name"] = request.name
    namespace = review_namespace(request)
    if namespace:
        body["namespace"] = namespace
    body["operation"] = request.operation
    body["userInfo"] = _user_info(request)
    body["object"] = request.obj
    body["oldObject"] = request.old
    body["dryRun"] = request.dry_run
    body["options"] = _options(request)
    return {
        "kind": "AdmissionReview",
        "apiVersion": f"admission.k8s.io/{api_version}",
        "request": body,
    }


def _with_type_meta(rt: ResourceType, namespace: str, obj: Obj) -> Obj:
    """The object as the apiserver encodes it for webhooks: apiVersion, kind, and (for a
    namespaced kind) metadata.namespace are always there."""
    obj = copy.deepcopy(obj)
    obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
    meta = obj.setdefault("metadata", {})
    if rt.namespaced and namespace and isinstance(meta, dict):
        meta.setdefault("namespace", namespace)
    return obj


# ---- Go-worded transport errors --------------------------------------------------------------

# What encoding/json says when a review's body is JSON but not an object (findKind).
_TYPE_META = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
    'Kind string "json:\\"kind,omitempty\\"" }'
)

_GENERIC_RESPONSES = {
    400: "the server rejected our request for an unknown reason",
    401: "the server has asked for the client to provide credentials",
    404: "the server could not find the requested resource",
    405: "the server does not allow this method on the requested resource",
    409: "the server reported a conflict",
    422: "the server rejected our request due to an error in our request",
    429: "the server has received too many requests and has asked us to try again later",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still be "
    "processing the request",
}


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _http_error(code: int, content_type: str, raw: bytes) -> str:
    """client-go's error for a non-2xx answer (rest/request.go transformResponse and
    apierrors.NewGenericServerResponse)."""
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and decoded.get("kind") == "Status" and decoded.get("message"):
        return str(decoded["message"])
    text = "unknown"
    if content_type.startswith("text/plain"):
        text = raw[:2048].decode("utf-8", "replace").strip()
    if code in (403, 406, 415):
        return text
    if code in _GENERIC_RESPONSES:
        return _GENERIC_RESPONSES[code]
    if code >= 500:
        quoted = _go_quote(text)
        return f"an error on the server ({quoted}) has prevented the request from succeeding"
    return f"the server responded with the status code {code} but did not return more information"


def _host_port(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}"


def _transport_error(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "context deadline exceeded"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        cert = error.certificate_error
        code = getattr(cert, "verify_code", None)
        if code in (2, 18, 19, 20, 21):
            detail = "certificate signed by unknown authority"
        else:
            detail = getattr(cert, "verify_message", None) or str(cert)
        return f"tls: failed to verify certificate: x509: {detail}"
    dns_error = getattr(aiohttp, "ClientConnectorDNSError", None)
    if dns_error is not None and isinstance(error, dns_error):
        return f"dial tcp: lookup {error.host}: no such host"
    if isinstance(error, aiohttp.ClientConnectorError):
        where = _host_port(error.host, error.port)
        if isinstance(error.os_error, ConnectionRefusedError):
            return f"dial tcp {where}: connect: connection refused"
        reason = error.os_error.strerror or str(error.os_error)
        return f"dial tcp {where}: connect: {reason.lower()}"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "EOF"
    if isinstance(error, aiohttp.ClientSSLError | ssl.SSLError):
        return f"remote error: tls: {error}"
    return str(error) or type(error).__name__


def _evanphx_error(op: Mapping[str, Any]) -> str:
    """What evanphx/json-patch v4 says when one operation does not apply (approximate)."""
    kind, path = op.get("op"), op.get("path")
    if kind in ("add", "remove"):
        return f'{kind} operation does not apply: doc is missing path: "{path}": missing value'
    if kind == "replace":
        return f"replace operation does not apply: doc is missing path: {path}: missing value"
    if kind == "test":
        return f"testing value {path} failed: test failed"
    if kind in ("move", "copy"):
        return (
            f"{kind} operation does not apply: doc is missing from path: "
            f"{op.get('from')}: missing value"
        )
    return f"Unexpected kind: {kind}: unknown object type"


# ---- the plugin ----------------------------------------------------------------------------


class WebhookAdmission:
    """The MutatingAdmissionWebhook and ValidatingAdmissionWebhook plugins of the sandbox.

    Implements the write path's `Admission` protocol. `start()` is synchronous and does
    nothing but allow calls; the aiohttp session is created on first use, on the loop that
    serves requests; `await stop()` closes it.
    """

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self._session: aiohttp.ClientSession | None = None
        self._ssl: dict[str, ssl.SSLContext] = {}
        self._stopped = False

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._stopped = False

    async def stop(self) -> None:
        self._stopped = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # One connection per call (no pooling): a webhook server that went away answers
            # "connection refused" at once, not a stale keep-alive error. No proxies from
            # the environment: webhook URLs are usually local.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True),
                trust_env=False,
            )
        return self._session

    # ---- warnings --------------------------------------------------------------------------

    @property
    def warnings(self) -> list[str]:
        """Warnings of the request being served (see `request_warnings`)."""
        return request_warnings()

    def reset_warnings(self) -> None:
        reset_request_warnings()

    # ---- Admission protocol ----------------------------------------------------------------

    async def mutate(self, request: AdmissionRequest) -> Obj | None:
        if is_exempt(request.rt):
            return request.obj
        return await self._run_mutating(request)

    async def validate(self, request: AdmissionRequest) -> None:
        if is_exempt(request.rt):
            return
        if request.operation == "DELETE":
            await self._run_mutating(request)
        hooks = _webhooks(self.store, VALIDATING, False)
        if not hooks:
            return
        if request.obj is not None:
            request = replace(
                request, obj=_with_type_meta(request.rt, request.namespace, request.obj)
            )
        selected = [h for h in hooks if self._should_call(h, request)]
        if not selected:
            return
        warnings = request_warnings()
        outcomes = await asyncio.gather(
            *(self._validate_one(h, request, warnings) for h in selected),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    # ---- dispatch --------------------------------------------------------------------------

    async def _run_mutating(self, request: AdmissionRequest) -> Obj | None:
        hooks = _webhooks(self.store, MUTATING, True)
        if not hooks:
            return request.obj
        original = request.obj
        if request.obj is not None:
            request = replace(
                request, obj=_with_type_meta(request.rt, request.namespace, request.obj)
            )
        warnings = request_warnings()
        changed = False
        for hook in hooks:
            if not self._should_call(hook, request):
                continue
            try:
                response = await self._call(hook, request, warnings)
                patched = self._apply_patch(hook, request, response)
            except _CallFailed as failure:
                self._fail(hook, failure)
                continue
            if patched is not None:
                request = replace(request, obj=patched)
                changed = True
        return request.obj if changed else original

    async def _validate_one(
        self, hook: Webhook, request: AdmissionRequest, warnings: list[str]
    ) -> None:
        try:
            await self._call(hook, request, warnings)
        except _CallFailed as failure:
            self._fail(hook, failure)

    def _fail(self, hook: Webhook, failure: _CallFailed) -> None:
        text = f'failed calling webhook "{hook.name}": {failure.reason}'
        if hook.ignore_failures:
            log.warning("Failed calling webhook, failing open %s: %s", hook.name, text)
            return
        log.warning("Failed calling webhook, failing closed %s: %s", hook.name, text)
        raise internal_error(text)

    # ---- matching --------------------------------------------------------------------------

    def _should_call(self, hook: Webhook, request: AdmissionRequest) -> bool:
        """`ShouldCallHook`: selectors first; their errors count only if a rule matches."""
        ns_match, ns_error = self._match_namespace(hook, request)
        if not ns_match and ns_error is None:
            return False
        obj_match, obj_error = self._match_object(hook, request)
        if not obj_match and obj_error is None:
            return False
        if not any(rule_matches(rule, request) for rule in hook.rules):
            return False
        if ns_error is not None:
            raise ns_error
        if obj_error is not None:
            raise obj_error
        return True

    def _match_namespace(
        self, hook: Webhook, request: AdmissionRequest
    ) -> tuple[bool, ApiError | None]:
        namespace = review_namespace(request)
        if not namespace and request.rt.plural != "namespaces":
            return True, None  # cluster-scoped objects are never exempted
        try:
            selector = _parse_selector(hook.spec.get("namespaceSelector"))
        except ApiError as error:
            return False, error
        if selector.empty:
            return True, None
        if (
            request.rt.plural == "namespaces"
            and not request.subresource
            and request.operation in ("CREATE", "UPDATE")
        ):
            labels = _labels(request.obj)
        else:
            ns_type = self.registry.find(*NAMESPACES)
            found = self.store.find(ns_type, "", namespace) if ns_type is not None else None
            if found is None:
                return False, errors.not_found("namespaces", namespace)
            labels = _labels(found)
        return bool(selector.matches(labels)), None

    def _match_object(
        self, hook: Webhook, request: AdmissionRequest
    ) -> tuple[bool, ApiError | None]:
        try:
            selector = _parse_selector(hook.spec.get("objectSelector"))
        except ApiError as error:
            return False, error
        if selector.empty:
            return True, None
        for obj in (request.obj, request.old):
            if obj is not None and selector.matches(_labels(obj)):
                return True, None
        return False, None

    # ---- one call --------------------------------------------------------------------------

    def _target(self, hook: Webhook) -> tuple[str, ssl.SSLContext | None]:
        """The URL to POST to (with the `timeout` parameter client-go adds) and the TLS
        context; raises _CallFailed when the webhook cannot be reached from here."""
        config = hook.client_config
        query = f"timeout={hook.timeout}s"
        url = config.get("url")
        if isinstance(url, str) and url:
            full = f"{url}{'&' if '?' in url else '?'}{query}"
            if not url.lower().startswith(("http://", "https://")):
                raise _CallFailed(
                    f"failed to call webhook: Post {_go_quote(full)}: unsupported protocol "
                    f'scheme "{url.split(":", 1)[0] if ":" in url else ""}"'
                )
            return full, self._tls(config) if url.lower().startswith("https://") else None
        service = _dict(config.get("service"))
        if service:
            name, namespace = service.get("name", ""), service.get("namespace", "")
            port = service.get("port", 443)
            path = service.get("path") or ""
            host = f"{name}.{namespace}.svc"
            full = f"https://{host}:{port}{path}?{query}"
            raise _CallFailed(
                f"failed to call webhook: Post {_go_quote(full)}: dial tcp: lookup {host}: no "
                "such host (the sandbox cannot reach clientConfig.service; use "
                "clientConfig.url)"
            )
        raise _CallFailed(
            "could not get REST client: webhook configuration must have either service or URL"
        )

    def _tls(self, config: Mapping[str, Any]) -> ssl.SSLContext:
        bundle = config.get("caBundle") or ""
        if not isinstance(bundle, str):
            bundle = ""
        context = self._ssl.get(bundle)
        if context is not None:
            return context
        try:
            if bundle:
                pem = base64.b64decode(bundle, validate=True).decode("ascii")
                context = ssl.create_default_context(cadata=pem)
            else:
                context = ssl.create_default_context()
        except (binascii.Error, UnicodeDecodeError, ssl.SSLError, ValueError) as error:
            raise _CallFailed(
                "could not get REST client: unable to load root certificates: unable to parse "
                "bytes as PEM block"
            ) from error
        self._ssl[bundle] = context
        return context

    async def _call(
        self, hook: Webhook, request: AdmissionRequest, warnings: list[str]
    ) -> dict[str, Any]:
        """POST the review and return its checked `response`; raise _CallFailed when the
        webhook could not be asked, an ApiError when the request is refused."""
        if request.dry_run:
            if hook.side_effects is None:
                raise _CallFailed("Webhook SideEffects is nil")
            if hook.side_effects not in ("None", "NoneOnDryRun"):
                raise dry_run_unsupported(hook.name)
        version = hook.review_version
        if version is None:
            raise _CallFailed(
                "could not create admission objects: webhook does not accept known "
                "AdmissionReview versions (v1, v1beta1)"
            )
        url, tls = self._target(hook)
        uid = str(uuid.uuid4())
        review = build_review(request, uid, version)
        if self._stopped:
            raise _CallFailed(f"failed to call webhook: Post {_go_quote(url)}: context canceled")
        try:
            async with self._client().post(
                url,
                data=json.dumps(review, separators=(",", ":")).encode(),
                headers={"Content-Type": "application/json", "Accept": "application/json, */*"},
                ssl=tls if tls is not None else True,
                timeout=aiohttp.ClientTimeout(total=hook.timeout),
                allow_redirects=False,
            ) as answer:
                raw = await answer.read()
                code, content_type = answer.status, answer.content_type or ""
        except (aiohttp.ClientError, TimeoutError, OSError, ssl.SSLError) as error:
            raise _CallFailed(
                f"failed to call webhook: Post {_go_quote(url)}: {_transport_error(error)}"
            ) from error
        if not 200 <= code < 300:
            raise _CallFailed(f"failed to call webhook: {_http_error(code, content_type, raw)}")
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise _CallFailed(
                f"failed to call webhook: couldn't get version/kind; json parse error: {error}"
            ) from error
        response = self._verify(hook, version, uid, body)
        for text in _list(response.get("warnings")):
            _warn(warnings, text)
        if response.get("allowed") is not True:
            raise denied(hook.name, response.get("status"))
        return response

    def _verify(self, hook: Webhook, version: str, uid: str, body: Any) -> dict[str, Any]:
        """`VerifyAdmissionResponse`, and the decoding errors client-go would meet first."""
        if not isinstance(body, dict):
            raise _CallFailed(
                "failed to call webhook: couldn't get version/kind; json parse error: json: "
                f"cannot unmarshal {_json_type(body)} into Go value of type {_TYPE_META}"
            )
        response = body.get("response")
        if response is not None and not isinstance(response, dict):
            raise _CallFailed(
                "failed to call webhook: json: cannot unmarshal "
                + _json_type(response)
                + " into Go struct field AdmissionReview.response of type "
                f"{version}.AdmissionResponse"
            )
        patch = response.get("patch") if response else None
        if patch is not None:
            if not isinstance(patch, str):
                raise _CallFailed(
                    "failed to call webhook: json: cannot unmarshal "
                    + _json_type(patch)
                    + " into Go struct field AdmissionResponse.response.patch of type []uint8"
                )
            try:
                base64.b64decode(patch, validate=True)
            except (binascii.Error, ValueError) as error:
                raise _CallFailed(
                    "failed to call webhook: illegal base64 data at input byte "
                    f"{_bad_base64_at(patch)}"
                ) from error
        api_version, kind = body.get("apiVersion") or "", body.get("kind") or ""
        invalid = "received invalid webhook response: "
        if response is None:
            raise _CallFailed(invalid + "webhook response was absent")
        if version == "v1beta1":
            result = dict(response)
            if not hook.mutating:
                result.pop("patch", None)
            if result.get("patch"):
                result["patchType"] = "JSONPatch"
            return result
        if response.get("uid") != uid:
            got = response.get("uid")
            got_text = got if isinstance(got, str) else ""
            raise _CallFailed(
                invalid + f"expected response.uid={_go_quote(uid)}, got {_go_quote(got_text)}"
            )
        group, _, ver = api_version.rpartition("/")
        if (api_version, kind) != ("admission.k8s.io/v1", "AdmissionReview"):
            raise _CallFailed(
                invalid + "expected webhook response of admission.k8s.io/v1, "
                f"Kind=AdmissionReview, got {group}/{ver}, Kind={kind}"
            )
        has_patch = bool(response.get("patch"))
        patch_type = response.get("patchType")
        if hook.mutating:
            if has_patch and patch_type is None:
                raise _CallFailed(
                    invalid + "webhook returned response.patch but not response.patchType"
                )
            if not has_patch and patch_type is not None:
                raise _CallFailed(
                    invalid + "webhook returned response.patchType but not response.patch"
                )
            if patch_type is not None and not patch_type:
                raise _CallFailed(invalid + 'webhook returned invalid response.patchType of ""')
        else:
            if has_patch:
                raise _CallFailed(invalid + "validating webhook may not return response.patch")
            if patch_type is not None:
                raise _CallFailed(invalid + "validating webhook may not return response.patchType")
        return response

    # ---- patches ---------------------------------------------------------------------------

    def _apply_patch(
        self, hook: Webhook, request: AdmissionRequest, response: Mapping[str, Any]
    ) -> Obj | None:
        """The object after the webhook's JSONPatch, or None when it sent no change. An
        undecodable patch or an unknown patch type is a call failure (_CallFailed); a patch
        that does not apply, or any patch on DELETE, is a 500 whatever the policy."""
        encoded = response.get("patch")
        if not encoded:
            return None
        raw = base64.b64decode(encoded)
        try:
            operations = json.loads(raw)
        except ValueError as error:
            raise _CallFailed(f"received undecodable patch in webhook response: {error}") from error
        if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
            raise _CallFailed(
                "received undecodable patch in webhook response: json: cannot unmarshal "
                + _json_type(operations)
                + " into Go value of type jsonpatch.Patch"
            )
        if not operations:
            return None
        if request.obj is None:
            raise internal_error(
                f'admission webhook "{hook.name}" attempted to modify the object, which is not '
                "supported for this operation"
            )
        patch_type = response.get("patchType")
        if patch_type != "JSONPatch":
            raise _CallFailed(f"unsupported patch type {_go_quote(str(patch_type))}")
        doc: Any = request.obj
        for op in operations:
            try:
                doc = json_patch(doc, [op])
            except ApiError as error:
                raise internal_error(_evanphx_error(op)) from error
        if not isinstance(doc, dict):
            raise internal_error(
                "couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{_json_type(doc)} into Go value of type {_TYPE_META}"
            )
        return doc


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _bad_base64_at(text: str) -> int:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for index, char in enumerate(text):
        if char == "=":
            return index
        if char not in alphabet:
            return index
    return len(text) - len(text) % 4
