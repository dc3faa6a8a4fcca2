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

`matchConditions` are evaluated (CEL) as `admission_cel` says.

Not emulated (documented choices): `matchPolicy: Equivalent` is treated as Exact (a rule
naming only another served version of a resource does not match, and no conversion is done);
`reinvocationPolicy: IfNeeded` never re-invokes; `clientConfig.service` cannot be reached
from the sandbox and is a call failure (the failure policy decides; a Service that does not
exist fails as kube-apiserver's resolver words it); audit annotations are dropped. The
configurations are checked when stored as `admission_validate` says (https URLs,
`sideEffects`, `timeoutSeconds`, matchConditions that compile); the rest of their validation
is not emulated.

The review is sent as the first of `admissionReviewVersions` the sandbox knows (v1, v1beta1;
v1 when unset). For a Namespace object, `request.namespace` is the Namespace's own name, as
since Kubernetes 1.20. Warnings returned by webhooks are collected per HTTP request (see
`request_warnings`).
Calls are plain aiohttp requests on the server's event loop: nothing blocks, and a webhook
that never answers costs at most its `timeoutSeconds`.

Layout: admission.py (this plugin: the mutate/validate flow and the HTTP call),
admission_match.py (the configured webhooks and which of them to call), admission_review.py
(the AdmissionReview sent and the answer read), admission_errors.py (refusals and the Go
wording of failed calls).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import aiohttp

from koos_sandbox.admission_cel import conditions_match
from koos_sandbox.admission_errors import (
    CallFailed,
    denied,
    dry_run_unsupported,
    http_error,
    internal_error,
    json_quote,
    transport_error,
)
from koos_sandbox.admission_match import (
    MUTATING,
    VALIDATING,
    Webhook,
    as_dict,
    as_list,
    is_exempt,
    should_call,
    webhooks,
)
from koos_sandbox.admission_review import apply_patch, build_review, verify_response, with_type_meta
from koos_sandbox.registry import Registry
from koos_sandbox.requestctx import request_warnings, reset_request_warnings
from koos_sandbox.store import Obj, Store
from koos_sandbox.writes import AdmissionRequest

__all__ = ["WebhookAdmission", "request_warnings", "reset_request_warnings"]

log = logging.getLogger("koos_sandbox.admission")


def _warn(warnings: list[str], text: Any) -> None:
    if isinstance(text, str) and text and text not in warnings:
        warnings.append(text)


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
        # Calls by webhook name, as kube-apiserver's apiserver_admission_webhook_request_total.
        self.calls: Counter[str] = Counter()

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
            # Connections are kept alive and reused, as kube-apiserver's transport does. No
            # proxies from the environment: webhook URLs are usually local.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
                trust_env=False,
            )
        return self._session

    async def _post(
        self, url: str, review: dict[str, Any], tls: ssl.SSLContext | None, timeout: float
    ) -> tuple[bytes, int, str]:
        """POST the review; a kept-alive connection the server has closed meanwhile (it
        restarted) is retried once on a new one, as Go's transport retries a request that
        was never sent."""
        data = json.dumps(review, separators=(",", ":")).encode()
        deadline = time.monotonic() + timeout
        for attempt in (1, 2):
            try:
                async with self._client().post(
                    url,
                    data=data,
                    headers={"Content-Type": "application/json", "Accept": "application/json, */*"},
                    ssl=tls if tls is not None else True,
                    timeout=aiohttp.ClientTimeout(total=max(deadline - time.monotonic(), 0.001)),
                    allow_redirects=False,
                ) as answer:
                    return await answer.read(), answer.status, answer.content_type or ""
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                # Closed or reset by the server while idle; a refused connection fails the
                # same way again at once.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

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
        hooks = webhooks(self.store, VALIDATING, False)
        if not hooks:
            return
        selected = [h for h in hooks if should_call(h, request, self.store, self.registry)]
        if not selected:
            return
        if request.obj is not None:
            request = replace(
                request, obj=with_type_meta(request.rt, request.namespace, request.obj)
            )
        selected = [h for h in selected if conditions_match(h, request)]
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
        hooks = webhooks(self.store, MUTATING, True)
        if not hooks:
            return request.obj
        original = request.obj
        if request.obj is not None:
            request = replace(
                request, obj=with_type_meta(request.rt, request.namespace, request.obj)
            )
        warnings = request_warnings()
        changed = False
        for hook in hooks:
            if not should_call(hook, request, self.store, self.registry):
                continue
            if not conditions_match(hook, request):
                continue
            try:
                response = await self._call(hook, request, warnings)
                patched = apply_patch(hook, request, response)
            except CallFailed as failure:
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
        except CallFailed as failure:
            self._fail(hook, failure)

    def _fail(self, hook: Webhook, failure: CallFailed) -> None:
        text = f'failed calling webhook "{hook.name}": {failure.reason}'
        if hook.ignore_failures:
            log.warning("Failed calling webhook, failing open %s: %s", hook.name, text)
            return
        log.warning("Failed calling webhook, failing closed %s: %s", hook.name, text)
        raise internal_error(text)

    # ---- one call --------------------------------------------------------------------------

    def _target(self, hook: Webhook) -> tuple[str, ssl.SSLContext | None]:
        """The URL to POST to (with the `timeout` parameter client-go adds) and the TLS
        context; raises CallFailed when the webhook cannot be reached from here."""
        config = hook.client_config
        query = f"timeout={hook.timeout}s"
        url = config.get("url")
        if isinstance(url, str) and url:
            full = f"{url}{'&' if '?' in url else '?'}{query}"
            if not url.lower().startswith(("http://", "https://")):
                raise CallFailed(
                    f"failed to call webhook: Post {json_quote(full)}: unsupported protocol "
                    f'scheme "{url.split(":", 1)[0] if ":" in url else ""}"'
                )
            return full, self._tls(config) if url.lower().startswith("https://") else None
        service = as_dict(config.get("service"))
        if service:
            name, namespace = service.get("name", ""), service.get("namespace", "")
            port = service.get("port", 443)
            path = service.get("path") or ""
            host = f"{name}.{namespace}.svc"
            full = f"https://{host}:{port}{path}?{query}"
            services = self.registry.find("", "v1", "services")
            if services is None or self.store.find(services, namespace, name) is None:
                # The apiserver's service resolver looks the Service up first.
                raise CallFailed(
                    f"failed to call webhook: Post {json_quote(full)}: "
                    f"service {json_quote(name)} not found"
                )
            raise CallFailed(
                f"failed to call webhook: Post {json_quote(full)}: dial tcp: lookup {host}: no "
                "such host (the sandbox cannot reach clientConfig.service; use "
                "clientConfig.url)"
            )
        raise CallFailed(
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
            raise CallFailed(
                "could not get REST client: unable to load root certificates: unable to parse "
                "bytes as PEM block"
            ) from error
        self._ssl[bundle] = context
        return context

    async def _call(
        self, hook: Webhook, request: AdmissionRequest, warnings: list[str]
    ) -> dict[str, Any]:
        """POST the review and return its checked `response`; raise CallFailed when the
        webhook could not be asked, an ApiError when the request is refused."""
        self.calls[hook.name] += 1
        if request.dry_run:
            if hook.side_effects is None:
                raise CallFailed("Webhook SideEffects is nil")
            if hook.side_effects not in ("None", "NoneOnDryRun"):
                raise dry_run_unsupported(hook.name)
        version = hook.review_version
        if version is None:
            raise CallFailed(
                "could not create admission objects: webhook does not accept known "
                "AdmissionReview versions (v1, v1beta1)"
            )
        url, tls = self._target(hook)
        uid = str(uuid.uuid4())
        review = build_review(request, uid, version)
        if self._stopped:
            raise CallFailed(f"failed to call webhook: Post {json_quote(url)}: context canceled")
        try:
            raw, code, content_type = await self._post(url, review, tls, hook.timeout)
        except (aiohttp.ClientError, TimeoutError, OSError, ssl.SSLError) as error:
            raise CallFailed(
                f"failed to call webhook: Post {json_quote(url)}: {transport_error(error)}"
            ) from error
        if not 200 <= code < 300:
            raise CallFailed(f"failed to call webhook: {http_error(code, content_type, raw)}")
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise CallFailed(
                f"failed to call webhook: couldn't get version/kind; json parse error: {error}"
            ) from error
        response = verify_response(hook, version, uid, body)
        for text in as_list(response.get("warnings")):
            _warn(warnings, text)
        if response.get("allowed") is not True:
            raise denied(hook.name, response.get("status"))
        return response
