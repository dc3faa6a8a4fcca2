"""The AdmissionReview a webhook receives, and how its answer is read.

`build_review` builds the review the apiserver POSTs (request/admissionreview.go), with the
object as `with_type_meta` encodes it; `verify_response` checks the answer as
`VerifyAdmissionResponse` does (and the decoding errors client-go meets first);
`apply_patch` applies a mutating webhook's JSONPatch.

Invariants: nothing here does I/O or mutates its inputs (objects are copied before they are
changed); a malformed answer raises `CallFailed` (the failure policy decides); a patch that
does not apply, or any patch on a DELETE, raises a 500 `ApiError` whatever the policy.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from koos_sandbox.admission_errors import (
    TYPE_META,
    CallFailed,
    bad_base64_at,
    evanphx_error,
    internal_error,
    json_quote,
    json_type,
)
from koos_sandbox.admission_match import Webhook, review_namespace
from koos_sandbox.errors import ApiError
from koos_sandbox.patch import json_patch
from koos_sandbox.registry import ResourceType
from koos_sandbox.store import Obj
from koos_sandbox.writes import AdmissionRequest

_OPTIONS_KINDS = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


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


def with_type_meta(rt: ResourceType, namespace: str, obj: Obj) -> Obj:
    """The object as the apiserver encodes it for webhooks: apiVersion, kind, and (for a
    namespaced kind) metadata.namespace are always there. A shallow copy: the review is only
    encoded, and a webhook's patch is applied to a deep copy (`json_patch`)."""
    obj = {**obj, "apiVersion": rt.api_version, "kind": rt.kind}
    meta = obj.get("metadata")
    if meta is None:
        obj["metadata"] = meta = {}
    if rt.namespaced and namespace and isinstance(meta, dict) and "namespace" not in meta:
        obj["metadata"] = {**meta, "namespace": namespace}
    return obj


# ---- the answer ----------------------------------------------------------------------------


def verify_response(hook: Webhook, version: str, uid: str, body: Any) -> dict[str, Any]:
    """`VerifyAdmissionResponse`, and the decoding errors client-go would meet first."""
    if not isinstance(body, dict):
        raise CallFailed(
            "failed to call webhook: couldn't get version/kind; json parse error: json: "
            f"cannot unmarshal {json_type(body)} into Go value of type {TYPE_META}"
        )
    response = body.get("response")
    if response is not None and not isinstance(response, dict):
        raise CallFailed(
            "failed to call webhook: json: cannot unmarshal "
            + json_type(response)
            + " into Go struct field AdmissionReview.response of type "
            f"{version}.AdmissionResponse"
        )
    patch = response.get("patch") if response else None
    if patch is not None:
        if not isinstance(patch, str):
            raise CallFailed(
                "failed to call webhook: json: cannot unmarshal "
                + json_type(patch)
                + " into Go struct field AdmissionResponse.response.patch of type []uint8"
            )
        try:
            base64.b64decode(patch, validate=True)
        except (binascii.Error, ValueError) as error:
            raise CallFailed(
                f"failed to call webhook: illegal base64 data at input byte {bad_base64_at(patch)}"
            ) from error
    api_version, kind = body.get("apiVersion") or "", body.get("kind") or ""
    invalid = "received invalid webhook response: "
    if response is None:
        raise CallFailed(invalid + "webhook response was absent")
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
        raise CallFailed(
            invalid + f"expected response.uid={json_quote(uid)}, got {json_quote(got_text)}"
        )
    group, _, ver = api_version.rpartition("/")
    if (api_version, kind) != ("admission.k8s.io/v1", "AdmissionReview"):
        raise CallFailed(
            invalid + "expected webhook response of admission.k8s.io/v1, "
            f"Kind=AdmissionReview, got {group}/{ver}, Kind={kind}"
        )
    has_patch = bool(response.get("patch"))
    patch_type = response.get("patchType")
    if hook.mutating:
        if has_patch and patch_type is None:
            raise CallFailed(invalid + "webhook returned response.patch but not response.patchType")
        if not has_patch and patch_type is not None:
            raise CallFailed(invalid + "webhook returned response.patchType but not response.patch")
        if patch_type is not None and not patch_type:
            raise CallFailed(invalid + 'webhook returned invalid response.patchType of ""')
    else:
        if has_patch:
            raise CallFailed(invalid + "validating webhook may not return response.patch")
        if patch_type is not None:
            raise CallFailed(invalid + "validating webhook may not return response.patchType")
    return response


def apply_patch(
    hook: Webhook, request: AdmissionRequest, response: Mapping[str, Any]
) -> Obj | None:
    """The object after the webhook's JSONPatch, or None when it sent no change. An
    undecodable patch or an unknown patch type is a call failure (`CallFailed`); a patch
    that does not apply, or any patch on DELETE, is a 500 whatever the policy."""
    encoded = response.get("patch")
    if not encoded:
        return None
    raw = base64.b64decode(encoded)
    try:
        operations = json.loads(raw)
    except ValueError as error:
        raise CallFailed(f"received undecodable patch in webhook response: {error}") from error
    if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
        raise CallFailed(
            "received undecodable patch in webhook response: json: cannot unmarshal "
            + json_type(operations)
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
        raise CallFailed(f"unsupported patch type {json_quote(str(patch_type))}")
    doc: Any = request.obj
    for op in operations:
        try:
            doc = json_patch(doc, [op])
        except ApiError as error:
            raise internal_error(evanphx_error(op)) from error
    if not isinstance(doc, dict):
        raise internal_error(
            "couldn't get version/kind; json parse error: json: cannot unmarshal "
            f"{json_type(doc)} into Go value of type {TYPE_META}"
        )
    return doc
