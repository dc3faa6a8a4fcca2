"""Who may have a Template's steps run as a ServiceAccount: checked at the Template's admission.

A Template's `serviceAccountName` is the identity of every Job koos creates for it (and of its
API calls). Kubernetes lets a person use a namespace's ServiceAccount by creating a Pod or a
Job that names it, so whoever may create Jobs in a namespace may use any of its
ServiceAccounts — and only they. koos creates the Jobs as itself, so it applies that rule to
the author instead: at CREATE, and at an UPDATE that changes the spec, a Template that names a
ServiceAccount is admitted only if a SubjectAccessReview says the author (the admission
request's userInfo: user, uid, groups, extra — never a field a user writes) may `create`
`jobs` (group `batch`) in the Template's namespace.

If the review cannot be made (the API server fails, or the operator may not create
SubjectAccessReviews), the Template is refused with a message saying so: an unchecked
identity never slips through. The operator needs `create` on
`subjectaccessreviews.authorization.k8s.io`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from koos.k8s.client import Kube, KubeError

log = logging.getLogger("koos.admission")
REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


async def check_service_account_use(
    kube: Kube,
    namespace: str,
    spec: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    userinfo: Mapping[str, Any] | None,
) -> None:
    """Raise `kopf.AdmissionError` unless the author may use the ServiceAccount `spec` names
    (see the module docstring)."""
    account = spec.get("serviceAccountName")
    if not account:
        return
    if old is not None and dict(old.get("spec") or {}) == dict(spec):
        return  # metadata only: the spec, and who answers for it, did not change
    user = dict(userinfo or {})
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": str(user.get("username", "")),
            "uid": str(user.get("uid", "")),
            "groups": [str(g) for g in user.get("groups") or []],
            "extra": {str(k): [str(v) for v in vs] for k, vs in (user.get("extra") or {}).items()},
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "create",
                "group": "batch",
                "resource": "jobs",
            },
        },
    }
    try:
        answer = await kube.create(REVIEWS, review)
    except KubeError as error:
        log.warning(
            "SubjectAccessReview failed namespace=%s serviceAccount=%s: %s",
            namespace,
            account,
            error,
        )
        raise kopf.AdmissionError(
            f"spec.serviceAccountName: koos could not check that you may create Jobs in "
            f"namespace {namespace} ({error.code} {error.reason}), which using ServiceAccount "
            f"{account} requires: try again, or ask who runs koos to let it create "
            "subjectaccessreviews",
            code=503 if error.transient else 500,
        ) from None
    if not (answer.get("status") or {}).get("allowed"):
        raise kopf.AdmissionError(
            f"spec.serviceAccountName: {user.get('username', 'you')} may not create Jobs in "
            f"namespace {namespace}, so the template's steps may not run as ServiceAccount "
            f"{account} (Kubernetes lets only those who may create Jobs or Pods in a namespace "
            "use its ServiceAccounts): get a Role that grants create on jobs (batch) there, "
            "or leave serviceAccountName out",
            code=403,
        )
