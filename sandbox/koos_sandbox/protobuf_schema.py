"""Message tables for `koos_sandbox.protobuf`: Kubernetes protobuf field numbers and JSON shape.

Role: for every message that kubectl's typed commands put on the wire, this module says which
field number carries which JSON field, what kind of value it holds, and how Go's
`encoding/json` would print it. `koos_sandbox.protobuf` walks these tables; nothing here reads
bytes.

Invariants:
- Field numbers come from the `generated.proto` files of k8s.io/api (core/v1, apps/v1,
  batch/v1, authentication/v1, authorization/v1, policy/v1) and k8s.io/apimachinery (meta/v1,
  runtime, util/intstr, api/resource), cross-checked against the `protobuf:"..."` struct tags
  of the matching `types.go`. They are stable across Kubernetes releases: a number is never
  reused, new fields only get new numbers.
- Each table lists its fields in Go struct order, which is the order `encoding/json` prints.
- The tables reference each other without cycles, so decoding depth is bounded by the schema,
  whatever the input.
- `presence` encodes the Go type and JSON tag of a field, because that decides what the API
  server's JSON shows after decoding the same bytes (see `Field`).
- A field missing from a table is skipped when decoding: the decoder ignores unknown field
  numbers, as gogo-protobuf does. Deliberately left out: `PodSpec.ephemeralContainers`
  and `resourceClaims`, volume sources other than hostPath/emptyDir/secret/nfs/
  persistentVolumeClaim/downwardAPI/configMap/projected, `PodAffinityTerm.matchLabelKeys`/
  `mismatchLabelKeys`, `Container.restartPolicyRules`, `EnvVarSource.fileKeyRef`,
  `PodStatus` container statuses, `DeleteOptions.ignoreStoreReadErrorWithClusterBreakingPotential`
  and `SubjectAccessReviewSpec.authorizationOptions`.
"""

from __future__ import annotations

from koos_sandbox.protobuf_core import CORE
from koos_sandbox.protobuf_fields import (
    FIELDS_V1,
    INT32,
    INT_OR_STRING,
    LIST,
    META,
    PTR,
    PTR_REQ,
    REQ,
    STRING_LIST,
    Field,
    _b,
    _i32,
    _i64,
    _m,
    _map,
    _msgs,
    _p,
    _s,
    _strs,
    _time,
)
from koos_sandbox.protobuf_pod import CORE_MORE

MESSAGES: dict[str, tuple[Field, ...]] = {
    # --- k8s.io/apimachinery/pkg/apis/meta/v1 ---
    "ObjectMeta": (
        _s(1, "name"),
        _s(2, "generateName"),
        _s(3, "namespace"),
        _s(4, "selfLink"),
        _s(5, "uid"),
        _s(6, "resourceVersion"),
        _i64(7, "generation"),
        _time(8, "creationTimestamp"),
        _time(9, "deletionTimestamp", PTR),
        _i64(10, "deletionGracePeriodSeconds", PTR),
        _map(11, "labels"),
        _map(12, "annotations"),
        _msgs(13, "ownerReferences", "OwnerReference"),
        _strs(14, "finalizers"),
        _msgs(17, "managedFields", "ManagedFieldsEntry"),
    ),
    "OwnerReference": (
        _s(5, "apiVersion", REQ),
        _s(1, "kind", REQ),
        _s(3, "name", REQ),
        _s(4, "uid", REQ),
        _b(6, "controller", PTR),
        _b(7, "blockOwnerDeletion", PTR),
    ),
    "ManagedFieldsEntry": (
        _s(1, "manager"),
        _s(2, "operation"),
        _s(3, "apiVersion"),
        _time(4, "time", PTR),
        _s(6, "fieldsType"),
        Field(7, "fieldsV1", FIELDS_V1, presence=PTR),
        _s(8, "subresource"),
    ),
    "LabelSelector": (
        _map(1, "matchLabels"),
        _msgs(2, "matchExpressions", "LabelSelectorRequirement"),
    ),
    "LabelSelectorRequirement": (
        _s(1, "key", REQ),
        _s(2, "operator", REQ),
        _strs(3, "values"),
    ),
    "FieldSelectorRequirement": (
        _s(1, "key", REQ),
        _s(2, "operator", REQ),
        _strs(3, "values"),
    ),
    "DeleteOptions": (
        _i64(1, "gracePeriodSeconds", PTR),
        _p(2, "preconditions", "Preconditions"),
        _b(3, "orphanDependents", PTR),
        _s(4, "propagationPolicy", PTR),
        _strs(5, "dryRun"),
    ),
    "Preconditions": (
        _s(1, "uid", PTR),
        _s(2, "resourceVersion", PTR),
    ),
    **CORE,
    **CORE_MORE,
    # --- k8s.io/api/batch/v1 ---
    "Job": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "JobSpec"),
        _m(3, "status", "JobStatus"),
    ),
    "JobSpec": (
        _i32(1, "parallelism", PTR),
        _i32(2, "completions", PTR),
        _i64(3, "activeDeadlineSeconds", PTR),
        _p(11, "podFailurePolicy", "PodFailurePolicy"),
        _p(16, "successPolicy", "SuccessPolicy"),
        _i32(7, "backoffLimit", PTR),
        _i32(12, "backoffLimitPerIndex", PTR),
        _i32(13, "maxFailedIndexes", PTR),
        _p(4, "selector", "LabelSelector"),
        _b(5, "manualSelector", PTR),
        _m(6, "template", "PodTemplateSpec"),
        _i32(8, "ttlSecondsAfterFinished", PTR),
        _s(9, "completionMode", PTR),
        _b(10, "suspend", PTR),
        _s(14, "podReplacementPolicy", PTR),
        _s(15, "managedBy", PTR),
    ),
    "PodFailurePolicy": (_msgs(1, "rules", "PodFailurePolicyRule", REQ),),
    "PodFailurePolicyRule": (
        _s(1, "action", REQ),
        _m(2, "onExitCodes", "PodFailurePolicyOnExitCodesRequirement", PTR_REQ),
        _msgs(3, "onPodConditions", "PodFailurePolicyOnPodConditionsPattern", REQ),
    ),
    "PodFailurePolicyOnExitCodesRequirement": (
        _s(1, "containerName", PTR_REQ),
        _s(2, "operator", REQ),
        Field(3, "values", INT32, shape=LIST, presence=REQ),
    ),
    "PodFailurePolicyOnPodConditionsPattern": (_s(1, "type", REQ), _s(2, "status", REQ)),
    "SuccessPolicy": (_msgs(1, "rules", "SuccessPolicyRule", REQ),),
    "SuccessPolicyRule": (_s(1, "succeededIndexes", PTR), _i32(2, "succeededCount", PTR)),
    "JobStatus": (
        _msgs(1, "conditions", "JobCondition"),
        _time(2, "startTime", PTR),
        _time(3, "completionTime", PTR),
        _i32(4, "active"),
        _i32(5, "succeeded"),
        _i32(6, "failed"),
        _i32(11, "terminating", PTR),
        _s(7, "completedIndexes"),
        _s(10, "failedIndexes", PTR),
        _p(8, "uncountedTerminatedPods", "UncountedTerminatedPods"),
        _i32(9, "ready", PTR),
    ),
    "UncountedTerminatedPods": (_strs(1, "succeeded"), _strs(2, "failed")),
    "JobCondition": (
        _s(1, "type", REQ),
        _s(2, "status", REQ),
        _time(3, "lastProbeTime"),
        _time(4, "lastTransitionTime"),
        _s(5, "reason"),
        _s(6, "message"),
    ),
    "JobTemplateSpec": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "JobSpec"),
    ),
    "CronJob": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "CronJobSpec"),
        _m(3, "status", "CronJobStatus"),
    ),
    "CronJobSpec": (
        _s(1, "schedule", REQ),
        _s(8, "timeZone", PTR),
        _i64(2, "startingDeadlineSeconds", PTR),
        _s(3, "concurrencyPolicy"),
        _b(4, "suspend", PTR),
        _m(5, "jobTemplate", "JobTemplateSpec"),
        _i32(6, "successfulJobsHistoryLimit", PTR),
        _i32(7, "failedJobsHistoryLimit", PTR),
    ),
    "CronJobStatus": (
        _msgs(1, "active", "ObjectReference"),
        _time(4, "lastScheduleTime", PTR),
        _time(5, "lastSuccessfulTime", PTR),
    ),
    # --- k8s.io/api/apps/v1 ---
    "Deployment": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "DeploymentSpec"),
        _m(3, "status", "DeploymentStatus"),
    ),
    "DeploymentSpec": (
        _i32(1, "replicas", PTR),
        _m(2, "selector", "LabelSelector", PTR_REQ),
        _m(3, "template", "PodTemplateSpec"),
        _m(4, "strategy", "DeploymentStrategy"),
        _i32(5, "minReadySeconds"),
        _i32(6, "revisionHistoryLimit", PTR),
        _b(7, "paused"),
        _i32(9, "progressDeadlineSeconds", PTR),
    ),
    "DeploymentStrategy": (
        _s(1, "type"),
        _p(2, "rollingUpdate", "RollingUpdateDeployment"),
    ),
    "RollingUpdateDeployment": (
        Field(1, "maxUnavailable", INT_OR_STRING, presence=PTR),
        Field(2, "maxSurge", INT_OR_STRING, presence=PTR),
    ),
    "DeploymentStatus": (
        _i64(1, "observedGeneration"),
        _i32(2, "replicas"),
        _i32(3, "updatedReplicas"),
        _i32(7, "readyReplicas"),
        _i32(4, "availableReplicas"),
        _i32(5, "unavailableReplicas"),
        _i32(9, "terminatingReplicas", PTR),
        _msgs(6, "conditions", "DeploymentCondition"),
        _i32(8, "collisionCount", PTR),
    ),
    "DeploymentCondition": (
        _s(1, "type", REQ),
        _s(2, "status", REQ),
        _time(6, "lastUpdateTime"),
        _time(7, "lastTransitionTime"),
        _s(4, "reason"),
        _s(5, "message"),
    ),
    # --- k8s.io/api/policy/v1 ---
    "Eviction": (
        _m(1, META, "ObjectMeta"),
        _p(2, "deleteOptions", "DeleteOptions"),
    ),
    # --- k8s.io/api/authentication/v1 ---
    "TokenRequest": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "TokenRequestSpec"),
        _m(3, "status", "TokenRequestStatus"),
    ),
    "TokenRequestSpec": (
        _strs(1, "audiences", REQ),
        _i64(4, "expirationSeconds", PTR_REQ),
        _m(3, "boundObjectRef", "BoundObjectReference", PTR_REQ),
    ),
    "TokenRequestStatus": (_s(1, "token", REQ), _time(2, "expirationTimestamp")),
    "BoundObjectReference": (
        _s(1, "kind"),
        _s(2, "apiVersion"),
        _s(3, "name"),
        _s(4, "uid"),
    ),
    "SelfSubjectReview": (
        _m(1, META, "ObjectMeta"),
        _m(2, "status", "SelfSubjectReviewStatus"),
    ),
    "SelfSubjectReviewStatus": (_m(1, "userInfo", "UserInfo"),),
    "UserInfo": (
        _s(1, "username"),
        _s(2, "uid"),
        _strs(3, "groups"),
        _map(4, "extra", STRING_LIST),
    ),
    "TokenReview": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "TokenReviewSpec"),
        _m(3, "status", "TokenReviewStatus"),
    ),
    "TokenReviewSpec": (_s(1, "token"), _strs(2, "audiences")),
    "TokenReviewStatus": (
        _b(1, "authenticated"),
        _m(2, "user", "UserInfo"),
        _strs(4, "audiences"),
        _s(3, "error"),
    ),
    # --- k8s.io/api/authorization/v1 ---
    "SelfSubjectAccessReview": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "SelfSubjectAccessReviewSpec"),
        _m(3, "status", "SubjectAccessReviewStatus"),
    ),
    "SelfSubjectAccessReviewSpec": (
        _p(1, "resourceAttributes", "ResourceAttributes"),
        _p(2, "nonResourceAttributes", "NonResourceAttributes"),
    ),
    "SubjectAccessReview": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "SubjectAccessReviewSpec"),
        _m(3, "status", "SubjectAccessReviewStatus"),
    ),
    "SubjectAccessReviewSpec": (
        _p(1, "resourceAttributes", "ResourceAttributes"),
        _p(2, "nonResourceAttributes", "NonResourceAttributes"),
        _s(3, "user"),
        _strs(4, "groups"),
        _map(5, "extra", STRING_LIST),
        _s(6, "uid"),
    ),
    "ResourceAttributes": (
        _s(1, "namespace"),
        _s(2, "verb"),
        _s(3, "group"),
        _s(4, "version"),
        _s(5, "resource"),
        _s(6, "subresource"),
        _s(7, "name"),
        _p(8, "fieldSelector", "FieldSelectorAttributes"),
        _p(9, "labelSelector", "LabelSelectorAttributes"),
    ),
    "FieldSelectorAttributes": (
        _s(1, "rawSelector"),
        _msgs(2, "requirements", "FieldSelectorRequirement"),
    ),
    "LabelSelectorAttributes": (
        _s(1, "rawSelector"),
        _msgs(2, "requirements", "LabelSelectorRequirement"),
    ),
    "NonResourceAttributes": (_s(1, "path"), _s(2, "verb")),
    "SubjectAccessReviewStatus": (
        _b(1, "allowed", REQ),
        _b(4, "denied"),
        _s(2, "reason"),
        _s(3, "evaluationError"),
    ),
}

# Top-level kinds: (apiVersion, kind) -> table. `DeleteOptions` is registered in every group
# version, so it is looked up by kind alone (see ANY_VERSION).
KINDS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Namespace"): "Namespace",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Pod"): "Pod",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("apps/v1", "Deployment"): "Deployment",
    ("policy/v1", "Eviction"): "Eviction",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io/v1", "TokenReview"): "TokenReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "SubjectAccessReview",
}
ANY_VERSION: dict[str, str] = {"DeleteOptions": "DeleteOptions"}


def table_for(api_version: str, kind: str) -> str | None:
    """The table that decodes (apiVersion, kind), or None when it is not covered."""
    name = KINDS.get((api_version, kind))
    if name is None and api_version:
        name = ANY_VERSION.get(kind)
    return name
